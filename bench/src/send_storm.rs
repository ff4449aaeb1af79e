//! `send-storm`: S senders spread over R rooms send as fast as the rate limits allow,
//! then the bench checks that every acked message is in the store.
//!
//! Schedule (per sender, staggered evenly across senders): one send every
//! `--send-interval-ms` (1.05 s), in bursts of 10; a burst starts no earlier than 61 s
//! after the previous one began. With `--duration` ≤ 10 s (the default) every sender
//! sends once per 1.05 s all along, so S senders offer ≈ S/1.05 messages/s and nobody
//! goes over 1/s or 10 per trailing minute. Longer runs keep within the limits too, but
//! each sender then idles ~50 s of every minute.
//!
//! After the run, every room is paged through `GET /api/rooms/{slug}/messages?before=…
//! &limit=100`; every acked (id, seq) must be there, and the room's seqs must run 1, 2, 3, …
//! with no gap. A server without a store (`"store": false`) skips the check, saying so.

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::Args;
use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::sync::{mpsc, watch, Semaphore};
use tokio::time::{sleep, sleep_until, Instant};
use tokio_tungstenite::tungstenite::Message;

use crate::report::{add_counts, merge_us, progress, Report};
use crate::setup::{self, phase, Ctx, Frame, User};

#[derive(Args, Debug)]
pub struct SendStormArgs {
    /// Rooms the senders are spread over.
    #[arg(long, default_value_t = 10)]
    pub rooms: usize,
    /// Senders (a user and a socket each).
    #[arg(long, default_value_t = 100)]
    pub senders: usize,
    /// Seconds of sending (≤ 10 keeps every sender sending all along).
    #[arg(long, default_value_t = 10.0)]
    pub duration: f64,
    /// Milliseconds between one sender's sends (≥ 1000: the 1 send/s limit).
    #[arg(long, default_value_t = 1050)]
    pub send_interval_ms: u64,
    /// Seconds to wait after the last send for acks in flight.
    #[arg(long, default_value_t = 5.0)]
    pub drain: f64,
    /// Skip the store check.
    #[arg(long)]
    pub no_verify: bool,
}

#[derive(Clone, Copy)]
struct Plan {
    t0: Instant,
    stop: Instant,
}

#[derive(Default)]
struct SenderStats {
    connect_failed: bool,
    closed_early: bool,
    sent: u64,
    acked: Vec<(u64, u64)>,
    ack_us: Vec<u32>,
    deliveries: u64,
    errors: BTreeMap<String, u64>,
    resyncs: u64,
}

