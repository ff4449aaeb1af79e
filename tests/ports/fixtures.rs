//! What the port suites run on: a fixture type per adapter per port, and
//! [`PortFixture`], which `port_suite!` (main.rs) stamps every behaviour of a port out with.
//! The service-backed fixtures are in `postgres_fixture.rs` and `redis_fixture.rs`; the
//! bus's are beside its private recorder, in `bus.rs`.

use std::sync::Arc;

use natter::adapters::memory::{MemoryRateLimiter, MemoryRoomState, MemoryStore};
use natter::adapters::sqlite::SqliteStore;
use natter::ports::{RateLimiter, RoomState, Store};
use natter_test_support::missing_service;

/// One adapter of a port, made fresh for each test.
pub trait PortFixture: Sized {
    /// What each behaviour of the port is handed.
    type Port;
    /// The variable naming the service the adapter needs, if any. Its tests must carry
    /// `#[ignore = "needs VAR"]` (`port_suite!` refuses to compile otherwise), and fail
    /// when run without it.
    const NEEDS: Option<&'static str>;

    /// The adapter, with whatever it owns (a directory, a database, a Redis prefix): the
    /// test keeps the fixture until it ends, and dropping it cleans up.
    async fn make() -> Self;

    fn port(&self) -> Self::Port;

    /// The URL in the variable [`Self::NEEDS`] names.
    fn service_url() -> String {
        service_url(Self::NEEDS.expect("a fixture that needs no service has no URL"))
    }
}

/// The URL in `var`; a test run without it fails, naming it.
pub fn service_url(var: &str) -> String {
    std::env::var(var)
        .ok()
        .filter(|url| !url.is_empty())
        .unwrap_or_else(|| missing_service(var))
}

/// Whether a test's `#[ignore = …]` reason (`None` for no attribute) is the one `F` needs:
/// `"needs VAR"` for `NEEDS = Some("VAR")`, none for `None`. `port_suite!` asserts it at
/// compile time, so a service-backed adapter cannot run (and fail) in a plain `cargo test`.
pub const fn ignored_as_it_needs<F: PortFixture>(ignore: Option<&str>) -> bool {
    match (F::NEEDS, ignore) {
        (None, None) => true,
        (Some(var), Some(reason)) => {
            let (reason, var, prefix) = (reason.as_bytes(), var.as_bytes(), b"needs ");
            if reason.len() != prefix.len() + var.len() {
                return false;
            }
            let mut i = 0;
            while i < reason.len() {
                let expected = if i < prefix.len() {
                    prefix[i]
                } else {
                    var[i - prefix.len()]
                };
                if reason[i] != expected {
                    return false;
                }
                i += 1;
            }
            true
        }
        _ => false,
    }
}

// ---- the store ----

/// The reference store, in memory.
pub struct MemoryStoreFixture(Arc<dyn Store>);

impl PortFixture for MemoryStoreFixture {
    type Port = Arc<dyn Store>;
    const NEEDS: Option<&'static str> = None;

    async fn make() -> Self {
        MemoryStoreFixture(Arc::new(MemoryStore::new()))
    }

    fn port(&self) -> Arc<dyn Store> {
        self.0.clone()
    }
}

pub struct SqliteStoreFixture {
    store: Arc<dyn Store>,
    /// The database file's directory, removed when the test ends.
    _dir: tempfile::TempDir,
}

impl PortFixture for SqliteStoreFixture {
    type Port = Arc<dyn Store>;
    const NEEDS: Option<&'static str> = None;

    async fn make() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("natter.db").display());
        let store = SqliteStore::connect(&url)
            .await
            .expect("sqlite store opens");
        SqliteStoreFixture {
            store: Arc::new(store),
            _dir: dir,
        }
    }

    fn port(&self) -> Arc<dyn Store> {
        self.store.clone()
    }
}

// ---- presence and the cache ----

/// Every room-state fixture keeps this many messages per room.
pub const CAPACITY: usize = 5;

/// The room-state port as its behaviours get it: `state` is one process's adapter, and
/// `processes` is every process's on the same shared state, `state` first. An in-process
/// adapter is one process's state: it has one.
#[derive(Clone)]
pub struct RoomStates {
    pub state: Arc<dyn RoomState>,
    pub processes: Vec<Arc<dyn RoomState>>,
}

impl RoomStates {
    pub fn new(processes: Vec<Arc<dyn RoomState>>) -> RoomStates {
        RoomStates {
            state: processes[0].clone(),
            processes,
        }
    }
}

/// Presence and the cache in one mutex, as the chat service takes them: one adapter in
/// both roles.
pub struct MemoryRoomStateFixture(RoomStates);

impl PortFixture for MemoryRoomStateFixture {
    type Port = RoomStates;
    const NEEDS: Option<&'static str> = None;

    async fn make() -> Self {
        MemoryRoomStateFixture(RoomStates::new(vec![Arc::new(MemoryRoomState::new(
            CAPACITY,
        ))]))
    }

    fn port(&self) -> RoomStates {
        self.0.clone()
    }
}

// ---- the rate limiter ----

pub struct MemoryLimiterFixture(Arc<dyn RateLimiter>);

impl PortFixture for MemoryLimiterFixture {
    type Port = Arc<dyn RateLimiter>;
    const NEEDS: Option<&'static str> = None;

    async fn make() -> Self {
        MemoryLimiterFixture(Arc::new(MemoryRateLimiter::new()))
    }

    fn port(&self) -> Arc<dyn RateLimiter> {
        self.0.clone()
    }
}
