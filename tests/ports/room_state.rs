use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::DateTime;
use natter::domain::{Message, Reaction, ReplyRef, Rev, RoomId, Seq, User, UserId};
use natter::ports::RoomState;

use crate::fixtures::{MemoryRoomStateFixture, RoomStates, CAPACITY};
use crate::redis_fixture::RedisRoomStateFixture;

port_suite! {
    adapters {
        memory: MemoryRoomStateFixture,
        #[ignore = "needs TEST_REDIS_URL"]
        redis: RedisRoomStateFixture,
    }
    behaviours {
        presence_reports_first_arrivals_and_last_departures,
        members_are_sorted_and_counted_per_room,
        the_cache_is_not_ready_until_filled,
        a_room_without_members_caches_nothing,
        the_last_leave_deletes_the_cache,
        the_cache_keeps_the_newest_messages_and_tolerates_repeats,
        after_answers_only_when_the_cache_is_complete,
        cached_messages_come_back_exactly,
        at_answers_the_cached_messages_among_seqs,
        an_update_replaces_the_cached_state,
        an_update_older_than_the_cached_state_changes_nothing,
        an_update_of_an_uncached_message_adds_nothing,
        a_late_fill_keeps_the_newer_state,
        an_update_while_the_cache_fills_is_not_lost_to_the_fill,
        a_tombstone_replaces_the_text_in_the_cache,
        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        a_storm_of_joins_leaves_and_sends_keeps_the_cache_exact,
    }
}

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
        seq: Seq::new(seq).unwrap(),
        user_id: UserId(1),
        username: "alice".into(),
        body: format!("m{seq}"),
        client_id: None,
        sent_at: DateTime::from_timestamp_millis(1_700_000_000_000 + seq).unwrap(),
        rev: Rev::new(seq).unwrap(),
        edited_at: None,
        deleted_by: None,
        reply_to: None,
        reactions: Vec::new(),
        mentions: Vec::new(),
    }
}

fn seq(n: i64) -> Seq {
    Seq::new(n).unwrap()
}

fn seqs(messages: Option<Vec<Message>>) -> Option<Vec<i64>> {
    messages.map(|m| m.iter().map(|m| m.seq.get()).collect())
}

async fn presence_reports_first_arrivals_and_last_departures(f: RoomStates) {
    let alice = user(1, "alice");
    assert!(
        f.state.join(ROOM, &alice).await.unwrap().first,
        "first arrival"
    );
    assert!(
        !f.state.join(ROOM, &alice).await.unwrap().first,
        "already present"
    );
    assert!(f.state.leave(ROOM, &alice).await.unwrap(), "gone");
    assert!(
        !f.state.leave(ROOM, &alice).await.unwrap(),
        "was not present"
    );
}

async fn members_are_sorted_and_counted_per_room(f: RoomStates) {
    let zoe = f.state.join(ROOM, &user(2, "zoe")).await.unwrap();
    assert_eq!(
        zoe.members,
        vec!["zoe"],
        "a join lists the members, joiner included"
    );
    let alice = f.state.join(ROOM, &user(1, "alice")).await.unwrap();
    assert_eq!(alice.members, vec!["alice", "zoe"]);
    let again = f.state.join(ROOM, &user(1, "alice")).await.unwrap();
    assert_eq!(
        (again.first, again.members),
        (false, vec!["alice".into(), "zoe".into()])
    );
    f.state.join(RoomId(2), &user(1, "alice")).await.unwrap();
    assert_eq!(f.state.members(ROOM).await.unwrap(), vec!["alice", "zoe"]);
    let counts = f
        .state
        .online_counts(&[ROOM, RoomId(2), RoomId(3)])
        .await
        .unwrap();
    assert_eq!(counts.get(&ROOM), Some(&2));
    assert_eq!(counts.get(&RoomId(2)), Some(&1));
    assert_eq!(counts.get(&RoomId(3)).copied().unwrap_or(0), 0);
}

async fn the_cache_is_not_ready_until_filled(f: RoomStates) {
    f.state.join(ROOM, &user(1, "alice")).await.unwrap();
    assert_eq!(seqs(f.state.latest(ROOM, 3).await.unwrap()), None);
    f.state.fill(ROOM, &[message(1), message(2)]).await.unwrap();
    assert_eq!(
        seqs(f.state.latest(ROOM, 3).await.unwrap()),
        Some(vec![1, 2])
    );
    f.state.add(ROOM, &message(3)).await.unwrap();
    assert_eq!(
        seqs(f.state.latest(ROOM, 2).await.unwrap()),
        Some(vec![2, 3])
    );
    let cached = f.state.latest(ROOM, 1).await.unwrap().unwrap();
    assert_eq!(cached[0], message(3));
}

