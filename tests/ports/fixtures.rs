use std::sync::Arc;

use natter::adapters::memory::{MemoryRateLimiter, MemoryRoomState};
use natter::adapters::sqlite::SqliteStore;
use natter::ports::{MessageCache, Presence, RateLimiter, Store};

/// A skipped service-backed test: loud, and a failure under `NATTER_REQUIRE_ALL=1`.
#[allow(dead_code)]
pub fn skip(what: &str) {
    if std::env::var("NATTER_REQUIRE_ALL").is_ok_and(|v| v == "1") {
        panic!("{what} is required (NATTER_REQUIRE_ALL=1) but not configured");
    }
    eprintln!("SKIPPED: {what} is not configured; this test did not run");
}

pub struct StoreFixture {
    pub store: Arc<dyn Store>,
    _dir: tempfile::TempDir,
}

pub async fn sqlite_store() -> Option<StoreFixture> {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("natter.db").display());
    let store = SqliteStore::connect(&url)
        .await
        .expect("sqlite store opens");
    Some(StoreFixture {
        store: Arc::new(store),
        _dir: dir,
    })
}

/// Presence and cache are one adapter: the last leave deletes the cache atomically.
pub struct RoomStateFixture {
    pub presence: Arc<dyn Presence>,
    pub cache: Arc<dyn MessageCache>,
}

/// Every room-state fixture keeps this many messages per room.
pub const CAPACITY: usize = 5;

pub async fn memory_room_state() -> Option<RoomStateFixture> {
    let state = Arc::new(MemoryRoomState::new(CAPACITY));
    Some(RoomStateFixture {
        presence: state.clone(),
        cache: state,
    })
}

pub async fn memory_rate_limiter() -> Option<Arc<dyn RateLimiter>> {
    Some(Arc::new(MemoryRateLimiter::new()))
}
