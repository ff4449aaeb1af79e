//! `fanout`: R rooms × M members, one user and one socket each. Members take turns: each
//! sends once every `--send-interval-ms` (6.2 s by default: within 1 send/s and 10 per
//! trailing 60 s, with slack for timer jitter), staggered evenly across its room, so a
//! room offers ≈ M/6.2 messages/s and M²/6.2 deliveries/s.
//!
//! Timing: every send gets a token (a global index) carried in its `client_id` and body;
//! the send instant is stored in a table under that token, and every receiver (the
//! sender's own socket included) and the ack look it up. Sends in the warm-up are
//! delivered but not counted. After the senders stop, the bench waits up to `--drain`
//! seconds for deliveries and acks in flight.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Result};
use clap::Args;
use futures_util::{SinkExt, StreamExt};
use tokio::sync::{mpsc, watch, Semaphore};
use tokio::time::{sleep, sleep_until, Instant};
use tokio_tungstenite::tungstenite::Message;

use crate::report::{add_counts, merge_us, progress, Report};
use crate::setup::{self, phase, Ctx, Frame, User};

#[derive(Args, Debug)]
pub struct FanoutArgs {
    /// Rooms.
    #[arg(long, default_value_t = 1)]
    pub rooms: usize,
    /// Members per room (a user and a socket each).
    #[arg(long, default_value_t = 10)]
    pub members: usize,
    /// Measured seconds, after the warm-up.
    #[arg(long, default_value_t = 10.0)]
    pub duration: f64,
    /// Seconds of sending before measuring.
    #[arg(long, default_value_t = 2.0)]
    pub warmup: f64,
    /// Seconds to wait, after the senders stop, for deliveries and acks in flight.
    #[arg(long, default_value_t = 5.0)]
    pub drain: f64,
    /// Each member sends once per this many milliseconds (≥ 6,000 keeps every user within
    /// 10 sends per trailing minute however long the run).
    #[arg(long, default_value_t = 6200)]
    pub send_interval_ms: u64,
}

/// When to send and what counts, shared by every socket once all have joined.
#[derive(Clone)]
struct Plan {
    t0: Instant,
    measure_from: Instant,
    stop: Instant,
    /// Joined sockets per room: the deliveries one message of that room should make.
    room_size: Arc<Vec<u64>>,
}

struct Shared {
    epoch: Instant,
    /// Send instant of each token, in ns since `epoch`, plus one (0: not sent).
    sent_at: Vec<AtomicU64>,
    next_token: AtomicU64,
    prefix: String,
    // Measured progress, for the drain.
    sent: AtomicU64,
    acked: AtomicU64,
    delivered: AtomicU64,
    expected: AtomicU64,
}

impl Shared {
    /// The send instant of the token in `text` (after its last `#` or `-`).
    fn sent_ns(&self, text: &str, sep: char) -> Option<u64> {
        let token: usize = text.rsplit_once(sep)?.1.parse().ok()?;
        let v = self.sent_at.get(token)?.load(Ordering::Acquire);
        (v > 0).then(|| v - 1)
    }
}

#[derive(Default)]
struct MemberStats {
    connect_failed: bool,
    closed_early: bool,
    sent: u64,
    acked: u64,
    delivered: u64,
    recv_us: Vec<u32>,
    ack_us: Vec<u32>,
    errors: BTreeMap<String, u64>,
    resyncs: u64,
    seq_gaps: u64,
    out_of_order: u64,
    unparsed: u64,
}

