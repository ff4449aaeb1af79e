//! Counting attempts (failed logins, registrations) per key in a sliding window.
//!
//! Memory is bounded by construction, whatever clients send: a key is a 16-byte digest
//! (never the raw text), a key keeps at most `limit` times, and at most `max_keys` keys are
//! kept — past that, expired keys go first, then those whose last attempt is oldest.
//! Counts are per process.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

/// What a throttle counts attempts of: a digest of a name, so its size never depends on input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct ThrottleKey([u8; 16]);

impl ThrottleKey {
    /// `kind` keeps keys of different meanings apart (a username and a device id never meet).
    pub fn of(kind: &str, name: &[u8]) -> ThrottleKey {
        let digest = Sha256::new()
            .chain_update(kind.as_bytes())
            .chain_update([0])
            .chain_update(name)
            .finalize();
        let mut key = [0u8; 16];
        key.copy_from_slice(&digest[..16]);
        ThrottleKey(key)
    }

    /// A client address. IPv6 counts by its /64, the block one host or home is handed, so
    /// walking through the addresses of one's own network does not make new clients.
    pub fn of_address(address: IpAddr) -> ThrottleKey {
        match address.to_canonical() {
            IpAddr::V4(v4) => ThrottleKey::of("ipv4", &v4.octets()),
            IpAddr::V6(v6) => ThrottleKey::of("ipv6/64", &v6.octets()[..8]),
        }
    }
}

pub(crate) struct Throttle {
    limit: usize,
    window: Duration,
    max_keys: usize,
    attempts: Mutex<HashMap<ThrottleKey, VecDeque<Instant>>>,
}

/// Enough for every address and name that fails in a busy window; a full table sheds its
/// stalest keys rather than grow.
const MAX_KEYS: usize = 50_000;

impl Throttle {
    pub fn new(limit: usize, window: Duration) -> Throttle {
        Throttle::with_max_keys(limit, window, MAX_KEYS)
    }