pub async fn run(ctx: Arc<Ctx>, a: SendStormArgs) -> Result<bool> {
    if a.rooms == 0 || a.senders == 0 || a.duration <= 0.0 || a.drain < 0.0 {
        bail!("--rooms and --senders must be ≥ 1, --duration > 0, --drain ≥ 0");
    }
    if a.send_interval_ms < 1000 {
        bail!("--send-interval-ms below 1000 breaks the 1 send/s limit");
    }
    let rooms = a.rooms.min(a.senders);
    crate::check_nofile(ctx.nofile, a.senders)?;
    let interval = Duration::from_millis(a.send_interval_ms);

    progress(
        &ctx,
        format_args!("send-storm: registering {} users", a.senders),
    );
    let users = ctx.register_users("s", a.senders).await?;
    let slugs = ctx.create_rooms(&users[0], "send storm", rooms).await?;

    let (ready_tx, mut ready_rx) = mpsc::channel(a.senders);
    let (plan_tx, plan_rx) = watch::channel(None::<Plan>);
    let (finish_tx, finish_rx) = watch::channel(false);
    let gate = Arc::new(Semaphore::new(ctx.connect_concurrency));
    let sent = Arc::new(AtomicU64::new(0));
    let acked = Arc::new(AtomicU64::new(0));
    progress(
        &ctx,
        format_args!("send-storm: opening {} sockets", a.senders),
    );
    let mut tasks = Vec::with_capacity(a.senders);
    for (i, user) in users.iter().enumerate() {
        let offset = interval.mul_f64(i as f64 / a.senders as f64);
        tasks.push(tokio::spawn(sender(
            ctx.clone(),
            user.clone(),
            slugs[i % rooms].clone(),
            i,
            offset,
            interval,
            gate.clone(),
            ready_tx.clone(),
            plan_rx.clone(),
            finish_rx.clone(),
            (sent.clone(), acked.clone()),
        )));
    }
    drop(ready_tx);
    let mut failures = Vec::new();
    phase("opening sockets", ctx.phase_timeout, async {
        while let Some(r) = ready_rx.recv().await {
            if let Err(e) = r {
                failures.push(e);
            }
        }
    })
    .await?;
    if failures.len() == a.senders {
        bail!("no socket could join: {:#}", failures[0]);
    }

    let t0 = Instant::now() + Duration::from_millis(200);
    let stop = t0 + Duration::from_secs_f64(a.duration);
    plan_tx.send_replace(Some(Plan { t0, stop }));
    progress(
        &ctx,
        format_args!("send-storm: sending for {} s", a.duration),
    );
    sleep_until(stop).await;
    let drain_end = Instant::now() + Duration::from_secs_f64(a.drain);
    while acked.load(Ordering::Acquire) < sent.load(Ordering::Acquire) && Instant::now() < drain_end
    {
        sleep(Duration::from_millis(20)).await;
    }
    finish_tx.send_replace(true);

    let results = phase(
        "collecting results",
        ctx.phase_timeout,
        futures_util::future::join_all(tasks),
    )
    .await?;
    let mut total = SenderStats::default();
    let mut acked_by_room: Vec<Vec<(u64, u64)>> = vec![Vec::new(); rooms];
    let mut ack_us = Vec::new();
    let (mut connect_failed, mut closed_early) = (0u64, 0u64);
    for (i, r) in results.into_iter().enumerate() {
        let s = r?;
        connect_failed += u64::from(s.connect_failed);
        closed_early += u64::from(s.closed_early);
        total.sent += s.sent;
        total.deliveries += s.deliveries;
        total.resyncs += s.resyncs;
        add_counts(&mut total.errors, &s.errors);
        acked_by_room[i % rooms].extend(s.acked);
        ack_us.push(s.ack_us);
    }
    let ack_lat = merge_us(ack_us.into_iter().flatten());
    let n_acked: u64 = acked_by_room.iter().map(|v| v.len() as u64).sum();

    let mut r = Report::new("send-storm", &ctx);
    r.int("rooms", rooms as u64)
        .int("senders", a.senders as u64)
        .int("connect_failed", connect_failed)
        .float("duration_s", a.duration, 1)
        .int("send_interval_ms", a.send_interval_ms)
        .float(
            "offered_msgs_per_s",
            a.senders as f64 * 1000.0 / a.send_interval_ms as f64,
            1,
        )
        .int("sent", total.sent)
        .int("acked", n_acked)
        .int("unacked", total.sent.saturating_sub(n_acked))
        .float("acked_per_s", n_acked as f64 / a.duration, 1)
        .latency("ack_latency_us", &ack_lat)
        .counts("errors", &total.errors)
        .int("deliveries", total.deliveries)
        .int("resyncs", total.resyncs)
        .int("closed_early", closed_early);

    if a.no_verify {
        r.text("store_check", "skipped (--no-verify)");
    } else if !ctx.has_store(&users[0], &slugs[0]).await? {
        r.text(
            "store_check",
            "skipped: the server has no store (\"store\": false)",
        );
    } else {
        progress(&ctx, "send-storm: checking the store");
        let (mut missing, mut stored, mut gaps) = (0u64, 0u64, 0u64);
        for (room, slug) in slugs.iter().enumerate() {
            let seqs = phase(
                "checking the store",
                ctx.phase_timeout,
                stored_messages(&ctx, &users[room], slug),
            )
            .await??;
            stored += seqs.len() as u64;
            let mut sorted: Vec<u64> = seqs.iter().map(|&(_, seq)| seq).collect();
            sorted.sort_unstable();
            gaps += sorted
                .iter()
                .enumerate()
                .filter(|&(i, &seq)| seq != i as u64 + 1)
                .take(1)
                .count() as u64;
            missing += acked_by_room[room]
                .iter()
                .filter(|m| !seqs.contains(m))
                .count() as u64;
        }
        r.text(
            "store_check",
            if missing == 0 && gaps == 0 {
                "ok"
            } else {
                "FAILED"
            },
        )
        .int("store_messages", stored)
        .int("missing", missing)
        .int("rooms_with_seq_gaps", gaps)
        .must_be_zero("acked messages missing from the store", missing)
        .must_be_zero("rooms with seq gaps in the store", gaps);
    }
    r.must_be_zero("sockets that failed to join", connect_failed);
    Ok(r.print(ctx.json_only))
}

