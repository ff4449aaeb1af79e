//! The message cache: the recent messages of rooms that have members (CONTRACT.md §6).

use async_trait::async_trait;

use super::Unavailable;
use crate::domain::{Message, RoomId, Seq};

/// A room's cache is "ready" once filled from the store; it is deleted with the room's
/// last member (see [`super::Presence`]). Entries are keyed by `seq`, so adding a message
/// twice is harmless, and each holds its message's current state (CONTRACT §10): of two
/// states of one message, every method keeps the one with the higher `rev`, so a state
/// that arrives late (an older read of the store, another process's older change) never
/// overwrites a newer one. Every method is one atomic step.
///
/// A reply is cached without its target's name and text: its `reply_to` comes back as
/// [`ReplyRef::unresolved`] (id and seq only), and the reader resolves it from the store
/// (`Store::reply_refs`). A reply's `rev` does not change with its target, so a cached
/// excerpt would need catching up with every edit and delete of the target, in an order no
/// `rev` decides; and a deleted text must not linger in a cached reply (CONTRACT §10).
///
/// [`ReplyRef::unresolved`]: crate::domain::ReplyRef::unresolved
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
    /// The cached messages among `seqs` (any order, each once), in `seq` order; those not
    /// cached are left out. `None` when the cache is not ready. (A reply's target, as the
    /// cache holds it now.)
    async fn at(&self, room: RoomId, seqs: &[Seq]) -> Result<Option<Vec<Message>>, Unavailable>;
    /// Adds the store's tail and marks the room ready, if the room still has members. An
    /// entry already cached with a `rev` at least the tail's keeps its state. Filling a
    /// room not ready yet also drops entries older than the tail's first (what `update`
    /// kept meanwhile), so the cache stays one unbroken run of `seq`s.
    async fn fill(&self, room: RoomId, tail: &[Message]) -> Result<(), Unavailable>;
    /// Adds a newly stored message, if the room has members; keeps the newest `capacity`.
    /// An entry already at its `seq` with a `rev` at least the message's stays.
    async fn add(&self, room: RoomId, message: &Message) -> Result<(), Unavailable>;
    /// A changed message's new state (an edit, a tombstone, reactions) replaces the entry
    /// with its `seq`, in one atomic step, only if that entry is cached and its `rev` is
    /// lower: an update that arrives after a newer one changes nothing, and a message the
    /// ready cache does not hold stays out of it (the store has it; `latest`, `after` and
    /// the capacity trim are unaffected).
    ///
    /// While the room has members but is not ready (a joiner is reading the store's tail
    /// to `fill`), an uncached message's update is kept anyway: that read may predate the
    /// change, and without it the fill would cache the older state. `fill` keeps the newer
    /// `rev` and drops the entry if it falls before the tail.
    async fn update(&self, room: RoomId, message: &Message) -> Result<(), Unavailable>;
}
