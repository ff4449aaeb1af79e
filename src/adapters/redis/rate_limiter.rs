//! The exact sliding-window limiter ([`Rule`]), shared by every process.
//!
//! Key `{prefix}limit:{rule}:{user_id}`: a ZSET of the user's accepted requests in the
//! rule's trailing window, score and member both the Redis `TIME` (ms) of the request,
//! expiring a window after the last one. `rate_limiter.lua` prunes, decides and records in
//! one atomic step, on the one clock every process shares, with [`Rule::wait_ms`]'s
//! arithmetic: accept when the newest is at least `min_gap` old and fewer than
//! `per_window` remain, else refuse with `retry_after = max(newest + min_gap,
//! per_window-th newest + window) − now` and record nothing. Accepted requests are at
//! least 1 ms apart, so a request's time is unique and is its [`SendSlot`]; `release`
//! removes it.

use std::time::Duration;

use async_trait::async_trait;
use redis::aio::ConnectionManager;
use redis::Script;

use super::connection::{connect_manager, deadline};
use crate::domain::UserId;
use crate::ports::{Admission, RateLimiter, Rule, SendSlot, Unavailable};

pub struct RedisRateLimiter {
    conn: ConnectionManager,
    script: Script,
    prefix: String,
}

impl RedisRateLimiter {
    pub async fn connect(url: &str, key_prefix: &str) -> Result<RedisRateLimiter, Unavailable> {
        Ok(RedisRateLimiter {
            conn: connect_manager(url).await?,
            script: Script::new(include_str!("rate_limiter.lua")),
            prefix: key_prefix.to_owned(),
        })
    }

    fn key(&self, rule: &Rule, user: UserId) -> String {
        format!("{}limit:{}:{}", self.prefix, rule.name, user.0)
    }
}

#[async_trait]
impl RateLimiter for RedisRateLimiter {
    async fn acquire(&self, rule: &Rule, user: UserId) -> Result<Admission, Unavailable> {
        let mut conn = self.conn.clone();
        let mut invocation = self.script.key(self.key(rule, user));
        invocation
            .arg(rule.min_gap_ms())
            .arg(rule.window_ms())
            .arg(rule.per_window);
        let (granted, value): (i64, i64) = deadline(invocation.invoke_async(&mut conn)).await?;
        Ok(if granted == 1 {
            Admission::Granted(SendSlot(value))
        } else {
            Admission::Refused {
                retry_after: Duration::from_millis(value.max(0) as u64),
            }
        })
    }

    async fn release(&self, rule: &Rule, user: UserId, slot: SendSlot) -> Result<(), Unavailable> {
        let mut conn = self.conn.clone();
        deadline(
            redis::cmd("ZREM")
                .arg(self.key(rule, user))
                .arg(slot.0)
                .query_async::<()>(&mut conn),
        )
        .await
    }
}
