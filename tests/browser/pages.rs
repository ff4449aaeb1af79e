//! The pages as a whole: usable with the keyboard alone, and on a phone-width screen.

use fantoccini::key::Key;
use serde_json::json;

use crate::driver::{Browser, Driver};
use natter_test_support::{TestApp, PASSWORD};

async fn focused_id(browser: &Browser) -> String {
    let id = browser.js("return document.activeElement.id", vec![]).await;
    id.as_str().unwrap_or_default().to_owned()
}

/// Presses Tab until the element with this id has the focus (at most 25 times).
async fn tab_to(browser: &Browser, id: &str) {
    for _ in 0..25 {
        if focused_id(browser).await == id {
            return;
        }
        browser.press(&[Key::Tab.into()]).await;
    }
    panic!("#{id} cannot be reached with Tab");
}

#[tokio::test]
#[ignore = "needs CHROME"]
async fn the_keyboard_alone_is_enough() {
    let driver = Driver::start().await;
    let app = TestApp::spawn().await;
    let alice = driver.browser().await;
    let (tab, enter, shift) = (
        char::from(Key::Tab),
        char::from(Key::Enter),
        char::from(Key::Shift),
    );

    // Registering: the first field has the focus, Tab moves on, Enter submits.
    alice.goto(&app, "/register").await;
    let mut keys: Vec<char> = "alice".chars().collect();
    keys.push(tab);
    keys.extend(PASSWORD.chars());
    keys.push(tab);
    keys.extend(PASSWORD.chars());
    keys.push(enter);
    alice.press(&keys).await;
    alice
        .wait_for(
            "the room list",
            "return document.getElementById('room-list') !== null",
            vec![],
        )
        .await;

    // The create-or-join form: an empty name is refused inline, and the focus stays.
    tab_to(&alice, "room-name").await;
    alice.press(&[enter]).await;
    alice
        .wait_for(
            "the inline error",
            "const input = document.getElementById('room-name'); \
             return !document.getElementById('room-name-error').hidden \
                 && input.getAttribute('aria-invalid') === 'true' \
                 && document.activeElement === input",
            vec![],
        )
        .await;
    alice.type_line("Quiet Room").await;
    alice.wait_connected().await;
    assert_eq!(alice.path().await, "/rooms/quiet-room");

    // In the room the message box has the focus: Enter sends, Shift+Enter adds a line.
    assert_eq!(focused_id(&alice).await, "body");
    alice.type_line("hello from the keyboard").await;
    alice.wait_message("hello from the keyboard").await;
    let mut keys: Vec<char> = "line one".chars().collect();
    keys.extend([shift, enter]);
    alice.press(&keys).await;
    alice.type_line("line two").await;
    alice.wait_message("line one\nline two").await;

    // The Send button is the next stop after the box, and works with Enter.
    let keys: Vec<char> = "sent with the button".chars().collect();
    alice.press(&keys).await;
    alice.press(&[tab]).await;
    assert_eq!(focused_id(&alice).await, "send");
    alice.press(&[enter]).await;
    alice.wait_message("sent with the button").await;
    assert_eq!(alice.messages().await.len(), 3);
    alice.close().await;
}

#[tokio::test]
#[ignore = "needs CHROME"]
async fn the_pages_fit_a_phone_screen() {
    let driver = Driver::start().await;
    let app = TestApp::spawn().await;
    let alice = driver.browser().await;
    alice
        .client
        .set_window_size(390, 844)
        .await
        .expect("resize");
    alice.register(&app, "alice").await;
    let fits = "return document.documentElement.scrollWidth <= window.innerWidth";
    assert_eq!(alice.js(fits, vec![]).await, json!(true), "the room list");

    alice
        .enter_room("A room with a rather long name, on a phone")
        .await;
    alice
        .say("hello from a small screen, with a long word: supercalifragilisticexpialidocious-and-then-some-more-of-it")
        .await;
    assert_eq!(alice.js(fits, vec![]).await, json!(true), "the room");
    // The message box and its button are on screen; who is here sits above the messages.
    let layout = alice
        .js(
            "const r = id => document.getElementById(id).getBoundingClientRect(); \
             return r('send').right <= innerWidth && r('send').bottom <= innerHeight \
                 && r('body').bottom <= innerHeight \
                 && r('members').bottom <= r('scroller').top",
            vec![],
        )
        .await;
    assert_eq!(layout, json!(true));
    alice.close().await;
}
