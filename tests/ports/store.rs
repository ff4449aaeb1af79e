use std::collections::HashSet;
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use natter::domain::{
    Attention, ClientId, Emoji, HistoryRange, Message, MessageBody, NewMessage, Reaction, ReplyRef,
    Rev, Role, Room, RoomKind, RoomName, RoomScope, RoomSummary, Seq, Slug, User, Username,
};
use natter::ports::{
    Added, Changed, DmPair, MessageChange, NewRoom, Standing, Store, StoreError,
    MAX_EMOJI_PER_MESSAGE,
};

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
        rev_rises_by_one_with_every_change_and_only_then,
        concurrent_changes_and_sends_leave_revs_without_gap,
        a_message_takes_at_most_20_emoji,
        a_deleted_message_is_a_tombstone_that_changes_no_more,
        only_the_rooms_own_messages_change,
        a_reply_shows_its_target_as_it_is_now,
        changes_are_each_changed_message_once_in_rev_order,
        history_carries_reactions_and_replies,
        read_markers_start_at_joining_follow_sends_and_never_move_back,
        unread_and_mentions_are_counted_exactly,
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
        .list_rooms(viewer.id, scope, offset, limit, true)
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
        reply_to: None,
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
        .list_rooms(alice.id, RoomScope::Visible, 0, 10, true)
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
        .list_rooms(alice.id, RoomScope::Visible, 0, 500, true)
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
    let page = |offset, limit| store.list_rooms(alice.id, RoomScope::Visible, offset, limit, true);
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
        .list_rooms(alice.id, RoomScope::Visible, 0, 500, true)
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
            .list_rooms(alice.id, RoomScope::Joined, 0, 10, true)
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

// ---- CONTRACT §10: changes to messages and `rev` ----

async fn send(store: &dyn Store, room: &Room, user: &User, body: &str) -> Message {
    store
        .append_message(message(room, user, body, None))
        .await
        .unwrap()
        .message
}

/// `user`'s message to `room` replying to `target`.
fn reply(room: &Room, user: &User, body: &str, target: &Message) -> NewMessage {
    NewMessage {
        reply_to: Some(ReplyRef::to(target)),
        ..message(room, user, body, None)
    }
}

fn emoji(raw: &str) -> Emoji {
    Emoji::parse(raw).unwrap()
}

async fn edit(store: &dyn Store, room: &Room, target: &Message, body: &str) -> Changed {
    let body = MessageBody::parse(body).unwrap();
    let at = Utc::now();
    store
        .change_message(room, target.id, MessageChange::Edit { body: &body, at })
        .await
        .unwrap()
}

async fn delete(store: &dyn Store, room: &Room, target: &Message, by: &User) -> Changed {
    store
        .change_message(room, target.id, MessageChange::Delete { by: by.id })
        .await
        .unwrap()
}

async fn react(store: &dyn Store, room: &Room, target: &Message, by: &User, e: &str) -> Changed {
    let emoji = emoji(e);
    let change = MessageChange::React {
        user: by.id,
        emoji: &emoji,
    };
    store.change_message(room, target.id, change).await.unwrap()
}

async fn unreact(store: &dyn Store, room: &Room, target: &Message, by: &User, e: &str) -> Changed {
    let emoji = emoji(e);
    let change = MessageChange::Unreact {
        user: by.id,
        emoji: &emoji,
    };
    store.change_message(room, target.id, change).await.unwrap()
}

/// The message a change returned, which must have changed it.
#[track_caller]
fn changed(outcome: Changed) -> Message {
    match outcome {
        Changed::Changed(message) => message,
        other => panic!("expected a change, got {other:?}"),
    }
}

#[track_caller]
fn unchanged(outcome: Changed) -> Message {
    match outcome {
        Changed::Unchanged(message) => message,
        other => panic!("expected no change, got {other:?}"),
    }
}

async fn last_rev(store: &dyn Store, room: &Room) -> i64 {
    store.last_rev(room.id).await.unwrap().get()
}

async fn current(store: &dyn Store, room: &Room, of: &Message) -> Message {
    store.message(room, of.id).await.unwrap().unwrap()
}

/// `(emoji, users)` of a message's reactions, in its order.
fn reactions(message: &Message) -> Vec<(&str, Vec<&str>)> {
    message
        .reactions
        .iter()
        .map(|r| {
            (
                r.emoji.as_str(),
                r.users.iter().map(String::as_str).collect(),
            )
        })
        .collect()
}

