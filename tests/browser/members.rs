//! The chat client's membership: the sidebar (New room, New message, kept fresh), the
//! members panel with its moderation controls, and what a removed member's page does.

use fantoccini::key::Key;
use serde_json::json;

use crate::driver::{Browser, Driver};
use natter_test_support::TestApp;

/// Waits until the members panel shows `user` matching `state` (a CSS suffix such as
/// `.online` or `[data-role="owner"]`).
async fn wait_member(browser: &Browser, user: &str, state: &str) {
    browser
        .wait_for(
            &format!("{user}{state} in the members panel"),
            "return document.querySelector('#members li[data-user=\"' + arguments[0] + '\"]' + arguments[1]) !== null",
            vec![json!(user), json!(state)],
        )
        .await;
}

/// The polite live region of the members panel says `text`.
async fn wait_announced(browser: &Browser, text: &str) {
    browser
        .wait_for(
            &format!("the announcement {text:?}"),
            "return document.getElementById('members-status').textContent === arguments[0]",
            vec![json!(text)],
        )
        .await;
}

#[tokio::test]
#[ignore = "needs CHROME"]
async fn a_private_room_made_on_the_page_reaches_the_person_added_to_it() {
    let driver = Driver::start().await;
    let app = TestApp::spawn().await;
    let alice = driver.browser().await;
    let bob = driver.browser().await;
    alice.register(&app, "alice").await;
    // Bob waits on the browse page, with nothing in his sidebar.
    bob.register(&app, "bob").await;
    assert_eq!(
        bob.js(
            "return document.querySelectorAll('#side-rooms a').length",
            vec![]
        )
        .await,
        json!(0)
    );

    // Alice makes a private room with the sidebar's New room form.
    alice.click("#new-room summary").await;
    alice.fill("#new-room-name", "Secret Garden").await;
    alice.click("#new-room-private").await;
    alice.click("#new-room-form button[type=submit]").await;
    alice.wait_connected().await;
    let path = alice.path().await;
    assert!(path.starts_with("/rooms/p--"), "{path}");
    let slug = &path["/rooms/".len()..];
    alice
        .wait_for(
            "the new room marked current in Alice's sidebar",
            "const a = document.querySelector('#side-rooms a[aria-current=page]'); \
             return a !== null && a.dataset.slug === arguments[0] && a.textContent === 'Secret Garden private'",
            vec![json!(slug)],
        )
        .await;
    wait_member(&alice, "alice", "[data-role=\"owner\"].online").await;

    // She adds Bob through the members panel.
    alice.fill("#add-member-name", "bob").await;
    alice.click("#add-member button[type=submit]").await;
    wait_member(&alice, "bob", ".offline").await;
    wait_announced(&alice, "bob was added.").await;
    // An unknown name is refused where it was typed.
    alice.fill("#add-member-name", "nobody").await;
    alice.press(&[Key::Enter.into()]).await;
    alice
        .wait_for(
            "the refusal under the add field",
            "const e = document.getElementById('members-error'); \
             return !e.hidden && e.textContent === 'no such user' \
                 && document.getElementById('add-member-name').getAttribute('aria-invalid') === 'true'",
            vec![],
        )
        .await;

    // Bob's open page gets the room in its sidebar by itself (it polls every 5 s).
    let link = format!("#side-rooms a[data-slug='{slug}']");
    bob.wait_for(
        "the private room in Bob's sidebar",
        "const a = document.querySelector(arguments[0]); \
         return a !== null && a.textContent.startsWith('Secret Garden')",
        vec![json!(link)],
    )
    .await;
    bob.click(&link).await;
    bob.wait_connected().await;
    assert_eq!(bob.path().await, path);
    wait_member(&alice, "bob", ".online").await;
    bob.say("What a lovely garden.").await;
    alice.wait_message("What a lovely garden.").await;

    // The owner has the controls; Bob, a plain member, none of them (but may leave).
    let tools = "return [...document.querySelectorAll('#members button')].map(b => b.getAttribute('aria-label'))";
    assert_eq!(
        alice.js(tools, vec![]).await,
        json!([
            "Make bob a moderator",
            "Remove bob from the room",
            "Ban bob from the room"
        ])
    );
    assert_eq!(bob.js(tools, vec![]).await, json!([]));
    assert_eq!(
        bob.js(
            "return [document.getElementById('add-member'), document.getElementById('leave-room')] \
                 .map(e => e !== null)",
            vec![]
        )
        .await,
        json!([false, true])
    );

    // Making Bob a moderator shows on both pages once they look again.
    alice
        .click("#members li[data-user=bob] button[data-action=promote]")
        .await;
    wait_member(&alice, "bob", "[data-role=\"moderator\"]").await;
    wait_announced(&alice, "bob is now a moderator.").await;
    alice.close().await;
    bob.close().await;
}

