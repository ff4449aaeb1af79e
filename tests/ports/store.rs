use std::collections::HashSet;
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use natter::domain::{
    ClientId, HistoryRange, MessageBody, NewMessage, Role, Room, RoomKind, RoomName, RoomScope,
    RoomSummary, Seq, Slug, User, Username,
};
use natter::ports::{Added, DmPair, NewRoom, Standing, Store, StoreError};

use crate::fixtures::{MemoryStoreFixture, PortFixture, SqliteStoreFixture};
use crate::postgres_fixture::PgStoreFixture;

port_suite! {
    adapters {
        memory: MemoryStoreFixture,
        sqlite: SqliteStoreFixture,
        #[ignore = "needs TEST_DATABASE_URL"]
        postgres: PgStoreFixture,
    }
    behaviours {
        usernames_are_unique_case_insensitively,
        sessions_are_found_by_hash_until_they_expire_or_are_deleted,
        creating_a_room_twice_returns_the_first,
        seq_has_no_gaps_under_concurrent_appends,
        a_client_id_is_stored_once,
        concurrent_sends_of_one_client_id_store_one_message,
        history_ranges_are_oldest_first,
        bodies_come_back_exactly_as_stored,
        the_room_list_knows_the_last_message_time,
        the_room_list_is_most_recently_active_first_in_pages,
        times_read_back_as_written_to_the_millisecond,
        users_are_found_by_name_case_insensitively,
        the_creator_of_a_room_is_its_owner,
        creating_an_existing_slug_changes_no_membership,
        a_dm_is_one_room_per_pair_whichever_opens_it,
        concurrent_opens_of_a_dm_make_one_room,
        private_rooms_and_dms_are_listed_only_to_their_members,
        a_viewers_rooms_are_listed_with_their_roles,
        the_room_list_pages_only_what_the_viewer_sees,
        adding_a_member_says_what_it_did,
        a_crowds_standings_and_memberships_answer_each_in_order,
        roles_are_set_and_members_removed_only_for_members,
        a_ban_removes_the_member_and_keeps_them_out_until_unbanned,
        racing_adds_and_bans_never_leave_a_banned_member,
    }
}

async fn user(store: &dyn Store, name: &str) -> User {
    store
        .create_user(&Username::parse(name).unwrap(), "$argon2id$dummy")
        .await
        .unwrap()
}

async fn room(store: &dyn Store, owner: &User, name: &str) -> Room {
    create(store, owner, name, RoomKind::Public).await.0
}

async fn private_room(store: &dyn Store, owner: &User, name: &str) -> Room {
    create(store, owner, name, RoomKind::Private).await.0
}

async fn create(store: &dyn Store, owner: &User, name: &str, kind: RoomKind) -> (Room, bool) {
    let name = RoomName::parse(name).unwrap();
    store
        .create_room(NewRoom {
            slug: &name.slug(),
            name: &name,
            kind,
            owner: owner.id,
        })
        .await
        .unwrap()
}

async fn open_dm(store: &dyn Store, pair: DmPair, slug: &str) -> (Room, bool) {
    store
        .open_dm(pair, &Slug::parse(slug).unwrap(), "a DM")
        .await
        .unwrap()
}

/// Every member's name and role, by name.
async fn members(store: &dyn Store, room: &Room) -> Vec<(String, Role)> {
    let mut members: Vec<_> = store
        .members(room.id)
        .await
        .unwrap()
        .into_iter()
        .map(|member| (member.user.username, member.role))
        .collect();
    members.sort();
    members
}

async fn standing(store: &dyn Store, room: &Room, user: &User) -> Standing {
    store.standing(room.id, user.id).await.unwrap()
}

/// The names and the viewer's roles of a page of `viewer`'s room list.
async fn listed(
    store: &dyn Store,
    viewer: &User,
    scope: RoomScope,
    offset: usize,
    limit: usize,
) -> Vec<(String, Option<Role>)> {
    store
        .list_rooms(viewer.id, scope, offset, limit)
        .await
        .unwrap()
        .into_iter()
        .map(|summary| (summary.room.name, summary.role))
        .collect()
}

fn message(room: &Room, user: &User, body: &str, client_id: Option<&str>) -> NewMessage {
    NewMessage {
        room: room.clone(),
        user: user.clone(),
        body: MessageBody::parse(body).unwrap(),
        client_id: client_id.map(|c| ClientId::parse(c).unwrap()),
    }
}

async fn usernames_are_unique_case_insensitively(store: Arc<dyn Store>) {
    let alice = user(&*store, "Alice").await;
    let again = store
        .create_user(&Username::parse("aLICE").unwrap(), "x")
        .await;
    assert!(matches!(again, Err(StoreError::Duplicate)), "{again:?}");
    let (found, hash) = store
        .find_credentials(&Username::parse("ALICE").unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found, alice);
    assert_eq!(found.username, "Alice");
    assert_eq!(hash, "$argon2id$dummy");
    assert!(store
        .find_credentials(&Username::parse("bob").unwrap())
        .await
        .unwrap()
        .is_none());
}

