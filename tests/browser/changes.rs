//! CONTRACT §10 in the page: a message edited, reacted to or deleted by someone else
//! changes in place, live, and a change made while the page was offline is there after
//! it reconnects (`?since=&rev=`), without a reload; and two people edit, delete, react
//! and reply with the page's own controls.

use fantoccini::key::Key;
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
        let (bob, slug, body) = (&bob, &slug, body.to_owned());
        async move { bob.post_message(slug, &body).await["id"].as_i64().unwrap() }
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

/// The selector of a control in the page's message `seq`.
fn control(seq: i64, what: &str) -> String {
    format!("#messages > li[data-seq='{seq}'] {what}")
}

/// The actions the page offers on message `seq`.
async fn offered(page: &Browser, seq: i64) -> Value {
    page.js(
        "return [...document.querySelectorAll(`#messages > li[data-seq=\"${arguments[0]}\"] .actions button`)] \
         .map(b => b.dataset.action)",
        vec![json!(seq)],
    )
    .await
}

/// Message `seq`'s reaction chips: their text, and whether they are pressed.
async fn pressed(page: &Browser, seq: i64) -> Value {
    page.js(
        "return [...document.querySelectorAll(`#messages > li[data-seq=\"${arguments[0]}\"] .reaction`)] \
         .map(c => [c.textContent, c.getAttribute('aria-pressed')])",
        vec![json!(seq)],
    )
    .await
}

/// Uses action `what` of message `seq` as a pointer would: the message is tapped first
/// (its actions show on hover, focus or a tap), unless they show already.
async fn act(page: &Browser, seq: i64, what: &str) {
    let shown = page
        .js(
            "return document.querySelector(`#messages > li[data-seq=\"${arguments[0]}\"]`) \
               .classList.contains('selected')",
            vec![json!(seq)],
        )
        .await;
    if shown != json!(true) {
        page.click(&control(seq, ".body")).await;
    }
    page.click(&control(seq, &format!("[data-action={what}]")))
        .await;
}

/// Deletes message `seq` with its Delete action, confirming when asked.
async fn delete_confirmed(page: &Browser, seq: i64) {
    act(page, seq, "delete").await;
    page.wait_for(
        "the confirmation",
        "return document.getElementById('confirm').open",
        vec![],
    )
    .await;
    page.click("#confirm-ok").await;
}

/// The reply quote in message `seq`: its text, or null when it has none.
async fn quote(page: &Browser, seq: i64) -> Value {
    page.js(
        "const q = document.querySelector(`#messages > li[data-seq=\"${arguments[0]}\"] .reply-quote`); \
         return q && q.textContent",
        vec![json!(seq)],
    )
    .await
}

async fn wait_quote(page: &Browser, seq: i64, expected: &str) {
    page.wait_for(
        &format!("message {seq} to quote {expected:?}"),
        "const q = document.querySelector(`#messages > li[data-seq=\"${arguments[0]}\"] .reply-quote`); \
         return q !== null && q.textContent === arguments[1]",
        vec![json!(seq), json!(expected)],
    )
    .await;
}

