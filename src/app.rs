//! Assembly: picks the adapters for a [`Config`], builds the chat service and the router,
//! binds, serves, and shuts down in order.
//!
//! No statics: two `App`s can run in one process (the integration tests do).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
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
use crate::http::{self, AppState, OriginPolicy, WsSettings};
use crate::ports::{Store, StoreError, Unavailable, MAINTAIN_EVERY};
use crate::telemetry::Metrics;

/// Clients that have not sent a complete request head by then are dropped.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Pending connections the kernel queues; tokio's default of 128 drops SYNs in a join storm.
const LISTEN_BACKLOG: i32 = 4096;
/// How long shutdown waits for sockets and requests to finish, each.
const DRAIN_WAIT: Duration = Duration::from_secs(4);

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
                    cache: room_state.clone(),
                    presence: room_state,
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
                    cache: room_state.clone(),
                    presence: room_state,
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
            registrations_per_address_per_hour: config.registrations_per_address_per_hour,
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
        let router = http::router(state.clone());
        let listener = bind(config.bind)?;
        Ok(App {
            listener,
            router,
            state,
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
        } = self;
        let connections = TaskTracker::new();
        let upkeep = tokio::spawn(upkeep(state.chat.clone(), state.shutdown.clone()));
        loop {
            tokio::select! {
                _ = state.shutdown.cancelled() => break,
                accepted = listener.accept() => match accepted {
                    Ok((stream, peer)) => {
                        connections.spawn(serve_connection(stream, peer, router.clone(), state.shutdown.clone()));
                    }
                    Err(e) => {
                        // Usually out of file descriptors: back off instead of spinning.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
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
    stream: TcpStream,
    peer: SocketAddr,
    router: Router,
    shutdown: CancellationToken,
) {
    // Without it, small frames wait for delayed ACKs (40 ms stalls in fan-out).
    let _ = stream.set_nodelay(true);
    let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
        request.extensions_mut().insert(ConnectInfo(peer));
        router.clone().oneshot(request)
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT);
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
