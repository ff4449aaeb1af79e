//! Assembly: picks the adapters for a [`Config`], builds the chat service and the router,
//! binds, serves, and shuts down in order.
//!
//! No statics: two `App`s can run in one process (the integration tests do).

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::extract::ConnectInfo;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

use crate::adapters::memory::{MemoryBus, MemoryRateLimiter, MemoryRoomState};
use crate::adapters::postgres::PgStore;
use crate::adapters::redis::{RedisBus, RedisRateLimiter, RedisRoomState};
use crate::adapters::sqlite::SqliteStore;
use crate::chat::{ChatService, ChatSettings, Ports};
use crate::config::{Config, ConfigError, DatabaseUrl, RedisUrl};
use crate::http::{self, AppState, EdgeRules, OriginPolicy, WsSettings};
use crate::ports::{Store, StoreError, Unavailable, MAINTAIN_EVERY};
use crate::telemetry::Metrics;

/// Pending connections the kernel queues; tokio's default of 128 drops SYNs in a join storm.
const LISTEN_BACKLOG: i32 = 4096;
/// How long shutdown waits for sockets and requests to finish, each.
const DRAIN_WAIT: Duration = Duration::from_secs(4);
/// Out of descriptors, accept is retried this often: soon enough that a waiting client
/// (a health probe) gets in as soon as one is free, rarely enough to cost nothing.
const ACCEPT_RETRY: Duration = Duration::from_millis(50);
/// A failure that repeats (no descriptors, one address over its cap) is logged at most
/// this often, with a count, instead of once per connection.
const LOG_REPEATS_EVERY: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("configuration: {0}")]
    Config(#[from] ConfigError),
    #[error("store: {0}")]
    Store(#[from] StoreError),
    #[error("redis: {0}")]
    Redis(#[from] Unavailable),
    #[error("cannot listen: {0}")]
    Bind(#[from] std::io::Error),
}

pub struct App {
    listener: TcpListener,
    router: Router,
    state: AppState,
    connections: Connections,
}

/// How connections are admitted and served.
#[derive(Clone)]
struct Connections {
    per_address: AddressCounts,
    head_timeout: Duration,
}

async fn open_store(config: &Config) -> Result<Arc<dyn Store>, StartError> {
    match &config.database {
        DatabaseUrl::Sqlite(url) => Ok(Arc::new(SqliteStore::connect(url).await?)),
        DatabaseUrl::Postgres(url) => Ok(Arc::new(PgStore::connect(url).await?)),
    }
}

/// `natter migrate`: applies the store's migrations and returns.
pub async fn migrate(config: &Config) -> Result<(), StartError> {
    match &config.database {
        DatabaseUrl::Sqlite(url) => Ok(SqliteStore::migrate(url).await?),
        DatabaseUrl::Postgres(url) => Ok(PgStore::migrate(url).await?),
    }
}

fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(LISTEN_BACKLOG)?;
    TcpListener::from_std(socket.into())
}

impl App {
    /// Opens the store, builds everything and binds; serving starts with [`App::run`].
    pub async fn build(config: Config) -> Result<App, StartError> {
        if config.secret_key.generated {
            tracing::warn!("SECRET_KEY is not set: using a random key, so forms open before a restart will fail after it");
        }
        let metrics = Metrics::new();
        let store = open_store(&config).await?;
        let ports = match &config.redis_url {
            None => {
                let room_state = Arc::new(MemoryRoomState::new(config.cache_messages));
                Ports {
                    store,
                    room_state,
                    limiter: Arc::new(MemoryRateLimiter::new()),
                    bus: Arc::new(MemoryBus::new()),
                    fallback_limiter: None,
                }
            }
            Some(RedisUrl(url)) => {
                let prefix = &config.redis_key_prefix;
                let room_state =
                    Arc::new(RedisRoomState::connect(url, prefix, config.cache_messages).await?);
                Ports {
                    store,
                    room_state,
                    limiter: Arc::new(RedisRateLimiter::connect(url, prefix).await?),
                    bus: Arc::new(RedisBus::connect(url, prefix).await?),
                    fallback_limiter: Some(Arc::new(MemoryRateLimiter::new())),
                }
            }
        };
        let settings = ChatSettings {
            history_on_join: config.history_on_join,
            cache_messages: config.cache_messages,
            session_ttl: config.session_ttl,
            limits: config.limits.clone(),
            admins: config.admins(),
        };
        let chat = Arc::new(ChatService::new(ports, settings, metrics));
        let state = AppState {
            chat,
            secret_key: Arc::new(config.secret_key.clone()),
            origins: Arc::new(OriginPolicy::new(config.allowed_origins.clone())),
            trusted_proxies: Arc::new(config.trusted_proxies.clone()),
            shutdown: CancellationToken::new(),
            sockets: TaskTracker::new(),
            ws: Arc::new(WsSettings::new(&config)),
        };
        let router = http::router(
            state.clone(),
            EdgeRules {
                allowed_hosts: config.allowed_hosts.clone(),
                request_body_timeout: config.request_body_timeout,
            },
        );
        let listener = bind(config.bind)?;
        Ok(App {
            listener,
            router,
            state,
            connections: Connections {
                per_address: AddressCounts::new(config.max_connections_per_address),
                head_timeout: config.request_head_timeout,
            },
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    /// Cancelling it stops the app: no new connections, sockets closed with 1001.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.state.shutdown.clone()
    }

    /// Serves until the shutdown token is cancelled, then drains and closes the store.
    pub async fn run(self) {
        let App {
            listener,
            router,
            state,
            connections: admission,
        } = self;
        let connections = TaskTracker::new();
        let upkeep = tokio::spawn(upkeep(state.chat.clone(), state.shutdown.clone()));
        let mut out_of_descriptors = Repeats::new("accept failed: out of file descriptors (or socket memory); retrying, serving the open connections meanwhile");
        let mut over_address_cap =
            Repeats::new("connection refused: its address has MAX_CONNECTIONS_PER_ADDRESS open");
        loop {
            tokio::select! {
                _ = state.shutdown.cancelled() => break,
                accepted = listener.accept() => match accepted {
                    Ok((stream, peer)) => match admission.per_address.admit(peer.ip()) {
                        Some(slot) => {
                            let stream = CountedStream { stream, _slot: slot };
                            connections.spawn(serve_connection(stream, peer, router.clone(), admission.head_timeout, state.shutdown.clone()));
                        }
                        // Closed at once: a refusal costs this address nothing to repeat and
                        // the server nothing to send.
                        None => over_address_cap.note(),
                    },
                    Err(e) if is_out_of_descriptors(&e) => {
                        // Pending clients stay queued in the kernel until a descriptor is
                        // free (the head timeout sheds idle connections); no busy loop.
                        out_of_descriptors.note();
                        tokio::time::sleep(ACCEPT_RETRY).await;
                    }
                    // A client that gave up while queued (ECONNABORTED and the like).
                    Err(e) => tracing::debug!(error = %e, "accept failed"),
                },
            }
        }
        drop(listener);
        tracing::info!("shutting down: closing sockets");
        state.sockets.close();
        connections.close();
        if tokio::time::timeout(DRAIN_WAIT, state.sockets.wait())
            .await
            .is_err()
        {
            tracing::warn!("some sockets did not close in time");
        }
        if tokio::time::timeout(DRAIN_WAIT, connections.wait())
            .await
            .is_err()
        {
            tracing::warn!("some requests did not finish in time");
        }
        let _ = upkeep.await;
        state.chat.close().await;
        tracing::info!("stopped");
    }
}

/// Runs the chat service's periodic upkeep until shutdown.
async fn upkeep(chat: Arc<ChatService>, shutdown: CancellationToken) {
    let mut every = tokio::time::interval(MAINTAIN_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = every.tick() => chat.maintain().await,
        }
    }
}

async fn serve_connection(
    stream: CountedStream,
    peer: SocketAddr,
    router: Router,
    head_timeout: Duration,
    shutdown: CancellationToken,
) {
    // Without it, small frames wait for the peer's delayed ACKs (Nagle), stalling fan-out.
    let _ = stream.stream.set_nodelay(true);
    let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
        request.extensions_mut().insert(ConnectInfo(peer));
        router.clone().oneshot(request)
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        // hyper starts this timer whenever it waits for a head, so it also closes a
        // keep-alive connection left idle between requests.
        .header_read_timeout(head_timeout);
    let connection = builder
        .serve_connection(TokioIo::new(stream), service)
        .with_upgrades();
    tokio::pin!(connection);
    tokio::select! {
        _ = connection.as_mut() => {}
        _ = shutdown.cancelled() => {
            connection.as_mut().graceful_shutdown();
            let _ = connection.await;
        }
    }
}

fn is_out_of_descriptors(error: &io::Error) -> bool {
    matches!(
        error.raw_os_error(),
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
    )
}

/// Open connections per client address (CONTRACT §7a "Connections").
#[derive(Clone)]
struct AddressCounts {
    open: Arc<Mutex<HashMap<IpAddr, usize>>>,
    max: usize,
}

impl AddressCounts {
    fn new(max: usize) -> AddressCounts {
        AddressCounts {
            open: Arc::default(),
            max,
        }
    }

    /// A slot for one more connection from `ip`, or `None` when it has `max` open.
    fn admit(&self, ip: IpAddr) -> Option<AddressSlot> {
        // An IPv4 client on a dual-stack socket is the same client as over IPv4.
        let ip = ip.to_canonical();
        let mut open = self.open.lock().expect("address counts lock");
        let count = open.entry(ip).or_insert(0);
        if *count >= self.max {
            return None;
        }
        *count += 1;
        Some(AddressSlot {
            counts: self.open.clone(),
            ip,
        })
    }
}

/// One counted connection; dropping it frees the slot.
struct AddressSlot {
    counts: Arc<Mutex<HashMap<IpAddr, usize>>>,
    ip: IpAddr,
}

impl Drop for AddressSlot {
    fn drop(&mut self) {
        let mut open = self.counts.lock().expect("address counts lock");
        if let Some(count) = open.get_mut(&self.ip) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

/// A TCP stream that holds its address slot for as long as the stream itself lives. An
/// upgraded WebSocket outlives hyper's connection future but keeps this stream, so it
/// stays counted until the socket is closed.
struct CountedStream {
    stream: TcpStream,
    _slot: AddressSlot,
}

impl AsyncRead for CountedStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for CountedStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}

/// A warning for a failure that can repeat thousands of times a second: logged the first
/// time, then at most once per [`LOG_REPEATS_EVERY`] with how often it happened.
struct Repeats {
    what: &'static str,
    last_logged: Option<Instant>,
    unlogged: u64,
}

impl Repeats {
    fn new(what: &'static str) -> Repeats {
        Repeats {
            what,
            last_logged: None,
            unlogged: 0,
        }
    }

    fn note(&mut self) {
        self.unlogged += 1;
        if self
            .last_logged
            .is_some_and(|at| at.elapsed() < LOG_REPEATS_EVERY)
        {
            return;
        }
        tracing::warn!(times = self.unlogged, "{}", self.what);
        self.last_logged = Some(Instant::now());
        self.unlogged = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_gets_its_slots_back_when_connections_end() {
        let counts = AddressCounts::new(2);
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let mapped: IpAddr = "::ffff:192.0.2.1".parse().unwrap();
        let first = counts.admit(a).unwrap();
        let _second = counts.admit(mapped).expect("the same client over IPv6");
        assert!(counts.admit(a).is_none(), "a third is over the cap");
        assert!(counts.admit("192.0.2.2".parse().unwrap()).is_some());
        drop(first);
        assert!(counts.admit(a).is_some());
    }
}
