//! The WebSocket's JSON frames, exactly as CONTRACT.md §4 spells them.
//!
//! Shared by the chat service (which serializes a broadcast once, here) and the WebSocket
//! edge (which parses client frames and answers). No I/O here.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize, Serializer};

use crate::domain::{Message, Rev, Room, Seq};

/// Every error code natter answers with, in an `error` frame or a JSON error body: the one
/// table. The rules' refusals get theirs from `ChatError::code`; the few the edge makes
/// before any rule runs (a foreign origin, an unknown route, a slow body, an oversized
/// frame) name theirs here too. docs/PROTOCOL.md lists them all (a test checks it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    InvalidUsername,
    InvalidPassword,
    PasswordMismatch,
    UsernameTaken,
    InvalidCredentials,
    TooManyAttempts,
    Unauthenticated,
    InvalidRoomName,
    RoomNotFound,
    EmptyBody,
    BodyTooLong,
    InvalidFrame,
    InvalidRequest,
    ClientIdReused,
    RateLimited,
    Unavailable,
    /// A state-changing request from a foreign origin, or a form with a bad CSRF token.
    Forbidden,
    /// A route that does not exist.
    NotFound,
    /// A request body that did not arrive in time (CONTRACT §7a).
    RequestTimeout,
    /// A WebSocket frame over the size limit (the socket is then closed with 1009).
    FrameTooLarge,
    /// Kept out of a room by a ban (CONTRACT §9).
    Banned,
    /// Removing or banning oneself, the owner or an admin; a DM with oneself.
    InvalidTarget,
    UnknownUser,
    /// Members, roles and bans of a DM do not change.
    NotAllowedInDm,
    /// The owner of a private room cannot leave while others remain.
    OwnerCannotLeave,
    /// A role that does not exist, or one that cannot be given.
    InvalidRole,
    /// A `reply_to` that is not a message of the room (CONTRACT §10).
    InvalidReply,
    /// A `message_id` that is not a message of the room (CONTRACT §10).
    UnknownMessage,
    /// Changing a deleted message.
    MessageDeleted,
    /// Editing after `EDIT_WINDOW_SECONDS`.
    EditWindowPassed,
    /// A reaction that is not one emoji.
    InvalidEmoji,
    /// A new emoji on a message that has 20.
    TooManyReactions,
    /// A read marker beyond the room's last `seq`, or negative (CONTRACT §11; over HTTP).
    InvalidSeq,
}

impl ErrorCode {
    pub const ALL: [ErrorCode; 33] = [
        ErrorCode::InvalidUsername,
        ErrorCode::InvalidPassword,
        ErrorCode::PasswordMismatch,
        ErrorCode::UsernameTaken,
        ErrorCode::InvalidCredentials,
        ErrorCode::TooManyAttempts,
        ErrorCode::Unauthenticated,
        ErrorCode::InvalidRoomName,
        ErrorCode::RoomNotFound,
        ErrorCode::EmptyBody,
        ErrorCode::BodyTooLong,
        ErrorCode::InvalidFrame,
        ErrorCode::InvalidRequest,
        ErrorCode::ClientIdReused,
        ErrorCode::RateLimited,
        ErrorCode::Unavailable,
        ErrorCode::Forbidden,
        ErrorCode::NotFound,
        ErrorCode::RequestTimeout,
        ErrorCode::FrameTooLarge,
        ErrorCode::Banned,
        ErrorCode::InvalidTarget,
        ErrorCode::UnknownUser,
        ErrorCode::NotAllowedInDm,
        ErrorCode::OwnerCannotLeave,
        ErrorCode::InvalidRole,
        ErrorCode::InvalidReply,
        ErrorCode::UnknownMessage,
        ErrorCode::MessageDeleted,
        ErrorCode::EditWindowPassed,
        ErrorCode::InvalidEmoji,
        ErrorCode::TooManyReactions,
        ErrorCode::InvalidSeq,
    ];

