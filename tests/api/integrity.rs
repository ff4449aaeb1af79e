//! CONTRACT §7a: no client can make a message lie, hide a room, or slip invisible text
//! past the checks.

use serde_json::json;

use natter_test_support::{after_the_quick_gap, TestApp, QUICK_SENDS};

/// The same `client_id` in another room, or with another body, names another message:
/// acking it with the old id would say the new text was stored when it was dropped.
async fn a_client_id_reused_for_another_message_is_refused_and_nothing_is_stored() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice").await;
    let general = alice.create_room("general").await;
    let other = alice.create_room("other").await;
    let mut in_general = alice.connect(&general).await;
    let mut in_other = alice.connect(&other).await;

    let first = in_general.say("the first text", "c1").await;
    assert_eq!(first["type"], "ack", "{first}");
    assert_eq!(first["room"], general.as_str(), "an ack names its room");

    // Inside the same second (the limiter refuses) and after it (the limiter grants):
    // both paths must refuse.
    let other_body = in_general.say("another text", "c1").await;
    assert_eq!(other_body["type"], "error", "{other_body}");
    assert_eq!(other_body["code"], "client_id_reused");
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let other_room = in_other.say("the first text", "c1").await;
    assert_eq!(other_room["code"], "client_id_reused", "{other_room}");

    // The refusals took no rate-limit slot: a fresh message goes through at once.
    let fresh = in_other.say("a new message", "c2").await;
    assert_eq!(fresh["type"], "ack", "{fresh}");
    assert_eq!(fresh["room"], other.as_str());

    // The same message again is still a resend, acked with the same id and seq.
    let resent = in_general.say("the first text", "c1").await;
    assert_eq!(
        (&resent["id"], &resent["seq"]),
        (&first["id"], &first["seq"])
    );

    let stored = alice
        .get_json(&format!("/api/rooms/{general}/messages"))
        .await;
    let bodies: Vec<_> = stored["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["body"].clone())
        .collect();
    assert_eq!(bodies, vec![json!("the first text")]);
    let stored = alice
        .get_json(&format!("/api/rooms/{other}/messages"))
        .await;
    assert_eq!(stored["messages"].as_array().unwrap().len(), 1);
}

/// Room spam must not hide rooms silently: the list says it left some out, and `?q=`
/// finds any room by its name.
async fn a_long_room_list_says_truncated_and_q_finds_the_quiet_rooms() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice").await;
    let quiet = alice.create_room("Quiet École corner").await;
    // 500 newer rooms (through the store: the API would take minutes).
    let store = app.backend.store().await;
    let owner = natter::domain::UserId(alice.id);
    for n in 0..500 {
        let name = natter::domain::RoomName::parse(&format!("spam {n}")).unwrap();
        let slug = name.slug();
        let room = natter::ports::NewRoom {
            slug: &slug,
            name: &name,
            kind: natter::domain::RoomKind::Public,
            owner,
        };
        store.create_room(room).await.unwrap();
    }

    let list = alice.get_json("/api/rooms").await;
    let rooms = list["rooms"].as_array().unwrap();
    assert_eq!(rooms.len(), 500);
    assert_eq!(list["truncated"], true);
    assert!(
        rooms.iter().all(|r| r["slug"] != quiet.as_str()),
        "the oldest room is the one left out"
    );
    assert_eq!(rooms[0]["name"], "spam 499", "most recently active first");

    for q in ["école", "QUIET", "corner"] {
        let found = alice.get_json(&format!("/api/rooms?q={q}")).await;
        let slugs: Vec<_> = found["rooms"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["slug"].clone())
            .collect();
        assert_eq!(slugs, vec![json!(quiet)], "q={q}");
        assert!(found.get("truncated").is_none(), "{found}");
    }
    let none = alice.get_json("/api/rooms?q=nothing-like-it").await;
    assert_eq!(none["rooms"], json!([]));
    let page = alice.get_page("/").await;
    assert!(
        page.contains("id=\"rooms-truncated\" class=\"hint\">"),
        "the page says the list is cut"
    );
}

/// Text that shows nothing, turns the text around it, or drives a terminal is refused
/// at the edge; a name's slug is its own.
async fn invisible_bidi_and_control_text_is_refused_and_slugs_do_not_collide() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice").await;
    for name in ["\u{200B}\u{FEFF}", "evil\u{202E}txt.exe", "a\u{1b}b"] {
        let response = alice
            .client
            .post(app.url("/api/rooms"))
            .json(&json!({ "name": name }))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400, "{name:?}");
        let error: serde_json::Value = response.json().await.unwrap();
        assert_eq!(error["error"]["code"], "invalid_room_name", "{name:?}");
    }

    let ecole = alice.create_room("École").await;
    let cole = alice.create_room("Cole").await;
    assert_eq!(ecole, "ecole");
    assert_ne!(ecole, cole);
    let russian = alice.create_room("Русский 2024").await;
    let japanese = alice.create_room("日本語 2024").await;
    assert_ne!(russian, japanese);

    let mut ws = alice.connect(&ecole).await;
    let invisible = ws.say("\u{200B}\u{2060} \u{FEFF}", "z1").await;
    assert_eq!(invisible["code"], "empty_body", "{invisible}");
    let escape = ws.say("\u{1b}[2J\u{7}gotcha", "z2").await;
    assert_eq!(escape["code"], "invalid_frame", "{escape}");
    let fine = ws
        .say("line one\n\tline two 👨\u{200D}👩\u{200D}👧", "z3")
        .await;
    assert_eq!(fine["type"], "ack", "{fine}");
}

