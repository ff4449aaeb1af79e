//! The room page: a conversation between two browsers, presence, grouping, local times,
//! the rate-limit countdown, markup shown as text, and scroll-back.

use chrono::{DateTime, FixedOffset, Timelike};
use fantoccini::key::Key;
use futures_util::future::join_all;
use serde_json::{json, Value};

use crate::driver::{Browser, Driver};
use natter_test_support::TestApp;

/// Who the members panel of a page shows online.
async fn members(browser: &Browser) -> Vec<String> {
    let value = browser
        .js(
            "return [...document.querySelectorAll('#members li.online')].map(li => li.dataset.user)",
            vec![],
        )
        .await;
    serde_json::from_value(value).unwrap()
}

async fn wait_members(browser: &Browser, expected: &[&str]) {
    browser
        .wait_for(
            &format!("the members {expected:?}"),
            "return JSON.stringify([...document.querySelectorAll('#members li.online')] \
                 .map(li => li.dataset.user)) === arguments[0]",
            vec![json!(serde_json::to_string(expected).unwrap())],
        )
        .await;
}

/// The `(hour, minute)` a page shows for a time such as "09:05", "9:05 PM" or "21:05".
fn shown_hour_minute(text: &str) -> (u32, u32) {
    let digits: Vec<u32> = text
        .split(|c: char| !c.is_ascii_digit())
        .filter(|part| !part.is_empty())
        .map(|part| part.parse().unwrap())
        .collect();
    let (hour, minute) = (digits[0], digits[1]);
    let upper = text.to_uppercase();
    let hour = match (upper.contains("PM"), upper.contains("AM")) {
        (true, _) if hour < 12 => hour + 12,
        (_, true) if hour == 12 => 0,
        _ => hour,
    };
    (hour, minute)
}

#[tokio::test]
#[ignore = "needs CHROME"]
async fn two_people_meet_in_a_room_and_talk_both_ways() {
    // Both browsers live in India (UTC+05:30, no daylight saving): times must be local.
    let driver = Driver::start_with(&[("TZ", "Asia/Kolkata")]).await;
    let app = TestApp::spawn().await;
    // Other rooms, with someone in one, so the room list has something to show.
    let carol = app.user("carol").await;
    carol.create_room("General").await;
    carol.create_room("Rust").await;
    let mut carol_socket = carol.connect("general").await;
    carol_socket.say("Morning, everyone!", "c-1").await;

    let alice = driver.browser().await;
    let bob = driver.browser().await;
    alice.register(&app, "alice").await;
    bob.register(&app, "bob").await;
    // Carol writes to each of them, and has Alice in a private room: their sidebars show
    // it (the screenshots too).
    for (who, name) in [("alice", "Planning"), ("bob", "")] {
        let (status, _) = carol
            .post_json("/api/dms", &json!({ "username": who }))
            .await;
        assert_eq!(status, 201);
        if !name.is_empty() {
            let (_, room) = carol
                .post_json("/api/rooms", &json!({ "name": name, "private": true }))
                .await;
            let slug = room["room"]["slug"].as_str().unwrap().to_owned();
            let (status, _) = carol
                .post_json(
                    &format!("/api/rooms/{slug}/members"),
                    &json!({ "username": who }),
                )
                .await;
            assert_eq!(status, 204);
        }
    }

    // Alice creates the room through the form. Bob's room list, loaded before, shows it
    // by itself, with Alice online.
    alice.enter_room("Book Club").await;
    assert_eq!(alice.path().await, "/rooms/book-club");
    bob.wait_for(
        "Book Club on Bob's room list, with one person online",
        "const row = document.querySelector('#room-list tr[data-slug=\"book-club\"]'); \
         return row !== null && row.querySelector('.online').textContent === '1'",
        vec![],
    )
    .await;
    bob.click("#room-list a[href='/rooms/book-club']").await;
    bob.wait_connected().await;

    // Each sees the other arrive.
    wait_members(&alice, &["alice", "bob"]).await;
    wait_members(&bob, &["alice", "bob"]).await;

    alice.say("Hi Bob! Welcome to the book club.").await;
    bob.wait_message("Hi Bob! Welcome to the book club.").await;

    // Shift+Enter starts a new line; Enter sends.
    bob.js("document.getElementById('body').focus()", vec![])
        .await;
    let mut keys: Vec<char> = "Thanks!".chars().collect();
    keys.extend([char::from(Key::Shift), char::from(Key::Enter)]);
    bob.press(&keys).await;
    bob.type_line("What are we reading first?").await;
    let reply = "Thanks!\nWhat are we reading first?";
    bob.wait_message(reply).await;
    alice.wait_message(reply).await;

    // Two in a row from Alice (the second may wait out the 1 s rate limit by itself).
    alice.say("Piranesi, by Susanna Clarke.").await;
    alice.say("Chapter one for Thursday?").await;
    bob.wait_message("Chapter one for Thursday?").await;
    bob.say("Sounds good, see you then!").await;
    alice.wait_message("Sounds good, see you then!").await;

    // Both pages show the same conversation, in seq order, each message once.
    let expected = vec![
        (1, "alice", "Hi Bob! Welcome to the book club."),
        (2, "bob", reply),
        (3, "alice", "Piranesi, by Susanna Clarke."),
        (4, "alice", "Chapter one for Thursday?"),
        (5, "bob", "Sounds good, see you then!"),
    ];
    let expected: Vec<(i64, String, String)> = expected
        .into_iter()
        .map(|(seq, user, body)| (seq, user.to_owned(), body.to_owned()))
        .collect();
    assert_eq!(alice.messages().await, expected);
    assert_eq!(bob.messages().await, expected);

    // Each reader's own messages are marked; Alice's two in a row form one group.
    let marks = "return [...document.querySelectorAll('#messages > li')] \
                 .map(li => [li.classList.contains('mine'), li.classList.contains('cont')])";
    assert_eq!(
        alice.js(marks, vec![]).await,
        json!([
            [true, false],
            [false, false],
            [true, false],
            [true, true],
            [false, false]
        ])
    );
    assert_eq!(
        bob.js(marks, vec![]).await,
        json!([
            [false, false],
            [true, false],
            [false, false],
            [false, true],
            [true, false]
        ])
    );

    // Times are shown in the reader's zone.
    let time: Value = alice
        .js(
            "const t = document.querySelector('#messages time'); return [t.dateTime, t.textContent]",
            vec![],
        )
        .await;
    let sent_at = DateTime::parse_from_rfc3339(time[0].as_str().unwrap()).unwrap();
    let local = sent_at.with_timezone(&FixedOffset::east_opt(5 * 3600 + 30 * 60).unwrap());
    assert_eq!(
        shown_hour_minute(time[1].as_str().unwrap()),
        (local.hour(), local.minute()),
        "{time}"
    );

    alice.screenshot("room.png").await;

    // Bob leaves: Alice sees it; Bob's room list shows who is where and the last activity.
    bob.click("a.brand").await;
    wait_members(&alice, &["alice"]).await;
    // Bob is still a member, shown offline.
    alice
        .wait_for(
            "Bob offline in the members panel",
            "return document.querySelector('#members li.offline[data-user=bob]') !== null",
            vec![],
        )
        .await;
    bob.wait_for(
        "the room list with Book Club's last message",
        "const row = document.querySelector('#room-list tr[data-slug=\"book-club\"]'); \
         return row !== null && row.querySelector('time') !== null",
        vec![],
    )
    .await;
    bob.screenshot("rooms.png").await;
    assert_eq!(members(&alice).await, ["alice"]);

    drop(carol_socket);
    alice.close().await;
    bob.close().await;
}

