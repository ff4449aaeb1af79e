//! The exact sliding-window limiter ([`Rule`]), in one process.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;

use crate::domain::UserId;
use crate::ports::{Admission, RateLimiter, Rule, SendSlot, Unavailable};

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

/// One window: a rule's name and a user.
type Key = (&'static str, UserId);

pub struct MemoryRateLimiter<C: Clock = SystemClock> {
    clock: C,
    /// Per rule and user: the rule's window (ms), and the times of accepted requests in
    /// the trailing window, oldest first.
    accepted: Mutex<HashMap<Key, (i64, VecDeque<i64>)>>,
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

#[async_trait]
impl<C: Clock> RateLimiter for MemoryRateLimiter<C> {
    async fn acquire(&self, rule: &Rule, user: UserId) -> Result<Admission, Unavailable> {
        let now = self.clock.now_ms();
        let window = rule.window_ms();
        let mut accepted = self.accepted.lock().unwrap_or_else(|e| e.into_inner());
        // Drop idle windows now and then so the map does not grow with everyone who ever sent.
        if accepted.len() > 10_000 {
            accepted.retain(|_, (window, times)| times.back().is_some_and(|t| now - t < *window));
        }
        let (kept_for, times) = accepted
            .entry((rule.name, user))
            .or_insert_with(|| (window, VecDeque::new()));
        *kept_for = window;
        while times.front().is_some_and(|t| now - t >= window) {
            times.pop_front();
        }
        Ok(match rule.wait_ms(times.make_contiguous(), now) {
            None => {
                times.push_back(now);
                Admission::Granted(SendSlot(now))
            }
            Some(wait_ms) => Admission::Refused {
                retry_after: Duration::from_millis(wait_ms as u64),
            },
        })
    }

    async fn release(&self, rule: &Rule, user: UserId, slot: SendSlot) -> Result<(), Unavailable> {
        let mut accepted = self.accepted.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((_, times)) = accepted.get_mut(&(rule.name, user)) {
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
        match l.acquire(&Rule::SENDS, user).await.unwrap() {
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
        let Admission::Granted(slot) = l.acquire(&Rule::SENDS, ALICE).await.unwrap() else {
            panic!("first send is granted");
        };
        clock.advance(10);
        assert!(refused_for(&l, ALICE).await.is_some());
        l.release(&Rule::SENDS, ALICE, slot).await.unwrap();
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
