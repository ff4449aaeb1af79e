use std::collections::HashSet;
use std::sync::Arc;

use chrono::{Duration, Utc};
use natter::domain::{
    ClientId, HistoryRange, MessageBody, NewMessage, Room, RoomKind, RoomName, Seq, User, Username,
};
use natter::ports::{Store, StoreError};

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
    }
}

async fn user(store: &dyn Store, name: &str) -> User {
    store
        .create_user(&Username::parse(name).unwrap(), "$argon2id$dummy")
        .await
        .unwrap()
}

async fn room(store: &dyn Store, name: &str) -> Room {
    let name = RoomName::parse(name).unwrap();
    store.create_room(&name.slug(), &name).await.unwrap().0
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
    let name = RoomName::parse("General").unwrap();
    let (first, created) = store.create_room(&name.slug(), &name).await.unwrap();
    assert!(created);
    let other_name = RoomName::parse("general!").unwrap();
    let (second, created) = store
        .create_room(&other_name.slug(), &other_name)
        .await
        .unwrap();
    assert!(!created);
    assert_eq!(second, first);
    assert_eq!(second.name, "General");
    // Every room of CONTRACT §3 is public, read back as such from every path.
    assert_eq!(first.kind, RoomKind::Public);
    assert_eq!(store.find_room(&name.slug()).await.unwrap(), Some(first));
    let listed = store.list_rooms(0, 10).await.unwrap();
    assert!(listed
        .iter()
        .all(|summary| summary.room.kind == RoomKind::Public));
}

async fn seq_has_no_gaps_under_concurrent_appends(store: Arc<dyn Store>) {
    let alice = user(&*store, "alice").await;
    let rooms = [room(&*store, "one").await, room(&*store, "two").await];
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
        rooms.push(room(&*stores[0], name).await);
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
    let general = room(&*store, "general").await;
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
    let rooms = [room(&*store, "one").await, room(&*store, "two").await];
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
    let general = room(&*store, "general").await;
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
    let general = room(&*store, "general").await;
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
    let quiet = room(&*store, "quiet").await;
    let busy = room(&*store, "busy").await;
    let before = Utc::now() - Duration::seconds(1);
    store
        .append_message(message(&busy, &alice, "hi", None))
        .await
        .unwrap();
    let rooms = store.list_rooms(0, 500).await.unwrap();
    let find = |r: &Room| rooms.iter().find(|s| s.room == *r).unwrap().clone();
    assert!(find(&quiet).last_message_at.is_none());
    assert!(find(&busy).last_message_at.unwrap() > before);
}

/// Recency is the last message, or the creation for a room without one; pages do not
/// overlap.
async fn the_room_list_is_most_recently_active_first_in_pages(store: Arc<dyn Store>) {
    let alice = user(&*store, "alice").await;
    let old = room(&*store, "old but talked in").await;
    let _middle = room(&*store, "created second").await;
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let _newest = room(&*store, "created last").await;
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    store
        .append_message(message(&old, &alice, "hi", None))
        .await
        .unwrap();
    let names = |rooms: Vec<natter::domain::RoomSummary>| -> Vec<String> {
        rooms.into_iter().map(|r| r.room.name).collect()
    };
    let all = names(store.list_rooms(0, 10).await.unwrap());
    assert_eq!(all, ["old but talked in", "created last", "created second"]);
    assert_eq!(names(store.list_rooms(0, 2).await.unwrap()), all[..2]);
    assert_eq!(names(store.list_rooms(2, 2).await.unwrap()), all[2..]);
    assert!(store.list_rooms(3, 2).await.unwrap().is_empty());
}

/// The time an ack carries is the time history, the room list and sessions read back: a
/// client compares them.
async fn times_read_back_as_written_to_the_millisecond(store: Arc<dyn Store>) {
    let alice = user(&*store, "alice").await;
    let general = room(&*store, "general").await;
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
    let rooms = store.list_rooms(0, 500).await.unwrap();
    let listed = rooms.iter().find(|r| r.room == general).unwrap();
    assert_eq!(listed.last_message_at, Some(acked.sent_at));
}

/// PostgreSQL only: a server that answers reads but refuses writes (a standby after a
/// failover, or made read-only) is not ready.
#[tokio::test]
#[ignore = "needs TEST_DATABASE_URL"]
async fn postgres_read_only_is_not_ready() {
    use sqlx::Connection;
    let fixture = PgStoreFixture::make().await;
    let store = fixture.store.clone();
    let general = room(&*store, "general").await;
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
        let general = room(&store, "general").await;
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