async fn sessions_are_found_by_hash_until_they_expire_or_are_deleted(store: Arc<dyn Store>) {
    let alice = user(&*store, "alice").await;
    let expires = Utc::now() + Duration::hours(1);
    store
        .create_session(b"hash-one", alice.id, expires)
        .await
        .unwrap();
    let found = store
        .find_session(b"hash-one", Utc::now())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.user, alice);
    assert!(store
        .find_session(b"hash-two", Utc::now())
        .await
        .unwrap()
        .is_none());
    let later = expires + Duration::seconds(1);
    assert!(
        store
            .find_session(b"hash-one", later)
            .await
            .unwrap()
            .is_none(),
        "expired"
    );
    store.delete_session(b"hash-one").await.unwrap();
    assert!(
        store
            .find_session(b"hash-one", Utc::now())
            .await
            .unwrap()
            .is_none(),
        "deleted"
    );
}

async fn creating_a_room_twice_returns_the_first(store: Arc<dyn Store>) {
    let alice = user(&*store, "alice").await;
    let (first, created) = create(&*store, &alice, "General", RoomKind::Public).await;
    assert!(created);
    let (second, created) = create(&*store, &alice, "general!", RoomKind::Public).await;
    assert!(!created);
    assert_eq!(second, first);
    assert_eq!(second.name, "General");
    // A public room is read back as such from every path.
    assert_eq!(first.kind, RoomKind::Public);
    let slug = Slug::parse("general").unwrap();
    assert_eq!(store.find_room(&slug).await.unwrap(), Some(first));
    let listed = store
        .list_rooms(alice.id, RoomScope::Visible, 0, 10)
        .await
        .unwrap();
    assert!(listed
        .iter()
        .all(|summary| summary.room.kind == RoomKind::Public));
}

async fn seq_has_no_gaps_under_concurrent_appends(store: Arc<dyn Store>) {
    let alice = user(&*store, "alice").await;
    let rooms = [
        room(&*store, &alice, "one").await,
        room(&*store, &alice, "two").await,
    ];
    let appends = (0..60).map(|i| {
        let store = store.clone();
        let new = message(&rooms[i % 2], &alice, &format!("m{i}"), None);
        tokio::spawn(async move { store.append_message(new).await.unwrap() })
    });
    let appended = futures_util::future::join_all(appends).await;
    let ids: HashSet<i64> = appended
        .iter()
        .map(|a| a.as_ref().unwrap().message.id)
        .collect();
    assert_eq!(ids.len(), 60, "ids are unique");
    for room in &rooms {
        assert_eq!(acked_seqs(room, &appended), (1..=30).collect::<Vec<_>>());
        assert_eq!(store.last_seq(room.id).await.unwrap().get(), 30);
    }
    assert_each_ack_names_its_stored_message(&*store, &rooms, &appended).await;
}

type AppendResults = [Result<natter::ports::Appended, tokio::task::JoinError>];

/// The seqs acked in `room`, sorted.
fn acked_seqs(room: &Room, appended: &AppendResults) -> Vec<i64> {
    let mut seqs: Vec<i64> = appended
        .iter()
        .map(|a| &a.as_ref().unwrap().message)
        .filter(|m| m.room_id == room.id)
        .map(|m| m.seq.get())
        .collect();
    seqs.sort();
    seqs
}

/// Every acked (id, seq) is the message that was sent: a batched store must pair each
/// sender with its own row.
async fn assert_each_ack_names_its_stored_message(
    store: &dyn Store,
    rooms: &[Room],
    appended: &AppendResults,
) {
    for room in rooms {
        let stored = store
            .messages(room, HistoryRange::Latest, 100)
            .await
            .unwrap();
        for ack in appended.iter().map(|a| &a.as_ref().unwrap().message) {
            if ack.room_id != room.id {
                continue;
            }
            let row = stored.iter().find(|m| m.seq == ack.seq).unwrap();
            assert_eq!((row.id, &row.body), (ack.id, &ack.body));
        }
    }
}

#[tokio::test]
#[ignore = "needs TEST_DATABASE_URL"]
async fn postgres_two_stores_share_rooms_without_gaps() {
    crate::postgres_fixture::with_two_postgres_stores(two_stores_share_rooms_without_gaps).await;
}

/// Two processes on one database, each batching appends to the same rooms (listed in
/// opposite orders): every room's seq still runs 1, 2, 3, …, and each ack names its row.
/// (Whether two batches lock rooms in opposite order depends on PostgreSQL's plan; the
/// store locks them in id order, so the timeout guards a deadlock this test cannot force.)
async fn two_stores_share_rooms_without_gaps(stores: [Arc<dyn Store>; 2]) {
    let alice = user(&*stores[0], "alice").await;
    let mut rooms = Vec::new();
    for name in ["one", "two", "three", "four"] {
        rooms.push(room(&*stores[0], &alice, name).await);
    }
    let appends = (0..200).map(|i| {
        let store = stores[i % 2].clone();
        let room = if i % 2 == 0 {
            &rooms[i / 2 % 4]
        } else {
            &rooms[3 - i / 2 % 4]
        };
        let new = message(room, &alice, &format!("m{i}"), None);
        tokio::spawn(async move { store.append_message(new).await.unwrap() })
    });
    let appended = tokio::time::timeout(
        std::time::Duration::from_secs(30),
        futures_util::future::join_all(appends),
    )
    .await
    .expect("no deadlock between the two stores");
    for room in &rooms {
        assert_eq!(acked_seqs(room, &appended), (1..=50).collect::<Vec<_>>());
    }
    assert_each_ack_names_its_stored_message(&*stores[1], &rooms, &appended).await;
}

