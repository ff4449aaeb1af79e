//! One suite per port, run against every adapter: each behaviour is written once, against
//! the trait, and stamped out per adapter by a macro, so `sqlite::seq_has_no_gaps` and
//! `postgres::seq_has_no_gaps` are separate tests.
//!
//! Service-backed adapters read `TEST_DATABASE_URL` / `TEST_REDIS_URL`; without them their
//! tests print that they were skipped, and fail instead when `NATTER_REQUIRE_ALL=1`.

mod bus;
mod fixtures;
mod postgres_fixture;
#[path = "../support/proxy.rs"]
mod proxy_support;
mod rate_limiter;
mod redis_fixture;
mod room_state;
mod store;
