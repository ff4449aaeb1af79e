//! Errors at the HTTP edge: one mapping from [`ChatError`] to a status, rendered as the
//! contract's JSON error body for `/api` or as an HTML error page for people.

use std::time::Duration;

use axum::http::{header, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use super::pages::render_error_page;
use crate::chat::ChatError;
use crate::protocol::ErrorCode;

/// Who reads the error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wants {
    Json,
    Html,
}

impl Wants {
    pub fn of(uri: &Uri) -> Wants {
        if uri.path().starts_with("/api/") {
            Wants::Json
        } else {
            Wants::Html
        }
    }
}

/// A refused request: status, contract code, a message for humans.
#[derive(Debug)]
pub struct Refusal {
    pub status: StatusCode,
    pub code: ErrorCode,
    pub message: String,
    pub retry_after: Option<Duration>,
    pub wants: Wants,
}

/// The HTTP status of each error code: the one mapping at the edge.
pub fn status(code: ErrorCode) -> StatusCode {
    match code {
        ErrorCode::InvalidUsername
        | ErrorCode::InvalidPassword
        | ErrorCode::PasswordMismatch
        | ErrorCode::InvalidRoomName
        | ErrorCode::EmptyBody
        | ErrorCode::BodyTooLong
        | ErrorCode::InvalidFrame
        | ErrorCode::InvalidRequest => StatusCode::BAD_REQUEST,
        ErrorCode::UsernameTaken | ErrorCode::ClientIdReused => StatusCode::CONFLICT,
        ErrorCode::InvalidCredentials | ErrorCode::Unauthenticated => StatusCode::UNAUTHORIZED,
        ErrorCode::TooManyAttempts | ErrorCode::RateLimited => StatusCode::TOO_MANY_REQUESTS,
        ErrorCode::RoomNotFound | ErrorCode::NotFound => StatusCode::NOT_FOUND,
        ErrorCode::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        ErrorCode::Forbidden => StatusCode::FORBIDDEN,
        ErrorCode::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
        ErrorCode::FrameTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
    }
}

pub fn status_of(error: &ChatError) -> StatusCode {
    status(error.code())
}

impl Refusal {
    fn new(code: ErrorCode, message: impl Into<String>, wants: Wants) -> Refusal {
        Refusal {
            status: status(code),
            code,
            message: message.into(),
            retry_after: None,
            wants,
        }
    }

    pub fn from_chat(error: ChatError, wants: Wants) -> Refusal {
        if let ChatError::Unavailable(source) = &error {
            tracing::error!(error = %source, "request failed: service unavailable");
        }
        Refusal {
            retry_after: error.retry_after(),
            ..Refusal::new(error.code(), error.to_string(), wants)
        }
    }

    pub fn bad_request(message: impl Into<String>, wants: Wants) -> Refusal {
        Refusal::new(ErrorCode::InvalidRequest, message, wants)
    }

    pub fn forbidden(message: impl Into<String>, wants: Wants) -> Refusal {
        Refusal::new(ErrorCode::Forbidden, message, wants)
    }

    /// A request body that did not arrive in time (CONTRACT §7a "Slow or silent peers").
    pub fn request_timeout(wants: Wants) -> Refusal {
        Refusal::new(
            ErrorCode::RequestTimeout,
            "the request body did not arrive in time",
            wants,
        )
    }

    pub fn not_found(wants: Wants) -> Refusal {
        Refusal::new(ErrorCode::NotFound, "there is nothing here", wants)
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let mut response = match self.wants {
            Wants::Json => {
                let mut error = json!({"code": self.code, "message": self.message});
                if let Some(wait) = self.retry_after {
                    error["retry_after_ms"] = json!(wait.as_millis().max(1) as u64);
                }
                (self.status, Json(json!({ "error": error }))).into_response()
            }
            Wants::Html => render_error_page(self.status, &self.message),
        };
        if let Some(wait) = self.retry_after {
            let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, seconds.max(1).into());
        }
        response
    }
}

/// An `/api` handler's error: JSON.
#[derive(Debug)]
pub struct ApiError(pub Refusal);

impl From<ChatError> for ApiError {
    fn from(e: ChatError) -> Self {
        ApiError(Refusal::from_chat(e, Wants::Json))
    }
}

impl From<Refusal> for ApiError {
    fn from(r: Refusal) -> Self {
        ApiError(r)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        self.0.into_response()
    }
}

/// A page handler's error: an HTML page.
#[derive(Debug)]
pub struct PageError(pub Refusal);

impl From<ChatError> for PageError {
    fn from(e: ChatError) -> Self {
        PageError(Refusal::from_chat(e, Wants::Html))
    }
}

impl From<Refusal> for PageError {
    fn from(r: Refusal) -> Self {
        PageError(r)
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        self.0.into_response()
    }
}

pub async fn not_found(uri: Uri) -> Refusal {
    Refusal::not_found(Wants::of(&uri))
}