/// Sends, edits, deletes and reactions each take the room's next rev, on the message
/// they change too; what changes nothing (the same body, a reaction there already or
/// absent, a deleted or unknown message) takes none. Each room counts its own.
async fn rev_rises_by_one_with_every_change_and_only_then(store: Arc<dyn Store>) {
    let store = &*store;
    let alice = user(store, "alice").await;
    let bob = user(store, "bob").await;
    let general = room(store, &alice, "general").await;
    let other = room(store, &alice, "other").await;
    assert_eq!(last_rev(store, &general).await, 0);

    let first = send(store, &general, &alice, "first").await;
    let second = send(store, &general, &bob, "second").await;
    assert_eq!((first.rev.get(), second.rev.get()), (1, 2));
    assert_eq!(send(store, &other, &alice, "elsewhere").await.rev.get(), 1);
    assert_eq!(last_rev(store, &general).await, 2);

    let edited = changed(edit(store, &general, &first, "first, edited").await);
    assert_eq!(
        (edited.rev.get(), edited.body.as_str()),
        (3, "first, edited")
    );
    assert!(edited.edited_at.is_some());
    assert_eq!(edited.seq, first.seq, "an edit keeps the message's place");
    let again = unchanged(edit(store, &general, &first, "first, edited").await);
    assert_eq!(again, edited);
    assert_eq!(last_rev(store, &general).await, 3);

    assert_eq!(
        changed(react(store, &general, &second, &bob, "👍").await)
            .rev
            .get(),
        4
    );
    assert_eq!(
        unchanged(react(store, &general, &second, &bob, "👍").await)
            .rev
            .get(),
        4
    );
    assert_eq!(
        changed(unreact(store, &general, &second, &bob, "👍").await)
            .rev
            .get(),
        5
    );
    assert_eq!(
        unchanged(unreact(store, &general, &second, &bob, "👍").await)
            .rev
            .get(),
        5
    );
    assert_eq!(last_rev(store, &general).await, 5);

    assert_eq!(
        changed(delete(store, &general, &first, &bob).await)
            .rev
            .get(),
        6
    );
    assert_eq!(
        delete(store, &general, &first, &bob).await,
        Changed::Deleted
    );
    assert_eq!(
        edit(store, &general, &first, "back").await,
        Changed::Deleted
    );
    assert_eq!(last_rev(store, &general).await, 6);

    let third = send(store, &general, &alice, "third").await;
    assert_eq!((third.seq.get(), third.rev.get()), (3, 7));
    assert_eq!(store.last_seq(general.id).await.unwrap().get(), 3);
    assert_eq!(last_rev(store, &general).await, 7);
    assert_eq!(last_rev(store, &other).await, 1);
    // What each change returned is what is stored.
    assert_eq!(current(store, &general, &second).await.rev.get(), 5);
    assert_eq!(current(store, &general, &first).await.rev.get(), 6);
}

async fn concurrent_changes_and_sends_leave_revs_without_gap(store: Arc<dyn Store>) {
    changes_and_sends_racing_on_one_room([store.clone(), store]).await;
}

#[tokio::test]
#[ignore = "needs TEST_DATABASE_URL"]
async fn postgres_two_stores_change_one_room_without_gaps() {
    crate::postgres_fixture::with_two_postgres_stores(changes_and_sends_racing_on_one_room).await;
}

/// Two SQLite stores on one file (two processes' worth): two writers, one write lock.
#[tokio::test]
async fn sqlite_two_stores_change_one_room_without_gaps() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("shared.db").display());
    let first = natter::adapters::sqlite::SqliteStore::connect(&url)
        .await
        .unwrap();
    let second = natter::adapters::sqlite::SqliteStore::connect(&url)
        .await
        .unwrap();
    changes_and_sends_racing_on_one_room([Arc::new(first), Arc::new(second)]).await;
}

