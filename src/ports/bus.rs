//! The fan-out bus: carries frames to every process that has members of a room.

use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;

use super::Unavailable;
use crate::domain::{Rev, RoomId, Seq, UserId};

#[derive(Debug, Clone)]
pub enum BusEvent {
    /// A frame for every member of a room: its JSON text, serialized once by the sender;
    /// a `message` or `message_updated` frame has its place in the room's order.
    Room {
        room: RoomId,
        order: Option<Order>,
        frame: Bytes,
    },
    /// Frames for the room may have been lost on the way to some process (a publish that
    /// could not be sent): every socket in it must be told to `resync`.
    Resync { room: RoomId },
    /// `user`'s read marker in the room moved (CONTRACT §11): `frame` (their `read`) goes
    /// to each of their sockets in the room, on every process.
    Read {
        room: RoomId,
        user: UserId,
        frame: Bytes,
    },
    /// `user` (a username) started or is still typing in the room, or stopped (CONTRACT
    /// §11): every process with sockets there keeps the list itself.
    Typing {
        room: RoomId,
        user: String,
        active: bool,
    },
    /// A session ended (logout): its sockets must close.
    SessionEnded { token_hash: Bytes },
    /// A user left or was removed or banned from a room (CONTRACT §9): their sockets to it
    /// must close with `4403`. Every process hears it, whatever rooms it subscribes to, so
    /// a socket still joining when it arrives is caught too.
    MemberRemoved { room: RoomId, user: UserId },
}

/// Where a frame that carries a `rev` (CONTRACT §10) goes in the room's order: every
/// connection gets them in `rev` order, and the message's `seq` tells a new one from a
/// change of one it has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Order {
    pub rev: Rev,
    pub seq: Seq,
    /// `message` (a new message) rather than `message_updated`.
    pub new: bool,
}

/// Receives what the bus delivers to this process.
pub trait BusListener: Send + Sync + 'static {
    fn deliver(&self, event: BusEvent);
    /// The link to the other processes was lost and is back: deliveries published in
    /// between may be missing, so every socket must be told to `resync`.
    fn link_restored(&self);
}

/// Publishing is at-most-once, but a lost publication is never silent; subscriptions
/// decide which rooms this process hears.
///
/// `subscribe` and `unsubscribe` for one room may race (a room's last local member leaves
/// while a new one joins): an adapter must end in the state of the last call.
#[async_trait]
pub trait Bus: Send + Sync + 'static {
    /// Called once, before anything is published, with where deliveries go.
    fn start(&self, listener: Arc<dyn BusListener>);
    /// Delivers `event` to every process subscribed to it, this one included.
    ///
    /// `Unavailable` means the other processes may not have it. The adapter has then
    /// handed it to this process's listener itself (so local sockets still get it, in
    /// `rev` order), and for a room event it publishes [`BusEvent::Resync`] for that room
    /// once it can publish again, so no other process's socket is left with a silent hole.
    async fn publish(&self, event: BusEvent) -> Result<(), Unavailable>;
    /// Returns once deliveries for the room reach this process.
    async fn subscribe(&self, room: RoomId) -> Result<(), Unavailable>;
    async fn unsubscribe(&self, room: RoomId) -> Result<(), Unavailable>;
}
