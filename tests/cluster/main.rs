//! Several `natter serve` processes on one PostgreSQL + Redis, and the faults they must
//! survive: kill -9 of a process, a Redis restart, PostgreSQL going away and coming back.
//!
//! These need `TEST_DATABASE_URL` and `TEST_REDIS_URL` (and `redis-server` on `PATH` for
//! the restart), so they are `#[ignore = "needs …"]`: `--include-ignored` runs them, and
//! without their services they fail. `edge.rs` needs nothing but the natter binary.

mod edge;
mod faults;
mod processes;
mod support;