async fn a_client_id_is_stored_once(store: Arc<dyn Store>) {
    let alice = user(&*store, "alice").await;
    let bob = user(&*store, "bob").await;
    let general = room(&*store, &alice, "general").await;
    let first = store
        .append_message(message(&general, &alice, "hi", Some("c1")))
        .await
        .unwrap();
    assert!(first.fresh);
    let again = store
        .append_message(message(&general, &alice, "hi", Some("c1")))
        .await
        .unwrap();
    assert!(!again.fresh);
    assert_eq!(again.message, first.message);
    assert_eq!(
        store.last_seq(general.id).await.unwrap().get(),
        1,
        "a resend takes no seq"
    );
    // Another user's identical client_id is their own message.
    let bobs = store
        .append_message(message(&general, &bob, "hi", Some("c1")))
        .await
        .unwrap();
    assert!(bobs.fresh);
    assert_eq!(bobs.message.seq.get(), 2);
    let found = store
        .find_by_client_id(alice.id, "c1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found, first.message);
    assert!(store
        .find_by_client_id(alice.id, "c2")
        .await
        .unwrap()
        .is_none());
}

/// A resend racing the original (two sockets, a reconnect) is still one message, and the
/// losers are answered with the winner's message rather than an error.
async fn concurrent_sends_of_one_client_id_store_one_message(store: Arc<dyn Store>) {
    let alice = user(&*store, "alice").await;
    let rooms = [
        room(&*store, &alice, "one").await,
        room(&*store, &alice, "two").await,
    ];
    let sends = (0..20).map(|i| {
        let store = store.clone();
        // The same client_id even from another room: it names the user's send.
        let new = message(&rooms[i % 2], &alice, "hi", Some("c1"));
        tokio::spawn(async move { store.append_message(new).await.unwrap() })
    });
    let appended: Vec<_> = futures_util::future::join_all(sends)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert_eq!(appended.iter().filter(|a| a.fresh).count(), 1);
    let winner = &appended.iter().find(|a| a.fresh).unwrap().message;
    assert!(appended.iter().all(|a| a.message == *winner));
    let seqs = [
        store.last_seq(rooms[0].id).await.unwrap().get(),
        store.last_seq(rooms[1].id).await.unwrap().get(),
    ];
    assert_eq!(seqs[0] + seqs[1], 1, "the losers took no seq");
}

async fn history_ranges_are_oldest_first(store: Arc<dyn Store>) {
    let alice = user(&*store, "alice").await;
    let general = room(&*store, &alice, "general").await;
    for i in 1..=7 {
        store
            .append_message(message(&general, &alice, &format!("m{i}"), None))
            .await
            .unwrap();
    }
    let seqs = |messages: Vec<natter::domain::Message>| {
        messages.iter().map(|m| m.seq.get()).collect::<Vec<_>>()
    };
    assert_eq!(
        seqs(
            store
                .messages(&general, HistoryRange::Latest, 3)
                .await
                .unwrap()
        ),
        vec![5, 6, 7]
    );
    assert_eq!(
        seqs(
            store
                .messages(&general, HistoryRange::Before(Seq::new(5).unwrap()), 2)
                .await
                .unwrap()
        ),
        vec![3, 4]
    );
    assert_eq!(
        seqs(
            store
                .messages(&general, HistoryRange::Before(Seq::new(2).unwrap()), 5)
                .await
                .unwrap()
        ),
        vec![1]
    );
    assert_eq!(
        seqs(
            store
                .messages(&general, HistoryRange::After(Seq::new(4).unwrap()), 2)
                .await
                .unwrap()
        ),
        vec![5, 6]
    );
    assert_eq!(
        seqs(
            store
                .messages(&general, HistoryRange::After(Seq::new(7).unwrap()), 5)
                .await
                .unwrap()
        ),
        Vec::<i64>::new()
    );
    let latest = store
        .messages(&general, HistoryRange::Latest, 1)
        .await
        .unwrap();
    assert_eq!(latest[0].body, "m7");
    assert_eq!(latest[0].username, "alice");
    assert_eq!(latest[0].room_slug, "general");
}

async fn bodies_come_back_exactly_as_stored(store: Arc<dyn Store>) {
    let alice = user(&*store, "alice").await;
    let general = room(&*store, &alice, "general").await;
    let bodies = [
        "plain",
        "émoji 🎉 and 日本語",
        "<script>alert('x')</script> & \"quotes\" \\ backslash",
        "multi\nline\r\ntext\twith tabs",
        "%s %d $1 ${x} ' OR 1=1 --",
    ];
    for body in bodies {
        store
            .append_message(message(&general, &alice, body, None))
            .await
            .unwrap();
    }
    let stored = store
        .messages(&general, HistoryRange::Latest, 10)
        .await
        .unwrap();
    let stored: Vec<&str> = stored.iter().map(|m| m.body.as_str()).collect();
    assert_eq!(stored, bodies);
}

async fn the_room_list_knows_the_last_message_time(store: Arc<dyn Store>) {
    let alice = user(&*store, "alice").await;
    let quiet = room(&*store, &alice, "quiet").await;
    let busy = room(&*store, &alice, "busy").await;
    let before = Utc::now() - Duration::seconds(1);
    store
        .append_message(message(&busy, &alice, "hi", None))
        .await
        .unwrap();
    let rooms = store
        .list_rooms(alice.id, RoomScope::Visible, 0, 500)
        .await
        .unwrap();
    let find = |r: &Room| rooms.iter().find(|s| s.room == *r).unwrap().clone();
    assert!(find(&quiet).last_message_at.is_none());
    assert!(find(&busy).last_message_at.unwrap() > before);
}

/// Recency is the last message, or the creation for a room without one; pages do not
/// overlap.
async fn the_room_list_is_most_recently_active_first_in_pages(store: Arc<dyn Store>) {
    let alice = user(&*store, "alice").await;
    let old = room(&*store, &alice, "old but talked in").await;
    let _middle = room(&*store, &alice, "created second").await;
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let _newest = room(&*store, &alice, "created last").await;
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    store
        .append_message(message(&old, &alice, "hi", None))
        .await
        .unwrap();
    let names = |rooms: Vec<RoomSummary>| -> Vec<String> {
        rooms.into_iter().map(|r| r.room.name).collect()
    };
    let page = |offset, limit| store.list_rooms(alice.id, RoomScope::Visible, offset, limit);
    let all = names(page(0, 10).await.unwrap());
    assert_eq!(all, ["old but talked in", "created last", "created second"]);
    assert_eq!(names(page(0, 2).await.unwrap()), all[..2]);
    assert_eq!(names(page(2, 2).await.unwrap()), all[2..]);
    assert!(page(3, 2).await.unwrap().is_empty());
}

/// The time an ack carries is the time history, the room list and sessions read back: a
/// client compares them.
async fn times_read_back_as_written_to_the_millisecond(store: Arc<dyn Store>) {
    let alice = user(&*store, "alice").await;
    let general = room(&*store, &alice, "general").await;
    let expires = Utc::now() + Duration::hours(1);
    store
        .create_session(b"hash", alice.id, expires)
        .await
        .unwrap();
    let session = store
        .find_session(b"hash", Utc::now())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        session.expires_at.timestamp_millis(),
        expires.timestamp_millis()
    );
    let acked = store
        .append_message(message(&general, &alice, "hi", None))
        .await
        .unwrap()
        .message;
    let stored = store
        .messages(&general, HistoryRange::Latest, 1)
        .await
        .unwrap();
    assert_eq!(stored, vec![acked.clone()]);
    let rooms = store
        .list_rooms(alice.id, RoomScope::Visible, 0, 500)
        .await
        .unwrap();
    let listed = rooms.iter().find(|r| r.room == general).unwrap();
    assert_eq!(listed.last_message_at, Some(acked.sent_at));
}