async fn a_room_without_members_caches_nothing(f: RoomStates) {
    f.state.fill(ROOM, &[message(1)]).await.unwrap();
    f.state.add(ROOM, &message(2)).await.unwrap();
    f.state.join(ROOM, &user(1, "alice")).await.unwrap();
    assert_eq!(seqs(f.state.latest(ROOM, 5).await.unwrap()), None);
}

async fn the_last_leave_deletes_the_cache(f: RoomStates) {
    let (alice, bob) = (user(1, "alice"), user(2, "bob"));
    f.state.join(ROOM, &alice).await.unwrap();
    f.state.join(ROOM, &bob).await.unwrap();
    f.state.fill(ROOM, &[message(1)]).await.unwrap();
    f.state.leave(ROOM, &alice).await.unwrap();
    assert_eq!(
        seqs(f.state.latest(ROOM, 5).await.unwrap()),
        Some(vec![1]),
        "bob is still there"
    );
    f.state.leave(ROOM, &bob).await.unwrap();
    f.state.join(ROOM, &alice).await.unwrap();
    assert_eq!(
        seqs(f.state.latest(ROOM, 5).await.unwrap()),
        None,
        "emptied with the room"
    );
}

async fn the_cache_keeps_the_newest_messages_and_tolerates_repeats(f: RoomStates) {
    f.state.join(ROOM, &user(1, "alice")).await.unwrap();
    let tail: Vec<Message> = (1..=4).map(message).collect();
    f.state.fill(ROOM, &tail).await.unwrap();
    for seq in 3..=8 {
        f.state.add(ROOM, &message(seq)).await.unwrap();
    }
    // A fill arriving late (another joiner's) adds nothing new and breaks nothing.
    f.state.fill(ROOM, &tail).await.unwrap();
    let newest: Vec<i64> = ((8 - CAPACITY as i64 + 1)..=8).collect();
    assert_eq!(seqs(f.state.latest(ROOM, 100).await.unwrap()), Some(newest));
}

async fn after_answers_only_when_the_cache_is_complete(f: RoomStates) {
    f.state.join(ROOM, &user(1, "alice")).await.unwrap();
    assert_eq!(
        seqs(f.state.after(ROOM, seq(0), 10).await.unwrap()),
        None,
        "not ready"
    );
    f.state.fill(ROOM, &[]).await.unwrap();
    assert_eq!(
        seqs(f.state.after(ROOM, seq(0), 10).await.unwrap()),
        Some(vec![]),
        "an empty room"
    );
    for seq in 1..=7 {
        f.state.add(ROOM, &message(seq)).await.unwrap();
    }
    // Holds 3..=7: after 2 is complete, after 1 would miss seq 2.
    assert_eq!(
        seqs(f.state.after(ROOM, seq(2), 10).await.unwrap()),
        Some(vec![3, 4, 5, 6, 7])
    );
    assert_eq!(
        seqs(f.state.after(ROOM, seq(5), 1).await.unwrap()),
        Some(vec![6])
    );
    assert_eq!(seqs(f.state.after(ROOM, seq(1), 10).await.unwrap()), None);
}

async fn cached_messages_come_back_exactly(f: RoomStates) {
    f.state.join(ROOM, &user(1, "alice")).await.unwrap();
    let mut sent = message(1);
    sent.body = "héllo \"there\" 👋\n<b>|</b>".into();
    sent.client_id = Some("c-1".into());
    sent.sent_at = DateTime::from_timestamp_micros(1_700_000_000_123_456).unwrap();
    // Every field of CONTRACT §10 too: a later joiner served from the cache sees the
    // edit, the reply and the reactions as the store has them.
    sent.rev = Rev::new(9).unwrap();
    sent.edited_at = Some(DateTime::from_timestamp_micros(1_700_000_001_000_001).unwrap());
    sent.reply_to = Some(ReplyRef {
        id: 999,
        seq: seq(0),
        username: "bob".into(),
        excerpt: "the 👋 start".into(),
        deleted: false,
    });
    sent.reactions = vec![
        Reaction {
            emoji: "👍🏽".into(),
            users: vec!["alice".into(), "bob".into()],
        },
        Reaction {
            emoji: "❤️".into(),
            users: vec!["carol".into()],
        },
    ];
    let mut tombstone = message(3);
    tombstone.body = String::new();
    tombstone.deleted_by = Some("mod".into());
    tombstone.reply_to = Some(ReplyRef {
        id: 998,
        seq: seq(0),
        username: "carol".into(),
        excerpt: String::new(),
        deleted: true,
    });
    f.state.fill(ROOM, &[sent.clone()]).await.unwrap();
    f.state.add(ROOM, &message(2)).await.unwrap();
    f.state.add(ROOM, &tombstone).await.unwrap();
    // …except a reply's target's name and text, which the reader resolves from the store.
    sent.reply_to = Some(ReplyRef::unresolved(999, seq(0)));
    tombstone.reply_to = Some(ReplyRef::unresolved(998, seq(0)));
    assert_eq!(
        f.state.latest(ROOM, 5).await.unwrap(),
        Some(vec![sent.clone(), message(2), tombstone])
    );
    assert_eq!(
        f.state.after(ROOM, seq(0), 1).await.unwrap(),
        Some(vec![sent])
    );
}

