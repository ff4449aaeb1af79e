//! Accounts: the register/login/logout forms and their JSON API twins.

use axum::extract::rejection::{FormRejection, QueryRejection};
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use serde::Deserialize;
use serde_json::json;

use super::cookies;
use super::error::{status_of, ApiError, PageError, Refusal, Wants};
use super::extract::{ApiJson, ApiSession, ClientAddr, OverHttps};
use super::pages::{next_from, safe_next, NextQuery};
use super::security::{csrf_token, verify_csrf};
use super::views::{render, LoginPage, RegisterPage};
use super::AppState;
use crate::chat::{ChatError, KnownDevice, NewSession};
use crate::domain::User;

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/login", get(login_form).post(login_submit))
        .route("/register", get(register_form).post(register_submit))
        .route("/logout", post(logout_submit))
        .route("/api/register", post(api_register))
        .route("/api/login", post(api_login))
        .route("/api/logout", post(api_logout))
        .route("/api/me", get(api_me))
}

pub fn user_json(user: &User) -> serde_json::Value {
    json!({"id": user.id.0, "username": user.username})
}

/// Signs the browser in: the session cookie, and the device cookie that keeps strangers'
/// failures from locking this user out of it (its id is kept if it already named them).
fn signed_in(
    state: &AppState,
    mut response: Response,
    session: &NewSession,
    headers: &HeaderMap,
    over_https: bool,
) -> Response {
    let username = session.user.username.to_ascii_lowercase();
    let id = cookies::known_device(&state.secret_key, headers)
        .filter(|device| device.username == username)
        .map_or_else(cookies::new_device_id, |device| device.id);
    let device = KnownDevice { username, id };
    for cookie in [
        cookies::session(session, over_https),
        cookies::device(&state.secret_key, &device, over_https),
    ] {
        response.headers_mut().append(header::SET_COOKIE, cookie);
    }
    response
}

/// A form page that refuses: a throttled one says when to come back, as the API does.
fn refused_page(e: &ChatError, page: &impl askama::Template) -> Response {
    let mut response = render(status_of(e), page, None);
    if let Some(wait) = e.retry_after() {
        let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, seconds.max(1).into());
    }
    response
}

fn form_or_refuse<T>(form: Result<Form<T>, FormRejection>) -> Result<T, PageError> {
    form.map(|Form(f)| f).map_err(|e| {
        Refusal::bad_request(format!("the form could not be read: {e}"), Wants::Html).into()
    })
}

#[derive(Deserialize)]
struct LoginForm {
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    next: Option<String>,
    #[serde(default)]
    csrf: String,
}

async fn login_form(
    State(state): State<AppState>,
    headers: HeaderMap,
    OverHttps(over_https): OverHttps,
    query: Result<Query<NextQuery>, QueryRejection>,
) -> Response {
    let csrf = csrf_token(&state.secret_key, &headers, over_https);
    let page = LoginPage {
        signed_in_as: None,
        csrf: csrf.token,
        next: next_from(&query),
        username: String::new(),
        error: None,
    };
    render(StatusCode::OK, &page, csrf.set_cookie)
}

async fn login_submit(
    State(state): State<AppState>,
    ClientAddr(addr): ClientAddr,
    OverHttps(over_https): OverHttps,
    headers: HeaderMap,
    form: Result<Form<LoginForm>, FormRejection>,
) -> Result<Response, PageError> {
    let form = form_or_refuse(form)?;
    verify_csrf(&state.secret_key, &headers, &form.csrf)?;
    let next = safe_next(form.next.as_deref());
    let device = cookies::known_device(&state.secret_key, &headers);
    let login = state
        .chat
        .accounts()
        .login(&form.username, &form.password, addr, device.as_ref())
        .await;
    match login {
        Ok(session) => Ok(signed_in(
            &state,
            Redirect::to(&next).into_response(),
            &session,
            &headers,
            over_https,
        )),
        Err(e @ ChatError::Unavailable(_)) => Err(e.into()),
        Err(e) => {
            let page = LoginPage {
                signed_in_as: None,
                csrf: csrf_token(&state.secret_key, &headers, over_https).token,
                next,
                username: form.username,
                error: Some(e.to_string()),
            };
            Ok(refused_page(&e, &page))
        }
    }
}

#[derive(Deserialize)]
struct RegisterForm {
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    password_confirm: String,
    #[serde(default)]
    csrf: String,
}

