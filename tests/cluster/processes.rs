//! Two processes on one PostgreSQL + Redis are one chat service.

use std::time::Duration;

use serde_json::json;

use crate::support::{env_of, eventually, with_quick_sends, Natter};
use natter_test_support::{after_the_quick_gap, register, seqs, shared_services};

async fn online(natter: &Natter, user: &natter_test_support::TestUser, slug: &str) -> i64 {
    let rooms = user.at(natter.addr).get_json("/api/rooms").await;
    rooms["rooms"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["slug"] == slug)
        .map(|r| r["online"].as_i64().unwrap())
        .unwrap_or(0)
}

#[tokio::test]
#[ignore = "needs TEST_DATABASE_URL and TEST_REDIS_URL"]
async fn messages_presence_and_limits_cross_processes() {
    let (database, redis) = shared_services().await;
    let env = env_of(&database, &redis);
    let (a, b) = tokio::join!(Natter::start(&env), Natter::start(&env));

    let alice = register(a.addr, "alice").await;
    let bob = register(b.addr, "bob").await;
    let slug = alice.create_room("general").await;

    let mut alice_ws = alice.connect(&slug).await;
    let mut bob_ws = bob.connect(&slug).await;
    assert_eq!(
        bob_ws.joined.as_ref().unwrap()["members"],
        json!(["alice", "bob"])
    );
    let joined = alice_ws.next_of_type("member_joined").await;
    assert_eq!(joined["user"], "bob", "presence crosses processes");
    assert_eq!(online(&a, &alice, &slug).await, 2);
    assert_eq!(online(&b, &bob, &slug).await, 2);

    // A message sent on A reaches B, once, with the same id and seq as the ack.
    let ack = alice_ws.say("hello from A", "a1").await;
    assert_eq!(ack["type"], "ack");
    let message = bob_ws.next_of_type("message").await;
    assert_eq!(message["body"], "hello from A");
    assert_eq!(message["id"], ack["id"]);
    assert_eq!(message["seq"], ack["seq"]);

    // One rate limit for alice across both processes.
    let mut alice_on_b = alice.at(b.addr).connect(&slug).await;
    let refused = alice_on_b.say("too soon", "a2").await;
    assert_eq!(refused["type"], "error", "{refused}");
    assert_eq!(refused["code"], "rate_limited");
    let retry = refused["retry_after_ms"].as_u64().unwrap();
    assert!(retry > 0 && retry <= 1000, "{retry}");

    // Leaving on B is seen on A.
    drop(alice_on_b);
    bob_ws.socket.close(None).await.unwrap();
    let left = alice_ws.next_of_type("member_left").await;
    assert_eq!(left["user"], "bob");
    eventually(
        "the room list counts alice only",
        Duration::from_secs(5),
        || async { online(&b, &bob, &slug).await == 1 },
    )
    .await;

    // The last leave deletes the room's cache keys.
    alice_ws.socket.close(None).await.unwrap();
    eventually("no room keys remain", Duration::from_secs(5), || async {
        redis.keys_matching("room:*").unwrap().is_empty()
    })
    .await;
}

