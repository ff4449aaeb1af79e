//! Message formatting on the room page (format.js): every construct becomes the right
//! elements, the same before and after the ack, and hostile text stays text.

use futures_util::future::join_all;
use serde_json::{json, Value};

use crate::driver::{Browser, Driver};
use natter_test_support::TestApp;

/// A message's body element as `[tag, {attributes}, ...children]`, text as strings
/// (neighbouring text nodes joined), so a test sees every element and attribute made.
const SHAPE: &str = "const shape = (node) => { \
       if (node.nodeType === Node.TEXT_NODE) return node.data; \
       const children = []; \
       for (const child of [...node.childNodes].map(shape)) { \
         if (typeof child === 'string' && typeof children[children.length - 1] === 'string') \
           children[children.length - 1] += child; \
         else children.push(child); \
       } \
       return [node.localName, \
               Object.fromEntries([...node.attributes].map(a => [a.name, a.value])), \
               ...children]; \
     };";

async fn wait_stored_messages(browser: &Browser, count: usize) {
    browser
        .wait_for(
            &format!("{count} stored messages and nothing pending"),
            "return document.querySelectorAll('#messages > li').length === arguments[0] \
                 && document.querySelectorAll('#outbox > li').length === 0",
            vec![json!(count)],
        )
        .await;
}

/// The shape of the body of stored message `seq`.
async fn body_shape(browser: &Browser, seq: i64) -> Value {
    browser
        .js(
            &format!(
                "{SHAPE} return shape(document.querySelector(\
                 '#messages > li[data-seq=\"' + arguments[0] + '\"] .body'))"
            ),
            vec![json!(seq)],
        )
        .await
}

#[tokio::test]
#[ignore = "needs CHROME"]
async fn every_construct_is_formatted_the_same_while_sending_and_once_stored() {
    let driver = Driver::start().await;
    let app = TestApp::spawn().await;
    let bob = app.user("bob").await;
    let alice = driver.browser().await;
    alice.register(&app, "alice").await;
    alice.enter_room("Formatting").await;
    let mut bob_socket = bob.connect("formatting").await;

    let text = "Read **the guide** at https://example.com/guide_(v2). It is *short*.\n\
                Run `cargo test` first, see (HTTPS://Example.com/Faq) or ``a `tick` here``.\n\
                > Quoted with *emphasis* and https://example.com/q\n\
                >\n\
                > after a blank line\n\
                ```rust\n\
                let x = **not bold** + `not code`; // https://not.a.link\n\
                > not a quote\n\
                ```\n\
                After the block: 2 * 3 * 4.";
    // What the pending copy looked like, kept as it is added to the page.
    alice
        .js(
            "window.pendingBodies = []; \
             new MutationObserver(() => { \
               for (const body of document.querySelectorAll('#outbox .body')) \
                 window.pendingBodies.push(body.innerHTML); \
             }).observe(document.getElementById('outbox'), { childList: true }); \
             document.getElementById('body').value = arguments[0]; \
             document.getElementById('send-form').requestSubmit();",
            vec![json!(text)],
        )
        .await;
    wait_stored_messages(&alice, 1).await;

    // The server keeps the text as it was sent; only the page formats it.
    let stored = bob_socket.next_of_type("message").await;
    assert_eq!(stored["body"], text, "{stored}");

    let link = |url: &str, shown: &str| json!(["a", { "href": url, "rel": "noopener noreferrer", "target": "_blank" }, shown]);
    assert_eq!(
        body_shape(&alice, 1).await,
        json!([
            "div", { "class": "body", "dir": "auto" },
            "Read ",
            ["strong", {}, "the guide"],
            " at ",
            link("https://example.com/guide_(v2)", "https://example.com/guide_(v2)"),
            ". It is ",
            ["em", {}, "short"],
            ".\nRun ",
            ["code", {}, "cargo test"],
            " first, see (",
            link("https://example.com/Faq", "HTTPS://Example.com/Faq"),
            ") or ",
            ["code", {}, "a `tick` here"],
            ".",
            [
                "blockquote", {},
                "Quoted with ",
                ["em", {}, "emphasis"],
                " and ",
                link("https://example.com/q", "https://example.com/q"),
                "\n\nafter a blank line"
            ],
            [
                "pre", {},
                [
                    "code", {},
                    "let x = **not bold** + `not code`; // https://not.a.link\n> not a quote"
                ]
            ],
            "After the block: 2 * 3 * 4."
        ])
    );

    // The pending copy was built the same way: the message does not change look on its ack.
    let pending = alice.js("return window.pendingBodies", vec![]).await;
    let stored_html = alice
        .js(
            "return document.querySelector('#messages .body').innerHTML",
            vec![],
        )
        .await;
    assert_eq!(pending, json!([stored_html]));

    // The stylesheet reaches the new elements (no inline style: the CSP would refuse it).
    let styled = alice
        .js(
            "const body = document.querySelector('#messages .body'); \
             return [getComputedStyle(body.querySelector('blockquote')).borderLeftStyle, \
                     getComputedStyle(body.querySelector('pre')).whiteSpace, \
                     getComputedStyle(body.querySelector('code')).fontFamily.includes('monospace')]",
            vec![],
        )
        .await;
    assert_eq!(styled, json!(["solid", "pre-wrap", true]));
    alice.close().await;
}

