//! `idle`: N authenticated, joined sockets held open. Reads the server's RSS
//! (`/proc/PID/status` VmRSS, summed over every `--server-pid`) before opening them and
//! once all have joined, and reports KiB per socket; at the end every socket sends
//! `ping` and must get `pong`.
//!
//! Users may hold several sockets each (registration costs the server an Argon2 hash):
//! socket `i` belongs to user `i % U` and room `i % R`.
//!
//! With `--history H` each room first gets H messages, so every socket is sent a real
//! `history` on joining, as in a room people use (what a socket keeps after sending it
//! counts too).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::Args;
use futures_util::{SinkExt, StreamExt};
use tokio::sync::{mpsc, watch, Semaphore};
use tokio::time::{sleep, Instant};
use tokio_tungstenite::tungstenite::Message;

use crate::report::{progress, Report};
use crate::setup::{self, phase, Ctx, Frame, User};

#[derive(Args, Debug)]
pub struct IdleArgs {
    /// Sockets to hold open.
    #[arg(long, default_value_t = 100)]
    pub sockets: usize,
    /// Distinct users (default: min(sockets, 1000)).
    #[arg(long)]
    pub users: Option<usize>,
    /// Rooms the sockets are spread over (default: min(sockets, 10)).
    #[arg(long)]
    pub rooms: Option<usize>,
    /// PID of a server process whose RSS to read (repeat for several processes).
    #[arg(long)]
    pub server_pid: Vec<u32>,
    /// Seconds to hold every socket open once all have joined.
    #[arg(long, default_value_t = 5.0)]
    pub hold: f64,
    /// Seconds to wait, once all have joined, before reading the RSS.
    #[arg(long, default_value_t = 1.0)]
    pub settle: f64,
    /// Messages seeded into each room before the sockets open (10 per seeding user, so
    /// this needs rooms × ⌈H / 10⌉ users).
    #[arg(long, default_value_t = 0)]
    pub history: usize,
}

/// What the main task tells every socket.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Cmd {
    Hold,
    Ping,
    Finish,
}

pub async fn run(ctx: Arc<Ctx>, a: IdleArgs) -> Result<bool> {
    let n = a.sockets;
    if n == 0 {
        bail!("--sockets must be ≥ 1");
    }
    let u = a.users.unwrap_or(n.min(1000)).clamp(1, n);
    let rooms = a.rooms.unwrap_or(n.min(10)).clamp(1, n);
    crate::check_nofile(ctx.nofile, n)?;
    for &pid in &a.server_pid {
        rss_kib(pid).with_context(|| format!("--server-pid {pid}"))?;
    }

    progress(&ctx, format_args!("idle: registering {u} users"));
    let users = Arc::new(ctx.register_users("i", u).await?);
    let slugs = Arc::new(ctx.create_rooms(&users[0], "idle", rooms).await?);
    if a.history > 0 {
        let per_room = a.history.div_ceil(10);
        if u < rooms * per_room {
            bail!(
                "--history {} over {rooms} rooms needs --users ≥ {}",
                a.history,
                rooms * per_room
            );
        }
        progress(
            &ctx,
            format_args!(
                "idle: seeding {} messages into each of {rooms} rooms",
                a.history
            ),
        );
        let seeding = slugs.iter().enumerate().map(|(r, slug)| {
            let seeders = &users[r * per_room..(r + 1) * per_room];
            crate::seed::room(&ctx, seeders, slug, a.history, 10, false)
        });
        futures_util::future::try_join_all(seeding).await?;
    }
    let rss_before = total_rss(&a.server_pid)?;

    progress(&ctx, format_args!("idle: opening {n} sockets"));
    let (ready_tx, mut ready_rx) = mpsc::channel(n);
    let (cmd_tx, cmd_rx) = watch::channel(Cmd::Hold);
    let gate = Arc::new(Semaphore::new(ctx.connect_concurrency));
    let pongs = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(n);
    for i in 0..n {
        tasks.push(tokio::spawn(socket(
            ctx.clone(),
            users.clone(),
            slugs.clone(),
            i,
            gate.clone(),
            ready_tx.clone(),
            cmd_rx.clone(),
            pongs.clone(),
        )));
    }
    drop(ready_tx);
    let mut joined = 0u64;
    let mut failures = Vec::new();
    phase("opening sockets", ctx.phase_timeout, async {
        while let Some(r) = ready_rx.recv().await {
            match r {
                Ok(()) => joined += 1,
                Err(e) => failures.push(e),
            }
        }
    })
    .await?;
    let open_time = started.elapsed();
    if let Some(e) = failures.first() {
        progress(
            &ctx,
            format_args!(
                "idle: {} sockets failed to join, first: {e:#}",
                failures.len()
            ),
        );
    }
    progress(
        &ctx,
        format_args!(
            "idle: {joined} sockets joined in {:.1} s",
            open_time.as_secs_f64()
        ),
    );

    sleep(Duration::from_secs_f64(a.settle)).await;
    let rss_after = total_rss(&a.server_pid)?;
    sleep(Duration::from_secs_f64(a.hold)).await;

    cmd_tx.send_replace(Cmd::Ping);
    let ping_deadline = Instant::now() + Duration::from_secs(30).min(ctx.phase_timeout);
    while pongs.load(Ordering::Acquire) < joined && Instant::now() < ping_deadline {
        sleep(Duration::from_millis(20)).await;
    }
    let answered = pongs.load(Ordering::Acquire);
    cmd_tx.send_replace(Cmd::Finish);
    let results = phase(
        "closing sockets",
        ctx.phase_timeout,
        futures_util::future::join_all(tasks),
    )
    .await?;
    let closed_early = results
        .into_iter()
        .filter(|r| matches!(r, Ok(true)))
        .count() as u64;

    let mut r = Report::new("idle", &ctx);
    r.int("sockets", n as u64)
        .int("users", u as u64)
        .int("rooms", rooms as u64)
        .int("history", a.history as u64)
        .int("joined", joined)
        .int("connect_failed", failures.len() as u64)
        .float("open_s", open_time.as_secs_f64(), 2)
        .float(
            "joins_per_s",
            joined as f64 / open_time.as_secs_f64().max(1e-6),
            0,
        );
    match (rss_before, rss_after) {
        (Some(before), Some(after)) => {
            let per = (after as f64 - before as f64) / (joined.max(1) as f64);
            r.int("rss_before_kib", before)
                .int("rss_after_kib", after)
                .float("kib_per_socket", per, 1);
        }
        _ => {
            r.text("kib_per_socket", "n/a (no --server-pid)");
        }
    }
    r.int("pongs", answered)
        .int("no_pong", joined - answered.min(joined))
        .int("closed_early", closed_early);
    r.must_be_zero("sockets that failed to join", failures.len() as u64)
        .must_be_zero("sockets without pong", joined - answered.min(joined))
        .must_be_zero("sockets closed by the server", closed_early);
    Ok(r.print(ctx.json_only))
}

