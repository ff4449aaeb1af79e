//! A room's members and bans (CONTRACT §9): `/api/rooms/{slug}/members…` and `…/bans…`.
//! Who may do what is the chat service's ([`crate::chat::Members`]); this is the shape.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, put};
use axum::{Json, Router};
use chrono::SecondsFormat;
use serde::Deserialize;
use serde_json::json;

use super::error::ApiError;
use super::extract::{ApiJson, ApiSession};
use super::AppState;

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/api/rooms/{slug}/members", get(list).post(add))
        .route(
            "/api/rooms/{slug}/members/{username}",
            put(set_role).delete(remove),
        )
        .route("/api/rooms/{slug}/bans", get(bans))
        .route("/api/rooms/{slug}/bans/{username}", put(ban).delete(unban))
}

async fn list(
    State(state): State<AppState>,
    session: Result<ApiSession, ApiError>,
    Path(slug): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let ApiSession(session) = session?;
    let members = state.chat.members().list(&session.user, &slug).await?;
    let members: Vec<_> = members
        .iter()
        .map(|member| {
            json!({
                "username": member.username,
                "role": member.role.as_str(),
                "online": member.online,
            })
        })
        .collect();
    Ok(Json(json!({ "members": members })))
}

#[derive(Deserialize)]
struct AddMember {
    username: String,
}

async fn add(
    State(state): State<AppState>,
    session: Result<ApiSession, ApiError>,
    Path(slug): Path<String>,
    ApiJson(body): ApiJson<AddMember>,
) -> Result<StatusCode, ApiError> {
    let ApiSession(session) = session?;
    let members = state.chat.members();
    members.add(&session.user, &slug, &body.username).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
struct SetRole {
    role: String,
}

async fn set_role(
    State(state): State<AppState>,
    session: Result<ApiSession, ApiError>,
    Path((slug, username)): Path<(String, String)>,
    ApiJson(body): ApiJson<SetRole>,
) -> Result<StatusCode, ApiError> {
    let ApiSession(session) = session?;
    let members = state.chat.members();
    members
        .set_role(&session.user, &slug, &username, &body.role)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn remove(
    State(state): State<AppState>,
    session: Result<ApiSession, ApiError>,
    Path((slug, username)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let ApiSession(session) = session?;
    let members = state.chat.members();
    members.remove(&session.user, &slug, &username).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn bans(
    State(state): State<AppState>,
    session: Result<ApiSession, ApiError>,
    Path(slug): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let ApiSession(session) = session?;
    let bans = state.chat.members().bans(&session.user, &slug).await?;
    let bans: Vec<_> = bans
        .iter()
        .map(|ban| {
            json!({
                "username": ban.username,
                "by": ban.by,
                "at": ban.at.to_rfc3339_opts(SecondsFormat::Millis, true),
            })
        })
        .collect();
    Ok(Json(json!({ "bans": bans })))
}

async fn ban(
    State(state): State<AppState>,
    session: Result<ApiSession, ApiError>,
    Path((slug, username)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let ApiSession(session) = session?;
    state
        .chat
        .members()
        .ban(&session.user, &slug, &username)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn unban(
    State(state): State<AppState>,
    session: Result<ApiSession, ApiError>,
    Path((slug, username)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let ApiSession(session) = session?;
    state
        .chat
        .members()
        .unban(&session.user, &slug, &username)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
