//! PostgreSQL fixtures: a store on a fresh database per test, and a proxy that makes
//! PostgreSQL go silent and come back.

use std::sync::Arc;

use natter::adapters::postgres::PgStore;
use natter::ports::Store;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::{AbortHandle, JoinSet};

#[path = "../support/postgres.rs"]
mod postgres_support;
pub use postgres_support::{address, with_address, TestDatabase};

pub struct PgStoreFixture {
    pub store: Arc<dyn Store>,
    /// Dropped after `store`; dropping it drops the database.
    pub database: TestDatabase,
}

/// A store on its own new database, or `None` (and a loud skip) without `TEST_DATABASE_URL`.
pub async fn postgres_store() -> Option<PgStoreFixture> {
    let Some(admin_url) = std::env::var("TEST_DATABASE_URL")
        .ok()
        .filter(|url| !url.is_empty())
    else {
        crate::fixtures::skip("PostgreSQL (TEST_DATABASE_URL)");
        return None;
    };
    let database = TestDatabase::create(&admin_url).await;
    let store = PgStore::connect(&database.url)
        .await
        .expect("postgres store connects");
    Some(PgStoreFixture {
        store: Arc::new(store),
        database,
    })
}

/// A TCP proxy to PostgreSQL. While it is down it forwards and answers nothing, like a host
/// whose packets are dropped; when it comes back, the connections it stalled are closed, as
/// a restarted server's would be, and new ones are forwarded again.
pub struct Proxy {
    pub port: u16,
    down: watch::Sender<bool>,
    task: AbortHandle,
}

impl Proxy {
    pub async fn start(upstream: String) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let down = watch::Sender::new(false);
        let states = down.clone();
        let task = tokio::spawn(async move {
            // Owned here, so stopping the proxy stops every connection.
            let mut connections = JoinSet::new();
            while let Ok((client, _)) = listener.accept().await {
                connections.spawn(forward(client, upstream.clone(), states.subscribe()));
            }
        });
        Proxy {
            port,
            down,
            task: task.abort_handle(),
        }
    }

    pub fn set_down(&self, down: bool) {
        self.down.send_replace(down);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn forward(mut client: TcpStream, upstream: String, mut down: watch::Receiver<bool>) {
    if !*down.borrow_and_update() {
        let Ok(mut server) = TcpStream::connect(&upstream).await else {
            return;
        };
        tokio::select! {
            _ = tokio::io::copy_bidirectional(&mut client, &mut server) => return,
            _ = down.wait_for(|down| *down) => {}
        }
    }
    // Silent: keep the client's socket open, unanswered, until the proxy is back up.
    let _ = down.wait_for(|down| !*down).await;
}
