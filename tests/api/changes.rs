//! CONTRACT §10 as far as it stands: every message carries its `rev` and current state,
//! a send may reply to a message of its room, and bots send over HTTP with the frame's
//! rules and idempotency.

use reqwest::Method;
use serde_json::{json, Value};

use natter_test_support::{after_the_quick_gap, TestApp, TestUser, Ws, QUICK_SENDS};

fn code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or_default()
}

/// A message as it is stored now: the history route's copy of message `id`.
async fn stored(user: &TestUser, slug: &str, id: &Value) -> Value {
    let history = user.get_json(&format!("/api/rooms/{slug}/messages")).await;
    history["messages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| &m["id"] == id)
        .cloned()
        .unwrap_or_else(|| panic!("message {id} not in {history}"))
}

/// Sends a reply to `reply_to` and returns its `ack` or the `error` refusing it.
async fn reply(ws: &mut Ws, body: &str, client_id: &str, reply_to: &Value) -> Value {
    ws.send(json!({"type": "send", "body": body, "client_id": client_id, "reply_to": reply_to}))
        .await;
    loop {
        let frame = ws.next_frame().await;
        if (frame["type"] == "ack" || frame["type"] == "error") && frame["client_id"] == client_id {
            return frame;
        }
    }
}

async fn every_message_carries_rev_and_its_state_and_acks_say_the_rev() {
    let app = TestApp::spawn_with(&QUICK_SENDS).await;
    let (alice, bob, slug) = app.two_in_a_room("general").await;
    let mut alices = alice.connect(&slug).await;
    let mut bobs = bob.connect(&slug).await;
    let first = alices.say("one", "a1").await;
    after_the_quick_gap().await;
    let second = alices.say("two", "a2").await;
    // A new message is a change: seq and rev both rise by one, without a gap.
    assert_eq!(
        (&first["seq"], &first["rev"], &second["seq"], &second["rev"]),
        (&json!(1), &json!(1), &json!(2), &json!(2)),
        "{first} {second}"
    );
    let live = bobs.next_of_type("message").await;
    assert_eq!(
        (
            &live["rev"],
            &live["edited_at"],
            &live["deleted"],
            &live["deleted_by"]
        ),
        (&json!(1), &Value::Null, &json!(false), &Value::Null)
    );
    assert_eq!(
        (&live["reply_to"], &live["reactions"]),
        (&Value::Null, &json!([]))
    );
    let page = stored(&bob, &slug, &second["id"]).await;
    assert_eq!(page["rev"], 2, "{page}");
    // A later joiner's history says the same.
    let carol = app.user("carol").await;
    let carols = carol.connect(&slug).await;
    let history = carols.history.as_ref().unwrap()["messages"].clone();
    assert_eq!(history[1]["rev"], 2, "{history}");
    assert_eq!(history[1]["reactions"], json!([]), "{history}");
}

async fn a_reply_names_its_target_in_the_same_room_only() {
    let app = TestApp::spawn_with(&QUICK_SENDS).await;
    let (alice, bob, slug) = app.two_in_a_room("general").await;
    let elsewhere = alice.create_room("elsewhere").await;
    let mut alices = alice.connect(&slug).await;
    let mut bobs = bob.connect(&slug).await;
    let long = "x".repeat(150);
    let target = alices.say(&long, "a1").await;

    let ack = reply(&mut bobs, "agreed", "b1", &target["id"]).await;
    assert_eq!(ack["type"], "ack", "{ack}");
    let stored_reply = stored(&bob, &slug, &ack["id"]).await;
    assert_eq!(
        stored_reply["reply_to"],
        json!({"id": target["id"], "seq": 1, "user": "alice", "excerpt": "x".repeat(100), "deleted": false}),
        "the first 100 characters of the target"
    );
    let live = loop {
        let frame = alices.next_of_type("message").await;
        if frame["id"] == ack["id"] {
            break frame;
        }
    };
    assert_eq!(live["reply_to"], stored_reply["reply_to"]);

    // A message of another room, or none at all: refused, and nothing stored.
    let mut in_elsewhere = alice.connect(&elsewhere).await;
    after_the_quick_gap().await;
    for (client_id, reply_to) in [("a2", json!(999_999)), ("a3", target["id"].clone())] {
        let refused = reply(&mut in_elsewhere, "hm", client_id, &reply_to).await;
        assert_eq!(refused["code"], "invalid_reply", "{refused}");
    }
    let history = alice
        .get_json(&format!("/api/rooms/{elsewhere}/messages"))
        .await;
    assert_eq!(history["messages"], json!([]));
}

async fn bots_send_over_http_with_the_frames_rules() {
    let app = TestApp::spawn_with(&QUICK_SENDS).await;
    let alice = app.user("alice").await;
    let bot = app.user("robot").await;
    let slug = alice.create_room("general").await;
    let mut alices = alice.connect(&slug).await;
    let path = format!("/api/rooms/{slug}/messages");

    let (status, posted) = bot
        .post_json(&path, &json!({"body": "beep", "client_id": "b1"}))
        .await;
    assert_eq!(status, 201, "{posted}");
    let message = &posted["message"];
    assert_eq!(
        (
            &message["user"],
            &message["body"],
            &message["seq"],
            &message["rev"]
        ),
        (&json!("robot"), &json!("beep"), &json!(1), &json!(1))
    );
    let live = alices.next_of_type("message").await;
    assert_eq!(&live["id"], &message["id"]);

    // The same client_id again: the stored message, nothing new.
    let (status, again) = bot
        .post_json(&path, &json!({"body": "beep", "client_id": "b1"}))
        .await;
    assert_eq!((status, &again["message"]["id"]), (200, &message["id"]));
    // The send limit holds: a second message within the gap is refused.
    let (status, refused) = bot.post_json(&path, &json!({"body": "boop"})).await;
    assert_eq!((status, code(&refused)), (429, "rate_limited"), "{refused}");
    after_the_quick_gap().await;
    let (status, reply) = bot
        .post_json(&path, &json!({"body": "re", "reply_to": message["id"]}))
        .await;
    assert_eq!(status, 201, "{reply}");
    assert_eq!(reply["message"]["reply_to"]["id"], message["id"]);
    after_the_quick_gap().await;
    for (body, expected) in [
        (json!({"body": "x", "reply_to": 999_999}), "invalid_reply"),
        (json!({"body": "   "}), "empty_body"),
        (json!({"body": 5}), "invalid_request"),
    ] {
        let (status, refused) = bot.post_json(&path, &body).await;
        assert_eq!(
            (status, code(&refused)),
            (400, expected),
            "{body}: {refused}"
        );
    }
    // Posting made the bot a member of the public room, as opening its socket would.
    let members = alice.get_json(&format!("/api/rooms/{slug}/members")).await;
    assert!(
        members["members"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["username"] == "robot"),
        "{members}"
    );
    // A room one may not see does not exist for posting either.
    let secret = alice
        .post_json("/api/rooms", &json!({"name": "Secret", "private": true}))
        .await
        .1["room"]["slug"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, hidden) = bot
        .post_json(
            &format!("/api/rooms/{secret}/messages"),
            &json!({"body": "hi"}),
        )
        .await;
    assert_eq!((status, code(&hidden)), (404, "room_not_found"));
}

async fn call(user: &TestUser, method: Method, path: String, body: Option<Value>) -> (u16, Value) {
    user.call(method, &path, body.as_ref()).await
}

/// Sends `body` over HTTP as `user` and returns the stored message.
async fn posted(user: &TestUser, slug: &str, body: &str) -> Value {
    user.post_message(slug, body).await
}

async fn edits_deletes_and_reactions_follow_the_rules() {
    let app = TestApp::spawn_with(&QUICK_SENDS).await;
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let slug = alice.create_room("general").await;
    let hello = posted(&alice, &slug, "hello").await;
    after_the_quick_gap().await;
    let theirs = posted(&bob, &slug, "bob here").await;
    let path = |id: &Value| format!("/api/rooms/{slug}/messages/{id}");
    let reaction =
        |id: &Value, emoji: &str| format!("/api/rooms/{slug}/messages/{id}/reactions/{emoji}");
    let code_of = |(status, body): (u16, Value)| (status, code(&body).to_owned());

    // Edits: the author only; the same body again changes nothing.
    let edit = |text: &str| Some(json!({ "body": text }));
    assert_eq!(
        code_of(call(&bob, Method::PATCH, path(&hello["id"]), edit("mine now")).await),
        (403, "forbidden".into())
    );
    let (status, edited) = call(
        &alice,
        Method::PATCH,
        path(&hello["id"]),
        edit("hello, all"),
    )
    .await;
    assert_eq!(status, 200, "{edited}");
    let edited = &edited["message"];
    assert_eq!(
        (&edited["body"], &edited["rev"]),
        (&json!("hello, all"), &json!(3))
    );
    assert!(edited["edited_at"].is_string(), "{edited}");
    let (_, again) = call(
        &alice,
        Method::PATCH,
        path(&hello["id"]),
        edit("hello, all"),
    )
    .await;
    assert_eq!(again["message"]["rev"], 3, "unchanged: no new rev");
    assert_eq!(
        code_of(call(&alice, Method::PATCH, path(&hello["id"]), edit("  ")).await),
        (400, "empty_body".into())
    );

    // Reactions: one per user and emoji, users sorted, emoji percent-encoded or not.
    let (status, reacted) = call(
        &bob,
        Method::PUT,
        reaction(&hello["id"], "%F0%9F%91%8D"),
        None,
    )
    .await;
    assert_eq!(status, 200, "{reacted}");
    let (_, twice) = call(&bob, Method::PUT, reaction(&hello["id"], "👍"), None).await;
    assert_eq!(
        twice["message"]["rev"], reacted["message"]["rev"],
        "reacting twice changes nothing"
    );
    let (_, both) = call(&alice, Method::PUT, reaction(&hello["id"], "👍"), None).await;
    assert_eq!(
        both["message"]["reactions"],
        json!([{"emoji": "👍", "count": 2, "users": ["alice", "bob"]}])
    );
    let (_, absent) = call(&alice, Method::DELETE, reaction(&hello["id"], "🎉"), None).await;
    assert_eq!(
        absent["message"]["rev"], both["message"]["rev"],
        "removing nothing changes nothing"
    );
    assert_eq!(
        code_of(call(&alice, Method::PUT, reaction(&hello["id"], "ok"), None).await),
        (400, "invalid_emoji".into())
    );
    let (_, one_left) = call(&bob, Method::DELETE, reaction(&hello["id"], "👍"), None).await;
    assert_eq!(
        one_left["message"]["reactions"],
        json!([{"emoji": "👍", "count": 1, "users": ["alice"]}])
    );

    // At most 20 different emoji on one message: the 21st is refused, a repeat is not.
    for emoji in [
        "😀", "😁", "😂", "🤣", "😃", "😄", "😅", "😆", "😉", "😊", "😋", "😎", "😍", "😘", "🥰",
        "😗", "😙", "😚", "🙂",
    ] {
        let added = call(&alice, Method::PUT, reaction(&hello["id"], emoji), None).await;
        assert_eq!(added.0, 200, "{emoji}: {}", added.1);
    }
    assert_eq!(
        code_of(call(&alice, Method::PUT, reaction(&hello["id"], "🤗"), None).await),
        (409, "too_many_reactions".into())
    );
    let repeat = call(&bob, Method::PUT, reaction(&hello["id"], "😀"), None).await;
    assert_eq!(repeat.0, 200, "{}", repeat.1);

    // Messages that are not this room's, or not messages at all.
    for missing in [json!(999_999), json!("nine")] {
        assert_eq!(
            code_of(call(&alice, Method::DELETE, path(&missing), None).await),
            (404, "unknown_message".into())
        );
    }

    // Deletes: the author, or the room's owner and moderators; a tombstone stays.
    assert_eq!(
        code_of(call(&bob, Method::DELETE, path(&hello["id"]), None).await),
        (403, "forbidden".into())
    );
    let (status, deleted) = call(&alice, Method::DELETE, path(&theirs["id"]), None).await;
    assert_eq!(status, 200, "the owner deletes anyone's: {deleted}");
    let tombstone = &deleted["message"];
    assert_eq!(
        (
            &tombstone["deleted"],
            &tombstone["body"],
            &tombstone["deleted_by"],
            &tombstone["seq"]
        ),
        (&json!(true), &json!(""), &json!("alice"), &theirs["seq"])
    );
    for (method, target) in [
        (Method::PATCH, path(&theirs["id"])),
        (Method::DELETE, path(&theirs["id"])),
        (Method::PUT, reaction(&theirs["id"], "👍")),
    ] {
        let body = (method == Method::PATCH).then(|| json!({"body": "back"}));
        assert_eq!(
            code_of(call(&bob, method, target, body).await),
            (409, "message_deleted".into())
        );
    }

    // The history says the same, and nothing of the deleted text is left in it.
    let history = alice.get_json(&format!("/api/rooms/{slug}/messages")).await;
    assert_eq!(history["messages"][0]["body"], "hello, all");
    assert_eq!(
        history["messages"][0]["reactions"][0]["users"],
        json!(["alice"])
    );
    assert_eq!(history["messages"][1]["deleted"], true);
    assert!(!history.to_string().contains("bob here"), "{history}");
}

async fn the_edit_window_and_the_change_limit_hold() {
    let app =
        TestApp::spawn_with(&[("EDIT_WINDOW_SECONDS", "1"), ("CHANGES_PER_MINUTE", "2")]).await;
    let alice = app.user("alice").await;
    let slug = alice.create_room("general").await;
    let hello = posted(&alice, &slug, "hello").await;
    let path = format!("/api/rooms/{slug}/messages/{}", hello["id"]);
    let (status, _) = alice
        .call(Method::PATCH, &path, Some(&json!({"body": "hi"})))
        .await;
    assert_eq!(status, 200);
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let (status, late) = alice
        .call(Method::PATCH, &path, Some(&json!({"body": "hey"})))
        .await;
    assert_eq!((status, code(&late)), (403, "edit_window_passed"), "{late}");
    // Two changes in the minute (a refused edit is not one): the edit, then a reaction;
    // a third is refused.
    let (status, _) = alice
        .call(Method::PUT, &format!("{path}/reactions/👍"), None)
        .await;
    assert_eq!(status, 200);
    let (status, limited) = alice
        .call(Method::PUT, &format!("{path}/reactions/🎉"), None)
        .await;
    assert_eq!((status, code(&limited)), (429, "rate_limited"), "{limited}");
}

/// One truth on every path: a joiner served from the cache (the room is open, so the
/// cache is warm) sees the edit, the tombstone and the reaction the store has.
async fn a_joiner_served_from_the_cache_sees_every_change() {
    const FROM_CACHE: &str = "natter_history_loads_total{source=\"cache\"}";
    let app = TestApp::spawn_with(&QUICK_SENDS).await;
    let alice = app.user("alice").await;
    let slug = alice.create_room("general").await;
    let _keeps_it_warm = alice.connect(&slug).await;
    let kept = posted(&alice, &slug, "first words").await;
    after_the_quick_gap().await;
    let gone = posted(&alice, &slug, "regrettable words").await;
    // Replies cached before their targets change: they show the targets as they are now.
    let mut replies = Vec::new();
    for (target, body) in [(&kept, "to the first"), (&gone, "to the second")] {
        after_the_quick_gap().await;
        let path = format!("/api/rooms/{slug}/messages");
        let (status, sent) = alice
            .post_json(&path, &json!({"body": body, "reply_to": target["id"]}))
            .await;
        assert_eq!(status, 201, "{sent}");
        replies.push(sent["message"]["seq"].clone());
    }
    let path = |id: &Value| format!("/api/rooms/{slug}/messages/{id}");
    let edit = Some(json!({"body": "better words"}));
    assert_eq!(
        call(&alice, Method::PATCH, path(&kept["id"]), edit).await.0,
        200
    );
    let react = format!("{}/reactions/👍", path(&kept["id"]));
    assert_eq!(call(&alice, Method::PUT, react, None).await.0, 200);
    assert_eq!(
        call(&alice, Method::DELETE, path(&gone["id"]), None)
            .await
            .0,
        200
    );

    let cache_before = app.metric(FROM_CACHE).await;
    let bob = app.user("bob").await;
    let joined = bob.connect(&slug).await;
    assert_eq!(
        app.metric(FROM_CACHE).await,
        cache_before + 1.0,
        "served from the cache"
    );
    let history = joined.history.as_ref().unwrap()["messages"].clone();
    let stored = alice.get_json(&format!("/api/rooms/{slug}/messages")).await["messages"].clone();
    assert_eq!(history, stored, "the cache and the store agree");
    assert_eq!(history[0]["body"], "better words");
    assert_eq!(history[0]["reactions"][0]["users"], json!(["alice"]));
    assert_eq!(
        (&history[1]["deleted"], &history[1]["body"]),
        (&json!(true), &json!(""))
    );
    assert_eq!(history[2]["reply_to"]["excerpt"], "better words");
    assert_eq!(
        (
            &history[3]["reply_to"]["deleted"],
            &history[3]["reply_to"]["excerpt"]
        ),
        (&json!(true), &json!(""))
    );
    assert_eq!(replies, [json!(3), json!(4)]);
    assert!(!history.to_string().contains("regrettable"), "{history}");

    // A resume served from the cache (`after`) agrees too.
    let cache_before = app.metric(FROM_CACHE).await;
    let resumed = bob.connect_path(&format!("/ws/rooms/{slug}?since=1")).await;
    assert_eq!(app.metric(FROM_CACHE).await, cache_before + 1.0);
    let tail = resumed.history.as_ref().unwrap()["messages"].clone();
    assert_eq!(
        tail.as_array().unwrap()[..],
        stored.as_array().unwrap()[1..]
    );
}

/// A joiner served from the cache sees each reply's target as it is now, wherever the
/// target is: in the same page, elsewhere in the cache, or only in the store.
async fn cached_replies_show_their_targets_as_they_are_wherever_they_are() {
    let vars = [
        ("SEND_MIN_INTERVAL_MS", "100"),
        ("CACHE_MESSAGES", "4"),
        ("HISTORY_ON_JOIN", "3"),
    ];
    let app = TestApp::spawn_with(&vars).await;
    let alice = app.user("alice").await;
    let slug = alice.create_room("general").await;
    let _keeps_it_warm = alice.connect(&slug).await;
    let path = format!("/api/rooms/{slug}/messages");
    let mut sent: Vec<Value> = Vec::new();
    // seq: 1 old (store only), 2, 3 in the cache, 4 → 3, 5 → 1, 6 → 5.
    for (body, reply_to) in [
        ("old target", None),
        ("filler", None),
        ("cached target", None),
        ("to the cached one", Some(2)),
        ("to the old one", Some(0)),
        ("to the one before", Some(4)),
    ] {
        after_the_quick_gap().await;
        let mut post = json!({ "body": body });
        if let Some(i) = reply_to {
            post["reply_to"] = sent[i]["id"].clone();
        }
        let (status, answer) = alice.post_json(&path, &post).await;
        assert_eq!(status, 201, "{answer}");
        sent.push(answer["message"].clone());
    }
    for (i, body) in [
        (0, "old target, edited"),
        (2, "cached target, edited"),
        (4, "to the old one, edited"),
    ] {
        let edit = Some(json!({ "body": body }));
        let (status, answer) = call(
            &alice,
            Method::PATCH,
            format!("{path}/{}", sent[i]["id"]),
            edit,
        )
        .await;
        assert_eq!(status, 200, "{answer}");
    }
    const FROM_CACHE: &str = "natter_history_loads_total{source=\"cache\"}";
    let cache_before = app.metric(FROM_CACHE).await;
    let bob = app.user("bob").await;
    let joined = bob.connect(&slug).await;
    assert_eq!(app.metric(FROM_CACHE).await, cache_before + 1.0);
    let history = joined.history.as_ref().unwrap()["messages"].clone();
    let quoted: Vec<Value> = history
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["reply_to"]["excerpt"].clone())
        .collect();
    assert_eq!(
        quoted,
        [
            json!("cached target, edited"),
            json!("old target, edited"),
            json!("to the old one, edited"),
        ]
    );
    let stored = alice.get_json(&format!("{path}?limit=3")).await["messages"].clone();
    assert_eq!(history, stored, "the cache and the store agree");
}

