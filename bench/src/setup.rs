//! Accounts, rooms and sockets, through the public contract only.

use std::future::Future;
use std::net::IpAddr;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use futures_util::StreamExt;
use rand::Rng;
use reqwest::header::{COOKIE, SET_COOKIE};
use reqwest::{StatusCode, Url};
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::Common;

pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// One server process: its HTTP base and WebSocket base.
#[derive(Debug, Clone)]
pub struct Target {
    pub http: String,
    pub ws: String,
}

/// A registered, signed-in bench user.
#[derive(Debug, Clone)]
pub struct User {
    pub name: String,
    /// `Cookie` header value: whatever the server's `Set-Cookie` said.
    pub cookie: String,
    /// Index into [`Ctx::targets`]: users are spread round-robin over the targets.
    pub target: usize,
}

/// What every scenario shares.
pub struct Ctx {
    pub targets: Vec<Target>,
    pub http: reqwest::Client,
    pub password: String,
    pub prefix: String,
    pub phase_timeout: Duration,
    pub register_concurrency: usize,
    pub connect_concurrency: usize,
    pub json_only: bool,
    pub label: Option<String>,
    pub nofile: u64,
}

impl Ctx {
    pub fn new(common: &Common, nofile: u64) -> Result<Ctx> {
        let targets = common
            .target
            .iter()
            .map(|t| parse_target(t))
            .collect::<Result<Vec<_>>>()?;
        if targets.is_empty() {
            bail!("--target is required");
        }
        let prefix = match &common.user_prefix {
            Some(p) => {
                if p.is_empty()
                    || p.len() > 16
                    || !p
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
                {
                    bail!("--user-prefix must be 1–16 characters of A–Z a–z 0–9 _ . -");
                }
                p.clone()
            }
            None => {
                let mut rng = rand::thread_rng();
                let id: String = (0..6)
                    .map(|_| {
                        char::from(b"abcdefghijklmnopqrstuvwxyz0123456789"[rng.gen_range(0..36)])
                    })
                    .collect();
                format!("nb{id}")
            }
        };
        if !(8..=128).contains(&common.password.chars().count()) {
            bail!("--password must be 8–128 characters");
        }
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .pool_max_idle_per_host(64)
            .no_proxy()
            .build()
            .context("building the HTTP client")?;
        Ok(Ctx {
            targets,
            http,
            password: common.password.clone(),
            prefix,
            phase_timeout: common.phase_timeout(),
            register_concurrency: common.register_concurrency.max(1),
            connect_concurrency: common.connect_concurrency.max(1),
            json_only: common.json_only,
            label: common.label.clone(),
            nofile,
        })
    }

    pub fn target_list(&self) -> Vec<String> {
        self.targets.iter().map(|t| t.http.clone()).collect()
    }

    /// Registers `n` users named `{prefix}{tag}{i}` (logging in instead when a name is
    /// taken), `register_concurrency` at a time; user `i` belongs to target `i % T`.
    pub async fn register_users(&self, tag: &str, n: usize) -> Result<Vec<User>> {
        let jobs = (0..n).map(|i| {
            let name = format!("{}{tag}{i}", self.prefix);
            let target = i % self.targets.len();
            async move { self.register(name, target).await }
        });
        let users = phase(
            &format!("registering {n} users"),
            self.phase_timeout,
            futures_util::stream::iter(jobs)
                .buffered(self.register_concurrency)
                .collect::<Vec<_>>(),
        )
        .await?;
        users.into_iter().collect()
    }

    async fn register(&self, name: String, target: usize) -> Result<User> {
        let base = &self.targets[target].http;
        let creds = json!({"username": name, "password": self.password});
        let mut path = "/api/register";
        for attempt in 0..8 {
            let resp = self
                .http
                .post(format!("{base}{path}"))
                .json(&creds)
                .send()
                .await
                .with_context(|| format!("POST {base}{path} for {name}"))?;
            let status = resp.status();
            match status {
                StatusCode::OK | StatusCode::CREATED => {
                    let cookie = session_cookie(resp.headers())
                        .ok_or_else(|| anyhow!("{path} for {name}: no Set-Cookie in the answer"))?;
                    return Ok(User {
                        name,
                        cookie,
                        target,
                    });
                }
                // Taken (a rerun with the same --user-prefix): sign in instead.
                StatusCode::CONFLICT if path == "/api/register" => path = "/api/login",
                StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE if attempt < 7 => {
                    tokio::time::sleep(Duration::from_millis(500 << attempt.min(3))).await;
                }
                _ => {
                    let body = resp.text().await.unwrap_or_default();
                    bail!("{path} for {name}: {status} {}", truncate(&body, 200));
                }
            }
        }
        bail!("{path} for {name}: still refused after retries")
    }

