//! Every refusal the product knows, with the contract's snake_case code for each.

use std::time::Duration;

use crate::domain::ValueError;
use crate::ports::{BoxError, StoreError, Unavailable};

#[derive(Debug, thiserror::Error)]
pub enum ChatError {
    #[error("{0}")]
    InvalidUsername(ValueError),
    #[error("{0}")]
    InvalidPassword(ValueError),
    #[error("the two passwords differ")]
    PasswordMismatch,
    #[error("that username is taken")]
    UsernameTaken,
    #[error("wrong username or password")]
    InvalidCredentials,
    #[error("too many attempts; try again later")]
    TooManyAttempts { retry_after: Duration },
    #[error("sign in first")]
    Unauthenticated,
    #[error("{0}")]
    InvalidRoomName(ValueError),
    #[error("no such room")]
    RoomNotFound,
    #[error("message is empty")]
    EmptyBody,
    #[error("message is longer than 4000 characters")]
    BodyTooLong,
    #[error("{0}")]
    InvalidFrame(String),
    #[error("{0}")]
    InvalidRequest(String),
    /// The user's `client_id` already names a message in another room or with another body.
    #[error("that client_id was already used for another message; pick a new one")]
    ClientIdReused,
    #[error("slow down: too many messages")]
    RateLimited { retry_after: Duration },
    #[error("the service is unavailable right now; try again")]
    Unavailable(#[source] BoxError),
}

impl ChatError {
    /// The contract's error code; the one table of codes.
    pub fn code(&self) -> &'static str {
        match self {
            ChatError::InvalidUsername(_) => "invalid_username",
            ChatError::InvalidPassword(_) => "invalid_password",
            ChatError::PasswordMismatch => "password_mismatch",
            ChatError::UsernameTaken => "username_taken",
            ChatError::InvalidCredentials => "invalid_credentials",
            ChatError::TooManyAttempts { .. } => "too_many_attempts",
            ChatError::Unauthenticated => "unauthenticated",
            ChatError::InvalidRoomName(_) => "invalid_room_name",
            ChatError::RoomNotFound => "room_not_found",
            ChatError::EmptyBody => "empty_body",
            ChatError::BodyTooLong => "body_too_long",
            ChatError::InvalidFrame(_) => "invalid_frame",
            ChatError::InvalidRequest(_) => "invalid_request",
            ChatError::ClientIdReused => "client_id_reused",
            ChatError::RateLimited { .. } => "rate_limited",
            ChatError::Unavailable(_) => "unavailable",
        }
    }

    /// How long to wait before trying again, where that is known.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            ChatError::RateLimited { retry_after } | ChatError::TooManyAttempts { retry_after } => {
                Some(*retry_after)
            }
            _ => None,
        }
    }
}

impl From<StoreError> for ChatError {
    fn from(e: StoreError) -> Self {
        match e {
            // Callers that expect a duplicate (registration) map it themselves.
            StoreError::Duplicate => {
                ChatError::Unavailable("unexpected duplicate in the store".into())
            }
            StoreError::Unavailable(source) => ChatError::Unavailable(source),
        }
    }
}

impl From<Unavailable> for ChatError {
    fn from(e: Unavailable) -> Self {
        ChatError::Unavailable(e.0)
    }
}
