//! A room's shared state: who is in it ([`Presence`]) and its recent messages
//! ([`MessageCache`]), behind one adapter.

use super::{MessageCache, Presence};

/// Presence and the message cache as one adapter, by type: the last leave deletes the
/// room's cache in the same step as it removes the last member, and the first join finds
/// the cache not ready (CONTRACT §6). Split across two adapters, a joiner could fill a
/// cache that a leaver was deleting; an adapter can be handed to the chat service only
/// as both.
pub trait RoomState: Presence + MessageCache {}

impl<T: Presence + MessageCache + ?Sized> RoomState for T {}
