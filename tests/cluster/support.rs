//! Real `natter serve` processes and a private `redis-server` that a test may restart
//! (the proxy that cuts PostgreSQL off is `natter_test_support::proxy`).

use std::net::SocketAddr;
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::net::TcpStream;
use tokio::process::{Child, Command};

use natter_test_support::{TestDatabase, TestRedis, QUICK_SENDS, WAIT};

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Polls `check` every 50 ms until it is true; panics after `limit`.
pub async fn eventually<F, Fut>(what: &str, limit: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{what}: not within {limit:?}");
}

pub async fn status(url: String) -> Option<u16> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    client
        .get(url)
        .send()
        .await
        .ok()
        .map(|r| r.status().as_u16())
}

/// The variables that point a process at the shared services.
pub fn shared_env(database_url: &str, redis_url: &str, prefix: &str) -> Vec<(String, String)> {
    vec![
        ("DATABASE_URL".into(), database_url.into()),
        ("REDIS_URL".into(), redis_url.into()),
        ("REDIS_KEY_PREFIX".into(), prefix.into()),
    ]
}

pub fn env_of(database: &TestDatabase, redis: &TestRedis) -> Vec<(String, String)> {
    shared_env(&database.url, &redis.url, &redis.prefix)
}

/// `env` plus [`QUICK_SENDS`], for a test that paces its sends.
pub fn with_quick_sends(mut env: Vec<(String, String)>) -> Vec<(String, String)> {
    env.extend(QUICK_SENDS.map(|(name, value)| (name.to_owned(), value.to_owned())));
    env
}

/// One `natter serve` process.
pub struct Natter {
    child: Child,
    pub addr: SocketAddr,
}

impl Natter {
    pub async fn start(env: &[(String, String)]) -> Natter {
        let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_natter"))
            .arg("serve")
            .env_clear()
            .env("BIND", addr.to_string())
            .env("SECRET_KEY", "test-secret-key-with-enough-length")
            // Every test user registers from 127.0.0.1.
            .env("REGISTRATIONS_PER_ADDRESS_PER_HOUR", "1000000")
            .env("ROOM_CREATE_LIMIT", "10000")
            .env("RUST_LOG", "warn")
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("natter starts");
        let natter = Natter { child, addr };
        let url = natter.url("/readyz");
        eventually("natter becomes ready", WAIT, || {
            let url = url.clone();
            async move { status(url).await == Some(200) }
        })
        .await;
        natter
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// kill -9: no cleanup of any kind.
    pub async fn kill(&mut self) {
        self.child.kill().await.expect("kill -9");
    }

    /// Whether the process is still running.
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for Natter {
    /// Kills the process and waits for it, so it cannot write to Redis after the test's
    /// keys are cleaned up.
    fn drop(&mut self) {
        let _ = self.child.start_kill();
        for _ in 0..100 {
            if !matches!(self.child.try_wait(), Ok(None)) {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// A `redis-server` of the test's own, on its own port, that keeps nothing on disk: a
/// restart loses every key, as a real Redis restart without persistence does.
pub struct PrivateRedis {
    pub port: u16,
    child: Option<Child>,
}

impl PrivateRedis {
    /// A `redis-server` of the test's own (its tests are `#[ignore = "needs …"]`, which
    /// CI runs with `--include-ignored`).
    pub async fn start() -> PrivateRedis {
        let mut redis = PrivateRedis {
            port: free_port(),
            child: None,
        };
        if !redis.launch().await {
            natter_test_support::missing_service("redis-server (for the Redis restart tests)");
        }
        redis
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    async fn launch(&mut self) -> bool {
        let spawned = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn();
        let Ok(child) = spawned else { return false };
        self.child = Some(child);
        let port = self.port;
        eventually("redis-server listens", WAIT, || async move {
            TcpStream::connect(("127.0.0.1", port)).await.is_ok()
        })
        .await;
        true
    }

    /// Kills the server and starts a fresh, empty one on the same port.
    pub async fn restart(&mut self) {
        self.stop().await;
        self.start_again().await;
    }

    /// kill -9: every connection to it drops, new ones are refused.
    pub async fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().await.expect("kill redis-server");
        }
    }

    /// A fresh, empty server on the same port, after [`Self::stop`].
    pub async fn start_again(&mut self) {
        assert!(self.launch().await, "redis-server restarts");
    }
}