/// `message(seq)` as changed later, at `rev`: edited to `body`, with a reaction.
fn edited(seq: i64, rev: i64, body: &str) -> Message {
    let mut changed = message(seq);
    changed.body = body.into();
    changed.rev = Rev::new(rev).unwrap();
    changed.edited_at = Some(DateTime::from_timestamp_millis(1_700_000_100_000 + rev).unwrap());
    changed.reactions = vec![Reaction {
        emoji: "👍".into(),
        users: vec!["bob".into()],
    }];
    changed
}

/// The cached state of the message `seq`, as `latest` returns it.
async fn cached(state: &dyn RoomState, seq: i64) -> Option<Message> {
    let all = state.latest(ROOM, CAPACITY).await.unwrap()?;
    all.into_iter().find(|m| m.seq.get() == seq)
}

async fn an_update_replaces_the_cached_state(f: RoomStates) {
    f.state.join(ROOM, &user(1, "alice")).await.unwrap();
    f.state
        .fill(ROOM, &[message(1), message(2), message(3)])
        .await
        .unwrap();
    let now = edited(2, 10, "m2, corrected");
    f.state.update(ROOM, &now).await.unwrap();
    // A later joiner, on any process, is served the edit.
    for process in &f.processes {
        assert_eq!(
            process.latest(ROOM, 5).await.unwrap(),
            Some(vec![message(1), now.clone(), message(3)])
        );
        assert_eq!(
            process.after(ROOM, seq(1), 5).await.unwrap(),
            Some(vec![now.clone(), message(3)])
        );
    }
    let again = edited(2, 11, "m2, corrected twice");
    f.processes
        .last()
        .unwrap()
        .update(ROOM, &again)
        .await
        .unwrap();
    assert_eq!(cached(&*f.state, 2).await, Some(again));
}

async fn an_update_older_than_the_cached_state_changes_nothing(f: RoomStates) {
    f.state.join(ROOM, &user(1, "alice")).await.unwrap();
    f.state.fill(ROOM, &[message(1), message(2)]).await.unwrap();
    let newer = edited(2, 12, "newer");
    // Two processes change one message: the newer change reaches the cache first.
    f.state.update(ROOM, &newer).await.unwrap();
    let other = f.processes.last().unwrap();
    other.update(ROOM, &edited(2, 11, "older")).await.unwrap();
    assert_eq!(cached(&*f.state, 2).await, Some(newer.clone()));
    // The same state again, and the message's first state (a late `add`): nothing.
    other.update(ROOM, &newer).await.unwrap();
    other.add(ROOM, &message(2)).await.unwrap();
    assert_eq!(
        f.state.latest(ROOM, 5).await.unwrap(),
        Some(vec![message(1), newer])
    );
}

async fn an_update_of_an_uncached_message_adds_nothing(f: RoomStates) {
    // A room without members has no cache to update.
    f.state
        .update(ROOM, &edited(1, 20, "nobody"))
        .await
        .unwrap();
    f.state.join(ROOM, &user(1, "alice")).await.unwrap();
    assert_eq!(seqs(f.state.latest(ROOM, 5).await.unwrap()), None);

    let tail: Vec<Message> = (3..=7).map(message).collect();
    f.state.fill(ROOM, &tail).await.unwrap();
    // 1 and 2 fell out of the cache (or were never in it): the store has them.
    for old in [1, 2] {
        f.state
            .update(ROOM, &edited(old, 20 + old, "old"))
            .await
            .unwrap();
    }
    assert_eq!(f.state.latest(ROOM, 10).await.unwrap(), Some(tail.clone()));
    assert_eq!(
        seqs(f.state.after(ROOM, seq(1), 10).await.unwrap()),
        None,
        "still cannot prove it holds seq 2"
    );
    assert_eq!(
        seqs(f.state.after(ROOM, seq(2), 10).await.unwrap()),
        Some(vec![3, 4, 5, 6, 7])
    );
    // The capacity trim counts only what is cached.
    f.state.add(ROOM, &message(8)).await.unwrap();
    assert_eq!(
        seqs(f.state.latest(ROOM, 10).await.unwrap()),
        Some(vec![4, 5, 6, 7, 8])
    );
}