#[tokio::test]
#[ignore = "needs CHROME"]
async fn two_people_edit_react_reply_and_delete_with_the_page_controls() {
    let driver = Driver::start().await;
    let app = TestApp::spawn_with(&QUICK_SENDS).await;
    let alice = driver.browser().await;
    let bob = driver.browser().await;
    alice.register(&app, "alice").await;
    bob.register(&app, "bob").await;
    alice.enter_room("Talk").await;
    bob.goto(&app, "/rooms/talk").await;
    bob.wait_connected().await;
    alice.say("Helo everyone").await;
    bob.wait_message("Helo everyone").await;

    // Up arrow in the empty box edits alice's last message, in place; Enter saves.
    alice
        .js("document.getElementById('body').focus()", vec![])
        .await;
    alice.press(&[char::from(Key::Up)]).await;
    alice
        .wait_for(
            "the editor, focused, holding the text as sent",
            "const a = document.activeElement; \
             return a.closest('li.message.editing') !== null && a.value === 'Helo everyone'",
            vec![],
        )
        .await;
    alice.press(&[char::from(Key::Control), 'a']).await;
    alice.type_line("Hello everyone").await;
    for page in [&alice, &bob] {
        wait_shown(page, 1, json!(["Hello everyone", true, false, []])).await;
    }
    let editing = alice
        .js(
            "return document.querySelectorAll('.editing, .editor').length",
            vec![],
        )
        .await;
    assert_eq!(
        editing,
        json!(0),
        "the editor closed once the edit was stored"
    );
    // Only the author may edit; only the author and the room's owner may delete.
    assert_eq!(
        offered(&alice, 1).await,
        json!(["react", "reply", "edit", "delete"])
    );
    assert_eq!(offered(&bob, 1).await, json!(["react", "reply"]));

    // Bob reacts through the picker, with a pointer; the chip is pressed on his page.
    act(&bob, 1, "react").await;
    bob.click("#emoji-picker [data-emoji='🎉']").await;
    for page in [&alice, &bob] {
        wait_shown(
            page,
            1,
            json!(["Hello everyone", true, false, ["🎉 by bob"]]),
        )
        .await;
    }
    assert_eq!(pressed(&bob, 1).await, json!([["🎉 1", "true"]]));
    assert_eq!(pressed(&alice, 1).await, json!([["🎉 1", "false"]]));
    // …and with the keyboard: the picker opens on its first emoji, arrows move, Enter picks.
    bob.js(
        "document.querySelector(`#messages > li[data-seq=\"1\"] [data-action=react]`).focus()",
        vec![],
    )
    .await;
    bob.press(&[char::from(Key::Enter)]).await;
    bob.wait_for(
        "the picker, its first emoji focused",
        "return document.activeElement.dataset.emoji === '👍'",
        vec![],
    )
    .await;
    bob.screenshot("reactions.png").await;
    bob.press(&[char::from(Key::Right), char::from(Key::Enter)])
        .await;
    wait_shown(
        &alice,
        1,
        json!(["Hello everyone", true, false, ["🎉 by bob", "👎 by bob"]]),
    )
    .await;
    let picker_hidden = bob
        .js(
            "return document.getElementById('emoji-picker').hidden",
            vec![],
        )
        .await;
    assert_eq!(picker_hidden, json!(true));

    // Alice's click on a chip adds her to it; a second click takes her back out.
    alice.click(&control(1, ".reaction[data-emoji='🎉']")).await;
    wait_shown(
        &bob,
        1,
        json!([
            "Hello everyone",
            true,
            false,
            ["🎉 by alice, bob", "👎 by bob"]
        ]),
    )
    .await;
    alice.click(&control(1, ".reaction[data-emoji='🎉']")).await;
    wait_shown(
        &bob,
        1,
        json!(["Hello everyone", true, false, ["🎉 by bob", "👎 by bob"]]),
    )
    .await;

    // Bob replies: the box says to what, and the reply quotes it on both pages.
    act(&bob, 1, "reply").await;
    bob.wait_for(
        "the reply bar",
        "const r = document.getElementById('replying'); \
         return !r.hidden && r.textContent.includes('Replying to alice: Hello everyone')",
        vec![],
    )
    .await;
    bob.type_line("Welcome aboard!").await;
    bob.wait_message("Welcome aboard!").await;
    for page in [&alice, &bob] {
        wait_quote(page, 2, "In reply to alice: Hello everyone").await;
    }
    let bar_hidden = bob
        .js("return document.getElementById('replying').hidden", vec![])
        .await;
    assert_eq!(
        bar_hidden,
        json!(true),
        "the reply bar goes once the reply is sent"
    );
    // Following the quote shows the message it answers.
    alice.click(&control(2, ".reply-quote")).await;
    alice
        .wait_for(
            "the quoted message, highlighted and focused",
            "const li = document.querySelector('#messages > li[data-seq=\"1\"]'); \
             return li.classList.contains('flash') && document.activeElement === li",
            vec![],
        )
        .await;

    // Alice edits through the Edit button: the quote follows the edit on bob's page.
    act(&alice, 1, "edit").await;
    alice.press(&[char::from(Key::Control), 'a']).await;
    alice.type_line("Hello, everyone").await;
    wait_quote(&bob, 2, "In reply to alice: Hello, everyone").await;
    // Escape leaves an edit unsaved.
    act(&alice, 1, "edit").await;
    alice.press(&['!', char::from(Key::Escape)]).await;
    assert_eq!(
        shown(&alice, 1).await[0],
        json!("Hello, everyone"),
        "an edit left with Escape is not saved"
    );

    // Alice deletes her message after confirming: bob's reply now quotes a tombstone.
    // Then, as the room's owner, she deletes bob's reply too.
    delete_confirmed(&alice, 1).await;
    for page in [&alice, &bob] {
        wait_shown(page, 1, json!(["message deleted", false, true, []])).await;
        wait_quote(page, 2, "In reply to alice: message deleted").await;
    }
    delete_confirmed(&alice, 2).await;
    for page in [&alice, &bob] {
        wait_shown(page, 2, json!(["message deleted", false, true, []])).await;
    }
    assert_eq!(
        quote(&bob, 2).await,
        Value::Null,
        "a tombstone quotes nothing"
    );
    alice.close().await;
    bob.close().await;
}