pub async fn run(ctx: Arc<Ctx>, a: FanoutArgs) -> Result<bool> {
    if a.rooms == 0 || a.members == 0 || a.duration <= 0.0 || a.warmup < 0.0 || a.drain < 0.0 {
        bail!("--rooms and --members must be ≥ 1, --duration > 0, --warmup and --drain ≥ 0");
    }
    if a.send_interval_ms < 1000 {
        bail!("--send-interval-ms below 1000 breaks the 1 send/s limit");
    }
    let n = a.rooms * a.members;
    crate::check_nofile(ctx.nofile, n)?;
    let interval = Duration::from_millis(a.send_interval_ms);

    progress(&ctx, format_args!("fanout: registering {n} users"));
    let users = ctx.register_users("f", n).await?;
    let slugs = ctx.create_rooms(&users[0], "fanout", a.rooms).await?;

    let sends_per_user =
        ((a.warmup + a.duration) * 1000.0 / a.send_interval_ms as f64).ceil() as u64 + 2;
    let shared = Arc::new(Shared {
        epoch: Instant::now(),
        sent_at: (0..n as u64 * sends_per_user)
            .map(|_| AtomicU64::new(0))
            .collect(),
        next_token: AtomicU64::new(0),
        prefix: ctx.prefix.clone(),
        sent: AtomicU64::new(0),
        acked: AtomicU64::new(0),
        delivered: AtomicU64::new(0),
        expected: AtomicU64::new(0),
    });
    let (ready_tx, ready_rx) = mpsc::channel(n);
    let (plan_tx, plan_rx) = watch::channel(None::<Plan>);
    let (finish_tx, finish_rx) = watch::channel(false);
    let gate = Arc::new(Semaphore::new(ctx.connect_concurrency));

    progress(&ctx, format_args!("fanout: opening {n} sockets"));
    let mut tasks = Vec::with_capacity(n);
    for (i, user) in users.into_iter().enumerate() {
        let room = i / a.members;
        let offset = interval.mul_f64((i % a.members) as f64 / a.members as f64);
        tasks.push(tokio::spawn(member(
            ctx.clone(),
            shared.clone(),
            user,
            slugs[room].clone(),
            room,
            offset,
            interval,
            gate.clone(),
            ready_tx.clone(),
            plan_rx.clone(),
            finish_rx.clone(),
        )));
    }
    drop(ready_tx);

    let room_size = setup::sockets_joined(&ctx, "fanout", a.rooms, ready_rx).await?;

    let t0 = Instant::now() + Duration::from_millis(200);
    let plan = Plan {
        t0,
        measure_from: t0 + Duration::from_secs_f64(a.warmup),
        stop: t0 + Duration::from_secs_f64(a.warmup + a.duration),
        room_size: Arc::new(room_size.clone()),
    };
    let stop = plan.stop;
    plan_tx.send_replace(Some(plan));
    progress(
        &ctx,
        format_args!(
            "fanout: sending for {} s ({} s warm-up + {} s measured)",
            a.warmup + a.duration,
            a.warmup,
            a.duration
        ),
    );
    sleep_until(stop).await;

    let drain_start = Instant::now();
    let drain_end = drain_start + Duration::from_secs_f64(a.drain);
    while Instant::now() < drain_end {
        let done = shared.delivered.load(Ordering::Acquire)
            >= shared.expected.load(Ordering::Acquire)
            && shared.acked.load(Ordering::Acquire) >= shared.sent.load(Ordering::Acquire);
        if done {
            break;
        }
        sleep(Duration::from_millis(20)).await;
    }
    let drain = drain_start.elapsed();
    finish_tx.send_replace(true);

    let results = phase(
        "collecting results",
        ctx.phase_timeout,
        futures_util::future::join_all(tasks),
    )
    .await?;
    let mut total = MemberStats::default();
    let (mut recv, mut ack) = (Vec::new(), Vec::new());
    let (mut connect_failed, mut closed_early) = (0u64, 0u64);
    for r in results {
        let s = r?;
        connect_failed += u64::from(s.connect_failed);
        closed_early += u64::from(s.closed_early);
        total.sent += s.sent;
        total.acked += s.acked;
        total.delivered += s.delivered;
        total.resyncs += s.resyncs;
        total.seq_gaps += s.seq_gaps;
        total.out_of_order += s.out_of_order;
        total.unparsed += s.unparsed;
        add_counts(&mut total.errors, &s.errors);
        recv.push(s.recv_us);
        ack.push(s.ack_us);
    }
    let recv = merge_us(recv.into_iter().flatten());
    let ack = merge_us(ack.into_iter().flatten());
    let expected = shared.expected.load(Ordering::Acquire);

    let mut r = Report::new("fanout", &ctx);
    r.int("rooms", a.rooms as u64)
        .int("members", a.members as u64)
        .int("sockets", room_size.iter().sum())
        .int("connect_failed", connect_failed)
        .float("duration_s", a.duration, 1)
        .float("warmup_s", a.warmup, 1)
        .int("send_interval_ms", a.send_interval_ms)
        .float(
            "offered_msgs_per_s",
            n as f64 * 1000.0 / a.send_interval_ms as f64,
            1,
        )
        .int("sent", total.sent)
        .int("acked", total.acked)
        .int("deliveries", total.delivered)
        .int("expected_deliveries", expected)
        .float("deliveries_per_s", total.delivered as f64 / a.duration, 0)
        .float("delivered_fraction", ratio(total.delivered, expected), 4)
        .latency("latency_us", &recv)
        .latency("ack_latency_us", &ack)
        .counts("errors", &total.errors)
        .int("resyncs", total.resyncs)
        .int("seq_gaps", total.seq_gaps)
        .int("out_of_order", total.out_of_order)
        .int("closed_early", closed_early)
        .int("unparsed_frames", total.unparsed)
        .float("drain_s", drain.as_secs_f64(), 2);
    r.must_be_zero("sockets that failed to join", connect_failed)
        .must_be_zero("sockets closed by the server", closed_early);
    Ok(r.print(ctx.json_only))
}

fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 {
        0.0
    } else {
        a as f64 / b as f64
    }
}

#[allow(clippy::too_many_arguments)]
async fn member(
    ctx: Arc<Ctx>,
    sh: Arc<Shared>,
    user: User,
    slug: String,
    room: usize,
    offset: Duration,
    interval: Duration,
    gate: Arc<Semaphore>,
    ready: mpsc::Sender<Result<usize>>,
    mut plan_rx: watch::Receiver<Option<Plan>>,
    mut finish: watch::Receiver<bool>,
) -> MemberStats {
    let mut st = MemberStats::default();
    let joined = {
        let _permit = gate.acquire().await;
        ctx.connect(&user, &slug, ctx.phase_timeout).await
    };
    let joined = match joined {
        Ok(j) => j,
        Err(e) => {
            st.connect_failed = true;
            let _ = ready.send(Err(e)).await;
            return st;
        }
    };
    let _ = ready.send(Ok(room)).await;
    drop(ready);
    let mut ws = joined.ws;
    let mut last_seq = joined.history.last().map_or(0, |m| m.seq);
    let mut plan: Option<Plan> = None;
    let mut next_send = Instant::now();
    let mut sending = false;
    let mut measure_from_ns = u64::MAX;

    loop {
        tokio::select! {
            biased;
            _ = finish.changed() => break,
            changed = plan_rx.changed(), if plan.is_none() => {
                if changed.is_err() {
                    break;
                }
                plan = plan_rx.borrow().clone();
                if let Some(p) = &plan {
                    next_send = p.t0 + offset;
                    measure_from_ns = (p.measure_from - sh.epoch).as_nanos() as u64;
                    sending = true;
                }
            }
            _ = sleep_until(next_send), if sending => {
                let Some(p) = &plan else { continue };
                let token = sh.next_token.fetch_add(1, Ordering::Relaxed);
                if next_send >= p.stop || token >= sh.sent_at.len() as u64 {
                    sending = false;
                    continue;
                }
                let now = Instant::now();
                sh.sent_at[token as usize].store((now - sh.epoch).as_nanos() as u64 + 1, Ordering::Release);
                if now >= p.measure_from {
                    st.sent += 1;
                    sh.sent.fetch_add(1, Ordering::AcqRel);
                    sh.expected.fetch_add(p.room_size[room], Ordering::AcqRel);
                }
                let frame = setup::send_frame(
                    &format!("{}-{token}", sh.prefix),
                    &format!("fanout message from {} #{token}", user.name),
                );
                if ws.send(frame).await.is_err() {
                    st.closed_early = true;
                    break;
                }
                // Never closer than one interval to the previous send, even when late.
                next_send = (next_send + interval).max(now + interval);
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
                let Ok(frame) = serde_json::from_str::<Frame>(text.as_str()) else {
                    st.unparsed += 1;
                    continue;
                };
                match frame.kind {
                    "message" => {
                        if let Some(seq) = frame.seq {
                            if seq <= last_seq {
                                st.out_of_order += 1;
                            } else {
                                if seq > last_seq + 1 {
                                    st.seq_gaps += 1;
                                }
                                last_seq = seq;
                            }
                        }
                        let sent = frame.body.as_deref().and_then(|b| sh.sent_ns(b, '#'));
                        if let Some(sent) = sent.filter(|&s| s >= measure_from_ns) {
                            st.delivered += 1;
                            sh.delivered.fetch_add(1, Ordering::AcqRel);
                            st.recv_us.push(micros_since(&sh, sent));
                        }
                    }
                    "ack" => {
                        let sent = frame.client_id.as_deref().and_then(|c| sh.sent_ns(c, '-'));
                        if let Some(sent) = sent.filter(|&s| s >= measure_from_ns) {
                            st.acked += 1;
                            sh.acked.fetch_add(1, Ordering::AcqRel);
                            st.ack_us.push(micros_since(&sh, sent));
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

fn micros_since(sh: &Shared, sent_ns: u64) -> u32 {
    let now_ns = (Instant::now() - sh.epoch).as_nanos() as u64;
    (now_ns.saturating_sub(sent_ns) / 1000).min(u64::from(u32::MAX)) as u32
}