#[tokio::test]
#[ignore = "needs TEST_DATABASE_URL and TEST_REDIS_URL"]
async fn after_kill_9_the_survivor_serves_everyone_and_cleans_up() {
    let (database, redis) = shared_services().await;
    let env = with_quick_sends(env_of(&database, &redis));
    let (a, mut b) = tokio::join!(Natter::start(&env), Natter::start(&env));

    let alice = register(a.addr, "alice").await;
    let bob = register(b.addr, "bob").await;
    let carol = register(b.addr, "carol").await;
    let slug = alice.create_room("general").await;
    let lonely = carol.create_room("only on b").await;

    let mut alice_ws = alice.connect(&slug).await;
    let mut bob_ws = bob.connect(&slug).await;
    let _carol_ws = carol.connect(&lonely).await;
    alice_ws.next_of_type("member_joined").await;
    let first = alice_ws.say("before the crash", "a1").await;
    let seen = bob_ws.next_of_type("message").await;
    assert_eq!(seen["id"], first["id"]);
    let bob_last_seq = seen["seq"].as_i64().unwrap();
    let bob_last_rev = seen["rev"].as_i64().unwrap();

    b.kill().await;

    // A keeps serving; bob reconnects to A and misses nothing: neither the new message
    // nor the edit of the one he had (CONTRACT §10).
    alice_ws
        .send(json!({"type": "edit", "message_id": first["id"], "body": "edited while bob was away", "client_id": "e1"}))
        .await;
    let edited = alice_ws.next_of_type("ack").await;
    assert_eq!(edited["client_id"], "e1", "{edited}");
    after_the_quick_gap().await;
    let missed = alice_ws.say("while bob was away", "a2").await;
    assert_eq!(missed["type"], "ack", "{missed}");
    let bob_on_a = bob.at(a.addr);
    let mut resumed = bob_on_a
        .connect_path(&format!(
            "/ws/rooms/{slug}?since={bob_last_seq}&rev={bob_last_rev}"
        ))
        .await;
    assert_eq!(
        seqs(&resumed.history.as_ref().unwrap()["messages"]),
        vec![missed["seq"].as_i64().unwrap()]
    );
    let updates = resumed.next_frame().await;
    assert_eq!(updates["type"], "updates", "{updates}");
    assert_eq!(
        updates["messages"].as_array().unwrap().len(),
        1,
        "{updates}"
    );
    assert_eq!(
        (
            &updates["messages"][0]["id"],
            &updates["messages"][0]["body"]
        ),
        (&first["id"], &json!("edited while bob was away"))
    );
    assert_eq!(updates["rev"], missed["rev"]);

    // The dead process's members leave within 60 s; the room only it had empties.
    eventually(
        "carol leaves the lonely room",
        Duration::from_secs(60),
        || async { online(&a, &alice, &lonely).await == 0 },
    )
    .await;
    // Only the busy room still has keys.
    eventually(
        "the emptied room's keys are gone",
        Duration::from_secs(10),
        || async { room_ids(&redis.keys_matching("room:*").unwrap(), &redis.prefix).len() == 1 },
    )
    .await;

    drop(resumed);
    alice_ws.socket.close(None).await.unwrap();
    eventually("no room keys remain", Duration::from_secs(10), || async {
        redis.keys_matching("room:*").unwrap().is_empty()
    })
    .await;
}

/// The room ids that have keys.
fn room_ids(keys: &[String], prefix: &str) -> Vec<String> {
    let mut ids: Vec<String> = keys
        .iter()
        .filter_map(|k| {
            k.strip_prefix(prefix)?
                .strip_prefix("room:")?
                .split(':')
                .next()
        })
        .map(str::to_owned)
        .collect();
    ids.sort();
    ids.dedup();
    ids
}

/// `client_id` means one message on every process: a reuse through another process, in
/// another room, is refused and nothing is stored.
#[tokio::test]
#[ignore = "needs TEST_DATABASE_URL and TEST_REDIS_URL"]
async fn a_client_id_reused_through_another_process_is_refused() {
    let (database, redis) = shared_services().await;
    let env = with_quick_sends(env_of(&database, &redis));
    let (a, b) = tokio::join!(Natter::start(&env), Natter::start(&env));
    let alice = register(a.addr, "alice").await;
    let general = alice.create_room("general").await;
    let other = alice.create_room("other").await;

    let mut on_a = alice.connect(&general).await;
    let first = on_a.say("said once", "same-id").await;
    assert_eq!(
        (&first["type"], &first["room"]),
        (&json!("ack"), &json!(general))
    );

    after_the_quick_gap().await;
    let mut on_b = alice.at(b.addr).connect(&other).await;
    let reused = on_b.say("said once", "same-id").await;
    assert_eq!(reused["code"], "client_id_reused", "{reused}");
    let resent = alice
        .at(b.addr)
        .connect(&general)
        .await
        .say("said once", "same-id")
        .await;
    assert_eq!(
        (&resent["id"], &resent["seq"]),
        (&first["id"], &first["seq"])
    );
    let stored = alice
        .at(b.addr)
        .get_json(&format!("/api/rooms/{other}/messages"))
        .await;
    assert_eq!(stored["messages"], json!([]));
}

