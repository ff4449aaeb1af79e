//! PostgreSQL fixtures: a store on a fresh database per test, and the proxy that makes
//! PostgreSQL go silent and come back.

use std::sync::Arc;

use natter::adapters::postgres::PgStore;
use natter::ports::Store;

pub use natter_test_support::database::{address, with_address};
pub use natter_test_support::proxy::Proxy;
use natter_test_support::{missing_service, TestDatabase};

pub struct PgStoreFixture {
    pub store: Arc<dyn Store>,
    /// Dropped after `store`; dropping it drops the database.
    pub database: TestDatabase,
}

/// A store on its own new database on `TEST_DATABASE_URL`.
pub async fn postgres_store() -> PgStoreFixture {
    let Some(admin_url) = std::env::var("TEST_DATABASE_URL")
        .ok()
        .filter(|url| !url.is_empty())
    else {
        missing_service("PostgreSQL (TEST_DATABASE_URL)");
    };
    let database = TestDatabase::create(&admin_url).await;
    let store = PgStore::connect(&database.url)
        .await
        .expect("postgres store connects");
    PgStoreFixture {
        store: Arc::new(store),
        database,
    }
}

/// Two stores on one new database (two processes' worth), then `check` runs on them.
pub async fn with_two_postgres_stores<F, Fut>(check: F)
where
    F: FnOnce([Arc<dyn Store>; 2]) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let fixture = postgres_store().await;
    let second = PgStore::connect(&fixture.database.url)
        .await
        .expect("a second postgres store connects");
    check([fixture.store.clone(), Arc::new(second)]).await;
}
