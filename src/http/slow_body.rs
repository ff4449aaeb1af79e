//! Request bodies must arrive on time (CONTRACT §7a "Slow or silent peers").
//!
//! hyper's header timeout ends with the head: a client that announces a body and trickles
//! it one byte at a time held its connection — and a file descriptor — for as long as it
//! liked. Bodies are small (at most [`super::BODY_LIMIT`]), so the whole body is read here
//! under one deadline, before any handler sees the request.

use std::time::Duration;

use axum::body::{Body, HttpBody};
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;

use super::error::{Refusal, Wants};
use super::BODY_LIMIT;

enum Unread {
    TimedOut,
    TooLarge,
    Broken,
}

pub async fn read_body_in_time(
    State(limit): State<Duration>,
    request: Request,
    next: Next,
) -> Response {
    // Most requests (every GET, every WebSocket handshake) have no body: nothing to wait for.
    if request.body().is_end_stream() {
        return next.run(request).await;
    }
    let wants = Wants::of(request.uri());
    let (parts, body) = request.into_parts();
    let read = match tokio::time::timeout(limit, read_limited(body)).await {
        Ok(read) => read,
        Err(_) => Err(Unread::TimedOut),
    };
    let refusal = match read {
        Ok(bytes) => {
            return next
                .run(Request::from_parts(parts, Body::from(bytes)))
                .await
        }
        Err(Unread::TimedOut) => Refusal::request_timeout(wants),
        Err(Unread::TooLarge) => Refusal::bad_request("the body is larger than 64 KiB", wants),
        Err(Unread::Broken) => Refusal::bad_request("the body could not be read", wants),
    };
    // What is left of the body is never read, so the connection cannot carry another
    // request: closing it is what gives the descriptor back.
    let mut response = refusal.into_response();
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

async fn read_limited(body: Body) -> Result<Vec<u8>, Unread> {
    let mut stream = body.into_data_stream();
    let mut bytes = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|_| Unread::Broken)?;
        if bytes.len() + chunk.len() > BODY_LIMIT {
            return Err(Unread::TooLarge);
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(bytes)
}
