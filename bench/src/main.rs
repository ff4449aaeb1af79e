//! natter-bench: natter's load generator.
//!
//! It speaks only the public contract (the JSON API over HTTP and the WebSocket frames),
//! so it runs unchanged against natter (one or several processes) and against the bare
//! baseline server. It only ever targets loopback addresses, and every phase is bounded
//! in time: a run always ends.
//!
//! Each scenario prints a human table on stderr (unless `--json-only`) and exactly one
//! JSON line on stdout, `{"scenario":"…",…}`, for scripts.

mod changes;
mod fanout;
mod idle;
mod join_storm;
mod report;
mod room_list;
mod seed;
mod send_storm;
mod setup;
mod summary;

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "natter-bench",
    about = "Load generator for natter (and the baseline): fan-out, message changes, idle sockets, join storm, send storm, room list",
    after_help = "Every scenario prints a table on stderr and one JSON line on stdout, and exits \
                  with 3 when a check that must hold failed (1 on errors, 2 on bad usage). Targets must be \
                  loopback addresses (127.0.0.0/8 or [::1])."
)]
struct Cli {
    #[command(subcommand)]
    scenario: Scenario,
}

#[derive(Subcommand, Debug)]
enum Scenario {
    /// R rooms × M members, one socket each; members take turns sending; measures
    /// deliveries/s and send→receive latency at every receiver.
    Fanout {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        args: fanout::FanoutArgs,
    },
    /// R rooms × M members: half send, half edit their own messages and react to others';
    /// measures `message_updated` delivery next to `message` delivery, and checks every
    /// socket gets every change once, in `rev` order.
    Changes {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        args: changes::ChangesArgs,
    },
    /// N authenticated, joined sockets held open; measures the server's RSS per socket
    /// and checks every socket still answers `ping`.
    Idle {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        args: idle::IdleArgs,
    },
    /// K users open a cold room holding H messages at the same instant; measures the
    /// time until each has `joined` and a complete `history`.
    JoinStorm {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        args: join_storm::JoinStormArgs,
    },
    /// One user in M of R rooms asks for the room list, their rooms, the browse page and a
    /// room page, over and over; measures each one's latency.
    RoomList {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        args: room_list::RoomListArgs,
    },
    /// S senders over R rooms send as fast as the rate limits allow; measures acks/s and
    /// ack latency, then checks every acked message is in the store.
    SendStorm {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        args: send_storm::SendStormArgs,
    },
    /// Markdown tables from a file of JSON lines (one column per `--label`), with ratios
    /// to the baseline.
    Summary(summary::SummaryArgs),
}

/// Flags every scenario takes.
#[derive(Args, Debug, Clone)]
pub struct Common {
    /// Server base URL, e.g. http://127.0.0.1:8000. Give it twice (or comma-separated)
    /// to spread users round-robin over several processes of one service.
    #[arg(long, required = true, value_delimiter = ',')]
    pub target: Vec<String>,
    /// Password of every bench user (8–128 characters).
    #[arg(long, default_value = "natter-bench-password")]
    pub password: String,
    /// Username prefix (letters, digits, `_.-`, at most 16 characters); default: a random
    /// run id, so repeated runs never collide.
    #[arg(long)]
    pub user_prefix: Option<String>,
    /// Print only the JSON line (no table).
    #[arg(long)]
    pub json_only: bool,
    /// Upper bound of every phase (registration, connecting, seeding, verifying …), seconds.
    #[arg(long, default_value_t = 180.0)]
    pub timeout: f64,
    /// Registrations in flight at once (the server hashes passwords in a small pool).
    #[arg(long, default_value_t = 16)]
    pub register_concurrency: usize,
    /// WebSocket handshakes in flight at once while opening sockets (not in join-storm,
    /// whose joiners all connect at once).
    #[arg(long, default_value_t = 200)]
    pub connect_concurrency: usize,
    /// Free-form label copied into the JSON line (e.g. `natter-sqlite`, `baseline`).
    #[arg(long)]
    pub label: Option<String>,
}

impl Common {
    pub fn phase_timeout(&self) -> Duration {
        Duration::from_secs_f64(self.timeout.max(1.0))
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => {
            eprintln!("natter-bench: a check failed (see CHECK FAILED / failed_checks)");
            ExitCode::from(3)
        }
        Err(e) => {
            eprintln!("natter-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Runs the chosen scenario; `Ok(false)` when a check that must hold failed.
fn run(cli: Cli) -> Result<bool> {
    if let Scenario::Summary(args) = cli.scenario {
        summary::run(args)?;
        return Ok(true);
    }
    let nofile = raise_nofile_limit();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("building the tokio runtime")?;
    let ok = runtime.block_on(async move {
        match cli.scenario {
            Scenario::Fanout { common, args } => {
                let ctx = Arc::new(setup::Ctx::new(&common, nofile)?);
                fanout::run(ctx, args).await
            }
            Scenario::Changes { common, args } => {
                let ctx = Arc::new(setup::Ctx::new(&common, nofile)?);
                changes::run(ctx, args).await
            }
            Scenario::Idle { common, args } => {
                let ctx = Arc::new(setup::Ctx::new(&common, nofile)?);
                idle::run(ctx, args).await
            }
            Scenario::JoinStorm { common, args } => {
                let ctx = Arc::new(setup::Ctx::new(&common, nofile)?);
                join_storm::run(ctx, args).await
            }
            Scenario::RoomList { common, args } => {
                let ctx = Arc::new(setup::Ctx::new(&common, nofile)?);
                room_list::run(ctx, args).await
            }
            Scenario::SendStorm { common, args } => {
                let ctx = Arc::new(setup::Ctx::new(&common, nofile)?);
                send_storm::run(ctx, args).await
            }
            Scenario::Summary(_) => unreachable!("handled above"),
        }
    })?;
    // Sockets still closing must not hold the exit up.
    runtime.shutdown_timeout(Duration::from_secs(1));
    Ok(ok)
}

/// Raises this process's open-file limit to the hard limit (10,000+ sockets need it);
/// returns the soft limit in force afterwards.
#[allow(clippy::unnecessary_cast)] // rlim_t is not u64 everywhere
fn raise_nofile_limit() -> u64 {
    // SAFETY: getrlimit/setrlimit only read and write the struct we pass them.
    unsafe {
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return 1024;
        }
        if lim.rlim_cur < lim.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: lim.rlim_max,
                rlim_max: lim.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                return raised.rlim_cur as u64;
            }
        }
        lim.rlim_cur as u64
    }
}

/// Refuses to start when `sockets` cannot fit under the open-file limit.
pub fn check_nofile(nofile: u64, sockets: usize) -> Result<()> {
    let needed = sockets as u64 + 64;
    if needed > nofile {
        bail!(
            "{sockets} sockets need about {needed} open files but RLIMIT_NOFILE is {nofile} \
             (raise the hard limit, e.g. `ulimit -Hn`, before running)"
        );
    }
    Ok(())
}
