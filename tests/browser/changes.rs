//! CONTRACT §10 in the page: a message edited, reacted to or deleted by someone else
//! changes in place, live, and a change made while the page was offline is there after
//! it reconnects (`?since=&rev=`), without a reload.

use reqwest::Method;
use serde_json::{json, Value};

use crate::driver::{Browser, Driver};
use natter_test_support::{after_the_quick_gap, TestApp, QUICK_SENDS};

/// The page's message with this `seq`: its body, whether it says "(edited)", whether it
/// is a tombstone, and its reaction chips' labels.
async fn shown(page: &Browser, seq: i64) -> Value {
    page.js(
        "const li = document.querySelector(`#messages > li[data-seq=\"${arguments[0]}\"]`); \
         return li && [li.querySelector('.body').textContent, !!li.querySelector('.edited'), \
           li.classList.contains('deleted'), \
           [...li.querySelectorAll('.reaction')].map(c => c.getAttribute('aria-label'))]",
        vec![json!(seq)],
    )
    .await
}

async fn wait_shown(page: &Browser, seq: i64, expected: Value) {
    page.wait_for(
        &format!("message {seq} to show {expected}"),
        "const li = document.querySelector(`#messages > li[data-seq=\"${arguments[0]}\"]`); \
         const now = li && [li.querySelector('.body').textContent, !!li.querySelector('.edited'), \
           li.classList.contains('deleted'), \
           [...li.querySelectorAll('.reaction')].map(c => c.getAttribute('aria-label'))]; \
         return JSON.stringify(now) === JSON.stringify(arguments[1])",
        vec![json!(seq), expected.clone()],
    )
    .await;
    assert_eq!(shown(page, seq).await, expected);
}

#[tokio::test]
#[ignore = "needs CHROME"]
async fn changes_show_in_place_live_and_after_the_page_was_offline() {
    let driver = Driver::start().await;
    let app = TestApp::spawn_with(&QUICK_SENDS).await;
    let bind = format!("127.0.0.1:{}", app.addr.port());
    let bob = app.user("bob").await;
    let slug = bob.create_room("Edits").await;
    let messages = format!("/api/rooms/{slug}/messages");
    let post = |body: &str| {
        let (bob, messages) = (&bob, &messages);
        let body = json!({ "body": body });
        async move {
            let (status, posted) = bob.post_json(messages, &body).await;
            assert_eq!(status, 201, "{posted}");
            posted["message"]["id"].as_i64().unwrap()
        }
    };
    let first = post("first draft").await;
    after_the_quick_gap().await;
    let second = post("soon gone").await;

    let alice = driver.browser().await;
    alice.register(&app, "alice").await;
    alice.goto(&app, &format!("/rooms/{slug}")).await;
    alice.wait_connected().await;
    alice.wait_message("soon gone").await;

    // Live: an edit, a reaction and a delete by bob change alice's page in place.
    let change = |method: Method, path: String, body: Option<Value>| {
        let bob = &bob;
        async move {
            let (status, answer) = bob.call(method, &path, body.as_ref()).await;
            assert_eq!(status, 200, "{answer}");
        }
    };
    change(
        Method::PATCH,
        format!("{messages}/{first}"),
        Some(json!({"body": "final words"})),
    )
    .await;
    wait_shown(&alice, 1, json!(["final words", true, false, []])).await;
    change(
        Method::PUT,
        format!("{messages}/{first}/reactions/👍"),
        None,
    )
    .await;
    wait_shown(
        &alice,
        1,
        json!(["final words", true, false, ["👍 by bob"]]),
    )
    .await;
    change(Method::DELETE, format!("{messages}/{second}"), None).await;
    wait_shown(&alice, 2, json!(["message deleted", false, true, []])).await;

    // Offline: the server stops; on a server on the same data the page cannot see, bob
    // edits again and reacts; the page, back, shows both without a reload.
    let backend = app.stop().await;
    alice
        .wait_for(
            "the page to show it is offline",
            "return document.getElementById('conn-state').classList.contains('bad')",
            vec![],
        )
        .await;
    let elsewhere = TestApp::spawn_in(backend, &QUICK_SENDS).await;
    let bob_elsewhere = bob.at(elsewhere.addr);
    for (method, path, body) in [
        (
            Method::PATCH,
            format!("{messages}/{first}"),
            Some(json!({"body": "really final"})),
        ),
        (
            Method::PUT,
            format!("{messages}/{first}/reactions/🎉"),
            None,
        ),
    ] {
        let (status, answer) = bob_elsewhere.call(method, &path, body.as_ref()).await;
        assert_eq!(status, 200, "{answer}");
    }
    let backend = elsewhere.stop().await;
    let _app = TestApp::spawn_in(backend, &[("BIND", &bind)]).await;
    alice.wait_connected().await;
    wait_shown(
        &alice,
        1,
        json!(["really final", true, false, ["👍 by bob", "🎉 by bob"]]),
    )
    .await;
    assert_eq!(alice.messages().await.len(), 2, "nothing shown twice");
    alice.close().await;
}
