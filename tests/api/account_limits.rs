//! CONTRACT §7 (`TRUSTED_PROXIES`) and §7a "Accounts" and "`next`": what strangers, a
//! spoofed header or a crafted `next` cannot do to a person's login.

use serde_json::{json, Value};

use natter_test_support::{csrf_for, csrf_of, TestApp, PASSWORD};

fn hidden_next_of(html: &str) -> String {
    let marker = "name=\"next\" value=\"";
    let start = html.find(marker).expect("the form has a next field") + marker.len();
    let escaped = html[start..].split('"').next().unwrap();
    escaped.replace("&#38;", "&").replace("&amp;", "&")
}

fn set_cookie<'a>(response: &'a reqwest::Response, name: &str) -> Option<&'a str> {
    response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")))
}

async fn api_login(
    app: &TestApp,
    browser: &reqwest::Client,
    username: &str,
    password: &str,
    forwarded_for: Option<&str>,
) -> reqwest::Response {
    let mut request = browser
        .post(app.url("/api/login"))
        .json(&json!({"username": username, "password": password}));
    if let Some(address) = forwarded_for {
        request = request.header("x-forwarded-for", address);
    }
    request.send().await.unwrap()
}

async fn assert_too_many_attempts(response: reqwest::Response) {
    assert_eq!(response.status(), 429);
    let wait: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(wait >= 1);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "too_many_attempts");
}