/// Readiness tells the truth: a deleted SQLite file still answers reads (the open
/// descriptors keep it alive) but every write to it would vanish at the next start.
async fn a_deleted_sqlite_file_makes_readyz_503_and_sends_unavailable() {
    let app = TestApp::spawn_in(natter_test_support::Backend::embedded(), &QUICK_SENDS).await;
    let alice = app.user("alice").await;
    let slug = alice.create_room("general").await;
    let mut ws = alice.connect(&slug).await;
    assert_eq!(ws.say("before", "b1").await["type"], "ack");
    assert_eq!(
        reqwest::get(app.url("/readyz")).await.unwrap().status(),
        200
    );

    let file = app.backend.sqlite_file().expect("an embedded backend");
    std::fs::remove_file(&file).unwrap();
    assert_eq!(
        reqwest::get(app.url("/readyz")).await.unwrap().status(),
        503
    );
    after_the_quick_gap().await;
    let refused = ws.say("into the void", "b2").await;
    assert_eq!(refused["code"], "unavailable", "never acked: {refused}");
}

/// Reading history over HTTP costs the store a query each time: 20 a second per user.
async fn rest_history_is_limited_to_20_requests_a_second_per_user() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let slug = alice.create_room("general").await;
    let path = app.url(&format!("/api/rooms/{slug}/messages"));
    let started = std::time::Instant::now();
    let mut refused = None;
    for _ in 0..21 {
        let response = alice.client.get(&path).send().await.unwrap();
        if response.status() == 429 {
            refused = Some(response);
            break;
        }
        assert_eq!(response.status(), 200);
    }
    let refused = refused.expect("the 21st request inside a second is refused");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(1),
        "the test ran too slowly to tell"
    );
    assert_eq!(refused.headers()["retry-after"], "1");
    let error: serde_json::Value = refused.json().await.unwrap();
    assert_eq!(error["error"]["code"], "rate_limited");
    assert!(error["error"]["retry_after_ms"]
        .as_u64()
        .is_some_and(|ms| (1..=1000).contains(&ms)));
    // Per user: bob reads on.
    assert_eq!(bob.client.get(&path).send().await.unwrap().status(), 200);
}

/// serde reads a struct from a JSON array as readily as from an object: an array body
/// must not register an account or create a room; a duplicate key is no better.
async fn json_arrays_and_duplicate_keys_are_not_bodies() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice").await;
    let post = |path: &str, body: &'static str| {
        alice
            .client
            .post(app.url(path))
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    for (path, body) in [
        ("/api/register", r#"["abc_def","longenough1"]"#),
        ("/api/login", r#"["alice","correct horse battery"]"#),
        ("/api/rooms", r#"["x"]"#),
        ("/api/rooms", r#"  ["x"]"#),
        ("/api/rooms", r#""x""#),
        ("/api/rooms", r#"{"name":"one","name":"two"}"#),
    ] {
        let response = post(path, body).await.unwrap();
        assert_eq!(response.status(), 400, "{path} {body}");
        let error: serde_json::Value = response.json().await.unwrap();
        assert_eq!(error["error"]["code"], "invalid_request", "{path} {body}");
    }
    let login = app
        .browser()
        .post(app.url("/api/login"))
        .json(&json!({"username": "abc_def", "password": "longenough1"}))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), 401, "the array registered no account");
    let rooms = alice.get_json("/api/rooms").await;
    assert_eq!(rooms["rooms"], json!([]), "the arrays made no room");
}

/// The room list's cap and the REST history budget are configurable (`ROOM_LIST_MAX`,
/// `HISTORY_READS_PER_SECOND`).
async fn the_room_list_cap_and_the_history_budget_are_what_is_configured() {
    let app =
        TestApp::spawn_with(&[("ROOM_LIST_MAX", "2"), ("HISTORY_READS_PER_SECOND", "2")]).await;
    let alice = app.user("alice").await;
    let first = alice.create_room("first").await;
    alice.create_room("second").await;
    alice.create_room("third").await;
    let list = alice.get_json("/api/rooms").await;
    let names: Vec<_> = list["rooms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].clone())
        .collect();
    assert_eq!(names, [json!("third"), json!("second")]);
    assert_eq!(list["truncated"], true);
    let found = alice.get_json("/api/rooms?q=fir").await;
    assert_eq!(found["rooms"][0]["slug"], first.as_str());
    assert!(found.get("truncated").is_none(), "{found}");

    let path = app.url(&format!("/api/rooms/{first}/messages"));
    let started = std::time::Instant::now();
    let mut statuses = Vec::new();
    for _ in 0..3 {
        statuses.push(alice.client.get(&path).send().await.unwrap().status());
    }
    assert!(
        started.elapsed() < std::time::Duration::from_secs(1),
        "the test ran too slowly to tell"
    );
    assert_eq!(statuses, [200, 200, 429]);
}

api_tests!(
    a_client_id_reused_for_another_message_is_refused_and_nothing_is_stored,
    a_long_room_list_says_truncated_and_q_finds_the_quiet_rooms,
    invisible_bidi_and_control_text_is_refused_and_slugs_do_not_collide,
    a_deleted_sqlite_file_makes_readyz_503_and_sends_unavailable,
    rest_history_is_limited_to_20_requests_a_second_per_user,
    json_arrays_and_duplicate_keys_are_not_bodies,
    the_room_list_cap_and_the_history_budget_are_what_is_configured,
);
