//! CONTRACT §7a for WebSockets: a client that stops reading, big histories, sockets per
//! user, the frame budget, strict frames and `?since=` beyond the end.

use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::Message;

use natter::domain::{MessageBody, NewMessage, Slug, Username};

use natter_test_support::{seqs, TestApp, TestUser, Ws, WAIT};

const MAX_HISTORY_JSON: usize = 512 * 1024;

/// Stores `count` messages of 4,000 four-byte characters (16 KB of JSON each) in `slug`,
/// as `username`, straight through the store (the rate limits allow one a second).
async fn seed_big_messages(app: &TestApp, slug: &str, username: &str, count: usize) {
    let store = app.backend.store().await;
    let room = store
        .find_room(&Slug::parse(slug).unwrap())
        .await
        .unwrap()
        .unwrap();
    let (user, _) = store
        .find_credentials(&Username::parse(username).unwrap())
        .await
        .unwrap()
        .unwrap();
    for n in 0..count {
        let body = format!("{n} {}", "🎉".repeat(3990));
        store
            .append_message(NewMessage {
                room: room.clone(),
                user: user.clone(),
                body: MessageBody::parse(&body).unwrap(),
                client_id: None,
                reply_to: None,
            })
            .await
            .unwrap();
    }
    store.close().await;
}

/// A socket whose client never reads: its receive buffer is tiny, so what the server
/// writes piles up on the server's side.
async fn open_silent(user: &TestUser, app: &TestApp, path: &str) -> natter_test_support::RawSocket {
    let tcp = tokio::net::TcpSocket::new_v4().unwrap();
    tcp.set_recv_buffer_size(4096).unwrap();
    let stream = tcp.connect(app.addr).await.unwrap();
    let mut request = format!("ws://{}{}", app.addr, path)
        .into_client_request()
        .unwrap();
    request
        .headers_mut()
        .insert("cookie", HeaderValue::from_str(&user.cookie).unwrap());
    let stream = tokio_tungstenite::MaybeTlsStream::Plain(stream);
    let (socket, _) = tokio_tungstenite::client_async(request, stream)
        .await
        .expect("upgrade accepted");
    socket
}

/// Asks for far more than any socket buffer holds (ten 512 KiB histories), without reading.
async fn ask_for_megabytes(socket: &mut natter_test_support::RawSocket) {
    for _ in 0..10 {
        let ask = json!({"type": "history", "after": 0, "limit": 100});
        socket.send(Message::text(ask.to_string())).await.unwrap();
    }
}

/// Waits until the server counts `open` sockets; false if it does not within `limit`.
async fn sockets_become(app: &TestApp, open: f64, limit: Duration) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if app.metric("natter_ws_connections").await == open {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

/// The next text frame's raw JSON.
async fn next_text(ws: &mut Ws) -> String {
    loop {
        let message = tokio::time::timeout(WAIT, ws.socket.next())
            .await
            .expect("a frame in time")
            .expect("socket open")
            .expect("frame");
        match message {
            Message::Text(text) => return text.to_string(),
            Message::Close(frame) => panic!("socket closed: {frame:?}"),
            _ => continue,
        }
    }
}

async fn a_socket_that_stops_reading_is_closed_after_the_write_timeout() {
    let app = TestApp::spawn_with(&[("WS_WRITE_TIMEOUT", "1")]).await;
    let alice = app.user("alice").await;
    let slug = alice.create_room("general").await;
    seed_big_messages(&app, &slug, "alice", 100).await;

    let mut silent = open_silent(&alice, &app, &format!("/ws/rooms/{slug}?since=0")).await;
    ask_for_megabytes(&mut silent).await;
    assert!(
        sockets_become(&app, 0.0, WAIT).await,
        "a socket whose write waited over WS_WRITE_TIMEOUT is still open"
    );
    // The server is fine for everyone else.
    let mut other = alice.connect(&slug).await;
    assert_eq!(other.say("still here", "c1").await["type"], "ack");
}

/// Alice's socket, asking for megabytes and reading none, once the server is stuck in a
/// write to it (keep the socket: dropping it would end the write).
async fn a_socket_stuck_in_a_write(
    app: &TestApp,
    alice: &TestUser,
) -> natter_test_support::RawSocket {
    let slug = alice.create_room("general").await;
    seed_big_messages(app, &slug, "alice", 100).await;
    let mut silent = open_silent(alice, app, &format!("/ws/rooms/{slug}?since=0")).await;
    ask_for_megabytes(&mut silent).await;
    assert!(sockets_become(app, 1.0, WAIT).await);
    // Time to fill every buffer on the way: the server is then stuck in a write.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        app.metric("natter_ws_connections").await,
        1.0,
        "the socket closed before its write was pending"
    );
    silent
}