/// Sends a change frame and returns its `ack` or the `error` refusing it.
async fn change(ws: &mut Ws, mut frame: Value, client_id: &str) -> Value {
    frame["client_id"] = json!(client_id);
    ws.send(frame).await;
    loop {
        let frame = ws.next_frame().await;
        if (frame["type"] == "ack" || frame["type"] == "error") && frame["client_id"] == client_id {
            return frame;
        }
    }
}

async fn changes_over_the_socket_reach_everyone_in_rev_order() {
    let app = TestApp::spawn_with(&QUICK_SENDS).await;
    let (alice, bob, slug) = app.two_in_a_room("general").await;
    let mut alices = alice.connect(&slug).await;
    let mut bobs = bob.connect(&slug).await;
    let sent = alices.say("hello", "a1").await;
    let id = sent["id"].clone();
    assert_eq!(bobs.next_of_type("message").await["rev"], 1);

    let ack = change(
        &mut alices,
        json!({"type": "edit", "message_id": id, "body": "hello!"}),
        "e1",
    )
    .await;
    assert_eq!(
        ack,
        json!({"type": "ack", "client_id": "e1", "id": id, "rev": 2})
    );
    let updated = bobs.next_of_type("message_updated").await;
    assert_eq!(
        (&updated["body"], &updated["rev"], &updated["id"]),
        (&json!("hello!"), &json!(2), &id)
    );
    assert!(updated["edited_at"].is_string(), "{updated}");

    let ack = change(
        &mut bobs,
        json!({"type": "react", "message_id": id, "emoji": "👍"}),
        "r1",
    )
    .await;
    assert_eq!(ack["rev"], 3, "{ack}");
    // The author's own connection hears its edit and the reaction, in rev order.
    assert_eq!(alices.next_of_type("message_updated").await["rev"], 2);
    let reacted = alices.next_of_type("message_updated").await;
    assert_eq!(
        (&reacted["rev"], &reacted["reactions"]),
        (
            &json!(3),
            &json!([{"emoji": "👍", "count": 1, "users": ["bob"]}])
        )
    );
    // Reacting again is acked with the current rev and tells no one.
    let again = change(
        &mut bobs,
        json!({"type": "react", "message_id": id, "emoji": "👍"}),
        "r2",
    )
    .await;
    assert_eq!((&again["type"], &again["rev"]), (&json!("ack"), &json!(3)));

    for (frame, client_id, expected) in [
        (
            json!({"type": "delete", "message_id": id}),
            "d1",
            "forbidden",
        ),
        (
            json!({"type": "edit", "message_id": id, "body": "mine"}),
            "e2",
            "forbidden",
        ),
        (
            json!({"type": "react", "message_id": id, "emoji": "no"}),
            "r3",
            "invalid_emoji",
        ),
        (
            json!({"type": "delete", "message_id": 999_999}),
            "d2",
            "unknown_message",
        ),
    ] {
        let refused = change(&mut bobs, frame, client_id).await;
        assert_eq!(refused["code"], expected, "{refused}");
    }
    let ack = change(
        &mut alices,
        json!({"type": "delete", "message_id": id}),
        "d3",
    )
    .await;
    assert_eq!(ack["rev"], 4, "{ack}");
    // The repeated reaction told no one: the author's next change frame is the delete.
    assert_eq!(alices.next_of_type("message_updated").await["rev"], 4);
    let tombstone = loop {
        let frame = bobs.next_of_type("message_updated").await;
        if frame["rev"] == 4 {
            break frame;
        }
    };
    assert_eq!(
        (
            &tombstone["deleted"],
            &tombstone["body"],
            &tombstone["reactions"]
        ),
        (&json!(true), &json!(""), &json!([]))
    );
    let late = change(
        &mut alices,
        json!({"type": "edit", "message_id": id, "body": "back"}),
        "e3",
    )
    .await;
    assert_eq!(late["code"], "message_deleted", "{late}");
    // A new message after the changes takes the next rev.
    after_the_quick_gap().await;
    assert_eq!(alices.say("later", "a2").await["rev"], 5);
}

