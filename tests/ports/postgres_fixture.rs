//! PostgreSQL fixtures: a store on a fresh database per test, and the proxy that makes
//! PostgreSQL go silent and come back.

use std::sync::Arc;

use natter::adapters::postgres::PgStore;
use natter::ports::Store;
pub use natter_test_support::database::{address, with_address};
pub use natter_test_support::proxy::Proxy;
use natter_test_support::TestDatabase;

use crate::fixtures::PortFixture;

/// A store on its own new database on `TEST_DATABASE_URL`.
pub struct PgStoreFixture {
    pub store: Arc<dyn Store>,
    /// Dropped after `store`; dropping it drops the database.
    pub database: TestDatabase,
}

impl PortFixture for PgStoreFixture {
    type Port = Arc<dyn Store>;
    const NEEDS: Option<&'static str> = Some("TEST_DATABASE_URL");

    async fn make() -> Self {
        let database = TestDatabase::create(&Self::service_url()).await;
        let store = PgStore::connect(&database.url)
            .await
            .expect("postgres store connects");
        PgStoreFixture {
            store: Arc::new(store),
            database,
        }
    }

    fn port(&self) -> Arc<dyn Store> {
        self.store.clone()
    }
}

/// Two stores on one new database (two processes' worth), then `check` runs on them.
pub async fn with_two_postgres_stores<F, Fut>(check: F)
where
    F: FnOnce([Arc<dyn Store>; 2]) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let fixture = PgStoreFixture::make().await;
    let second = PgStore::connect(&fixture.database.url)
        .await
        .expect("a second postgres store connects");
    check([fixture.store.clone(), Arc::new(second)]).await;
}
