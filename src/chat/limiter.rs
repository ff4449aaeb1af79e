//! The rate limiter as the rules use it: the shared one (Redis, when configured), and the
//! process-local one that stands in while the shared one is unreachable, for every rule
//! (sends, room creation).

use std::sync::Arc;
use std::time::Duration;

use super::ChatError;
use crate::domain::UserId;
use crate::ports::{Admission, RateLimiter, Rule, SendSlot};

/// A refusal that asks to wait no longer than this is waited out (see [`Limiter::acquire`]),
/// for up to [`SLOT_PATIENCE`] in all: a burst of requests at once gets its places one
/// millisecond after another, and no request is held for long.
const SLOT_WAIT: Duration = Duration::from_millis(2);
const SLOT_PATIENCE: Duration = Duration::from_secs(1);

#[derive(Clone)]
pub(super) struct Limiter {
    shared: Arc<dyn RateLimiter>,
    /// [`Ports::fallback_limiter`](super::Ports): `None` when `shared` is process-local.
    fallback: Option<Arc<dyn RateLimiter>>,
}

/// An accepted request's place in its rule's window, held by the limiter that granted it.
pub(super) struct Granted {
    limiter: Arc<dyn RateLimiter>,
    rule: Rule,
    user: UserId,
    slot: SendSlot,
}

impl Limiter {
    pub fn new(ports: &super::Ports) -> Limiter {
        Limiter {
            shared: ports.limiter.clone(),
            fallback: ports.fallback_limiter.clone(),
        }
    }

    /// A place in `rule`'s window for `user`, or `RateLimited` with the wait.
    pub async fn acquire(&self, rule: &Rule, user: UserId) -> Result<Granted, ChatError> {
        let started = tokio::time::Instant::now();
        loop {
            match self.try_acquire(rule, user).await {
                // Accepted requests of a key need distinct milliseconds (they are its
                // slots), so a rule without a gap of its own (room creation) refuses a
                // request that comes in the same millisecond as another: that wait is
                // taken here, also when several such requests queue for milliseconds.
                Err(ChatError::RateLimited { retry_after })
                    if retry_after <= SLOT_WAIT && started.elapsed() < SLOT_PATIENCE =>
                {
                    tokio::time::sleep(retry_after).await;
                }
                outcome => return outcome,
            }
        }
    }

    async fn try_acquire(&self, rule: &Rule, user: UserId) -> Result<Granted, ChatError> {
        let mut limiter = &self.shared;
        let admission = match (limiter.acquire(rule, user).await, &self.fallback) {
            (Ok(admission), _) => admission,
            (Err(e), Some(fallback)) => {
                tracing::warn!(error = %e, rule = rule.name, "shared rate limiter unreachable; limiting per process");
                limiter = fallback;
                limiter.acquire(rule, user).await?
            }
            (Err(e), None) => return Err(e.into()),
        };
        match admission {
            Admission::Granted(slot) => Ok(Granted {
                limiter: limiter.clone(),
                rule: *rule,
                user,
                slot,
            }),
            Admission::Refused { retry_after } => Err(ChatError::RateLimited { retry_after }),
        }
    }
}

impl Granted {
    /// Gives the place back: the request did not happen (the store refused it, or it was
    /// a resend or a join after all), so it must not count.
    pub async fn release(self) {
        if let Err(e) = self.limiter.release(&self.rule, self.user, self.slot).await {
            tracing::warn!(error = %e, rule = self.rule.name, "could not give back a rate-limit slot");
        }
    }
}
