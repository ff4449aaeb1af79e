//! Exact per-user limits (CONTRACT.md §5 for sends; §9 and §10 add more): the rule is a
//! value the caller passes, so one limiter serves every rule and tests can use small ones.

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

/// An exact sliding-window rule: accept a request only if `min_gap` has passed since the
/// key's previous accepted one and fewer than `per_window` were accepted in the trailing
/// `window`. A refusal records nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rule {
    /// Names the rule's windows: two rules never share one (a key is the name and the user).
    pub name: &'static str,
    /// At least 1 ms: accepted requests of one key then have distinct times, which are
    /// their [`SendSlot`]s.
    pub min_gap: Duration,
    /// At least 1.
    pub per_window: usize,
    pub window: Duration,
}

impl Rule {
    /// CONTRACT §5: one message per second and ten per trailing minute, per user, across
    /// rooms, connections and processes.
    pub const SENDS: Rule = Rule {
        name: "send",
        min_gap: Duration::from_secs(1),
        per_window: 10,
        window: Duration::from_secs(60),
    };

    /// CONTRACT §9: `ROOM_CREATE_LIMIT` (default 10) new rooms per user in any trailing
    /// hour; no gap between them.
    pub const ROOM_CREATES: Rule = Rule {
        name: "room_create",
        min_gap: Duration::from_millis(1),
        per_window: 10,
        window: Duration::from_secs(3600),
    };

    /// CONTRACT §10: edits, deletes and reactions together, 60 per user in any trailing
    /// minute, across processes; not `send`s.
    pub const CHANGES: Rule = Rule {
        name: "change",
        min_gap: Duration::from_millis(1),
        per_window: 60,
        window: Duration::from_secs(60),
    };

    pub fn min_gap_ms(&self) -> i64 {
        (self.min_gap.as_millis() as i64).max(1)
    }

    pub fn window_ms(&self) -> i64 {
        self.window.as_millis() as i64
    }

    /// The wait before `now_ms`'s request fits, given the key's accepted times in the
    /// trailing window (oldest first), or `None` when it fits now: the one statement of
    /// the rule's arithmetic (the Redis script repeats it in Lua, and the port suite holds
    /// both to it).
    pub fn wait_ms(&self, accepted: &[i64], now_ms: i64) -> Option<i64> {
        let mut ready_at = i64::MIN;
        if let Some(last) = accepted.last() {
            ready_at = ready_at.max(last + self.min_gap_ms());
        }
        if self.per_window > 0 && accepted.len() >= self.per_window {
            // The request that must leave the window before another fits.
            let blocking = accepted[accepted.len() - self.per_window];
            ready_at = ready_at.max(blocking + self.window_ms());
        }
        (now_ms < ready_at).then(|| ready_at - now_ms)
    }
}

/// Checks and records in one atomic step, per `(rule, user)`.
#[async_trait]
pub trait RateLimiter: Send + Sync + 'static {
    async fn acquire(&self, rule: &Rule, user: UserId) -> Result<Admission, Unavailable>;
    /// Gives back a slot whose request did not happen (a send the store did not take), so
    /// its safe resend is not refused.
    async fn release(&self, rule: &Rule, user: UserId, slot: SendSlot) -> Result<(), Unavailable>;
}
