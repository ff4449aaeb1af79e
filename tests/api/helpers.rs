//! Starts a real natter on an ephemeral port, with its own storage, and talks to it like a
//! client: HTTP with a cookie jar, WebSockets with the session cookie.
//!
//! Storage is a fresh SQLite file, or, for a test in an `api_tests!` `shared` module, a
//! PostgreSQL database (from `TEST_DATABASE_URL`) and Redis key prefix (on `TEST_REDIS_URL`)
//! of the test's own, so the same tests prove the production topology; both are removed
//! when the test ends.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use natter::app::App;
use natter::config::Config;
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use tokio_util::sync::CancellationToken;

/// Every wait in a test is bounded by this, never a bare sleep.
pub const WAIT: Duration = Duration::from_secs(10);

pub const PASSWORD: &str = "correct horse battery";

pub use crate::postgres_support::TestDatabase;
pub use crate::redis_support::TestRedis;

/// A service-backed test (`#[ignore = "needs …"]`, run with `--include-ignored`) whose
/// service is not configured: it fails, naming what to set, and never passes having done
/// nothing.
pub fn missing_service(what: &str) -> ! {
    panic!("{what} is not configured: set it, or leave this #[ignore]d test out");
}

/// A PostgreSQL database and a Redis prefix of a test's own (on `TEST_DATABASE_URL` and
/// `TEST_REDIS_URL`).
pub async fn shared_services() -> (TestDatabase, TestRedis) {
    let (Ok(database), Ok(redis)) = (
        std::env::var("TEST_DATABASE_URL"),
        std::env::var("TEST_REDIS_URL"),
    ) else {
        missing_service("PostgreSQL + Redis (TEST_DATABASE_URL, TEST_REDIS_URL)");
    };
    (
        TestDatabase::create(&database).await,
        TestRedis::new(&redis),
    )
}

/// Which backend a test's apps use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendKind {
    /// SQLite, with cache, presence, limiter and bus in the process.
    Embedded,
    /// PostgreSQL + Redis.
    Shared,
}

tokio::task_local! {
    static BACKEND: BackendKind;
}

/// Runs a test body with `kind` as the backend its apps get ([`Backend::new`]).
pub async fn on_backend(kind: BackendKind, test: impl std::future::Future<Output = ()>) {
    BACKEND.scope(kind, test).await
}

/// Where an app keeps its data; kept across a restart of the app.
pub struct Backend {
    dir: tempfile::TempDir,
    /// Shared by the apps of a pair ([`TestApp::spawn_pair`]); dropped with the last.
    shared: Option<std::sync::Arc<(TestDatabase, TestRedis)>>,
}

impl Backend {
    /// The backend of the running test: the `api_tests!` module's, else embedded.
    pub async fn new() -> Backend {
        let shared = match BACKEND.try_with(|kind| *kind) {
            Ok(BackendKind::Shared) => Some(std::sync::Arc::new(shared_services().await)),
            Ok(BackendKind::Embedded) | Err(_) => None,
        };
        Backend {
            dir: tempfile::tempdir().expect("temp dir"),
            shared,
        }
    }

    /// SQLite in a directory of its own, whatever the test's backend: for tests of
    /// what only the embedded store has (its file).
    pub fn embedded() -> Backend {
        Backend {
            dir: tempfile::tempdir().expect("temp dir"),
            shared: None,
        }
    }

    /// PostgreSQL + Redis of the test's own, whatever the test's backend.
    pub async fn shared() -> Backend {
        Backend {
            dir: tempfile::tempdir().expect("temp dir"),
            shared: Some(std::sync::Arc::new(shared_services().await)),
        }
    }

    /// The same database and Redis prefix, for a second process of one service.
    pub fn alongside(&self) -> Backend {
        Backend {
            dir: tempfile::tempdir().expect("temp dir"),
            shared: Some(
                self.shared
                    .clone()
                    .expect("processes share PostgreSQL + Redis, not a SQLite file"),
            ),
        }
    }

    /// The SQLite file, when the store is SQLite.
    pub fn sqlite_file(&self) -> Option<std::path::PathBuf> {
        self.shared
            .is_none()
            .then(|| self.dir.path().join("natter.db"))
    }

