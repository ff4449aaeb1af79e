use natter_test_support::{csrf_of, TestApp, TestUser, PASSWORD};
use serde_json::json;

fn location(response: &reqwest::Response) -> String {
    response.headers()["location"].to_str().unwrap().to_owned()
}

async fn signed_out_visitors_are_sent_to_login_with_next() {
    let app = TestApp::spawn().await;
    let browser = app.browser();
    let response = browser.get(app.url("/")).send().await.unwrap();
    assert!(response.status().is_redirection());
    assert_eq!(location(&response), "/login?next=/");
    let response = browser.get(app.url("/rooms/general")).send().await.unwrap();
    assert_eq!(location(&response), "/login?next=/rooms/general");
}

async fn registering_through_the_form_signs_in_and_shows_the_room_list() {
    let app = TestApp::spawn().await;
    let browser = app.browser();
    let form = browser
        .get(app.url("/register"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let csrf = csrf_of(&form);
    let response = browser
        .post(app.url("/register"))
        .form(&[
            ("username", "alice"),
            ("password", PASSWORD),
            ("password_confirm", PASSWORD),
            ("csrf", &csrf),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 303);
    assert_eq!(location(&response), "/");
    let home = browser.get(app.url("/")).send().await.unwrap();
    assert_eq!(home.status(), 200);
    let html = home.text().await.unwrap();
    assert!(html.contains("alice"));

    // Create a room through the form; its page names it.
    let csrf = csrf_of(&html);
    let created = browser
        .post(app.url("/rooms"))
        .form(&[("name", "Book Club"), ("csrf", &csrf)])
        .send()
        .await
        .unwrap();
    assert_eq!(location(&created), "/rooms/book-club");
    let page = browser
        .get(app.url("/rooms/book-club"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("data-slug=\"book-club\""));
    assert!(page.contains("/static/js/room-page.js"));
}

async fn form_errors_are_shown_on_the_form() {
    let app = TestApp::spawn().await;
    let browser = app.browser();
    let csrf = csrf_of(
        &browser
            .get(app.url("/register"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
    );
    let response = browser
        .post(app.url("/register"))
        .form(&[
            ("username", "alice"),
            ("password", PASSWORD),
            ("password_confirm", "different!"),
            ("csrf", &csrf),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    assert!(response.text().await.unwrap().contains("passwords differ"));
}

async fn forms_without_a_valid_csrf_token_or_from_another_origin_are_refused() {
    let app = TestApp::spawn().await;
    let browser = app.browser();
    let csrf = csrf_of(
        &browser
            .get(app.url("/login"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
    );
    let no_token = browser
        .post(app.url("/register"))
        .form(&[
            ("username", "alice"),
            ("password", PASSWORD),
            ("password_confirm", PASSWORD),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(no_token.status(), 403);
    // A token from one browser is worthless in another.
    let other_browser = app.browser();
    other_browser.get(app.url("/login")).send().await.unwrap();
    let stolen = other_browser
        .post(app.url("/register"))
        .form(&[
            ("username", "alice"),
            ("password", PASSWORD),
            ("password_confirm", PASSWORD),
            ("csrf", &csrf),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(stolen.status(), 403);
    let foreign = browser
        .post(app.url("/register"))
        .header("origin", "https://evil.example")
        .form(&[
            ("username", "alice"),
            ("password", PASSWORD),
            ("password_confirm", PASSWORD),
            ("csrf", &csrf),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(foreign.status(), 403);
}

async fn login_follows_next_only_within_the_site() {
    let app = TestApp::spawn().await;
    app.user("alice").await;
    for (next, expected) in [
        ("/rooms/general", "/rooms/general"),
        ("//evil.example/x", "/"),
        ("https://evil.example", "/"),
    ] {
        let browser = app.browser();
        let csrf = csrf_of(
            &browser
                .get(app.url("/login"))
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap(),
        );
        let response = browser
            .post(app.url("/login"))
            .form(&[
                ("username", "alice"),
                ("password", PASSWORD),
                ("next", next),
                ("csrf", &csrf),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 303, "{next}");
        assert_eq!(location(&response), expected);
    }
}

async fn logout_through_the_form_ends_the_session() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice").await;
    let html = alice.get_page("/").await;
    let response = alice
        .client
        .post(app.url("/logout"))
        .form(&[("csrf", csrf_of(&html))])
        .send()
        .await
        .unwrap();
    assert_eq!(location(&response), "/login");
    let me = app
        .browser()
        .get(app.url("/api/me"))
        .header("cookie", &alice.cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), 401);
}

async fn pages_carry_safety_headers_and_escape_what_users_wrote() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice").await;
    alice.create_room("<script>alert(1)</script>").await;
    let response = alice.client.get(app.url("/")).send().await.unwrap();
    let headers = response.headers().clone();
    let csp = headers["content-security-policy"].to_str().unwrap();
    assert!(
        !csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"),
        "{csp}"
    );
    for directive in [
        "frame-ancestors 'none'",
        "object-src 'none'",
        "base-uri 'none'",
    ] {
        assert!(csp.contains(directive), "{csp}");
    }
    assert_eq!(headers["x-content-type-options"], "nosniff");
    assert_eq!(headers["referrer-policy"], "same-origin");
    assert!(headers.get("access-control-allow-origin").is_none());
    let html = response.text().await.unwrap();
    assert!(!html.contains("<script>alert(1)</script>"));
    assert!(
        html.contains("&lt;script&gt;alert(1)&lt;/script&gt;") || html.contains("&#60;script&#62;")
    );
    assert!(!html.contains("<script>") || !html.contains("alert(1)</script>"));
}

async fn unknown_pages_and_rooms_are_404_pages() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice").await;
    let room = alice
        .client
        .get(app.url("/rooms/nowhere"))
        .send()
        .await
        .unwrap();
    assert_eq!(room.status(), 404);
    assert!(room.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    let api = alice
        .client
        .get(app.url("/api/nothing"))
        .send()
        .await
        .unwrap();
    assert_eq!(api.status(), 404);
    let body: serde_json::Value = api.json().await.unwrap();
    assert_eq!(body["error"]["code"], "not_found");
}

async fn the_script_and_stylesheet_are_served_by_natter() {
    let app = TestApp::spawn().await;
    let js = reqwest::get(app.url("/static/js/connection.js"))
        .await
        .unwrap();
    assert_eq!(js.status(), 200);
    assert_eq!(
        js.headers()["content-type"],
        "text/javascript; charset=utf-8"
    );
    assert!(js.text().await.unwrap().contains("WebSocket"));
    let css = reqwest::get(app.url("/static/style.css")).await.unwrap();
    assert!(css.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/css"));
    for missing in ["/static/js/nope.js", "/static/app.js", "/static/js/"] {
        let response = reqwest::get(app.url(missing)).await.unwrap();
        assert_eq!(response.status(), 404, "{missing}");
    }
}

/// The module specifiers in a module's text: `from "…"`, `import "…"`, `import("…")`.
fn imports(module: &str) -> Vec<String> {
    let mut found = Vec::new();
    for opening in ["from \"", "import \"", "import(\""] {
        for rest in module.split(opening).skip(1) {
            found.push(rest.split('"').next().unwrap().to_owned());
        }
    }
    found
}

/// Every file in `static/js/` is a module some page loads, through imports or as its
/// entry, at its current versioned URL; and no import names a URL that is not served.
async fn the_pages_load_every_client_module_and_every_import_is_served() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice").await;
    let slug = alice.create_room("General").await;
    let mut to_fetch = Vec::new();
    for page in ["/".to_owned(), format!("/rooms/{slug}")] {
        let html = alice.get_page(&page).await;
        let scripts: Vec<_> = static_urls(&html)
            .into_iter()
            .filter(|url| url.starts_with("/static/js/"))
            .collect();
        assert_eq!(scripts.len(), 1, "{page}: one entry module");
        to_fetch.extend(scripts);
    }
    let mut served = std::collections::BTreeSet::new();
    while let Some(url) = to_fetch.pop() {
        let (path, _) = url.split_once("?v=").expect("a versioned URL");
        let name = path
            .strip_prefix("/static/js/")
            .expect("a module under /static/js/");
        if !served.insert(name.to_owned()) {
            continue;
        }
        let response = reqwest::get(app.url(&url)).await.unwrap();
        assert_eq!(response.status(), 200, "{url}");
        assert_eq!(
            response.headers()["content-type"],
            "text/javascript; charset=utf-8",
            "{url}"
        );
        // Only the current version is cached for long: the URL is the one it is served at.
        assert_eq!(
            response.headers()["cache-control"],
            "public, max-age=31536000, immutable",
            "{url}"
        );
        to_fetch.extend(imports(&response.text().await.unwrap()));
    }
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("static/js");
    let files: std::collections::BTreeSet<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .filter(|name| name.ends_with(".js"))
        .collect();
    assert_eq!(served, files, "every module file is loaded by a page");
}

/// The `/static/…` URLs a page links to.
fn static_urls(html: &str) -> Vec<String> {
    html.split("\"/static/")
        .skip(1)
        .map(|rest| format!("/static/{}", rest.split('"').next().unwrap()))
        .collect()
}

async fn static_files_have_content_versioned_urls_and_cache_headers() {
    use sha2::{Digest, Sha256};

    let app = TestApp::spawn().await;
    let alice = app.user("alice").await;
    let slug = alice.create_room("General").await;
    let html = alice.get_page(&format!("/rooms/{slug}")).await;
    let urls = static_urls(&html);
    assert_eq!(urls.len(), 2, "{urls:?}");
    for url in urls {
        let (path, version) = url.split_once("?v=").expect("a versioned URL");
        let response = reqwest::get(app.url(&url)).await.unwrap();
        assert_eq!(response.status(), 200, "{url}");
        let headers = response.headers().clone();
        assert_eq!(
            headers["cache-control"], "public, max-age=31536000, immutable",
            "{url}"
        );
        assert_eq!(headers["x-content-type-options"], "nosniff");
        let body = response.bytes().await.unwrap();
        let digest: String = Sha256::digest(&body)[..5]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(version, digest, "{url}: the version is the content's hash");

        // Revalidation by ETag, and short caching for any other URL of the file.
        let etag = headers["etag"].to_str().unwrap();
        let revalidated = app
            .browser()
            .get(app.url(&url))
            .header("if-none-match", etag)
            .send()
            .await
            .unwrap();
        assert_eq!(revalidated.status(), 304);
        for other in [path.to_owned(), format!("{path}?v=0000000000")] {
            let response = reqwest::get(app.url(&other)).await.unwrap();
            assert_eq!(response.status(), 200);
            let cache = response.headers()["cache-control"].to_str().unwrap();
            assert!(!cache.contains("immutable"), "{other}: {cache}");
            assert_eq!(response.bytes().await.unwrap(), body);
        }
    }
}

async fn every_page_carries_the_policy_and_has_no_inline_script_or_style() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice").await;
    app.user("bob").await;
    let slug = alice.create_room("General").await;
    let private = create_private(&alice, "Secret").await;
    let dm = open_dm(&alice, "bob").await;
    let signed_out = app.browser();
    let pages = [
        (&signed_out, "/login".to_owned()),
        (&signed_out, "/register".to_owned()),
        (&alice.client, "/".to_owned()),
        (&alice.client, format!("/rooms/{slug}")),
        (&alice.client, format!("/rooms/{private}")),
        (&alice.client, format!("/rooms/{dm}")),
        (&alice.client, "/rooms/nowhere".to_owned()),
    ];
    for (client, path) in pages {
        let response = client.get(app.url(&path)).send().await.unwrap();
        let headers = response.headers().clone();
        let csp = headers["content-security-policy"].to_str().unwrap();
        assert!(!csp.contains("unsafe-inline"), "{path}: {csp}");
        assert!(csp.contains("frame-ancestors 'none'"), "{path}: {csp}");
        let scripts = csp
            .split(';')
            .map(str::trim)
            .find(|directive| directive.starts_with("script-src"));
        assert_eq!(scripts, Some("script-src 'self'"), "{path}: {csp}");
        assert_eq!(headers["x-content-type-options"], "nosniff", "{path}");
        assert_eq!(headers["referrer-policy"], "same-origin", "{path}");
        let html = response.text().await.unwrap();
        // The policy would block these; they must not be needed.
        for script in html.split("<script").skip(1) {
            let tag = script.split('>').next().unwrap();
            assert!(
                tag.contains(" src=\"/static/"),
                "{path}: inline <script{tag}>"
            );
            // The client is ES modules (deferred by themselves).
            assert!(tag.contains(" type=\"module\""), "{path}: <script{tag}>");
        }
        assert!(!html.contains("<style"), "{path}");
        assert!(!html.contains(" style="), "{path}");
        assert!(!html.contains(" onclick="), "{path}");
    }
}

async fn create_private(user: &TestUser, name: &str) -> String {
    let (status, body) = user
        .post_json("/api/rooms", &json!({"name": name, "private": true}))
        .await;
    assert_eq!(status, 201, "{body}");
    body["room"]["slug"].as_str().unwrap().to_owned()
}

async fn open_dm(user: &TestUser, with: &str) -> String {
    let (status, body) = user
        .post_json("/api/dms", &json!({ "username": with }))
        .await;
    assert!(status == 200 || status == 201, "{status} {body}");
    body["room"]["slug"].as_str().unwrap().to_owned()
}

/// A sidebar link: `(slug, shown name, current)`.
type Link = (String, String, bool);

/// The sidebar's links in page order, from the `<nav aria-label="Your rooms">` of a page:
/// its rooms, then its DMs.
fn sidebar_links(html: &str) -> (Vec<Link>, Vec<Link>) {
    let start = html
        .find("<nav class=\"side-nav\" aria-label=\"Your rooms\">")
        .expect("the page has the sidebar");
    let nav = &html[start..start + html[start..].find("</nav>").unwrap()];
    let list = |id: &str| -> Vec<Link> {
        let from = nav.find(&format!("<ul id=\"{id}\"")).unwrap();
        let ul = &nav[from..from + nav[from..].find("</ul>").unwrap()];
        ul.split("<a href=\"/rooms/")
            .skip(1)
            .map(|a| {
                let slug = a.split('"').next().unwrap().to_owned();
                let tag = a.split('>').next().unwrap();
                let name = a
                    .split("<bdi>")
                    .nth(1)
                    .unwrap()
                    .split("</bdi>")
                    .next()
                    .unwrap();
                (slug, name.to_owned(), tag.contains("aria-current=\"page\""))
            })
            .collect()
    };
    (list("side-rooms"), list("side-dms"))
}

fn link(slug: &str, name: &str, current: bool) -> Link {
    (slug.to_owned(), name.to_owned(), current)
}

async fn the_sidebar_lists_the_users_rooms_then_dms_and_marks_the_current_one() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let carol = app.user("carol").await;
    let general = alice.create_room("General").await;
    let secret = create_private(&alice, "Secret Plans").await;
    let dm = open_dm(&alice, "bob").await;
    // Carol's room, which Alice has not joined, is on the browse list, not in her sidebar.
    let elsewhere = carol.create_room("Elsewhere").await;

    let page = alice.get_page(&format!("/rooms/{secret}")).await;
    let (rooms, dms) = sidebar_links(&page);
    assert_eq!(
        rooms,
        [
            link(&general, "General", false),
            link(&secret, "Secret Plans", true)
        ]
    );
    assert_eq!(
        dms,
        [link(&dm, "bob", false)],
        "a DM shows the other person"
    );
    assert!(
        page.contains("Secret Plans <span class=\"tag\">private</span></a>")
            || page.contains("<bdi>Secret Plans</bdi> <span class=\"tag\">private</span>")
    );

    let page = alice.get_page(&format!("/rooms/{dm}")).await;
    let (rooms, dms) = sidebar_links(&page);
    assert!(rooms.iter().all(|(_, _, current)| !current));
    assert_eq!(dms, [link(&dm, "bob", true)]);

    // The browse page: its own link is the current one; the table shows public rooms only.
    let page = alice.get_page("/").await;
    assert!(
        page.contains("<a id=\"browse-link\" href=\"/\" aria-current=\"page\">Browse rooms</a>")
    );
    let (rooms, dms) = sidebar_links(&page);
    assert_eq!(rooms.len(), 2);
    assert_eq!(dms.len(), 1);
    assert!(rooms.iter().chain(&dms).all(|(_, _, current)| !current));
    assert!(page.contains(&format!("<tr data-slug=\"{general}\">")));
    assert!(page.contains(&format!("<tr data-slug=\"{elsewhere}\">")));
    assert!(!page.contains(&format!("<tr data-slug=\"{secret}\">")));
    assert!(!page.contains(&format!("<tr data-slug=\"{dm}\">")));
    assert!(!sidebar_links(&page)
        .0
        .iter()
        .any(|(slug, _, _)| *slug == elsewhere));

    // Bob sees the same DM under Alice's name.
    let (_, dms) = sidebar_links(&bob.get_page("/").await);
    assert_eq!(dms, [link(&dm, "alice", false)]);
}

async fn a_private_room_is_in_no_page_of_someone_not_in_it() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let carol = app.user("carol").await;
    let general = alice.create_room("General").await;
    let secret = create_private(&alice, "Hush Hush").await;
    let dm = open_dm(&alice, "bob").await;
    carol.connect(&general).await;

    for path in ["/".to_owned(), format!("/rooms/{general}")] {
        let page = carol.get_page(&path).await;
        for hidden in [secret.as_str(), "Hush Hush", dm.as_str(), "alice, bob"] {
            assert!(!page.contains(hidden), "{path} shows {hidden}");
        }
    }
    for path in [format!("/rooms/{secret}"), format!("/rooms/{dm}")] {
        let response = carol.client.get(app.url(&path)).send().await.unwrap();
        assert_eq!(response.status(), 404, "{path}");
        let page = response.text().await.unwrap();
        assert!(!page.contains("Hush Hush") && !page.contains("alice, bob"));
    }

    // Once added, Bob has it in his sidebar.
    let (status, _) = alice
        .post_json(
            &format!("/api/rooms/{secret}/members"),
            &json!({"username": "bob"}),
        )
        .await;
    assert_eq!(status, 204);
    let (rooms, _) = sidebar_links(&bob.get_page("/").await);
    assert!(
        rooms.contains(&link(&secret, "Hush Hush", false)),
        "{rooms:?}"
    );
}

/// The members panel's attributes and controls on a room page.
struct Controls {
    moderates: bool,
    owns: bool,
    add: bool,
    leave: bool,
}

async fn controls(user: &TestUser, slug: &str) -> Controls {
    let page = user.get_page(&format!("/rooms/{slug}")).await;
    let main = page
        .split("<main ")
        .nth(1)
        .unwrap()
        .split('>')
        .next()
        .unwrap();
    Controls {
        moderates: main.contains("data-moderates=\"true\""),
        owns: main.contains("data-owns=\"true\""),
        add: page.contains("id=\"add-member\""),
        leave: page.contains("id=\"leave-room\""),
    }
}

async fn moderation_controls_are_rendered_for_owners_and_moderators_only() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let carol = app.user("carol").await;
    let secret = create_private(&alice, "Staff").await;
    for name in ["bob", "carol"] {
        let (status, _) = alice
            .post_json(
                &format!("/api/rooms/{secret}/members"),
                &json!({ "username": name }),
            )
            .await;
        assert_eq!(status, 204);
    }
    let (status, _) = alice
        .call(
            reqwest::Method::PUT,
            &format!("/api/rooms/{secret}/members/bob"),
            Some(&json!({"role": "moderator"})),
        )
        .await;
    assert_eq!(status, 204);

    let owner = controls(&alice, &secret).await;
    assert!(owner.moderates && owner.owns && owner.add && owner.leave);
    let moderator = controls(&bob, &secret).await;
    assert!(moderator.moderates && !moderator.owns && moderator.add);
    let member = controls(&carol, &secret).await;
    assert!(!member.moderates && !member.owns && !member.add && member.leave);

    // A public room: its creator moderates; a visitor gets nothing.
    let general = alice.create_room("General").await;
    assert!(controls(&alice, &general).await.owns);
    let visitor = controls(&carol, &general).await;
    assert!(!visitor.moderates && !visitor.owns && !visitor.add);

    // A DM has no member management at all, and cannot be left.
    let dm = open_dm(&alice, "carol").await;
    let in_dm = controls(&alice, &dm).await;
    assert!(!in_dm.moderates && !in_dm.owns && !in_dm.add && !in_dm.leave);
}

async fn the_new_message_form_opens_one_dm_from_either_side() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;

    let response = alice.post_form("/dms", &[("username", "bob")]).await;
    assert_eq!(response.status(), 303);
    let target = location(&response);
    assert!(target.starts_with("/rooms/dm--"), "{target}");
    let response = bob.post_form("/dms", &[("username", " alice ")]).await;
    assert_eq!(response.status(), 303);
    assert_eq!(location(&response), target, "the same room from both sides");
    let page = bob.get_page(&target).await;
    assert!(page.contains("<span class=\"visually-hidden\">Direct messages with </span>alice</h1>"));

    // Refusals come back on the form, with what was typed, and the right status.
    for (username, status) in [("nobody", 404), ("alice", 400)] {
        let response = alice.post_form("/dms", &[("username", username)]).await;
        assert_eq!(response.status(), status, "{username}");
        let csp = response.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(!csp.contains("unsafe-inline"), "{csp}");
        let page = response.text().await.unwrap();
        assert!(
            page.contains("<details id=\"new-message\" class=\"side-form\" open>"),
            "{username}"
        );
        assert!(page.contains(&format!(
            "id=\"new-message-name\" name=\"username\" value=\"{username}\""
        )));
        let error = page.split("id=\"new-message-error\"").nth(1).unwrap();
        assert!(
            error.starts_with(" class=\"error field-error\" role=\"alert\">"),
            "{error}"
        );
    }

    // A form without the page's token is refused.
    let response = alice
        .client
        .post(app.url("/dms"))
        .form(&[("username", "bob"), ("csrf", "forged")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403);
    let response = alice
        .client
        .post(app.url("/dms"))
        .form(&[("username", "bob")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403);
    // Signed out: to the login page.
    let response = app
        .browser()
        .post(app.url("/dms"))
        .form(&[("username", "bob"), ("csrf", "x")])
        .send()
        .await
        .unwrap();
    assert_eq!(location(&response), "/login?next=/");
}

async fn the_new_message_form_says_when_too_many_rooms_were_made() {
    let app = TestApp::spawn_with(&[("ROOM_CREATE_LIMIT", "1")]).await;
    let alice = app.user("alice").await;
    app.user("bob").await;
    app.user("carol").await;
    assert_eq!(
        alice
            .post_form("/dms", &[("username", "bob")])
            .await
            .status(),
        303
    );
    let response = alice.post_form("/dms", &[("username", "carol")]).await;
    assert_eq!(response.status(), 429);
    assert!(response
        .text()
        .await
        .unwrap()
        .contains("id=\"new-message-error\" class=\"error field-error\" role=\"alert\">"));
    // Reopening a DM is never limited.
    assert_eq!(
        alice
            .post_form("/dms", &[("username", "bob")])
            .await
            .status(),
        303
    );
}

async fn the_new_room_form_makes_a_private_room_and_shows_its_errors_on_itself() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice").await;
    let carol = app.user("carol").await;
    let response = alice
        .post_form(
            "/rooms",
            &[
                ("name", "Book Club"),
                ("private", "on"),
                ("form", "new-room"),
            ],
        )
        .await;
    assert_eq!(response.status(), 303);
    let target = location(&response);
    assert!(target.starts_with("/rooms/p--"), "{target}");
    let page = alice.get_page(&target).await;
    assert!(page.contains("Book Club <span class=\"tag\">private</span></h1>"));
    let slug = target.strip_prefix("/rooms/").unwrap();
    let (rooms, _) = sidebar_links(&page);
    assert_eq!(rooms, [link(slug, "Book Club", true)]);
    assert!(!carol.get_page("/").await.contains(slug));

    // Refused: the sidebar's form is open again, with the name, the box and the error.
    let response = alice
        .post_form(
            "/rooms",
            &[("name", "   "), ("private", "on"), ("form", "new-room")],
        )
        .await;
    assert_eq!(response.status(), 400);
    let page = response.text().await.unwrap();
    assert!(page.contains("<details id=\"new-room\" class=\"side-form\" open>"));
    assert!(page.contains("name=\"private\" value=\"on\" checked>"));
    let error = page.split("id=\"new-room-error\"").nth(1).unwrap();
    assert!(
        error.starts_with(" class=\"error field-error\" role=\"alert\">"),
        "{error}"
    );
    // The create-or-join form's own errors stay on it.
    let response = alice.post_form("/rooms", &[("name", "   ")]).await;
    let page = response.text().await.unwrap();
    assert!(page.contains("<details id=\"new-room\" class=\"side-form\">"));
    let error = page.split("id=\"room-name-error\"").nth(1).unwrap();
    assert!(
        error.starts_with(" class=\"error field-error\" role=\"alert\">"),
        "{error}"
    );
}

api_tests!(
    signed_out_visitors_are_sent_to_login_with_next,
    registering_through_the_form_signs_in_and_shows_the_room_list,
    form_errors_are_shown_on_the_form,
    forms_without_a_valid_csrf_token_or_from_another_origin_are_refused,
    login_follows_next_only_within_the_site,
    logout_through_the_form_ends_the_session,
    pages_carry_safety_headers_and_escape_what_users_wrote,
    unknown_pages_and_rooms_are_404_pages,
    the_script_and_stylesheet_are_served_by_natter,
    the_pages_load_every_client_module_and_every_import_is_served,
    static_files_have_content_versioned_urls_and_cache_headers,
    every_page_carries_the_policy_and_has_no_inline_script_or_style,
    the_sidebar_lists_the_users_rooms_then_dms_and_marks_the_current_one,
    a_private_room_is_in_no_page_of_someone_not_in_it,
    moderation_controls_are_rendered_for_owners_and_moderators_only,
    the_new_message_form_opens_one_dm_from_either_side,
    the_new_message_form_says_when_too_many_rooms_were_made,
    the_new_room_form_makes_a_private_room_and_shows_its_errors_on_itself,
);