    /// `POST /api/rooms {name}` → the room's slug.
    pub async fn create_room(&self, user: &User, name: &str) -> Result<String> {
        #[derive(Deserialize)]
        struct Created {
            room: RoomRef,
        }
        #[derive(Deserialize)]
        struct RoomRef {
            slug: String,
        }
        let base = &self.targets[user.target].http;
        let resp = self
            .http
            .post(format!("{base}/api/rooms"))
            .header(COOKIE, &user.cookie)
            .json(&json!({ "name": name }))
            .send()
            .await
            .with_context(|| format!("POST {base}/api/rooms"))?;
        let status = resp.status();
        if !status.is_success() {
            let body = resp.text().await.unwrap_or_default();
            bail!(
                "POST /api/rooms {name:?}: {status} {}",
                truncate(&body, 200)
            );
        }
        let created: Created = resp.json().await.context("POST /api/rooms: answer")?;
        Ok(created.room.slug)
    }

    /// Creates `n` rooms named `{prefix} {tag} {i}`.
    pub async fn create_rooms(&self, owner: &User, tag: &str, n: usize) -> Result<Vec<String>> {
        let jobs = (0..n).map(|i| {
            let name = format!("{} {tag} {i}", self.prefix);
            async move { self.create_room(owner, &name).await }
        });
        let slugs = phase(
            &format!("creating {n} rooms"),
            self.phase_timeout,
            futures_util::stream::iter(jobs)
                .buffered(8)
                .collect::<Vec<_>>(),
        )
        .await?;
        slugs.into_iter().collect()
    }

    /// `GET /api/rooms/{slug}/messages?before=…&limit=100` as raw JSON.
    pub async fn messages_page(
        &self,
        user: &User,
        slug: &str,
        before: Option<u64>,
    ) -> Result<Value> {
        let base = &self.targets[user.target].http;
        let mut url = format!("{base}/api/rooms/{slug}/messages?limit=100");
        if let Some(b) = before {
            url.push_str(&format!("&before={b}"));
        }
        let resp = self
            .http
            .get(&url)
            .header(COOKIE, &user.cookie)
            .send()
            .await
            .with_context(|| format!("GET {url}"))?;
        let status = resp.status();
        if !status.is_success() {
            let body = resp.text().await.unwrap_or_default();
            bail!("GET {url}: {status} {}", truncate(&body, 200));
        }
        resp.json()
            .await
            .with_context(|| format!("GET {url}: answer"))
    }

    /// Whether the server keeps messages: the baseline answers `"store": false`.
    pub async fn has_store(&self, user: &User, slug: &str) -> Result<bool> {
        let page = self.messages_page(user, slug, None).await?;
        Ok(page.get("store").and_then(Value::as_bool) != Some(false))
    }

    /// `online` of one room from `GET /api/rooms`; `None` when the server has no such
    /// route (the baseline) or does not list the room.
    pub async fn room_online(&self, user: &User, slug: &str) -> Option<u64> {
        let base = &self.targets[user.target].http;
        let resp = self
            .http
            .get(format!("{base}/api/rooms"))
            .header(COOKIE, &user.cookie)
            .send()
            .await
            .ok()?;
        if !resp.status().is_success() {
            return None;
        }
        let list: Value = resp.json().await.ok()?;
        list.get("rooms")?
            .as_array()?
            .iter()
            .find(|r| r.get("slug").and_then(Value::as_str) == Some(slug))?
            .get("online")?
            .as_u64()
    }

