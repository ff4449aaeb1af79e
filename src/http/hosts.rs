//! The `Host` check (CONTRACT §7a "Hosts"): a DNS-rebinding page talks to natter from the
//! victim's browser under the attacker's name, so a name natter was not told about is
//! refused before any handler runs.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::error::{Refusal, Wants};
use crate::config::AllowedHosts;

/// Probes use an address, or a name of the platform's, that nobody configured.
const ANY_HOST_PATHS: [&str; 3] = ["/healthz", "/readyz", "/metrics"];

pub async fn refuse_unknown_hosts(
    State(hosts): State<Arc<AllowedHosts>>,
    request: Request,
    next: Next,
) -> Response {
    if ANY_HOST_PATHS.contains(&request.uri().path()) {
        return next.run(request).await;
    }
    // HTTP/1.1 requires `Host`; an absolute-form target names the host in the URI too,
    // and then both must be allowed.
    let header = request.headers().get(header::HOST).map(|h| h.to_str());
    let target = request.uri().authority().map(|a| a.as_str());
    let allowed = match (header, target) {
        (None, None) | (Some(Err(_)), _) => false,
        (Some(Ok(header)), target) => {
            hosts.allows(header) && target.is_none_or(|target| hosts.allows(target))
        }
        (None, Some(target)) => hosts.allows(target),
    };
    if allowed {
        return next.run(request).await;
    }
    Refusal::bad_request(
        "this server does not answer to that host name; its operator can add it to ALLOWED_HOSTS",
        Wants::of(request.uri()),
    )
    .into_response()
}
