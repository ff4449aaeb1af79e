//! Faults lose nothing: a Redis restart mid-conversation, PostgreSQL unreachable.

use std::time::Duration;

use serde_json::{json, Value};

use crate::helpers::{register, seqs, shared_services, Ws};
use crate::postgres_support::{address, with_address};
use crate::proxy_support::Proxy;
use crate::support::{eventually, shared_env, status, Natter, PrivateRedis};

/// Reads frames until a `history` answer arrives; returns its messages' seqs.
async fn history_after(ws: &mut Ws, after: i64) -> Vec<i64> {
    ws.send(json!({"type": "history", "after": after, "limit": 100}))
        .await;
    let history = ws.next_of_type("history").await;
    seqs(&history["messages"])
}

#[tokio::test]
async fn a_redis_restart_mid_conversation_loses_nothing() {
    let Some((database, _shared_redis)) = shared_services().await else {
        return;
    };
    let Some(mut redis) = PrivateRedis::start().await else {
        return;
    };
    let env = shared_env(&database.url, &redis.url(), "natter-restart:");
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
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let during = alice_ws.say("during", "a2").await;
    assert_eq!(during["type"], "ack", "{during}");

    // B's subscriber comes back by itself and tells bob to resync; nothing is missed.
    let resync = bob_ws.next_of_type("resync").await;
    let after = resync["after"].as_i64().unwrap();
    assert!(after >= before["seq"].as_i64().unwrap());
    let mut seen = history_after(&mut bob_ws, before["seq"].as_i64().unwrap()).await;
    assert!(seen.contains(&during["seq"].as_i64().unwrap()), "{seen:?}");

    // Fan-out works again.
    let mut live = None;
    for attempt in 0..20 {
        tokio::time::sleep(Duration::from_millis(1100)).await;
        let ack = alice_ws.say("after", &format!("a3-{attempt}")).await;
        if ack["type"] == "ack" {
            live = Some(ack);
            break;
        }
    }
    let live = live.expect("sends are acked after the restart");
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
async fn postgres_unreachable_means_unavailable_never_a_false_ack() {
    let Some((database, redis)) = shared_services().await else {
        return;
    };
    let proxy = Proxy::start(address(&database.url)).await;
    let proxied = with_address(&database.url, &proxy.addr.to_string());
    let env = shared_env(&proxied, &redis.url, &redis.prefix);
    let mut natter = Natter::start(&env).await;
    let alice = register(natter.addr, "alice").await;
    let slug = alice.create_room("general").await;
    let mut ws = alice.connect(&slug).await;
    assert_eq!(ws.say("stored", "p1").await["type"], "ack");

    proxy.cut();
    tokio::time::sleep(Duration::from_millis(1100)).await;
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
