//! `join-storm`: K users open one cold room holding H messages at the same instant.
//!
//! 1. Seeding: ⌈H / 10⌉ users (`--seed-per-user`) send H messages in parallel, each at
//!    most 10, 1.05 s apart (within the rate limits), waiting for every ack; so seeding
//!    takes ≈ 10 s whatever H.
//! 2. The seeders leave; the bench waits until `GET /api/rooms` shows nobody online (the
//!    room's cache is then dropped: the storm's first join loads from the store).
//! 3. K users, registered and signed in beforehand, wait on one signal, then all open
//!    their socket at once. Each joiner's time runs from that signal until it holds
//!    `joined` and a complete `history`: the latest min(H, `--history-on-join`) messages,
//!    contiguous, ending at the newest `seq`.
//!
//! A server without a store (the baseline answers `"store": false`) is detected: nothing
//! is seeded and an empty history is expected (`--expect-history` overrides).

use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Result};
use clap::Args;
use futures_util::StreamExt;
use tokio::sync::watch;
use tokio::time::{sleep, timeout, Instant};

use crate::report::{progress, Latency, Report};
use crate::seed;
use crate::setup::{self, phase, Ctx, HistMsg, User};

#[derive(Args, Debug)]
pub struct JoinStormArgs {
    /// Users joining at once.
    #[arg(long, default_value_t = 100)]
    pub joiners: usize,
    /// Messages seeded into the room before the storm.
    #[arg(long, default_value_t = 100)]
    pub history: usize,
    /// Messages per seeding user (1–10: the per-minute limit).
    #[arg(long, default_value_t = 10)]
    pub seed_per_user: usize,
    /// Seeded messages reply to their sender's previous one (all but each seeder's first),
    /// so a history served from the cache has its replies' targets to resolve.
    #[arg(long)]
    pub seed_replies: bool,
    /// The server's HISTORY_ON_JOIN: how many messages a complete history holds.
    #[arg(long, default_value_t = 50)]
    pub history_on_join: usize,
    /// Expect exactly this many messages in each history (default: min(seeded, --history-on-join);
    /// 0 against a server without a store).
    #[arg(long)]
    pub expect_history: Option<usize>,
}

enum Outcome {
    Complete(Duration),
    Incomplete { got: usize, last_seq: u64 },
    Failed(String),
}

pub async fn run(ctx: Arc<Ctx>, a: JoinStormArgs) -> Result<bool> {
    if a.joiners == 0 {
        bail!("--joiners must be ≥ 1");
    }
    let per_user = a.seed_per_user.clamp(1, 10);
    let seeders = a.history.div_ceil(per_user);
    crate::check_nofile(ctx.nofile, a.joiners.max(seeders))?;

    let n_users = a.joiners.max(seeders).max(1);
    progress(
        &ctx,
        format_args!("join-storm: registering {n_users} users"),
    );
    let users = ctx.register_users("j", n_users).await?;
    let slug = ctx
        .create_room(&users[0], &format!("{} join storm", ctx.prefix))
        .await?;
    let has_store = ctx.has_store(&users[0], &slug).await?;

    let seed_started = Instant::now();
    let seed = if has_store && a.history > 0 {
        progress(
            &ctx,
            format_args!(
                "join-storm: {seeders} users seed {} messages (≈ {per_user} s)",
                a.history
            ),
        );
        seed::room(
            &ctx,
            &users[..seeders],
            &slug,
            a.history,
            per_user,
            a.seed_replies,
        )
        .await?
    } else {
        if !has_store {
            progress(&ctx, "join-storm: the server has no store (\"store\": false): nothing seeded, empty history expected");
        }
        seed::Seeded::default()
    };
    let seed_time = seed_started.elapsed();

    // Cold room: nobody online, so the cache is gone.
    let cold = phase("waiting for the room to empty", ctx.phase_timeout, async {
        loop {
            match ctx.room_online(&users[0], &slug).await {
                Some(0) => return true,
                None => return false,
                Some(_) => sleep(Duration::from_millis(100)).await,
            }
        }
    })
    .await?;
    sleep(Duration::from_secs(1)).await;

    let expected = a.expect_history.unwrap_or(if has_store {
        (seed.newest as usize).min(a.history_on_join)
    } else {
        0
    });

    progress(
        &ctx,
        format_args!("join-storm: {} joiners open the room at once", a.joiners),
    );
    let (go_tx, go_rx) = watch::channel(None::<Instant>);
    let (done_tx, mut done_rx) = tokio::sync::mpsc::channel(a.joiners);
    let (finish_tx, finish_rx) = watch::channel(false);
    let mut tasks = Vec::with_capacity(a.joiners);
    for user in users.iter().take(a.joiners) {
        tasks.push(tokio::spawn(joiner(
            ctx.clone(),
            user.clone(),
            slug.clone(),
            expected,
            seed.newest,
            go_rx.clone(),
            done_tx.clone(),
            finish_rx.clone(),
        )));
    }
    drop(done_tx);
    // Let every task reach the barrier before the signal.
    sleep(Duration::from_millis(300)).await;
    let t0 = Instant::now();
    go_tx.send_replace(Some(t0));
    let mut outcomes = Vec::with_capacity(a.joiners);
    let storm = timeout(ctx.phase_timeout, async {
        while let Some(o) = done_rx.recv().await {
            outcomes.push(o);
        }
    })
    .await;
    let storm_time = t0.elapsed();
    finish_tx.send_replace(true);
    let _ = phase(
        "closing sockets",
        ctx.phase_timeout,
        futures_util::future::join_all(tasks),
    )
    .await;

    let mut lat = Latency::new();
    let (mut incomplete, mut failed) = (0u64, 0u64);
    let mut first_problem = None;
    for o in &outcomes {
        match o {
            Outcome::Complete(d) => lat.record(*d),
            Outcome::Incomplete { got, last_seq } => {
                incomplete += 1;
                first_problem.get_or_insert(format!(
                    "incomplete history: {got} messages ending at seq {last_seq}, expected {expected} ending at {}",
                    seed.newest
                ));
            }
            Outcome::Failed(e) => {
                failed += 1;
                first_problem.get_or_insert(e.clone());
            }
        }
    }
    // Joiners that never reported before the time limit.
    failed += (a.joiners - outcomes.len()) as u64;
    if storm.is_err() {
        first_problem.get_or_insert(format!(
            "storm did not finish within {:?}",
            ctx.phase_timeout
        ));
    }

    let mut r = Report::new("join-storm", &ctx);
    r.int("joiners", a.joiners as u64)
        .int("seeded", seed.acked)
        .int("newest_seq", seed.newest)
        .int("expected_history", expected as u64)
        .field(
            "store",
            serde_json::json!(has_store),
            if has_store {
                "yes"
            } else {
                "no (history not checked beyond being empty)"
            }
            .into(),
        )
        .field(
            "cold",
            serde_json::json!(cold),
            if cold {
                "yes (nobody online before the storm)"
            } else {
                "unknown (no GET /api/rooms)"
            }
            .into(),
        )
        .float("seed_s", seed_time.as_secs_f64(), 1)
        .counts("seed_errors", &seed.errors)
        .int("complete", lat.count())
        .int("incomplete", incomplete)
        .int("failed", failed)
        .latency("join_us", &lat)
        .float("total_ms", storm_time.as_secs_f64() * 1000.0, 1);
    if let Some(p) = first_problem {
        r.text("first_problem", &p);
    }
    r.must_be_zero("incomplete histories", incomplete)
        .must_be_zero("failed joins", failed);
    Ok(r.print(ctx.json_only))
}

