//! Request budgets: at most `limit` events in any trailing `window`, per key.
//!
//! Used for requests that cost the server work but are not messages (the per-user REST
//! history budget); sends have their own exact, cross-process limiter (ports::RateLimiter).

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Keys remembered before idle ones are dropped; an idle key has nothing worth keeping.
const KEYS_BEFORE_PRUNING: usize = 10_000;

/// One key's sliding window: the times of the events still inside it.
#[derive(Debug, Default)]
pub struct SlidingWindow {
    recent: VecDeque<Instant>,
}

impl SlidingWindow {
    /// Counts an event at `now`, or says how long until one would fit.
    pub fn take(&mut self, limit: usize, window: Duration, now: Instant) -> Result<(), Duration> {
        while self
            .recent
            .front()
            .is_some_and(|t| now.duration_since(*t) >= window)
        {
            self.recent.pop_front();
        }
        if self.recent.len() >= limit {
            let oldest = self.recent[self.recent.len() - limit];
            return Err(window.saturating_sub(now.duration_since(oldest)));
        }
        self.recent.push_back(now);
        Ok(())
    }

    fn idle(&self, window: Duration, now: Instant) -> bool {
        self.recent
            .back()
            .is_none_or(|t| now.duration_since(*t) >= window)
    }
}

/// A [`SlidingWindow`] per key, in this process.
pub struct Budget<K> {
    limit: usize,
    window: Duration,
    windows: Mutex<HashMap<K, SlidingWindow>>,
}

impl<K: Hash + Eq> Budget<K> {
    pub fn new(limit: usize, window: Duration) -> Budget<K> {
        Budget {
            limit,
            window,
            windows: Mutex::new(HashMap::new()),
        }
    }

    /// `Err(wait)` when `key` has used its budget.
    pub fn take(&self, key: K) -> Result<(), Duration> {
        let now = Instant::now();
        let mut windows = self.windows.lock().unwrap_or_else(|e| e.into_inner());
        if windows.len() >= KEYS_BEFORE_PRUNING && !windows.contains_key(&key) {
            let window = self.window;
            windows.retain(|_, w| !w.idle(window, now));
        }
        windows
            .entry(key)
            .or_default()
            .take(self.limit, self.window, now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_window_holds_limit_events_and_says_when_the_next_fits() {
        let mut window = SlidingWindow::default();
        let start = Instant::now();
        let second = Duration::from_secs(1);
        for n in 0..3 {
            assert!(window
                .take(3, second, start + Duration::from_millis(n * 100))
                .is_ok());
        }
        let wait = window
            .take(3, second, start + Duration::from_millis(500))
            .unwrap_err();
        assert_eq!(wait, Duration::from_millis(500));
        assert!(
            window.take(3, second, start + second).is_ok(),
            "the first left the window"
        );
    }

    #[test]
    fn budgets_are_per_key_and_idle_keys_are_forgotten() {
        let budget = Budget::new(1, Duration::from_secs(60));
        assert!(budget.take("alice").is_ok());
        assert!(budget.take("alice").is_err());
        assert!(budget.take("bob").is_ok());

        let short = Budget::new(1, Duration::ZERO);
        for key in 0..KEYS_BEFORE_PRUNING + 10 {
            short.take(key).unwrap();
        }
        assert!(short.windows.lock().unwrap().len() <= KEYS_BEFORE_PRUNING);
    }
}
