//! Black-box tests: a real natter on an ephemeral port, spoken to over HTTP and WebSocket.
//!
//! Every test runs on both backends because the code says so (`api_tests!`):
//! `…::embedded::…` on SQLite with the in-process adapters, `…::shared::…` on PostgreSQL +
//! Redis (ignored unless `--include-ignored`, like every service-backed test).

/// `api_tests!(name, …)` at the end of a file stamps each named `async fn name()` of the
/// file out as two tests: in `embedded` (SQLite, in-process adapters) and in `shared` (a
/// PostgreSQL database and Redis prefix of its own; `#[ignore = "needs TEST_DATABASE_URL and
/// TEST_REDIS_URL"]`, which CI runs with `--include-ignored`). The body runs
/// with its module's backend, which `TestApp::spawn` and friends pick up. A test function
/// left out of the list is dead code, which clippy refuses.
macro_rules! api_tests {
    ($($name:ident),* $(,)?) => {
        mod embedded {
            $(
                #[tokio::test]
                async fn $name() {
                    natter_test_support::on_backend(natter_test_support::BackendKind::Embedded, super::$name())
                        .await
                }
            )*
        }
        mod shared {
            $(
                #[tokio::test]
                #[ignore = "needs TEST_DATABASE_URL and TEST_REDIS_URL"]
                async fn $name() {
                    natter_test_support::on_backend(natter_test_support::BackendKind::Shared, super::$name())
                        .await
                }
            )*
        }
    };
}

mod account_limits;
mod accounts;
mod attention;
mod cache;
mod changes;
mod edge;
mod integrity;
mod members;
mod operations;
mod pages;
mod pair;
mod rate_limits;
mod rooms;
mod websocket;
mod ws_limits;
