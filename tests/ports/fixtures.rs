use std::sync::Arc;

use natter::adapters::memory::{MemoryRateLimiter, MemoryRoomState, MemoryStore};
use natter::adapters::sqlite::SqliteStore;
use natter::ports::{MessageCache, Presence, RateLimiter, RoomState, Store};

pub struct StoreFixture {
    pub store: Arc<dyn Store>,
    /// SQLite's directory, removed when the test ends.
    _dir: Option<tempfile::TempDir>,
}

/// The reference store, in memory.
pub async fn memory_store() -> StoreFixture {
    StoreFixture {
        store: Arc::new(MemoryStore::new()),
        _dir: None,
    }
}

pub async fn sqlite_store() -> StoreFixture {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("natter.db").display());
    let store = SqliteStore::connect(&url)
        .await
        .expect("sqlite store opens");
    StoreFixture {
        store: Arc::new(store),
        _dir: Some(dir),
    }
}

/// Presence and cache are one adapter ([`RoomState`]): the last leave deletes the cache
/// atomically.
pub struct RoomStateFixture {
    pub presence: Arc<dyn Presence>,
    pub cache: Arc<dyn MessageCache>,
}

/// Every room-state fixture keeps this many messages per room.
pub const CAPACITY: usize = 5;

pub async fn memory_room_state() -> RoomStateFixture {
    // As the chat service takes it: one adapter in both roles.
    let state: Arc<dyn RoomState> = Arc::new(MemoryRoomState::new(CAPACITY));
    RoomStateFixture {
        presence: state.clone(),
        cache: state,
    }
}

pub async fn memory_rate_limiter() -> Arc<dyn RateLimiter> {
    Arc::new(MemoryRateLimiter::new())
}
