//! `room-list`: what one user's room list and sidebar cost on a busy server (CONTRACT §9
//! made the list per user): a server holding `--rooms` rooms (5,000), of which the viewer
//! is a member of `--member-of` (200). The viewer then asks `--requests` times each (500),
//! `--concurrency` at a time (4), for:
//!
//! - `GET /api/rooms` (every public room and theirs, capped by the server's list size),
//! - `GET /api/rooms?member=true` (only theirs: what a client's sidebar reads),
//! - `GET /` (the browse page, with the sidebar),
//! - `GET /rooms/{slug}` (a room page, with the sidebar),
//!
//! each timed from sending the request to the body's last byte. Checks: every answer is
//! `200`, and `?member=true` lists exactly the viewer's rooms.
//!
//! The rooms are made through the API by `--builders` users (and the viewer, for its own),
//! so the server needs `ROOM_CREATE_LIMIT` at least rooms ÷ builders (run.sh sets it). A
//! server without a room list (the baseline) is skipped, saying so.

use std::sync::Arc;

use anyhow::{bail, Context, Result};
use clap::Args;
use futures_util::StreamExt;
use reqwest::header::COOKIE;
use reqwest::StatusCode;
use serde_json::Value;
use tokio::time::Instant;

use crate::report::{progress, Latency, Report};
use crate::setup::{phase, Ctx, User};

#[derive(Args, Debug)]
pub struct RoomListArgs {
    /// Rooms on the server.
    #[arg(long, default_value_t = 5000)]
    pub rooms: usize,
    /// Rooms the viewer is a member of (made by the viewer; at most `rooms`).
    #[arg(long, default_value_t = 200)]
    pub member_of: usize,
    /// Users making the other rooms.
    #[arg(long, default_value_t = 20)]
    pub builders: usize,
    /// Requests of each kind.
    #[arg(long, default_value_t = 500)]
    pub requests: usize,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 4)]
    pub concurrency: usize,
}

/// What is asked for, in the report's order.
const KINDS: [&str; 4] = ["api_rooms", "api_rooms_member", "browse_page", "room_page"];

pub async fn run(ctx: Arc<Ctx>, args: RoomListArgs) -> Result<bool> {
    if args.member_of > args.rooms {
        bail!("--member-of must be at most --rooms");
    }
    let viewer = ctx.register_users("view", 1).await?.remove(0);
    let mut report = Report::new("room-list", &ctx);
    if get(&ctx, &viewer, "/api/rooms").await?.0 == StatusCode::NOT_FOUND {
        progress(&ctx, "the server has no room list: skipped");
        report.text("skipped", "no GET /api/rooms");
        return Ok(report.print(ctx.json_only));
    }
    let builders = ctx.register_users("build", args.builders.max(1)).await?;
    let others = args.rooms - args.member_of;
    progress(
        &ctx,
        format!(
            "making {others} rooms by {} users, then the viewer's {}",
            builders.len(),
            args.member_of
        ),
    );
    make_rooms(&ctx, &builders, "r", others).await?;
    let mine = make_rooms(&ctx, std::slice::from_ref(&viewer), "m", args.member_of).await?;

    let mut failures = 0u64;
    let mut wrong_member_list = 0u64;
    let mut latencies = Vec::new();
    for kind in KINDS {
        let path = match kind {
            "api_rooms" => "/api/rooms".to_owned(),
            "api_rooms_member" => "/api/rooms?member=true".to_owned(),
            "browse_page" => "/".to_owned(),
            _ => format!(
                "/rooms/{}",
                mine.first().map(String::as_str).unwrap_or("none")
            ),
        };
        let timed = futures_util::stream::iter(0..args.requests)
            .map(|_| {
                let (ctx, viewer, path) = (&ctx, &viewer, &path);
                async move {
                    let started = Instant::now();
                    let answer = get(ctx, viewer, path).await;
                    let took = started.elapsed();
                    (took, answer.map(|(status, body)| (status, parse(&body))))
                }
            })
            .buffer_unordered(args.concurrency.max(1));
        let results: Vec<_> = phase(
            &format!("{} × GET {path}", args.requests),
            ctx.phase_timeout,
            timed.collect::<Vec<_>>(),
        )
        .await?;
        let mut latency = Latency::new();
        for (took, answer) in results {
            latency.record(took);
            match answer {
                Ok((StatusCode::OK, body)) => {
                    if kind == "api_rooms_member" && listed(&body) != Some(mine.len()) {
                        wrong_member_list += 1;
                    }
                }
                _ => failures += 1,
            }
        }
        latencies.push((kind, latency));
    }

    report
        .int("rooms", args.rooms as u64)
        .int("member_of", args.member_of as u64)
        .int("requests_each", args.requests as u64)
        .int("concurrency", args.concurrency as u64);
    for (kind, latency) in &latencies {
        report.latency(&format!("{kind}_us"), latency);
    }
    report
        .int("failed_requests", failures)
        .int("wrong_member_lists", wrong_member_list)
        .must_be_zero("failed requests", failures)
        .must_be_zero(
            "member lists without exactly the viewer's rooms",
            wrong_member_list,
        );
    Ok(report.print(ctx.json_only))
}

/// Makes `n` rooms spread over `users`, a few at a time; their slugs.
async fn make_rooms(ctx: &Ctx, users: &[User], tag: &str, n: usize) -> Result<Vec<String>> {
    let jobs = (0..n).map(|i| {
        let user = &users[i % users.len()];
        let name = format!("{} {tag} {i}", ctx.prefix);
        async move { ctx.create_room(user, &name).await }
    });
    let slugs = phase(
        &format!("creating {n} rooms"),
        ctx.phase_timeout,
        futures_util::stream::iter(jobs)
            .buffer_unordered(8)
            .collect::<Vec<_>>(),
    )
    .await?;
    slugs.into_iter().collect()
}

/// `GET path` as `user`: the status and the body, read to its end.
async fn get(ctx: &Ctx, user: &User, path: &str) -> Result<(StatusCode, Vec<u8>)> {
    let base = &ctx.targets[user.target].http;
    let response = ctx
        .http
        .get(format!("{base}{path}"))
        .header(COOKIE, &user.cookie)
        .send()
        .await
        .with_context(|| format!("GET {base}{path}"))?;
    let status = response.status();
    let body = response.bytes().await.context("reading the body")?;
    Ok((status, body.to_vec()))
}

/// The body as JSON (`null` for a page); parsed after the request's time is taken.
fn parse(body: &[u8]) -> Value {
    serde_json::from_slice(body).unwrap_or(Value::Null)
}

/// How many rooms a `GET /api/rooms` answer lists.
fn listed(body: &Value) -> Option<usize> {
    body["rooms"].as_array().map(Vec::len)
}