    /// Opens `ws://…/ws/rooms/{slug}` as `user` and waits for `joined` and `history`.
    pub async fn connect(&self, user: &User, slug: &str, limit: Duration) -> Result<Joined> {
        let url = format!("{}/ws/rooms/{slug}", self.targets[user.target].ws);
        let work = async {
            let mut request = url.as_str().into_client_request()?;
            request.headers_mut().insert(COOKIE, user.cookie.parse()?);
            let (ws, _) =
                tokio_tungstenite::connect_async_with_config(request, Some(ws_config()), true)
                    .await
                    .with_context(|| format!("opening {url} as {}", user.name))?;
            wait_joined(ws).await
        };
        match tokio::time::timeout(limit, work).await {
            Ok(result) => result,
            Err(_) => bail!("{url} as {}: no joined+history within {limit:?}", user.name),
        }
    }
}

/// Small buffers (10,000+ sockets live in this process) and no write batching (latency).
fn ws_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(8 * 1024)
        .write_buffer_size(0)
}

/// A socket that has received `joined` and its `history`.
pub struct Joined {
    pub ws: Ws,
    pub history: Vec<HistMsg>,
}

async fn wait_joined(mut ws: Ws) -> Result<Joined> {
    let mut joined = false;
    while let Some(msg) = ws.next().await {
        let msg = msg.context("reading the socket before history")?;
        let Message::Text(text) = msg else {
            if let Message::Close(frame) = msg {
                bail!("closed before history: {frame:?}");
            }
            continue;
        };
        let frame: Frame = serde_json::from_str(text.as_str())
            .with_context(|| format!("unparsable frame {}", truncate(text.as_str(), 200)))?;
        match frame.kind {
            "joined" => joined = true,
            "history" if joined => {
                return Ok(Joined {
                    ws,
                    history: frame.messages.unwrap_or_default(),
                })
            }
            "error" => bail!("error frame before history: {}", text.as_str()),
            _ => {}
        }
    }
    bail!("socket ended before history")
}

/// The fields of a server frame the bench looks at; everything else is skipped.
#[derive(Deserialize)]
pub struct Frame<'a> {
    #[serde(rename = "type")]
    pub kind: &'a str,
    #[serde(default)]
    pub client_id: Option<String>,
    #[serde(default)]
    pub body: Option<String>,
    #[serde(default)]
    pub id: Option<u64>,
    #[serde(default)]
    pub seq: Option<u64>,
    #[serde(default)]
    pub code: Option<String>,
    #[serde(default)]
    pub retry_after_ms: Option<u64>,
    #[serde(default)]
    pub messages: Option<Vec<HistMsg>>,
}

#[derive(Deserialize, Debug, Clone)]
pub struct HistMsg {
    pub seq: u64,
    /// What the message replies to (CONTRACT §10), if anything.
    #[serde(default)]
    pub reply_to: Option<ReplyTo>,
}

#[derive(Deserialize, Debug, Clone)]
pub struct ReplyTo {
    pub excerpt: String,
}

pub fn send_frame(client_id: &str, body: &str) -> Message {
    Message::text(json!({"type": "send", "client_id": client_id, "body": body}).to_string())
}

/// A `send` replying to the message `reply_to` (its id).
pub fn reply_frame(client_id: &str, body: &str, reply_to: u64) -> Message {
    Message::text(
        json!({"type": "send", "client_id": client_id, "body": body, "reply_to": reply_to})
            .to_string(),
    )
}

pub fn ping_frame() -> Message {
    Message::text(r#"{"type":"ping"}"#)
}

/// Sends a close frame and waits briefly for the server's; never blocks for long.
pub async fn close(mut ws: Ws) {
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        ws.close(None).await?;
        while ws.next().await.is_some() {}
        Ok::<_, tokio_tungstenite::tungstenite::Error>(())
    })
    .await;
}