/// `user`'s `[read_seq, unread, mentions]` for `slug` in `GET /api/rooms` on `natter`.
async fn counts(
    natter: &Natter,
    user: &natter_test_support::TestUser,
    slug: &str,
) -> serde_json::Value {
    let rooms = user.at(natter.addr).get_json("/api/rooms").await;
    let room = rooms["rooms"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["slug"] == slug)
        .unwrap()
        .clone();
    json!([room["read_seq"], room["unread"], room["mentions"]])
}

/// CONTRACT §11: bob reads on one process while others send (some mentioning him) on
/// both; his counts on either process are what the stored messages say, and stay so
/// after every process restarts. His marker's moves reach his sockets on both processes,
/// and typing crosses processes too.
#[tokio::test]
#[ignore = "needs TEST_DATABASE_URL and TEST_REDIS_URL"]
async fn unread_counts_are_exact_on_every_process_and_after_a_restart() {
    let (database, redis) = shared_services().await;
    let env = with_quick_sends(env_of(&database, &redis));
    let (a, b) = tokio::join!(Natter::start(&env), Natter::start(&env));
    let alice = register(a.addr, "alice").await;
    let bob = register(a.addr, "bob").await;
    let carol = register(b.addr, "carol").await;
    let slug = alice.create_room("general").await;
    let mut bob_ws = bob.connect(&slug).await;
    let mut bob_on_b = bob.at(b.addr).connect(&slug).await;
    let mut carol_ws = carol.connect(&slug).await;

    let mut read = 0;
    for round in 0..4 {
        after_the_quick_gap().await;
        let ack = alice
            .post_json(
                &format!("/api/rooms/{slug}/messages"),
                &json!({"body": format!("round {round} from A, @bob")}),
            )
            .await;
        assert_eq!(ack.0, 201, "{}", ack.1);
        let ack = carol_ws
            .say(&format!("round {round} from B"), &format!("c{round}"))
            .await;
        assert_eq!(ack["type"], "ack", "{ack}");
        if round == 1 {
            read = ack["seq"].as_i64().unwrap();
            bob_ws.send(json!({"type": "read", "seq": read})).await;
            assert_eq!(bob_ws.next_of_type("read").await["seq"], read);
            // His socket on the other process hears the marker move too.
            assert_eq!(bob_on_b.next_of_type("read").await["seq"], read);
        }
    }
    // What the store says: the messages after bob's marker, not his, and those naming him.
    let history = bob.get_json(&format!("/api/rooms/{slug}/messages")).await;
    let after: Vec<&serde_json::Value> = history["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["seq"].as_i64().unwrap() > read && m["user"] != "bob")
        .collect();
    let mentioning = after
        .iter()
        .filter(|m| m["mentions"] == json!(["bob"]))
        .count();
    let expected = json!([read, after.len(), mentioning]);
    assert_eq!(expected, json!([read, 4, 2]));
    assert_eq!(counts(&a, &bob, &slug).await, expected);
    assert_eq!(counts(&b, &bob, &slug).await, expected);

    // Typing on B reaches A.
    carol_ws.send(json!({"type": "typing"})).await;
    assert_eq!(
        bob_ws.next_of_type("typing").await,
        json!({"type": "typing", "users": ["carol"]})
    );

    drop((bob_ws, bob_on_b, carol_ws));
    drop((a, b));
    let (a, b) = tokio::join!(Natter::start(&env), Natter::start(&env));
    assert_eq!(counts(&a, &bob, &slug).await, expected);
    assert_eq!(counts(&b, &bob, &slug).await, expected);
}
