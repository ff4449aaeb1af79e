//! Extractors: the session from its cookie, JSON bodies and query strings that fail as the
//! contract says,
//! the client's address and scheme (believing only trusted proxies).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use axum::body::Bytes;
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap};
use serde::de::DeserializeOwned;

use super::cookies;
use super::error::{ApiError, Refusal, Wants};
use super::AppState;
use crate::chat::{AuthSession, ChatError};
use crate::config::TrustedProxies;

/// The request's session, if its cookie names a live one.
pub struct MaybeSession(pub Option<AuthSession>);

impl FromRequestParts<AppState> for MaybeSession {
    type Rejection = Refusal;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let Some(token) = cookies::read(&parts.headers, cookies::SESSION) else {
            return Ok(MaybeSession(None));
        };
        state
            .chat
            .accounts()
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
            Err(refusal) => Err(refusal.into()),
        }
    }
}

/// A query string read into `T`; one that does not fit is a `400` `invalid_request` with
/// the contract's JSON error body. Take it as `Result<ApiQuery<T>, ApiError>` after the
/// session, so an anonymous caller learns `401` first.
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(query)) => Ok(ApiQuery(query)),
            Err(rejection) => Err(Refusal::bad_request(
                format!("bad query: {}", rejection.body_text()),
                Wants::Json,
            )
            .into()),
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
        // One parser for every client JSON (the WebSocket's frames too): an object, no key
        // twice. serde alone would read a struct from an array (`["alice","secret"]`).
        let value = super::strict_json::parse_object(&bytes).map_err(|e| {
            Refusal::bad_request(
                format!("the body must be one JSON object: {e}"),
                Wants::Json,
            )
        })?;
        serde_json::from_value(value).map(ApiJson).map_err(|e| {
            Refusal::bad_request(format!("invalid JSON body: {e}"), Wants::Json).into()
        })
    }
}

fn peer(parts: &Parts) -> IpAddr {
    parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip().to_canonical())
        .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED))
}

/// One `X-Forwarded-For` entry: `1.2.3.4`, `2001:db8::1`, or either with a port.
fn forwarded_address(entry: &str) -> Option<IpAddr> {
    let entry = entry.trim();
    entry
        .parse::<IpAddr>()
        .or_else(|_| entry.parse::<SocketAddr>().map(|a| a.ip()))
        .ok()
        .map(|ip| ip.to_canonical())
}

/// The client behind `peer`: from a trusted proxy, the right-most `X-Forwarded-For` address
/// that is not itself a trusted proxy (each proxy appends the peer it saw, so the entries
/// left of that one are the client's to invent). From anyone else, the peer.
fn client_address(peer: IpAddr, headers: &HeaderMap, trusted: &TrustedProxies) -> IpAddr {
    if !trusted.contains(peer) {
        return peer;
    }
    let entries = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .collect::<Vec<_>>();
    let mut client = peer;
    for entry in entries.iter().rev() {
        // An entry that is not an address was not written by a proxy we trust: the last
        // trusted hop is the best we know.
        let Some(address) = forwarded_address(entry) else {
            break;
        };
        client = address;
        if !trusted.contains(address) {
            break;
        }
    }
    client
}

/// The peer's address (the client's, behind a trusted proxy), for per-address limits.
pub struct ClientAddr(pub IpAddr);

impl FromRequestParts<AppState> for ClientAddr {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        Ok(ClientAddr(client_address(
            peer(parts),
            &parts.headers,
            &state.trusted_proxies,
        )))
    }
}

/// Whether the client reached a TLS-terminating proxy: `X-Forwarded-Proto: https` from a
/// trusted proxy. From anyone else the header would let a client make us set cookies that
/// are not `Secure`, or are, at will; natter itself serves plain HTTP.
pub struct OverHttps(pub bool);

impl FromRequestParts<AppState> for OverHttps {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let over_https = state.trusted_proxies.contains(peer(parts))
            && parts
                .headers
                .get("x-forwarded-proto")
                .and_then(|v| v.to_str().ok())
                // The left-most is what the outermost proxy saw from the client.
                .and_then(|v| v.split(',').next())
                .is_some_and(|v| v.trim().eq_ignore_ascii_case("https"));
        Ok(OverHttps(over_https))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::test_headers as headers;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn forwarded_for_is_believed_only_from_a_trusted_proxy() {
        let trusted = TrustedProxies::parse("10.0.0.0/8").unwrap();
        let xff = headers(&[("x-forwarded-for", "203.0.113.7")]);
        assert_eq!(
            client_address(ip("198.51.100.1"), &xff, &trusted),
            ip("198.51.100.1")
        );
        assert_eq!(
            client_address(ip("10.0.0.2"), &xff, &trusted),
            ip("203.0.113.7")
        );
        let none = TrustedProxies::default();
        assert_eq!(client_address(ip("10.0.0.2"), &xff, &none), ip("10.0.0.2"));
    }

    #[test]
    fn the_client_is_the_right_most_address_that_is_not_a_trusted_proxy() {
        let trusted = TrustedProxies::parse("10.0.0.0/8").unwrap();
        let proxy = ip("10.0.0.2");
        for (values, client) in [
            // The client claims to be 1.1.1.1; the edge proxy saw 203.0.113.7.
            (&["1.1.1.1, 203.0.113.7, 10.0.0.9"][..], "203.0.113.7"),
            (&["1.1.1.1", "203.0.113.7:4711"][..], "203.0.113.7"),
            (&["[2001:db8::5]:443"][..], "2001:db8::5"),
            (&["::ffff:203.0.113.7"][..], "203.0.113.7"),
            // Only proxies: the farthest of them.
            (&["10.0.0.7, 10.0.0.9"][..], "10.0.0.7"),
            // Garbage stops the walk at the last trusted hop.
            (&["203.0.113.7, unknown, 10.0.0.9"][..], "10.0.0.9"),
            (&["nonsense"][..], "10.0.0.2"),
            (&[][..], "10.0.0.2"),
        ] {
            let pairs: Vec<_> = values.iter().map(|v| ("x-forwarded-for", *v)).collect();
            assert_eq!(
                client_address(proxy, &headers(&pairs), &trusted),
                ip(client),
                "{values:?}"
            );
        }
    }
}