#[tokio::test]
#[ignore = "needs CHROME"]
async fn a_dm_opened_from_both_sides_is_one_conversation() {
    let driver = Driver::start().await;
    let app = TestApp::spawn().await;
    let alice = driver.browser().await;
    let bob = driver.browser().await;
    alice.register(&app, "alice").await;
    bob.register(&app, "bob").await;

    for (browser, to) in [(&alice, "bob"), (&bob, "alice")] {
        browser.click("#new-message summary").await;
        browser.fill("#new-message-name", to).await;
        browser.press(&[Key::Enter.into()]).await;
        browser.wait_connected().await;
    }
    let path = alice.path().await;
    assert!(path.starts_with("/rooms/dm--"), "{path}");
    assert_eq!(bob.path().await, path, "the same room from both sides");

    // Each sees it under the other's name, in the sidebar and as the title.
    for (browser, other) in [(&alice, "bob"), (&bob, "alice")] {
        let shown = browser
            .js(
                "return [document.querySelector('#side-dms a[aria-current=page]').textContent, \
                         document.querySelector('main h1').textContent]",
                vec![],
            )
            .await;
        assert_eq!(
            shown,
            json!([other, format!("Direct messages with {other}")])
        );
        // No member management in a DM, and it cannot be left.
        assert_eq!(
            browser
                .js(
                    "return document.querySelectorAll('#members button, #add-member, #leave-room').length",
                    vec![]
                )
                .await,
            json!(0)
        );
    }

    alice.say("Hi Bob, just between us.").await;
    bob.wait_message("Hi Bob, just between us.").await;
    bob.say("Hi Alice!").await;
    alice.wait_message("Hi Alice!").await;
    wait_member(&alice, "bob", ".online").await;
    alice.close().await;
    bob.close().await;
}

#[tokio::test]
#[ignore = "needs CHROME"]
async fn a_banned_member_is_told_and_sent_back_to_the_browse_page() {
    let driver = Driver::start().await;
    let app = TestApp::spawn().await;
    let alice = driver.browser().await;
    let bob = driver.browser().await;
    alice.register(&app, "alice").await;
    bob.register(&app, "bob").await;
    alice.enter_room("Patio").await;
    bob.goto(&app, "/rooms/patio").await;
    bob.wait_connected().await;
    wait_member(&alice, "bob", ".online").await;
    bob.wait_for(
        "Patio in Bob's sidebar",
        "return document.querySelector('#side-rooms a[data-slug=patio]') !== null",
        vec![],
    )
    .await;

    // With the keyboard: Enter on Ban asks first; Escape cancels and nothing happens.
    let ban = "#members li[data-user=bob] button[data-action=ban]";
    alice
        .js(
            "document.querySelector(arguments[0]).focus()",
            vec![json!(ban)],
        )
        .await;
    alice.press(&[Key::Enter.into()]).await;
    let asked = alice
        .wait_for(
            "the confirmation",
            "const d = document.getElementById('confirm'); \
             return d.open && d.contains(document.activeElement) \
                 && document.getElementById('confirm-title').textContent",
            vec![],
        )
        .await;
    assert_eq!(asked, json!("Ban bob?"));
    alice.press(&[Key::Escape.into()]).await;
    alice
        .wait_for(
            "the dialog closed, the focus back on Ban",
            "return !document.getElementById('confirm').open \
                 && document.activeElement === document.querySelector(arguments[0])",
            vec![json!(ban)],
        )
        .await;
    wait_member(&alice, "bob", ".online").await;

    // Now confirmed.
    alice.press(&[Key::Enter.into()]).await;
    alice
        .wait_for(
            "the confirmation again",
            "return document.getElementById('confirm').open",
            vec![],
        )
        .await;
    alice.click("#confirm-ok").await;
    wait_announced(&alice, "bob was banned.").await;
    alice
        .wait_for(
            "bob gone from the members panel",
            "return document.querySelector('#members li[data-user=bob]') === null",
            vec![],
        )
        .await;

    // Bob's page says so (an alert), stops, and takes him back to the browse page.
    let notice = bob
        .wait_for(
            "the removal notice",
            "const n = document.getElementById('removed'); \
             return !n.hidden && n.getAttribute('role') === 'alert' \
                 && document.getElementById('body').disabled && n.textContent",
            vec![],
        )
        .await;
    assert!(
        notice
            .as_str()
            .unwrap()
            .contains("You are no longer a member of this room."),
        "{notice}"
    );
    bob.wait_for(
        "the browse page",
        "return location.pathname === '/' && document.getElementById('room-list') !== null",
        vec![],
    )
    .await;
    // Banned: Patio is gone from his sidebar, and its page is refused.
    assert_eq!(
        bob.js(
            "return document.querySelector('#side-rooms a[data-slug=patio]') === null",
            vec![]
        )
        .await,
        json!(true)
    );
    bob.goto(&app, "/rooms/patio").await;
    assert_eq!(
        bob.js(
            "return document.querySelector('main.room') === null",
            vec![]
        )
        .await,
        json!(true)
    );
    alice.close().await;
    bob.close().await;
}
