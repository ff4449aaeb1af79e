//! Redis fixtures: each test gets a key prefix of its own on `TEST_REDIS_URL`, deleted with
//! the fixture.

use std::sync::Arc;

use natter::adapters::redis::{RedisRateLimiter, RedisRoomState};
use natter::ports::{RateLimiter, RoomState};
pub use natter_test_support::TestRedis;

use crate::fixtures::{service_url, PortFixture, RoomStates, CAPACITY};

/// A fresh prefix on `TEST_REDIS_URL`.
pub fn test_redis() -> TestRedis {
    TestRedis::new(&service_url("TEST_REDIS_URL"))
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

/// Two processes' presence + cache on one prefix: what one process records, the other
/// sees.
pub struct RedisRoomStateFixture {
    states: RoomStates,
    /// Deletes the prefix's keys when the test ends.
    pub redis: TestRedis,
}

impl PortFixture for RedisRoomStateFixture {
    type Port = RoomStates;
    const NEEDS: Option<&'static str> = Some("TEST_REDIS_URL");

    async fn make() -> Self {
        let redis = TestRedis::new(&Self::service_url());
        let mut processes: Vec<Arc<dyn RoomState>> = Vec::new();
        for _ in 0..2 {
            processes.push(Arc::new(room_state(&redis).await));
        }
        RedisRoomStateFixture {
            states: RoomStates::new(processes),
            redis,
        }
    }

    fn port(&self) -> RoomStates {
        self.states.clone()
    }
}

pub struct RedisLimiterFixture {
    limiter: Arc<dyn RateLimiter>,
    /// Deletes the prefix's keys when the test ends.
    _redis: TestRedis,
}

impl PortFixture for RedisLimiterFixture {
    type Port = Arc<dyn RateLimiter>;
    const NEEDS: Option<&'static str> = Some("TEST_REDIS_URL");

    async fn make() -> Self {
        let redis = TestRedis::new(&Self::service_url());
        RedisLimiterFixture {
            limiter: rate_limiter(&redis).await,
            _redis: redis,
        }
    }

    fn port(&self) -> Arc<dyn RateLimiter> {
        self.limiter.clone()
    }
}
