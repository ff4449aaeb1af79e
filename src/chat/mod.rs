//! The chat service: the product's rules. Imports no axum, sqlx or redis.
//!
//! [`ChatService`] holds one `Arc<dyn Port>` per port and the process's [`hub`]; its
//! methods (spread over the files of this module by resource) are what the HTTP edge calls.

mod accounts;
mod budget;
mod error;
mod hub;
mod limits;
mod membership;
mod messages;
mod rooms;
mod throttle;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

pub use accounts::{AuthSession, KnownDevice, NewSession};
pub use error::ChatError;
pub use hub::{CloseReason, Delivery, SharedFrame};
pub use limits::Limits;
pub use membership::Membership;
pub use messages::Ack;
pub use rooms::{RoomList, RoomListing};

use crate::ports::{Bus, MessageCache, Presence, RateLimiter, RoomState, Store, StoreError};
use crate::telemetry::Metrics;

/// A store call that has not answered by then fails with `unavailable` (CONTRACT §7).
const STORE_TIMEOUT: Duration = Duration::from_secs(5);

/// The numbers the rules depend on.
#[derive(Debug, Clone)]
pub struct ChatSettings {
    pub history_on_join: usize,
    pub cache_messages: usize,
    pub session_ttl: Duration,
    pub limits: Limits,
}

/// The ports the service talks to.
pub struct Ports {
    pub store: Arc<dyn Store>,
    /// Presence and the message cache: one adapter ([`RoomState`]).
    pub room_state: Arc<dyn RoomState>,
    pub limiter: Arc<dyn RateLimiter>,
    pub bus: Arc<dyn Bus>,
    /// A process-local limiter used only while a shared `limiter` is unreachable, so chat
    /// keeps working through a Redis restart (limits then hold per process, not across
    /// processes). `None` when `limiter` is process-local itself.
    pub fallback_limiter: Option<Arc<dyn RateLimiter>>,
}

pub struct ChatService {
    store: Arc<dyn Store>,
    cache: Arc<dyn MessageCache>,
    presence: Arc<dyn Presence>,
    limiter: Arc<dyn RateLimiter>,
    bus: Arc<dyn Bus>,
    hub: Arc<hub::Hub>,
    metrics: Metrics,
    settings: ChatSettings,
    accounts: accounts::Accounts,
    /// Stored messages the cache did not take (its service was down); retried by
    /// [`ChatService::maintain`] so an active room's cache does not keep a hole.
    uncached: std::sync::Mutex<Vec<crate::domain::Message>>,
    fallback_limiter: Option<Arc<dyn RateLimiter>>,
    known_rooms: rooms::KnownRooms,
    /// REST history reads per user (CONTRACT §7a).
    history_reads: budget::Budget<crate::domain::UserId>,
}

impl ChatService {
    pub fn new(ports: Ports, settings: ChatSettings, metrics: Metrics) -> ChatService {
        let hub = hub::Hub::new(ports.store.clone(), metrics.clone());
        ports.bus.start(hub.clone());
        ChatService {
            store: ports.store,
            // The same adapter under each of its two roles.
            cache: ports.room_state.clone(),
            presence: ports.room_state,
            limiter: ports.limiter,
            bus: ports.bus,
            hub,
            metrics,
            accounts: accounts::Accounts::new(&settings.limits),
            history_reads: budget::Budget::new(
                settings.limits.history_reads_per_second,
                Duration::from_secs(1),
            ),
            settings,
            uncached: std::sync::Mutex::new(Vec::new()),
            fallback_limiter: ports.fallback_limiter,
            known_rooms: rooms::KnownRooms::default(),
        }
    }

    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// True while the store and the shared room state (Redis, when configured) answer
    /// (`/readyz`).
    pub async fn ready(&self) -> bool {
        let store = tokio::time::timeout(STORE_TIMEOUT, self.store.ping());
        let presence = tokio::time::timeout(STORE_TIMEOUT, self.presence.ping());
        matches!(tokio::join!(store, presence), (Ok(Ok(())), Ok(Ok(()))))
    }

    /// Periodic upkeep, every [`MAINTAIN_EVERY`](crate::ports::MAINTAIN_EVERY): presence
    /// heartbeats and the removal of members of processes that died (announced as
    /// `member_left`), and another try at caching messages whose caching failed.
    pub async fn maintain(&self) {
        match self.presence.maintain().await {
            Ok(departures) => {
                for departure in departures {
                    self.announce_departure(departure).await;
                }
            }
            Err(e) => tracing::warn!(error = %e, "presence upkeep failed"),
        }
        self.retry_uncached().await;
    }

    /// Lets pending writes finish and closes the store (at shutdown).
    pub async fn close(&self) {
        self.store.close().await;
    }
}

/// Runs a store call with the service's deadline; a timeout is `Unavailable`.
async fn store_call<T>(call: impl Future<Output = Result<T, StoreError>>) -> Result<T, ChatError> {
    match tokio::time::timeout(STORE_TIMEOUT, call).await {
        Ok(result) => result.map_err(ChatError::from),
        Err(_) => Err(ChatError::Unavailable(
            "the store did not answer in time".into(),
        )),
    }
}
