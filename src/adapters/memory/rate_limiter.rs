//! The exact sliding-window limiter of CONTRACT.md §5, in one process.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;

use crate::domain::UserId;
use crate::ports::{Admission, RateLimiter, SendSlot, Unavailable};

/// Milliseconds since some fixed point; injectable so tests control time.
pub trait Clock: Send + Sync + 'static {
    fn now_ms(&self) -> i64;
}

pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0)
    }
}

const MIN_GAP_MS: i64 = 1_000;
const WINDOW_MS: i64 = 60_000;
const PER_WINDOW: usize = 10;

pub struct MemoryRateLimiter<C: Clock = SystemClock> {
    clock: C,
    /// Per user, the times of accepted sends in the trailing window, oldest first.
    accepted: Mutex<HashMap<UserId, VecDeque<i64>>>,
}

impl MemoryRateLimiter<SystemClock> {
    pub fn new() -> Self {
        MemoryRateLimiter::with_clock(SystemClock)
    }
}

impl Default for MemoryRateLimiter<SystemClock> {
    fn default() -> Self {
        Self::new()
    }
}

impl<C: Clock> MemoryRateLimiter<C> {
    pub fn with_clock(clock: C) -> Self {
        MemoryRateLimiter {
            clock,
            accepted: Mutex::new(HashMap::new()),
        }
    }
}

/// The decision, given the accepted times of one user (oldest first, already pruned).
fn decide(times: &VecDeque<i64>, now: i64) -> Result<(), i64> {
    let mut ready_at = i64::MIN;
    if let Some(last) = times.back() {
        ready_at = ready_at.max(last + MIN_GAP_MS);
    }
    if times.len() >= PER_WINDOW {
        // The send that must leave the window before another fits.
        let blocking = times[times.len() - PER_WINDOW];
        ready_at = ready_at.max(blocking + WINDOW_MS);
    }
    if now >= ready_at {
        Ok(())
    } else {
        Err(ready_at - now)
    }
}

#[async_trait]
impl<C: Clock> RateLimiter for MemoryRateLimiter<C> {
    async fn acquire(&self, user: UserId) -> Result<Admission, Unavailable> {
        let now = self.clock.now_ms();
        let mut accepted = self.accepted.lock().unwrap_or_else(|e| e.into_inner());
        // Drop idle users now and then so the map does not grow with everyone who ever sent.
        if accepted.len() > 10_000 {
            accepted.retain(|_, times| times.back().is_some_and(|t| now - t < WINDOW_MS));
        }
        let times = accepted.entry(user).or_default();
        while times.front().is_some_and(|t| now - t >= WINDOW_MS) {
            times.pop_front();
        }
        Ok(match decide(times, now) {
            Ok(()) => {
                times.push_back(now);
                Admission::Granted(SendSlot(now))
            }
            Err(wait_ms) => Admission::Refused {
                retry_after: Duration::from_millis(wait_ms as u64),
            },
        })
    }

    async fn release(&self, user: UserId, slot: SendSlot) -> Result<(), Unavailable> {
        let mut accepted = self.accepted.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(times) = accepted.get_mut(&user) {
            if let Some(pos) = times.iter().rposition(|t| *t == slot.0) {
                times.remove(pos);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicI64, Ordering};
    use std::sync::Arc;

    #[derive(Clone, Default)]
    struct ManualClock(Arc<AtomicI64>);

    impl ManualClock {
        fn advance(&self, ms: i64) {
            self.0.fetch_add(ms, Ordering::SeqCst);
        }
    }

    impl Clock for ManualClock {
        fn now_ms(&self) -> i64 {
            self.0.load(Ordering::SeqCst)
        }
    }

    const ALICE: UserId = UserId(1);
    const BOB: UserId = UserId(2);

    fn limiter() -> (MemoryRateLimiter<ManualClock>, ManualClock) {
        let clock = ManualClock::default();
        clock.advance(1_000_000);
        (MemoryRateLimiter::with_clock(clock.clone()), clock)
    }

    async fn refused_for(l: &impl RateLimiter, user: UserId) -> Option<u128> {
        match l.acquire(user).await.unwrap() {
            Admission::Granted(_) => None,
            Admission::Refused { retry_after } => Some(retry_after.as_millis()),
        }
    }

    #[tokio::test]
    async fn a_second_send_within_one_second_waits_for_the_rest_of_it() {
        let (l, clock) = limiter();
        assert_eq!(refused_for(&l, ALICE).await, None);
        clock.advance(300);
        assert_eq!(refused_for(&l, ALICE).await, Some(700));
        clock.advance(699);
        assert_eq!(refused_for(&l, ALICE).await, Some(1));
        clock.advance(1);
        assert_eq!(refused_for(&l, ALICE).await, None);
    }

    #[tokio::test]
    async fn the_eleventh_send_in_a_minute_waits_until_the_first_leaves_the_window() {
        let (l, clock) = limiter();
        for _ in 0..10 {
            assert_eq!(refused_for(&l, ALICE).await, None);
            clock.advance(1_000);
        }
        // First send at t0, tenth at t0+9s; now t0+10s: the first leaves at t0+60s.
        assert_eq!(refused_for(&l, ALICE).await, Some(50_000));
        clock.advance(49_999);
        assert_eq!(refused_for(&l, ALICE).await, Some(1));
        clock.advance(1);
        assert_eq!(refused_for(&l, ALICE).await, None);
        // The window slides: a second later the second send has left it too.
        clock.advance(1_000);
        assert_eq!(refused_for(&l, ALICE).await, None);
    }

    #[tokio::test]
    async fn refusals_do_not_count_and_users_are_independent() {
        let (l, clock) = limiter();
        assert_eq!(refused_for(&l, ALICE).await, None);
        for _ in 0..50 {
            assert!(refused_for(&l, ALICE).await.is_some());
        }
        assert_eq!(refused_for(&l, BOB).await, None);
        clock.advance(1_000);
        assert_eq!(refused_for(&l, ALICE).await, None);
    }

    #[tokio::test]
    async fn a_released_slot_lets_the_resend_through() {
        let (l, clock) = limiter();
        let Admission::Granted(slot) = l.acquire(ALICE).await.unwrap() else {
            panic!("first send is granted");
        };
        clock.advance(10);
        assert!(refused_for(&l, ALICE).await.is_some());
        l.release(ALICE, slot).await.unwrap();
        assert_eq!(refused_for(&l, ALICE).await, None);
    }

    #[tokio::test]
    async fn retry_after_covers_both_rules_at_once() {
        let (l, clock) = limiter();
        // Ten sends 6 s apart fill the minute: t0 .. t0+54s.
        for i in 0..10 {
            assert_eq!(refused_for(&l, ALICE).await, None, "send {i}");
            clock.advance(6_000);
        }
        // Now t0+60s: the first left the window exactly now, so one fits.
        assert_eq!(refused_for(&l, ALICE).await, None);
        // 500 ms later: the gap rule wants 500 ms, the window wants t0+6s+60s - now = 5.5 s.
        clock.advance(500);
        assert_eq!(refused_for(&l, ALICE).await, Some(5_500));
    }
}