async fn register_form(
    State(state): State<AppState>,
    headers: HeaderMap,
    OverHttps(over_https): OverHttps,
) -> Response {
    let csrf = csrf_token(&state.secret_key, &headers, over_https);
    let page = RegisterPage {
        signed_in_as: None,
        csrf: csrf.token,
        username: String::new(),
        error: None,
    };
    render(StatusCode::OK, &page, csrf.set_cookie)
}

async fn register_submit(
    State(state): State<AppState>,
    ClientAddr(addr): ClientAddr,
    OverHttps(over_https): OverHttps,
    headers: HeaderMap,
    form: Result<Form<RegisterForm>, FormRejection>,
) -> Result<Response, PageError> {
    let form = form_or_refuse(form)?;
    verify_csrf(&state.secret_key, &headers, &form.csrf)?;
    let registered = state
        .chat
        .accounts()
        .register(
            &form.username,
            &form.password,
            Some(&form.password_confirm),
            addr,
        )
        .await;
    match registered {
        Ok(session) => Ok(signed_in(
            &state,
            Redirect::to("/").into_response(),
            &session,
            &headers,
            over_https,
        )),
        Err(e @ ChatError::Unavailable(_)) => Err(e.into()),
        Err(e) => {
            let page = RegisterPage {
                signed_in_as: None,
                csrf: csrf_token(&state.secret_key, &headers, over_https).token,
                username: form.username,
                error: Some(e.to_string()),
            };
            Ok(refused_page(&e, &page))
        }
    }
}

#[derive(Deserialize)]
struct LogoutForm {
    #[serde(default)]
    csrf: String,
}

async fn logout_submit(
    State(state): State<AppState>,
    headers: HeaderMap,
    OverHttps(over_https): OverHttps,
    form: Result<Form<LogoutForm>, FormRejection>,
) -> Result<Response, PageError> {
    let form = form_or_refuse(form)?;
    verify_csrf(&state.secret_key, &headers, &form.csrf)?;
    if let Some(token) = cookies::read(&headers, cookies::SESSION) {
        state.chat.accounts().logout(&token).await?;
    }
    Ok((
        [(header::SET_COOKIE, cookies::session_ended(over_https))],
        Redirect::to("/login"),
    )
        .into_response())
}

#[derive(Deserialize)]
struct Credentials {
    username: String,
    password: String,
}

async fn api_register(
    State(state): State<AppState>,
    ClientAddr(addr): ClientAddr,
    OverHttps(over_https): OverHttps,
    headers: HeaderMap,
    ApiJson(credentials): ApiJson<Credentials>,
) -> Result<Response, ApiError> {
    let session = state
        .chat
        .accounts()
        .register(&credentials.username, &credentials.password, None, addr)
        .await?;
    let body = Json(json!({"user": user_json(&session.user)}));
    Ok(signed_in(
        &state,
        (StatusCode::CREATED, body).into_response(),
        &session,
        &headers,
        over_https,
    ))
}

async fn api_login(
    State(state): State<AppState>,
    ClientAddr(addr): ClientAddr,
    OverHttps(over_https): OverHttps,
    headers: HeaderMap,
    ApiJson(credentials): ApiJson<Credentials>,
) -> Result<Response, ApiError> {
    let device = cookies::known_device(&state.secret_key, &headers);
    let session = state
        .chat
        .accounts()
        .login(
            &credentials.username,
            &credentials.password,
            addr,
            device.as_ref(),
        )
        .await?;
    let body = Json(json!({"user": user_json(&session.user)}));
    Ok(signed_in(
        &state,
        body.into_response(),
        &session,
        &headers,
        over_https,
    ))
}

async fn api_logout(
    State(state): State<AppState>,
    headers: HeaderMap,
    OverHttps(over_https): OverHttps,
) -> Result<Response, ApiError> {
    if let Some(token) = cookies::read(&headers, cookies::SESSION) {
        state.chat.accounts().logout(&token).await?;
    }
    Ok((
        StatusCode::NO_CONTENT,
        [(header::SET_COOKIE, cookies::session_ended(over_https))],
    )
        .into_response())
}

async fn api_me(
    session: Result<ApiSession, ApiError>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let ApiSession(session) = session?;
    Ok(Json(json!({"user": user_json(&session.user)})))
}
