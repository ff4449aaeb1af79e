//! `GET /ws/rooms/{slug}`: checks session (`401`), Origin (`403`), room (`404`; `403` when
//! banned, CONTRACT §9) and the user's socket quota (`429`, [`quota`]) before upgrading
//! ([`handshake`]), then hands the socket to [`connection`].

mod connection;
mod frames;
mod handshake;
mod quota;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use super::extract::MaybeSession;
use super::AppState;
use crate::chat::ChatError;
use crate::config::Config;
use crate::domain::{history, Rev};
use quota::{Refused, SocketQuota};

/// Client frames (and messages) above this are refused with `frame_too_large`.
pub const MAX_FRAME_BYTES: usize = 64 * 1024;
/// Initial read buffer of one socket (see [`upgrade`]).
const SOCKET_BUFFER_BYTES: usize = 1024;

/// What bounds every socket of this process (CONTRACT §7a).
pub struct WsSettings {
    /// Data one socket may have queued and not yet taken by the OS.
    pub max_unsent_bytes: usize,
    /// How long one write may wait.
    pub write_timeout: Duration,
    /// Frames per second per connection that are not accepted `send`s.
    pub frames_per_second: usize,
    /// JSON in one `history` frame.
    pub max_history_bytes: usize,
    quota: Arc<SocketQuota>,
}

impl WsSettings {
    pub fn new(config: &Config) -> WsSettings {
        WsSettings {
            max_unsent_bytes: config.ws_max_unsent_bytes,
            write_timeout: config.ws_write_timeout,
            frames_per_second: config.ws_frames_per_second,
            max_history_bytes: config.ws_max_history_bytes,
            quota: Arc::new(SocketQuota::new(
                config.max_sockets_per_user,
                config.max_upgrades_per_user,
            )),
        }
    }
}

pub(super) fn router() -> Router<AppState> {
    Router::new().route("/ws/rooms/{slug}", get(upgrade))
}

async fn upgrade(
    State(state): State<AppState>,
    Path(slug): Path<String>,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
    headers: HeaderMap,
    session: Result<MaybeSession, super::error::Refusal>,
    handshake: Result<handshake::Handshake, handshake::NotAHandshake>,
) -> Response {
    let session = match session {
        Ok(MaybeSession(Some(session))) => session,
        Ok(MaybeSession(None)) => {
            return (StatusCode::UNAUTHORIZED, "sign in first").into_response()
        }
        Err(refusal) => return (refusal.status, refusal.message).into_response(),
    };
    if !state.origins.allows(&headers) {
        return (StatusCode::FORBIDDEN, "origin not allowed").into_response();
    }
    // Opening a public room's socket makes the user a member (CONTRACT §9).
    let mut entry = match state.chat.rooms().enter(&session.user, &slug).await {
        Ok(entry) => entry,
        Err(ChatError::RoomNotFound) => {
            return (StatusCode::NOT_FOUND, "no such room").into_response()
        }
        Err(ChatError::Banned) => {
            return (StatusCode::FORBIDDEN, "you are banned from this room").into_response()
        }
        Err(_) => return (StatusCode::SERVICE_UNAVAILABLE, "try again").into_response(),
    };
    let since = match query.as_ref().ok().and_then(|Query(q)| q.get("since")) {
        None => None,
        Some(raw) => match raw.parse::<i64>().ok().map(history::seq) {
            Some(Ok(seq)) => Some(seq),
            _ => return (StatusCode::BAD_REQUEST, "since must be a whole number").into_response(),
        },
    };
    // CONTRACT §10: `rev` resumes the changes too, of the messages up to `since`.
    let rev = match query.as_ref().ok().and_then(|Query(q)| q.get("rev")) {
        None => None,
        Some(_) if since.is_none() => {
            return (StatusCode::BAD_REQUEST, "rev needs since").into_response()
        }
        Some(raw) => match raw.parse::<i64>().ok().and_then(Rev::new) {
            Some(rev) => Some(rev),
            None => return (StatusCode::BAD_REQUEST, "rev must be a whole number").into_response(),
        },
    };
    let handshake = match handshake {
        Ok(handshake) => handshake,
        Err(refusal) => return refusal.into_response(),
    };
    // Last, so that only an upgrade that will happen takes a place.
    let place = match state.ws.quota.admit(session.user.id) {
        Ok(place) => place,
        Err(Refused::TooManyOpen) => {
            return (
                StatusCode::TOO_MANY_REQUESTS,
                "too many open WebSockets for this user",
            )
                .into_response()
        }
        Err(Refused::TooManyUpgrades { retry_after }) => {
            let seconds = retry_after.as_secs_f64().ceil().max(1.0) as u64;
            return (
                StatusCode::TOO_MANY_REQUESTS,
                [(header::RETRY_AFTER, seconds.to_string())],
                "too many WebSocket upgrades for this user; retry later",
            )
                .into_response();
        }
    };
    // The upgrade will happen: a first visit's membership is written meanwhile.
    entry.start_recording();
    let config = WebSocketConfig::default()
        .max_message_size(Some(MAX_FRAME_BYTES))
        .max_frame_size(Some(MAX_FRAME_BYTES))
        // Chat frames are small, and tungstenite zero-fills its whole read buffer on the
        // first read, so the 128 KiB default multiplied every idle socket's memory
        // (figures in docs/BENCHMARKS.md). Bigger frames grow the buffer as needed.
        .read_buffer_size(SOCKET_BUFFER_BYTES)
        // tungstenite writes only its automatic pongs: [`connection`] writes the rest.
        .write_buffer_size(0);
    let sockets = state.sockets.clone();
    handshake.accept(config, move |socket| {
        sockets.track_future(async move {
            connection::run(socket, state, session, entry, since, rev).await;
            drop(place);
        })
    })
}
