//! Two apps in one test process on one PostgreSQL + Redis ([`TestApp::spawn_pair`]): one
//! service, cheaply. `tests/cluster` runs real processes for what needs them (kill -9).

use serde_json::{json, Value};

use natter_test_support::TestApp;

#[tokio::test]
#[ignore = "needs TEST_DATABASE_URL and TEST_REDIS_URL"]
async fn two_apps_on_one_postgres_and_redis_are_one_service() {
    let (a, b) = TestApp::spawn_pair().await;
    let (alice, bob, slug) = a.two_in_a_room("general").await;
    let bob_on_b = bob.at(b.addr);
    let mut alice_ws = alice.connect(&slug).await;
    let mut bob_ws = bob_on_b.connect(&slug).await;

    // Presence and messages cross from one app to the other.
    let joined = alice_ws.next_of_type("member_joined").await;
    assert_eq!(joined["user"], "bob", "{joined}");
    let ack = alice_ws.say("hello across", "c1").await;
    assert_eq!(ack["type"], "ack", "{ack}");
    let message = bob_ws.next_of_type("message").await;
    assert_eq!(
        (&message["body"], &message["seq"]),
        (&json!("hello across"), &ack["seq"])
    );

    // A change made through one app reaches the other in rev order (CONTRACT §10).
    alice_ws
        .send(json!({"type": "edit", "message_id": ack["id"], "body": "edited across", "client_id": "e1"}))
        .await;
    let updated = bob_ws.next_of_type("message_updated").await;
    assert_eq!(
        (&updated["body"], &updated["rev"]),
        (
            &json!("edited across"),
            &json!(ack["rev"].as_i64().unwrap() + 1)
        )
    );

    // A room made through a form on one app is listed by the other.
    let created = bob_on_b
        .post_form("/rooms", &[("name", "Second room")])
        .await;
    assert_eq!(created.status(), 303);
    let list = alice.get_json("/api/rooms").await;
    let names: Vec<&Value> = list["rooms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|room| &room["name"])
        .collect();
    assert!(names.contains(&&json!("Second room")), "{list}");

    // Logging out through one app closes the session's socket on the other.
    let (status, _) = bob.post_json("/api/logout", &json!({})).await;
    assert_eq!(status, 204);
    assert_eq!(bob_ws.closed().await, Some(1008));
}

/// CONTRACT §9 across processes: a removal closes the member's sockets on the other app,
/// a DM asked for from both apps at once is one room, and the creation limit is one count.
#[tokio::test]
#[ignore = "needs TEST_DATABASE_URL and TEST_REDIS_URL"]
async fn membership_holds_across_apps() {
    let (a, b) = TestApp::spawn_pair().await;
    let (alice, bob, slug) = a.two_in_a_room("general").await;
    let bob_on_b = bob.at(b.addr);
    let mut bob_ws = bob_on_b.connect(&slug).await;
    let path = format!("/api/rooms/{slug}/bans/bob");
    let (status, _) = alice.call(reqwest::Method::PUT, &path, None).await;
    assert_eq!(status, 204);
    assert_eq!(bob_ws.closed().await, Some(4403));
    assert_eq!(
        bob_on_b
            .open(&format!("/ws/rooms/{slug}"), None)
            .await
            .err(),
        Some(403)
    );

    // Both ask at once, each on its own app: one room.
    for round in 0..5 {
        let carol = a.user(&format!("carol{round}")).await;
        let dave = b.user(&format!("dave{round}")).await;
        let (to_dave, to_carol) = (
            json!({"username": format!("dave{round}")}),
            json!({"username": format!("carol{round}")}),
        );
        let (from_a, from_b) = tokio::join!(
            carol.post_json("/api/dms", &to_dave),
            dave.post_json("/api/dms", &to_carol),
        );
        let mut statuses = [from_a.0, from_b.0];
        statuses.sort_unstable();
        assert_eq!(statuses, [200, 201], "{from_a:?} {from_b:?}");
        assert_eq!(from_a.1["room"], from_b.1["room"]);
    }
}

/// The limit counts creations on every process together (the default 10 per hour).
#[tokio::test]
#[ignore = "needs TEST_DATABASE_URL and TEST_REDIS_URL"]
async fn the_room_creation_limit_is_one_count_across_apps() {
    let backend = natter_test_support::Backend::shared().await;
    let second = backend.alongside();
    let limit = [("ROOM_CREATE_LIMIT", "10")];
    let a = TestApp::spawn_in(backend, &limit).await;
    let b = TestApp::spawn_in(second, &limit).await;
    let alice = a.user("alice").await;
    let alice_on_b = alice.at(b.addr);
    let created = futures_util::future::join_all((0..12).map(|n| {
        let (user, app) = if n % 2 == 0 {
            (&alice, "a")
        } else {
            (&alice_on_b, "b")
        };
        async move {
            user.post_json("/api/rooms", &json!({"name": format!("room {n} on {app}")}))
                .await
                .0
        }
    }))
    .await;
    assert_eq!(
        created.iter().filter(|&&s| s == 201).count(),
        10,
        "{created:?}"
    );
    assert_eq!(
        created.iter().filter(|&&s| s == 429).count(),
        2,
        "{created:?}"
    );
}
