//! The store: the truth for accounts, sessions, rooms and every message.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::BoxError;
use crate::domain::{
    HistoryRange, Message, NewMessage, Room, RoomId, RoomName, RoomSummary, Seq, Slug, User,
    UserId, Username,
};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A unique value (a username) is already taken.
    #[error("already exists")]
    Duplicate,
    /// The store could not be reached or failed; nothing was written.
    #[error("store unavailable: {0}")]
    Unavailable(#[source] BoxError),
}

/// A live session: who it belongs to and when it ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRecord {
    pub user: User,
    pub expires_at: DateTime<Utc>,
}

/// What [`Store::append_message`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Appended {
    pub message: Message,
    /// False when the same `(user, client_id)` was already stored and this is that message.
    pub fresh: bool,
}

#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Answers when the store can serve requests.
    async fn ping(&self) -> Result<(), StoreError>;

    /// `Duplicate` when the name is taken, compared case-insensitively.
    async fn create_user(
        &self,
        username: &Username,
        password_hash: &str,
    ) -> Result<User, StoreError>;
    /// The user and their password hash, by case-insensitive name.
    async fn find_credentials(
        &self,
        username: &Username,
    ) -> Result<Option<(User, String)>, StoreError>;

    /// Sessions are found by the hash of their token; the token itself is never stored.
    async fn create_session(
        &self,
        token_hash: &[u8],
        user: UserId,
        expires_at: DateTime<Utc>,
    ) -> Result<(), StoreError>;
    /// Only a session that has not expired.
    async fn find_session(
        &self,
        token_hash: &[u8],
        now: DateTime<Utc>,
    ) -> Result<Option<SessionRecord>, StoreError>;
    async fn delete_session(&self, token_hash: &[u8]) -> Result<(), StoreError>;

    /// Creates the room, or returns the one with this slug; `true` when it was created.
    async fn create_room(&self, slug: &Slug, name: &RoomName) -> Result<(Room, bool), StoreError>;
    async fn find_room(&self, slug: &Slug) -> Result<Option<Room>, StoreError>;
    /// Rooms, most recently active first (by the last message, or creation for a room
    /// without one): `limit` of them after skipping `offset`.
    async fn list_rooms(&self, offset: usize, limit: usize)
        -> Result<Vec<RoomSummary>, StoreError>;

    /// Stores a message: allocates the room's next `seq` and the id in one transaction.
    /// A `(user, client_id)` already stored returns that message with `fresh: false`
    /// and changes nothing. Returns only after the message is durable.
    async fn append_message(&self, message: NewMessage) -> Result<Appended, StoreError>;
    async fn find_by_client_id(
        &self,
        user: UserId,
        client_id: &str,
    ) -> Result<Option<Message>, StoreError>;
    /// The room's highest `seq` (0 when it has no messages).
    async fn last_seq(&self, room: RoomId) -> Result<Seq, StoreError>;
    /// Up to `limit` messages of `range`, oldest first.
    async fn messages(
        &self,
        room: &Room,
        range: HistoryRange,
        limit: u32,
    ) -> Result<Vec<Message>, StoreError>;

    /// Finishes pending writes and closes connections (at shutdown).
    async fn close(&self) {}
}