    /// The app's store, opened beside it: to put in place what the API cannot make
    /// quickly (the rate limits allow one message per second per user).
    pub async fn store(&self) -> std::sync::Arc<dyn natter::ports::Store> {
        let url = &self.vars()[0].1;
        if url.starts_with("sqlite:") {
            std::sync::Arc::new(
                natter::adapters::sqlite::SqliteStore::connect(url)
                    .await
                    .unwrap(),
            )
        } else {
            std::sync::Arc::new(
                natter::adapters::postgres::PgStore::connect(url)
                    .await
                    .unwrap(),
            )
        }
    }

    fn vars(&self) -> Vec<(String, String)> {
        match &self.shared {
            None => vec![(
                "DATABASE_URL".into(),
                format!("sqlite://{}", self.dir.path().join("natter.db").display()),
            )],
            Some(services) => {
                let (database, redis) = &**services;
                vec![
                    ("DATABASE_URL".into(), database.url.clone()),
                    ("REDIS_URL".into(), redis.url.clone()),
                    ("REDIS_KEY_PREFIX".into(), redis.prefix.clone()),
                ]
            }
        }
    }
}

pub struct TestApp {
    pub addr: SocketAddr,
    shutdown: CancellationToken,
    running: tokio::task::JoinHandle<()>,
    pub backend: Backend,
}

impl TestApp {
    pub async fn spawn() -> TestApp {
        TestApp::spawn_with(&[]).await
    }

    /// Two apps in this process on one PostgreSQL + Redis: one service, two processes' worth
    /// of everything (hub, bus link, presence instance), without the cost of real
    /// processes (`tests/cluster` keeps those, for kill -9). Needs `TEST_DATABASE_URL` and
    /// `TEST_REDIS_URL`: mark its tests `#[ignore = "needs TEST_DATABASE_URL and TEST_REDIS_URL"]`.
    pub async fn spawn_pair() -> (TestApp, TestApp) {
        let backend = Backend::shared().await;
        let second = backend.alongside();
        (
            TestApp::spawn_in(backend, &[]).await,
            TestApp::spawn_in(second, &[]).await,
        )
    }

    /// Two signed-in users in a new room: `(first, second, slug)`.
    pub async fn two_in_a_room(&self, room: &str) -> (TestUser, TestUser, String) {
        let first = self.user("alice").await;
        let second = self.user("bob").await;
        let slug = first.create_room(room).await;
        (first, second, slug)
    }

    /// Starts an app with these variables on top of the test defaults.
    pub async fn spawn_with(vars: &[(&str, &str)]) -> TestApp {
        TestApp::spawn_in(Backend::new().await, vars).await
    }

