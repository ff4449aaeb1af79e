use std::time::{Duration, Instant};

use natter_test_support::TestApp;

/// The contract's own numbers (1 s apart), so the defaults stay covered end to end.
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

/// CONTRACT §5's window (10 in 60 s) scaled down so the test lives through it: sends at
/// least `GAP_MS` apart, `PER_WINDOW` in any `WINDOW_S` seconds.
const GAP_MS: u64 = 150;
const PER_WINDOW: usize = 3;
const WINDOW_S: u64 = 2;

async fn a_send_over_the_window_is_refused_until_the_first_leaves_it() {
    let (gap, per_window, window) = (
        GAP_MS.to_string(),
        PER_WINDOW.to_string(),
        WINDOW_S.to_string(),
    );
    let app = TestApp::spawn_with(&[
        ("SEND_MIN_INTERVAL_MS", &gap),
        ("SENDS_PER_WINDOW", &per_window),
        ("SEND_WINDOW", &window),
    ])
    .await;
    let alice = app.user("alice").await;
    let one = alice.create_room("one").await;
    let two = alice.create_room("two").await;
    // Per user: the window counts across rooms and connections.
    let mut sockets = [alice.connect(&one).await, alice.connect(&two).await];
    let before_first = Instant::now();
    let mut first_acked = None;
    for i in 0..PER_WINDOW {
        let ws = &mut sockets[i % 2];
        loop {
            let reply = ws.say(&format!("m{i}"), &format!("c{i}")).await;
            if reply["type"] == "ack" {
                first_acked.get_or_insert_with(Instant::now);
                break;
            }
            assert_eq!(reply["code"], "rate_limited", "{reply}");
            let wait = reply["retry_after_ms"].as_u64().unwrap();
            assert!(wait <= GAP_MS, "only the gap holds these back: {wait}");
            tokio::time::sleep(Duration::from_millis(wait)).await;
        }
    }
    let first_acked = first_acked.unwrap();
    // Past the gap, so only the full window can refuse.
    tokio::time::sleep(Duration::from_millis(GAP_MS + 50)).await;
    let before_refusal = Instant::now();
    let refused = sockets[PER_WINDOW % 2].say("one too many", "over").await;
    let after_refusal = Instant::now();
    assert_eq!(refused["code"], "rate_limited", "{refused}");
    let wait = Duration::from_millis(refused["retry_after_ms"].as_u64().unwrap());
    // The wait is until the first send leaves the window: the server accepted it between
    // `before_first` and `first_acked`, and refused between `before_refusal` and
    // `after_refusal` (1 ms of slack: the server counts whole milliseconds).
    let window = Duration::from_secs(WINDOW_S);
    let slack = Duration::from_millis(1);
    assert!(wait > Duration::from_millis(GAP_MS), "{wait:?}");
    assert!(
        wait + slack >= window.saturating_sub(after_refusal - before_first),
        "{wait:?}"
    );
    assert!(
        wait <= window.saturating_sub(before_refusal - first_acked) + slack,
        "{wait:?}"
    );

    // The refusal took no slot: once the first send has left, the next goes through.
    tokio::time::sleep(wait).await;
    assert_eq!(sockets[0].say("now", "again").await["type"], "ack");
}

api_tests!(
    a_second_send_within_a_second_is_refused_across_rooms_and_connections,
    a_send_over_the_window_is_refused_until_the_first_leaves_it,
);
