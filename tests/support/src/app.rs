//! A real natter on an ephemeral port, with storage of its own: a fresh SQLite file, or,
//! for a test run on the shared backend ([`on_backend`]), a PostgreSQL database (from
//! `TEST_DATABASE_URL`) and Redis key prefix (on `TEST_REDIS_URL`) of the test's own, so
//! the same tests prove the production topology; both are removed when the test ends.

use std::collections::HashMap;
use std::net::SocketAddr;

use natter::app::App;
use natter::config::Config;
use tokio_util::sync::CancellationToken;

use crate::client::{browser, register, TestUser};
use crate::{missing_service, TestDatabase, TestRedis, WAIT};

/// A PostgreSQL database and a Redis prefix of a test's own (on `TEST_DATABASE_URL` and
/// `TEST_REDIS_URL`).
pub async fn shared_services() -> (TestDatabase, TestRedis) {
    let (Ok(database), Ok(redis)) = (
        std::env::var("TEST_DATABASE_URL"),
        std::env::var("TEST_REDIS_URL"),
    ) else {
        missing_service("PostgreSQL + Redis (TEST_DATABASE_URL, TEST_REDIS_URL)");
    };
    (
        TestDatabase::create(&database).await,
        TestRedis::new(&redis),
    )
}

/// Which backend a test's apps use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendKind {
    /// SQLite, with cache, presence, limiter and bus in the process.
    Embedded,
    /// PostgreSQL + Redis.
    Shared,
}

tokio::task_local! {
    static BACKEND: BackendKind;
}

/// Runs a test body with `kind` as the backend its apps get ([`Backend::new`]).
pub async fn on_backend(kind: BackendKind, test: impl std::future::Future<Output = ()>) {
    BACKEND.scope(kind, test).await
}

/// Where an app keeps its data; kept across a restart of the app.
pub struct Backend {
    dir: tempfile::TempDir,
    /// Shared by the apps of a pair ([`TestApp::spawn_pair`]); dropped with the last.
    shared: Option<std::sync::Arc<(TestDatabase, TestRedis)>>,
}

impl Backend {
    /// The backend of the running test: the one [`on_backend`] set, else embedded.
    pub async fn new() -> Backend {
        let shared = match BACKEND.try_with(|kind| *kind) {
            Ok(BackendKind::Shared) => Some(std::sync::Arc::new(shared_services().await)),
            Ok(BackendKind::Embedded) | Err(_) => None,
        };
        Backend {
            dir: tempfile::tempdir().expect("temp dir"),
            shared,
        }
    }

    /// SQLite in a directory of its own, whatever the test's backend: for tests of
    /// what only the embedded store has (its file).
    pub fn embedded() -> Backend {
        Backend {
            dir: tempfile::tempdir().expect("temp dir"),
            shared: None,
        }
    }

    /// PostgreSQL + Redis of the test's own, whatever the test's backend.
    pub async fn shared() -> Backend {
        Backend {
            dir: tempfile::tempdir().expect("temp dir"),
            shared: Some(std::sync::Arc::new(shared_services().await)),
        }
    }

    /// The same database and Redis prefix, for a second process of one service.
    pub fn alongside(&self) -> Backend {
        Backend {
            dir: tempfile::tempdir().expect("temp dir"),
            shared: Some(
                self.shared
                    .clone()
                    .expect("processes share PostgreSQL + Redis, not a SQLite file"),
            ),
        }
    }

    /// The SQLite file, when the store is SQLite.
    pub fn sqlite_file(&self) -> Option<std::path::PathBuf> {
        self.shared
            .is_none()
            .then(|| self.dir.path().join("natter.db"))
    }

    /// The app's store, opened beside it: to put in place what the API cannot make
    /// quickly (the send rule allows one message per second per user).
    pub async fn store(&self) -> std::sync::Arc<dyn natter::ports::Store> {
        let url = &self.vars()[0].1;
        if url.starts_with("sqlite:") {
            std::sync::Arc::new(
                natter::adapters::sqlite::SqliteStore::connect(url)
                    .await
                    .unwrap(),
            )
        } else {
            std::sync::Arc::new(
                natter::adapters::postgres::PgStore::connect(url)
                    .await
                    .unwrap(),
            )
        }
    }

