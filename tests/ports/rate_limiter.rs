//! The limiter against a real clock, on every adapter; the arithmetic of the contract's
//! send rule is also unit-tested with a manual clock next to the in-process adapter.
//! Rules are values: the exact-window behaviour runs here with a small rule, so it takes
//! a fraction of a second instead of a minute.

use std::sync::Arc;
use std::time::Duration;

use natter::domain::UserId;
use natter::ports::{Admission, RateLimiter, Rule};

use crate::fixtures::MemoryLimiterFixture;
use crate::redis_fixture::RedisLimiterFixture;

port_suite! {
    adapters {
        memory: MemoryLimiterFixture,
        #[ignore = "needs TEST_REDIS_URL"]
        redis: RedisLimiterFixture,
    }
    behaviours {
        a_second_send_within_a_second_is_refused_for_the_rest_of_it,
        a_released_slot_is_given_back,
        a_small_rule_holds_its_window_exactly,
        rules_keep_windows_of_their_own,
        users_are_limited_independently,
    }
}

async fn a_second_send_within_a_second_is_refused_for_the_rest_of_it(
    limiter: Arc<dyn RateLimiter>,
) {
    assert!(matches!(
        limiter.acquire(&Rule::SENDS, UserId(1)).await.unwrap(),
        Admission::Granted(_)
    ));
    match limiter.acquire(&Rule::SENDS, UserId(1)).await.unwrap() {
        Admission::Refused { retry_after } => {
            assert!(retry_after > Duration::ZERO && retry_after <= Duration::from_secs(1))
        }
        granted => panic!("second send granted: {granted:?}"),
    }
}

async fn a_released_slot_is_given_back(limiter: Arc<dyn RateLimiter>) {
    let Admission::Granted(slot) = limiter.acquire(&Rule::SENDS, UserId(1)).await.unwrap() else {
        panic!("first send refused");
    };
    limiter
        .release(&Rule::SENDS, UserId(1), slot)
        .await
        .unwrap();
    assert!(matches!(
        limiter.acquire(&Rule::SENDS, UserId(1)).await.unwrap(),
        Admission::Granted(_)
    ));
}

async fn users_are_limited_independently(limiter: Arc<dyn RateLimiter>) {
    assert!(matches!(
        limiter.acquire(&Rule::SENDS, UserId(1)).await.unwrap(),
        Admission::Granted(_)
    ));
    assert!(matches!(
        limiter.acquire(&Rule::SENDS, UserId(2)).await.unwrap(),
        Admission::Granted(_)
    ));
}

/// 3 per 600 ms, 100 ms apart: small enough to live through in a test.
const SMALL: Rule = Rule {
    name: "small",
    min_gap: Duration::from_millis(100),
    per_window: 3,
    window: Duration::from_millis(600),
};

fn wait_of(admission: Admission) -> Option<Duration> {
    match admission {
        Admission::Granted(_) => None,
        Admission::Refused { retry_after } => Some(retry_after),
    }
}

async fn a_small_rule_holds_its_window_exactly(limiter: Arc<dyn RateLimiter>) {
    let user = UserId(7);
    let started = tokio::time::Instant::now();
    // Three, each as soon as the gap allows: at 0, ~100, ~200 ms.
    for n in 0..3 {
        loop {
            match wait_of(limiter.acquire(&SMALL, user).await.unwrap()) {
                None => break,
                Some(wait) => {
                    assert!(wait <= SMALL.min_gap, "request {n}: {wait:?}");
                    tokio::time::sleep(wait).await;
                }
            }
        }
    }
    // The fourth waits for the first to leave the window: ~600 ms after it, which is more
    // than the gap and never more than the window.
    let wait = wait_of(limiter.acquire(&SMALL, user).await.unwrap()).expect("the window is full");
    let first_leaves = SMALL.window.saturating_sub(started.elapsed());
    assert!(wait > SMALL.min_gap && wait <= SMALL.window, "{wait:?}");
    assert!(
        wait <= first_leaves + Duration::from_millis(50),
        "{wait:?} vs {first_leaves:?}"
    );
    tokio::time::sleep(wait).await;
    assert_eq!(wait_of(limiter.acquire(&SMALL, user).await.unwrap()), None);
}

async fn rules_keep_windows_of_their_own(limiter: Arc<dyn RateLimiter>) {
    let user = UserId(8);
    assert_eq!(
        wait_of(limiter.acquire(&Rule::SENDS, user).await.unwrap()),
        None
    );
    // The send filled the send rule's gap; the small rule has not seen this user.
    assert_eq!(wait_of(limiter.acquire(&SMALL, user).await.unwrap()), None);
    assert!(wait_of(limiter.acquire(&Rule::SENDS, user).await.unwrap()).is_some());
    assert!(wait_of(limiter.acquire(&SMALL, user).await.unwrap()).is_some());
}

/// Several processes on one Redis: each `RedisRateLimiter` value is one process.
mod redis_across_processes {
    use std::time::Duration;