    /// The code as the contract spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidUsername => "invalid_username",
            ErrorCode::InvalidPassword => "invalid_password",
            ErrorCode::PasswordMismatch => "password_mismatch",
            ErrorCode::UsernameTaken => "username_taken",
            ErrorCode::InvalidCredentials => "invalid_credentials",
            ErrorCode::TooManyAttempts => "too_many_attempts",
            ErrorCode::Unauthenticated => "unauthenticated",
            ErrorCode::InvalidRoomName => "invalid_room_name",
            ErrorCode::RoomNotFound => "room_not_found",
            ErrorCode::EmptyBody => "empty_body",
            ErrorCode::BodyTooLong => "body_too_long",
            ErrorCode::InvalidFrame => "invalid_frame",
            ErrorCode::InvalidRequest => "invalid_request",
            ErrorCode::ClientIdReused => "client_id_reused",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::Unavailable => "unavailable",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::NotFound => "not_found",
            ErrorCode::RequestTimeout => "request_timeout",
            ErrorCode::FrameTooLarge => "frame_too_large",
            ErrorCode::Banned => "banned",
            ErrorCode::InvalidTarget => "invalid_target",
            ErrorCode::UnknownUser => "unknown_user",
            ErrorCode::NotAllowedInDm => "not_allowed_in_dm",
            ErrorCode::OwnerCannotLeave => "owner_cannot_leave",
            ErrorCode::InvalidRole => "invalid_role",
            ErrorCode::InvalidReply => "invalid_reply",
            ErrorCode::UnknownMessage => "unknown_message",
            ErrorCode::MessageDeleted => "message_deleted",
            ErrorCode::EditWindowPassed => "edit_window_passed",
            ErrorCode::InvalidEmoji => "invalid_emoji",
            ErrorCode::TooManyReactions => "too_many_reactions",
            ErrorCode::InvalidSeq => "invalid_seq",
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for ErrorCode {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

/// A message object as clients see it: its current state (CONTRACT §4, §10).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct MessageView {
    pub id: i64,
    pub room: String,
    pub seq: Seq,
    pub user: String,
    /// `""` once deleted.
    pub body: String,
    pub sent_at: String,
    /// The room's `rev` at the message's latest change.
    pub rev: Rev,
    pub edited_at: Option<String>,
    pub deleted: bool,
    pub deleted_by: Option<String>,
    pub reply_to: Option<ReplyView>,
    pub reactions: Vec<ReactionView>,
    /// The users it mentions (CONTRACT §11): usernames, sorted.
    pub mentions: Vec<String>,
}

/// The message a reply answers, as it is now.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ReplyView {
    pub id: i64,
    pub seq: Seq,
    pub user: String,
    pub excerpt: String,
    pub deleted: bool,
}

/// One emoji's reactions.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ReactionView {
    pub emoji: String,
    pub count: usize,
    /// Sorted.
    pub users: Vec<String>,
}

