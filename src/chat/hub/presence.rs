//! Presence frames in bursts: the first in a quiet room goes at once and opens a
//! [`PRESENCE_WINDOW`]; those that come while it is open go together when it closes, or
//! just before the next message (so none arrives after a later message).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use super::{Delivery, Hub, RoomEntry, SharedFrame};
use crate::domain::RoomId;

/// How long presence frames after the first of a burst wait to travel together.
pub(super) const PRESENCE_WINDOW: Duration = Duration::from_millis(50);

impl Hub {
    pub(super) fn deliver_presence(&self, room: RoomId, frame: Bytes) {
        let mut state = self.state();
        let Some(entry) = state.rooms.get_mut(&room) else {
            return;
        };
        let frame = Arc::new(SharedFrame::new(frame));
        if entry.presence_window_open {
            entry.presence.push(frame);
            return;
        }
        let _ = entry
            .channel
            .sender
            .send(Delivery::Presence(Arc::new([frame])));
        entry.presence_window_open = true;
        if let Some(hub) = self.me.upgrade() {
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(PRESENCE_WINDOW).await;
                    if !hub.close_presence_window(room) {
                        break;
                    }
                }
            });
        }
    }

    /// Sends what the window held; `true` if it sent something (and the window stays open
    /// for another round), `false` once it closed.
    fn close_presence_window(&self, room: RoomId) -> bool {
        let mut state = self.state();
        let Some(entry) = state.rooms.get_mut(&room) else {
            return false;
        };
        if send_held_presence(entry) {
            return true;
        }
        entry.presence_window_open = false;
        false
    }
}

/// Sends the presence frames the room's window holds, if any; `true` if it sent some.
pub(super) fn send_held_presence(entry: &mut RoomEntry) -> bool {
    if entry.presence.is_empty() {
        return false;
    }
    let held: Arc<[Arc<SharedFrame>]> = std::mem::take(&mut entry.presence).into();
    let _ = entry.channel.sender.send(Delivery::Presence(held));
    true
}