/// `updates` and resuming with `?since=&rev=`: a client learns of every change it
/// missed, each message once in its current state, without reloading.
async fn a_client_catches_up_on_every_change_exactly_once() {
    let app = TestApp::spawn_with(&QUICK_SENDS).await;
    let (alice, bob, slug) = app.two_in_a_room("general").await;
    let mut alices = alice.connect(&slug).await;
    let mut ids = Vec::new();
    for (n, body) in ["one", "two", "three"].iter().enumerate() {
        if n > 0 {
            after_the_quick_gap().await;
        }
        ids.push(alices.say(body, &format!("s{n}")).await["id"].clone());
    }
    // Bob has seen everything up to seq 3 and rev 3, then his connection drops.
    let bobs = bob.connect(&slug).await;
    assert_eq!(bobs.history_seqs(), [1, 2, 3]);
    drop(bobs);

    let edit = |id: &Value, body: &str| json!({"type": "edit", "message_id": id, "body": body});
    change(&mut alices, edit(&ids[0], "one, edited"), "e1").await; // rev 4
    change(
        &mut alices,
        json!({"type": "react", "message_id": ids[1], "emoji": "🎉"}),
        "r1",
    )
    .await; // rev 5
    change(&mut alices, edit(&ids[0], "one, edited twice"), "e2").await; // rev 6
    after_the_quick_gap().await;
    alices.say("four", "s3").await; // seq 4, rev 7

    // Back: the history brings the new message, `updates` the changes to the ones he had.
    let mut back = bob
        .connect_path(&format!("/ws/rooms/{slug}?since=3&rev=3"))
        .await;
    assert_eq!(back.history_seqs(), [4]);
    let updates = back.next_frame().await;
    assert_eq!(updates["type"], "updates", "{updates}");
    let changed: Vec<(i64, i64, &str)> = updates["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["seq"].as_i64().unwrap(),
                m["rev"].as_i64().unwrap(),
                m["body"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        changed,
        [(2, 5, "two"), (1, 6, "one, edited twice")],
        "each once, in rev order"
    );
    assert_eq!(updates["rev"], 7);

    // The frame: every change after a rev, whatever the seq.
    back.send(json!({"type": "updates", "after_rev": 5})).await;
    let answer = back.next_of_type("updates").await;
    let revs: Vec<&Value> = answer["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| &m["rev"])
        .collect();
    assert_eq!(
        (revs, &answer["rev"]),
        (vec![&json!(6), &json!(7)], &json!(7))
    );
    back.send(json!({"type": "updates", "after_rev": 7})).await;
    let none = back.next_of_type("updates").await;
    assert_eq!((&none["messages"], &none["rev"]), (&json!([]), &json!(7)));
    back.send(json!({"type": "updates", "after_rev": -1})).await;
    assert_eq!(back.next_of_type("error").await["code"], "invalid_frame");

    // `rev` without `since` is refused before the upgrade.
    assert_eq!(
        bob.open(&format!("/ws/rooms/{slug}?rev=3"), None)
            .await
            .err(),
        Some(400)
    );
}

api_tests!(
    every_message_carries_rev_and_its_state_and_acks_say_the_rev,
    a_reply_names_its_target_in_the_same_room_only,
    bots_send_over_http_with_the_frames_rules,
    edits_deletes_and_reactions_follow_the_rules,
    the_edit_window_and_the_change_limit_hold,
    a_joiner_served_from_the_cache_sees_every_change,
    cached_replies_show_their_targets_as_they_are_wherever_they_are,
    changes_over_the_socket_reach_everyone_in_rev_order,
    a_client_catches_up_on_every_change_exactly_once,
);
