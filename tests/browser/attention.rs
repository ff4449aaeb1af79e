//! CONTRACT §11 in the page, as far as it stands: unread and mention badges in the
//! sidebar and the tab's title, the "New messages" line, mentions highlighted, the read
//! marker moving as the newest messages are seen, and the typing line.

use fantoccini::key::Key;
use serde_json::json;

use crate::driver::{Browser, Driver};
use natter_test_support::TestApp;

async fn wait_typing_line(page: &Browser, expected: &str) {
    page.wait_for(
        &format!("the typing line to say {expected:?}"),
        "return document.getElementById('typing').textContent === arguments[0]",
        vec![json!(expected)],
    )
    .await;
}

#[tokio::test]
#[ignore = "needs CHROME"]
async fn the_typing_line_shows_who_else_is_typing_until_they_send() {
    let driver = Driver::start().await;
    let app = TestApp::spawn().await;
    let alice = driver.browser().await;
    let bob = driver.browser().await;
    alice.register(&app, "alice").await;
    bob.register(&app, "bob").await;
    alice.enter_room("Talk").await;
    bob.goto(&app, "/rooms/talk").await;
    bob.wait_connected().await;

    bob.js("document.getElementById('body').focus()", vec![])
        .await;
    bob.press(&['h', 'e', 'l']).await;
    wait_typing_line(&alice, "bob is typing…").await;
    let own = bob
        .js(
            "return document.getElementById('typing').textContent",
            vec![],
        )
        .await;
    assert_eq!(own, json!(""), "nobody is told of their own typing");
    // Sending takes the name off at once (well before the 6 s a name would last).
    let sent = std::time::Instant::now();
    bob.press(&['l', 'o', char::from(Key::Enter)]).await;
    alice.wait_message("hello").await;
    wait_typing_line(&alice, "").await;
    assert!(sent.elapsed() < std::time::Duration::from_secs(4));
    // Emptying the box does too.
    bob.press(&['h', 'm']).await;
    wait_typing_line(&alice, "bob is typing…").await;
    let emptied = std::time::Instant::now();
    bob.press(&[char::from(Key::Backspace), char::from(Key::Backspace)])
        .await;
    wait_typing_line(&alice, "").await;
    assert!(emptied.elapsed() < std::time::Duration::from_secs(4));
    alice.close().await;
    bob.close().await;
}

/// The sidebar link of `slug`: its unread badge and mention badge texts ("" when absent).
async fn badges(page: &Browser, slug: &str) -> serde_json::Value {
    page.js(
        "const a = document.querySelector(`#sidebar a[data-slug=\"${arguments[0]}\"]`); \
         if (!a) return null; \
         const text = (c) => { const b = a.querySelector(c); return b ? b.textContent : ''; }; \
         return [text('.unread-badge'), text('.mention-badge')]",
        vec![json!(slug)],
    )
    .await
}

async fn wait_badges(page: &Browser, slug: &str, expected: serde_json::Value) {
    page.wait_for(
        &format!("{slug}'s badges to be {expected}"),
        "const a = document.querySelector(`#sidebar a[data-slug=\"${arguments[0]}\"]`); \
         if (!a) return false; \
         const text = (c) => { const b = a.querySelector(c); return b ? b.textContent : ''; }; \
         return JSON.stringify([text('.unread-badge'), text('.mention-badge')]) === JSON.stringify(arguments[1])",
        vec![json!(slug), expected.clone()],
    )
    .await;
    assert_eq!(badges(page, slug).await, expected);
}

#[tokio::test]
#[ignore = "needs CHROME"]
async fn badges_rise_with_others_messages_and_clear_once_read() {
    let driver = Driver::start().await;
    let app = TestApp::spawn_with(&natter_test_support::QUICK_SENDS).await;
    let alice = app.user("alice").await;
    let talk = alice.create_room("Talk").await;
    let side = alice.create_room("Side").await;
    let bob = driver.browser().await;
    bob.register(&app, "bob").await;
    // bob becomes a member of both, then stays in Talk.
    for slug in [&side, &talk] {
        bob.goto(&app, &format!("/rooms/{slug}")).await;
        bob.wait_connected().await;
    }
    wait_badges(&bob, &side, json!(["", ""])).await;

    // alice writes in Side, once naming bob: his sidebar counts both, the mention apart,
    // and the tab's title the total.
    let post = |slug: &str, body: &str| {
        let (alice, slug, body) = (&alice, slug.to_owned(), body.to_owned());
        async move {
            natter_test_support::after_the_quick_gap().await;
            alice.post_message(&slug, &body).await;
        }
    };
    post(&side, "morning all").await;
    post(&side, "@bob, a question for you").await;
    wait_badges(&bob, &side, json!(["2", "@1"])).await;
    let title = bob.js("return document.title", vec![]).await;
    assert!(title.as_str().unwrap().starts_with("(2) "), "{title}");
    // In Talk itself, where he reads, nothing counts.
    post(&talk, "in the room he is reading").await;
    bob.wait_message("in the room he is reading").await;
    wait_badges(&bob, &talk, json!(["", ""])).await;

    // Opening Side: a "New messages" line above the first unread, the mention marked;
    // having seen them, the marker moves and the badges go.
    bob.click(&format!("#sidebar a[data-slug='{side}']")).await;
    bob.wait_connected().await;
    bob.wait_message("@bob, a question for you").await;
    let opened = bob
        .js(
            "const first = document.querySelector('#messages > li.first-unread'); \
             return [first && first.querySelector('.new-line').textContent, \
                     first && first.querySelector('.body').textContent, \
                     [...document.querySelectorAll('#messages > li.mentions-me .body')].map(b => b.textContent)]",
            vec![],
        )
        .await;
    assert_eq!(
        opened,
        json!(["New messages", "morning all", ["@bob, a question for you"]])
    );
    bob.click(&format!("#sidebar a[data-slug='{talk}']")).await;
    bob.wait_connected().await;
    wait_badges(&bob, &side, json!(["", ""])).await;
    let title = bob.js("return document.title", vec![]).await;
    assert!(!title.as_str().unwrap().starts_with('('), "{title}");
    bob.close().await;
}
