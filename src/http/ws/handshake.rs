//! The WebSocket opening handshake (RFC 6455 §4.2), answered here instead of by axum's
//! `WebSocketUpgrade`, so that the socket is tungstenite's own stream: only that gives
//! access to the connection beneath, which [`super::connection`] writes frames to
//! ([`super::frames`] explains why).

use std::future::Future;

use axum::body::Body;
use axum::extract::FromRequestParts;
use axum::http::{header, request::Parts, HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use hyper::upgrade::{OnUpgrade, Upgraded};
use hyper_util::rt::TokioIo;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use tokio_tungstenite::WebSocketStream;

/// An accepted WebSocket.
pub type Socket = WebSocketStream<TokioIo<Upgraded>>;

/// A valid handshake request, not yet answered.
pub struct Handshake {
    key: HeaderValue,
    on_upgrade: OnUpgrade,
}

/// Why a request is not a WebSocket handshake.
#[derive(Debug)]
pub struct NotAHandshake(StatusCode, &'static str);

impl IntoResponse for NotAHandshake {
    fn into_response(self) -> Response {
        (self.0, self.1).into_response()
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Handshake {
    type Rejection = NotAHandshake;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        if parts.method != Method::GET {
            return Err(NotAHandshake(
                StatusCode::METHOD_NOT_ALLOWED,
                "a WebSocket handshake is a GET",
            ));
        }
        let headers = &parts.headers;
        if !has_token(headers, header::CONNECTION, "upgrade")
            || !has_token(headers, header::UPGRADE, "websocket")
        {
            return Err(NotAHandshake(
                StatusCode::UPGRADE_REQUIRED,
                "this is a WebSocket endpoint: send Connection: upgrade, Upgrade: websocket",
            ));
        }
        if headers
            .get(header::SEC_WEBSOCKET_VERSION)
            .map(HeaderValue::as_bytes)
            != Some(b"13")
        {
            return Err(NotAHandshake(
                StatusCode::BAD_REQUEST,
                "Sec-WebSocket-Version must be 13",
            ));
        }
        let Some(key) = headers.get(header::SEC_WEBSOCKET_KEY).cloned() else {
            return Err(NotAHandshake(
                StatusCode::BAD_REQUEST,
                "Sec-WebSocket-Key is missing",
            ));
        };
        let Some(on_upgrade) = parts.extensions.remove::<OnUpgrade>() else {
            return Err(NotAHandshake(
                StatusCode::UPGRADE_REQUIRED,
                "this connection cannot be upgraded",
            ));
        };
        Ok(Handshake { key, on_upgrade })
    }
}

impl Handshake {
    /// Answers `101 Switching Protocols`; once the client has it, `serve` gets the socket.
    pub fn accept<F, Fut>(self, config: WebSocketConfig, serve: F) -> Response
    where
        F: FnOnce(Socket) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let on_upgrade = self.on_upgrade;
        tokio::spawn(async move {
            match on_upgrade.await {
                Ok(upgraded) => {
                    let io = TokioIo::new(upgraded);
                    let socket =
                        WebSocketStream::from_raw_socket(io, Role::Server, Some(config)).await;
                    serve(socket).await;
                }
                Err(e) => tracing::debug!(error = %e, "WebSocket upgrade failed"),
            }
        });
        Response::builder()
            .status(StatusCode::SWITCHING_PROTOCOLS)
            .header(header::CONNECTION, "upgrade")
            .header(header::UPGRADE, "websocket")
            .header(
                header::SEC_WEBSOCKET_ACCEPT,
                derive_accept_key(self.key.as_bytes()),
            )
            .body(Body::empty())
            .expect("a 101 response with valid headers")
    }
}

/// Whether a comma-separated header holds `token` (case-insensitively).
fn has_token(headers: &HeaderMap, name: HeaderName, token: &str) -> bool {
    headers.get_all(name).iter().any(|value| {
        value
            .to_str()
            .is_ok_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
    })
}