#[tokio::test]
#[ignore = "needs CHROME"]
async fn sending_too_fast_shows_a_countdown_and_the_box_comes_back() {
    let driver = Driver::start().await;
    let app = TestApp::spawn().await;
    let alice = driver.browser().await;
    alice.register(&app, "alice").await;
    alice.enter_room("Speedy").await;

    // Record every state of the send box, so a short countdown cannot be missed.
    alice
        .js(
            "window.seen = []; \
             const record = () => { \
               const status = document.getElementById('send-status'); \
               window.seen.push({ text: status.hidden ? '' : status.textContent, \
                                  disabled: document.getElementById('send').disabled }); }; \
             new MutationObserver(record).observe(document.getElementById('send-form').parentElement, \
               { subtree: true, childList: true, attributes: true, characterData: true });",
            vec![],
        )
        .await;
    alice
        .js("document.getElementById('body').focus()", vec![])
        .await;
    // Two messages typed in one go: Enter, then Enter again well within a second.
    alice
        .type_line(&format!("first{}second", char::from(Key::Enter)))
        .await;

    // 1 message per second: the second is refused, the box says so and counts down...
    let seen = alice
        .wait_for(
            "the rate-limit countdown",
            "return (window.seen || []).find(s => /send again in \\d+ s/.test(s.text) && s.disabled)",
            vec![],
        )
        .await;
    assert!(
        seen["text"].as_str().unwrap().starts_with("Slow down"),
        "{seen}"
    );
    // ... then comes back by itself, and the waiting message goes with the same client_id.
    alice
        .wait_for(
            "the send box to come back",
            "return !document.getElementById('send').disabled \
                 && document.getElementById('send-status').hidden",
            vec![],
        )
        .await;
    alice.wait_message("second").await;
    alice.say("third").await;
    let bodies: Vec<String> = alice.messages().await.into_iter().map(|m| m.2).collect();
    assert_eq!(bodies, ["first", "second", "third"]);
    alice.close().await;
}

