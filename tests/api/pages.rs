use natter_test_support::{csrf_of, TestApp, PASSWORD};

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
    let slug = alice.create_room("General").await;
    let signed_out = app.browser();
    let pages = [
        (&signed_out, "/login".to_owned()),
        (&signed_out, "/register".to_owned()),
        (&alice.client, "/".to_owned()),
        (&alice.client, format!("/rooms/{slug}")),
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
);