async fn a_late_fill_keeps_the_newer_state(f: RoomStates) {
    f.state.join(ROOM, &user(1, "alice")).await.unwrap();
    // Another joiner (here: another process) read the store's tail before the edit...
    let read_before_the_edit = [message(1), message(2), message(3)];
    f.state.fill(ROOM, &read_before_the_edit).await.unwrap();
    let now = edited(2, 10, "edited meanwhile");
    f.state.update(ROOM, &now).await.unwrap();
    // ...and its fill arrives after the edit's update.
    f.processes
        .last()
        .unwrap()
        .fill(ROOM, &read_before_the_edit)
        .await
        .unwrap();
    for process in &f.processes {
        assert_eq!(
            process.latest(ROOM, 5).await.unwrap(),
            Some(vec![message(1), now.clone(), message(3)])
        );
    }
}

async fn an_update_while_the_cache_fills_is_not_lost_to_the_fill(f: RoomStates) {
    f.state.join(ROOM, &user(1, "alice")).await.unwrap();
    // The first joiner reads the store's tail: 3..=6, message 4 as first sent (shorter than
    // the capacity, so only the fill, not the trim, can keep 1 out).
    let tail: Vec<Message> = (3..=6).map(message).collect();
    // Meanwhile 4 is edited (and 1, older than the tail, too); neither is cached yet.
    let now = edited(4, 10, "edited during the fill");
    f.state.update(ROOM, &now).await.unwrap();
    f.state.update(ROOM, &edited(1, 11, "old")).await.unwrap();
    assert_eq!(seqs(f.state.latest(ROOM, 5).await.unwrap()), None);
    // The fill arrives with 4's older state: the edit stays, 1 goes.
    f.state.fill(ROOM, &tail).await.unwrap();
    let mut want = tail.clone();
    want[1] = now;
    assert_eq!(f.state.latest(ROOM, 10).await.unwrap(), Some(want.clone()));
    assert_eq!(
        seqs(f.state.after(ROOM, seq(1), 10).await.unwrap()),
        None,
        "1 is not kept apart from the run 3..=6"
    );
    assert_eq!(f.state.after(ROOM, seq(2), 10).await.unwrap(), Some(want));
}

/// The text the tombstone behaviour deletes.
const SECRET: &str = "the launch code is 0451";

async fn a_tombstone_replaces_the_text_in_the_cache(f: RoomStates) {
    f.state.join(ROOM, &user(1, "alice")).await.unwrap();
    let mut said = message(1);
    said.body = SECRET.into();
    let mut quoting = message(2);
    quoting.reply_to = Some(ReplyRef::to(&said));
    f.state.fill(ROOM, &[said.clone()]).await.unwrap();
    f.state.add(ROOM, &quoting).await.unwrap();
    let edit = edited(1, 3, &format!("{SECRET}!"));
    f.state.update(ROOM, &edit).await.unwrap();

    let mut tombstone = message(1);
    tombstone.body = String::new();
    tombstone.rev = Rev::new(4).unwrap();
    tombstone.deleted_by = Some("mod".into());
    f.processes
        .last()
        .unwrap()
        .update(ROOM, &tombstone)
        .await
        .unwrap();
    // The edit's update again, late (another process): the text does not come back.
    f.state.update(ROOM, &edit).await.unwrap();
    // A reply stored before the delete, so quoting the text, and cached only after it
    // (another process's slower `add`): the cache keeps no copy of the text it quoted.
    let mut late_reply = message(3);
    late_reply.reply_to = Some(ReplyRef::to(&said));
    f.state.add(ROOM, &late_reply).await.unwrap();
    let unresolved = |m: &Message| {
        let mut m = m.clone();
        m.reply_to = Some(ReplyRef::unresolved(said.id, said.seq));
        m
    };
    for process in &f.processes {
        let now = process.latest(ROOM, 5).await.unwrap().unwrap();
        assert_eq!(
            now,
            vec![
                tombstone.clone(),
                unresolved(&quoting),
                unresolved(&late_reply)
            ]
        );
    }
}