/// Sends, edits, reactions and their removal race on one room from many tasks, on
/// `stores` in turn, twenty of them the same reaction, one a delete, and 21 distinct
/// emoji on one message: the revs acked are 1..N, each once, N is the room's rev, and
/// each message carries the last rev acked for it. The repeated reaction is stored once;
/// the deleted message stays a tombstone whatever edit raced it; exactly one emoji is
/// refused. (The revs alone would hold without the room lock; these would not.)
async fn changes_and_sends_racing_on_one_room(stores: [Arc<dyn Store>; 2]) {
    let alice = user(&*stores[0], "alice").await;
    let bob = user(&*stores[0], "bob").await;
    let general = room(&*stores[0], &alice, "general").await;
    let mut seeded = Vec::new();
    for i in 0..5 {
        seeded.push(send(&*stores[0], &general, &alice, &format!("seed {i}")).await);
    }
    let crowded = send(&*stores[0], &general, &alice, "crowded").await;
    let crowd = EMOJI.iter().enumerate().map(|(j, e)| {
        let (store, general, crowded, alice) = (
            stores[j % 2].clone(),
            general.clone(),
            crowded.clone(),
            alice.clone(),
        );
        tokio::spawn(async move {
            match react(&*store, &general, &crowded, &alice, e).await {
                Changed::Changed(m) => Some((m.id, m.rev.get())),
                Changed::TooManyReactions => None,
                other => panic!("{other:?}"),
            }
        })
    });
    let racers = (0..100).map(|i| {
        let store = stores[i % 2].clone();
        let (general, target, fire) = (
            general.clone(),
            seeded[i / 5 % 5].clone(),
            seeded[1].clone(),
        );
        let who = if i % 3 == 0 {
            alice.clone()
        } else {
            bob.clone()
        };
        let bob = bob.clone();
        tokio::spawn(async move {
            let store = &*store;
            // (message id, rev) when it changed something.
            let outcome = match i % 5 {
                0 if i == 50 => delete(store, &general, &target, &who).await,
                0 => {
                    let sent = send(store, &general, &who, &format!("sent {i}")).await;
                    Changed::Changed(sent)
                }
                1 => edit(store, &general, &target, &format!("edit {i}")).await,
                2 => react(store, &general, &target, &who, ["👍", "🎉"][i % 2]).await,
                3 => unreact(store, &general, &target, &who, ["👍", "🎉"][i % 2]).await,
                _ => react(store, &general, &fire, &bob, "🔥").await,
            };
            match outcome {
                Changed::Changed(m) => Some((m.id, m.rev.get())),
                Changed::Unchanged(_) | Changed::Deleted => None,
                other => panic!("{other:?}"),
            }
        })
    });
    let racers: Vec<_> = crowd.chain(racers).collect();
    let acked: Vec<(i64, i64)> = tokio::time::timeout(
        std::time::Duration::from_secs(60),
        futures_util::future::join_all(racers),
    )
    .await
    .expect("no deadlock")
    .into_iter()
    .filter_map(Result::unwrap)
    .collect();
    let mut revs: Vec<i64> = acked.iter().map(|&(_, rev)| rev).collect();
    revs.extend(seeded.iter().map(|m| m.rev.get()));
    revs.push(crowded.rev.get());
    revs.sort_unstable();
    let n = revs.len() as i64;
    assert_eq!(revs, (1..=n).collect::<Vec<_>>(), "no gap, no duplicate");
    for store in &stores {
        assert_eq!(last_rev(&**store, &general).await, n);
    }
    let changes = stores[1]
        .changes(&general, Rev::ZERO, Seq::MAX, 1000)
        .await
        .unwrap();
    assert_eq!(changes.len(), seeded.len() + 1 + 19, "each message once");
    let mut all = acked.clone();
    all.extend(seeded.iter().chain([&crowded]).map(|m| (m.id, m.rev.get())));
    for message in &changes {
        let last_acked = all
            .iter()
            .filter(|&&(id, _)| id == message.id)
            .map(|&(_, rev)| rev)
            .max();
        assert_eq!(Some(message.rev.get()), last_acked, "{message:?}");
    }
    let crowded = current(&*stores[1], &general, &crowded).await;
    assert_eq!(crowded.reactions.len(), MAX_EMOJI_PER_MESSAGE);
    let deleted = current(&*stores[1], &general, &seeded[0]).await;
    assert_eq!(
        (
            deleted.body.as_str(),
            deleted.is_deleted(),
            deleted.reactions.len()
        ),
        ("", true, 0),
        "no edit or reaction outlives the delete"
    );
    let fire = current(&*stores[1], &general, &seeded[1]).await;
    assert!(
        reactions(&fire).contains(&("🔥", vec!["bob"])),
        "one reaction however often it is made: {:?}",
        fire.reactions
    );
}

/// Twenty-one distinct emoji, as CONTRACT §10 counts them.
const EMOJI: [&str; 21] = [
    "😀", "😁", "😂", "🤣", "😃", "😄", "😅", "😆", "😉", "😊", "😋", "😎", "😍", "😘", "🥰", "😗",
    "😙", "😚", "🙂", "🤗", "🤩",
];

