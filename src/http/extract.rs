//! Extractors: the session from its cookie, JSON bodies that fail as the contract says,
//! and the client's address.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use axum::body::Bytes;
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap};
use serde::de::DeserializeOwned;

use super::error::{ApiError, Refusal, Wants};
use super::AppState;
use crate::chat::{AuthSession, ChatError, NewSession};

pub const SESSION_COOKIE: &str = "natter_session";
/// Binds an anonymous visitor's CSRF tokens until they log in.
pub const PRE_SESSION_COOKIE: &str = "natter_csrf";

pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value.trim_matches('"').to_owned())
}

/// Behind a TLS-terminating proxy the cookie must be `Secure`.
fn served_over_https(headers: &HeaderMap) -> bool {
    headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("https"))
}

pub fn session_cookie(session: &NewSession, headers: &HeaderMap) -> String {
    let max_age = (session.expires_at - chrono::Utc::now())
        .num_seconds()
        .max(0);
    let secure = if served_over_https(headers) {
        "; Secure"
    } else {
        ""
    };
    format!(
        "{SESSION_COOKIE}={}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age}{secure}",
        session.token
    )
}

pub fn expired_session_cookie() -> String {
    format!("{SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0")
}

/// The request's session, if its cookie names a live one.
pub struct MaybeSession(pub Option<AuthSession>);

impl FromRequestParts<AppState> for MaybeSession {
    type Rejection = Refusal;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let Some(token) = cookie(&parts.headers, SESSION_COOKIE) else {
            return Ok(MaybeSession(None));
        };
        state
            .chat
            .authenticate(&token)
            .await
            .map(MaybeSession)
            .map_err(|e| Refusal::from_chat(e, Wants::of(&parts.uri)))
    }
}

/// A signed-in API caller; `401` otherwise.
pub struct ApiSession(pub AuthSession);

impl FromRequestParts<AppState> for ApiSession {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        match MaybeSession::from_request_parts(parts, state).await {
            Ok(MaybeSession(Some(session))) => Ok(ApiSession(session)),
            Ok(MaybeSession(None)) => Err(ChatError::Unauthenticated.into()),
            Err(refusal) => Err(ApiError(refusal)),
        }
    }
}

/// A JSON body; anything else is a `400` with the contract's error body.
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned> FromRequest<AppState> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let is_json = request
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"));
        if !is_json {
            return Err(
                Refusal::bad_request("the body must be application/json", Wants::Json).into(),
            );
        }
        let bytes = Bytes::from_request(request, state).await.map_err(|e| {
            Refusal::bad_request(format!("could not read the body: {e}"), Wants::Json)
        })?;
        // serde reads a struct from a JSON array too (`["alice","secret"]` would register
        // alice): a body is an object or nothing. Duplicate keys are refused by serde's
        // derived structs.
        let starts_as_object = bytes
            .iter()
            .find(|b| !b.is_ascii_whitespace())
            .is_some_and(|&b| b == b'{');
        if !starts_as_object {
            return Err(Refusal::bad_request("the body must be a JSON object", Wants::Json).into());
        }
        serde_json::from_slice(&bytes).map(ApiJson).map_err(|e| {
            Refusal::bad_request(format!("invalid JSON body: {e}"), Wants::Json).into()
        })
    }
}

/// The peer's address, for throttling failed logins.
pub struct ClientAddr(pub IpAddr);

impl<S: Send + Sync> FromRequestParts<S> for ClientAddr {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let addr = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(addr)| addr.ip())
            .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
        Ok(ClientAddr(addr))
    }
}