/// Several processes on one Redis: each `RedisRoomState` value is one process.
mod redis_across_processes {
    use std::collections::HashMap;
    use std::time::{Duration, Instant};

    use natter::adapters::redis::RedisRoomState;
    use natter::domain::RoomId;
    use natter::ports::{Departure, MessageCache, Presence};
    use natter_test_support::proxy::Proxy;

    use super::{message, seqs, user, ROOM};
    use crate::fixtures::{PortFixture, CAPACITY};
    use crate::redis_fixture::{room_state, test_redis, RedisRoomStateFixture, TestRedis};

    const OTHER: RoomId = RoomId(2);
    const THIRD: RoomId = RoomId(3);

    /// The room's keys, read with raw commands.
    fn room_keys(redis: &TestRedis, room: RoomId) -> Vec<String> {
        redis.keys_matching(&format!("room:{}:*", room.0)).unwrap()
    }

    fn sorted(mut departures: Vec<Departure>) -> Vec<(i64, String)> {
        let mut pairs: Vec<_> = departures
            .drain(..)
            .map(|d| (d.room.0, d.username))
            .collect();
        pairs.sort();
        pairs
    }

    #[tokio::test]
    #[ignore = "needs TEST_REDIS_URL"]
    async fn two_processes_share_presence_and_the_cache() {
        let redis = test_redis();
        let (a, b) = (room_state(&redis).await, room_state(&redis).await);
        let (alice, bob) = (user(1, "alice"), user(2, "bob"));
        assert!(
            a.join(ROOM, &alice).await.unwrap().first,
            "first arrival anywhere"
        );
        assert!(
            !b.join(ROOM, &alice).await.unwrap().first,
            "already present on a"
        );
        let bob_joined = b.join(ROOM, &bob).await.unwrap();
        assert!(bob_joined.first);
        assert_eq!(
            bob_joined.members,
            vec!["alice", "bob"],
            "members of both processes"
        );
        assert_eq!(a.members(ROOM).await.unwrap(), vec!["alice", "bob"]);
        assert_eq!(
            b.online_counts(&[ROOM, OTHER]).await.unwrap(),
            HashMap::from([(ROOM, 2)])
        );
        a.fill(ROOM, &[message(1)]).await.unwrap();
        b.add(ROOM, &message(2)).await.unwrap();
        assert_eq!(seqs(b.latest(ROOM, 5).await.unwrap()), Some(vec![1, 2]));

        assert!(!a.leave(ROOM, &alice).await.unwrap(), "alice is still on b");
        assert_eq!(a.members(ROOM).await.unwrap(), vec!["alice", "bob"]);
        assert!(
            b.leave(ROOM, &alice).await.unwrap(),
            "alice's last connection"
        );
        assert_eq!(
            seqs(a.latest(ROOM, 5).await.unwrap()),
            Some(vec![1, 2]),
            "bob is still there"
        );
        assert!(b.leave(ROOM, &bob).await.unwrap());
        assert_eq!(seqs(a.latest(ROOM, 5).await.unwrap()), None);
        assert_eq!(room_keys(&redis, ROOM), Vec::<String>::new());
    }