async fn a_message_takes_at_most_20_emoji(store: Arc<dyn Store>) {
    let store = &*store;
    let alice = user(store, "alice").await;
    let bob = user(store, "bob").await;
    let general = room(store, &alice, "general").await;
    let target = send(store, &general, &alice, "react to me").await;
    for e in &EMOJI[..MAX_EMOJI_PER_MESSAGE] {
        changed(react(store, &general, &target, &alice, e).await);
    }
    let rev = last_rev(store, &general).await;
    let one_more = EMOJI[MAX_EMOJI_PER_MESSAGE];
    for who in [&alice, &bob] {
        assert_eq!(
            react(store, &general, &target, who, one_more).await,
            Changed::TooManyReactions
        );
    }
    assert_eq!(
        last_rev(store, &general).await,
        rev,
        "a refusal takes no rev"
    );
    // An emoji already there is not a new one.
    let joined = changed(react(store, &general, &target, &bob, EMOJI[0]).await);
    assert_eq!(reactions(&joined)[0], (EMOJI[0], vec!["alice", "bob"]));
    // Once one emoji is gone, another may come; it comes last.
    changed(unreact(store, &general, &target, &alice, EMOJI[5]).await);
    let replaced = changed(react(store, &general, &target, &bob, one_more).await);
    let mut expected: Vec<&str> = EMOJI.to_vec();
    expected.remove(5);
    let shown: Vec<&str> = replaced
        .reactions
        .iter()
        .map(|r| r.emoji.as_str())
        .collect();
    assert_eq!(shown, expected);
    assert_eq!(current(store, &general, &target).await, replaced);
}

/// CONTRACT §10: a deleted message keeps its place with no text and no reactions, and
/// nothing about it changes any more.
async fn a_deleted_message_is_a_tombstone_that_changes_no_more(store: Arc<dyn Store>) {
    let store = &*store;
    let alice = user(store, "alice").await;
    let bob = user(store, "bob").await;
    let general = room(store, &alice, "general").await;
    let target = send(store, &general, &alice, "regrettable").await;
    let after = send(store, &general, &alice, "after").await;
    changed(react(store, &general, &target, &bob, "👍").await);
    let tombstone = changed(delete(store, &general, &target, &bob).await);
    assert!(tombstone.is_deleted());
    assert_eq!(
        (
            tombstone.body.as_str(),
            tombstone.deleted_by.as_deref(),
            tombstone.seq,
            tombstone.reactions.len()
        ),
        ("", Some("bob"), target.seq, 0)
    );
    let rev = last_rev(store, &general).await;
    assert_eq!(
        edit(store, &general, &target, "again").await,
        Changed::Deleted
    );
    assert_eq!(
        react(store, &general, &target, &bob, "🎉").await,
        Changed::Deleted
    );
    assert_eq!(
        unreact(store, &general, &target, &bob, "👍").await,
        Changed::Deleted
    );
    assert_eq!(
        delete(store, &general, &target, &alice).await,
        Changed::Deleted
    );
    assert_eq!(last_rev(store, &general).await, rev);
    assert_eq!(current(store, &general, &target).await, tombstone);
    let history = store
        .messages(&general, HistoryRange::Latest, 10)
        .await
        .unwrap();
    assert_eq!(history, [tombstone, after], "seq keeps no gap");
}

/// A message of another room, or no message at all, is `UnknownMessage`, and stays as it
/// was.
async fn only_the_rooms_own_messages_change(store: Arc<dyn Store>) {
    let store = &*store;
    let alice = user(store, "alice").await;
    let general = room(store, &alice, "general").await;
    let other = room(store, &alice, "other").await;
    send(store, &general, &alice, "here").await;
    let elsewhere = send(store, &other, &alice, "there").await;
    let ghost = Message {
        id: elsewhere.id + 1000,
        ..elsewhere.clone()
    };
    for target in [&elsewhere, &ghost] {
        assert_eq!(
            edit(store, &general, target, "x").await,
            Changed::UnknownMessage
        );
        assert_eq!(
            react(store, &general, target, &alice, "👍").await,
            Changed::UnknownMessage
        );
        assert_eq!(
            unreact(store, &general, target, &alice, "👍").await,
            Changed::UnknownMessage
        );
        assert_eq!(
            delete(store, &general, target, &alice).await,
            Changed::UnknownMessage
        );
        assert_eq!(store.message(&general, target.id).await.unwrap(), None);
    }
    assert_eq!(current(store, &other, &elsewhere).await, elsewhere);
    assert_eq!(last_rev(store, &general).await, 1);
    assert_eq!(last_rev(store, &other).await, 1);
}

