//! Faults lose nothing: a Redis restart mid-conversation, PostgreSQL unreachable.

use std::time::Duration;

use serde_json::{json, Value};

use crate::support::{eventually, shared_env, status, with_quick_sends, Natter, PrivateRedis};
use natter_test_support::database::{address, with_address};
use natter_test_support::proxy::Proxy;
use natter_test_support::{after_the_quick_gap, register, seqs, shared_services, Ws};

/// Reads frames until a `history` answer arrives; returns its messages' seqs.
async fn history_after(ws: &mut Ws, after: i64) -> Vec<i64> {
    ws.send(json!({"type": "history", "after": after, "limit": 100}))
        .await;
    let history = ws.next_of_type("history").await;
    seqs(&history["messages"])
}

#[tokio::test]
#[ignore = "needs TEST_DATABASE_URL, TEST_REDIS_URL and redis-server"]
async fn a_redis_restart_mid_conversation_loses_nothing() {
    let (database, _shared_redis) = shared_services().await;
    let mut redis = PrivateRedis::start().await;
    let env = with_quick_sends(shared_env(&database.url, &redis.url(), "natter-restart:"));
    let (mut a, mut b) = tokio::join!(Natter::start(&env), Natter::start(&env));
    let alice = register(a.addr, "alice").await;
    let bob = register(b.addr, "bob").await;
    let slug = alice.create_room("general").await;
    let mut alice_ws = alice.connect(&slug).await;
    let mut bob_ws = bob.connect(&slug).await;
    assert_eq!(alice_ws.say("before", "a1").await["type"], "ack");
    let before = bob_ws.next_of_type("message").await;

    redis.restart().await;

    // Sends keep being stored and acked while the processes reconnect.
    after_the_quick_gap().await;
    let during = alice_ws.say("during", "a2").await;
    assert_eq!(during["type"], "ack", "{during}");

    // B's subscriber comes back by itself and tells bob to resync; nothing is missed.
    let resync = bob_ws.next_of_type("resync").await;
    let after = resync["after"].as_i64().unwrap();
    assert!(after >= before["seq"].as_i64().unwrap());
    let mut seen = history_after(&mut bob_ws, before["seq"].as_i64().unwrap()).await;
    assert!(seen.contains(&during["seq"].as_i64().unwrap()), "{seen:?}");

    // Fan-out works again.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let mut attempt = 0;
    let live = loop {
        after_the_quick_gap().await;
        let ack = alice_ws.say("after", &format!("a3-{attempt}")).await;
        if ack["type"] == "ack" {
            break ack;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "sends are acked after the restart: {ack}"
        );
        attempt += 1;
    };
    loop {
        let frame = bob_ws.next_of_type("message").await;
        seen.push(frame["seq"].as_i64().unwrap());
        if frame["id"] == live["id"] {
            break;
        }
    }
    assert!(a.alive() && b.alive(), "no process exits");
    let ready = a.url("/readyz");
    eventually("ready again", Duration::from_secs(15), || {
        let ready = ready.clone();
        async move { status(ready).await == Some(200) }
    })
    .await;
}