/// One held socket; returns whether the server closed it before the end.
#[allow(clippy::too_many_arguments)]
async fn socket(
    ctx: Arc<Ctx>,
    users: Arc<Vec<User>>,
    slugs: Arc<Vec<String>>,
    i: usize,
    gate: Arc<Semaphore>,
    ready: mpsc::Sender<Result<()>>,
    mut cmd: watch::Receiver<Cmd>,
    pongs: Arc<AtomicU64>,
) -> bool {
    let user = &users[i % users.len()];
    let slug = &slugs[i % slugs.len()];
    let joined = {
        let _permit = gate.acquire().await;
        ctx.connect(user, slug, ctx.phase_timeout).await
    };
    let mut ws = match joined {
        Ok(j) => j.ws,
        Err(e) => {
            let _ = ready.send(Err(e)).await;
            return false;
        }
    };
    let _ = ready.send(Ok(())).await;
    drop(ready);
    let mut pinged = false;
    let mut closed_early = false;
    loop {
        tokio::select! {
            changed = cmd.changed() => {
                let now = *cmd.borrow_and_update();
                if changed.is_err() || now == Cmd::Finish {
                    break;
                }
                if now == Cmd::Ping && !pinged {
                    pinged = true;
                    if ws.send(setup::ping_frame()).await.is_err() {
                        closed_early = true;
                        break;
                    }
                }
            }
            msg = ws.next() => match msg {
                Some(Ok(Message::Text(text))) => {
                    if pinged && matches!(serde_json::from_str::<Frame>(text.as_str()), Ok(f) if f.kind == "pong") {
                        pongs.fetch_add(1, Ordering::AcqRel);
                    }
                }
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => {
                    closed_early = true;
                    break;
                }
                Some(Ok(_)) => {}
            }
        }
    }
    setup::close(ws).await;
    closed_early
}

/// VmRSS of one process, KiB.
fn rss_kib(pid: u32) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("reading /proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .with_context(|| format!("no VmRSS in /proc/{pid}/status"))
}

fn total_rss(pids: &[u32]) -> Result<Option<u64>> {
    if pids.is_empty() {
        return Ok(None);
    }
    let mut sum = 0;
    for &pid in pids {
        sum += rss_kib(pid)?;
    }
    Ok(Some(sum))
}
