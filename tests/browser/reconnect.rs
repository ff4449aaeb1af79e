//! The room page across a server restart: it says it is offline, reconnects with
//! `?since=`, and shows what was sent meanwhile exactly once, its own unsent message too.

use crate::driver::Driver;
use natter_test_support::TestApp;

#[tokio::test]
#[ignore = "needs CHROME"]
async fn after_a_server_restart_the_page_shows_what_was_sent_meanwhile_exactly_once() {
    let driver = Driver::start().await;
    let app = TestApp::spawn().await;
    let bind = format!("127.0.0.1:{}", app.addr.port());
    let bob = app.user("bob").await;
    let carol = app.user("carol").await;
    // One message each: the rate limit (1 per second) may outlive a restart (Redis).
    let dave = app.user("dave").await;
    let erin = app.user("erin").await;
    let slug = bob.create_room("Night Shift").await;

    let alice = driver.browser().await;
    alice.register(&app, "alice").await;
    alice.goto(&app, &format!("/rooms/{slug}")).await;
    alice.wait_connected().await;
    alice.say("before the restart").await;
    dave.connect(&slug).await.say("me too", "d-1").await;
    alice.wait_message("me too").await;

    // The server stops; the page says it is offline.
    let backend = app.stop().await;
    alice
        .wait_for(
            "the page to show it is offline",
            "return document.getElementById('conn-state').classList.contains('bad') \
                 && document.getElementById('conn-text').textContent.startsWith('Offline')",
            vec![],
        )
        .await;

    // Meanwhile others talk, through a server on the same data that the page cannot see.
    let elsewhere = TestApp::spawn_in(backend, &[]).await;
    for (person, body) in [(&bob, "sent while you were away"), (&carol, "me as well")] {
        let ack = person
            .at(elsewhere.addr)
            .connect(&slug)
            .await
            .say(body, "meanwhile")
            .await;
        assert_eq!(ack["type"], "ack", "{ack}");
    }
    // Alice writes while offline: her message waits, shown as pending.
    alice
        .js("document.getElementById('body').focus()", vec![])
        .await;
    alice.type_line("written offline").await;
    alice
        .wait_for(
            "the pending message",
            "return document.querySelectorAll('#outbox > li.pending').length === 1",
            vec![],
        )
        .await;
    let backend = elsewhere.stop().await;

    // The server comes back where the page expects it; the page reconnects by itself.
    // With one message of history on join, only `?since=` (or asking for the gap) can
    // bring back everything that was missed.
    let app = TestApp::spawn_in(backend, &[("BIND", &bind), ("HISTORY_ON_JOIN", "1")]).await;
    alice.wait_connected().await;
    alice.wait_message("written offline").await;
    let ack = erin
        .at(app.addr)
        .connect(&slug)
        .await
        .say("welcome back", "e-1")
        .await;
    assert_eq!(ack["type"], "ack", "{ack}");
    alice.wait_message("welcome back").await;

    let shown: Vec<(i64, String)> = alice
        .messages()
        .await
        .into_iter()
        .map(|(seq, _, body)| (seq, body))
        .collect();
    let expected: Vec<(i64, String)> = [
        "before the restart",
        "me too",
        "sent while you were away",
        "me as well",
        "written offline",
        "welcome back",
    ]
    .iter()
    .zip(1..)
    .map(|(body, seq)| (seq, body.to_string()))
    .collect();
    assert_eq!(shown, expected);
    alice.close().await;
}
