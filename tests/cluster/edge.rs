//! A real `natter serve` process at the edge of the system (CONTRACT §7a): signals, and
//! running out of file descriptors. The store is SQLite in a directory of the test's own,
//! so these need no shared services.

use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};

use crate::support::{eventually, free_port, status};
use natter_test_support::{register, WAIT};

/// A `natter serve` whose log the test reads.
struct Process {
    child: Child,
    addr: SocketAddr,
    log: Arc<Mutex<Vec<String>>>,
    _dir: tempfile::TempDir,
}

impl Process {
    /// Started with `env`, and with at most `open_files` descriptors when given (soft and
    /// hard: natter raises its soft limit to the hard one).
    async fn start(env: &[(&str, &str)], open_files: Option<u64>) -> Process {
        let dir = tempfile::tempdir().unwrap();
        let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let mut command = Command::new(env!("CARGO_BIN_EXE_natter"));
        command
            .arg("serve")
            .current_dir(dir.path())
            .env_clear()
            .env("BIND", addr.to_string())
            .env("SECRET_KEY", "test-secret-key-with-enough-length")
            // Every test user registers from 127.0.0.1.
            .env("REGISTRATIONS_PER_ADDRESS_PER_HOUR", "1000000")
            .env("RUST_LOG", "warn")
            .envs(env.iter().copied())
            // The log goes to stdout.
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true);
        if let Some(limit) = open_files {
            // SAFETY: setrlimit is async-signal-safe and touches only the struct given.
            unsafe {
                command.pre_exec(move || {
                    let limit = libc::rlimit {
                        rlim_cur: limit,
                        rlim_max: limit,
                    };
                    if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        }
        let mut child = command.spawn().expect("natter starts");
        let log = Arc::new(Mutex::new(Vec::new()));
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let sink = log.clone();
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                eprintln!("natter: {line}");
                sink.lock().unwrap().push(line);
            }
        });
        let process = Process {
            child,
            addr,
            log,
            _dir: dir,
        };
        let url = process.url("/readyz");
        eventually("natter becomes ready", WAIT, || {
            let url = url.clone();
            async move { status(url).await == Some(200) }
        })
        .await;
        process
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    fn signal(&self, signal: libc::c_int) {
        let pid = self.child.id().expect("still running") as i32;
        // SAFETY: kill(2) on our own child has no memory effects.
        assert_eq!(unsafe { libc::kill(pid, signal) }, 0);
    }

    fn log_lines_with(&self, text: &str) -> usize {
        self.log
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.contains(text))
            .count()
    }
}

#[tokio::test]
async fn sigusr_is_ignored_and_sighup_and_sigint_stop_cleanly_like_sigterm() {
    for stop in [libc::SIGHUP, libc::SIGINT] {
        let mut natter = Process::start(&[], None).await;
        let alice = register(natter.addr, "alice").await;
        let slug = alice.create_room("general").await;
        let mut ws = alice.connect(&slug).await;
        assert_eq!(ws.say("before", "b").await["type"], "ack");

        for ignored in [libc::SIGUSR1, libc::SIGUSR2] {
            natter.signal(ignored);
        }
        // Give a fatal default action time to happen before looking.
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(
            matches!(natter.child.try_wait(), Ok(None)),
            "SIGUSR1/SIGUSR2 must not end the process"
        );
        assert_eq!(status(natter.url("/healthz")).await, Some(200));

        let signalled = Instant::now();
        natter.signal(stop);
        assert_eq!(ws.closed().await, Some(1001), "signal {stop}");
        let exit = tokio::time::timeout(Duration::from_secs(10), natter.child.wait())
            .await
            .expect("exits within 10 s")
            .unwrap();
        assert!(exit.success(), "signal {stop}: {exit:?}");
        assert!(signalled.elapsed() < Duration::from_secs(10));
    }
}

#[tokio::test]
async fn out_of_descriptors_the_server_keeps_serving_and_logs_it_rarely() {
    const FAILED: &str = "accept failed";
    let natter = Process::start(&[], Some(128)).await;
    let alice = register(natter.addr, "alice").await;
    let slug = alice.create_room("general").await;
    let mut ws = alice.connect(&slug).await;

    // Idle connections until natter has no descriptor left to accept one more, then some
    // more that wait in the listen queue.
    let mut idle = Vec::new();
    let deadline = Instant::now() + WAIT;
    while natter.log_lines_with(FAILED) == 0 {
        assert!(Instant::now() < deadline, "accept never failed");
        for _ in 0..10 {
            idle.push(TcpStream::connect(natter.addr).await.unwrap());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for _ in 0..20 {
        idle.push(TcpStream::connect(natter.addr).await.unwrap());
    }
    // Failing for a while, as a real exhaustion does.
    tokio::time::sleep(Duration::from_secs(2)).await;

    // What it has is still served.
    assert_eq!(
        ws.say("while out of descriptors", "e1").await["type"],
        "ack"
    );

    // Descriptors come back, and the probe that waited is answered within seconds.
    idle.truncate(idle.len().saturating_sub(60));
    eventually("/healthz answers", Duration::from_secs(10), || async {
        status(natter.url("/healthz")).await == Some(200)
    })
    .await;
    assert_eq!(
        status(natter.url("/api/rooms")).await,
        Some(401),
        "and the API"
    );

    let failures = natter.log_lines_with(FAILED);
    assert!(
        failures <= 2,
        "{failures} lines of {FAILED:?}: the log must not flood"
    );
}
