//! In-process adapters for a single `natter serve`: presence with its message cache, the
//! rate limiter and the fan-out bus; and the reference store the tests run the chat rules
//! on. Not mocks: they keep every promise of their ports.

mod bus;
mod rate_limiter;
mod room_state;
mod store;

pub use bus::MemoryBus;
pub use rate_limiter::{Clock, MemoryRateLimiter, SystemClock};
pub use room_state::MemoryRoomState;
pub use store::MemoryStore;
