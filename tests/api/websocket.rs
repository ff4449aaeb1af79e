use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

use natter::domain::{MessageBody, NewMessage, Slug, Username};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;

use natter_test_support::{seqs, TestApp, Ws};

async fn upgrades_are_refused_before_the_handshake_without_session_origin_or_room() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice").await;
    let slug = alice.create_room("general").await;

    let mut anonymous = app.user("bob").await;
    anonymous.cookie = "natter_session=forged".into();
    assert_eq!(
        anonymous
            .open(&format!("/ws/rooms/{slug}"), None)
            .await
            .err(),
        Some(401)
    );
    assert_eq!(
        alice
            .open(&format!("/ws/rooms/{slug}"), Some("http://evil.example"))
            .await
            .err(),
        Some(403)
    );
    assert_eq!(alice.open("/ws/rooms/nowhere", None).await.err(), Some(404));
    // A look-up that found nothing is not remembered: the room can be created after it.
    assert_eq!(alice.create_room("nowhere").await, "nowhere");
    assert!(alice.open("/ws/rooms/nowhere", None).await.is_ok());
    assert_eq!(
        alice
            .open(&format!("/ws/rooms/{slug}?since=x"), None)
            .await
            .err(),
        Some(400)
    );
    // A request that is not a WebSocket handshake is refused, not upgraded.
    let plain = alice.client.get(alice.url(&format!("/ws/rooms/{slug}")));
    assert_eq!(plain.send().await.unwrap().status(), 426);
    let wrong_version = alice
        .client
        .get(alice.url(&format!("/ws/rooms/{slug}")))
        .header("connection", "Upgrade")
        .header("upgrade", "websocket")
        .header("sec-websocket-version", "8")
        .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==");
    assert_eq!(wrong_version.send().await.unwrap().status(), 400);
    // The page's own origin is fine.
    let own = format!("http://{}", app.addr);
    assert!(alice
        .open(&format!("/ws/rooms/{slug}"), Some(&own))
        .await
        .is_ok());
}

async fn joined_then_history_open_every_connection() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let slug = alice.create_room("General Chat").await;
    let _alice_ws = alice.connect(&slug).await;
    let bob_ws = bob.connect(&slug).await;
    let joined = bob_ws.joined.as_ref().unwrap();
    assert_eq!(
        joined["room"],
        json!({"slug": "general-chat", "name": "General Chat", "kind": "public"})
    );
    assert_eq!(joined["user"], json!({"id": bob.id, "username": "bob"}));
    assert_eq!(joined["members"], json!(["alice", "bob"]));
    assert_eq!(bob_ws.history.as_ref().unwrap()["messages"], json!([]));
}

async fn a_message_reaches_every_member_with_identity_from_the_session() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let slug = alice.create_room("general").await;
    let mut alice_ws = alice.connect(&slug).await;
    let mut bob_ws = bob.connect(&slug).await;

    alice_ws
        .send(json!({"type": "send", "body": "  hello <b>bob</b> é 🎉  ", "client_id": "c1", "user": "mallory", "room": "elsewhere", "id": 99}))
        .await;
    let mut ack = None;
    let mut own = None;
    while ack.is_none() || own.is_none() {
        let frame = alice_ws.next_frame().await;
        match frame["type"].as_str() {
            Some("ack") => ack = Some(frame),
            Some("message") => own = Some(frame),
            _ => {}
        }
    }
    let ack = ack.unwrap();
    assert_eq!(ack["client_id"], "c1");
    assert_eq!(ack["seq"], 1);
    let message = bob_ws.next_of_type("message").await;
    assert_eq!(message, own.unwrap());
    assert_eq!(message["id"], ack["id"]);
    assert_eq!(message["user"], "alice");
    assert_eq!(message["room"], slug.as_str());
    assert_eq!(message["body"], "hello <b>bob</b> é 🎉");
    let sent_at = message["sent_at"].as_str().unwrap();
    assert!(
        sent_at.ends_with('Z') && chrono::DateTime::parse_from_rfc3339(sent_at).is_ok(),
        "{sent_at}"
    );
}

/// Frames longer than the socket's buffer go out in fragments; the client gets the same
/// message, live and in a later joiner's history.
async fn a_long_message_arrives_whole_live_and_in_history() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let slug = alice.create_room("general").await;
    let mut alice_ws = alice.connect(&slug).await;
    let mut bob_ws = bob.connect(&slug).await;
    let body = "é🎉 long ".repeat(500);
    let body = body.trim();
    assert!(body.chars().count() <= 4000 && body.len() > 4 * 1024);

    let ack = alice_ws.say(body, "long").await;
    assert_eq!(ack["type"], "ack", "{ack}");
    let live = bob_ws.next_of_type("message").await;
    assert_eq!(live["body"], body);

    let carol = app.user("carol").await;
    let carol_ws = carol.connect(&slug).await;
    let history = &carol_ws.history.as_ref().unwrap()["messages"];
    assert_eq!(history[0]["body"], body);
}

