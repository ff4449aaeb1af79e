//! Rooms: the create-or-join form, and the rooms, DMs and history API.

use axum::extract::rejection::FormRejection;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use chrono::SecondsFormat;
use serde::Deserialize;
use serde_json::json;

use super::error::{status_of, ApiError, PageError, Refusal, Wants};
use super::extract::{ApiJson, ApiQuery, ApiSession, MaybeSession, OverHttps};
use super::pages::{login_redirect, room_list_page, BrowseForms};
use super::security::verify_csrf;
use super::views::SideForm;
use super::AppState;
use crate::chat::ChatError;
use crate::domain::{Role, Room, RoomKind, RoomScope, User};
use crate::protocol::RoomView;

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/rooms", post(create_submit))
        .route("/dms", post(dm_submit))
        .route("/api/rooms", get(api_list).post(api_create))
        .route("/api/dms", post(api_open_dm))
}

fn room_json(room: &Room) -> serde_json::Value {
    json!(RoomView::from(room))
}

#[derive(Deserialize)]
struct CreateForm {
    #[serde(default)]
    name: String,
    /// The "private" checkbox: present when ticked.
    private: Option<String>,
    #[serde(default)]
    csrf: String,
    /// Which form sent it: `new-room` (the sidebar's), or the create-or-join form.
    #[serde(default)]
    form: String,
}

fn kind_of(private: bool) -> RoomKind {
    if private {
        RoomKind::Private
    } else {
        RoomKind::Public
    }
}

async fn create_submit(
    State(state): State<AppState>,
    headers: HeaderMap,
    OverHttps(over_https): OverHttps,
    MaybeSession(session): MaybeSession,
    form: Result<Form<CreateForm>, FormRejection>,
) -> Result<Response, PageError> {
    let Some(session) = session else {
        return Ok(login_redirect("/"));
    };
    let form = checked_form(&state, &headers, form, |form: &CreateForm| &form.csrf)?;
    let private = form.private.is_some();
    let made = state
        .chat
        .rooms()
        .create(&session.user, &form.name, kind_of(private))
        .await;
    let forms = |error| {
        if form.form == "new-room" {
            BrowseForms {
                new_room: SideForm {
                    value: form.name,
                    private,
                    error: Some(error),
                },
                ..BrowseForms::default()
            }
        } else {
            BrowseForms {
                room_name: form.name,
                error: Some(error),
                ..BrowseForms::default()
            }
        }
    };
    room_or_browse_page(&state, &headers, over_https, session.user, made, forms).await
}

/// A form of a signed-in page, read, with its CSRF token checked.
fn checked_form<T>(
    state: &AppState,
    headers: &HeaderMap,
    form: Result<Form<T>, FormRejection>,
    csrf: impl Fn(&T) -> &str,
) -> Result<T, PageError> {
    let Form(form) = form.map_err(|e| {
        Refusal::bad_request(format!("the form could not be read: {e}"), Wants::Html)
    })?;
    verify_csrf(&state.secret_key, headers, csrf(&form))?;
    Ok(form)
}

/// What a form that makes or opens a room answers: `303` to the room, or the browse page
/// again with the refusal where `forms` puts it (an outage is an error page).
async fn room_or_browse_page(
    state: &AppState,
    headers: &HeaderMap,
    over_https: bool,
    user: User,
    made: Result<(Room, bool), ChatError>,
    forms: impl FnOnce(String) -> BrowseForms,
) -> Result<Response, PageError> {
    match made {
        Ok((room, _)) => Ok(Redirect::to(&format!("/rooms/{}", room.slug)).into_response()),
        Err(e @ ChatError::Unavailable(_)) => Err(e.into()),
        Err(e) => {
            let forms = forms(e.to_string());
            room_list_page(state, headers, over_https, user, status_of(&e), forms).await
        }
    }
}

#[derive(Deserialize)]
struct DmForm {
    #[serde(default)]
    username: String,
    #[serde(default)]
    csrf: String,
}

