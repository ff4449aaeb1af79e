//! `changes`: message changes (CONTRACT §10) under load. R rooms × M members, one user and
//! one socket each. Half the members of a room (the even ones) send, paced like `fanout`
//! (once every `--send-interval-ms`, staggered); the other half change messages: each first
//! sends `--seed-messages` messages of its own (1.2 s apart, within the send limits), then
//! once every `--change-interval-ms` (1.1 s: within `CHANGES_PER_MINUTE` = 60) either edits
//! one of its own messages (every third change, or when it has seen no one else's message)
//! or reacts to / unreacts from a recent message of someone else (👍 🎉 ❤️ in turn; it
//! tracks its own reactions so a change is never a no-op, which the server would ack
//! without telling anyone).
//!
//! Timing: a send carries a token in its `client_id` and body (as in `fanout`); its
//! instant is stored under the token, and every other socket's `message` frame looks it
//! up. A change carries a token in its `client_id` (and, for an edit, in its body); its
//! instant is stored under that token, and the ack (`client_id`, `id`, `rev`) registers the
//! change under (room, `rev`): `rev` counts every change of a room, so it names exactly one
//! change. Every socket keeps each `message_updated` it got as (id, `rev`, instant); after
//! the drain they are matched against the registry, which gives each change's delivery
//! time on every other socket and the exactly-once check: every socket got every change
//! of its room once (none missing, no `rev` twice, none unregistered, each under the
//! message the ack named), and on each socket the `rev`s of `message` and
//! `message_updated` frames strictly increase. Only sends and changes made after the
//! warm-up are timed; the exactly-once check covers them all.
//!
//! A server without changes (the baseline) is detected first by a probe user who sends a
//! message and edits it: no ack with a `rev` within 5 s and the scenario is skipped,
//! saying so.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{bail, Result};
use clap::Args;
use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;
use serde_json::json;
use tokio::sync::{mpsc, watch, Semaphore};
use tokio::time::{sleep, sleep_until, Instant};
use tokio_tungstenite::tungstenite::Message;

use crate::report::{add_counts, merge_us, progress, Report};
use crate::setup::{self, phase, Ctx, User, Ws};

#[derive(Args, Debug)]
pub struct ChangesArgs {
    /// Rooms.
    #[arg(long, default_value_t = 1)]
    pub rooms: usize,
    /// Members per room (a user and a socket each; half send, half change; at least 2).
    #[arg(long, default_value_t = 100)]
    pub members: usize,
    /// Measured seconds, after the warm-up.
    #[arg(long, default_value_t = 10.0)]
    pub duration: f64,
    /// Seconds before measuring (the changers send their own messages in it).
    #[arg(long, default_value_t = 4.0)]
    pub warmup: f64,
    /// Seconds to wait, after the members stop, for deliveries and acks in flight.
    #[arg(long, default_value_t = 5.0)]
    pub drain: f64,
    /// Each sender sends once per this many milliseconds (≥ 6,000 keeps within 10 per minute).
    #[arg(long, default_value_t = 6200)]
    pub send_interval_ms: u64,
    /// Each changer makes one change per this many milliseconds (≥ 1,000 keeps within 60
    /// per minute).
    #[arg(long, default_value_t = 1100)]
    pub change_interval_ms: u64,
    /// Messages each changer sends first, to have something of its own to edit (1–10).
    #[arg(long, default_value_t = 2)]
    pub seed_messages: usize,
}

const EMOJI: [&str; 3] = ["👍", "🎉", "❤️"];
/// Spacing of a changer's own first messages (above the 1 send/s limit).
const SEED_SPACING: Duration = Duration::from_millis(1200);
/// How many of the latest messages of others a changer picks its reactions from.
const RECENT: usize = 16;

/// The fields of a server frame this scenario looks at.
#[derive(Deserialize)]
struct Frame<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    #[serde(default)]
    client_id: Option<String>,
    #[serde(default)]
    body: Option<String>,
    #[serde(default)]
    id: Option<u64>,
    #[serde(default)]
    rev: Option<u64>,
    #[serde(default)]
    user: Option<String>,
    #[serde(default)]
    code: Option<String>,
}

