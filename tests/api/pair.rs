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