/// A reply shows the first 100 characters of its target's current body: after an edit,
/// the new one; after a delete, none, and that it was deleted.
async fn a_reply_shows_its_target_as_it_is_now(store: Arc<dyn Store>) {
    let store = &*store;
    let alice = user(store, "alice").await;
    let bob = user(store, "bob").await;
    let general = room(store, &alice, "general").await;
    let long = format!("{}{}", "é".repeat(60), "🎉".repeat(60));
    let target = send(store, &general, &bob, &long).await;
    let answer = store
        .append_message(NewMessage {
            client_id: Some(ClientId::parse("r1").unwrap()),
            ..reply(&general, &alice, "indeed", &target)
        })
        .await
        .unwrap()
        .message;
    let expected = ReplyRef {
        id: target.id,
        seq: target.seq,
        username: "bob".into(),
        excerpt: format!("{}{}", "é".repeat(60), "🎉".repeat(40)),
        deleted: false,
    };
    assert_eq!(answer.reply_to.as_ref(), Some(&expected));
    assert_eq!(current(store, &general, &answer).await, answer);

    changed(edit(store, &general, &target, "shorter now").await);
    let after_edit = current(store, &general, &answer).await;
    let shown = after_edit.reply_to.unwrap();
    assert_eq!(
        (shown.excerpt.as_str(), shown.deleted),
        ("shorter now", false)
    );

    changed(delete(store, &general, &target, &bob).await);
    let tombstone = ReplyRef {
        excerpt: String::new(),
        deleted: true,
        ..expected
    };
    let history = store
        .messages(&general, HistoryRange::Latest, 10)
        .await
        .unwrap();
    assert_eq!(history[1].reply_to.as_ref(), Some(&tombstone));
    let found = store
        .find_by_client_id(alice.id, "r1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.reply_to, Some(tombstone.clone()));
    assert_eq!(history[0].reply_to, None);

    // `reply_refs` (what the chat rules resolve cached replies with) agrees, and a message
    // of another room is not one of this room's targets.
    let edited = send(store, &general, &bob, "still here").await;
    changed(edit(store, &general, &edited, "still here, edited").await);
    let elsewhere = room(store, &bob, "elsewhere").await;
    let other = send(store, &elsewhere, &bob, "not in general").await;
    let mut refs = store
        .reply_refs(&general, &[edited.id, target.id, other.id, i64::MAX])
        .await
        .unwrap();
    refs.sort_by_key(|to| to.id);
    let edited_now = ReplyRef {
        excerpt: "still here, edited".into(),
        ..ReplyRef::to(&edited)
    };
    assert_eq!(refs, vec![tombstone, edited_now]);
    assert_eq!(store.reply_refs(&general, &[]).await.unwrap(), vec![]);
}

/// `changes`: the current state of each message changed after a rev, once, in rev
/// order, within `up_to` and `limit`.
async fn changes_are_each_changed_message_once_in_rev_order(store: Arc<dyn Store>) {
    let store = &*store;
    let alice = user(store, "alice").await;
    let general = room(store, &alice, "general").await;
    let mut sent = Vec::new();
    for i in 1..=6 {
        sent.push(send(store, &general, &alice, &format!("m{i}")).await);
    }
    for body in ["m2 once", "m2 twice", "m2 thrice"] {
        changed(edit(store, &general, &sent[1], body).await);
    }
    changed(react(store, &general, &sent[3], &alice, "👍").await);
    changed(delete(store, &general, &sent[0], &alice).await);
    changed(edit(store, &general, &sent[5], "m6 edited").await);
    assert_eq!(last_rev(store, &general).await, 12);

    let general = &general;
    let changes = |after: i64, up_to: i64, limit: u32| async move {
        store
            .changes(
                general,
                Rev::new(after).unwrap(),
                Seq::new(up_to).unwrap(),
                limit,
            )
            .await
            .unwrap()
    };
    let revs = |messages: &[Message]| -> Vec<(i64, i64)> {
        messages
            .iter()
            .map(|m| (m.seq.get(), m.rev.get()))
            .collect()
    };
    let since_sends = changes(6, i64::MAX, 100).await;
    assert_eq!(revs(&since_sends), [(2, 9), (4, 10), (1, 11), (6, 12)]);
    assert_eq!(since_sends[0].body, "m2 thrice", "the latest state, once");
    assert!(since_sends[2].is_deleted());
    for message in &since_sends {
        assert_eq!(&current(store, general, message).await, message);
    }
    assert_eq!(
        revs(&changes(0, i64::MAX, 100).await),
        [(3, 3), (5, 5), (2, 9), (4, 10), (1, 11), (6, 12)]
    );
    assert_eq!(revs(&changes(6, 5, 100).await), [(2, 9), (4, 10), (1, 11)]);
    assert_eq!(revs(&changes(6, 5, 2).await), [(2, 9), (4, 10)]);
    assert_eq!(revs(&changes(10, 5, 2).await), [(1, 11)]);
    assert!(changes(12, i64::MAX, 100).await.is_empty());
}

/// History, `message` and `find_by_client_id` return reactions (each emoji once, in
/// order of its first standing reaction, its users sorted) and replies.
async fn history_carries_reactions_and_replies(store: Arc<dyn Store>) {
    let store = &*store;
    let alice = user(store, "alice").await;
    let bob = user(store, "bob").await;
    // Sorted as Rust sorts strings on every store, not by a database's collation.
    let carol = user(store, "Carol").await;
    let general = room(store, &alice, "general").await;
    let first = send(store, &general, &alice, "first").await;
    let second = store
        .append_message(NewMessage {
            client_id: Some(ClientId::parse("c2").unwrap()),
            ..reply(&general, &bob, "second", &first)
        })
        .await
        .unwrap()
        .message;
    changed(react(store, &general, &first, &bob, "🎉").await);
    changed(react(store, &general, &first, &alice, "👍").await);
    changed(react(store, &general, &first, &carol, "🎉").await);
    changed(react(store, &general, &second, &alice, "❤️").await);

    let history = store
        .messages(&general, HistoryRange::Latest, 10)
        .await
        .unwrap();
    assert_eq!(
        reactions(&history[0]),
        [("🎉", vec!["Carol", "bob"]), ("👍", vec!["alice"])]
    );
    assert_eq!(
        history[1].reactions,
        [Reaction {
            emoji: "❤️".into(),
            users: vec!["alice".into()]
        }]
    );
    assert_eq!(history[1].reply_to.as_ref().map(|r| r.id), Some(first.id));
    assert_eq!(history[0], current(store, &general, &first).await);
    assert_eq!(
        Some(&history[1]),
        store
            .find_by_client_id(bob.id, "c2")
            .await
            .unwrap()
            .as_ref()
    );
    assert_eq!(
        store
            .messages(&general, HistoryRange::After(Seq::ZERO), 10)
            .await
            .unwrap(),
        history
    );

    // The order is that of the reactions standing now.
    changed(unreact(store, &general, &first, &bob, "🎉").await);
    changed(unreact(store, &general, &first, &carol, "🎉").await);
    changed(react(store, &general, &first, &bob, "🎉").await);
    assert_eq!(
        reactions(&current(store, &general, &first).await),
        [("👍", vec!["alice"]), ("🎉", vec!["bob"])]
    );
}

// ---- a delete leaves no trace ----

/// A message with a unique text is edited (the first text must go too), replied to,
/// reacted to, then deleted. `traces` counts what the store still holds of a text; it
/// must find the text before the delete, so the check can fail, and nothing after.
async fn a_delete_leaves_no_trace<F, Fut>(store: &dyn Store, traces: F)
where
    F: Fn(String) -> Fut,
    Fut: std::future::Future<Output = usize>,
{
    let alice = user(store, "alice").await;
    let bob = user(store, "bob").await;
    let general = room(store, &alice, "general").await;
    let (first, second) = ("hush-first-4f1c9e", "hush-second-8b2d7a");
    let target = store
        .append_message(message(&general, &alice, first, Some("c-hush")))
        .await
        .unwrap()
        .message;
    changed(edit(store, &general, &target, second).await);
    store
        .append_message(reply(&general, &bob, "what?", &target))
        .await
        .unwrap();
    changed(react(store, &general, &target, &bob, "👀").await);
    assert!(traces(second.into()).await > 0, "the check finds the text");
    assert!(traces("👀".into()).await > 0, "and the reaction");

    changed(delete(store, &general, &target, &alice).await);
    for gone in [first, second, "👀"] {
        assert_eq!(traces(gone.into()).await, 0, "{gone} is still stored");
    }
}

#[tokio::test]
async fn memory_a_delete_leaves_no_trace() {
    let store = Arc::new(natter::adapters::memory::MemoryStore::new());
    let dump = || format!("{store:?}");
    a_delete_leaves_no_trace(&*store, |text| {
        let found = dump().matches(&text).count();
        async move { found }
    })
    .await;
}

#[tokio::test]
async fn sqlite_a_delete_leaves_no_trace() {
    use sqlx::Row;
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("natter.db").display());
    let store = natter::adapters::sqlite::SqliteStore::connect(&url)
        .await
        .unwrap();
    let reader = sqlx::SqlitePool::connect(&url).await.unwrap();
    a_delete_leaves_no_trace(&store, |text| {
        let reader = reader.clone();
        async move {
            let tables: Vec<String> =
                sqlx::query_scalar("SELECT name FROM sqlite_master WHERE type = 'table'")
                    .fetch_all(&reader)
                    .await
                    .unwrap();
            let mut found = 0;
            for table in tables {
                let columns = sqlx::query(&format!("PRAGMA table_info(\"{table}\")"))
                    .fetch_all(&reader)
                    .await
                    .unwrap();
                for column in columns {
                    let column: String = column.get("name");
                    let sql = format!(
                        "SELECT count(*) FROM \"{table}\" WHERE instr(CAST(\"{column}\" AS TEXT), ?) > 0"
                    );
                    let n: i64 = sqlx::query_scalar(&sql)
                        .bind(&text)
                        .fetch_one(&reader)
                        .await
                        .unwrap();
                    found += n as usize;
                }
            }
            found
        }
    })
    .await;
}

