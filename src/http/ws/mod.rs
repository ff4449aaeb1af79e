//! `GET /ws/rooms/{slug}`: checks session (`401`), Origin (`403`) and room (`404`) before
//! upgrading ([`handshake`]), then hands the socket to [`connection`].

mod connection;
mod handshake;

use std::collections::HashMap;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use super::extract::MaybeSession;
use super::AppState;
use crate::chat::ChatError;

/// Frames (and messages) above this are refused with `frame_too_large`.
pub const MAX_FRAME_BYTES: usize = 64 * 1024;
/// Initial read buffer and write batching threshold of one socket, and the largest
/// fragment a frame is sent in (see [`connection`]).
const SOCKET_BUFFER_BYTES: usize = 1024;

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
    let room = match state.chat.find_room(&slug).await {
        Ok(room) => room,
        Err(ChatError::RoomNotFound) => {
            return (StatusCode::NOT_FOUND, "no such room").into_response()
        }
        Err(_) => return (StatusCode::SERVICE_UNAVAILABLE, "try again").into_response(),
    };
    let since = match query.as_ref().ok().and_then(|Query(q)| q.get("since")) {
        None => None,
        Some(raw) => match raw.parse::<i64>() {
            Ok(seq) if seq >= 0 => Some(seq),
            _ => return (StatusCode::BAD_REQUEST, "since must be a whole number").into_response(),
        },
    };
    let handshake = match handshake {
        Ok(handshake) => handshake,
        Err(refusal) => return refusal.into_response(),
    };
    let config = WebSocketConfig::default()
        .max_message_size(Some(MAX_FRAME_BYTES))
        .max_frame_size(Some(MAX_FRAME_BYTES))
        // Chat frames are small, and tungstenite zero-fills its whole read buffer on the
        // first read: the 128 KiB default made an idle socket cost 15.5 KiB of RSS, 1 KiB
        // makes it 8.8 (docs/BENCHMARKS.md). Bigger frames grow the buffer as needed.
        .read_buffer_size(SOCKET_BUFFER_BYTES)
        .write_buffer_size(SOCKET_BUFFER_BYTES);
    let sockets = state.sockets.clone();
    handshake.accept(config, move |socket| {
        sockets.track_future(connection::run(socket, state, session, room, since))
    })
}