async fn a_resend_with_the_same_client_id_is_stored_once_and_not_limited_again() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice").await;
    let slug = alice.create_room("general").await;
    let mut ws = alice.connect(&slug).await;
    let first = ws.say("only once", "same").await;
    assert_eq!(first["type"], "ack");
    // Within the same second: a new message would be rate limited, the resend is not.
    let second = ws.say("only once", "same").await;
    assert_eq!(second["type"], "ack", "{second}");
    assert_eq!(
        (&second["id"], &second["seq"]),
        (&first["id"], &first["seq"])
    );
    let stored = alice.get_json(&format!("/api/rooms/{slug}/messages")).await;
    assert_eq!(stored["messages"].as_array().unwrap().len(), 1);
}

/// A resend the limiter would have let through takes no slot: the next new message
/// right after it is accepted.
async fn a_resend_outside_the_limit_leaves_the_slot_for_the_next_message() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice").await;
    let slug = alice.create_room("general").await;
    let mut ws = alice.connect(&slug).await;
    let first = ws.say("hello", "c1").await;
    assert_eq!(first["type"], "ack");
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let resent = ws.say("hello", "c1").await;
    assert_eq!(
        (&resent["type"], &resent["id"]),
        (&json!("ack"), &first["id"])
    );
    let next = ws.say("a new one", "c2").await;
    assert_eq!(next["type"], "ack", "the resend gave its slot back: {next}");
    let stored = alice.get_json(&format!("/api/rooms/{slug}/messages")).await;
    assert_eq!(stored["messages"].as_array().unwrap().len(), 2);
}

async fn since_resumes_with_every_message_after_it() {
    let app = TestApp::spawn().await;
    let slug = app.user("owner").await.create_room("general").await;
    for i in 0..4 {
        let author = app.user(&format!("author{i}")).await;
        let mut ws = author.connect(&slug).await;
        assert_eq!(ws.say(&format!("m{i}"), "c").await["type"], "ack");
    }
    let reader = app.user("reader").await;
    let resumed = reader
        .connect_path(&format!("/ws/rooms/{slug}?since=2"))
        .await;
    assert_eq!(resumed.history_seqs(), vec![3, 4]);
    let fresh = reader.connect(&slug).await;
    assert_eq!(fresh.history_seqs(), vec![1, 2, 3, 4]);
}

async fn ping_pong_and_history_requests_are_answered() {
    let app = TestApp::spawn().await;
    let slug = app.user("owner").await.create_room("general").await;
    for i in 0..3 {
        let author = app.user(&format!("author{i}")).await;
        assert_eq!(
            author.connect(&slug).await.say("x", "c").await["type"],
            "ack"
        );
    }
    let reader = app.user("reader").await;
    let mut ws = reader.connect(&slug).await;
    ws.send(json!({"type": "ping"})).await;
    assert_eq!(ws.next_frame().await, json!({"type": "pong"}));
    ws.send(json!({"type": "history", "before": 3, "limit": 1}))
        .await;
    let page = ws.next_of_type("history").await;
    assert_eq!(natter_test_support::seqs(&page["messages"]), vec![2]);
    ws.send(json!({"type": "history", "after": 1})).await;
    let page = ws.next_of_type("history").await;
    assert_eq!(natter_test_support::seqs(&page["messages"]), vec![2, 3]);
    ws.send(json!({"type": "history", "after": 1, "limit": 500}))
        .await;
    assert_eq!(ws.next_frame().await["code"], "invalid_frame");
}