async fn users_are_found_by_name_case_insensitively(store: Arc<dyn Store>) {
    let alice = user(&*store, "Alice").await;
    let found = store
        .find_user(&Username::parse("aLICE").unwrap())
        .await
        .unwrap();
    assert_eq!(found, Some(alice));
    assert!(store
        .find_user(&Username::parse("bob").unwrap())
        .await
        .unwrap()
        .is_none());
}

async fn the_creator_of_a_room_is_its_owner(store: Arc<dyn Store>) {
    let alice = user(&*store, "alice").await;
    let bob = user(&*store, "bob").await;
    let (public, _) = create(&*store, &alice, "General", RoomKind::Public).await;
    let (private, created) = create(&*store, &bob, "Plans", RoomKind::Private).await;
    assert!(created);
    assert_eq!(private.kind, RoomKind::Private);
    assert_eq!(
        store
            .find_room(&Slug::parse("plans").unwrap())
            .await
            .unwrap(),
        Some(private.clone())
    );
    assert_eq!(
        members(&*store, &public).await,
        [("alice".to_owned(), Role::Owner)]
    );
    assert_eq!(
        members(&*store, &private).await,
        [("bob".to_owned(), Role::Owner)]
    );
    assert_eq!(
        standing(&*store, &private, &bob).await,
        Standing {
            role: Some(Role::Owner),
            banned: false
        }
    );
    assert_eq!(
        standing(&*store, &private, &alice).await,
        Standing::default()
    );
}

/// Creating a room whose slug exists is joining it at most, which is the chat service's
/// to do: the store hands the room back and touches no membership.
async fn creating_an_existing_slug_changes_no_membership(store: Arc<dyn Store>) {
    let alice = user(&*store, "alice").await;
    let bob = user(&*store, "bob").await;
    let (general, _) = create(&*store, &alice, "General", RoomKind::Public).await;
    assert!(store
        .set_role(general.id, alice.id, Role::Moderator)
        .await
        .unwrap());
    let (again, created) = create(&*store, &bob, "general", RoomKind::Private).await;
    assert!(!created);
    assert_eq!(again, general, "still the public room it was");
    let (again, created) = create(&*store, &alice, "GENERAL", RoomKind::Public).await;
    assert!(!created);
    assert_eq!(again, general);
    assert_eq!(
        members(&*store, &general).await,
        [("alice".to_owned(), Role::Moderator)],
        "bob did not join, alice's role was kept"
    );
}