    fn with_max_keys(limit: usize, window: Duration, max_keys: usize) -> Throttle {
        Throttle {
            limit: limit.max(1),
            window,
            max_keys: max_keys.max(1),
            attempts: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<ThrottleKey, VecDeque<Instant>>> {
        self.attempts.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `Err(wait)` when `key` has used up its attempts.
    pub fn check(&self, key: ThrottleKey) -> Result<(), Duration> {
        let now = Instant::now();
        let mut attempts = self.lock();
        match attempts.get_mut(&key) {
            Some(times) => self.wait(times, now),
            None => Ok(()),
        }
    }

    /// Counts an attempt now if `key` has one left (checked and counted at once, so
    /// concurrent requests cannot all slip under the limit); `Err(wait)` otherwise.
    pub fn admit(&self, key: ThrottleKey) -> Result<(), Duration> {
        let now = Instant::now();
        let mut attempts = self.lock();
        if let Some(times) = attempts.get_mut(&key) {
            self.wait(times, now)?;
        }
        self.push(&mut attempts, key, now);
        Ok(())
    }

    pub fn record(&self, key: ThrottleKey) {
        let now = Instant::now();
        let mut attempts = self.lock();
        self.push(&mut attempts, key, now);
    }

    /// Takes back the latest attempt counted for `key` (one that turned out not to count).
    pub fn forget_latest(&self, key: ThrottleKey) {
        let mut attempts = self.lock();
        if let Some(times) = attempts.get_mut(&key) {
            times.pop_back();
            if times.is_empty() {
                attempts.remove(&key);
            }
        }
    }

    pub fn clear(&self, key: ThrottleKey) {
        self.lock().remove(&key);
    }

    /// Drops the times that left the window; `Err(wait)` while `limit` remain in it.
    fn wait(&self, times: &mut VecDeque<Instant>, now: Instant) -> Result<(), Duration> {
        while times
            .front()
            .is_some_and(|t| now.duration_since(*t) >= self.window)
        {
            times.pop_front();
        }
        match times.front() {
            // At most `limit` times are kept, so the front is the one that must expire.
            Some(oldest) if times.len() >= self.limit => {
                Err(self.window.saturating_sub(now.duration_since(*oldest)))
            }
            _ => Ok(()),
        }
    }

    fn push(
        &self,
        attempts: &mut HashMap<ThrottleKey, VecDeque<Instant>>,
        key: ThrottleKey,
        now: Instant,
    ) {
        if !attempts.contains_key(&key) && attempts.len() >= self.max_keys {
            self.shed(attempts, now);
        }
        let times = attempts.entry(key).or_default();
        if times.len() >= self.limit {
            times.pop_front();
        }
        times.push_back(now);
    }

    /// Makes room: expired keys go; if that is not enough, the stalest quarter goes, so a
    /// flood of new keys pays for this once per `max_keys / 4` of them.
    fn shed(&self, attempts: &mut HashMap<ThrottleKey, VecDeque<Instant>>, now: Instant) {
        let window = self.window;
        attempts.retain(|_, times| {
            times
                .back()
                .is_some_and(|t| now.duration_since(*t) < window)
        });
        if attempts.len() < self.max_keys {
            return;
        }
        let mut latest: Vec<Instant> = attempts
            .values()
            .filter_map(|t| t.back().copied())
            .collect();
        let shed = (self.max_keys / 4).max(1);
        let (_, cutoff, _) = latest.select_nth_unstable(shed - 1);
        let cutoff = *cutoff;
        let mut left_to_shed = shed;
        attempts.retain(|_, times| {
            let stale = left_to_shed > 0 && times.back().is_some_and(|t| *t <= cutoff);
            if stale {
                left_to_shed -= 1;
            }
            !stale
        });
    }

    #[cfg(test)]
    pub(crate) fn keys(&self) -> usize {
        self.lock().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(name: &str) -> ThrottleKey {
        ThrottleKey::of("test", name.as_bytes())
    }

    #[test]
    fn the_limit_counts_attempts_per_key() {
        let throttle = Throttle::new(2, Duration::from_secs(60));
        throttle.record(key("a"));
        assert!(throttle.check(key("a")).is_ok());
        throttle.record(key("a"));
        let wait = throttle.check(key("a")).unwrap_err();
        assert!(wait > Duration::from_secs(59) && wait <= Duration::from_secs(60));
        assert!(throttle.check(key("b")).is_ok());
        throttle.clear(key("a"));
        assert!(throttle.check(key("a")).is_ok());
    }

    #[test]
    fn admit_counts_and_refuses_at_the_limit_and_forget_takes_one_back() {
        let throttle = Throttle::new(2, Duration::from_secs(60));
        assert!(throttle.admit(key("a")).is_ok());
        assert!(throttle.admit(key("a")).is_ok());
        assert!(throttle.admit(key("a")).is_err());
        throttle.forget_latest(key("a"));
        assert!(throttle.admit(key("a")).is_ok());
        assert!(throttle.admit(key("a")).is_err());
    }

    #[test]
    fn times_leave_the_window() {
        let throttle = Throttle::new(1, Duration::from_millis(20));
        throttle.record(key("a"));
        assert!(throttle.check(key("a")).is_err());
        std::thread::sleep(Duration::from_millis(30));
        assert!(throttle.check(key("a")).is_ok());
    }

    #[test]
    fn a_key_is_sixteen_bytes_however_long_the_name() {
        let huge = "x".repeat(60_000);
        assert_eq!(std::mem::size_of_val(&key(&huge)), 16);
        assert_ne!(key(&huge), key("x"));
        assert_ne!(
            ThrottleKey::of("user", b"alice"),
            ThrottleKey::of("device", b"alice")
        );
    }

    #[test]
    fn a_key_keeps_at_most_limit_times() {
        let throttle = Throttle::new(3, Duration::from_secs(60));
        for _ in 0..1_000 {
            throttle.record(key("a"));
        }
        assert_eq!(throttle.lock()[&key("a")].len(), 3);
    }

    #[test]
    fn many_distinct_keys_stay_within_the_bound_and_the_newest_survive() {
        let throttle = Throttle::with_max_keys(5, Duration::from_secs(60), 100);
        for i in 0..10_000 {
            throttle.record(key(&format!("user{i}")));
            assert!(throttle.keys() <= 100);
        }
        assert!(throttle.keys() > 50);
        throttle.record(key("newest"));
        for _ in 0..4 {
            throttle.record(key("newest"));
        }
        assert!(throttle.check(key("newest")).is_err());
    }

    #[test]
    fn an_ipv6_client_is_one_key_across_its_64_and_mapped_ipv4_is_ipv4() {
        let a: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        let other: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(ThrottleKey::of_address(a), ThrottleKey::of_address(b));
        assert_ne!(ThrottleKey::of_address(a), ThrottleKey::of_address(other));
        let mapped: IpAddr = "::ffff:192.0.2.1".parse().unwrap();
        let v4: IpAddr = "192.0.2.1".parse().unwrap();
        assert_eq!(ThrottleKey::of_address(mapped), ThrottleKey::of_address(v4));
    }
}