#[tokio::test]
#[ignore = "needs CHROME"]
async fn markup_in_messages_and_room_names_is_shown_as_text() {
    let driver = Driver::start().await;
    let app = TestApp::spawn().await;
    let bob = app.user("bob").await;
    let carol = app.user("carol").await;
    let slug = bob.create_room("Markup").await;

    let alice = driver.browser().await;
    alice.register(&app, "alice").await;
    alice.enter_room("Markup").await;

    let script = "<script>window.pwned = 1</script>";
    let image = "<img src=x onerror=\"window.pwned = 2\">";
    let typed = "<b>bold?</b> <img src=y onerror=window.pwned=3>";
    bob.connect(&slug).await.say(script, "b-1").await;
    carol.connect(&slug).await.say(image, "c-1").await;
    alice.say(typed).await;
    alice.wait_message(script).await;
    alice.wait_message(image).await;
    let bodies: Vec<String> = alice.messages().await.into_iter().map(|m| m.2).collect();
    assert_eq!(bodies, [script, image, typed]);
    let injected = "return document.querySelectorAll('main img, main script, main b').length \
                    + (window.pwned === undefined ? 0 : 100)";
    assert_eq!(alice.js(injected, vec![]).await, json!(0));
    // Each piece of user text keeps its own direction: a right-to-left override in a
    // body or a name cannot reorder the text around it.
    let isolated = "return [...document.querySelectorAll('.message')].every(m => \
                    m.querySelector('.body').dir === 'auto' && m.querySelector('.who').tagName === 'BDI')";
    assert_eq!(alice.js(isolated, vec![]).await, json!(true));

    // A room name with markup, arriving through the room list's refresh.
    alice.click("a.brand").await;
    alice
        .wait_for(
            "the room list",
            "return document.getElementById('room-list') !== null",
            vec![],
        )
        .await;
    let name = "<img src=z onerror=\"window.pwned = 4\">";
    bob.create_room(name).await;
    alice
        .wait_for(
            "the new room on the list",
            "return [...document.querySelectorAll('#room-list a')].some(a => a.textContent === arguments[0])",
            vec![json!(name)],
        )
        .await;
    assert_eq!(alice.js(injected, vec![]).await, json!(0));
    let names_isolated =
        "return [...document.querySelectorAll('#room-list a')].every(a => a.dir === 'auto')";
    assert_eq!(alice.js(names_isolated, vec![]).await, json!(true));
    alice.close().await;
}

#[tokio::test]
#[ignore = "needs CHROME"]
async fn scrolling_up_loads_older_messages_and_the_view_stays_put() {
    let driver = Driver::start().await;
    let app = TestApp::spawn_with(&[("HISTORY_ON_JOIN", "10")]).await;
    let owner = app.user("owner").await;
    let slug = owner.create_room("Archive").await;
    // 30 messages of three lines, from 30 people (the rate limit is per person).
    let names: Vec<String> = (1..=30).map(|i| format!("user{i:02}")).collect();
    let people = join_all(names.iter().map(|name| app.user(name))).await;
    for (i, person) in people.iter().enumerate() {
        let body = format!("message {}\nsecond line\nthird line", i + 1);
        let ack = person.connect(&slug).await.say(&body, "m").await;
        assert_eq!(ack["type"], "ack", "{ack}");
    }

    let alice = driver.browser().await;
    alice.register(&app, "alice").await;
    alice.goto(&app, &format!("/rooms/{slug}")).await;
    alice.wait_connected().await;
    alice
        .wait_for(
            "the last 10 messages, scrolled to the newest",
            "const s = document.getElementById('scroller'); \
             return document.querySelectorAll('#messages > li').length === 10 \
                 && s.scrollHeight - s.scrollTop - s.clientHeight < 2",
            vec![],
        )
        .await;
    let seqs: Vec<i64> = alice.messages().await.iter().map(|m| m.0).collect();
    assert_eq!(seqs, (21..=30).collect::<Vec<_>>());

    // The reader scrolls to the top. Where the oldest shown message is, before and after
    // the older ones load above it, must not change.
    let top_of_21 = "const li = document.querySelector('#messages > li[data-seq=\"21\"]'); \
                     return li.getBoundingClientRect().top";
    let before = alice
        .js(
            &format!("document.getElementById('scroller').scrollTop = 0; {top_of_21}"),
            vec![],
        )
        .await;
    alice
        .wait_for(
            "all 30 messages",
            "return document.querySelectorAll('#messages > li').length === 30",
            vec![],
        )
        .await;
    let after = alice.js(top_of_21, vec![]).await;
    let moved = (before.as_f64().unwrap() - after.as_f64().unwrap()).abs();
    assert!(
        moved < 1.5,
        "the view moved by {moved}px ({before} → {after})"
    );
    let seqs: Vec<i64> = alice.messages().await.iter().map(|m| m.0).collect();
    assert_eq!(seqs, (1..=30).collect::<Vec<_>>());
    alice
        .wait_for(
            "the beginning of the room",
            "return !document.getElementById('history-start').hidden",
            vec![],
        )
        .await;
    alice.close().await;
}
