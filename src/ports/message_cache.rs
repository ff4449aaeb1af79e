//! The message cache: the recent messages of rooms that have members (CONTRACT.md §6).

use async_trait::async_trait;

use super::Unavailable;
use crate::domain::{Message, RoomId, Seq};

/// A room's cache is "ready" once filled from the store; it is deleted with the room's
/// last member (see [`super::Presence`]). Entries are keyed by `seq`, so adding a message
/// twice is harmless.
#[async_trait]
pub trait MessageCache: Send + Sync + 'static {
    /// The newest `limit` messages, oldest first; `None` when the cache is not ready.
    async fn latest(&self, room: RoomId, limit: usize)
        -> Result<Option<Vec<Message>>, Unavailable>;
    /// Messages with `seq > after`, oldest first, at most `limit`; `None` when the cache is
    /// not ready or cannot prove it holds every message after `after`.
    async fn after(
        &self,
        room: RoomId,
        after: Seq,
        limit: usize,
    ) -> Result<Option<Vec<Message>>, Unavailable>;
    /// Adds the store's tail and marks the room ready, if the room still has members.
    async fn fill(&self, room: RoomId, tail: &[Message]) -> Result<(), Unavailable>;
    /// Adds a newly stored message, if the room has members; keeps the newest `capacity`.
    async fn add(&self, room: RoomId, message: &Message) -> Result<(), Unavailable>;
}
