//! The exact sliding-window limiter of CONTRACT §5, shared by every process.
//!
//! Key `{prefix}limit:{user_id}`: a ZSET of the user's accepted sends in the trailing 60 s,
//! score and member both the Redis `TIME` (ms) of the send, expiring 60 s after the last
//! one. `rate_limiter.lua` prunes, decides and records in one atomic step, on the one
//! clock every process shares, with the in-process limiter's arithmetic: accept when the
//! newest send is at least 1 s old and fewer than 10 remain, else refuse with
//! `retry_after = max(newest + 1 s, tenth-newest + 60 s) − now` and record nothing. Accepted
//! sends are at least 1 s apart, so a send's time is unique and is its [`SendSlot`];
//! `release` removes it.

use std::time::Duration;

use async_trait::async_trait;
use redis::aio::ConnectionManager;
use redis::Script;

use super::room_state::{connect_manager, deadline};
use crate::domain::UserId;
use crate::ports::{Admission, RateLimiter, SendSlot, Unavailable};

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

    fn key(&self, user: UserId) -> String {
        format!("{}limit:{}", self.prefix, user.0)
    }
}

#[async_trait]
impl RateLimiter for RedisRateLimiter {
    async fn acquire(&self, user: UserId) -> Result<Admission, Unavailable> {
        let mut conn = self.conn.clone();
        let (granted, value): (i64, i64) =
            deadline(self.script.key(self.key(user)).invoke_async(&mut conn)).await?;
        Ok(if granted == 1 {
            Admission::Granted(SendSlot(value))
        } else {
            Admission::Refused {
                retry_after: Duration::from_millis(value.max(0) as u64),
            }
        })
    }

    async fn release(&self, user: UserId, slot: SendSlot) -> Result<(), Unavailable> {
        let mut conn = self.conn.clone();
        deadline(
            redis::cmd("ZREM")
                .arg(self.key(user))
                .arg(slot.0)
                .query_async::<()>(&mut conn),
        )
        .await
    }
}
