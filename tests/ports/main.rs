//! One suite per port, run against every adapter: each behaviour is written once, against
//! the trait, and stamped out per adapter by a macro, so `sqlite::seq_has_no_gaps` and
//! `postgres::seq_has_no_gaps` are separate tests.
//!
//! Service-backed adapters' tests are `#[ignore = "needs TEST_DATABASE_URL"]` (or
//! `TEST_REDIS_URL`): `--include-ignored` runs them, and without their variable they fail.

mod bus;
mod fixtures;
mod postgres_fixture;
mod rate_limiter;
mod redis_fixture;
mod room_state;
mod store;