async fn logout_closes_a_socket_whose_write_is_pending() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice").await;
    let _silent = a_socket_stuck_in_a_write(&app, &alice).await;
    let logout = alice.client.post(app.url("/api/logout")).send().await;
    assert!(logout.unwrap().status().is_success());
    assert!(
        sockets_become(&app, 0.0, Duration::from_secs(5)).await,
        "logout did not close a socket with a pending write within 5 s"
    );
}

/// §7a: session expiry closes a socket on time even while a write to it is pending.
async fn session_expiry_closes_a_socket_whose_write_is_pending() {
    let ttl = Duration::from_secs(10);
    let app = TestApp::spawn_with(&[("SESSION_TTL", "10")]).await;
    let signed_in = Instant::now();
    let alice = app.user("alice").await;
    let _silent = a_socket_stuck_in_a_write(&app, &alice).await;
    let expiry_and_grace = (ttl + Duration::from_secs(5)).saturating_sub(signed_in.elapsed());
    assert!(
        sockets_become(&app, 0.0, expiry_and_grace).await,
        "the session's expiry did not close a socket with a pending write"
    );
}

/// §7a, §7: shutdown closes a socket with a pending write and exits in time.
async fn shutdown_is_not_held_up_by_a_socket_whose_write_is_pending() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice").await;
    let _silent = a_socket_stuck_in_a_write(&app, &alice).await;
    let stopping = Instant::now();
    app.stop().await;
    assert!(
        stopping.elapsed() < Duration::from_secs(10),
        "shutdown took {:?} with a socket stuck in a write",
        stopping.elapsed()
    );
}

async fn a_frame_over_the_unsent_limit_closes_the_socket_with_1008() {
    let app = TestApp::spawn_with(&[("WS_MAX_UNSENT_BYTES", "65536")]).await;
    let alice = app.user("alice").await;
    let slug = alice.create_room("general").await;
    seed_big_messages(&app, &slug, "alice", 10).await;

    let socket = alice
        .open(&format!("/ws/rooms/{slug}?since=0"), None)
        .await
        .unwrap();
    let mut ws = Ws::new(socket);
    assert_eq!(ws.next_frame().await["type"], "joined");
    assert_eq!(ws.closed().await, Some(1008));
}

/// Joins `slug` with `?since=0`: the socket, past `joined`, and its `history` frame's text.
async fn join_since_zero(user: &TestUser, slug: &str) -> (Ws, String) {
    let socket = user
        .open(&format!("/ws/rooms/{slug}?since=0"), None)
        .await
        .unwrap();
    let mut ws = Ws::new(socket);
    assert_eq!(ws.next_frame().await["type"], "joined");
    let raw = next_text(&mut ws).await;
    (ws, raw)
}

async fn history_frames_hold_at_most_512_kib_and_say_truncated() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice").await;
    let slug = alice.create_room("general").await;
    seed_big_messages(&app, &slug, "alice", 100).await;

    // ?since= keeps the oldest; the client pages on after the last one it got.
    let (mut ws, raw) = join_since_zero(&alice, &slug).await;
    assert!(raw.len() <= MAX_HISTORY_JSON, "{} bytes", raw.len());
    let history: Value = serde_json::from_str(&raw).unwrap();
    assert_eq!(history["type"], "history");
    assert_eq!(history["truncated"], true);
    let first_page = seqs(&history["messages"]);
    assert!(first_page.len() > 10, "{first_page:?}");
    assert_eq!(
        first_page,
        (1..=first_page.len() as i64).collect::<Vec<_>>()
    );

    let mut got = first_page.clone();
    while got.len() < 100 {
        let after = *got.last().unwrap();
        ws.send(json!({"type": "history", "after": after, "limit": 100}))
            .await;
        let raw = next_text(&mut ws).await;
        assert!(raw.len() <= MAX_HISTORY_JSON, "{} bytes", raw.len());
        let page: Value = serde_json::from_str(&raw).unwrap();
        assert_eq!(page["type"], "history");
        let seqs = seqs(&page["messages"]);
        assert_eq!(seqs[0], after + 1);
        assert_eq!(page["truncated"] == true, seqs.last() != Some(&100));
        got.extend(seqs);
    }
    assert_eq!(got, (1..=100).collect::<Vec<_>>());

    // `before` keeps the newest.
    ws.send(json!({"type": "history", "before": 101, "limit": 100}))
        .await;
    let raw = next_text(&mut ws).await;
    assert!(raw.len() <= MAX_HISTORY_JSON, "{} bytes", raw.len());
    let page: Value = serde_json::from_str(&raw).unwrap();
    assert_eq!(page["truncated"], true);
    assert_eq!(seqs(&page["messages"]).last(), Some(&100));

    // A join without since (50 messages of 16 KB are due) keeps the newest too.
    let socket = alice
        .open(&format!("/ws/rooms/{slug}"), None)
        .await
        .unwrap();
    let mut ws = Ws::new(socket);
    assert_eq!(ws.next_frame().await["type"], "joined");
    let raw = next_text(&mut ws).await;
    assert!(raw.len() <= MAX_HISTORY_JSON, "{} bytes", raw.len());
    let history: Value = serde_json::from_str(&raw).unwrap();
    assert_eq!(history["truncated"], true);
    assert_eq!(seqs(&history["messages"]).last(), Some(&100));
}