/// The sidebar's New message form: the DM with that person, opened (or made) →
/// `303` to its page; a refusal shows the browse page with the error on the form.
async fn dm_submit(
    State(state): State<AppState>,
    headers: HeaderMap,
    OverHttps(over_https): OverHttps,
    MaybeSession(session): MaybeSession,
    form: Result<Form<DmForm>, FormRejection>,
) -> Result<Response, PageError> {
    let Some(session) = session else {
        return Ok(login_redirect("/"));
    };
    let form = checked_form(&state, &headers, form, |form: &DmForm| &form.csrf)?;
    let opened = state
        .chat
        .rooms()
        .open_dm(&session.user, &form.username)
        .await;
    let forms = |error| BrowseForms {
        new_message: SideForm {
            value: form.username,
            private: false,
            error: Some(error),
        },
        ..BrowseForms::default()
    };
    room_or_browse_page(&state, &headers, over_https, session.user, opened, forms).await
}

#[derive(Deserialize)]
struct ListQuery {
    q: Option<String>,
    /// `true`: only the caller's rooms.
    member: Option<bool>,
    /// `public`: only public rooms (the browse page's list).
    kind: Option<ListedKind>,
}

#[derive(Deserialize)]
#[serde(rename_all = "lowercase")]
enum ListedKind {
    Public,
}

async fn api_list(
    State(state): State<AppState>,
    session: Result<ApiSession, ApiError>,
    query: Result<ApiQuery<ListQuery>, ApiError>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let ApiSession(session) = session?;
    let ApiQuery(query) = query?;
    let name_contains = query.q.as_deref().map(str::trim).filter(|q| !q.is_empty());
    let scope = match (query.member.unwrap_or(false), query.kind) {
        (false, None) => RoomScope::Visible,
        (true, None) => RoomScope::Joined,
        (false, Some(ListedKind::Public)) => RoomScope::Public,
        (true, Some(_)) => {
            return Err(ChatError::InvalidRequest(
                "member=true and kind=public cannot be combined".into(),
            )
            .into())
        }
    };
    let list = state
        .chat
        .rooms()
        .list(&session.user, scope, name_contains, true)
        .await?;
    let rooms: Vec<_> = list
        .rooms
        .iter()
        .map(|listing| {
            json!({
                "slug": listing.room.slug,
                "name": listing.room.name,
                "kind": listing.room.kind.as_str(),
                "member": listing.role.is_some(),
                "role": listing.role.map(Role::as_str),
                "online": listing.online,
                "last_message_at": listing.last_message_at.map(|t| t.to_rfc3339_opts(SecondsFormat::Millis, true)),
                "unread": listing.attention.map(|a| a.unread),
                "mentions": listing.attention.map(|a| a.mentions),
                "read_seq": listing.attention.map(|a| a.read_seq),
                "last_seq": listing.attention.map(|a| a.last_seq),
            })
        })
        .collect();
    let mut body = json!({ "rooms": rooms });
    if list.truncated {
        body["truncated"] = json!(true);
    }
    Ok(Json(body))
}

#[derive(Deserialize)]
struct CreateRoom {
    name: String,
    #[serde(default)]
    private: bool,
}

async fn api_create(
    State(state): State<AppState>,
    session: Result<ApiSession, ApiError>,
    ApiJson(body): ApiJson<CreateRoom>,
) -> Result<Response, ApiError> {
    let ApiSession(session) = session?;
    let kind = kind_of(body.private);
    let made = state
        .chat
        .rooms()
        .create(&session.user, &body.name, kind)
        .await?;
    Ok(room_made(made))
}

#[derive(Deserialize)]
struct OpenDm {
    username: String,
}

async fn api_open_dm(
    State(state): State<AppState>,
    session: Result<ApiSession, ApiError>,
    ApiJson(body): ApiJson<OpenDm>,
) -> Result<Response, ApiError> {
    let ApiSession(session) = session?;
    let opened = state
        .chat
        .rooms()
        .open_dm(&session.user, &body.username)
        .await?;
    Ok(room_made(opened))
}

/// `201` with a room just made, `200` with one that was there.
fn room_made((room, created): (Room, bool)) -> Response {
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    (status, Json(json!({"room": room_json(&room)}))).into_response()
}
