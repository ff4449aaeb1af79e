//! Who is typing in a room (CONTRACT §11): never stored, never replayed. Every process
//! with sockets in the room hears each `typing` start and stop on the bus and keeps the
//! list itself, each name with its own expiry, so a process that dies takes nothing with
//! it: its users' names expire everywhere else by themselves. While anyone is typing (or
//! the list last sent was not empty) a tick per room sends the list whenever it changed,
//! so a change reaches every socket within [`TYPING_TICK`] and a burst of starts and stops
//! goes as one frame.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
// Tokio's clock, so a test can move it (a paused runtime) instead of waiting.
use tokio::time::Instant;

use super::{Delivery, Hub, SharedFrame};
use crate::domain::RoomId;
use crate::protocol::ServerFrame;

/// How often a room's typing list is looked at while it may change.
pub(super) const TYPING_TICK: Duration = Duration::from_millis(100);

/// A room's typing list, as every socket of it is sent: the names, sorted, and the frame
/// that carries them. A socket whose user is in it leaves them out (outbound.rs).
#[derive(Debug)]
pub struct TypingList {
    pub users: Vec<String>,
    pub frame: SharedFrame,
}

impl TypingList {
    pub(super) fn new(users: Vec<String>) -> TypingList {
        let frame = ServerFrame::Typing {
            users: users.clone(),
        };
        TypingList {
            frame: SharedFrame::new(Bytes::from(frame.to_json())),
            users,
        }
    }
}

impl Hub {
    /// `user` started (or is still) typing in `room`, or stopped.
    pub(super) fn deliver_typing(&self, room: RoomId, user: String, active: bool) {
        let mut state = self.state();
        let Some(entry) = state.rooms.get_mut(&room) else {
            return;
        };
        if active {
            entry
                .typing
                .insert(user, Instant::now() + self.typing_expiry);
        } else {
            entry.typing.remove(&user);
        }
        if entry.typing_tick_armed {
            return;
        }
        entry.typing_tick_armed = true;
        drop(state);
        // The first change goes at once; the tick takes it from there.
        if !self.send_typing(room) {
            return;
        }
        if let Some(hub) = self.me.upgrade() {
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(TYPING_TICK).await;
                    if !hub.send_typing(room) {
                        break;
                    }
                }
            });
        }
    }

    /// `room`'s typing list here now, sorted.
    pub fn typing_now(&self, room: RoomId) -> Vec<String> {
        let now = Instant::now();
        let mut users: Vec<String> = self
            .state()
            .rooms
            .get(&room)
            .map(|entry| {
                entry
                    .typing
                    .iter()
                    .filter(|(_, &expires)| expires > now)
                    .map(|(user, _)| user.clone())
                    .collect()
            })
            .unwrap_or_default();
        users.sort();
        users
    }

    /// Whether `user` is on `room`'s typing list here.
    pub fn is_typing(&self, room: RoomId, user: &str) -> bool {
        let now = Instant::now();
        self.state()
            .rooms
            .get(&room)
            .and_then(|entry| entry.typing.get(user))
            .is_some_and(|&expires| expires > now)
    }

    /// Drops the expired names and sends the list if it changed; `false` (and the tick
    /// stops) once nobody is typing and the empty list has gone out.
    fn send_typing(&self, room: RoomId) -> bool {
        let mut state = self.state();
        let Some(entry) = state.rooms.get_mut(&room) else {
            return false;
        };
        let now = Instant::now();
        entry.typing.retain(|_, expires| *expires > now);
        let mut users: Vec<String> = entry.typing.keys().cloned().collect();
        users.sort();
        if users != entry.typing_sent {
            entry.typing_sent = users.clone();
            let _ = entry
                .channel
                .sender
                .send(Delivery::Typing(Arc::new(TypingList::new(users))));
        }
        let going_on = !entry.typing.is_empty();
        entry.typing_tick_armed = going_on;
        going_on
    }
}