    #[tokio::test]
    #[ignore = "needs TEST_REDIS_URL"]
    async fn the_members_of_a_process_that_stopped_are_swept_once() {
        let redis = test_redis();
        let expiry = Duration::from_secs(1);
        let live = room_state(&redis).await.with_instance_expiry(expiry);
        let also_live = room_state(&redis).await.with_instance_expiry(expiry);
        let stopped = room_state(&redis).await.with_instance_expiry(expiry);
        let (alice, bob, carol) = (user(1, "alice"), user(2, "bob"), user(3, "carol"));
        live.join(ROOM, &alice).await.unwrap();
        stopped.join(ROOM, &bob).await.unwrap();
        stopped.join(OTHER, &bob).await.unwrap();
        stopped.join(OTHER, &carol).await.unwrap();
        live.fill(ROOM, &[message(1)]).await.unwrap();
        stopped.fill(OTHER, &[message(1)]).await.unwrap();
        assert!(!room_keys(&redis, OTHER).is_empty());

        tokio::time::sleep(expiry + Duration::from_millis(300)).await;
        // Two live processes sweep at once: each departure is reported once.
        let (x, y) = tokio::join!(live.maintain(), also_live.maintain());
        let departures = [x.unwrap(), y.unwrap()].concat();
        assert_eq!(
            sorted(departures),
            vec![
                (ROOM.0, "bob".into()),
                (OTHER.0, "bob".into()),
                (OTHER.0, "carol".into())
            ]
        );
        assert_eq!(live.members(ROOM).await.unwrap(), vec!["alice"]);
        assert_eq!(
            seqs(live.latest(ROOM, 5).await.unwrap()),
            Some(vec![1]),
            "alice keeps the room's cache"
        );
        assert_eq!(room_keys(&redis, OTHER), Vec::<String>::new(), "emptied");
        assert!(live.maintain().await.unwrap().is_empty(), "reported once");

        // The stopped process comes back: its members are present again.
        assert!(stopped.maintain().await.unwrap().is_empty());
        assert_eq!(live.members(ROOM).await.unwrap(), vec!["alice", "bob"]);
        assert_eq!(live.members(OTHER).await.unwrap(), vec!["bob", "carol"]);
        assert_eq!(
            seqs(live.latest(OTHER, 5).await.unwrap()),
            None,
            "a new life of the room starts with a cold cache"
        );
    }

    #[tokio::test]
    #[ignore = "needs TEST_REDIS_URL"]
    async fn maintain_re_asserts_presence_that_redis_lost() {
        let redis = test_redis();
        let a = room_state(&redis).await;
        let alice = user(1, "alice");
        let rooms = [ROOM, OTHER, THIRD];
        for room in rooms {
            a.join(room, &alice).await.unwrap();
            a.fill(room, &[message(1)]).await.unwrap();
        }
        let mut raw = redis.connection().unwrap();
        // Everything about ROOM is lost; of OTHER only the members, so its cache is stale;
        // of THIRD only the member list (the users HASH kept beside the members).
        let _: () = redis::cmd("DEL")
            .arg(room_keys(&redis, ROOM))
            .arg(format!("{}room:{}:members", redis.prefix, OTHER.0))
            .arg(format!("{}room:{}:users", redis.prefix, THIRD.0))
            .query(&mut raw)
            .unwrap();
        assert!(a.members(ROOM).await.unwrap().is_empty());
        assert!(a.members(THIRD).await.unwrap().is_empty());

        assert!(a.maintain().await.unwrap().is_empty());
        for room in rooms {
            assert_eq!(a.members(room).await.unwrap(), vec!["alice"]);
        }
        assert_eq!(seqs(a.latest(THIRD, 5).await.unwrap()), Some(vec![1]));
        for room in [ROOM, OTHER] {
            assert_eq!(seqs(a.latest(room, 5).await.unwrap()), None);
            a.fill(room, &[message(1), message(2)]).await.unwrap();
        }
        // Every room key expires by itself if every process dies (3× the 20 s expiry).
        for key in room_keys(&redis, ROOM) {
            let ttl: i64 = redis::cmd("PTTL").arg(&key).query(&mut raw).unwrap();
            assert!((1..=60_000).contains(&ttl), "{key} has ttl {ttl}");
        }
        for room in rooms {
            assert!(a.leave(room, &alice).await.unwrap());
            assert_eq!(room_keys(&redis, room), Vec::<String>::new());
        }
    }