    /// Starts an app on `backend` (so a restart finds the same data).
    pub async fn spawn_in(backend: Backend, vars: &[(&str, &str)]) -> TestApp {
        let mut map: HashMap<String, String> = HashMap::from([
            ("BIND".into(), "127.0.0.1:0".into()),
            (
                "SECRET_KEY".into(),
                "test-secret-key-with-enough-length".into(),
            ),
            // Every test user registers from 127.0.0.1; the tests of this limit set it.
            (
                "REGISTRATIONS_PER_ADDRESS_PER_HOUR".into(),
                "1000000".into(),
            ),
        ]);
        map.extend(backend.vars());
        for (k, v) in vars {
            map.insert(k.to_string(), v.to_string());
        }
        let config =
            Config::from_lookup(|name| map.get(name).cloned()).expect("test config is valid");
        let app = App::build(config).await.expect("app starts");
        let addr = app.local_addr();
        let shutdown = app.shutdown_token();
        let running = tokio::spawn(app.run());
        TestApp {
            addr,
            shutdown,
            running,
            backend,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// A client that keeps cookies and does not follow redirects.
    pub fn browser(&self) -> reqwest::Client {
        browser()
    }

    /// A registered, signed-in user.
    pub async fn user(&self, name: &str) -> TestUser {
        register(self.addr, name).await
    }

    /// The value of one Prometheus sample, e.g. `natter_history_loads_total{source="store"}`.
    pub async fn metric(&self, sample: &str) -> f64 {
        let text = reqwest::get(self.url("/metrics"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        text.lines()
            .find_map(|line| {
                line.strip_prefix(sample)
                    .and_then(|rest| rest.trim().parse().ok())
            })
            .unwrap_or_else(|| panic!("no sample {sample} in\n{text}"))
    }

    /// Stops the app as SIGTERM would, and waits for it.
    pub async fn stop(self) -> Backend {
        self.shutdown.cancel();
        tokio::time::timeout(WAIT, self.running)
            .await
            .expect("app stops in time")
            .expect("app task");
        self.backend
    }
}

/// A client that keeps cookies and does not follow redirects.
pub fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

/// Registers `name` with the server at `addr`; the user is signed in.
pub async fn register(addr: SocketAddr, name: &str) -> TestUser {
    let client = browser();
    let response = client
        .post(format!("http://{addr}/api/register"))
        .json(&json!({"username": name, "password": PASSWORD}))
        .send()
        .await
        .expect("register");
    assert_eq!(response.status(), 201, "registering {name}");
    let cookie = session_cookie(&response).expect("a session cookie");
    let body: Value = response.json().await.unwrap();
    TestUser {
        client,
        cookie,
        id: body["user"]["id"].as_i64().unwrap(),
        addr,
    }
}

/// The hidden CSRF input's value in a page.
pub fn csrf_of(html: &str) -> String {
    let marker = "name=\"csrf\" value=\"";
    let start = html.find(marker).expect("the form has a csrf field") + marker.len();
    html[start..].split('"').next().unwrap().to_owned()
}

/// The CSRF token of the page at `url`, as `client` (signed in or not) sees it.
pub async fn csrf_for(client: &reqwest::Client, url: &str) -> String {
    let page = client.get(url).send().await.expect("GET answered");
    csrf_of(&page.text().await.expect("a page"))
}

/// `natter_session=…` from a response's Set-Cookie headers.
pub fn session_cookie(response: &reqwest::Response) -> Option<String> {
    response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("natter_session=") && !v.starts_with("natter_session=;"))
        .map(|v| v.split(';').next().unwrap().to_owned())
}

pub struct TestUser {
    pub client: reqwest::Client,
    /// `natter_session=…`, for WebSocket upgrades.
    pub cookie: String,
    pub id: i64,
    addr: SocketAddr,
}

pub type RawSocket = WebSocketStream<MaybeTlsStream<TcpStream>>;

impl TestUser {
    /// The same user (same session) talking to another server (process or app).
    pub fn at(&self, addr: SocketAddr) -> TestUser {
        TestUser {
            client: self.client.clone(),
            cookie: self.cookie.clone(),
            id: self.id,
            addr,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// `POST path` with a JSON body as this user: the status and the JSON answer (`null`
    /// when there is none).
    pub async fn post_json(&self, path: &str, body: &Value) -> (u16, Value) {
        let response = self
            .client
            .post(self.url(path))
            .json(body)
            .send()
            .await
            .expect("POST answered");
        let status = response.status().as_u16();
        let text = response.text().await.expect("a body");
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// The CSRF token the page at `path` puts in its forms for this user.
    pub async fn csrf_for(&self, path: &str) -> String {
        csrf_for(&self.client, &self.url(path)).await
    }

    /// Posts a form as a browser would: `fields`, plus the CSRF token of the page at `/`.
    pub async fn post_form(&self, path: &str, fields: &[(&str, &str)]) -> reqwest::Response {
        let csrf = self.csrf_for("/").await;
        let mut form: Vec<(&str, &str)> = fields.to_vec();
        form.push(("csrf", &csrf));
        self.client
            .post(self.url(path))
            .form(&form)
            .send()
            .await
            .expect("POST answered")
    }

    /// `GET path` as this user; the body as JSON.
    pub async fn get_json(&self, path: &str) -> Value {
        self.client
            .get(self.url(path))
            .send()
            .await
            .expect("GET answered")
            .json()
            .await
            .expect("a JSON body")
    }

    pub async fn create_room(&self, name: &str) -> String {
        let response = self
            .client
            .post(self.url("/api/rooms"))
            .json(&json!({ "name": name }))
            .send()
            .await
            .unwrap();
        assert!(
            response.status().is_success(),
            "creating room {name}: {}",
            response.status()
        );
        let body: Value = response.json().await.unwrap();
        body["room"]["slug"].as_str().unwrap().to_owned()
    }

    /// Opens a socket with this user's cookie; `Err` carries the HTTP refusal.
    pub async fn open(&self, path: &str, origin: Option<&str>) -> Result<RawSocket, u16> {
        let mut request = format!("ws://{}{}", self.addr, path)
            .into_client_request()
            .unwrap();
        request
            .headers_mut()
            .insert("cookie", HeaderValue::from_str(&self.cookie).unwrap());
        if let Some(origin) = origin {
            request
                .headers_mut()
                .insert("origin", HeaderValue::from_str(origin).unwrap());
        }
        match tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(request))
            .await
            .expect("upgrade answered in time")
        {
            Ok((socket, _)) => Ok(socket),
            Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
                Err(response.status().as_u16())
            }
            Err(e) => panic!("websocket failed: {e}"),
        }
    }

    /// A socket to the room that has read `joined` and `history`.
    pub async fn connect(&self, slug: &str) -> Ws {
        self.connect_path(&format!("/ws/rooms/{slug}")).await
    }

    pub async fn connect_path(&self, path: &str) -> Ws {
        let socket = self.open(path, None).await.expect("upgrade accepted");
        let mut ws = Ws::new(socket);
        let joined = ws.next_frame().await;
        assert_eq!(joined["type"], "joined", "{joined}");
        let history = ws.next_frame().await;
        assert_eq!(history["type"], "history", "{history}");
        ws.joined = Some(joined);
        ws.history = Some(history);
        ws
    }
}

pub struct Ws {
    pub socket: RawSocket,
    pub joined: Option<Value>,
    pub history: Option<Value>,
}

impl Ws {
    pub fn new(socket: RawSocket) -> Ws {
        Ws {
            socket,
            joined: None,
            history: None,
        }
    }

    /// The `seq`s of the history received on join.
    pub fn history_seqs(&self) -> Vec<i64> {
        seqs(&self.history.as_ref().unwrap()["messages"])
    }

    pub async fn send(&mut self, frame: Value) {
        self.socket
            .send(Message::text(frame.to_string()))
            .await
            .expect("send frame");
    }

    pub async fn send_raw(&mut self, message: Message) {
        self.socket.send(message).await.expect("send frame");
    }

    /// The next JSON frame, skipping control frames.
    pub async fn next_frame(&mut self) -> Value {
        loop {
            let message = tokio::time::timeout(WAIT, self.socket.next())
                .await
                .expect("a frame in time")
                .expect("socket open")
                .expect("frame");
            match message {
                Message::Text(text) => {
                    return serde_json::from_str(&text).expect("frames are JSON")
                }
                Message::Close(frame) => panic!("socket closed: {frame:?}"),
                _ => continue,
            }
        }
    }

    /// The next frame of this type, skipping others (presence, other messages).
    pub async fn next_of_type(&mut self, kind: &str) -> Value {
        loop {
            let frame = self.next_frame().await;
            if frame["type"] == kind {
                return frame;
            }
        }
    }

    /// Sends a `send` and returns its `ack` (or the `error` refusing it).
    pub async fn say(&mut self, body: &str, client_id: &str) -> Value {
        self.send(json!({"type": "send", "body": body, "client_id": client_id}))
            .await;
        loop {
            let frame = self.next_frame().await;
            if (frame["type"] == "ack" || frame["type"] == "error")
                && frame["client_id"] == client_id
            {
                return frame;
            }
        }
    }

    /// Waits for the server to close; returns the close code.
    pub async fn closed(&mut self) -> Option<u16> {
        loop {
            match tokio::time::timeout(WAIT, self.socket.next())
                .await
                .expect("close in time")
            {
                Some(Ok(Message::Close(frame))) => return frame.map(|f| u16::from(f.code)),
                Some(Ok(_)) => continue,
                Some(Err(_)) | None => return None,
            }
        }
    }
}

pub fn seqs(messages: &Value) -> Vec<i64> {
    messages
        .as_array()
        .expect("messages array")
        .iter()
        .map(|m| m["seq"].as_i64().unwrap())
        .collect()
}