#[tokio::test]
#[ignore = "needs TEST_DATABASE_URL"]
async fn postgres_a_delete_leaves_no_trace() {
    let fixture = PgStoreFixture::make().await;
    let reader = sqlx::PgPool::connect(&fixture.database.url).await.unwrap();
    a_delete_leaves_no_trace(&*fixture.store, |text| {
        let reader = reader.clone();
        async move {
            let tables: Vec<String> = sqlx::query_scalar(
                "SELECT table_name::text FROM information_schema.tables \
                 WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'",
            )
            .fetch_all(&reader)
            .await
            .unwrap();
            let mut found = 0;
            for table in tables {
                // A whole row as text: every column of it.
                let sql =
                    format!("SELECT count(*) FROM \"{table}\" t WHERE strpos(t::text, $1) > 0");
                let n: i64 = sqlx::query_scalar(&sql)
                    .bind(&text)
                    .fetch_one(&reader)
                    .await
                    .unwrap();
                found += n as usize;
            }
            found
        }
    })
    .await;
}

fn attention(read: i64, last: i64, unread: u64, mentions: u64) -> Option<Attention> {
    Some(Attention {
        read_seq: Seq::new(read).unwrap(),
        last_seq: Seq::new(last).unwrap(),
        unread,
        mentions,
    })
}

