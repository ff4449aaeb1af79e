//! natter's test kit, shared by the test binaries (`tests/api`, `tests/browser`,
//! `tests/cluster`, `tests/ports`): a real natter per test ([`TestApp`]) on the backend
//! the test runs on ([`on_backend`]), its users ([`TestUser`]) and their sockets ([`Ws`]),
//! and the services' throwaway parts: a PostgreSQL database ([`TestDatabase`]), a Redis
//! key prefix ([`TestRedis`]) and a proxy that cuts either off ([`proxy::Proxy`]).

use std::time::Duration;

mod app;
mod client;
pub mod database;
pub mod proxy;
mod redis_prefix;

pub use app::{on_backend, shared_services, Backend, BackendKind, TestApp};
pub use client::{
    browser, csrf_for, csrf_of, register, seqs, session_cookie, RawSocket, TestUser, Ws, PASSWORD,
};
pub use database::TestDatabase;
pub use redis_prefix::TestRedis;

/// Every wait in a test is bounded by this, never a bare sleep.
pub const WAIT: Duration = Duration::from_secs(10);

/// For tests that pace their sends rather than test the send rule: its gap made 100 ms
/// (CONTRACT §5's 1 s had them sleep a second before each send). The window stays the
/// contract's, 10 in 60 s, more than such a test sends.
pub const QUICK_SENDS: [(&str, &str); 1] = [("SEND_MIN_INTERVAL_MS", "100")];

/// Waits until a user's next send clears [`QUICK_SENDS`]' gap.
pub async fn after_the_quick_gap() {
    tokio::time::sleep(Duration::from_millis(150)).await;
}

/// A service-backed test (`#[ignore = "needs …"]`, run with `--include-ignored`) whose
/// service is not configured: it fails, naming what to set, and never passes having done
/// nothing.
pub fn missing_service(what: &str) -> ! {
    panic!(
        "{what} is not configured: set it, or run without --include-ignored to leave this test out"
    );
}
