//! A room's messages over HTTP: history, and for bots and scripts sending and changing
//! messages (CONTRACT §4, §10) with the rules, limits and idempotency of the WebSocket's
//! frames, which are the chat service's ([`crate::chat::Messages`]).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch, post, put};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

use super::error::{ApiError, Refusal, Wants};
use super::extract::{ApiJson, ApiQuery, ApiSession};
use super::AppState;
use crate::chat::{Change, ChatError};
use crate::domain::{HistoryRequest, Message};
use crate::protocol::MessageView;

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/api/rooms/{slug}/messages",
            get(api_messages).post(api_post_message),
        )
        .route(
            "/api/rooms/{slug}/messages/{id}",
            patch(edit).delete(delete),
        )
        .route(
            "/api/rooms/{slug}/messages/{id}/reactions/{emoji}",
            put(react).delete(unreact),
        )
        .route("/api/rooms/{slug}/read", post(mark_read))
}

#[derive(Deserialize)]
struct MarkRead {
    /// Any JSON: a `seq` that is not an integer is `invalid_seq`, like one out of range.
    seq: serde_json::Value,
}

/// Moves the caller's read marker (CONTRACT §11).
async fn mark_read(
    State(state): State<AppState>,
    session: Result<ApiSession, ApiError>,
    Path(slug): Path<String>,
    ApiJson(read): ApiJson<MarkRead>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let ApiSession(session) = session?;
    let access = state.chat.rooms().visible(&session.user, &slug).await?;
    let seq = read.seq.as_i64().ok_or(ChatError::InvalidSeq)?;
    let read = state
        .chat
        .reading()
        .mark_read(&session.user, &access.room, seq)
        .await?;
    Ok(Json(json!({
        "read_seq": read.read_seq,
        "unread": read.unread,
        "mentions": read.mentions,
    })))
}

#[derive(Deserialize)]
struct MessagesQuery {
    before: Option<i64>,
    limit: Option<i64>,
}

async fn api_messages(
    State(state): State<AppState>,
    session: Result<ApiSession, ApiError>,
    Path(slug): Path<String>,
    query: Result<ApiQuery<MessagesQuery>, ApiError>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let ApiSession(session) = session?;
    let ApiQuery(query) = query?;
    let request = HistoryRequest::latest_or_before(query.before, query.limit)
        .map_err(|e| Refusal::bad_request(e.to_string(), Wants::Json))?;
    let room = state.chat.rooms().visible(&session.user, &slug).await?.room;
    let (messages, truncated) = state
        .chat
        .messages()
        .read_history(&session.user, &room, request)
        .await?;
    let messages: Vec<_> = messages.iter().map(MessageView::from).collect();
    let mut body = json!({ "messages": messages });
    if truncated {
        body["truncated"] = json!(true);
    }
    Ok(Json(body))
}

#[derive(Deserialize)]
struct PostMessage {
    body: String,
    client_id: Option<String>,
    reply_to: Option<i64>,
}

/// A send over HTTP, for bots and scripts (CONTRACT §10): the rules, limits and
/// idempotency of the `send` frame; like opening the room's socket, it makes the sender
/// a member of a public room.
async fn api_post_message(
    State(state): State<AppState>,
    session: Result<ApiSession, ApiError>,
    Path(slug): Path<String>,
    ApiJson(post): ApiJson<PostMessage>,
) -> Result<Response, ApiError> {
    let ApiSession(session) = session?;
    let mut entry = state.chat.rooms().enter(&session.user, &slug).await?;
    entry.start_recording();
    let sent = state
        .chat
        .messages()
        .send(
            &session.user,
            &entry.access.room,
            &post.body,
            post.client_id.as_deref(),
            post.reply_to,
        )
        .await?;
    state
        .chat
        .visits()
        .stopped_typing(entry.access.room.id, &session.user)
        .await;
    let status = if sent.fresh {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let body = json!({ "message": MessageView::from(&sent.message) });
    Ok((status, Json(body)).into_response())
}

#[derive(Deserialize)]
struct Edit {
    body: String,
}

async fn edit(
    State(state): State<AppState>,
    session: Result<ApiSession, ApiError>,
    Path((slug, id)): Path<(String, String)>,
    ApiJson(edit): ApiJson<Edit>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let ApiSession(session) = session?;
    let change = Change::Edit { body: &edit.body };
    changed(&state, &session.user, &slug, &id, change).await
}

async fn delete(
    State(state): State<AppState>,
    session: Result<ApiSession, ApiError>,
    Path((slug, id)): Path<(String, String)>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let ApiSession(session) = session?;
    changed(&state, &session.user, &slug, &id, Change::Delete).await
}

async fn react(
    State(state): State<AppState>,
    session: Result<ApiSession, ApiError>,
    Path((slug, id, emoji)): Path<(String, String, String)>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let ApiSession(session) = session?;
    let change = Change::React { emoji: &emoji };
    changed(&state, &session.user, &slug, &id, change).await
}

async fn unreact(
    State(state): State<AppState>,
    session: Result<ApiSession, ApiError>,
    Path((slug, id, emoji)): Path<(String, String, String)>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let ApiSession(session) = session?;
    let change = Change::Unreact { emoji: &emoji };
    changed(&state, &session.user, &slug, &id, change).await
}

/// Makes `change` to message `id` (a message id is a number: anything else names no
/// message) of the room `slug`, and answers the message as it is now.
async fn changed(
    state: &AppState,
    user: &crate::domain::User,
    slug: &str,
    id: &str,
    change: Change<'_>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let access = state.chat.rooms().visible(user, slug).await?;
    let id: i64 = id.parse().map_err(|_| ChatError::UnknownMessage)?;
    let message = state
        .chat
        .messages()
        .change(user, &access, id, change)
        .await?;
    Ok(message_json(&message))
}

fn message_json(message: &Message) -> Json<serde_json::Value> {
    Json(json!({ "message": MessageView::from(message) }))
}