/// CONTRACT §11's markers: a new member has read the room so far; a sender has read it up
/// to what they send; `mark_read` never moves back; a non-member has no marker.
async fn read_markers_start_at_joining_follow_sends_and_never_move_back(store: Arc<dyn Store>) {
    let store = &*store;
    let alice = user(store, "alice").await;
    let bob = user(store, "bob").await;
    let carol = user(store, "carol").await;
    let general = room(store, &alice, "general").await;
    assert_eq!(
        store.attention(general.id, alice.id).await.unwrap(),
        attention(0, 0, 0, 0)
    );
    send(store, &general, &alice, "one").await;
    send(store, &general, &alice, "two").await;
    assert_eq!(
        store
            .add_member(general.id, bob.id, Role::Member)
            .await
            .unwrap(),
        Added::Added
    );
    assert_eq!(
        store.attention(general.id, bob.id).await.unwrap(),
        attention(2, 2, 0, 0)
    );
    send(store, &general, &alice, "three").await;
    send(store, &general, &alice, "four").await;
    assert_eq!(
        store.attention(general.id, bob.id).await.unwrap(),
        attention(2, 4, 2, 0)
    );
    let marked = store
        .mark_read(general.id, bob.id, Seq::new(3).unwrap())
        .await
        .unwrap();
    assert_eq!(marked, attention(3, 4, 1, 0));
    let back = store
        .mark_read(general.id, bob.id, Seq::new(1).unwrap())
        .await
        .unwrap();
    assert_eq!(back, attention(3, 4, 1, 0), "a marker never moves back");
    send(store, &general, &bob, "five").await;
    assert_eq!(
        store.attention(general.id, bob.id).await.unwrap(),
        attention(5, 5, 0, 0)
    );
    // A member who leaves and comes back starts again from the room's last message.
    assert!(store.remove_member(general.id, bob.id).await.unwrap());
    assert_eq!(store.attention(general.id, bob.id).await.unwrap(), None);
    send(store, &general, &alice, "six").await;
    store
        .add_member(general.id, bob.id, Role::Member)
        .await
        .unwrap();
    assert_eq!(
        store.attention(general.id, bob.id).await.unwrap(),
        attention(6, 6, 0, 0)
    );
    // No marker for a non-member, whatever they ask.
    assert_eq!(
        store
            .mark_read(general.id, carol.id, Seq::new(6).unwrap())
            .await
            .unwrap(),
        None
    );
    // The room list carries each of the viewer's rooms' counts, and none for others.
    let listed = store
        .list_rooms(bob.id, RoomScope::Visible, 0, 10, true)
        .await
        .unwrap();
    assert_eq!(listed[0].attention, attention(6, 6, 0, 0));
    let listed = store
        .list_rooms(carol.id, RoomScope::Visible, 0, 10, true)
        .await
        .unwrap();
    assert_eq!(listed[0].attention, None);
    // A caller that shows no counts does not pay for them.
    let listed = store
        .list_rooms(bob.id, RoomScope::Visible, 0, 10, false)
        .await
        .unwrap();
    assert_eq!(
        (listed[0].role, listed[0].attention),
        (Some(Role::Member), None)
    );
}