/// Waits (within the phase limit) for every member socket to report from `ready`: the
/// room it joined, or why it could not. Joined sockets per room, after saying how many
/// failed; an error when none joined at all.
pub async fn sockets_joined(
    ctx: &Ctx,
    scenario: &str,
    rooms: usize,
    mut ready: tokio::sync::mpsc::Receiver<Result<usize>>,
) -> Result<Vec<u64>> {
    let mut room_size = vec![0u64; rooms];
    let mut connect_errors = Vec::new();
    phase("opening sockets", ctx.phase_timeout, async {
        while let Some(r) = ready.recv().await {
            match r {
                Ok(room) => room_size[room] += 1,
                Err(e) => connect_errors.push(e),
            }
        }
    })
    .await?;
    if room_size.iter().sum::<u64>() == 0 {
        bail!("no socket could join: {:?}", connect_errors.first());
    }
    if let Some(e) = connect_errors.first() {
        crate::report::progress(
            ctx,
            format_args!(
                "{scenario}: {} sockets failed to join, first: {e:#}",
                connect_errors.len()
            ),
        );
    }
    Ok(room_size)
}

/// Runs one phase of a scenario under a time limit, naming it in the error.
pub async fn phase<T>(name: &str, limit: Duration, fut: impl Future<Output = T>) -> Result<T> {
    tokio::time::timeout(limit, fut).await.map_err(|_| {
        anyhow!(
            "{name}: did not finish within {} s (--timeout)",
            limit.as_secs_f64()
        )
    })
}

/// `name=value; other=value` from every `Set-Cookie` of an answer.
fn session_cookie(headers: &reqwest::header::HeaderMap) -> Option<String> {
    let pairs: Vec<&str> = headers
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| v.split(';').next())
        .map(str::trim)
        .filter(|kv| kv.contains('='))
        .collect();
    (!pairs.is_empty()).then(|| pairs.join("; "))
}

/// Parses one `--target`, refusing anything that is not loopback.
fn parse_target(raw: &str) -> Result<Target> {
    let raw = raw.trim().trim_end_matches('/');
    let url = Url::parse(raw).with_context(|| format!("--target {raw:?} is not a URL"))?;
    if url.scheme() != "http" {
        bail!("--target {raw}: only http:// targets are supported");
    }
    if url.path() != "/" && !url.path().is_empty() {
        bail!("--target {raw}: give the server's base URL, without a path");
    }
    let host = url.host_str().unwrap_or("");
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let host = match bare.parse::<IpAddr>() {
        Ok(ip) if ip.is_loopback() => host.to_owned(),
        // `localhost` could resolve to anything in /etc/hosts: pin it.
        Err(_) if host.eq_ignore_ascii_case("localhost") => "127.0.0.1".to_owned(),
        _ => bail!(
            "refusing --target {raw}: natter-bench only sends load to loopback addresses \
             (127.0.0.0/8, [::1] or localhost)"
        ),
    };
    let port = url.port_or_known_default().unwrap_or(80);
    Ok(Target {
        http: format!("http://{host}:{port}"),
        ws: format!("ws://{host}:{port}"),
    })
}

pub fn truncate(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_only() {
        assert_eq!(
            parse_target("http://127.0.0.1:8000").unwrap().ws,
            "ws://127.0.0.1:8000"
        );
        assert_eq!(
            parse_target("http://127.3.2.1:9/").unwrap().http,
            "http://127.3.2.1:9"
        );
        assert_eq!(
            parse_target("http://[::1]:8000").unwrap().ws,
            "ws://[::1]:8000"
        );
        assert_eq!(
            parse_target("http://localhost:8000").unwrap().http,
            "http://127.0.0.1:8000"
        );
        for bad in [
            "http://10.0.0.1:8000",
            "http://192.168.1.2",
            "http://example.com",
            "http://[::2]:80",
            "https://127.0.0.1",
            "127.0.0.1:8000",
        ] {
            assert!(parse_target(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn cookies_from_set_cookie() {
        let mut h = reqwest::header::HeaderMap::new();
        h.append(
            SET_COOKIE,
            "natter_session=abc; HttpOnly; Path=/".parse().unwrap(),
        );
        assert_eq!(session_cookie(&h).unwrap(), "natter_session=abc");
        h.append(SET_COOKIE, "other=1; Path=/".parse().unwrap());
        assert_eq!(session_cookie(&h).unwrap(), "natter_session=abc; other=1");
    }
}
