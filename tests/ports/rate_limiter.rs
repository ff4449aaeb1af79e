//! The limiter against a real clock; the exact window arithmetic is unit-tested with a
//! manual clock next to the in-process adapter.

use std::sync::Arc;
use std::time::Duration;

use natter::domain::UserId;
use natter::ports::{Admission, RateLimiter};

macro_rules! limiter_suite {
    ($adapter:ident, $fixture:path, [$($behaviour:ident),* $(,)?]) => {
        mod $adapter {
            $(
                #[tokio::test]
                async fn $behaviour() {
                    let Some(limiter) = $fixture().await else { return };
                    super::$behaviour(limiter).await;
                }
            )*
        }
    };
}

limiter_suite!(
    memory,
    crate::fixtures::memory_rate_limiter,
    [
        a_second_send_within_a_second_is_refused_for_the_rest_of_it,
        a_released_slot_is_given_back,
        users_are_limited_independently,
    ]
);

async fn a_second_send_within_a_second_is_refused_for_the_rest_of_it(
    limiter: Arc<dyn RateLimiter>,
) {
    assert!(matches!(
        limiter.acquire(UserId(1)).await.unwrap(),
        Admission::Granted(_)
    ));
    match limiter.acquire(UserId(1)).await.unwrap() {
        Admission::Refused { retry_after } => {
            assert!(retry_after > Duration::ZERO && retry_after <= Duration::from_secs(1))
        }
        granted => panic!("second send granted: {granted:?}"),
    }
}

async fn a_released_slot_is_given_back(limiter: Arc<dyn RateLimiter>) {
    let Admission::Granted(slot) = limiter.acquire(UserId(1)).await.unwrap() else {
        panic!("first send refused");
    };
    limiter.release(UserId(1), slot).await.unwrap();
    assert!(matches!(
        limiter.acquire(UserId(1)).await.unwrap(),
        Admission::Granted(_)
    ));
}

async fn users_are_limited_independently(limiter: Arc<dyn RateLimiter>) {
    assert!(matches!(
        limiter.acquire(UserId(1)).await.unwrap(),
        Admission::Granted(_)
    ));
    assert!(matches!(
        limiter.acquire(UserId(2)).await.unwrap(),
        Admission::Granted(_)
    ));
}