async fn a_user_holds_at_most_20_sockets_and_a_closed_one_frees_its_place() {
    let app = TestApp::spawn_with(&[("MAX_UPGRADES_PER_USER", "1000")]).await;
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let slug = alice.create_room("general").await;
    let path = format!("/ws/rooms/{slug}");
    let mut sockets = Vec::new();
    for _ in 0..20 {
        sockets.push(alice.open(&path, None).await.expect("within the limit"));
    }
    assert_eq!(alice.open(&path, None).await.err(), Some(429));
    // Another user is not affected.
    assert!(bob.open(&path, None).await.is_ok());

    let mut closing = sockets.pop().unwrap();
    closing.close(None).await.unwrap();
    drop(closing);
    let start = Instant::now();
    loop {
        match alice.open(&path, None).await {
            Ok(_) => break,
            Err(429) if start.elapsed() < WAIT => {
                tokio::time::sleep(Duration::from_millis(50)).await
            }
            Err(status) => panic!("the freed place was not given back: {status}"),
        }
    }
}

async fn at_most_10_upgrades_per_user_in_10_seconds() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let slug = alice.create_room("general").await;
    let path = format!("/ws/rooms/{slug}");
    for _ in 0..10 {
        let mut socket = alice.open(&path, None).await.expect("within the limit");
        socket.close(None).await.unwrap();
    }
    let mut request = format!("ws://{}{}", app.addr, path)
        .into_client_request()
        .unwrap();
    request
        .headers_mut()
        .insert("cookie", HeaderValue::from_str(&alice.cookie).unwrap());
    match tokio_tungstenite::connect_async(request).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 429);
            let retry: u64 = response.headers()["retry-after"]
                .to_str()
                .unwrap()
                .parse()
                .unwrap();
            assert!((1..=10).contains(&retry), "{retry}");
        }
        other => panic!("the 11th upgrade in 10 s was not refused: {other:?}"),
    }
    assert!(bob.open(&path, None).await.is_ok());
}

/// Sends `count` frames and returns the `error` frames they got, in order (a `send`
/// marks the end: accepted ones are outside the budget).
async fn errors_for(ws: &mut Ws, frame: Message, count: usize) -> Vec<Value> {
    for _ in 0..count {
        ws.send_raw(frame.clone()).await;
    }
    ws.send(json!({"type": "send", "body": "end", "client_id": "end"}))
        .await;
    let mut errors = Vec::new();
    loop {
        let reply = ws.next_frame().await;
        if reply["client_id"] == "end" {
            return errors;
        }
        if reply["type"] == "error" {
            errors.push(reply);
        }
    }
}

async fn refused_sends_and_websocket_pings_count_against_the_frame_budget() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice").await;
    let slug = alice.create_room("general").await;

    let mut ws = alice.connect(&slug).await;
    let empty = Message::text(json!({"type": "send", "body": "  ", "client_id": "e"}).to_string());
    let errors = errors_for(&mut ws, empty, 25).await;
    assert_eq!(errors.len(), 25);
    assert!(errors[..20].iter().all(|e| e["code"] == "empty_body"));
    assert!(errors[20..]
        .iter()
        .all(|e| e["code"] == "rate_limited" && e["client_id"] == "e"));

    let mut ws = alice.connect(&slug).await;
    let errors = errors_for(&mut ws, Message::Ping(Default::default()), 25).await;
    assert!(
        !errors.is_empty(),
        "25 WebSocket pings in a second were not limited"
    );
    assert!(errors.iter().all(|e| e["code"] == "rate_limited"));
}