async fn a_dm_is_one_room_per_pair_whichever_opens_it(store: Arc<dyn Store>) {
    let alice = user(&*store, "alice").await;
    let bob = user(&*store, "bob").await;
    let carol = user(&*store, "carol").await;
    let (dm, created) = store
        .open_dm(
            DmPair(alice.id, bob.id),
            &Slug::parse("dm-ab").unwrap(),
            "alice, bob",
        )
        .await
        .unwrap();
    assert!(created);
    assert_eq!(
        (dm.slug.as_str(), dm.name.as_str(), dm.kind),
        ("dm-ab", "alice, bob", RoomKind::Dm)
    );
    let (again, created) = open_dm(&*store, DmPair(bob.id, alice.id), "dm-ba").await;
    assert!(!created);
    assert_eq!(again, dm, "the pair's room, under its first slug");
    for pair in [DmPair(alice.id, bob.id), DmPair(bob.id, alice.id)] {
        assert_eq!(store.find_dm(pair).await.unwrap(), Some(dm.clone()));
    }
    assert_eq!(
        store
            .find_room(&Slug::parse("dm-ab").unwrap())
            .await
            .unwrap(),
        Some(dm.clone())
    );
    assert!(store
        .find_room(&Slug::parse("dm-ba").unwrap())
        .await
        .unwrap()
        .is_none());
    assert_eq!(
        members(&*store, &dm).await,
        [
            ("alice".to_owned(), Role::Member),
            ("bob".to_owned(), Role::Member)
        ]
    );

    assert!(store
        .find_dm(DmPair(alice.id, carol.id))
        .await
        .unwrap()
        .is_none());
    let (other, created) = open_dm(&*store, DmPair(carol.id, alice.id), "dm-ac").await;
    assert!(created);
    assert_ne!(other.id, dm.id);
    // A slug another room has is refused, and the pair still has no room.
    room(&*store, &carol, "taken").await;
    let refused = store
        .open_dm(
            DmPair(bob.id, carol.id),
            &Slug::parse("taken").unwrap(),
            "bob, carol",
        )
        .await;
    assert!(matches!(refused, Err(StoreError::Duplicate)), "{refused:?}");
    assert!(store
        .find_dm(DmPair(bob.id, carol.id))
        .await
        .unwrap()
        .is_none());
}

async fn concurrent_opens_of_a_dm_make_one_room(store: Arc<dyn Store>) {
    concurrent_opens_make_one_dm([store.clone(), store]).await;
}

#[tokio::test]
#[ignore = "needs TEST_DATABASE_URL"]
async fn postgres_two_stores_open_one_dm() {
    crate::postgres_fixture::with_two_postgres_stores(concurrent_opens_make_one_dm).await;
}

/// Both users open their DM at once, several times over, on `stores` in turn: one room,
/// with exactly the two of them as members, and every caller gets it. Some callers share a
/// slug and some do not: one room either way.
async fn concurrent_opens_make_one_dm(stores: [Arc<dyn Store>; 2]) {
    let alice = user(&*stores[0], "alice").await;
    let bob = user(&*stores[0], "bob").await;
    let opens = (0..8).map(|i| {
        let store = stores[i % 2].clone();
        let pair = if i % 2 == 0 {
            DmPair(alice.id, bob.id)
        } else {
            DmPair(bob.id, alice.id)
        };
        let slug = Slug::parse(&format!("dm-{}", i % 3)).unwrap();
        tokio::spawn(async move { store.open_dm(pair, &slug, "alice, bob").await.unwrap() })
    });
    let opened: Vec<(Room, bool)> = futures_util::future::join_all(opens)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert_eq!(opened.iter().filter(|(_, created)| *created).count(), 1);
    let dm = &opened[0].0;
    assert!(opened.iter().all(|(room, _)| room == dm));
    for store in &stores {
        assert_eq!(
            members(&**store, dm).await,
            [
                ("alice".to_owned(), Role::Member),
                ("bob".to_owned(), Role::Member)
            ]
        );
        let alices = store
            .list_rooms(alice.id, RoomScope::Joined, 0, 10)
            .await
            .unwrap();
        assert_eq!(alices.len(), 1, "one room: {alices:?}");
    }
}

/// CONTRACT §9: a private room or DM does not exist for whoever is not in it.
async fn private_rooms_and_dms_are_listed_only_to_their_members(store: Arc<dyn Store>) {
    let alice = user(&*store, "alice").await;
    let bob = user(&*store, "bob").await;
    let carol = user(&*store, "carol").await;
    let dave = user(&*store, "dave").await;
    room(&*store, &alice, "lobby").await;
    let secret = private_room(&*store, &alice, "secret").await;
    store
        .open_dm(
            DmPair(bob.id, carol.id),
            &Slug::parse("dm-bc").unwrap(),
            "bob, carol",
        )
        .await
        .unwrap();
    let sorted = |mut rooms: Vec<(String, Option<Role>)>| {
        rooms.sort();
        rooms
    };
    let entry = |name: &str, role: Option<Role>| (name.to_owned(), role);
    assert_eq!(
        sorted(listed(&*store, &dave, RoomScope::Visible, 0, 10).await),
        [entry("lobby", None)]
    );
    assert_eq!(
        sorted(listed(&*store, &alice, RoomScope::Visible, 0, 10).await),
        [
            entry("lobby", Some(Role::Owner)),
            entry("secret", Some(Role::Owner))
        ]
    );
    assert_eq!(
        sorted(listed(&*store, &bob, RoomScope::Visible, 0, 10).await),
        [
            entry("bob, carol", Some(Role::Member)),
            entry("lobby", None)
        ]
    );

    // Added, bob sees the private room; removed, no longer.
    store
        .add_member(secret.id, bob.id, Role::Member)
        .await
        .unwrap();
    assert_eq!(
        sorted(listed(&*store, &bob, RoomScope::Visible, 0, 10).await),
        [
            entry("bob, carol", Some(Role::Member)),
            entry("lobby", None),
            entry("secret", Some(Role::Member))
        ]
    );
    // The public rooms alone, whatever else the viewer is in, with their role.
    assert_eq!(
        listed(&*store, &bob, RoomScope::Public, 0, 10).await,
        [entry("lobby", None)]
    );
    assert_eq!(
        listed(&*store, &alice, RoomScope::Public, 0, 10).await,
        [entry("lobby", Some(Role::Owner))]
    );
    store.ban(secret.id, bob.id, alice.id).await.unwrap();
    assert_eq!(
        sorted(listed(&*store, &bob, RoomScope::Visible, 0, 10).await),
        [
            entry("bob, carol", Some(Role::Member)),
            entry("lobby", None)
        ]
    );
}