async fn bad_frames_get_error_frames_and_the_connection_stays_open() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice").await;
    let slug = alice.create_room("general").await;
    let mut ws = alice.connect(&slug).await;

    let cases = [
        (
            json!({"type": "send", "body": "   ", "client_id": "e1"}),
            "empty_body",
        ),
        (
            json!({"type": "send", "body": "x".repeat(4001), "client_id": "e2"}),
            "body_too_long",
        ),
        (
            json!({"type": "send", "body": "a\u{0}b", "client_id": "e3"}),
            "invalid_frame",
        ),
        (
            json!({"type": "send", "body": 42, "client_id": "e4"}),
            "invalid_frame",
        ),
        (
            json!({"type": "send", "body": "x", "client_id": "c".repeat(65)}),
            "invalid_frame",
        ),
        (json!({"type": "dance"}), "invalid_frame"),
        (json!({"no_type": true}), "invalid_frame"),
    ];
    for (frame, code) in cases {
        ws.send(frame.clone()).await;
        let error = ws.next_of_type("error").await;
        assert_eq!(error["code"], code, "{frame}");
        assert!(error["message"].is_string());
        if let Some(client_id) = frame.get("client_id") {
            assert_eq!(
                &error["client_id"], client_id,
                "the refusal echoes the client_id"
            );
        }
    }
    ws.send_raw(Message::text("not json at all")).await;
    assert_eq!(ws.next_of_type("error").await["code"], "invalid_frame");
    ws.send_raw(Message::binary(vec![1, 2, 3])).await;
    assert_eq!(ws.next_of_type("error").await["code"], "invalid_frame");
    // Still open and working.
    assert_eq!(ws.say("still here", "ok").await["type"], "ack");
}

async fn a_frame_over_64_kib_is_refused() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice").await;
    let slug = alice.create_room("general").await;
    let mut ws = alice.connect(&slug).await;
    ws.send(json!({"type": "send", "body": "x".repeat(70 * 1024)}))
        .await;
    let mut saw_refusal = false;
    loop {
        match tokio::time::timeout(
            natter_test_support::WAIT,
            futures_util::StreamExt::next(&mut ws.socket),
        )
        .await
        .expect("answered in time")
        {
            Some(Ok(Message::Text(text))) => {
                let frame: Value = serde_json::from_str(&text).unwrap();
                if frame["type"] == "error" {
                    assert_eq!(frame["code"], "frame_too_large");
                    saw_refusal = true;
                }
            }
            Some(Ok(Message::Close(Some(close)))) => {
                assert_eq!(u16::from(close.code), 1009);
                saw_refusal = true;
                break;
            }
            Some(Ok(Message::Close(None))) | Some(Err(_)) | None => break,
            Some(Ok(_)) => {}
        }
    }
    assert!(
        saw_refusal,
        "the oversized frame was refused with frame_too_large / 1009"
    );
    // Nothing was stored.
    let stored = alice.get_json(&format!("/api/rooms/{slug}/messages")).await;
    assert_eq!(stored["messages"], json!([]));
}

async fn members_are_announced_on_first_join_and_last_leave() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let slug = alice.create_room("general").await;
    let mut alice_ws = alice.connect(&slug).await;

    let bob_first = bob.connect(&slug).await;
    assert_eq!(alice_ws.next_of_type("member_joined").await["user"], "bob");
    let bob_second = bob.connect(&slug).await;
    drop(bob_first);
    drop(bob_second);
    // One member_left for bob, after his last connection closed; no second member_joined.
    let frame = alice_ws.next_frame().await;
    assert_eq!(frame, json!({"type": "member_left", "user": "bob"}));
    alice_ws.send(json!({"type": "ping"})).await;
    assert_eq!(alice_ws.next_frame().await["type"], "pong");
}

/// Presence frames after the first of a burst wait briefly in the hub for company; a
/// message must not overtake them, and a message arriving meanwhile takes them along.
async fn a_joiners_first_message_arrives_after_their_member_joined() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let carol = app.user("carol").await;
    let slug = alice.create_room("general").await;
    let mut alice_ws = alice.connect(&slug).await;

    let _carol_ws = carol.connect(&slug).await;
    let mut bob_ws = bob.connect(&slug).await;
    assert_eq!(bob_ws.say("hello", "b1").await["type"], "ack");
    let frames = [
        alice_ws.next_frame().await,
        alice_ws.next_frame().await,
        alice_ws.next_frame().await,
    ];
    assert_eq!(frames[0], json!({"type": "member_joined", "user": "carol"}));
    assert_eq!(frames[1], json!({"type": "member_joined", "user": "bob"}));
    assert_eq!(
        (&frames[2]["type"], &frames[2]["body"]),
        (&json!("message"), &json!("hello"))
    );
    // A presence change with no message after it still arrives on its own.
    drop(bob_ws);
    assert_eq!(
        alice_ws.next_frame().await,
        json!({"type": "member_left", "user": "bob"})
    );
}

