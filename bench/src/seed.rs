//! Seeding a room with history before a scenario: users send messages within the rate
//! limits (at most 10 each, 1.05 s apart), each acked before the next; optionally each
//! message after a user's first replies to their previous one (CONTRACT §10 `reply_to`).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Result};
use futures_util::{SinkExt, StreamExt};
use tokio::time::{timeout, Instant};
use tokio_tungstenite::tungstenite::Message;

use crate::report::add_counts;
use crate::setup::{self, phase, Ctx, Frame, User};

/// What a seeding acked.
#[derive(Default)]
pub struct Seeded {
    pub acked: u64,
    /// The highest `seq` acked.
    pub newest: u64,
    pub errors: BTreeMap<String, u64>,
}

/// `users` send `count` messages to the room together, `per_user` (1–10) each; fails
/// unless every one was acked. Give each room its own users: the limits are per user.
/// `replies`: each user's messages after the first reply to that user's previous one.
pub async fn room(
    ctx: &Arc<Ctx>,
    users: &[User],
    slug: &str,
    count: usize,
    per_user: usize,
    replies: bool,
) -> Result<Seeded> {
    let per_user = per_user.clamp(1, 10);
    if users.len() * per_user < count {
        bail!(
            "seeding {count} messages needs {} users, got {}",
            count.div_ceil(per_user),
            users.len()
        );
    }
    let mut tasks = Vec::new();
    for (i, user) in users.iter().enumerate().take(count.div_ceil(per_user)) {
        let sends = (count - i * per_user).min(per_user);
        tasks.push(tokio::spawn(seeder(
            ctx.clone(),
            user.clone(),
            slug.to_owned(),
            i,
            sends,
            replies,
        )));
    }
    let mut seeded = Seeded::default();
    for r in phase(
        "seeding",
        ctx.phase_timeout,
        futures_util::future::join_all(tasks),
    )
    .await?
    {
        let r = r??;
        seeded.acked += r.acked;
        seeded.newest = seeded.newest.max(r.newest);
        add_counts(&mut seeded.errors, &r.errors);
    }
    if seeded.acked != count as u64 {
        bail!(
            "seeding: {} of {count} messages acked (errors: {:?})",
            seeded.acked,
            seeded.errors
        );
    }
    Ok(seeded)
}

/// Sends `count` messages 1.05 s apart, each acked before the next.
async fn seeder(
    ctx: Arc<Ctx>,
    user: User,
    slug: String,
    index: usize,
    count: usize,
    replies: bool,
) -> Result<Seeded> {
    let mut res = Seeded::default();
    let mut ws = ctx.connect(&user, &slug, ctx.phase_timeout).await?.ws;
    let mut next = Instant::now();
    let mut previous: Option<u64> = None; // the id of this user's last message
    for m in 0..count {
        let client_id = format!("{}-seed-{index}-{m}", ctx.prefix);
        let body = format!("seed message {index}.{m}");
        let mut attempts = 0;
        loop {
            tokio::time::sleep_until(next).await;
            next = Instant::now() + Duration::from_millis(1050);
            let frame = match previous.filter(|_| replies) {
                Some(to) => setup::reply_frame(&client_id, &body, to),
                None => setup::send_frame(&client_id, &body),
            };
            ws.send(frame).await?;
            match timeout(Duration::from_secs(15), wait_ack(&mut ws, &client_id)).await {
                Ok(Ok(Ok((seq, id)))) => {
                    res.acked += 1;
                    res.newest = res.newest.max(seq);
                    previous = id;
                    break;
                }
                Ok(Ok(Err((code, retry_ms)))) => {
                    *res.errors.entry(code.clone()).or_default() += 1;
                    attempts += 1;
                    if attempts > 5 || !(code == "rate_limited" || code == "unavailable") {
                        bail!("seeding: send refused with {code}");
                    }
                    next = next.max(Instant::now() + Duration::from_millis(retry_ms + 50));
                }
                Ok(Err(e)) => return Err(e),
                Err(_) => bail!("seeding: no ack within 15 s"),
            }
        }
    }
    setup::close(ws).await;
    Ok(res)
}

/// Reads until the ack (→ its seq and message id) or the error (→ code, retry_after_ms)
/// for `client_id`.
async fn wait_ack(
    ws: &mut setup::Ws,
    client_id: &str,
) -> Result<std::result::Result<(u64, Option<u64>), (String, u64)>> {
    while let Some(msg) = ws.next().await {
        let Message::Text(text) = msg? else { continue };
        let Ok(f) = serde_json::from_str::<Frame>(text.as_str()) else {
            continue;
        };
        if f.client_id.as_deref() != Some(client_id) {
            continue;
        }
        match f.kind {
            "ack" => return Ok(Ok((f.seq.unwrap_or(0), f.id))),
            "error" => {
                return Ok(Err((
                    f.code.unwrap_or_default(),
                    f.retry_after_ms.unwrap_or(1000),
                )))
            }
            _ => {}
        }
    }
    bail!("socket closed while waiting for an ack")
}