/// A time as every frame and route spells it: UTC, RFC 3339, milliseconds.
fn moment(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

impl From<&Message> for MessageView {
    fn from(m: &Message) -> Self {
        MessageView {
            id: m.id,
            room: m.room_slug.clone(),
            seq: m.seq,
            user: m.username.clone(),
            body: m.body.clone(),
            sent_at: moment(&m.sent_at),
            rev: m.rev,
            edited_at: m.edited_at.as_ref().map(moment),
            deleted: m.is_deleted(),
            deleted_by: m.deleted_by.clone(),
            reply_to: m.reply_to.as_ref().map(|target| ReplyView {
                id: target.id,
                seq: target.seq,
                user: target.username.clone(),
                excerpt: target.excerpt.clone(),
                deleted: target.deleted,
            }),
            reactions: m
                .reactions
                .iter()
                .map(|reaction| ReactionView {
                    emoji: reaction.emoji.clone(),
                    count: reaction.users.len(),
                    users: reaction.users.clone(),
                })
                .collect(),
            mentions: m.mentions.clone(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct RoomView {
    pub slug: String,
    pub name: String,
    /// `public`, `private` or `dm` (CONTRACT §9: every room object carries it).
    pub kind: String,
}

impl From<&Room> for RoomView {
    fn from(room: &Room) -> RoomView {
        RoomView {
            slug: room.slug.clone(),
            name: room.name.clone(),
            kind: room.kind.as_str().to_owned(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct UserView {
    pub id: i64,
    pub username: String,
}

/// Server → client.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerFrame {
    Joined {
        room: RoomView,
        user: UserView,
        members: Vec<String>,
    },
    History {
        messages: Vec<MessageView>,
        #[serde(skip_serializing_if = "std::ops::Not::not")]
        truncated: bool,
    },
    Message(MessageView),
    /// A message changed (CONTRACT §10): its current state.
    MessageUpdated(MessageView),
    /// A send's (with `room` and `seq`) or a change's (without) durable acceptance.
    Ack {
        #[serde(skip_serializing_if = "Option::is_none")]
        room: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        client_id: Option<String>,
        id: i64,
        #[serde(skip_serializing_if = "Option::is_none")]
        seq: Option<Seq>,
        rev: Rev,
    },
    Resync {
        after: Seq,
        /// The last `rev` sent on this connection.
        rev: Rev,
    },
    MemberJoined {
        user: String,
    },
    MemberLeft {
        user: String,
    },
    /// Who is typing in the room now (CONTRACT §11): the whole list, sorted.
    Typing {
        users: Vec<String>,
    },
    /// The user's read marker in this room moved (CONTRACT §11), and the counts after.
    Read {
        seq: Seq,
        unread: u64,
        mentions: u64,
    },
    Error {
        code: ErrorCode,
        message: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        client_id: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        retry_after_ms: Option<u64>,
    },
    Pong,
}

impl ServerFrame {
    pub fn to_json(&self) -> String {
        // Serializing these plain structs cannot fail.
        serde_json::to_string(self).expect("server frames serialize")
    }
}

/// A `typing` frame without `active` says the user is typing.
fn still_typing() -> bool {
    true
}

/// Client → server. Unknown fields are ignored: who and where come from the session.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientFrame {
    Send {
        body: String,
        #[serde(default)]
        client_id: Option<String>,
        /// The id of the message this one answers (CONTRACT §10).
        #[serde(default)]
        reply_to: Option<i64>,
    },
    Edit {
        message_id: i64,
        body: String,
        #[serde(default)]
        client_id: Option<String>,
    },
    Delete {
        message_id: i64,
        #[serde(default)]
        client_id: Option<String>,
    },
    React {
        message_id: i64,
        emoji: String,
        #[serde(default)]
        client_id: Option<String>,
    },
    Unreact {
        message_id: i64,
        emoji: String,
        #[serde(default)]
        client_id: Option<String>,
    },
    /// Every change after `after_rev` (CONTRACT §10).
    Updates {
        after_rev: i64,
    },
    /// Moves the read marker (CONTRACT §11). A plain number: a negative one is refused
    /// with its own message.
    Read {
        seq: i64,
    },
    /// Typing (CONTRACT §11): started or still going, or (`active: false`) stopped.
    Typing {
        #[serde(default = "still_typing")]
        active: bool,
    },
    History {
        // Plain numbers: a negative one is refused by `HistoryRequest` with its own
        // message, not as an unreadable frame.
        #[serde(default)]
        before: Option<i64>,
        #[serde(default)]
        after: Option<i64>,
        #[serde(default)]
        limit: Option<u32>,
    },
    Ping,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_message_frame_has_the_message_at_its_top_level() {
        let frame = ServerFrame::Message(MessageView {
            id: 123,
            room: "general".into(),
            seq: Seq::new(7).unwrap(),
            user: "alice".into(),
            body: "text".into(),
            sent_at: "2026-11-23T10:00:00.123Z".into(),
            rev: Rev::new(9).unwrap(),
            edited_at: Some("2026-11-23T10:01:00.000Z".into()),
            deleted: false,
            deleted_by: None,
            reply_to: Some(ReplyView {
                id: 120,
                seq: Seq::new(5).unwrap(),
                user: "bob".into(),
                excerpt: "earlier".into(),
                deleted: false,
            }),
            reactions: vec![ReactionView {
                emoji: "👍".into(),
                count: 2,
                users: vec!["bob".into(), "carol".into()],
            }],
            mentions: vec!["bob".into()],
        });
        let value: serde_json::Value = serde_json::from_str(&frame.to_json()).unwrap();
        assert_eq!(
            value,
            json!({"type":"message","id":123,"room":"general","seq":7,"user":"alice","body":"text",
                "sent_at":"2026-11-23T10:00:00.123Z","rev":9,"edited_at":"2026-11-23T10:01:00.000Z",
                "deleted":false,"deleted_by":null,
                "reply_to":{"id":120,"seq":5,"user":"bob","excerpt":"earlier","deleted":false},
                "reactions":[{"emoji":"👍","count":2,"users":["bob","carol"]}],
                "mentions":["bob"]})
        );
    }

    #[test]
    fn every_error_code_is_distinct_snake_case_and_documented() {
        let protocol_doc = include_str!("../docs/PROTOCOL.md");
        let mut seen = std::collections::HashSet::new();
        for code in ErrorCode::ALL {
            let text = code.as_str();
            assert!(seen.insert(text), "{text} twice");
            assert!(
                text.chars().all(|c| c.is_ascii_lowercase() || c == '_'),
                "{text}"
            );
            assert_eq!(serde_json::to_value(code).unwrap(), json!(text));
            assert!(
                protocol_doc.contains(&format!("`{text}`")),
                "docs/PROTOCOL.md does not mention `{text}`"
            );
        }
    }

    #[test]
    fn client_frames_ignore_identity_fields() {
        let frame: ClientFrame = serde_json::from_str(
            r#"{"type":"send","body":"hi","user":"mallory","room":"x","id":1}"#,
        )
        .unwrap();
        assert_eq!(
            frame,
            ClientFrame::Send {
                body: "hi".into(),
                client_id: None,
                reply_to: None,
            }
        );
        assert!(serde_json::from_str::<ClientFrame>(r#"{"type":"send","body":5}"#).is_err());
        assert!(serde_json::from_str::<ClientFrame>(r#"{"type":"dance"}"#).is_err());
    }
}