    #[tokio::test]
    #[ignore = "needs TEST_REDIS_URL"]
    async fn while_redis_is_unreachable_calls_fail_promptly_and_maintain_repairs_after() {
        let redis = test_redis();
        let target = redis
            .url
            .trim_start_matches("redis://")
            .trim_end_matches('/');
        let relay = Proxy::start(target.to_owned()).await;
        let relay_url = format!("redis://{}", relay.addr);
        let cut_off = RedisRoomState::connect(&relay_url, &redis.prefix, CAPACITY)
            .await
            .unwrap();
        let other = room_state(&redis).await;
        let (alice, bob) = (user(1, "alice"), user(2, "bob"));
        cut_off.join(ROOM, &alice).await.unwrap();
        other.join(ROOM, &bob).await.unwrap();

        relay.cut();
        // Each call gives up within the adapter's 3 s deadline.
        let prompt = Duration::from_millis(3_500);
        let started = Instant::now();
        assert!(cut_off.leave(ROOM, &alice).await.is_err());
        assert!(
            started.elapsed() < prompt,
            "leave took {:?}",
            started.elapsed()
        );
        let started = Instant::now();
        assert!(cut_off.ping().await.is_err());
        assert!(
            started.elapsed() < prompt,
            "ping took {:?}",
            started.elapsed()
        );
        let started = Instant::now();
        assert!(cut_off.latest(ROOM, 5).await.is_err());
        assert!(
            started.elapsed() < prompt,
            "latest took {:?}",
            started.elapsed()
        );
        assert_eq!(other.members(ROOM).await.unwrap(), vec!["alice", "bob"]);

        // Back: the client reconnects by itself, and upkeep removes what the failed leave
        // could not, announcing it.
        relay.restore();
        let mut departures = None;
        for _ in 0..50 {
            if let Ok(found) = cut_off.maintain().await {
                departures = Some(found);
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(
            departures.map(sorted),
            Some(vec![(ROOM.0, "alice".to_owned())])
        );
        assert_eq!(other.members(ROOM).await.unwrap(), vec!["bob"]);
        cut_off.ping().await.unwrap();
    }

    /// After a delete, the deleted text is in no value under the prefix: the tombstone
    /// replaced the entry, it did not sit beside it.
    #[tokio::test]
    #[ignore = "needs TEST_REDIS_URL"]
    async fn a_deleted_text_is_nowhere_in_redis() {
        let fixture = RedisRoomStateFixture::make().await;
        super::a_tombstone_replaces_the_text_in_the_cache(fixture.port()).await;
        let redis = &fixture.redis;
        let mut raw = redis.connection().unwrap();
        let keys = redis.keys().unwrap();
        assert!(
            keys.iter().any(|k| k.ends_with(":messages")),
            "the cache is there: {keys:?}"
        );
        for key in keys {
            let kind: String = redis::cmd("TYPE").arg(&key).query(&mut raw).unwrap();
            let values: Vec<String> = match kind.as_str() {
                "string" => vec![redis::cmd("GET").arg(&key).query(&mut raw).unwrap()],
                "hash" => redis::cmd("HGETALL").arg(&key).query(&mut raw).unwrap(),
                "set" => redis::cmd("SMEMBERS").arg(&key).query(&mut raw).unwrap(),
                "zset" => redis::cmd("ZRANGE")
                    .arg(&key)
                    .arg(0)
                    .arg(-1)
                    .query(&mut raw)
                    .unwrap(),
                "list" => redis::cmd("LRANGE")
                    .arg(&key)
                    .arg(0)
                    .arg(-1)
                    .query(&mut raw)
                    .unwrap(),
                other => panic!("{key} is a {other}: read it here too"),
            };
            assert!(
                values.iter().all(|v| !v.contains(super::SECRET)),
                "{key} still holds the deleted text: {values:?}"
            );
        }
    }

    /// A storm on Redis leaves no key of the room behind once everyone left.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    #[ignore = "needs TEST_REDIS_URL"]
    async fn a_storm_leaves_no_key_of_the_room_behind() {
        let fixture = RedisRoomStateFixture::make().await;
        super::a_storm_of_joins_leaves_and_sends_keeps_the_cache_exact(fixture.port()).await;
        assert_eq!(room_keys(&fixture.redis, ROOM), Vec::<String>::new());
    }
}

/// The cache's contents after a storm of joins, leaves, sends and fills from every process
/// (two on a shared adapter, the one of an in-process adapter): every joiner's history
/// holds what was cached before it joined, and the cache ends equal to the store's tail,
/// and gone with the last member.
async fn a_storm_of_joins_leaves_and_sends_keeps_the_cache_exact(f: RoomStates) {
    let processes = f.processes;
    let world = Arc::new(World::default());
    let mut tasks = tokio::task::JoinSet::new();
    for sender in 0..2 {
        let (processes, world) = (processes.clone(), world.clone());
        tasks.spawn(async move {
            for i in 0..40 {
                let sent = world.commit();
                let process = &processes[(sender + i) % processes.len()];
                process.add(ROOM, &sent).await.unwrap();
                world.added.lock().unwrap().insert(sent.seq.get());
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        });
    }
    for (p, process) in processes.iter().enumerate() {
        // The same users on every process: presence counts them across processes.
        for u in 0..6 {
            let (process, world) = (process.clone(), world.clone());
            tasks.spawn(async move {
                let who = user(10 + u, &format!("user{u}"));
                for _ in 0..8 {
                    world.visit(&*process, &who).await;
                    let gone = process.leave(ROOM, &who).await.unwrap();
                    world.count(&who, -i64::from(gone));
                }
            });
        }
        let (anchor, world) = (process.clone(), world.clone());
        tasks.spawn(async move {
            tokio::time::sleep(Duration::from_millis(10 + 20 * p as u64)).await;
            world
                .visit(&*anchor, &user(100 + p as i64, &format!("anchor{p}")))
                .await;
        });
        let upkeep = process.clone();
        tasks.spawn(async move {
            // Upkeep racing the joins and leaves of its own process changes nothing.
            for _ in 0..200 {
                assert_eq!(upkeep.maintain().await.unwrap(), Vec::new());
                tokio::task::yield_now().await;
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.unwrap();
    }

    let tail = world.tail();
    assert_eq!(tail.len(), CAPACITY);
    let anchors: Vec<String> = (0..processes.len()).map(|p| format!("anchor{p}")).collect();
    for process in &processes {
        assert_eq!(
            process.latest(ROOM, CAPACITY).await.unwrap(),
            Some(tail.clone())
        );
        assert_eq!(process.members(ROOM).await.unwrap(), anchors);
    }
    // Every user's first arrival was matched by one last departure, across processes.
    let balance = world.balance.lock().unwrap().clone();
    assert!(
        balance.iter().all(|(id, n)| *n == i64::from(*id >= 100)),
        "{balance:?}"
    );
    for (p, process) in processes.iter().enumerate() {
        let anchor = user(100 + p as i64, &format!("anchor{p}"));
        assert!(process.leave(ROOM, &anchor).await.unwrap());
    }
    for process in &processes {
        assert_eq!(process.latest(ROOM, CAPACITY).await.unwrap(), None);
        assert_eq!(process.members(ROOM).await.unwrap(), Vec::<String>::new());
    }
}

/// The store of the storm test, and what its cache calls completed.
#[derive(Default)]
struct World {
    store: Mutex<Vec<Message>>,
    added: Mutex<BTreeSet<i64>>,
    /// Per user: first arrivals minus last departures reported.
    balance: Mutex<HashMap<i64, i64>>,
}

impl World {
    fn commit(&self) -> Message {
        let mut store = self.store.lock().unwrap();
        let sent = message(store.len() as i64 + 1);
        store.push(sent.clone());
        sent
    }

    fn count(&self, who: &User, change: i64) {
        *self.balance.lock().unwrap().entry(who.id.0).or_default() += change;
    }

    fn tail(&self) -> Vec<Message> {
        let store = self.store.lock().unwrap();
        store[store.len().saturating_sub(CAPACITY)..].to_vec()
    }

    /// Joins as the chat service does, then checks the history is complete.
    async fn visit(&self, process: &dyn RoomState, who: &User) {
        let cached_before: Vec<i64> = self.added.lock().unwrap().iter().copied().collect();
        let first = process.join(ROOM, who).await.unwrap().first;
        self.count(who, i64::from(first));
        if process.latest(ROOM, CAPACITY).await.unwrap().is_none() {
            let tail = self.tail();
            // Reading the store takes a while; sends go on meanwhile.
            tokio::time::sleep(Duration::from_millis(2)).await;
            process.fill(ROOM, &tail).await.unwrap();
        }
        let history = seqs(process.latest(ROOM, CAPACITY).await.unwrap())
            .expect("ready while a member is present");
        for seq in cached_before {
            let trimmed = history.len() == CAPACITY && seq < history[0];
            assert!(
                trimmed || history.contains(&seq),
                "{} misses {seq}: {history:?}",
                who.username
            );
        }
    }
}

async fn at_answers_the_cached_messages_among_seqs(f: RoomStates) {
    let seqs = |ns: &[i64]| ns.iter().map(|&n| seq(n)).collect::<Vec<_>>();
    f.state.join(ROOM, &user(1, "alice")).await.unwrap();
    assert_eq!(
        f.state.at(ROOM, &seqs(&[1])).await.unwrap(),
        None,
        "not ready"
    );
    f.state
        .fill(ROOM, &[message(2), message(3), message(4)])
        .await
        .unwrap();
    let found = f.state.at(ROOM, &seqs(&[4, 1, 2, 4, 9])).await.unwrap();
    assert_eq!(found, Some(vec![message(2), message(4)]));
    assert_eq!(f.state.at(ROOM, &[]).await.unwrap(), Some(vec![]));
    // The state it holds now.
    let edit = edited(3, 7, "changed");
    f.state.update(ROOM, &edit).await.unwrap();
    assert_eq!(
        f.state.at(ROOM, &seqs(&[3])).await.unwrap(),
        Some(vec![edit])
    );
}
