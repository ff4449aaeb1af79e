//! CONTRACT §11 in the page, as far as it stands: the typing line under the message box.

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
