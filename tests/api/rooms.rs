use serde_json::{json, Value};

use natter_test_support::{seqs, TestApp};

async fn creating_a_room_whose_slug_exists_joins_it() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice").await;
    let first = alice
        .client
        .post(app.url("/api/rooms"))
        .json(&json!({"name": "  Rust & Friends  "}))
        .send()
        .await
        .unwrap();
    assert_eq!(first.status(), 201);
    let first: Value = first.json().await.unwrap();
    assert_eq!(
        first["room"],
        json!({"slug": "rust-friends", "name": "Rust & Friends", "kind": "public"})
    );

    let again = alice
        .client
        .post(app.url("/api/rooms"))
        .json(&json!({"name": "rust friends"}))
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 200);
    let again: Value = again.json().await.unwrap();
    assert_eq!(again["room"], first["room"]);
}

async fn bad_room_names_are_400() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice").await;
    for (body, code) in [
        (json!({"name": "   "}), "invalid_room_name"),
        (json!({"name": "x".repeat(65)}), "invalid_room_name"),
        (json!({"name": "a\u{1}b"}), "invalid_room_name"),
        (json!({"name": 3}), "invalid_request"),
        (json!({}), "invalid_request"),
    ] {
        let response = alice
            .client
            .post(app.url("/api/rooms"))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400, "{body}");
        let error: Value = response.json().await.unwrap();
        assert_eq!(error["error"]["code"], code, "{body}");
    }
}

async fn the_room_list_counts_distinct_users_online() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let general = alice.create_room("general").await;
    alice.create_room("quiet").await;
    let _a1 = alice.connect(&general).await;
    let _a2 = alice.connect(&general).await;
    let _b = bob.connect(&general).await;

    let list = alice.get_json("/api/rooms").await;
    let rooms = list["rooms"].as_array().unwrap();
    let online = |slug: &str| {
        rooms.iter().find(|r| r["slug"] == slug).unwrap()["online"]
            .as_i64()
            .unwrap()
    };
    assert_eq!(online("general"), 2);
    assert_eq!(online("quiet"), 0);
    assert!(rooms
        .iter()
        .all(|r| r["name"].is_string() && r.get("last_message_at").is_some()));
    // CONTRACT §9: every room object carries its kind; every room of §3 is public.
    assert!(rooms.iter().all(|r| r["kind"] == "public"), "{list}");
}

async fn room_routes_need_a_session() {
    let app = TestApp::spawn().await;
    let anonymous = app.browser();
    for path in ["/api/rooms", "/api/rooms/general/messages", "/api/me"] {
        let response = anonymous.get(app.url(path)).send().await.unwrap();
        assert_eq!(response.status(), 401, "{path}");
        let error: Value = response.json().await.unwrap();
        assert_eq!(error["error"]["code"], "unauthenticated", "{path}");
    }
}

async fn the_history_api_pages_backwards_with_before_and_limit() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice").await;
    let slug = alice.create_room("general").await;
    // Five authors so the rate limit does not slow the test down.
    let mut authors = Vec::new();
    for i in 0..5 {
        authors.push(app.user(&format!("author{i}")).await);
    }
    for (i, author) in authors.iter().enumerate() {
        let mut ws = author.connect(&slug).await;
        let ack = ws
            .say(&format!("message {}", i + 1), &format!("c{i}"))
            .await;
        assert_eq!(ack["type"], "ack", "{ack}");
    }

    let get = |query: &str| {
        let url = app.url(&format!("/api/rooms/{slug}/messages{query}"));
        let client = alice.client.clone();
        async move { client.get(url).send().await.unwrap() }
    };
    let all: Value = get("").await.json().await.unwrap();
    assert_eq!(seqs(&all["messages"]), vec![1, 2, 3, 4, 5]);
    assert_eq!(all["messages"][0]["body"], "message 1");
    assert_eq!(all["messages"][0]["user"], "author0");
    assert_eq!(all["messages"][0]["room"], slug.as_str());

    // `truncated` says whether older messages remain before the page, and only then.
    assert_eq!(all.get("truncated"), None, "{all}");
    let page: Value = get("?before=5&limit=2").await.json().await.unwrap();
    assert_eq!(seqs(&page["messages"]), vec![3, 4]);
    assert_eq!(page["truncated"], true, "{page}");
    let latest: Value = get("?limit=1").await.json().await.unwrap();
    assert_eq!(seqs(&latest["messages"]), vec![5]);
    assert_eq!(latest["truncated"], true, "{latest}");
    let first: Value = get("?before=3&limit=2").await.json().await.unwrap();
    assert_eq!(seqs(&first["messages"]), vec![1, 2]);
    assert_eq!(first.get("truncated"), None, "{first}");

    for bad in [
        "?limit=0",
        "?limit=101",
        "?limit=x",
        "?before=-1",
        "?before=abc",
    ] {
        let response = get(bad).await;
        assert_eq!(response.status(), 400, "{bad}");
        let error: Value = response.json().await.unwrap();
        assert_eq!(error["error"]["code"], "invalid_request", "{bad}");
    }
    let unknown = alice
        .client
        .get(app.url("/api/rooms/nowhere/messages"))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 404);
    let error: Value = unknown.json().await.unwrap();
    assert_eq!(error["error"]["code"], "room_not_found");
}

api_tests!(
    creating_a_room_whose_slug_exists_joins_it,
    bad_room_names_are_400,
    the_room_list_counts_distinct_users_online,
    room_routes_need_a_session,
    the_history_api_pages_backwards_with_before_and_limit,
);