/// Every (id, seq) of a room, paged newest to oldest, 100 at a time.
async fn stored_messages(ctx: &Ctx, user: &User, slug: &str) -> Result<HashSet<(u64, u64)>> {
    let mut all = HashSet::new();
    let mut before = None;
    loop {
        let page = ctx.messages_page(user, slug, before).await?;
        let messages = page
            .get("messages")
            .and_then(Value::as_array)
            .context("messages page without `messages`")?;
        let mut oldest = u64::MAX;
        for m in messages {
            let id = m
                .get("id")
                .and_then(Value::as_u64)
                .context("message without id")?;
            let seq = m
                .get("seq")
                .and_then(Value::as_u64)
                .context("message without seq")?;
            all.insert((id, seq));
            oldest = oldest.min(seq);
        }
        if messages.is_empty() || oldest <= 1 || Some(oldest) == before {
            return Ok(all);
        }
        before = Some(oldest);
    }
}

#[allow(clippy::too_many_arguments)]
async fn sender(
    ctx: Arc<Ctx>,
    user: User,
    slug: String,
    index: usize,
    offset: Duration,
    interval: Duration,
    gate: Arc<Semaphore>,
    ready: mpsc::Sender<Result<()>>,
    mut plan_rx: watch::Receiver<Option<Plan>>,
    mut finish: watch::Receiver<bool>,
    (sent_total, acked_total): (Arc<AtomicU64>, Arc<AtomicU64>),
) -> SenderStats {
    let mut st = SenderStats::default();
    let joined = {
        let _permit = gate.acquire().await;
        ctx.connect(&user, &slug, ctx.phase_timeout).await
    };
    let mut ws = match joined {
        Ok(j) => j.ws,
        Err(e) => {
            st.connect_failed = true;
            let _ = ready.send(Err(e)).await;
            return st;
        }
    };
    let _ = ready.send(Ok(())).await;
    drop(ready);

    let mut plan: Option<Plan> = None;
    let mut sending = false;
    let mut next = Instant::now();
    let mut sent_at: Vec<Instant> = Vec::new();
    // The last 10 sends: the next is at least 61 s after the 10th last.
    let mut recent: VecDeque<Instant> = VecDeque::with_capacity(10);
    loop {
        tokio::select! {
            biased;
            _ = finish.changed() => break,
            changed = plan_rx.changed(), if plan.is_none() => {
                if changed.is_err() {
                    break;
                }
                plan = *plan_rx.borrow();
                if let Some(p) = plan {
                    next = p.t0 + offset;
                    sending = true;
                }
            }
            _ = sleep_until(next), if sending => {
                let Some(p) = plan else { continue };
                if next >= p.stop {
                    sending = false;
                    continue;
                }
                let now = Instant::now();
                let k = sent_at.len();
                sent_at.push(now);
                st.sent += 1;
                sent_total.fetch_add(1, Ordering::AcqRel);
                let frame = setup::send_frame(
                    &format!("{}-s{index}-{k}", ctx.prefix),
                    &format!("send storm message {index}.{k}"),
                );
                if ws.send(frame).await.is_err() {
                    st.closed_early = true;
                    break;
                }
                if recent.len() == 10 {
                    recent.pop_front();
                }
                recent.push_back(now);
                next = now + interval;
                if recent.len() == 10 {
                    next = next.max(recent[0] + Duration::from_secs(61));
                }
            }
            msg = ws.next() => {
                let text = match msg {
                    Some(Ok(Message::Text(text))) => text,
                    Some(Ok(Message::Close(_))) | Some(Err(_)) | None => {
                        st.closed_early = true;
                        break;
                    }
                    Some(Ok(_)) => continue,
                };
                let Ok(frame) = serde_json::from_str::<Frame>(text.as_str()) else { continue };
                match frame.kind {
                    "message" => st.deliveries += 1,
                    "ack" => {
                        let k = frame
                            .client_id
                            .as_deref()
                            .and_then(|c| c.rsplit_once('-'))
                            .and_then(|(_, k)| k.parse::<usize>().ok());
                        if let (Some(at), Some(id), Some(seq)) = (k.and_then(|k| sent_at.get(k)), frame.id, frame.seq) {
                            let us = at.elapsed().as_micros().min(u128::from(u32::MAX)) as u32;
                            st.ack_us.push(us);
                            st.acked.push((id, seq));
                            acked_total.fetch_add(1, Ordering::AcqRel);
                        }
                    }
                    "error" => {
                        *st.errors.entry(frame.code.unwrap_or_else(|| "?".into())).or_default() += 1;
                    }
                    "resync" => st.resyncs += 1,
                    _ => {}
                }
            }
        }
    }
    setup::close(ws).await;
    st
}