#[tokio::test]
#[ignore = "needs TEST_DATABASE_URL and TEST_REDIS_URL"]
async fn postgres_unreachable_means_unavailable_never_a_false_ack() {
    let (database, redis) = shared_services().await;
    let proxy = Proxy::start(address(&database.url)).await;
    let proxied = with_address(&database.url, &proxy.addr.to_string());
    let env = with_quick_sends(shared_env(&proxied, &redis.url, &redis.prefix));
    let mut natter = Natter::start(&env).await;
    let alice = register(natter.addr, "alice").await;
    let slug = alice.create_room("general").await;
    let mut ws = alice.connect(&slug).await;
    assert_eq!(ws.say("stored", "p1").await["type"], "ack");

    proxy.cut();
    after_the_quick_gap().await;
    let refused = ws.say("not now", "p2").await;
    assert_eq!(refused["type"], "error", "{refused}");
    assert_eq!(refused["code"], "unavailable");
    let ready = natter.url("/readyz");
    eventually("/readyz says 503", Duration::from_secs(15), || {
        let ready = ready.clone();
        async move { status(ready).await == Some(503) }
    })
    .await;

    proxy.restore();
    eventually("/readyz says 200 again", Duration::from_secs(15), || {
        let ready = ready.clone();
        async move { status(ready).await == Some(200) }
    })
    .await;
    // The same client_id, resent: stored once, acked.
    let mut acked: Option<Value> = None;
    for _ in 0..10 {
        let answer = ws.say("not now", "p2").await;
        if answer["type"] == "ack" {
            acked = Some(answer);
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let acked = acked.expect("the resend is acked once the store is back");
    let stored = alice.get_json(&format!("/api/rooms/{slug}/messages")).await;
    let bodies: Vec<&str> = stored["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["body"].as_str().unwrap())
        .collect();
    assert_eq!(bodies, ["stored", "not now"]);
    assert_eq!(stored["messages"][1]["id"], acked["id"]);
    assert!(natter.alive());
}

/// The contract's bound: an acked message reaches every open socket within this, or the
/// socket is told to `resync`.
const LIVE_WITHIN: Duration = Duration::from_secs(5);

/// How a socket learned of a message: it got it, or it was told to `resync`.
#[derive(Debug, PartialEq)]
enum Heard {
    Message,
    Resync,
}

/// Reads `ws` until the message with `seq` arrives or a `resync` does; `None` if neither
/// came within [`LIVE_WITHIN`] (a silent hole).
async fn hears(ws: &mut Ws, seq: i64) -> Option<Heard> {
    tokio::time::timeout(LIVE_WITHIN, async {
        loop {
            let frame = ws.next_frame().await;
            match frame["type"].as_str() {
                Some("message") if frame["seq"] == seq => return Heard::Message,
                Some("resync") => return Heard::Resync,
                _ => {}
            }
        }
    })
    .await
    .ok()
}

#[tokio::test]
#[ignore = "needs TEST_DATABASE_URL, TEST_REDIS_URL and redis-server"]
async fn after_a_redis_restart_every_acked_message_reaches_every_socket_or_it_resyncs() {
    let (database, _shared_redis) = shared_services().await;
    let mut redis = PrivateRedis::start().await;
    let env = with_quick_sends(shared_env(&database.url, &redis.url(), "natter-hole:"));
    let (a, b) = tokio::join!(Natter::start(&env), Natter::start(&env));
    let alice = register(a.addr, "alice").await;
    let bob = register(b.addr, "bob").await;
    let slug = alice.create_room("general").await;
    // Two sockets per process: the sender's own, and one that only listens.
    let mut sockets = [
        ("alice on A", alice.connect(&slug).await),
        ("alice on B", alice.at(b.addr).connect(&slug).await),
        ("bob on B", bob.connect(&slug).await),
        ("bob on A", bob.at(a.addr).connect(&slug).await),
    ];
    let first = acked(&mut sockets[0].1, "before", "h1").await;
    for (who, ws) in &mut sockets {
        let seq = first["seq"].as_i64().unwrap();
        assert_eq!(hears(ws, seq).await, Some(Heard::Message), "{who}");
    }

    redis.restart().await;
    // Both subscribers notice the restart, reconnect and resync every socket; that resync
    // is not what this test is about, so it is taken off the sockets first.
    for (_, ws) in &mut sockets {
        ws.next_of_type("resync").await;
    }

    // Each sender's first send after the restart: on A (alice), then on B (bob).
    for (sender, client_id) in [(0, "h2"), (2, "h3")] {
        let sender_name = sockets[sender].0;
        let ack = acked(&mut sockets[sender].1, "after the restart", client_id).await;
        let seq = ack["seq"].as_i64().unwrap();
        for (who, ws) in &mut sockets {
            let heard = hears(ws, seq).await;
            assert!(
                heard.is_some(),
                "{who} got neither seq {seq} (sent by {sender_name}) nor a resync within {LIVE_WITHIN:?}"
            );
        }
    }
}

#[tokio::test]
#[ignore = "needs TEST_DATABASE_URL, TEST_REDIS_URL and redis-server"]
async fn while_redis_is_down_a_message_reaches_its_own_process_and_the_others_resync() {
    let (database, _shared_redis) = shared_services().await;
    let mut redis = PrivateRedis::start().await;
    let env = with_quick_sends(shared_env(&database.url, &redis.url(), "natter-down:"));
    let (a, b) = tokio::join!(Natter::start(&env), Natter::start(&env));
    let alice = register(a.addr, "alice").await;
    let bob = register(b.addr, "bob").await;
    let slug = alice.create_room("general").await;
    let mut alice_ws = alice.connect(&slug).await;
    let mut bob_on_a = bob.at(a.addr).connect(&slug).await;
    let mut bob_ws = bob.connect(&slug).await;
    let first = acked(&mut alice_ws, "before", "d1").await;
    let seq = first["seq"].as_i64().unwrap();
    assert_eq!(hears(&mut bob_ws, seq).await, Some(Heard::Message));

    redis.stop().await;
    // Stored (PostgreSQL answers) and acked, though it cannot be published.
    let down = acked(&mut alice_ws, "while Redis is down", "d2").await;
    let seq = down["seq"].as_i64().unwrap();
    // A's own sockets get it from A itself: nothing can tell them to resync while Redis
    // is down, so it must be the message.
    assert_eq!(
        hears(&mut alice_ws, seq).await,
        Some(Heard::Message),
        "alice on A"
    );
    assert_eq!(
        hears(&mut bob_on_a, seq).await,
        Some(Heard::Message),
        "bob on A"
    );

    // B could not hear it; once Redis is back, B's socket is told to resync.
    redis.start_again().await;
    let resync = bob_ws.next_of_type("resync").await;
    assert!(resync["after"].as_i64().unwrap() < seq, "{resync}");
}

/// Sends until acked, waiting out the send rule's gap.
async fn acked(ws: &mut Ws, body: &str, client_id: &str) -> Value {
    for _ in 0..5 {
        let answer = ws.say(body, client_id).await;
        if answer["type"] == "ack" {
            return answer;
        }
        assert_eq!(answer["code"], "rate_limited", "{answer}");
        let wait = answer["retry_after_ms"].as_u64().unwrap();
        tokio::time::sleep(Duration::from_millis(wait)).await;
    }
    panic!("{client_id} was never acked");
}
