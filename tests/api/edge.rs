//! The edge, below the handlers (CONTRACT §7a): bodies that never finish, connections per
//! address, idle keep-alive connections, and `Host` names.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use natter_test_support::{TestApp, Ws, WAIT};

/// Reads until the server closes the connection (EOF or a reset); panics after [`WAIT`].
async fn read_until_closed(stream: &mut TcpStream) -> String {
    let mut received = Vec::new();
    let mut buffer = [0u8; 4096];
    let deadline = Instant::now() + WAIT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, stream.read(&mut buffer))
            .await
            .expect("the server closes the connection in time")
        {
            Ok(0) | Err(_) => return String::from_utf8_lossy(&received).into_owned(),
            Ok(n) => received.extend_from_slice(&buffer[..n]),
        }
    }
}

/// Reads one response whose head says `Content-Length`, leaving the connection open.
async fn read_response(stream: &mut TcpStream) -> String {
    let mut received = Vec::new();
    let mut buffer = [0u8; 4096];
    loop {
        let n = tokio::time::timeout(WAIT, stream.read(&mut buffer))
            .await
            .expect("a response in time")
            .expect("the connection is open");
        assert!(n > 0, "closed before a whole response");
        received.extend_from_slice(&buffer[..n]);
        let text = String::from_utf8_lossy(&received).into_owned();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let length: usize = head
                .lines()
                .find_map(|l| {
                    let (name, value) = l.split_once(':')?;
                    name.eq_ignore_ascii_case("content-length")
                        .then(|| value.trim().parse().ok())?
                })
                .expect("a Content-Length");
            if body.len() >= length {
                return text;
            }
        }
    }
}

