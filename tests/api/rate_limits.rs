use std::time::{Duration, Instant};

use natter_test_support::TestApp;

async fn a_second_send_within_a_second_is_refused_across_rooms_and_connections() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice").await;
    let one = alice.create_room("one").await;
    let two = alice.create_room("two").await;
    let mut first = alice.connect(&one).await;
    let mut second = alice.connect(&two).await;

    assert_eq!(first.say("hello", "a").await["type"], "ack");
    let refused = second.say("too soon", "b").await;
    assert_eq!(refused["type"], "error");
    assert_eq!(refused["code"], "rate_limited");
    assert_eq!(refused["client_id"], "b");
    let wait = refused["retry_after_ms"].as_u64().unwrap();
    assert!(wait > 0 && wait <= 1000, "{wait}");

    // The refusal did not count: after waiting what it said, the send goes through.
    tokio::time::sleep(Duration::from_millis(wait)).await;
    assert_eq!(second.say("now", "c").await["type"], "ack");
    assert!(app.metric("natter_rate_limited_total").await >= 1.0);
}

async fn the_eleventh_send_in_a_minute_is_refused_until_the_first_leaves_the_window() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice").await;
    let slug = alice.create_room("general").await;
    let mut ws = alice.connect(&slug).await;
    let started = Instant::now();
    for i in 0..10 {
        loop {
            let reply = ws.say(&format!("m{i}"), &format!("c{i}")).await;
            if reply["type"] == "ack" {
                break;
            }
            assert_eq!(reply["code"], "rate_limited");
            tokio::time::sleep(Duration::from_millis(
                reply["retry_after_ms"].as_u64().unwrap(),
            ))
            .await;
        }
    }
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let refused = ws.say("eleventh", "c10").await;
    assert_eq!(refused["code"], "rate_limited", "{refused}");
    let wait = refused["retry_after_ms"].as_u64().unwrap();
    // The first send left the window 60 s after it was accepted.
    let elapsed = started.elapsed().as_millis() as u64;
    assert!(
        wait > 1000 && wait <= 60_000 - elapsed + 1000,
        "wait {wait} after {elapsed} ms"
    );
}

api_tests!(
    a_second_send_within_a_second_is_refused_across_rooms_and_connections,
    the_eleventh_send_in_a_minute_is_refused_until_the_first_leaves_the_window,
);
