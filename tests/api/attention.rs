//! CONTRACT §11 as far as it stands: read markers (the `read` frame and route), exact
//! `unread` and `mentions` in the room list, the message object's `mentions`, and typing.

use reqwest::Method;
use serde_json::{json, Value};

use natter_test_support::{after_the_quick_gap, TestApp, TestUser, QUICK_SENDS};

fn code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or_default()
}

/// Sends `body` over HTTP as `user` (after the quick gap) and returns the stored message.
async fn posted(user: &TestUser, slug: &str, body: &str) -> Value {
    after_the_quick_gap().await;
    user.post_message(slug, body).await
}

/// `user`'s entry for `slug` in `GET /api/rooms`: `[read_seq, last_seq, unread, mentions]`.
async fn counts(user: &TestUser, slug: &str) -> Value {
    let list = user.get_json("/api/rooms").await;
    let entry = list["rooms"]
        .as_array()
        .unwrap()
        .iter()
        .find(|room| room["slug"] == slug)
        .unwrap_or_else(|| panic!("{slug} not in {list}"))
        .clone();
    json!([
        entry["read_seq"],
        entry["last_seq"],
        entry["unread"],
        entry["mentions"]
    ])
}

async fn mark_read(user: &TestUser, slug: &str, seq: Value) -> (u16, Value) {
    user.post_json(&format!("/api/rooms/{slug}/read"), &json!({ "seq": seq }))
        .await
}