/// One request on a fresh connection with this `Host`; the whole response.
async fn request_with_host(addr: SocketAddr, host: &str, path: &str) -> String {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(
            format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await
        .unwrap();
    read_until_closed(&mut stream).await
}

fn status_of(response: &str) -> u16 {
    response
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP response: {response:?}"))
}

/// Sends a head announcing a 60,000-byte body, then one byte every 200 ms.
async fn trickle(addr: SocketAddr, path: &str, content_type: &str) -> (String, Duration) {
    let stream = TcpStream::connect(addr).await.unwrap();
    let (mut reader, mut writer) = stream.into_split();
    writer
        .write_all(
            format!(
                "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: {content_type}\r\nContent-Length: 60000\r\n\r\n"
            )
            .as_bytes(),
        )
        .await
        .unwrap();
    let started = Instant::now();
    let trickler = tokio::spawn(async move {
        // Until the server closes on us (then a write fails), or the test gives up.
        for _ in 0..100 {
            if writer.write_all(b"x").await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
    let mut received = Vec::new();
    let mut buffer = [0u8; 4096];
    loop {
        match tokio::time::timeout(WAIT, reader.read(&mut buffer))
            .await
            .expect("the server answers and closes in time")
        {
            Ok(0) | Err(_) => break,
            Ok(n) => received.extend_from_slice(&buffer[..n]),
        }
    }
    trickler.abort();
    (
        String::from_utf8_lossy(&received).into_owned(),
        started.elapsed(),
    )
}

async fn a_body_that_trickles_is_answered_408_and_its_connection_closed() {
    let app = TestApp::spawn_with(&[("REQUEST_BODY_TIMEOUT", "1")]).await;

    let (response, elapsed) = trickle(app.addr, "/api/login", "application/json").await;
    assert_eq!(status_of(&response), 408, "{response}");
    assert!(
        response.contains("\"code\":\"request_timeout\""),
        "{response}"
    );
    assert!(
        elapsed >= Duration::from_millis(900),
        "not before the allowance: {elapsed:?}"
    );

    let (page, _) = trickle(app.addr, "/login", "application/x-www-form-urlencoded").await;
    assert_eq!(status_of(&page), 408, "{page}");
    assert!(
        page.to_ascii_lowercase()
            .contains("content-type: text/html"),
        "{page}"
    );

    // A body that arrives in time is read as before.
    let login = reqwest::Client::new()
        .post(app.url("/api/login"))
        .json(&serde_json::json!({"username": "nobody", "password": "wrong password"}))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), 401);
}

async fn an_idle_keep_alive_connection_is_closed_after_the_head_timeout() {
    let app = TestApp::spawn_with(&[("REQUEST_HEAD_TIMEOUT", "1")]).await;
    let mut stream = TcpStream::connect(app.addr).await.unwrap();
    let request = format!("GET /healthz HTTP/1.1\r\nHost: {}\r\n\r\n", app.addr);
    stream.write_all(request.as_bytes()).await.unwrap();
    assert_eq!(status_of(&read_response(&mut stream).await), 200);
    // Kept alive, then idle: its descriptor comes back.
    assert_eq!(read_until_closed(&mut stream).await, "");
}

/// A TCP connection to `addr` from `source` (any 127.0.0.0/8 address is this machine).
async fn connect_from(source: &str, addr: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(format!("{source}:0").parse().unwrap()).unwrap();
    socket.connect(addr).await.unwrap()
}

async fn one_address_holds_at_most_max_connections_per_address_websockets_included() {
    let app = TestApp::spawn_with(&[("MAX_CONNECTIONS_PER_ADDRESS", "3")]).await;
    // The user's own HTTP client talks from 127.0.0.1; the capped client is 127.0.0.2.
    let alice = app.user("alice").await;
    let slug = alice.create_room("general").await;
    let capped = "127.0.0.2";

    let mut sockets = Vec::new();
    for _ in 0..2 {
        let mut request = format!("ws://{}/ws/rooms/{slug}", app.addr)
            .into_client_request()
            .unwrap();
        request
            .headers_mut()
            .insert("cookie", alice.cookie.parse().unwrap());
        let stream = connect_from(capped, app.addr).await;
        let stream = tokio_tungstenite::MaybeTlsStream::Plain(stream);
        let (socket, _) = tokio_tungstenite::client_async(request, stream)
            .await
            .expect("upgrade accepted");
        let mut ws = Ws::new(socket);
        ws.next_of_type("history").await;
        sockets.push(ws);
    }
    let mut http = connect_from(capped, app.addr).await;
    let healthz = format!("GET /healthz HTTP/1.1\r\nHost: {}\r\n\r\n", app.addr);
    http.write_all(healthz.as_bytes()).await.unwrap();
    assert_eq!(status_of(&read_response(&mut http).await), 200);

    // The fourth is closed at once, without a word from the client.
    let mut fourth = connect_from(capped, app.addr).await;
    let refused = read_until_closed(&mut fourth).await;
    assert!(!refused.contains("200 OK"), "{refused}");

    // The three it has still work, and other addresses are not affected.
    assert_eq!(sockets[0].say("still here", "c1").await["type"], "ack");
    http.write_all(healthz.as_bytes()).await.unwrap();
    assert_eq!(status_of(&read_response(&mut http).await), 200);
    assert_eq!(
        reqwest::get(app.url("/healthz")).await.unwrap().status(),
        200
    );

    // A closed WebSocket gives its slot back.
    let mut first = sockets.remove(0);
    first.socket.close(None).await.unwrap();
    let deadline = Instant::now() + WAIT;
    loop {
        let mut again = connect_from(capped, app.addr).await;
        let _ = again.write_all(healthz.as_bytes()).await;
        let mut buffer = [0u8; 64];
        let read = tokio::time::timeout(WAIT, again.read(&mut buffer)).await;
        if matches!(read, Ok(Ok(n)) if n > 0) {
            assert!(String::from_utf8_lossy(&buffer).starts_with("HTTP/1.1 200"));
            break;
        }
        assert!(Instant::now() < deadline, "the slot never came back");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn a_foreign_host_is_refused_except_by_the_probes() {
    let app = TestApp::spawn().await;
    let port = app.addr.port();

    let api = request_with_host(app.addr, "evil.example", "/api/rooms").await;
    assert_eq!(status_of(&api), 400, "{api}");
    assert!(api.contains("\"code\":\"invalid_request\""), "{api}");
    let page = request_with_host(app.addr, &format!("evil.example:{port}"), "/").await;
    assert_eq!(status_of(&page), 400, "{page}");
    assert!(
        page.to_ascii_lowercase()
            .contains("content-type: text/html"),
        "{page}"
    );
    let socket = request_with_host(app.addr, "evil.example", "/ws/rooms/general").await;
    assert_eq!(status_of(&socket), 400, "{socket}");
    let missing = {
        let mut stream = TcpStream::connect(app.addr).await.unwrap();
        stream.write_all(b"GET / HTTP/1.0\r\n\r\n").await.unwrap();
        read_until_closed(&mut stream).await
    };
    assert_eq!(status_of(&missing), 400, "{missing}");

    for probe in ["/healthz", "/readyz", "/metrics"] {
        let response = request_with_host(app.addr, "10.1.2.3:8000", probe).await;
        assert_eq!(status_of(&response), 200, "{probe}: {response}");
    }
    for host in [
        format!("127.0.0.1:{port}"),
        format!("localhost:{port}"),
        "LOCALHOST".to_owned(),
        format!("[::1]:{port}"),
    ] {
        // Signed out: 401, not the Host's 400.
        let response = request_with_host(app.addr, &host, "/api/rooms").await;
        assert_eq!(status_of(&response), 401, "{host}: {response}");
    }
}

async fn allowed_hosts_adds_names_and_a_star_allows_any() {
    let app = TestApp::spawn_with(&[
        ("ALLOWED_HOSTS", "chat.example.com"),
        ("DOMAIN", "natter.example.org:8443"),
    ])
    .await;
    for host in [
        "chat.example.com",
        "chat.example.com:443",
        "natter.example.org",
    ] {
        let response = request_with_host(app.addr, host, "/api/rooms").await;
        assert_eq!(status_of(&response), 401, "{host}: {response}");
    }
    let response = request_with_host(app.addr, "evil.example", "/api/rooms").await;
    assert_eq!(status_of(&response), 400, "{response}");

    let any = TestApp::spawn_with(&[("ALLOWED_HOSTS", "*")]).await;
    let response = request_with_host(any.addr, "evil.example", "/api/rooms").await;
    assert_eq!(status_of(&response), 401, "{response}");
}

api_tests!(
    a_body_that_trickles_is_answered_408_and_its_connection_closed,
    an_idle_keep_alive_connection_is_closed_after_the_head_timeout,
    one_address_holds_at_most_max_connections_per_address_websockets_included,
    a_foreign_host_is_refused_except_by_the_probes,
    allowed_hosts_adds_names_and_a_star_allows_any,
);
