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
async fn the_pages_fit_a_phone_screen_and_the_sidebar_folds_into_a_menu() {
    let driver = Driver::start().await;
    let app = TestApp::spawn().await;
    let carol = app.user("carol").await;
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
    let (status, _) = carol
        .post_json("/api/dms", &json!({ "username": "alice" }))
        .await;
    assert_eq!(status, 201);
    alice
        .say("hello from a small screen, with a long word: supercalifragilisticexpialidocious-and-then-some-more-of-it")
        .await;
    assert_eq!(alice.js(fits, vec![]).await, json!(true), "the room");
    // The message box and its button are on screen.
    let layout = alice
        .js(
            "const r = id => document.getElementById(id).getBoundingClientRect(); \
             return r('send').right <= innerWidth && r('send').bottom <= innerHeight \
                 && r('body').bottom <= innerHeight",
            vec![],
        )
        .await;
    assert_eq!(layout, json!(true));

    // The sidebar is folded away behind the Rooms button...
    let sidebar_state = "const s = document.getElementById('sidebar'); \
         const b = document.getElementById('menu-button'); \
         return [getComputedStyle(s).display !== 'none', b.getAttribute('aria-expanded'), \
                 b.getAttribute('aria-controls'), b.getBoundingClientRect().width > 0]";
    assert_eq!(
        alice.js(sidebar_state, vec![]).await,
        json!([false, "false", "sidebar", true])
    );
    // ... which opens it from the keyboard: the focus goes to its first link, and each of
    // its links is on screen and reachable.
    tab_to(&alice, "menu-button").await;
    alice.press(&[char::from(Key::Enter)]).await;
    alice
        .wait_for(
            "the open sidebar, focused",
            "return document.getElementById('sidebar').contains(document.activeElement) \
                 && document.activeElement.id === 'browse-link'",
            vec![],
        )
        .await;
    assert_eq!(
        alice.js(sidebar_state, vec![]).await,
        json!([true, "true", "sidebar", true])
    );
    alice
        .wait_for(
            "Carol's DM in the sidebar",
            "return document.querySelector('#side-dms a') !== null",
            vec![],
        )
        .await;
    let reachable = alice
        .js(
            "return [...document.querySelectorAll('#sidebar a')].map(a => { \
               const r = a.getBoundingClientRect(); \
               const hit = document.elementFromPoint(r.left + r.width / 2, r.top + r.height / 2); \
               return [a.textContent, r.width > 0 && r.right <= innerWidth && r.bottom <= innerHeight \
                                      && a.contains(hit)]; })",
            vec![],
        )
        .await;
    assert_eq!(
        reachable,
        json!([
            ["Browse rooms", true],
            ["A room with a rather long name, on a phone", true],
            ["carol", true]
        ])
    );
    alice.screenshot("phone.png").await;
    // Escape folds it again, and the focus goes back to the button.
    alice.press(&[char::from(Key::Escape)]).await;
    assert_eq!(
        alice.js(sidebar_state, vec![]).await,
        json!([false, "false", "sidebar", true])
    );
    assert_eq!(focused_id(&alice).await, "menu-button");

    // The members panel opens above the conversation with its own button.
    alice.click("#members-button").await;
    let members = alice
        .js(
            "const r = id => document.getElementById(id).getBoundingClientRect(); \
             return document.getElementById('members-button').getAttribute('aria-expanded') === 'true' \
                 && r('members').height > 0 && r('members').bottom <= r('scroller').top",
            vec![],
        )
        .await;
    assert_eq!(members, json!(true));

    // A link in the sidebar works: to Carol's DM.
    alice.click("#menu-button").await;
    alice.click("#side-dms a").await;
    alice.wait_connected().await;
    assert!(alice.path().await.starts_with("/rooms/dm--"));
    assert_eq!(alice.js(fits, vec![]).await, json!(true), "the DM");
    alice.close().await;
}