async fn unread_and_mentions_are_exact_and_a_marker_never_moves_back() {
    let app = TestApp::spawn_with(&QUICK_SENDS).await;
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let carol = app.user("carol").await;
    let slug = alice.create_room("general").await;
    posted(&alice, &slug, "before bob came").await;
    posted(&alice, &slug, "still before").await;
    // Joining never makes old history unread.
    let mut bobs = bob.connect(&slug).await;
    assert_eq!(counts(&bob, &slug).await, json!([2, 2, 0, 0]));

    posted(&alice, &slug, "hello @bob, and @nobody").await; // 3
    let unmentioned = posted(&alice, &slug, "a@bob.com is not a mention").await; // 4
    let loud = posted(&alice, &slug, "(@Bob) again, @BOB!").await; // 5
    assert_eq!(loud["mentions"], json!(["bob"]), "{loud}");
    assert_eq!(unmentioned["mentions"], json!([]));
    assert_eq!(counts(&bob, &slug).await, json!([2, 5, 3, 2]));
    // Own messages never count; someone who is not a member has no counts.
    assert_eq!(counts(&alice, &slug).await, json!([5, 5, 0, 0]));
    assert_eq!(counts(&carol, &slug).await, json!([null, null, null, null]));

    // A delete takes the message out of the counts, its mention too.
    let path = |m: &Value| format!("/api/rooms/{slug}/messages/{}", m["id"]);
    let (status, _) = alice.call(Method::DELETE, &path(&loud), None).await;
    assert_eq!(status, 200);
    assert_eq!(counts(&bob, &slug).await, json!([2, 5, 2, 1]));
    // An edit that adds a mention counts it; one that removes it takes it out.
    let body = json!({"body": "@bob: a@bob.com is not a mention"});
    let (status, edited) = alice
        .call(Method::PATCH, &path(&unmentioned), Some(&body))
        .await;
    assert_eq!(status, 200, "{edited}");
    assert_eq!(edited["message"]["mentions"], json!(["bob"]));
    assert_eq!(counts(&bob, &slug).await, json!([2, 5, 2, 2]));
    let body = json!({"body": "no mention now"});
    let (status, edited) = alice
        .call(Method::PATCH, &path(&unmentioned), Some(&body))
        .await;
    assert_eq!((status, &edited["message"]["mentions"]), (200, &json!([])));
    assert_eq!(counts(&bob, &slug).await, json!([2, 5, 2, 1]));
    // The history shows each message's mentions as the list counts them.
    let history = bob.get_json(&format!("/api/rooms/{slug}/messages")).await;
    let mentions: Vec<Value> = history["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["mentions"].clone())
        .collect();
    assert_eq!(
        mentions,
        [json!([]), json!([]), json!(["bob"]), json!([]), json!([])]
    );

    // The route moves the marker, never back, and answers the counts after.
    let (status, read) = mark_read(&bob, &slug, json!(3)).await;
    assert_eq!(status, 200, "{read}");
    assert_eq!(read, json!({"read_seq": 3, "unread": 1, "mentions": 0}));
    let (status, read) = mark_read(&bob, &slug, json!(1)).await;
    assert_eq!((status, &read["read_seq"]), (200, &json!(3)));
    assert_eq!(counts(&bob, &slug).await, json!([3, 5, 1, 0]));
    // bob's socket in the room hears each of the route's answers too.
    for _ in 0..2 {
        assert_eq!(
            bobs.next_of_type("read").await,
            json!({"type": "read", "seq": 3, "unread": 1, "mentions": 0})
        );
    }
    for seq in [json!(6), json!(-1), json!("4"), json!(2.5), json!(null)] {
        let (status, refused) = mark_read(&bob, &slug, seq.clone()).await;
        assert_eq!((status, code(&refused)), (400, "invalid_seq"), "{seq}");
    }
    // Only a member has a marker; a room one may not see is not there.
    let (status, refused) = mark_read(&carol, &slug, json!(1)).await;
    assert_eq!((status, code(&refused)), (403, "forbidden"));
    let (status, refused) = mark_read(&carol, "no-such-room", json!(1)).await;
    assert_eq!((status, code(&refused)), (404, "room_not_found"));

    // The frame does the same on the room's socket, answered with a `read` frame that
    // every socket of bob's in the room gets (and only his).
    let mut bobs_other = bob.connect(&slug).await;
    let mut alices = alice.connect(&slug).await;
    bobs.send(json!({"type": "read", "seq": 4})).await;
    // (5, after it, is deleted: nothing is left to read.)
    let read = json!({"type": "read", "seq": 4, "unread": 0, "mentions": 0});
    assert_eq!(bobs.next_of_type("read").await, read);
    assert_eq!(bobs_other.next_of_type("read").await, read);
    // …also when the route moves it.
    let (status, _) = mark_read(&bob, &slug, json!(5)).await;
    assert_eq!(status, 200);
    let read = json!({"type": "read", "seq": 5, "unread": 0, "mentions": 0});
    assert_eq!(bobs.next_of_type("read").await, read);
    assert_eq!(bobs_other.next_of_type("read").await, read);
    alices.send(json!({"type": "ping"})).await;
    loop {
        let frame = alices.next_frame().await;
        assert_ne!(frame["type"], "read", "alice hears no read of bob's");
        if frame["type"] == "pong" {
            break;
        }
    }
    for seq in [json!(6), json!(-1), json!("5")] {
        bobs.send(json!({"type": "read", "seq": seq})).await;
        assert_eq!(bobs.next_of_type("error").await["code"], "invalid_frame");
    }

    // A sender has read the room up to what they send.
    posted(&alice, &slug, "one more").await; // 6
    assert_eq!(counts(&bob, &slug).await, json!([5, 6, 1, 0]));
    posted(&bob, &slug, "read it").await; // 7
    assert_eq!(counts(&bob, &slug).await, json!([7, 7, 0, 0]));
}

async fn a_mention_names_only_those_who_can_read_the_room() {
    let app = TestApp::spawn_with(&QUICK_SENDS).await;
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let _carol = app.user("carol").await; // she exists: "@carol" names someone
    let (status, room) = alice
        .post_json("/api/rooms", &json!({"name": "Plans", "private": true}))
        .await;
    assert_eq!(status, 201, "{room}");
    let private = room["room"]["slug"].as_str().unwrap().to_owned();
    let (status, _) = alice
        .post_json(
            &format!("/api/rooms/{private}/members"),
            &json!({"username": "bob"}),
        )
        .await;
    assert_eq!(status, 204);
    // carol cannot read the private room; alice is the sender.
    let said = posted(&alice, &private, "@bob @carol @alice see this").await;
    assert_eq!(said["mentions"], json!(["bob"]));
    assert_eq!(counts(&bob, &private).await, json!([0, 1, 1, 1]));

    // In a public room anyone may read, member or not: carol is mentioned (her list has no
    // counts for a room she has not joined), unless she is banned from it.
    let public = alice.create_room("Open").await;
    let said = posted(&alice, &public, "@carol @bob").await;
    assert_eq!(said["mentions"], json!(["bob", "carol"]));
    let ban = format!("/api/rooms/{public}/bans/carol");
    let (status, _) = alice.call(Method::PUT, &ban, None).await;
    assert_eq!(status, 204);
    let said = posted(&alice, &public, "@carol @bob").await;
    assert_eq!(said["mentions"], json!(["bob"]));
}

fn typing(users: &[&str]) -> Value {
    json!({"type": "typing", "users": users})
}

/// With the contract's 6 s expiry, so what ends a name here is not its expiry.
async fn typing_reaches_the_others_and_ends_with_a_stop_a_send_or_a_close() {
    let started = std::time::Instant::now();
    let app = TestApp::spawn_with(&QUICK_SENDS).await;
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let carol = app.user("carol").await;
    let slug = alice.create_room("general").await;
    let mut alices = alice.connect(&slug).await;
    let mut bobs = bob.connect(&slug).await;
    let mut carols = carol.connect(&slug).await;

    // Every other connection gets the whole list; the typer's own is not told of itself.
    bobs.send(json!({"type": "typing"})).await;
    assert_eq!(alices.next_of_type("typing").await, typing(&["bob"]));
    carols.send(json!({"type": "typing", "active": true})).await;
    assert_eq!(
        alices.next_of_type("typing").await,
        typing(&["bob", "carol"])
    );
    assert_eq!(bobs.next_of_type("typing").await, typing(&["carol"]));
    // Stopping takes the name off at once.
    carols
        .send(json!({"type": "typing", "active": false}))
        .await;
    assert_eq!(alices.next_of_type("typing").await, typing(&["bob"]));
    assert_eq!(bobs.next_of_type("typing").await, typing(&[]));
    // An accepted send takes the sender off.
    let ack = bobs.say("done typing", "b1").await;
    assert_eq!(ack["type"], "ack", "{ack}");
    assert_eq!(alices.next_of_type("typing").await, typing(&[]));
    // Someone arriving meanwhile hears the list at once, not at its next change.
    carols.send(json!({"type": "typing"})).await;
    assert_eq!(alices.next_of_type("typing").await, typing(&["carol"]));
    let mut late = app.user("dave").await.connect(&slug).await;
    assert_eq!(late.next_of_type("typing").await, typing(&["carol"]));
    carols
        .send(json!({"type": "typing", "active": false}))
        .await;
    assert_eq!(alices.next_of_type("typing").await, typing(&[]));
    assert_eq!(late.next_of_type("typing").await, typing(&[]));
    // So does closing one's last connection to the room.
    carols.send(json!({"type": "typing"})).await;
    assert_eq!(alices.next_of_type("typing").await, typing(&["carol"]));
    drop(carols);
    assert_eq!(alices.next_of_type("typing").await, typing(&[]));
    assert!(
        started.elapsed() < std::time::Duration::from_secs(6),
        "the names went before any could expire"
    );
}

/// A name expires by itself when no `typing` follows (a short expiry for the test).
async fn a_typing_name_expires_by_itself() {
    let app = TestApp::spawn_with(&[("TYPING_TIMEOUT_MS", "400")]).await;
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let slug = alice.create_room("general").await;
    let mut alices = alice.connect(&slug).await;
    let mut bobs = bob.connect(&slug).await;
    let started = std::time::Instant::now();
    bobs.send(json!({"type": "typing"})).await;
    assert_eq!(alices.next_of_type("typing").await, typing(&["bob"]));
    assert_eq!(alices.next_of_type("typing").await, typing(&[]));
    assert!(started.elapsed() >= std::time::Duration::from_millis(400));
    // Still typing: each `typing` extends the name's stay.
    bobs.send(json!({"type": "typing"})).await;
    assert_eq!(alices.next_of_type("typing").await, typing(&["bob"]));
    let again = std::time::Instant::now();
    for _ in 0..3 {
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        bobs.send(json!({"type": "typing"})).await;
    }
    assert_eq!(alices.next_of_type("typing").await, typing(&[]));
    // The last `typing` went about 600 ms after `again`; its 400 ms ran from there.
    assert!(again.elapsed() >= std::time::Duration::from_millis(900));
}

api_tests!(
    unread_and_mentions_are_exact_and_a_marker_never_moves_back,
    a_mention_names_only_those_who_can_read_the_room,
    typing_reaches_the_others_and_ends_with_a_stop_a_send_or_a_close,
    a_typing_name_expires_by_itself,
);