    use natter::domain::UserId;
    use natter::ports::{Admission, RateLimiter, Rule, SendSlot};

    use crate::redis_fixture::{rate_limiter, test_redis, TestRedis};

    fn refused_for(admission: Admission) -> Option<Duration> {
        match admission {
            Admission::Granted(_) => None,
            Admission::Refused { retry_after } => Some(retry_after),
        }
    }

    /// Records accepted sends `ago_ms` before Redis's now, as another process would have.
    fn accepted_earlier(redis: &TestRedis, user: UserId, ago_ms: &[i64]) {
        let mut raw = redis.connection().unwrap();
        let (secs, micros): (i64, i64) = redis::cmd("TIME").query(&mut raw).unwrap();
        let now = secs * 1000 + micros / 1000;
        let key = format!("{}limit:send:{}", redis.prefix, user.0);
        for ago in ago_ms {
            let _: () = redis::cmd("ZADD")
                .arg(&key)
                .arg(now - ago)
                .arg(now - ago)
                .query(&mut raw)
                .unwrap();
        }
    }

    fn about(wait: Option<Duration>, expected_ms: u64) -> bool {
        wait.is_some_and(|w| {
            w <= Duration::from_millis(expected_ms)
                && w > Duration::from_millis(expected_ms.saturating_sub(500))
        })
    }

    #[tokio::test]
    #[ignore = "needs TEST_REDIS_URL"]
    async fn the_one_second_rule_holds_across_processes() {
        let redis = test_redis();
        let (a, b) = (rate_limiter(&redis).await, rate_limiter(&redis).await);
        assert_eq!(
            refused_for(a.acquire(&Rule::SENDS, UserId(1)).await.unwrap()),
            None
        );
        let wait =
            refused_for(b.acquire(&Rule::SENDS, UserId(1)).await.unwrap()).expect("refused on b");
        assert!(
            wait > Duration::ZERO && wait <= Duration::from_secs(1),
            "{wait:?}"
        );
        assert_eq!(
            refused_for(b.acquire(&Rule::SENDS, UserId(2)).await.unwrap()),
            None
        );
        tokio::time::sleep(wait).await;
        assert_eq!(
            refused_for(b.acquire(&Rule::SENDS, UserId(1)).await.unwrap()),
            None
        );
    }

    #[tokio::test]
    #[ignore = "needs TEST_REDIS_URL"]
    async fn the_ten_per_minute_rule_holds_across_processes() {
        let redis = test_redis();
        let (a, b) = (rate_limiter(&redis).await, rate_limiter(&redis).await);
        let user = UserId(1);
        // Nine sends 4 s apart, the first 50 s ago, the last 18 s ago.
        let earlier: Vec<i64> = (0..9).map(|i| 50_000 - 4_000 * i).collect();
        accepted_earlier(&redis, user, &earlier);
        let Admission::Granted(tenth) = a.acquire(&Rule::SENDS, user).await.unwrap() else {
            panic!("the tenth send in a minute is granted");
        };
        // The eleventh waits until the first leaves the window, 10 s from now.
        assert!(about(
            refused_for(b.acquire(&Rule::SENDS, user).await.unwrap()),
            10_000
        ));
        // A failed tenth send gives its slot back, on any process.
        b.release(&Rule::SENDS, user, tenth).await.unwrap();
        assert!(matches!(
            a.acquire(&Rule::SENDS, user).await.unwrap(),
            Admission::Granted(SendSlot(_))
        ));
    }

    #[tokio::test]
    #[ignore = "needs TEST_REDIS_URL"]
    async fn retry_after_is_the_larger_wait_when_both_rules_apply() {
        let redis = test_redis();
        let limiter = rate_limiter(&redis).await;
        // Ten in the window; the oldest leaves in 5 s, the newest is 1 s old.
        let window_bound: Vec<i64> = (0..10).map(|i| 55_000 - 6_000 * i).collect();
        accepted_earlier(&redis, UserId(1), &window_bound);
        assert!(about(
            refused_for(limiter.acquire(&Rule::SENDS, UserId(1)).await.unwrap()),
            5_000
        ));
        // Ten in the window; the oldest leaves in 0.2 s, the newest is 0.2 s old.
        let gap_bound: Vec<i64> = (0..10).map(|i| 59_800 - 6_622 * i).collect();
        accepted_earlier(&redis, UserId(2), &gap_bound);
        assert!(about(
            refused_for(limiter.acquire(&Rule::SENDS, UserId(2)).await.unwrap()),
            800
        ));
        // Nothing was recorded by the refusals.
        let keys = redis.keys_matching("limit:*").unwrap();
        let mut raw = redis.connection().unwrap();
        for key in keys {
            let n: usize = redis::cmd("ZCARD").arg(&key).query(&mut raw).unwrap();
            assert_eq!(n, 10, "{key}");
        }
    }
}
