//! The HTTP edge: axum routes, pages, the JSON API and the WebSocket endpoint.
//!
//! Handlers call [`ChatService`] and nothing else: no SQL, no Redis here. Errors become
//! responses in one place, [`error`].

mod accounts;
mod cookies;
mod error;
mod extract;
mod hosts;
mod members;
mod messages;
mod ops;
mod pages;
mod rooms;
mod security;
mod slow_body;
pub(crate) mod strict_json;
mod views;
mod ws;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::http::{header, HeaderValue};
use axum::middleware;
use axum::Router;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower_http::set_header::SetResponseHeaderLayer;

use crate::chat::ChatService;
use crate::config::{AllowedHosts, SecretKey, TrustedProxies};

pub use security::OriginPolicy;
pub use ws::WsSettings;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub chat: Arc<ChatService>,
    pub secret_key: Arc<SecretKey>,
    pub origins: Arc<OriginPolicy>,
    /// Whose forwarding headers are believed (CONTRACT §7).
    pub trusted_proxies: Arc<TrustedProxies>,
    /// Cancelled on SIGTERM: sockets close with 1001.
    pub shutdown: CancellationToken,
    /// Every WebSocket task, so shutdown can wait for them.
    pub sockets: TaskTracker,
    /// What bounds each socket, and each user's sockets.
    pub ws: Arc<WsSettings>,
}

/// Forms and JSON bodies are small; anything bigger is refused before it is read.
const BODY_LIMIT: usize = 64 * 1024;

const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
     connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// What the edge checks before any handler runs.
pub struct EdgeRules {
    pub allowed_hosts: AllowedHosts,
    pub request_body_timeout: Duration,
}

pub fn router(state: AppState, edge: EdgeRules) -> Router {
    Router::new()
        .merge(pages::router())
        .merge(accounts::router())
        .merge(rooms::router())
        .merge(members::router())
        .merge(messages::router())
        .merge(ws::router())
        .merge(ops::router())
        .fallback(error::not_found)
        .layer(middleware::from_fn_with_state(
            state.clone(),
            security::refuse_foreign_origins,
        ))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(middleware::from_fn_with_state(
            Arc::new(edge.allowed_hosts),
            hosts::refuse_unknown_hosts,
        ))
        // Outside the Host check: a refused request's body must not linger either.
        .layer(middleware::from_fn_with_state(
            edge.request_body_timeout,
            slow_body::read_body_in_time,
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CONTENT_SECURITY_POLICY),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::REFERRER_POLICY,
            HeaderValue::from_static("same-origin"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::X_FRAME_OPTIONS,
            HeaderValue::from_static("DENY"),
        ))
        .layer(tower_http::trace::TraceLayer::new_for_http())
        .with_state(state)
}

/// A request's headers from `(name, value)` pairs, for the edge's unit tests.
#[cfg(test)]
pub(crate) fn test_headers(pairs: &[(&str, &str)]) -> axum::http::HeaderMap {
    let mut headers = axum::http::HeaderMap::new();
    for (name, value) in pairs {
        headers.append(
            axum::http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
            value.parse().unwrap(),
        );
    }
    headers
}
