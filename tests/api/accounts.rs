use serde_json::{json, Value};

use natter_test_support::{session_cookie, TestApp, PASSWORD};

async fn registering_returns_the_user_and_an_http_only_session_cookie() {
    let app = TestApp::spawn().await;
    let client = app.browser();
    let response = client
        .post(app.url("/api/register"))
        .json(&json!({"username": "Alice", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let set_cookie = response.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        set_cookie.contains("HttpOnly") && set_cookie.contains("SameSite=Lax"),
        "{set_cookie}"
    );
    let token = session_cookie(&response).unwrap();
    // At least 128 random bits: 32 bytes base64url-encoded.
    assert!(token.len() >= "natter_session=".len() + 22, "{token}");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["user"]["username"], "Alice");
    assert!(body["user"]["id"].is_i64());

    let me: Value = client
        .get(app.url("/api/me"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(me["user"], body["user"]);
}

async fn a_taken_username_is_refused_whatever_its_case() {
    let app = TestApp::spawn().await;
    app.user("alice").await;
    let response = app
        .browser()
        .post(app.url("/api/register"))
        .json(&json!({"username": "ALICE", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 409);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "username_taken");
}

async fn bad_registrations_are_400_with_the_json_error_body() {
    let app = TestApp::spawn().await;
    let client = app.browser();
    let long_password = "p".repeat(129);
    let json = "application/json";
    let cases: Vec<(&str, String, &str)> = vec![
        (
            json,
            json!({"username": "ab", "password": PASSWORD}).to_string(),
            "invalid_username",
        ),
        (
            json,
            json!({"username": "has space", "password": PASSWORD}).to_string(),
            "invalid_username",
        ),
        (
            json,
            json!({"username": "bob", "password": "short"}).to_string(),
            "invalid_password",
        ),
        (
            json,
            json!({"username": "bob", "password": long_password}).to_string(),
            "invalid_password",
        ),
        (
            json,
            json!({"username": "bob"}).to_string(),
            "invalid_request",
        ),
        (
            json,
            json!({"username": 5, "password": PASSWORD}).to_string(),
            "invalid_request",
        ),
        (json, "{not json".to_owned(), "invalid_request"),
        (
            "application/x-www-form-urlencoded",
            format!("username=bob&password={PASSWORD}"),
            "invalid_request",
        ),
        (
            "text/plain",
            json!({"username": "bob", "password": PASSWORD}).to_string(),
            "invalid_request",
        ),
    ];
    for (content_type, body, code) in cases {
        let response = client
            .post(app.url("/api/register"))
            .header("content-type", content_type)
            .body(body.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400, "{content_type} {body}");
        let error: Value = response.json().await.unwrap();
        assert_eq!(error["error"]["code"], code, "{content_type} {body}");
        assert!(error["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()));
    }
    // None of them created an account: "bob" is still free.
    let register = client
        .post(app.url("/api/register"))
        .json(&json!({"username": "bob", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        register.status(),
        201,
        "bob was registered by a refused request"
    );
}

async fn login_issues_a_new_session_and_wrong_credentials_are_401() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice").await;
    let client = app.browser();
    for (username, password) in [("alice", "wrong password"), ("nobody", PASSWORD)] {
        let response = client
            .post(app.url("/api/login"))
            .json(&json!({"username": username, "password": password}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 401);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], "invalid_credentials");
    }
    let response = client
        .post(app.url("/api/login"))
        .header("cookie", &alice.cookie)
        .json(&json!({"username": "ALICE", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let fresh = session_cookie(&response).unwrap();
    assert_ne!(
        fresh, alice.cookie,
        "a cookie set before login is never promoted"
    );
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["user"]["username"], "alice");
}

async fn logout_ends_the_session_for_good() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice").await;
    let response = alice
        .client
        .post(app.url("/api/logout"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    // Replaying the old cookie does not bring the session back.
    let me = app
        .browser()
        .get(app.url("/api/me"))
        .header("cookie", &alice.cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), 401);
    let body: Value = me.json().await.unwrap();
    assert_eq!(body["error"]["code"], "unauthenticated");
}

async fn logout_closes_the_sessions_websockets_with_1008() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice").await;
    let slug = alice.create_room("general").await;
    let mut ws = alice.connect(&slug).await;
    alice
        .client
        .post(app.url("/api/logout"))
        .send()
        .await
        .unwrap();
    assert_eq!(ws.closed().await, Some(1008));
}

async fn repeated_failed_logins_for_one_username_get_429() {
    let app = TestApp::spawn().await;
    app.user("alice").await;
    let client = app.browser();
    let mut statuses = Vec::new();
    for _ in 0..7 {
        let response = client
            .post(app.url("/api/login"))
            .json(&json!({"username": "alice", "password": "not the password"}))
            .send()
            .await
            .unwrap();
        statuses.push(response.status().as_u16());
    }
    assert_eq!(&statuses[..5], &[401; 5]);
    assert_eq!(&statuses[5..], &[429, 429]);
    // Even the right password waits now: the throttle is on the name, not on the guess.
    let response = client
        .post(app.url("/api/login"))
        .json(&json!({"username": "alice", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 429);
    assert!(response.headers().contains_key("retry-after"));
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "too_many_attempts");
}

async fn repeated_failed_registrations_from_one_address_get_429() {
    let app = TestApp::spawn().await;
    let client = app.browser();
    let mut last = 0;
    for i in 0..25 {
        let response = client
            .post(app.url("/api/register"))
            .json(&json!({"username": format!("user{i}"), "password": "short"}))
            .send()
            .await
            .unwrap();
        last = response.status().as_u16();
    }
    assert_eq!(last, 429);
}

async fn an_expired_session_closes_its_websockets_and_stops_working() {
    let app = TestApp::spawn_with(&[("SESSION_TTL", "2")]).await;
    let alice = app.user("alice").await;
    let slug = alice.create_room("general").await;
    let mut ws = alice.connect(&slug).await;
    let started = std::time::Instant::now();
    assert_eq!(ws.closed().await, Some(1008));
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    let me = alice.client.get(app.url("/api/me")).send().await.unwrap();
    assert_eq!(me.status(), 401);
}

/// Every cookie natter sets (the pre-session CSRF cookie of a login or registration page,
/// the session and device cookies of a sign-in, the expired session cookie of a logout) is
/// `Secure` when the client came through a trusted HTTPS proxy, and only then.
async fn every_cookie_is_secure_behind_a_trusted_https_proxy_only() {
    let app = TestApp::spawn_with(&[("TRUSTED_PROXIES", "127.0.0.1")]).await;
    let cookies_of = |response: &reqwest::Response| -> Vec<String> {
        response
            .headers()
            .get_all("set-cookie")
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect()
    };
    for (username, over_https) in [("alice", false), ("bob", true)] {
        let browser = app.browser();
        let proto = if over_https { "https" } else { "http" };
        let mut set = Vec::new();
        for page in ["/login", "/register"] {
            // A browser of its own: one that holds a pre-session cookie gets no other.
            let response = app
                .browser()
                .get(app.url(page))
                .header("x-forwarded-proto", proto)
                .send()
                .await
                .unwrap();
            let cookies = cookies_of(&response);
            assert!(
                cookies.iter().any(|c| c.starts_with("natter_csrf=")),
                "{page}: {cookies:?}"
            );
            set.extend(cookies);
        }
        let registered = browser
            .post(app.url("/api/register"))
            .header("x-forwarded-proto", proto)
            .json(&json!({"username": username, "password": PASSWORD}))
            .send()
            .await
            .unwrap();
        let signed_in = cookies_of(&registered);
        for name in ["natter_session=", "natter_device="] {
            assert!(
                signed_in.iter().any(|c| c.starts_with(name)),
                "{signed_in:?}"
            );
        }
        set.extend(signed_in);
        let logout = browser
            .post(app.url("/api/logout"))
            .header("x-forwarded-proto", proto)
            .send()
            .await
            .unwrap();
        assert_eq!(logout.status(), 204);
        let ended = cookies_of(&logout);
        assert!(
            ended.iter().any(|c| c.starts_with("natter_session=;")),
            "{ended:?}"
        );
        set.extend(ended);
        for cookie in set {
            assert_eq!(
                cookie.ends_with("; Secure"),
                over_https,
                "{proto}: {cookie}"
            );
        }
    }
}

api_tests!(
    registering_returns_the_user_and_an_http_only_session_cookie,
    a_taken_username_is_refused_whatever_its_case,
    bad_registrations_are_400_with_the_json_error_body,
    login_issues_a_new_session_and_wrong_credentials_are_401,
    logout_ends_the_session_for_good,
    logout_closes_the_sessions_websockets_with_1008,
    repeated_failed_logins_for_one_username_get_429,
    repeated_failed_registrations_from_one_address_get_429,
    an_expired_session_closes_its_websockets_and_stops_working,
    every_cookie_is_secure_behind_a_trusted_https_proxy_only,
);