async fn login_follows_next_only_to_a_printable_path_on_this_site_and_never_fails_on_it() {
    let app = TestApp::spawn().await;
    app.user("alice").await;
    for (next, expected) in [
        (
            "/rooms/general?since=5&x=%20",
            "/rooms/general?since=5&x=%20",
        ),
        // A browser strips TAB and LF from a URL: `/\t/evil` would be `//evil`.
        ("/\t/evil.example", "/"),
        ("/\n/evil.example", "/"),
        // Not allowed in a header at all: these gave 500 after the password was checked.
        ("/\x0b/evil.example", "/"),
        ("/\x0c", "/"),
        ("//evil.example", "/"),
        ("/\\evil.example", "/"),
        ("/école", "/"),
    ] {
        // The login page echoes only a safe `next` in its form.
        let browser = app.browser();
        let page = browser
            .get(app.url("/login"))
            .query(&[("next", next)])
            .send()
            .await
            .unwrap();
        assert_eq!(page.status(), 200, "{next:?}");
        let html = page.text().await.unwrap();
        assert_eq!(hidden_next_of(&html), expected, "{next:?}");

        let response = browser
            .post(app.url("/login"))
            .form(&[
                ("username", "alice"),
                ("password", PASSWORD),
                ("next", next),
                ("csrf", &csrf_of(&html)),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 303, "{next:?}");
        assert_eq!(response.headers()["location"], expected, "{next:?}");
    }
}

async fn strangers_failing_on_purpose_cannot_lock_the_owner_out_of_her_browser() {
    let app = TestApp::spawn().await;
    app.user("alice").await;
    // Alice signs in from her browser, which keeps a device cookie.
    let alice = app.browser();
    let response = api_login(&app, &alice, "alice", PASSWORD, None).await;
    assert_eq!(response.status(), 200);
    let device = set_cookie(&response, "natter_device").expect("a device cookie");
    assert!(
        device.contains("HttpOnly") && device.contains("SameSite=Lax"),
        "{device}"
    );
    assert!(device.contains("Max-Age=") && !device.contains("Max-Age=0;"));

    let stranger = app.browser();
    for _ in 0..5 {
        let response = api_login(&app, &stranger, "alice", "not the password", None).await;
        assert_eq!(response.status(), 401);
    }
    assert_too_many_attempts(api_login(&app, &stranger, "alice", "not the password", None).await)
        .await;
    // Without a device cookie, even the right password waits: the name is locked for strangers.
    assert_too_many_attempts(api_login(&app, &app.browser(), "alice", PASSWORD, None).await).await;

    // From her own browser, Alice is not locked out, by the JSON API or the form.
    let response = api_login(&app, &alice, "ALICE", PASSWORD, None).await;
    assert_eq!(response.status(), 200);
    let csrf = csrf_for(&alice, &app.url("/login")).await;
    let response = alice
        .post(app.url("/login"))
        .form(&[
            ("username", "alice"),
            ("password", PASSWORD),
            ("csrf", &csrf),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 303);

    // A device cookie does not make guessing free: its own failures throttle it.
    for _ in 0..5 {
        let response = api_login(&app, &alice, "alice", "not the password", None).await;
        assert_eq!(response.status(), 401);
    }
    assert_too_many_attempts(api_login(&app, &alice, "alice", PASSWORD, None).await).await;
}

async fn a_device_cookie_counts_only_for_the_user_it_names_and_only_when_signed() {
    let app = TestApp::spawn().await;
    app.user("alice").await;
    app.user("bob").await;
    // Bob's device cookie, or a forged one, does not shield logins as alice.
    let bob = app.browser();
    let response = api_login(&app, &bob, "bob", PASSWORD, None).await;
    let device = set_cookie(&response, "natter_device")
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let forged = device.replacen("natter_device=bob", "natter_device=alice", 1);
    for (cookie, failures) in [(device.as_str(), 3), (forged.as_str(), 2)] {
        let stranger = app.browser();
        for _ in 0..failures {
            let response = stranger
                .post(app.url("/api/login"))
                .header("cookie", cookie)
                .json(&json!({"username": "alice", "password": "not the password"}))
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 401, "{cookie}");
        }
    }
    // The five failures were counted on alice's name, not on a device.
    let alice_elsewhere = api_login(&app, &app.browser(), "alice", PASSWORD, None).await;
    assert_too_many_attempts(alice_elsewhere).await;
}

async fn forwarded_headers_from_an_untrusted_peer_are_ignored() {
    // 127.0.0.1 is not a trusted proxy by default.
    let app = TestApp::spawn().await;
    let client = app.browser();
    // Invalid usernames cost no hashing and still count against the address.
    for i in 0..20 {
        let address = format!("203.0.113.{i}");
        let response = api_login(&app, &client, "x", "not the password", Some(&address)).await;
        assert_eq!(response.status(), 401);
    }
    let response = api_login(&app, &client, "x", "not the password", Some("198.51.100.1")).await;
    assert_too_many_attempts(response).await;

    let response = app
        .browser()
        .post(app.url("/api/register"))
        .header("x-forwarded-proto", "https")
        .json(&json!({"username": "alice", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    for name in ["natter_session", "natter_device"] {
        let cookie = set_cookie(&response, name).unwrap();
        assert!(!cookie.contains("Secure"), "{cookie}");
    }
}

async fn behind_a_trusted_proxy_limits_count_the_forwarded_client() {
    let app = TestApp::spawn_with(&[("TRUSTED_PROXIES", "127.0.0.1")]).await;
    let client = app.browser();
    for _ in 0..20 {
        // The client claims an address of its own; the proxy appended the one it saw.
        let response = api_login(
            &app,
            &client,
            "x",
            "not the password",
            Some("198.51.100.1, 203.0.113.5"),
        )
        .await;
        assert_eq!(response.status(), 401);
    }
    let response = api_login(&app, &client, "x", "not the password", Some("203.0.113.5")).await;
    assert_too_many_attempts(response).await;
    // Twenty failures from one client do not lock out another behind the same proxy.
    let response = api_login(&app, &client, "x", "not the password", Some("203.0.113.6")).await;
    assert_eq!(response.status(), 401);

    let response = app
        .browser()
        .post(app.url("/api/register"))
        .header("x-forwarded-proto", "https")
        .header("x-forwarded-for", "203.0.113.6")
        .json(&json!({"username": "alice", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    for name in ["natter_session", "natter_device"] {
        let cookie = set_cookie(&response, name).unwrap();
        assert!(cookie.ends_with("; Secure"), "{cookie}");
    }
}

async fn registrations_per_address_are_limited_and_the_form_says_so() {
    let app = TestApp::spawn_with(&[
        ("REGISTRATIONS_PER_ADDRESS_PER_HOUR", "2"),
        ("TRUSTED_PROXIES", "127.0.0.1"),
    ])
    .await;
    let register = |name: &str, address: &str| {
        app.browser()
            .post(app.url("/api/register"))
            .header("x-forwarded-for", address)
            .json(&json!({"username": name, "password": PASSWORD}))
            .send()
    };
    // A refused registration is not one of the two.
    let refused = app
        .browser()
        .post(app.url("/api/register"))
        .header("x-forwarded-for", "203.0.113.1")
        .json(&json!({"username": "user0", "password": "short"}))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 400);
    for name in ["user1", "user2"] {
        assert_eq!(register(name, "203.0.113.1").await.unwrap().status(), 201);
    }
    let response = register("user3", "203.0.113.1").await.unwrap();
    let wait: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(wait > 3_000 && wait <= 3_600, "{wait}");
    assert_too_many_attempts(response).await;
    // The form is refused the same way, and says why.
    let browser = app.browser();
    let csrf = csrf_for(&browser, &app.url("/register")).await;
    let response = browser
        .post(app.url("/register"))
        .header("x-forwarded-for", "203.0.113.1")
        .form(&[
            ("username", "user4"),
            ("password", PASSWORD),
            ("password_confirm", PASSWORD),
            ("csrf", &csrf),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 429);
    assert!(response.headers().contains_key("retry-after"));
    let html = response.text().await.unwrap();
    assert!(html.contains("too many attempts"), "{html}");
    // Another address may still register.
    assert_eq!(
        register("user5", "203.0.113.2").await.unwrap().status(),
        201
    );
}

/// The login throttle's numbers are configurable (`LOGIN_FAILURES_PER_USERNAME`,
/// `LOGIN_FAILURES_PER_ADDRESS`).
async fn the_login_throttle_counts_to_the_configured_numbers() {
    let app = TestApp::spawn_with(&[
        ("LOGIN_FAILURES_PER_USERNAME", "2"),
        ("LOGIN_FAILURES_PER_ADDRESS", "3"),
    ])
    .await;
    app.user("alice").await;
    app.user("bob").await;
    let stranger = app.browser();
    for _ in 0..2 {
        let response = api_login(&app, &stranger, "alice", "not the password", None).await;
        assert_eq!(response.status(), 401);
    }
    assert_too_many_attempts(api_login(&app, &stranger, "alice", "not the password", None).await)
        .await;
    // The address has failed twice; its third failure (on another name) is its last.
    let response = api_login(&app, &stranger, "bob", "not the password", None).await;
    assert_eq!(response.status(), 401);
    assert_too_many_attempts(api_login(&app, &stranger, "bob", PASSWORD, None).await).await;
}

api_tests!(
    login_follows_next_only_to_a_printable_path_on_this_site_and_never_fails_on_it,
    strangers_failing_on_purpose_cannot_lock_the_owner_out_of_her_browser,
    a_device_cookie_counts_only_for_the_user_it_names_and_only_when_signed,
    forwarded_headers_from_an_untrusted_peer_are_ignored,
    behind_a_trusted_proxy_limits_count_the_forwarded_client,
    registrations_per_address_are_limited_and_the_form_says_so,
    the_login_throttle_counts_to_the_configured_numbers,
);