/// One acked change, registered under its room's `rev`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Change {
    pub message_id: u64,
    /// Send instant, ns since the epoch.
    pub sent_ns: u64,
    /// The changer's member index (its own socket is not timed).
    pub author: usize,
}

/// One `message_updated` as a socket got it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Got {
    pub message_id: u64,
    pub rev: u64,
    pub at_ns: u64,
}

/// What matching one socket's `message_updated` frames against its room's changes found.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct SocketCheck {
    /// Registered changes this socket never got.
    pub missing: u64,
    /// A `rev` got a second time.
    pub duplicates: u64,
    /// A `rev` that no acked change has.
    pub unmatched: u64,
    /// The `rev` of a change, under another message than its ack named.
    pub wrong_message: u64,
    /// Delivery times (µs) of changes by others sent at or after `measure_from_ns`.
    pub latency_us: Vec<u32>,
}

/// Matches the `message_updated` frames one socket (member `me`) got against its room's
/// changes (by `rev`): exactly once each, and the delivery time of those by others.
pub fn check_socket(
    got: &[Got],
    changes: &HashMap<u64, Change>,
    me: usize,
    measure_from_ns: u64,
) -> SocketCheck {
    let mut c = SocketCheck::default();
    let mut seen = HashSet::with_capacity(got.len());
    for g in got {
        let Some(change) = changes.get(&g.rev) else {
            c.unmatched += 1;
            continue;
        };
        if change.message_id != g.message_id {
            c.wrong_message += 1;
            continue;
        }
        if !seen.insert(g.rev) {
            c.duplicates += 1;
            continue;
        }
        if change.author != me && change.sent_ns >= measure_from_ns {
            let us = g.at_ns.saturating_sub(change.sent_ns) / 1000;
            c.latency_us.push(us.min(u64::from(u32::MAX)) as u32);
        }
    }
    c.missing = changes.keys().filter(|rev| !seen.contains(rev)).count() as u64;
    c
}

/// `rev`s on one socket must strictly increase; counts those that do not.
#[derive(Debug, Default)]
pub struct RevOrder {
    last: u64,
    pub not_increasing: u64,
}

impl RevOrder {
    pub fn see(&mut self, rev: u64) {
        if rev <= self.last {
            self.not_increasing += 1;
        } else {
            self.last = rev;
        }
    }
}

#[derive(Clone)]
struct Plan {
    t0: Instant,
    measure_from: Instant,
    stop: Instant,
    room_size: Arc<Vec<u64>>,
}

struct Shared {
    epoch: Instant,
    prefix: String,
    /// Send instant of each send token / change token, ns since `epoch`, plus one.
    send_at: Vec<AtomicU64>,
    next_send: AtomicU64,
    change_at: Vec<AtomicU64>,
    next_change: AtomicU64,
    /// Per room: `rev` → the acked change.
    registry: Vec<Mutex<HashMap<u64, Change>>>,
    /// Acks whose `rev` was already registered (a change that changed nothing).
    noop_acks: AtomicU64,
    // Progress, for the drain.
    msgs_sent: AtomicU64,
    msgs_acked: AtomicU64,
    msgs_delivered: AtomicU64,
    msgs_expected: AtomicU64,
    changes_sent: AtomicU64,
    changes_acked: AtomicU64,
    updates_got: AtomicU64,
    updates_expected: AtomicU64,
}

impl Shared {
    fn ns(&self, at: Instant) -> u64 {
        (at - self.epoch).as_nanos() as u64
    }

    /// The instant stored under the token after the last `sep` of `text`.
    fn lookup(table: &[AtomicU64], text: &str, sep: char) -> Option<u64> {
        let token: usize = text.rsplit_once(sep)?.1.parse().ok()?;
        let v = table.get(token)?.load(Ordering::Acquire);
        (v > 0).then(|| v - 1)
    }
}