async fn duplicate_keys_arrays_and_negative_seqs_are_invalid_frames() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice").await;
    let slug = alice.create_room("general").await;
    let mut ws = alice.connect(&slug).await;
    for raw in [
        r#"{"type":"send","body":"first","body":"second","client_id":"d"}"#,
        r#"["send","x"]"#,
        r#"{"type":"history","before":-1}"#,
        r#"{"type":"history","after":-5,"limit":10}"#,
    ] {
        ws.send_raw(Message::text(raw)).await;
        let reply = ws.next_frame().await;
        assert_eq!(reply["type"], "error", "{raw}: {reply}");
        assert_eq!(reply["code"], "invalid_frame", "{raw}: {reply}");
    }
    // Nothing was stored.
    assert_eq!(ws.say("real", "r").await["seq"], 1);
}

async fn since_above_the_last_seq_still_gets_live_messages() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice").await;
    let slug = alice.create_room("general").await;
    let mut ws = alice
        .connect_path(&format!("/ws/rooms/{slug}?since=50"))
        .await;
    assert_eq!(ws.history_seqs(), Vec::<i64>::new());
    ws.send(json!({"type": "send", "body": "after the end", "client_id": "c1"}))
        .await;
    let (mut acked, mut delivered) = (false, None);
    while !acked || delivered.is_none() {
        let frame = ws.next_frame().await;
        match frame["type"].as_str() {
            Some("ack") => acked = true,
            Some("message") => delivered = Some(frame),
            _ => {}
        }
    }
    let message = delivered.unwrap();
    assert_eq!(message["seq"], 1);
    assert_eq!(message["body"], "after the end");
}

/// The frame budget and the history bound are configurable (`WS_FRAMES_PER_SECOND`,
/// `WS_MAX_HISTORY_BYTES`), and the socket meets the configured numbers.
async fn the_frame_budget_and_the_history_bound_are_what_is_configured() {
    let app = TestApp::spawn_with(&[
        ("WS_FRAMES_PER_SECOND", "3"),
        ("WS_MAX_HISTORY_BYTES", "65536"),
    ])
    .await;
    let alice = app.user("alice").await;
    let slug = alice.create_room("general").await;

    // Each seeded message is ≈ 16.1 KB of JSON: four fit in 64 KiB, not five. (Seeded
    // before anyone joins: the store is written behind the room cache's back.)
    seed_big_messages(&app, &slug, "alice", 10).await;
    let (mut ws, raw) = join_since_zero(&alice, &slug).await;
    assert!(raw.len() <= 65536, "{} bytes", raw.len());
    let history: Value = serde_json::from_str(&raw).unwrap();
    assert_eq!(history["truncated"], true);
    assert_eq!(seqs(&history["messages"]), [1, 2, 3, 4]);

    let empty = Message::text(json!({"type": "send", "body": "  ", "client_id": "e"}).to_string());
    let errors = errors_for(&mut ws, empty, 5).await;
    let codes: Vec<_> = errors.iter().map(|e| e["code"].clone()).collect();
    assert_eq!(
        codes,
        [
            "empty_body",
            "empty_body",
            "empty_body",
            "rate_limited",
            "rate_limited"
        ]
    );
}

api_tests!(
    a_socket_that_stops_reading_is_closed_after_the_write_timeout,
    logout_closes_a_socket_whose_write_is_pending,
    session_expiry_closes_a_socket_whose_write_is_pending,
    shutdown_is_not_held_up_by_a_socket_whose_write_is_pending,
    a_frame_over_the_unsent_limit_closes_the_socket_with_1008,
    history_frames_hold_at_most_512_kib_and_say_truncated,
    a_user_holds_at_most_20_sockets_and_a_closed_one_frees_its_place,
    at_most_10_upgrades_per_user_in_10_seconds,
    refused_sends_and_websocket_pings_count_against_the_frame_budget,
    duplicate_keys_arrays_and_negative_seqs_are_invalid_frames,
    since_above_the_last_seq_still_gets_live_messages,
    the_frame_budget_and_the_history_bound_are_what_is_configured,
);