/// Is `history` exactly the latest `expected` messages, ending at `newest`, each reply
/// quoting its target (a seeded target is never empty)?
fn complete(history: &[HistMsg], expected: usize, newest: u64) -> bool {
    if history.len() != expected {
        return false;
    }
    let quoted = |m: &HistMsg| m.reply_to.as_ref().is_none_or(|to| !to.excerpt.is_empty());
    if !history.iter().all(quoted) {
        return false;
    }
    if expected == 0 {
        return true;
    }
    history.last().map(|m| m.seq) == Some(newest)
        && history.windows(2).all(|w| w[1].seq == w[0].seq + 1)
}

#[allow(clippy::too_many_arguments)]
async fn joiner(
    ctx: Arc<Ctx>,
    user: User,
    slug: String,
    expected: usize,
    newest: u64,
    mut go: watch::Receiver<Option<Instant>>,
    done: tokio::sync::mpsc::Sender<Outcome>,
    mut finish: watch::Receiver<bool>,
) {
    let t0 = loop {
        if let Some(t0) = *go.borrow_and_update() {
            break t0;
        }
        if go.changed().await.is_err() {
            return;
        }
    };
    let joined = ctx.connect(&user, &slug, ctx.phase_timeout).await;
    let elapsed = t0.elapsed();
    let mut ws = match joined {
        Ok(j) => {
            let outcome = if complete(&j.history, expected, newest) {
                Outcome::Complete(elapsed)
            } else {
                Outcome::Incomplete {
                    got: j.history.len(),
                    last_seq: j.history.last().map_or(0, |m| m.seq),
                }
            };
            let _ = done.send(outcome).await;
            j.ws
        }
        Err(e) => {
            let _ = done.send(Outcome::Failed(format!("{e:#}"))).await;
            return;
        }
    };
    drop(done);
    // Stay in the room until every joiner is done, so the storm sees a full room.
    loop {
        tokio::select! {
            _ = finish.changed() => break,
            msg = ws.next() => if !matches!(msg, Some(Ok(_))) { break },
        }
    }
    setup::close(ws).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(seqs: &[u64]) -> Vec<HistMsg> {
        seqs.iter()
            .map(|&seq| HistMsg {
                seq,
                reply_to: None,
            })
            .collect()
    }

    #[test]
    fn completeness() {
        assert!(complete(&h(&[]), 0, 0));
        assert!(complete(&h(&[3, 4, 5]), 3, 5));
        assert!(!complete(&h(&[3, 5]), 2, 5));
        assert!(!complete(&h(&[2, 3, 4]), 3, 5));
        assert!(!complete(&h(&[4, 5]), 3, 5));
    }

    #[test]
    fn a_reply_must_quote_its_target() {
        let quoting = |excerpt: &str| {
            let mut history = h(&[4, 5]);
            history[1].reply_to = Some(crate::setup::ReplyTo {
                excerpt: excerpt.into(),
            });
            history
        };
        assert!(complete(&quoting("seed message 0.3"), 2, 5));
        assert!(!complete(&quoting(""), 2, 5), "an unresolved quote");
    }
}
