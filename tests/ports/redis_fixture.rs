//! Redis fixtures: each test gets a key prefix of its own on `TEST_REDIS_URL`, deleted with
//! the fixture.

use std::sync::Arc;

use natter::adapters::redis::{RedisRateLimiter, RedisRoomState};
use natter::ports::{MessageCache, Presence, RateLimiter, RoomState};

use crate::fixtures::CAPACITY;
use natter_test_support::missing_service;
pub use natter_test_support::TestRedis;

/// A fresh prefix on `TEST_REDIS_URL`.
pub fn test_redis() -> TestRedis {
    match std::env::var("TEST_REDIS_URL") {
        Ok(url) => TestRedis::new(&url),
        Err(_) => missing_service("Redis (TEST_REDIS_URL)"),
    }
}

/// One process's presence + cache on the test's prefix.
pub async fn room_state(redis: &TestRedis) -> RedisRoomState {
    RedisRoomState::connect(&redis.url, &redis.prefix, CAPACITY)
        .await
        .expect("Redis answers")
}

pub async fn rate_limiter(redis: &TestRedis) -> Arc<RedisRateLimiter> {
    Arc::new(
        RedisRateLimiter::connect(&redis.url, &redis.prefix)
            .await
            .expect("Redis answers"),
    )
}

/// Like [`crate::fixtures::RoomStateFixture`], plus the prefix it owns: keep it alive for
/// the whole test.
pub struct RedisRoomStateFixture {
    pub presence: Arc<dyn Presence>,
    pub cache: Arc<dyn MessageCache>,
    /// Deletes the prefix's keys when the test ends.
    _redis: TestRedis,
}

pub async fn redis_room_state() -> RedisRoomStateFixture {
    let redis = test_redis();
    let state: Arc<dyn RoomState> = Arc::new(room_state(&redis).await);
    RedisRoomStateFixture {
        presence: state.clone(),
        cache: state,
        _redis: redis,
    }
}

pub struct RedisLimiterFixture {
    pub limiter: Arc<dyn RateLimiter>,
    /// Deletes the prefix's keys when the test ends.
    _redis: TestRedis,
}

pub async fn redis_rate_limiter() -> RedisLimiterFixture {
    let redis = test_redis();
    RedisLimiterFixture {
        limiter: rate_limiter(&redis).await,
        _redis: redis,
    }
}
