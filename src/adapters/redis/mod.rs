//! Redis adapters: presence + message cache (one adapter, Lua scripts), the rate limiter,
//! and the fan-out bus (pub/sub, one subscriber connection per process).
//! Every key starts with `REDIS_KEY_PREFIX`; `connection.rs` holds what they share
//! (timeouts, connecting, the call deadline, errors).

mod bus;
mod connection;
mod rate_limiter;
mod room_state;

pub use bus::RedisBus;
pub use rate_limiter::RedisRateLimiter;
pub use room_state::RedisRoomState;
