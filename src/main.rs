//! The `natter` binary: `natter serve` (the default) or `natter migrate`.

use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use natter::app::{self, App};
use natter::config::Config;
use natter::telemetry;

/// A real-time chat server. Configuration comes from the environment and `.env`.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve HTTP and WebSockets (the default).
    Serve,
    /// Apply database migrations and exit.
    Migrate,
}

/// The whole shutdown (sockets, requests, store) must end within the contract's 10 s.
const SHUTDOWN_LIMIT: Duration = Duration::from_secs(9);

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    telemetry::init_tracing();
    let config = match Config::from_env() {
        Ok(config) => config,
        Err(e) => {
            eprintln!("natter: configuration error: {e}");
            return ExitCode::from(2);
        }
    };
    match cli.command.unwrap_or(Command::Serve) {
        Command::Migrate => match app::migrate(&config).await {
            Ok(()) => {
                tracing::info!("migrations applied");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("natter: {e}");
                ExitCode::FAILURE
            }
        },
        Command::Serve => serve(config).await,
    }
}

async fn serve(config: Config) -> ExitCode {
    let signals = Signals::install();
    raise_open_file_limit();
    return_large_allocations_to_the_system();
    let app = match App::build(config).await {
        Ok(app) => app,
        Err(e) => {
            eprintln!("natter: {e}");
            return ExitCode::FAILURE;
        }
    };
    tracing::info!("natter listening on http://{}", app.local_addr());
    let shutdown = app.shutdown_token();
    let running = tokio::spawn(app.run());
    signals.stop_requested().await;
    tracing::info!("signal received; stopping");
    shutdown.cancel();
    match tokio::time::timeout(SHUTDOWN_LIMIT, running).await {
        Ok(_) => ExitCode::SUCCESS,
        Err(_) => {
            tracing::error!("shutdown took too long; exiting anyway");
            ExitCode::FAILURE
        }
    }
}

/// Every socket is a file descriptor; the usual soft limit of 1024 would cap natter at
/// about a thousand connections, so use the hard limit the system allows.
fn raise_open_file_limit() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct passed to them.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 && limit.rlim_cur < limit.rlim_max
        {
            limit.rlim_cur = limit.rlim_max;
            if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
                tracing::warn!("could not raise the open file limit");
            }
        }
    }
}

/// Argon2 needs 19 MiB per hash. glibc raises its mmap threshold after freeing such a
/// block, so later ones come from the heap and are kept: memory grew with every
/// concurrent registration and never shrank (docs/BENCHMARKS.md). A fixed threshold keeps
/// big blocks mmapped, so they go back to the system when freed.
fn return_large_allocations_to_the_system() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator tuning; called before the heavy allocations.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 20);
    }
}

/// Until SIGTERM, SIGINT or SIGHUP: all three mean "stop cleanly" (CONTRACT §7, §7a). A
/// terminal closing, or `kill -HUP` meant as "reload", must not drop acknowledged work.
/// SIGUSR1 and SIGUSR2, whose default is to kill, are logged and otherwise ignored.
#[cfg(unix)]
struct Signals {
    stop: Vec<tokio::signal::unix::Signal>,
}

#[cfg(unix)]
impl Signals {
    /// Installed before anything is served, so no signal arrives to its default action.
    fn install() -> Signals {
        use tokio::signal::unix::{signal, SignalKind};
        let stop = [
            SignalKind::terminate(),
            SignalKind::interrupt(),
            SignalKind::hangup(),
        ]
        .into_iter()
        .filter_map(|kind| match signal(kind) {
            Ok(stream) => Some(stream),
            Err(e) => {
                tracing::warn!(error = %e, signal = ?kind, "cannot handle signal");
                None
            }
        })
        .collect();
        for (kind, name) in [
            (SignalKind::user_defined1(), "SIGUSR1"),
            (SignalKind::user_defined2(), "SIGUSR2"),
        ] {
            match signal(kind) {
                Ok(mut stream) => {
                    tokio::spawn(async move {
                        while stream.recv().await.is_some() {
                            tracing::info!("{name} received; it means nothing to natter, ignored");
                        }
                    });
                }
                Err(e) => tracing::warn!(error = %e, "cannot handle {name}"),
            }
        }
        Signals { stop }
    }

    async fn stop_requested(mut self) {
        let waits = self
            .stop
            .iter_mut()
            .map(|signal| Box::pin(signal.recv()))
            .collect::<Vec<_>>();
        if waits.is_empty() {
            std::future::pending::<()>().await;
        }
        futures_util::future::select_all(waits).await;
    }
}

#[cfg(not(unix))]
struct Signals;

#[cfg(not(unix))]
impl Signals {
    fn install() -> Signals {
        Signals
    }

    async fn stop_requested(self) {
        let _ = tokio::signal::ctrl_c().await;
    }
}
