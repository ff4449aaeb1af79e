//! Presence: who is connected to which room, across every process.

use std::collections::HashMap;

use async_trait::async_trait;

use super::Unavailable;
use crate::domain::{RoomId, User};

/// The chat service calls `join` on a user's first connection to a room in this process
/// and `leave` after their last one closes here.
///
/// Presence and the [`super::MessageCache`] are one adapter: when `leave` removes a room's
/// last member, the room's cache is deleted in the same atomic step, so a join cannot
/// slip between "room is empty" and "cache deleted".
#[async_trait]
pub trait Presence: Send + Sync + 'static {
    /// Marks the user present, and lists who is present now (one step, so a shared
    /// adapter answers a joiner in one round trip).
    async fn join(&self, room: RoomId, user: &User) -> Result<Joined, Unavailable>;
    /// True when the user is no longer present in the room anywhere.
    async fn leave(&self, room: RoomId, user: &User) -> Result<bool, Unavailable>;
    /// Usernames present, sorted.
    async fn members(&self, room: RoomId) -> Result<Vec<String>, Unavailable>;
    /// Distinct users present, per room; rooms with nobody may be missing.
    async fn online_counts(&self, rooms: &[RoomId]) -> Result<HashMap<RoomId, usize>, Unavailable>;
    /// Whether the backing service answers (for `/readyz`).
    async fn ping(&self) -> Result<(), Unavailable> {
        Ok(())
    }
    /// Upkeep the chat service runs every [`MAINTAIN_EVERY`]: a shared adapter renews this
    /// process's heartbeat and re-asserts its members (after the backing service lost
    /// them), and removes the members of processes whose heartbeat expired (deleting an
    /// emptied room's cache). Returns the users that left rooms because of it, for the
    /// service to announce.
    async fn maintain(&self) -> Result<Vec<Departure>, Unavailable> {
        Ok(Vec::new())
    }
}

/// What [`Presence::join`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Joined {
    /// The user was not present in the room before: announce `member_joined`.
    pub first: bool,
    /// Usernames present right after the join, the joiner included, sorted.
    pub members: Vec<String>,
}

/// How often the chat service calls [`Presence::maintain`].
pub const MAINTAIN_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

/// A user no longer present in a room, found by [`Presence::maintain`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Departure {
    pub room: RoomId,
    pub username: String,
}
