//! The per-user send limiter of CONTRACT.md §5.

use std::time::Duration;

use async_trait::async_trait;

use super::Unavailable;
use crate::domain::UserId;

/// The accepted send's place in the user's window, so it can be given back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SendSlot(pub i64);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    Granted(SendSlot),
    /// Waiting `retry_after` is enough for both rules.
    Refused {
        retry_after: Duration,
    },
}

/// Accept a send only if 1 s has passed since the user's previous accepted send and fewer
/// than 10 were accepted in the trailing 60 s. Checking and recording is one atomic step.
#[async_trait]
pub trait RateLimiter: Send + Sync + 'static {
    async fn acquire(&self, user: UserId) -> Result<Admission, Unavailable>;
    /// Gives back a slot whose send was not stored, so the safe resend is not refused.
    async fn release(&self, user: UserId, slot: SendSlot) -> Result<(), Unavailable>;
}
