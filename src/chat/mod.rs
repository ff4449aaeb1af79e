//! The chat service: the product's rules. Imports no axum, sqlx or redis.
//!
//! One area per resource, each a struct owning the ports it uses: [`Accounts`],
//! [`Rooms`], [`Members`] (who belongs to a room: roles, removals, bans), [`Messages`],
//! [`Visits`] (sockets in a room: presence, with the process's [`hub`]). Who may see a
//! room is decided in one place, [`access`], shared by the areas that take a slug.
//! [`ChatService`] builds them from the [`Ports`] and is what the HTTP edge holds.

mod access;
mod accounts;
mod budget;
mod crowd;
mod error;
mod first_visits;
mod hub;
mod limiter;
mod limits;
mod members;
mod messages;
mod reading;
mod rooms;
mod throttle;
mod visits;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

pub use access::{Admins, RoomAccess};
pub use accounts::{Accounts, AuthSession, KnownDevice, NewSession};
pub use error::ChatError;
pub use hub::{CloseReason, Delivery, SharedFrame, TypingList};
pub use limits::Limits;
pub use members::{BanListing, MemberListing, Members};
pub use messages::{Change, Messages, Sent, Updates};
pub use reading::Reading;
pub use rooms::{Entry, RoomList, RoomListing, Rooms};
pub use visits::{Visit, Visits};

use crate::ports::{Bus, RateLimiter, RoomState, Store, StoreError};
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
    /// `ADMIN_USERNAMES` (CONTRACT §9).
    pub admins: Admins,
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

/// The chat rules, one area per resource; each area owns the ports it uses. The HTTP
/// edge calls `chat.accounts()`, `chat.rooms()`, `chat.members()`, `chat.messages()`,
/// `chat.reading()` and `chat.visits()`; what spans them (readiness, upkeep, shutdown) is here.
pub struct ChatService {
    accounts: Accounts,
    rooms: Rooms,
    members: Members,
    messages: Messages,
    reading: Reading,
    visits: Visits,
    store: Arc<dyn Store>,
    room_state: Arc<dyn RoomState>,
    metrics: Metrics,
}

impl ChatService {
    pub fn new(ports: Ports, settings: ChatSettings, metrics: Metrics) -> ChatService {
        let hub = hub::Hub::new(
            ports.store.clone(),
            metrics.clone(),
            settings.limits.typing_expiry,
        );
        ports.bus.start(hub.clone());
        let limits = &settings.limits;
        let access = access::Access::new(ports.store.clone(), settings.admins.clone());
        ChatService {
            accounts: Accounts::new(
                ports.store.clone(),
                ports.bus.clone(),
                settings.session_ttl,
                limits,
            ),
            rooms: Rooms::new(&ports, access.clone(), limits),
            members: Members::new(&ports, access),
            messages: Messages::new(&ports, limits, metrics.clone()),
            reading: Reading::new(ports.store.clone(), ports.bus.clone()),
            visits: Visits::new(&ports, hub, &settings, metrics.clone()),
            store: ports.store,
            room_state: ports.room_state,
            metrics,
        }
    }

    /// Registration, login, sessions.
    pub fn accounts(&self) -> &Accounts {
        &self.accounts
    }

    /// Creating, finding and listing rooms; DMs.
    pub fn rooms(&self) -> &Rooms {
        &self.rooms
    }

    /// Who belongs to a room: roles, adding, removing, bans.
    pub fn members(&self) -> &Members {
        &self.members
    }

    /// Sending and reading messages.
    pub fn messages(&self) -> &Messages {
        &self.messages
    }

    /// Sockets joining and leaving rooms: presence.
    pub fn reading(&self) -> &Reading {
        &self.reading
    }

    pub fn visits(&self) -> &Visits {
        &self.visits
    }

    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// True while the store and the shared room state (Redis, when configured) answer
    /// (`/readyz`).
    pub async fn ready(&self) -> bool {
        let store = tokio::time::timeout(STORE_TIMEOUT, self.store.ping());
        let room_state = tokio::time::timeout(STORE_TIMEOUT, self.room_state.ping());
        matches!(tokio::join!(store, room_state), (Ok(Ok(())), Ok(Ok(()))))
    }

    /// Periodic upkeep, every [`MAINTAIN_EVERY`](crate::ports::MAINTAIN_EVERY): presence
    /// heartbeats and the removal of members of processes that died (announced as
    /// `member_left`), and another try at caching messages whose caching failed.
    pub async fn maintain(&self) {
        self.visits.maintain().await;
        self.messages.retry_uncached().await;
    }

    /// Lets pending writes finish and closes the store (at shutdown).
    pub async fn close(&self) {
        self.store.close().await;
    }
}

/// The user someone named: `UnknownUser` for a name no account has (or could have).
async fn user_named(store: &dyn Store, username: &str) -> Result<crate::domain::User, ChatError> {
    let name =
        crate::domain::Username::parse(username.trim()).map_err(|_| ChatError::UnknownUser)?;
    store_call(store.find_user(&name))
        .await?
        .ok_or(ChatError::UnknownUser)
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