#[derive(Default)]
struct MemberStats {
    index: usize,
    room: usize,
    connect_failed: bool,
    closed_early: bool,
    sent: u64,
    changes: BTreeMap<String, u64>,
    skipped_ticks: u64,
    msg_us: Vec<u32>,
    got: Vec<Got>,
    errors: BTreeMap<String, u64>,
    resyncs: u64,
    rev_not_increasing: u64,
    unparsed: u64,
}

pub async fn run(ctx: Arc<Ctx>, a: ChangesArgs) -> Result<bool> {
    if a.rooms == 0 || a.members < 2 || a.duration <= 0.0 || a.warmup < 0.0 || a.drain < 0.0 {
        bail!("--rooms ≥ 1, --members ≥ 2, --duration > 0, --warmup and --drain ≥ 0");
    }
    if a.send_interval_ms < 1000 || a.change_interval_ms < 1000 {
        bail!("--send-interval-ms and --change-interval-ms below 1000 break the limits");
    }
    if !(1..=10).contains(&a.seed_messages) {
        bail!("--seed-messages must be 1–10");
    }
    let n = a.rooms * a.members;
    crate::check_nofile(ctx.nofile, n + 1)?;
    let mut report = Report::new("changes", &ctx);

    progress(
        &ctx,
        "changes: probing for message changes (send, then edit)",
    );
    let probe = ctx.register_users("cp", 1).await?.remove(0);
    let slugs = ctx.create_rooms(&probe, "changes", a.rooms).await?;
    if let Err(why) = probe_edit(&ctx, &probe, &slugs[0]).await {
        progress(
            &ctx,
            format_args!("changes: the server has no message changes ({why}): skipped"),
        );
        report.text("skipped", &format!("no message changes: {why}"));
        return Ok(report.print(ctx.json_only));
    }

    progress(&ctx, format_args!("changes: registering {n} users"));
    let users = ctx.register_users("c", n).await?;

    let send_interval = Duration::from_millis(a.send_interval_ms);
    let change_interval = Duration::from_millis(a.change_interval_ms);
    let total_s = a.warmup + a.duration;
    let sends_per_user =
        (total_s * 1000.0 / a.send_interval_ms as f64).ceil() as usize + a.seed_messages + 2;
    let changes_per_user = (total_s * 1000.0 / a.change_interval_ms as f64).ceil() as usize + 2;
    let shared = Arc::new(Shared {
        epoch: Instant::now(),
        prefix: ctx.prefix.clone(),
        send_at: (0..n * sends_per_user).map(|_| AtomicU64::new(0)).collect(),
        next_send: AtomicU64::new(0),
        change_at: (0..n * changes_per_user)
            .map(|_| AtomicU64::new(0))
            .collect(),
        next_change: AtomicU64::new(0),
        registry: (0..a.rooms).map(|_| Mutex::new(HashMap::new())).collect(),
        noop_acks: AtomicU64::new(0),
        msgs_sent: AtomicU64::new(0),
        msgs_acked: AtomicU64::new(0),
        msgs_delivered: AtomicU64::new(0),
        msgs_expected: AtomicU64::new(0),
        changes_sent: AtomicU64::new(0),
        changes_acked: AtomicU64::new(0),
        updates_got: AtomicU64::new(0),
        updates_expected: AtomicU64::new(0),
    });
    let (ready_tx, ready_rx) = mpsc::channel(n);
    let (plan_tx, plan_rx) = watch::channel(None::<Plan>);
    let (finish_tx, finish_rx) = watch::channel(false);
    let gate = Arc::new(Semaphore::new(ctx.connect_concurrency));

    progress(&ctx, format_args!("changes: opening {n} sockets"));
    let senders = a.members.div_ceil(2);
    let changers = a.members / 2;
    let mut tasks = Vec::with_capacity(n);
    for (i, user) in users.into_iter().enumerate() {
        let room = i / a.members;
        let k = i % a.members;
        let role = if k.is_multiple_of(2) {
            Role::Sender {
                offset: send_interval.mul_f64((k / 2) as f64 / senders as f64),
                interval: send_interval,
            }
        } else {
            let frac = (k / 2) as f64 / changers as f64;
            Role::Changer {
                seed_offset: Duration::from_secs(1).mul_f64(frac),
                seeds: a.seed_messages,
                change_offset: SEED_SPACING * a.seed_messages as u32
                    + change_interval.mul_f64(frac),
                interval: change_interval,
            }
        };
        tasks.push(tokio::spawn(member(
            ctx.clone(),
            shared.clone(),
            user,
            slugs[room].clone(),
            i,
            room,
            role,
            gate.clone(),
            ready_tx.clone(),
            plan_rx.clone(),
            finish_rx.clone(),
        )));
    }
    drop(ready_tx);

    let room_size = setup::sockets_joined(&ctx, "changes", a.rooms, ready_rx).await?;

    let t0 = Instant::now() + Duration::from_millis(200);
    let plan = Plan {
        t0,
        measure_from: t0 + Duration::from_secs_f64(a.warmup),
        stop: t0 + Duration::from_secs_f64(total_s),
        room_size: Arc::new(room_size.clone()),
    };
    let (stop, measure_from_ns) = (plan.stop, shared.ns(plan.measure_from));
    plan_tx.send_replace(Some(plan));
    progress(
        &ctx,
        format_args!(
            "changes: {senders} senders and {changers} changers per room for {total_s} s ({} s warm-up + {} s measured)",
            a.warmup, a.duration
        ),
    );
    sleep_until(stop).await;

    let drain_start = Instant::now();
    let drain_end = drain_start + Duration::from_secs_f64(a.drain);
    let load = |x: &AtomicU64| x.load(Ordering::Acquire);
    while Instant::now() < drain_end {
        let done = load(&shared.msgs_delivered) >= load(&shared.msgs_expected)
            && load(&shared.msgs_acked) >= load(&shared.msgs_sent)
            && load(&shared.changes_acked) >= load(&shared.changes_sent)
            && load(&shared.updates_got) >= load(&shared.updates_expected);
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
    let registry: Vec<HashMap<u64, Change>> = shared
        .registry
        .iter()
        .map(|m| std::mem::take(&mut *m.lock().expect("registry lock")))
        .collect();
    let (mut connect_failed, mut closed_early, mut sent, mut skipped) = (0u64, 0, 0, 0);
    let (mut resyncs, mut rev_bad, mut unparsed) = (0u64, 0, 0);
    let (mut missing, mut duplicates, mut unmatched, mut wrong) = (0u64, 0, 0, 0);
    let mut errors = BTreeMap::new();
    let mut changes = BTreeMap::new();
    let (mut msg_us, mut upd_us) = (Vec::new(), Vec::new());
    for r in results {
        let s = r?;
        connect_failed += u64::from(s.connect_failed);
        closed_early += u64::from(s.closed_early);
        sent += s.sent;
        skipped += s.skipped_ticks;
        resyncs += s.resyncs;
        rev_bad += s.rev_not_increasing;
        unparsed += s.unparsed;
        add_counts(&mut errors, &s.errors);
        add_counts(&mut changes, &s.changes);
        msg_us.push(s.msg_us);
        if s.connect_failed {
            continue;
        }
        let c = check_socket(&s.got, &registry[s.room], s.index, measure_from_ns);
        missing += c.missing;
        duplicates += c.duplicates;
        unmatched += c.unmatched;
        wrong += c.wrong_message;
        upd_us.push(c.latency_us);
    }
    let msg = merge_us(msg_us.into_iter().flatten());
    let upd = merge_us(upd_us.into_iter().flatten());
    let registered: u64 = registry.iter().map(|m| m.len() as u64).sum();
    let measured_changes: u64 = registry
        .iter()
        .flat_map(|m| m.values())
        .filter(|c| c.sent_ns >= measure_from_ns)
        .count() as u64;

    report
        .int("rooms", a.rooms as u64)
        .int("members", a.members as u64)
        .int("sockets", room_size.iter().sum())
        .int("connect_failed", connect_failed)
        .float("duration_s", a.duration, 1)
        .float("warmup_s", a.warmup, 1)
        .int("send_interval_ms", a.send_interval_ms)
        .int("change_interval_ms", a.change_interval_ms)
        .int("sent", sent)
        .int("acked", load(&shared.msgs_acked))
        .counts("changes_made", &changes)
        .int("changes_acked", registered)
        .int("changes_measured", measured_changes)
        .int("noop_acks", load(&shared.noop_acks))
        .int("skipped_change_ticks", skipped)
        .latency("message_latency_us", &msg)
        .float(
            "message_deliveries_per_s",
            msg.count() as f64 / a.duration,
            0,
        )
        .latency("updated_latency_us", &upd)
        .float(
            "updated_deliveries_per_s",
            upd.count() as f64 / a.duration,
            0,
        )
        .counts("errors", &errors)
        .int("resyncs", resyncs)
        .int("updates_missing", missing)
        .int("updates_duplicated", duplicates)
        .int("updates_unmatched", unmatched)
        .int("updates_wrong_message", wrong)
        .int("rev_not_increasing", rev_bad)
        .int("closed_early", closed_early)
        .int("unparsed_frames", unparsed)
        .float("drain_s", drain.as_secs_f64(), 2);
    report
        .must_be_zero("sockets that failed to join", connect_failed)
        .must_be_zero("sockets closed by the server", closed_early)
        .must_be_zero("changes a socket never got", missing)
        .must_be_zero("changes a socket got twice", duplicates)
        .must_be_zero("message_updated frames no acked change has", unmatched)
        .must_be_zero("message_updated under another message", wrong)
        .must_be_zero("revs on a socket not strictly increasing", rev_bad);
    if registered == 0 {
        report.must_be_zero("no change was acked", 1);
    }
    Ok(report.print(ctx.json_only))
}

/// Sends a message and edits it; `Ok` once the edit is acked with a `rev`.
async fn probe_edit(ctx: &Ctx, user: &User, slug: &str) -> std::result::Result<(), String> {
    let joined = ctx
        .connect(user, slug, ctx.phase_timeout)
        .await
        .map_err(|e| format!("{e:#}"))?;
    let mut ws = joined.ws;
    let prefix = &ctx.prefix;
    let work = async {
        let send = setup::send_frame(&format!("{prefix}-probe"), "changes probe");
        ws.send(send).await.map_err(|e| e.to_string())?;
        let id = wait_ack(&mut ws, &format!("{prefix}-probe"))
            .await?
            .0
            .ok_or("the send's ack has no id")?;
        let cid = format!("{prefix}-probe-edit");
        let edit = json!({"type": "edit", "message_id": id, "body": "changes probe, edited", "client_id": cid});
        ws.send(Message::text(edit.to_string()))
            .await
            .map_err(|e| e.to_string())?;
        match wait_ack(&mut ws, &cid).await?.1 {
            Some(_) => Ok(()),
            None => Err("the edit's ack has no rev".to_owned()),
        }
    };
    let r = match tokio::time::timeout(Duration::from_secs(5), work).await {
        Ok(r) => r,
        Err(_) => Err("no ack within 5 s".to_owned()),
    };
    setup::close(ws).await;
    r
}

/// Waits for the ack of `client_id` (its `id` and `rev`), or fails on an error frame.
async fn wait_ack(
    ws: &mut Ws,
    client_id: &str,
) -> std::result::Result<(Option<u64>, Option<u64>), String> {
    while let Some(msg) = ws.next().await {
        let Ok(Message::Text(text)) = msg else {
            if msg.is_err() {
                return Err("socket error".to_owned());
            }
            continue;
        };
        let Ok(f) = serde_json::from_str::<Frame>(text.as_str()) else {
            continue;
        };
        match f.kind {
            "ack" if f.client_id.as_deref() == Some(client_id) => return Ok((f.id, f.rev)),
            "error" => return Err(format!("error {}", f.code.unwrap_or_default())),
            _ => {}
        }
    }
    Err("socket closed".to_owned())
}

#[derive(Clone, Copy)]
enum Role {
    Sender {
        offset: Duration,
        interval: Duration,
    },
    Changer {
        seed_offset: Duration,
        seeds: usize,
        change_offset: Duration,
        interval: Duration,
    },
}

#[allow(clippy::too_many_arguments)]
async fn member(
    ctx: Arc<Ctx>,
    sh: Arc<Shared>,
    user: User,
    slug: String,
    index: usize,
    room: usize,
    role: Role,
    gate: Arc<Semaphore>,
    ready: mpsc::Sender<Result<usize>>,
    mut plan_rx: watch::Receiver<Option<Plan>>,
    mut finish: watch::Receiver<bool>,
) -> MemberStats {
    let mut st = MemberStats {
        index,
        room,
        ..MemberStats::default()
    };
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
    let _ = ready.send(Ok(room)).await;
    drop(ready);

    let mut plan: Option<Plan> = None;
    let mut measure_from_ns = u64::MAX;
    let mut revs = RevOrder::default();
    // Sends: the next instant, how many a changer still seeds.
    let mut next_send = Instant::now();
    let mut sending = false;
    let mut seeds_left = 0usize;
    // Changes (changers only).
    let mut next_change = Instant::now();
    let mut changing = false;
    let mut tick = 0u64;
    let mut own: Vec<u64> = Vec::new();
    let mut recent: VecDeque<u64> = VecDeque::with_capacity(RECENT);
    // This changer's standing reactions, oldest first; never a no-op react or unreact.
    let mut reacted: VecDeque<(u64, usize)> = VecDeque::new();
    let mut reactions = 0u64;

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
                    measure_from_ns = sh.ns(p.measure_from);
                    sending = true;
                    match role {
                        Role::Sender { offset, .. } => next_send = p.t0 + offset,
                        Role::Changer { seed_offset, seeds, change_offset, .. } => {
                            next_send = p.t0 + seed_offset;
                            seeds_left = seeds;
                            next_change = p.t0 + change_offset;
                            changing = true;
                        }
                    }
                }
            }
            _ = sleep_until(next_send), if sending => {
                let Some(p) = &plan else { continue };
                let token = sh.next_send.fetch_add(1, Ordering::Relaxed);
                if next_send >= p.stop || token >= sh.send_at.len() as u64 {
                    sending = false;
                    continue;
                }
                let now = Instant::now();
                sh.send_at[token as usize].store(sh.ns(now) + 1, Ordering::Release);
                if now >= p.measure_from {
                    st.sent += 1;
                    sh.msgs_sent.fetch_add(1, Ordering::AcqRel);
                    sh.msgs_expected.fetch_add(p.room_size[room], Ordering::AcqRel);
                }
                let frame = setup::send_frame(
                    &format!("{}-s{token}", sh.prefix),
                    &format!("changes message from {} #{token}", user.name),
                );
                if ws.send(frame).await.is_err() {
                    st.closed_early = true;
                    break;
                }
                match role {
                    Role::Sender { interval, .. } => {
                        next_send = (next_send + interval).max(now + interval);
                    }
                    Role::Changer { .. } => {
                        seeds_left -= 1;
                        sending = seeds_left > 0;
                        next_send = (next_send + SEED_SPACING).max(now + SEED_SPACING);
                    }
                }
            }
            _ = sleep_until(next_change), if changing => {
                let Some(p) = &plan else { continue };
                let Role::Changer { interval, .. } = role else { continue };
                if next_change >= p.stop {
                    changing = false;
                    continue;
                }
                let now = Instant::now();
                next_change = (next_change + interval).max(now + interval);
                tick += 1;
                let edit = tick.is_multiple_of(3) || recent.is_empty();
                let (kind, target, emoji) = if edit {
                    match own.get(tick as usize / 3 % own.len().max(1)) {
                        Some(&id) => ("edit", id, 0),
                        None => {
                            st.skipped_ticks += 1;
                            continue;
                        }
                    }
                } else if reaction_tick(&mut reactions) {
                    // Every other reaction takes back the oldest one still standing.
                    match reacted.pop_front() {
                        Some((id, e)) => ("unreact", id, e),
                        None => react_new(&recent, &mut reacted, tick),
                    }
                } else {
                    react_new(&recent, &mut reacted, tick)
                };
                let token = sh.next_change.fetch_add(1, Ordering::Relaxed);
                if token >= sh.change_at.len() as u64 {
                    changing = false;
                    continue;
                }
                sh.change_at[token as usize].store(sh.ns(now) + 1, Ordering::Release);
                sh.changes_sent.fetch_add(1, Ordering::AcqRel);
                let client_id = format!("{}-c{token}", sh.prefix);
                let frame = if kind == "edit" {
                    json!({"type": "edit", "message_id": target, "client_id": client_id,
                           "body": format!("edited by {} ~{token}", user.name)})
                } else {
                    json!({"type": kind, "message_id": target, "client_id": client_id,
                           "emoji": EMOJI[emoji]})
                };
                *st.changes.entry(kind.to_owned()).or_default() += 1;
                if ws.send(Message::text(frame.to_string())).await.is_err() {
                    st.closed_early = true;
                    break;
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
                let at_ns = sh.ns(Instant::now());
                let Ok(frame) = serde_json::from_str::<Frame>(text.as_str()) else {
                    st.unparsed += 1;
                    continue;
                };
                match frame.kind {
                    "message" => {
                        if let Some(rev) = frame.rev {
                            revs.see(rev);
                        }
                        let mine = frame.user.as_deref() == Some(user.name.as_str());
                        if let (false, Some(id)) = (mine, frame.id) {
                            if recent.len() == RECENT {
                                recent.pop_front();
                            }
                            recent.push_back(id);
                        }
                        let sent = frame
                            .body
                            .as_deref()
                            .and_then(|b| Shared::lookup(&sh.send_at, b, '#'));
                        if let Some(sent) = sent.filter(|&s| s >= measure_from_ns) {
                            sh.msgs_delivered.fetch_add(1, Ordering::AcqRel);
                            if !mine {
                                let us = at_ns.saturating_sub(sent) / 1000;
                                st.msg_us.push(us.min(u64::from(u32::MAX)) as u32);
                            }
                        }
                    }
                    "message_updated" => {
                        let (Some(id), Some(rev)) = (frame.id, frame.rev) else {
                            st.unparsed += 1;
                            continue;
                        };
                        revs.see(rev);
                        sh.updates_got.fetch_add(1, Ordering::AcqRel);
                        st.got.push(Got { message_id: id, rev, at_ns });
                    }
                    "ack" => {
                        let Some((_, tag)) = frame.client_id.as_deref().and_then(|c| c.rsplit_once('-')) else {
                            continue;
                        };
                        if let Some(token) = tag.strip_prefix('s') {
                            let sent = Shared::lookup(&sh.send_at, &format!("#{token}"), '#');
                            if sent.is_some_and(|s| s >= measure_from_ns) {
                                sh.msgs_acked.fetch_add(1, Ordering::AcqRel);
                            }
                            if matches!(role, Role::Changer { .. }) {
                                own.extend(frame.id);
                            }
                        } else if let Some(token) = tag.strip_prefix('c') {
                            let sent = Shared::lookup(&sh.change_at, &format!("#{token}"), '#');
                            let (Some(sent_ns), Some(id), Some(rev)) = (sent, frame.id, frame.rev) else {
                                continue;
                            };
                            sh.changes_acked.fetch_add(1, Ordering::AcqRel);
                            let change = Change { message_id: id, sent_ns, author: index };
                            let fresh = {
                                let mut reg = sh.registry[room].lock().expect("registry lock");
                                match reg.entry(rev) {
                                    std::collections::hash_map::Entry::Occupied(_) => false,
                                    std::collections::hash_map::Entry::Vacant(v) => {
                                        v.insert(change);
                                        true
                                    }
                                }
                            };
                            if fresh {
                                if let Some(p) = &plan {
                                    sh.updates_expected.fetch_add(p.room_size[room], Ordering::AcqRel);
                                }
                            } else {
                                sh.noop_acks.fetch_add(1, Ordering::AcqRel);
                            }
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
    st.rev_not_increasing = revs.not_increasing;
    setup::close(ws).await;
    st
}

/// Counts a reaction; true every second one (that one is an unreact).
fn reaction_tick(count: &mut u64) -> bool {
    *count += 1;
    count.is_multiple_of(2)
}

/// A reaction this changer does not have yet, to one of the recent messages of others.
fn react_new(
    recent: &VecDeque<u64>,
    reacted: &mut VecDeque<(u64, usize)>,
    tick: u64,
) -> (&'static str, u64, usize) {
    let pairs = recent.len() * EMOJI.len();
    let pick = (0..pairs)
        .map(|k| {
            let k = (tick as usize + k) % pairs;
            (recent[k % recent.len()], k % EMOJI.len())
        })
        .find(|p| !reacted.contains(p))
        .unwrap_or((recent[0], 0));
    reacted.push_back(pick);
    ("react", pick.0, pick.1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn changes(list: &[(u64, u64, u64, usize)]) -> HashMap<u64, Change> {
        list.iter()
            .map(|&(rev, message_id, sent_ns, author)| {
                (
                    rev,
                    Change {
                        message_id,
                        sent_ns,
                        author,
                    },
                )
            })
            .collect()
    }

    fn got(message_id: u64, rev: u64, at_ns: u64) -> Got {
        Got {
            message_id,
            rev,
            at_ns,
        }
    }

    #[test]
    fn every_change_once_is_clean_and_timed() {
        let reg = changes(&[(10, 1, 1_000_000, 0), (11, 2, 2_000_000, 1)]);
        let c = check_socket(&[got(1, 10, 3_000_000), got(2, 11, 2_500_000)], &reg, 5, 0);
        assert_eq!(
            (c.missing, c.duplicates, c.unmatched, c.wrong_message),
            (0, 0, 0, 0)
        );
        assert_eq!(c.latency_us, vec![2000, 500]);
    }

    #[test]
    fn own_changes_and_warmup_are_checked_not_timed() {
        let reg = changes(&[(10, 1, 1_000_000, 5), (11, 2, 500, 1)]);
        let c = check_socket(&[got(1, 10, 3_000_000), got(2, 11, 900)], &reg, 5, 1000);
        assert_eq!(c.missing, 0);
        assert!(c.latency_us.is_empty());
    }

    #[test]
    fn missing_duplicate_unmatched_wrong() {
        let reg = changes(&[(10, 1, 0, 0), (11, 2, 0, 0), (12, 3, 0, 0)]);
        let c = check_socket(
            &[got(1, 10, 5), got(1, 10, 6), got(9, 11, 7), got(4, 99, 8)],
            &reg,
            1,
            0,
        );
        assert_eq!(c.duplicates, 1);
        assert_eq!(c.wrong_message, 1);
        assert_eq!(c.unmatched, 1);
        // 11 came under the wrong message and 12 never came.
        assert_eq!(c.missing, 2);
        assert_eq!(c.latency_us.len(), 1);
    }

    #[test]
    fn reactions_alternate_and_never_repeat() {
        let recent: VecDeque<u64> = [7, 8].into_iter().collect();
        let mut reacted = VecDeque::new();
        for tick in 0..6 {
            let (kind, id, e) = react_new(&recent, &mut reacted, tick);
            assert_eq!(kind, "react");
            assert_eq!(reacted.iter().filter(|p| **p == (id, e)).count(), 1);
        }
        let mut n = 0;
        assert!(!reaction_tick(&mut n));
        assert!(reaction_tick(&mut n));
    }

    #[test]
    fn revs_must_strictly_increase() {
        let mut o = RevOrder::default();
        for rev in [3, 4, 4, 7, 5, 8] {
            o.see(rev);
        }
        assert_eq!(o.not_increasing, 2);
    }
}
