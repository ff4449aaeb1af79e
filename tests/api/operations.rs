use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use natter_test_support::{TestApp, PASSWORD, WAIT};

async fn health_readiness_and_metrics_answer() {
    let app = TestApp::spawn().await;
    assert_eq!(
        reqwest::get(app.url("/healthz")).await.unwrap().status(),
        200
    );
    assert_eq!(
        reqwest::get(app.url("/readyz")).await.unwrap().status(),
        200
    );
    let alice = app.user("alice").await;
    let slug = alice.create_room("general").await;
    let mut ws = alice.connect(&slug).await;
    assert_eq!(ws.say("counted", "c").await["type"], "ack");
    assert_eq!(app.metric("natter_ws_connections").await, 1.0);
    assert_eq!(app.metric("natter_rooms_active").await, 1.0);
    assert_eq!(app.metric("natter_messages_total").await, 1.0);
    app.metric("natter_rate_limited_total").await;
    app.metric("natter_history_loads_total{source=\"store\"}")
        .await;
    app.metric("natter_history_loads_total{source=\"cache\"}")
        .await;
}

async fn an_acknowledged_message_survives_a_restart() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice").await;
    let slug = alice.create_room("general").await;
    let mut ws = alice.connect(&slug).await;
    let ack = ws.say("durable", "d1").await;
    assert_eq!(ack["type"], "ack");
    let backend = app.stop().await;
    assert_eq!(
        ws.closed().await,
        Some(1001),
        "sockets close with 1001 on shutdown"
    );

    let app = TestApp::spawn_in(backend, &[]).await;
    let client = app.browser();
    let login = client
        .post(app.url("/api/login"))
        .json(&json!({"username": "alice", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), 200);
    let stored: Value = client
        .get(app.url(&format!("/api/rooms/{slug}/messages")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(stored["messages"][0]["body"], "durable");
    assert_eq!(stored["messages"][0]["id"], ack["id"]);
}

async fn a_connection_that_never_finishes_its_request_head_is_closed() {
    let app = TestApp::spawn().await;
    let mut stream = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let started = Instant::now();
    let mut buffer = [0u8; 512];
    let read = tokio::time::timeout(Duration::from_secs(20), stream.read(&mut buffer))
        .await
        .expect("the server gives up on the trickling client");
    // Closed (0 bytes or a reset), perhaps after a 408: never an answer to the half request.
    let text = String::from_utf8_lossy(&buffer[..read.unwrap_or(0)]).to_string();
    assert!(!text.contains("200 OK"), "{text}");
    assert!(
        started.elapsed() >= Duration::from_secs(9),
        "not before the 10 s allowance"
    );
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn sigterm_closes_sockets_with_1001_and_exits_within_10_seconds_keeping_acked_messages() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let start = || {
        tokio::process::Command::new(env!("CARGO_BIN_EXE_natter"))
            .current_dir(dir.path())
            .env_clear()
            .env("BIND", format!("127.0.0.1:{port}"))
            .env("SECRET_KEY", "test-secret-key-with-enough-length")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("natter starts")
    };
    let base = format!("http://127.0.0.1:{port}");
    let wait_ready = |base: String| async move {
        let deadline = Instant::now() + WAIT;
        while Instant::now() < deadline {
            if let Ok(r) = reqwest::get(format!("{base}/readyz")).await {
                if r.status() == 200 {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("natter did not become ready");
    };

    let mut server = start();
    wait_ready(base.clone()).await;
    // The default database file is natter.db in the working directory.
    let client = reqwest::Client::new();
    let registered = client
        .post(format!("{base}/api/register"))
        .json(&json!({"username": "alice", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    let cookie = natter_test_support::session_cookie(&registered).unwrap();
    let room: Value = client
        .post(format!("{base}/api/rooms"))
        .header("cookie", &cookie)
        .json(&json!({"name": "general"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let slug = room["room"]["slug"].as_str().unwrap().to_owned();
    let mut request =
        tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(format!(
            "ws://127.0.0.1:{port}/ws/rooms/{slug}"
        ))
        .unwrap();
    request
        .headers_mut()
        .insert("cookie", cookie.parse().unwrap());
    let (socket, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    let mut ws = natter_test_support::Ws::new(socket);
    ws.next_of_type("history").await;
    let ack = ws.say("before the signal", "s1").await;
    assert_eq!(ack["type"], "ack");
    assert!(dir.path().join("natter.db").exists());

    let pid = server.id().unwrap() as i32;
    let signalled = Instant::now();
    // SAFETY: kill(2) with a child's pid and SIGTERM has no memory effects.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    assert_eq!(ws.closed().await, Some(1001));
    let status = tokio::time::timeout(Duration::from_secs(10), server.wait())
        .await
        .expect("exits within 10 s")
        .unwrap();
    assert!(status.success(), "{status:?}");
    assert!(signalled.elapsed() < Duration::from_secs(10));

    let mut server = start();
    wait_ready(base.clone()).await;
    let stored: Value = client
        .get(format!("{base}/api/rooms/{slug}/messages"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(stored["messages"][0]["body"], "before the signal");
    let _ = server.kill().await;
}

api_tests!(
    health_readiness_and_metrics_answer,
    an_acknowledged_message_survives_a_restart,
    a_connection_that_never_finishes_its_request_head_is_closed,
    sigterm_closes_sockets_with_1001_and_exits_within_10_seconds_keeping_acked_messages,
);
