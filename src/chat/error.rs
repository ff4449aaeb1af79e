//! Every refusal the product knows, with its code from the one table ([`ErrorCode`]).

use std::time::Duration;

use crate::domain::ValueError;
use crate::ports::{BoxError, StoreError, Unavailable};
use crate::protocol::ErrorCode;

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
    /// A message body that [`MessageBody::parse`](crate::domain::MessageBody::parse)
    /// refused; the value error says why, and chooses the code.
    #[error("{0}")]
    InvalidBody(ValueError),
    #[error("{0}")]
    InvalidFrame(String),
    #[error("{0}")]
    InvalidRequest(String),
    /// The user's `client_id` already names a message in another room or with another body.
    #[error("that client_id was already used for another message; pick a new one")]
    ClientIdReused,
    #[error("slow down: too many messages")]
    RateLimited { retry_after: Duration },
    /// Over the room-creation limit (CONTRACT §9).
    #[error("you have made too many rooms lately; try again later")]
    TooManyRooms { retry_after: Duration },
    /// Over one connection's budget of frames that are not accepted sends (CONTRACT §7a).
    #[error("too many frames; slow down")]
    TooManyFrames { retry_after: Duration },
    /// Acting on a room without the role it needs (CONTRACT §9).
    #[error("{0}")]
    Forbidden(&'static str),
    #[error("you are banned from this room")]
    Banned,
    #[error("{0}")]
    InvalidTarget(&'static str),
    #[error("no such user")]
    UnknownUser,
    #[error("a direct message has exactly its two members")]
    NotAllowedInDm,
    #[error("the owner of a private room cannot leave while others remain")]
    OwnerCannotLeave,
    #[error("a role is \"moderator\" or \"member\"")]
    InvalidRole,
    #[error("reply_to is not a message of this room")]
    InvalidReply,
    #[error("no such message in this room")]
    UnknownMessage,
    #[error("that message was deleted")]
    MessageDeleted,
    #[error("a message can be edited only within the edit window after it was sent")]
    EditWindowPassed,
    #[error("{0}")]
    InvalidEmoji(ValueError),
    #[error("a message carries at most 20 different emoji")]
    TooManyReactions,
    #[error("seq must be a message of the room: from 0 to its last seq")]
    InvalidSeq,
    #[error("the service is unavailable right now; try again")]
    Unavailable(#[source] BoxError),
}

impl ChatError {
    /// The contract's error code, from the one table ([`ErrorCode`]).
    pub fn code(&self) -> ErrorCode {
        match self {
            ChatError::InvalidUsername(_) => ErrorCode::InvalidUsername,
            ChatError::InvalidPassword(_) => ErrorCode::InvalidPassword,
            ChatError::PasswordMismatch => ErrorCode::PasswordMismatch,
            ChatError::UsernameTaken => ErrorCode::UsernameTaken,
            ChatError::InvalidCredentials => ErrorCode::InvalidCredentials,
            ChatError::TooManyAttempts { .. } => ErrorCode::TooManyAttempts,
            ChatError::Unauthenticated => ErrorCode::Unauthenticated,
            ChatError::InvalidRoomName(_) => ErrorCode::InvalidRoomName,
            ChatError::RoomNotFound => ErrorCode::RoomNotFound,
            ChatError::InvalidBody(ValueError::EmptyBody) => ErrorCode::EmptyBody,
            ChatError::InvalidBody(ValueError::BodyTooLong) => ErrorCode::BodyTooLong,
            ChatError::InvalidBody(_) | ChatError::InvalidFrame(_) => ErrorCode::InvalidFrame,
            ChatError::InvalidRequest(_) => ErrorCode::InvalidRequest,
            ChatError::ClientIdReused => ErrorCode::ClientIdReused,
            ChatError::RateLimited { .. }
            | ChatError::TooManyFrames { .. }
            | ChatError::TooManyRooms { .. } => ErrorCode::RateLimited,
            ChatError::Forbidden(_) => ErrorCode::Forbidden,
            ChatError::Banned => ErrorCode::Banned,
            ChatError::InvalidTarget(_) => ErrorCode::InvalidTarget,
            ChatError::UnknownUser => ErrorCode::UnknownUser,
            ChatError::NotAllowedInDm => ErrorCode::NotAllowedInDm,
            ChatError::OwnerCannotLeave => ErrorCode::OwnerCannotLeave,
            ChatError::InvalidRole => ErrorCode::InvalidRole,
            ChatError::InvalidReply => ErrorCode::InvalidReply,
            ChatError::UnknownMessage => ErrorCode::UnknownMessage,
            ChatError::MessageDeleted => ErrorCode::MessageDeleted,
            ChatError::EditWindowPassed => ErrorCode::EditWindowPassed,
            ChatError::InvalidEmoji(_) => ErrorCode::InvalidEmoji,
            ChatError::TooManyReactions => ErrorCode::TooManyReactions,
            ChatError::InvalidSeq => ErrorCode::InvalidSeq,
            ChatError::Unavailable(_) => ErrorCode::Unavailable,
        }
    }

    /// How long to wait before trying again, where that is known.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            ChatError::RateLimited { retry_after }
            | ChatError::TooManyFrames { retry_after }
            | ChatError::TooManyRooms { retry_after }
            | ChatError::TooManyAttempts { retry_after } => Some(*retry_after),
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
