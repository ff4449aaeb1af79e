//! Origin checks and CSRF tokens.
//!
//! CSRF: a form's token is an HMAC of the visitor's session cookie (or, before login, of a
//! random pre-session cookie), so a token is worthless in another browser. Every
//! state-changing request with a foreign `Origin` is refused as well.

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use super::cookies;
use super::error::{Refusal, Wants};
use super::AppState;
use crate::config::SecretKey;

/// Which origins may open WebSockets and post: the request's own host, plus the configured ones.
#[derive(Debug, Clone)]
pub struct OriginPolicy {
    allowed: Vec<String>,
}

impl OriginPolicy {
    pub fn new(allowed: Vec<String>) -> OriginPolicy {
        OriginPolicy { allowed }
    }

    /// A request without `Origin` (curl, bots) is allowed; a browser always sends one cross-site.
    pub fn allows(&self, headers: &HeaderMap) -> bool {
        let Some(origin) = headers.get(header::ORIGIN) else {
            return true;
        };
        let Ok(origin) = origin.to_str() else {
            return false;
        };
        let origin = origin.to_ascii_lowercase();
        if self.allowed.contains(&origin) {
            return true;
        }
        let host = headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .map(str::to_ascii_lowercase);
        match (host, origin.split_once("://")) {
            (Some(host), Some((scheme, authority))) => {
                (scheme == "http" || scheme == "https") && authority == host
            }
            _ => false,
        }
    }
}

pub async fn refuse_foreign_origins(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let safe = matches!(
        *request.method(),
        Method::GET | Method::HEAD | Method::OPTIONS
    );
    if !safe && !state.origins.allows(request.headers()) {
        return Refusal::forbidden("cross-origin request refused", Wants::of(request.uri()))
            .into_response();
    }
    next.run(request).await
}

/// The CSRF token for this visitor, and a pre-session cookie to set if they had none.
pub struct CsrfToken {
    pub token: String,
    pub set_cookie: Option<HeaderValue>,
}

fn sign(secret: &SecretKey, binding: &str) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.expose()).expect("HMAC takes any key length");
    mac.update(b"natter-csrf:");
    mac.update(binding.as_bytes());
    URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
}

fn binding(headers: &HeaderMap) -> Option<String> {
    cookies::read(headers, cookies::SESSION)
        .or_else(|| cookies::read(headers, cookies::PRE_SESSION))
}

/// `over_https`: whether a pre-session cookie made here must be `Secure`.
pub fn csrf_token(secret: &SecretKey, headers: &HeaderMap, over_https: bool) -> CsrfToken {
    match binding(headers) {
        Some(binding) => CsrfToken {
            token: sign(secret, &binding),
            set_cookie: None,
        },
        None => {
            let (value, cookie) = cookies::new_pre_session(over_https);
            CsrfToken {
                token: sign(secret, &value),
                set_cookie: Some(cookie),
            }
        }
    }
}

pub fn verify_csrf(secret: &SecretKey, headers: &HeaderMap, token: &str) -> Result<(), Refusal> {
    let expected = binding(headers).map(|b| sign(secret, &b));
    match expected {
        Some(expected) if bool::from(expected.as_bytes().ct_eq(token.as_bytes())) => Ok(()),
        _ => Err(Refusal::forbidden(
            "the form expired or came from another site; reload the page and try again",
            Wants::Html,
        )),
    }
}
