//! Errors at the HTTP edge: one mapping from [`ChatError`] to a status, rendered as the
//! contract's JSON error body for `/api` or as an HTML error page for people.

use std::marker::PhantomData;
use std::time::Duration;

use axum::http::{header, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use super::views::render_error_page;
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
        | ErrorCode::InvalidRequest
        | ErrorCode::InvalidTarget
        | ErrorCode::NotAllowedInDm
        | ErrorCode::OwnerCannotLeave
        | ErrorCode::InvalidRole
        | ErrorCode::InvalidReply
        | ErrorCode::InvalidEmoji
        | ErrorCode::InvalidSeq => StatusCode::BAD_REQUEST,
        ErrorCode::UsernameTaken
        | ErrorCode::ClientIdReused
        | ErrorCode::MessageDeleted
        | ErrorCode::TooManyReactions => StatusCode::CONFLICT,
        ErrorCode::InvalidCredentials | ErrorCode::Unauthenticated => StatusCode::UNAUTHORIZED,
        ErrorCode::TooManyAttempts | ErrorCode::RateLimited => StatusCode::TOO_MANY_REQUESTS,
        ErrorCode::RoomNotFound
        | ErrorCode::NotFound
        | ErrorCode::UnknownUser
        | ErrorCode::UnknownMessage => StatusCode::NOT_FOUND,
        ErrorCode::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        ErrorCode::Forbidden | ErrorCode::Banned | ErrorCode::EditWindowPassed => {
            StatusCode::FORBIDDEN
        }
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

/// Who a handler answers: an `/api` client (JSON) or a person (an HTML page).
pub trait Audience {
    const WANTS: Wants;
}

pub struct ForJson;
pub struct ForHtml;

impl Audience for ForJson {
    const WANTS: Wants = Wants::Json;
}

impl Audience for ForHtml {
    const WANTS: Wants = Wants::Html;
}

/// A handler's error: one type, whose audience decides how a [`ChatError`] is rendered
/// (`?` on a chat call converts it).
pub struct Refused<A: Audience>(pub Refusal, PhantomData<A>);

/// An `/api` handler's error: JSON.
pub type ApiError = Refused<ForJson>;
/// A page handler's error: an HTML page.
pub type PageError = Refused<ForHtml>;

impl<A: Audience> std::fmt::Debug for Refused<A> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl<A: Audience> From<ChatError> for Refused<A> {
    fn from(e: ChatError) -> Self {
        Refused(Refusal::from_chat(e, A::WANTS), PhantomData)
    }
}

impl<A: Audience> From<Refusal> for Refused<A> {
    fn from(r: Refusal) -> Self {
        Refused(r, PhantomData)
    }
}

impl<A: Audience> IntoResponse for Refused<A> {
    fn into_response(self) -> Response {
        self.0.into_response()
    }
}

pub async fn not_found(uri: Uri) -> Refusal {
    Refusal::not_found(Wants::of(&uri))
}