    fn vars(&self) -> Vec<(String, String)> {
        match &self.shared {
            None => vec![(
                "DATABASE_URL".into(),
                format!("sqlite://{}", self.dir.path().join("natter.db").display()),
            )],
            Some(services) => {
                let (database, redis) = &**services;
                vec![
                    ("DATABASE_URL".into(), database.url.clone()),
                    ("REDIS_URL".into(), redis.url.clone()),
                    ("REDIS_KEY_PREFIX".into(), redis.prefix.clone()),
                ]
            }
        }
    }
}

pub struct TestApp {
    pub addr: SocketAddr,
    shutdown: CancellationToken,
    running: tokio::task::JoinHandle<()>,
    pub backend: Backend,
}

impl TestApp {
    pub async fn spawn() -> TestApp {
        TestApp::spawn_with(&[]).await
    }

    /// Two apps in this process on one PostgreSQL + Redis: one service, two processes' worth
    /// of everything (hub, bus link, presence instance), without the cost of real
    /// processes (`tests/cluster` keeps those, for kill -9). Needs `TEST_DATABASE_URL` and
    /// `TEST_REDIS_URL`: mark its tests `#[ignore = "needs TEST_DATABASE_URL and TEST_REDIS_URL"]`.
    pub async fn spawn_pair() -> (TestApp, TestApp) {
        let backend = Backend::shared().await;
        let second = backend.alongside();
        (
            TestApp::spawn_in(backend, &[]).await,
            TestApp::spawn_in(second, &[]).await,
        )
    }

    /// Two signed-in users in a new room: `(first, second, slug)`.
    pub async fn two_in_a_room(&self, room: &str) -> (TestUser, TestUser, String) {
        let first = self.user("alice").await;
        let second = self.user("bob").await;
        let slug = first.create_room(room).await;
        (first, second, slug)
    }

    /// Starts an app with these variables on top of the test defaults.
    pub async fn spawn_with(vars: &[(&str, &str)]) -> TestApp {
        TestApp::spawn_in(Backend::new().await, vars).await
    }

    /// Starts an app on `backend` (so a restart finds the same data).
    pub async fn spawn_in(backend: Backend, vars: &[(&str, &str)]) -> TestApp {
        let mut map: HashMap<String, String> = HashMap::from([
            ("BIND".into(), "127.0.0.1:0".into()),
            (
                "SECRET_KEY".into(),
                "test-secret-key-with-enough-length".into(),
            ),
            // Every test user registers from 127.0.0.1; the tests of this limit set it.
            (
                "REGISTRATIONS_PER_ADDRESS_PER_HOUR".into(),
                "1000000".into(),
            ),
            // Tests make rooms freely; the tests of CONTRACT §9's limit set it.
            ("ROOM_CREATE_LIMIT".into(), "10000".into()),
        ]);
        map.extend(backend.vars());
        for (k, v) in vars {
            map.insert(k.to_string(), v.to_string());
        }
        let config =
            Config::from_lookup(|name| map.get(name).cloned()).expect("test config is valid");
        let app = App::build(config).await.expect("app starts");
        let addr = app.local_addr();
        let shutdown = app.shutdown_token();
        let running = tokio::spawn(app.run());
        TestApp {
            addr,
            shutdown,
            running,
            backend,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// A client that keeps cookies and does not follow redirects.
    pub fn browser(&self) -> reqwest::Client {
        browser()
    }

    /// A registered, signed-in user.
    pub async fn user(&self, name: &str) -> TestUser {
        register(self.addr, name).await
    }

    /// The value of one Prometheus sample, e.g. `natter_history_loads_total{source="store"}`.
    pub async fn metric(&self, sample: &str) -> f64 {
        let text = reqwest::get(self.url("/metrics"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        text.lines()
            .find_map(|line| {
                line.strip_prefix(sample)
                    .and_then(|rest| rest.trim().parse().ok())
            })
            .unwrap_or_else(|| panic!("no sample {sample} in\n{text}"))
    }

    /// Stops the app as SIGTERM would, and waits for it.
    pub async fn stop(self) -> Backend {
        self.shutdown.cancel();
        tokio::time::timeout(WAIT, self.running)
            .await
            .expect("app stops in time")
            .expect("app task");
        self.backend
    }
}