/// Unread: the messages after the marker, not deleted, not the member's own; mentions:
/// those of them that mention the member. A DM's or private room's mention names only
/// members; the message object lists who it mentions.
async fn unread_and_mentions_are_counted_exactly(store: Arc<dyn Store>) {
    let store = &*store;
    let alice = user(store, "alice").await;
    let bob = user(store, "Bob").await;
    let carol = user(store, "carol").await;
    let general = room(store, &alice, "general").await;
    store
        .add_member(general.id, bob.id, Role::Member)
        .await
        .unwrap();
    let hello = send(store, &general, &alice, "hi @bob and @carol and @alice").await;
    assert_eq!(
        hello.mentions,
        vec!["Bob", "carol"],
        "canonical names, sorted, not the sender"
    );
    let plain = send(store, &general, &alice, "a@bob.com").await;
    assert!(plain.mentions.is_empty());
    send(store, &general, &bob, "my own").await;
    let later = send(store, &general, &alice, "@BOB again").await;
    // bob's send moved his marker past hello and plain.
    assert_eq!(
        store.attention(general.id, bob.id).await.unwrap(),
        attention(3, 4, 1, 1)
    );
    store
        .mark_read(general.id, bob.id, Seq::new(0).unwrap())
        .await
        .unwrap();
    assert_eq!(
        store.attention(general.id, alice.id).await.unwrap(),
        attention(4, 4, 0, 0)
    );

    // An edit that adds a mention counts it; one that removes it takes it out; a delete
    // takes the message and its mention out.
    changed(edit(store, &general, &plain, "@bob, a@bob.com").await);
    let history = store
        .messages(&general, HistoryRange::Latest, 10)
        .await
        .unwrap();
    assert_eq!(history[1].mentions, vec!["Bob"]);
    changed(edit(store, &general, &later, "nobody now").await);
    assert_eq!(
        store.attention(general.id, bob.id).await.unwrap(),
        attention(3, 4, 1, 0)
    );
    changed(delete(store, &general, &later, &alice).await);
    assert_eq!(
        store.attention(general.id, bob.id).await.unwrap(),
        attention(3, 4, 0, 0)
    );
    let tombstone = store.message(&general, later.id).await.unwrap().unwrap();
    assert!(tombstone.mentions.is_empty());

    // A private room's mention names only its members.
    let (private, _) = create(store, &alice, "plans", RoomKind::Private).await;
    store
        .add_member(private.id, bob.id, Role::Member)
        .await
        .unwrap();
    let said = send(store, &private, &alice, "@carol @bob").await;
    assert_eq!(said.mentions, vec!["Bob"]);
    assert_eq!(
        store.attention(private.id, bob.id).await.unwrap(),
        attention(0, 1, 1, 1)
    );
    assert_eq!(store.attention(private.id, carol.id).await.unwrap(), None);
}