async fn more_than_20_other_frames_a_second_are_rate_limited() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice").await;
    let slug = alice.create_room("general").await;
    let mut ws = alice.connect(&slug).await;
    for _ in 0..25 {
        ws.send(json!({"type": "ping"})).await;
    }
    let mut pongs = 0;
    let mut limited = 0;
    for _ in 0..25 {
        let frame = ws.next_frame().await;
        match frame["type"].as_str().unwrap() {
            "pong" => pongs += 1,
            "error" => {
                assert_eq!(frame["code"], "rate_limited");
                assert!(frame["retry_after_ms"].as_u64().unwrap() <= 1000);
                limited += 1;
            }
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!((pongs, limited), (20, 5));
}

async fn many_senders_are_delivered_in_seq_order_without_gaps() {
    let app = TestApp::spawn().await;
    let slug = app.user("owner").await.create_room("busy").await;
    let reader = app.user("reader").await;
    let mut reader_ws = reader.connect(&slug).await;
    let mut senders: Vec<Ws> = Vec::new();
    for i in 0..12 {
        senders.push(app.user(&format!("sender{i}")).await.connect(&slug).await);
    }
    // Every sender sends at once; the store commits them in some order, the hub orders them.
    let sends = senders
        .iter_mut()
        .enumerate()
        .map(|(i, ws)| async move { ws.say(&format!("burst {i}"), &format!("b{i}")).await });
    let acks = futures_util::future::join_all(sends).await;
    assert!(acks.iter().all(|a| a["type"] == "ack"));
    let mut seen = Vec::new();
    while seen.len() < 12 {
        seen.push(
            reader_ws.next_of_type("message").await["seq"]
                .as_i64()
                .unwrap(),
        );
    }
    assert_eq!(seen, (1..=12).collect::<Vec<_>>());
}

async fn a_resume_after_more_than_1000_messages_is_truncated_and_pages_on() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice").await;
    let slug = alice.create_room("general").await;
    // 1,001 messages would take 17 minutes through the rate limits: store them directly.
    let store = app.backend.store().await;
    let room = store
        .find_room(&Slug::parse(&slug).unwrap())
        .await
        .unwrap()
        .unwrap();
    let (user, _) = store
        .find_credentials(&Username::parse("alice").unwrap())
        .await
        .unwrap()
        .unwrap();
    for chunk in (1..=1001).collect::<Vec<_>>().chunks(100) {
        let appends = chunk.iter().map(|n| {
            store.append_message(NewMessage {
                room: room.clone(),
                user: user.clone(),
                body: MessageBody::parse(&format!("message {n}")).unwrap(),
                client_id: None,
                reply_to: None,
            })
        });
        for appended in futures_util::future::join_all(appends).await {
            appended.unwrap();
        }
    }
    store.close().await;

    let mut ws = alice
        .connect_path(&format!("/ws/rooms/{slug}?since=0"))
        .await;
    let history = ws.history.clone().unwrap();
    assert_eq!(history["truncated"], true);
    assert_eq!(seqs(&history["messages"]), (1..=1000).collect::<Vec<i64>>());
    ws.send(json!({"type": "history", "after": 1000, "limit": 100}))
        .await;
    let rest = ws.next_of_type("history").await;
    assert_eq!(seqs(&rest["messages"]), vec![1001]);
    assert!(rest.get("truncated").is_none_or(|t| t == false));
}

async fn the_server_offers_no_websocket_compression() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice").await;
    let slug = alice.create_room("general").await;
    let mut request = alice
        .url(&format!("/ws/rooms/{slug}"))
        .replacen("http://", "ws://", 1)
        .into_client_request()
        .unwrap();
    let headers = request.headers_mut();
    headers.insert("cookie", HeaderValue::from_str(&alice.cookie).unwrap());
    headers.insert(
        "sec-websocket-extensions",
        HeaderValue::from_static("permessage-deflate; client_max_window_bits"),
    );
    let (_socket, response) = tokio_tungstenite::connect_async(request).await.unwrap();
    assert_eq!(response.status(), 101);
    assert!(response.headers().get("sec-websocket-extensions").is_none());
}

api_tests!(
    upgrades_are_refused_before_the_handshake_without_session_origin_or_room,
    joined_then_history_open_every_connection,
    a_message_reaches_every_member_with_identity_from_the_session,
    a_long_message_arrives_whole_live_and_in_history,
    a_resend_with_the_same_client_id_is_stored_once_and_not_limited_again,
    a_resend_outside_the_limit_leaves_the_slot_for_the_next_message,
    since_resumes_with_every_message_after_it,
    ping_pong_and_history_requests_are_answered,
    bad_frames_get_error_frames_and_the_connection_stays_open,
    a_frame_over_64_kib_is_refused,
    members_are_announced_on_first_join_and_last_leave,
    a_joiners_first_message_arrives_after_their_member_joined,
    more_than_20_other_frames_a_second_are_rate_limited,
    many_senders_are_delivered_in_seq_order_without_gaps,
    a_resume_after_more_than_1000_messages_is_truncated_and_pages_on,
    the_server_offers_no_websocket_compression,
);