async fn a_viewers_rooms_are_listed_with_their_roles(store: Arc<dyn Store>) {
    let alice = user(&*store, "alice").await;
    let bob = user(&*store, "bob").await;
    let lobby = room(&*store, &alice, "lobby").await;
    room(&*store, &alice, "elsewhere").await;
    let secret = private_room(&*store, &alice, "secret").await;
    private_room(&*store, &alice, "hidden").await;
    open_dm(&*store, DmPair(alice.id, bob.id), "dm-ab").await;
    store
        .add_member(lobby.id, bob.id, Role::Member)
        .await
        .unwrap();
    store
        .add_member(secret.id, bob.id, Role::Moderator)
        .await
        .unwrap();
    let mut mine = listed(&*store, &bob, RoomScope::Joined, 0, 10).await;
    mine.sort();
    assert_eq!(
        mine,
        [
            ("a DM".to_owned(), Some(Role::Member)),
            ("lobby".to_owned(), Some(Role::Member)),
            ("secret".to_owned(), Some(Role::Moderator)),
        ],
        "neither a public room bob is not in nor a private one"
    );
    let nobody = user(&*store, "nobody").await;
    assert!(listed(&*store, &nobody, RoomScope::Joined, 0, 10)
        .await
        .is_empty());
}

/// Rooms the viewer cannot see take no place in the order or in a page, in either list.
async fn the_room_list_pages_only_what_the_viewer_sees(store: Arc<dyn Store>) {
    let alice = user(&*store, "alice").await;
    let bob = user(&*store, "bob").await;
    let mut made = Vec::new();
    for (owner, name, kind) in [
        (&alice, "public one", RoomKind::Public),
        (&bob, "bob's one", RoomKind::Private),
        (&alice, "public two", RoomKind::Public),
        (&bob, "bob's two", RoomKind::Private),
        (&alice, "public three", RoomKind::Public),
    ] {
        made.push(create(&*store, owner, name, kind).await.0);
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    // The oldest room of each kind becomes the most recently active.
    for room in [&made[0], &made[1]] {
        store
            .append_message(message(room, &bob, "hi", None))
            .await
            .unwrap();
    }
    let names = |page: Vec<(String, Option<Role>)>| -> Vec<String> {
        page.into_iter().map(|(name, _)| name).collect()
    };
    let alices = names(listed(&*store, &alice, RoomScope::Visible, 0, 10).await);
    assert_eq!(alices, ["public one", "public three", "public two"]);
    assert_eq!(
        names(listed(&*store, &alice, RoomScope::Visible, 0, 2).await),
        alices[..2]
    );
    assert_eq!(
        names(listed(&*store, &alice, RoomScope::Visible, 2, 2).await),
        alices[2..]
    );

    let bobs = names(listed(&*store, &bob, RoomScope::Joined, 0, 10).await);
    assert_eq!(bobs, ["bob's one", "bob's two"]);
    assert_eq!(
        names(listed(&*store, &bob, RoomScope::Joined, 1, 1).await),
        bobs[1..]
    );
    assert!(listed(&*store, &bob, RoomScope::Joined, 2, 1)
        .await
        .is_empty());
}

async fn adding_a_member_says_what_it_did(store: Arc<dyn Store>) {
    let alice = user(&*store, "alice").await;
    let bob = user(&*store, "bob").await;
    let carol = user(&*store, "carol").await;
    let secret = private_room(&*store, &alice, "secret").await;
    let add = |user: &User, role| store.add_member(secret.id, user.id, role);
    assert_eq!(add(&bob, Role::Moderator).await.unwrap(), Added::Added);
    assert_eq!(add(&bob, Role::Member).await.unwrap(), Added::AlreadyMember);
    assert_eq!(
        standing(&*store, &secret, &bob).await.role,
        Some(Role::Moderator),
        "the role is kept"
    );
    assert_eq!(
        add(&alice, Role::Member).await.unwrap(),
        Added::AlreadyMember
    );
    assert_eq!(
        standing(&*store, &secret, &alice).await.role,
        Some(Role::Owner)
    );

    store.ban(secret.id, carol.id, alice.id).await.unwrap();
    assert_eq!(add(&carol, Role::Member).await.unwrap(), Added::Banned);
    assert_eq!(
        standing(&*store, &secret, &carol).await,
        Standing {
            role: None,
            banned: true
        }
    );
    assert_eq!(
        members(&*store, &secret).await,
        [
            ("alice".to_owned(), Role::Owner),
            ("bob".to_owned(), Role::Moderator)
        ]
    );
}

/// A crowd's standings are one read and its first visits one write (CONTRACT §9 at the
/// cost of a join storm): each answer in the order asked, a user asked twice included.
async fn a_crowds_standings_and_memberships_answer_each_in_order(store: Arc<dyn Store>) {
    let alice = user(&*store, "alice").await;
    let bob = user(&*store, "bob").await;
    let carol = user(&*store, "carol").await;
    let dave = user(&*store, "dave").await;
    let lobby = room(&*store, &alice, "lobby").await;
    store.ban(lobby.id, carol.id, alice.id).await.unwrap();
    let crowd = [dave.id, alice.id, carol.id, bob.id, dave.id];
    let nowhere = Standing::default();
    assert_eq!(
        store.standings(lobby.id, &crowd).await.unwrap(),
        [
            nowhere,
            Standing {
                role: Some(Role::Owner),
                banned: false
            },
            Standing {
                role: None,
                banned: true
            },
            nowhere,
            nowhere,
        ]
    );
    assert_eq!(store.standings(lobby.id, &[]).await.unwrap(), []);

    assert_eq!(
        store
            .add_members(lobby.id, &crowd, Role::Member)
            .await
            .unwrap(),
        [
            Added::Added,
            Added::AlreadyMember,
            Added::Banned,
            Added::Added,
            Added::AlreadyMember,
        ]
    );
    assert_eq!(
        members(&*store, &lobby).await,
        [
            ("alice".to_owned(), Role::Owner),
            ("bob".to_owned(), Role::Member),
            ("dave".to_owned(), Role::Member)
        ]
    );
}

async fn roles_are_set_and_members_removed_only_for_members(store: Arc<dyn Store>) {
    let alice = user(&*store, "alice").await;
    let bob = user(&*store, "bob").await;
    let general = room(&*store, &alice, "general").await;
    assert!(!store
        .set_role(general.id, bob.id, Role::Moderator)
        .await
        .unwrap());
    assert!(!store.remove_member(general.id, bob.id).await.unwrap());
    assert_eq!(
        standing(&*store, &general, &bob).await,
        Standing::default(),
        "setting a role made no member"
    );

    store
        .add_member(general.id, bob.id, Role::Member)
        .await
        .unwrap();
    assert!(store
        .set_role(general.id, bob.id, Role::Moderator)
        .await
        .unwrap());
    assert_eq!(
        standing(&*store, &general, &bob).await.role,
        Some(Role::Moderator)
    );
    assert!(store.remove_member(general.id, bob.id).await.unwrap());
    assert_eq!(
        standing(&*store, &general, &bob).await,
        Standing::default(),
        "removed, not banned"
    );
    assert!(!store.remove_member(general.id, bob.id).await.unwrap());
    assert_eq!(
        members(&*store, &general).await,
        [("alice".to_owned(), Role::Owner)]
    );
}

async fn a_ban_removes_the_member_and_keeps_them_out_until_unbanned(store: Arc<dyn Store>) {
    let alice = user(&*store, "alice").await;
    let bob = user(&*store, "bob").await;
    let carol = user(&*store, "carol").await;
    let general = room(&*store, &alice, "general").await;
    let elsewhere = room(&*store, &alice, "elsewhere").await;
    for room in [&general, &elsewhere] {
        store
            .add_member(room.id, bob.id, Role::Moderator)
            .await
            .unwrap();
    }
    store
        .add_member(general.id, carol.id, Role::Moderator)
        .await
        .unwrap();
    let before = Utc::now() - Duration::milliseconds(1);
    store.ban(general.id, bob.id, alice.id).await.unwrap();
    let after = Utc::now();
    assert_eq!(
        standing(&*store, &general, &bob).await,
        Standing {
            role: None,
            banned: true
        }
    );
    assert_eq!(
        standing(&*store, &elsewhere, &bob).await.role,
        Some(Role::Moderator),
        "a ban is of one room"
    );
    assert!(!members(&*store, &general)
        .await
        .iter()
        .any(|(name, _)| name == "bob"));

    // Banned again, by someone else: the first ban stands as it was.
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    store.ban(general.id, bob.id, carol.id).await.unwrap();
    let bans = store.bans(general.id).await.unwrap();
    assert_eq!(bans.len(), 1);
    let ban = &bans[0];
    assert_eq!((&ban.user, &ban.by), (&bob, &alice));
    assert!(before <= ban.at && ban.at <= after, "{:?}", ban.at);
    assert_eq!(
        DateTime::from_timestamp_millis(ban.at.timestamp_millis()),
        Some(ban.at),
        "kept to the millisecond, as every time in the store"
    );
    assert!(store.bans(elsewhere.id).await.unwrap().is_empty());
    assert_eq!(
        store
            .add_member(general.id, bob.id, Role::Member)
            .await
            .unwrap(),
        Added::Banned
    );

    assert!(store.unban(general.id, bob.id).await.unwrap());
    assert!(!store.unban(general.id, bob.id).await.unwrap());
    assert!(store.bans(general.id).await.unwrap().is_empty());
    assert_eq!(
        standing(&*store, &general, &bob).await,
        Standing::default(),
        "unbanning is not adding back"
    );
    assert_eq!(
        store
            .add_member(general.id, bob.id, Role::Member)
            .await
            .unwrap(),
        Added::Added
    );
}

async fn racing_adds_and_bans_never_leave_a_banned_member(store: Arc<dyn Store>) {
    adds_racing_bans_never_leave_a_banned_member([store.clone(), store]).await;
}

#[tokio::test]
#[ignore = "needs TEST_DATABASE_URL"]
async fn postgres_two_stores_never_leave_a_banned_member() {
    crate::postgres_fixture::with_two_postgres_stores(adds_racing_bans_never_leave_a_banned_member)
        .await;
}

/// Each user is added on one store while banned on the other, all at once: whichever
/// comes first, every one of them ends banned and not a member.
async fn adds_racing_bans_never_leave_a_banned_member(stores: [Arc<dyn Store>; 2]) {
    let owner = user(&*stores[0], "owner").await;
    let rooms = [
        room(&*stores[0], &owner, "one").await,
        room(&*stores[0], &owner, "two").await,
    ];
    let mut users = Vec::new();
    for i in 0..40 {
        users.push(user(&*stores[0], &format!("user{i}")).await);
    }
    let races = users.iter().enumerate().flat_map(|(i, user)| {
        let room = rooms[i % 2].id;
        let (adder, banner) = (stores[i % 2].clone(), stores[(i + 1) % 2].clone());
        let (user, by) = (user.id, owner.id);
        [
            tokio::spawn(async move {
                adder.add_member(room, user, Role::Member).await.unwrap();
            }),
            tokio::spawn(async move { banner.ban(room, user, by).await.unwrap() }),
        ]
    });
    futures_util::future::join_all(races)
        .await
        .into_iter()
        .for_each(Result::unwrap);
    for (i, user) in users.iter().enumerate() {
        assert_eq!(
            standing(&*stores[1], &rooms[i % 2], user).await,
            Standing {
                role: None,
                banned: true
            },
            "{}",
            user.username
        );
    }
    for room in &rooms {
        assert_eq!(
            members(&*stores[1], room).await,
            [("owner".to_owned(), Role::Owner)]
        );
    }
}

/// PostgreSQL only: a server that answers reads but refuses writes (a standby after a
/// failover, or made read-only) is not ready.
#[tokio::test]
#[ignore = "needs TEST_DATABASE_URL"]
async fn postgres_read_only_is_not_ready() {
    use sqlx::Connection;
    let fixture = PgStoreFixture::make().await;
    let store = fixture.store.clone();
    let alice = user(&*store, "alice").await;
    let general = room(&*store, &alice, "general").await;
    store.ping().await.unwrap();
    let mut admin = sqlx::PgConnection::connect(&fixture.database.url)
        .await
        .unwrap();
    let set_read_only = |on: bool| {
        format!(
            "DO $$ BEGIN EXECUTE format('ALTER DATABASE %I SET default_transaction_read_only = {on}', current_database()); END $$"
        )
    };
    // New sessions pick the setting up; the store's pool reconnects after the kick.
    let kick = "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                WHERE datname = current_database() AND pid <> pg_backend_pid()";
    sqlx::query(&set_read_only(true))
        .execute(&mut admin)
        .await
        .unwrap();
    sqlx::query(kick).execute(&mut admin).await.unwrap();
    eventually("reads work", || store_reads(&store, &general)).await;
    assert!(
        matches!(store.ping().await, Err(StoreError::Unavailable(_))),
        "reads work, writes do not: not ready"
    );
    sqlx::query(&set_read_only(false))
        .execute(&mut admin)
        .await
        .unwrap();
    sqlx::query(kick).execute(&mut admin).await.unwrap();
    eventually("ready", || async { store.ping().await.is_ok() }).await;
}

async fn eventually<F: std::future::Future<Output = bool>>(
    what: &str,
    mut check: impl FnMut() -> F,
) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while std::time::Instant::now() < deadline {
        if check().await {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("never {what} again");
}

async fn store_reads(store: &Arc<dyn Store>, room: &Room) -> bool {
    store.messages(room, HistoryRange::Latest, 1).await.is_ok()
}

/// PostgreSQL only: while it is unreachable every call fails fast, and when it comes back
/// the same store works again.
mod postgres_outage {
    use std::time::{Duration, Instant};

    use natter::adapters::postgres::PgStore;
    use natter::ports::{Store, StoreError};

    use super::{message, room, user};
    use crate::fixtures::PortFixture;
    use crate::postgres_fixture::{address, with_address, PgStoreFixture, Proxy};

    /// Well before the chat service's own 5 s deadline.
    const PROMPTLY: Duration = Duration::from_millis(4500);

    async fn fails_promptly<T>(call: impl std::future::Future<Output = Result<T, StoreError>>) {
        let started = Instant::now();
        let outcome = tokio::time::timeout(Duration::from_secs(30), call)
            .await
            .expect("the call hung");
        assert!(
            matches!(outcome, Err(StoreError::Unavailable(_))),
            "expected unavailable"
        );
        assert!(started.elapsed() < PROMPTLY, "took {:?}", started.elapsed());
    }

    #[tokio::test]
    #[ignore = "needs TEST_DATABASE_URL"]
    async fn an_unreachable_postgres_fails_calls_promptly_and_the_store_recovers() {
        let fixture = PgStoreFixture::make().await;
        let proxy = Proxy::start(address(&fixture.database.url)).await;
        let url = with_address(&fixture.database.url, &proxy.addr.to_string());
        let store = PgStore::connect(&url).await.unwrap();
        let alice = user(&store, "alice").await;
        let general = room(&store, &alice, "general").await;
        store
            .append_message(message(&general, &alice, "before", None))
            .await
            .unwrap();

        proxy.go_silent();
        fails_promptly(store.ping()).await;
        fails_promptly(store.append_message(message(&general, &alice, "during", None))).await;
        fails_promptly(store.last_seq(general.id)).await;
        fails_promptly(PgStore::connect(&url)).await;

        proxy.restore();
        store.ping().await.expect("the pool reconnects by itself");
        let after = store
            .append_message(message(&general, &alice, "after", None))
            .await
            .unwrap();
        assert_eq!(after.message.seq.get(), 2, "the failed send left no gap");
        store.close().await;
    }
}
