use chrono::DateTime;
use natter::domain::{Message, RoomId, User, UserId};

use crate::fixtures::{RoomStateFixture, CAPACITY};

macro_rules! room_state_suite {
    ($adapter:ident, $fixture:path, [$($behaviour:ident),* $(,)?]) => {
        mod $adapter {
            $(
                #[tokio::test]
                async fn $behaviour() {
                    let Some(fixture) = $fixture().await else { return };
                    super::$behaviour(fixture).await;
                }
            )*
        }
    };
}

room_state_suite!(
    memory,
    crate::fixtures::memory_room_state,
    [
        presence_reports_first_arrivals_and_last_departures,
        members_are_sorted_and_counted_per_room,
        the_cache_is_not_ready_until_filled,
        a_room_without_members_caches_nothing,
        the_last_leave_deletes_the_cache,
        the_cache_keeps_the_newest_messages_and_tolerates_repeats,
        after_answers_only_when_the_cache_is_complete,
    ]
);

const ROOM: RoomId = RoomId(1);

fn user(id: i64, name: &str) -> User {
    User {
        id: UserId(id),
        username: name.into(),
    }
}

fn message(seq: i64) -> Message {
    Message {
        id: 1000 + seq,
        room_id: ROOM,
        room_slug: "general".into(),
        seq,
        user_id: UserId(1),
        username: "alice".into(),
        body: format!("m{seq}"),
        client_id: None,
        sent_at: DateTime::from_timestamp_millis(1_700_000_000_000 + seq).unwrap(),
    }
}

fn seqs(messages: Option<Vec<Message>>) -> Option<Vec<i64>> {
    messages.map(|m| m.iter().map(|m| m.seq).collect())
}

async fn presence_reports_first_arrivals_and_last_departures(f: RoomStateFixture) {
    let alice = user(1, "alice");
    assert!(
        f.presence.join(ROOM, &alice).await.unwrap(),
        "first arrival"
    );
    assert!(
        !f.presence.join(ROOM, &alice).await.unwrap(),
        "already present"
    );
    assert!(f.presence.leave(ROOM, alice.id).await.unwrap(), "gone");
    assert!(
        !f.presence.leave(ROOM, alice.id).await.unwrap(),
        "was not present"
    );
}

async fn members_are_sorted_and_counted_per_room(f: RoomStateFixture) {
    f.presence.join(ROOM, &user(2, "zoe")).await.unwrap();
    f.presence.join(ROOM, &user(1, "alice")).await.unwrap();
    f.presence.join(RoomId(2), &user(1, "alice")).await.unwrap();
    assert_eq!(
        f.presence.members(ROOM).await.unwrap(),
        vec!["alice", "zoe"]
    );
    let counts = f
        .presence
        .online_counts(&[ROOM, RoomId(2), RoomId(3)])
        .await
        .unwrap();
    assert_eq!(counts.get(&ROOM), Some(&2));
    assert_eq!(counts.get(&RoomId(2)), Some(&1));
    assert_eq!(counts.get(&RoomId(3)).copied().unwrap_or(0), 0);
}

async fn the_cache_is_not_ready_until_filled(f: RoomStateFixture) {
    f.presence.join(ROOM, &user(1, "alice")).await.unwrap();
    assert_eq!(seqs(f.cache.latest(ROOM, 3).await.unwrap()), None);
    f.cache.fill(ROOM, &[message(1), message(2)]).await.unwrap();
    assert_eq!(
        seqs(f.cache.latest(ROOM, 3).await.unwrap()),
        Some(vec![1, 2])
    );
    f.cache.add(ROOM, &message(3)).await.unwrap();
    assert_eq!(
        seqs(f.cache.latest(ROOM, 2).await.unwrap()),
        Some(vec![2, 3])
    );
    let cached = f.cache.latest(ROOM, 1).await.unwrap().unwrap();
    assert_eq!(cached[0], message(3));
}

async fn a_room_without_members_caches_nothing(f: RoomStateFixture) {
    f.cache.fill(ROOM, &[message(1)]).await.unwrap();
    f.cache.add(ROOM, &message(2)).await.unwrap();
    f.presence.join(ROOM, &user(1, "alice")).await.unwrap();
    assert_eq!(seqs(f.cache.latest(ROOM, 5).await.unwrap()), None);
}

async fn the_last_leave_deletes_the_cache(f: RoomStateFixture) {
    let (alice, bob) = (user(1, "alice"), user(2, "bob"));
    f.presence.join(ROOM, &alice).await.unwrap();
    f.presence.join(ROOM, &bob).await.unwrap();
    f.cache.fill(ROOM, &[message(1)]).await.unwrap();
    f.presence.leave(ROOM, alice.id).await.unwrap();
    assert_eq!(
        seqs(f.cache.latest(ROOM, 5).await.unwrap()),
        Some(vec![1]),
        "bob is still there"
    );
    f.presence.leave(ROOM, bob.id).await.unwrap();
    f.presence.join(ROOM, &alice).await.unwrap();
    assert_eq!(
        seqs(f.cache.latest(ROOM, 5).await.unwrap()),
        None,
        "emptied with the room"
    );
}

async fn the_cache_keeps_the_newest_messages_and_tolerates_repeats(f: RoomStateFixture) {
    f.presence.join(ROOM, &user(1, "alice")).await.unwrap();
    let tail: Vec<Message> = (1..=4).map(message).collect();
    f.cache.fill(ROOM, &tail).await.unwrap();
    for seq in 3..=8 {
        f.cache.add(ROOM, &message(seq)).await.unwrap();
    }
    // A fill arriving late (another joiner's) adds nothing new and breaks nothing.
    f.cache.fill(ROOM, &tail).await.unwrap();
    let newest: Vec<i64> = ((8 - CAPACITY as i64 + 1)..=8).collect();
    assert_eq!(seqs(f.cache.latest(ROOM, 100).await.unwrap()), Some(newest));
}

async fn after_answers_only_when_the_cache_is_complete(f: RoomStateFixture) {
    f.presence.join(ROOM, &user(1, "alice")).await.unwrap();
    assert_eq!(
        seqs(f.cache.after(ROOM, 0, 10).await.unwrap()),
        None,
        "not ready"
    );
    f.cache.fill(ROOM, &[]).await.unwrap();
    assert_eq!(
        seqs(f.cache.after(ROOM, 0, 10).await.unwrap()),
        Some(vec![]),
        "an empty room"
    );
    for seq in 1..=7 {
        f.cache.add(ROOM, &message(seq)).await.unwrap();
    }
    // Holds 3..=7: after 2 is complete, after 1 would miss seq 2.
    assert_eq!(
        seqs(f.cache.after(ROOM, 2, 10).await.unwrap()),
        Some(vec![3, 4, 5, 6, 7])
    );
    assert_eq!(
        seqs(f.cache.after(ROOM, 5, 1).await.unwrap()),
        Some(vec![6])
    );
    assert_eq!(seqs(f.cache.after(ROOM, 1, 10).await.unwrap()), None);
}