#[tokio::test]
#[ignore = "needs CHROME"]
async fn hostile_text_stays_text_and_the_page_keeps_working() {
    let driver = Driver::start().await;
    let app = TestApp::spawn().await;
    let alice = driver.browser().await;
    alice.register(&app, "alice").await;
    alice.enter_room("Hostile").await;
    alice
        .js(
            "window.alert = (what) => { window.alerted = what === undefined ? true : what; }",
            vec![],
        )
        .await;

    let sneaky_link = "https://example.com/\"><img/src=x/onerror=window.alerted=6>";
    let hostile = [
        "[x](javascript:alert(1)) javascript:alert(1) JAVASCRIPT:alert(2) \
         jAvAsCrIpT:window.alerted=1 data:text/html,<script>window.alerted=2</script> \
         www.example.com [y](https://example.com/ok)"
            .to_owned(),
        "<img src=x onerror=\"window.alerted=3\"> <script>window.alerted=4</script> \
         <a href=\"javascript:window.alerted=5\">click</a> <b style=\"color:red\">red</b> \
         <style>* { display: none }</style>"
            .to_owned(),
        format!("**_*x*_** ***y*** `<i onclick=alert(7)>code</i>` {sneaky_link}"),
        "```\n<script>window.alerted=8</script>\nhttps://example.com/in-code\n```\n\
         > <iframe src=\"javascript:alert(9)\"></iframe> *<u>*"
            .to_owned(),
        "`".repeat(4000),
        "*".repeat(4000),
        "`*".repeat(2000),
        "**a *b".repeat(600),
    ];
    let names: Vec<String> = (1..=hostile.len()).map(|i| format!("mallory{i}")).collect();
    // One message each: the rate limit is per person.
    let people = join_all(names.iter().map(|name| app.user(name))).await;
    for (person, body) in people.iter().zip(&hostile) {
        let ack = person.connect("hostile").await.say(body, "h").await;
        assert_eq!(ack["type"], "ack", "{ack}");
    }
    wait_stored_messages(&alice, hostile.len()).await;

    // Only the formatting's own elements, no attribute but theirs, and links only to http(s).
    let found = alice
        .js(
            "const allowed = { strong: [], em: [], code: [], pre: [], blockquote: [], \
                               a: ['href', 'rel', 'target'] }; \
             const problems = []; \
             for (const body of document.querySelectorAll('#messages .body')) \
               if (body.attributes.length !== 2 || body.dir !== 'auto') \
                 problems.push('body ' + body.outerHTML.slice(0, 40)); \
             for (const node of document.querySelectorAll('#messages .body *')) { \
               const attributes = allowed[node.localName]; \
               if (!attributes) { problems.push('element ' + node.localName); continue; } \
               for (const a of node.attributes) \
                 if (!attributes.includes(a.name)) problems.push(node.localName + ' ' + a.name); \
               if (node.localName === 'a' && (!['http:', 'https:'].includes(new URL(node.href).protocol) \
                   || node.rel !== 'noopener noreferrer')) \
                 problems.push('link ' + node.href); \
             } \
             if (document.querySelector('#messages [style]')) problems.push('a style attribute'); \
             if (window.alerted !== undefined) problems.push('alerted ' + window.alerted); \
             return problems;",
            vec![],
        )
        .await;
    assert_eq!(found, json!([]));

    // What each message shows: its text, how many of each element, and its links.
    let shown = alice
        .js(
            "return [...document.querySelectorAll('#messages .body')].map(body => { \
               const elements = {}; \
               for (const node of body.querySelectorAll('*')) \
                 elements[node.localName] = (elements[node.localName] || 0) + 1; \
               return [body.textContent, elements, \
                       [...body.querySelectorAll('a')].map(a => [a.href, a.textContent])]; \
             })",
            vec![],
        )
        .await;
    let as_written = |body: &str| json!([body, {}, []]);
    let expected = json!([
        // No scheme but http(s) makes a link, and [x](…) is no link syntax.
        [hostile[0], { "a": 1 }, [["https://example.com/ok", "https://example.com/ok"]]],
        as_written(&hostile[1]),
        [
            format!("_x_ ***y*** <i onclick=alert(7)>code</i> {sneaky_link}"),
            { "strong": 1, "em": 1, "code": 1, "a": 1 },
            // The browser escapes what may not stand in a URL; the text is as written.
            [[
                "https://example.com/%22%3E%3Cimg/src=x/onerror=window.alerted=6%3E",
                sneaky_link
            ]]
        ],
        [
            "<script>window.alerted=8</script>\nhttps://example.com/in-code\
             <iframe src=\"javascript:alert(9)\"></iframe> <u>",
            { "pre": 1, "code": 1, "blockquote": 1, "em": 1 },
            []
        ],
        as_written(&hostile[4]),
        as_written(&hostile[5]),
        // Each backtick pairs with the next, around one asterisk; the asterisks between
        // pairs open and close emphasis in turn.
        ["*".repeat(1000), { "code": 1000, "em": 500 }, []],
        // Each "**" pairs with the next; each lone "*" has nothing to pair with.
        ["a *b".repeat(600), { "strong": 300 }, []],
    ]);
    assert_eq!(shown, expected);

    // The page still works: a later message arrives and shows.
    alice.say("still here").await;
    alice.close().await;
}

/// A screen reader hears a new message as the page shows it, without its markup.
#[tokio::test]
#[ignore = "needs CHROME"]
async fn a_formatted_message_is_announced_without_its_markup() {
    let driver = Driver::start().await;
    let app = TestApp::spawn().await;
    let bob = app.user("bob").await;
    let alice = driver.browser().await;
    alice.register(&app, "alice").await;
    alice.enter_room("Announcements").await;
    let mut bob_socket = bob.connect("announcements").await;
    let ack = bob_socket.say("**Look** at `this` > now", "b-1").await;
    assert_eq!(ack["type"], "ack", "{ack}");
    let heard = alice
        .wait_for(
            "the announcement",
            "const p = document.querySelector('#announcer p:last-child'); \
             return p && p.textContent",
            vec![],
        )
        .await;
    assert_eq!(heard, json!("bob: Look at this > now"));
    alice.close().await;
}
