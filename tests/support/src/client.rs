//! Talking to a natter as a client does: HTTP with a cookie jar, WebSockets with the
//! session cookie.

use std::net::SocketAddr;

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::WAIT;

/// Every test user's password.
pub const PASSWORD: &str = "correct horse battery";

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
        self.call(reqwest::Method::POST, path, Some(body)).await
    }

    /// Sends `body` to the room over HTTP (`POST /api/rooms/{slug}/messages`) and returns
    /// the stored message; anything but `201` fails the test.
    pub async fn post_message(&self, slug: &str, body: &str) -> Value {
        let path = format!("/api/rooms/{slug}/messages");
        let (status, answer) = self.post_json(&path, &json!({ "body": body })).await;
        assert_eq!(status, 201, "{answer}");
        answer["message"].clone()
    }

    /// `method path` as this user, with a JSON body when one is given: the status and the
    /// JSON answer (`null` when there is none).
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> (u16, Value) {
        let mut request = self.client.request(method.clone(), self.url(path));
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request
            .send()
            .await
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
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

    /// `GET path` as this user.
    async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(self.url(path))
            .send()
            .await
            .expect("GET answered")
    }

    /// `GET path` as this user; the body as JSON.
    pub async fn get_json(&self, path: &str) -> Value {
        self.get(path).await.json().await.expect("a JSON body")
    }

    /// `GET path` as this user; the body as text (a page's HTML).
    pub async fn get_page(&self, path: &str) -> String {
        self.get(path).await.text().await.expect("a text body")
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
