//! Messages in `seq` order: later ones wait for a hole to fill by itself for [`GAP_WAIT`],
//! then the hub reads it from the store (under the store deadline) or skips it.

use std::time::Duration;

use bytes::Bytes;

use super::{send_held_presence, Delivery, Hub, RoomEntry, SharedFrame};
use crate::domain::{HistoryRange, RoomId, Seq};
use crate::protocol::{MessageView, ServerFrame};
use std::sync::Arc;

/// How long a later message waits for an earlier one before the hub asks the store.
pub(super) const GAP_WAIT: Duration = Duration::from_millis(50);

impl Hub {
    /// Starts ordered delivery: messages up to `last_seq` are in the store already.
    pub fn start_ordering(&self, room: RoomId, last_seq: Seq) {
        let mut state = self.state();
        let Some(entry) = state.rooms.get_mut(&room) else {
            return;
        };
        if entry.next_seq.is_some() {
            return;
        }
        entry.next_seq = Some(last_seq.next());
        entry.pending = entry.pending.split_off(&last_seq.next());
        self.drain(room, entry);
    }

    pub(super) fn deliver_ordered(&self, room: RoomId, seq: Seq, frame: Bytes) {
        let mut state = self.state();
        let Some(entry) = state.rooms.get_mut(&room) else {
            return;
        };
        match entry.next_seq {
            Some(next) if seq < next => {}
            _ => {
                entry.pending.insert(seq, frame);
                self.drain(room, entry);
            }
        }
    }

    /// Sends every pending message that is next in line; arms the gap timer if a hole remains.
    fn drain(&self, room: RoomId, entry: &mut RoomEntry) {
        let Some(mut next) = entry.next_seq else {
            return;
        };
        while let Some(frame) = entry.pending.remove(&next) {
            send_held_presence(entry);
            let _ = entry.channel.sender.send(Delivery::Message {
                seq: next,
                frame: Arc::new(SharedFrame::new(frame)),
            });
            next = next.next();
        }
        entry.next_seq = Some(next);
        if !entry.pending.is_empty() && !entry.gap_timer_armed {
            entry.gap_timer_armed = true;
            if let Some(hub) = self.me.upgrade() {
                tokio::spawn(async move {
                    tokio::time::sleep(GAP_WAIT).await;
                    hub.fill_gap(room).await;
                });
            }
        }
    }

    /// Reads a hole that did not fill by itself from the store; skips it if the store fails
    /// (sockets see the jump and clients ask for `history`).
    async fn fill_gap(&self, room: RoomId) {
        let (channel, from, until) = {
            let mut state = self.state();
            let Some(entry) = state.rooms.get_mut(&room) else {
                return;
            };
            entry.gap_timer_armed = false;
            match (entry.next_seq, entry.pending.first_key_value()) {
                (Some(next), Some((&first, _))) if first > next => {
                    (entry.channel.clone(), next, first)
                }
                _ => return,
            }
        };
        let limit = (until.get() - from.get()).clamp(1, 1000) as u32;
        // Under the store deadline like every store call: a stalled store must not hold
        // the room's later messages back for longer.
        let missing = super::super::store_call(self.store.messages(
            &channel.room,
            HistoryRange::After(from.previous()),
            limit,
        ))
        .await;
        let mut state = self.state();
        let Some(entry) = state.rooms.get_mut(&room) else {
            return;
        };
        match missing {
            Ok(messages) => {
                for message in messages.iter().filter(|m| m.seq < until) {
                    let frame = ServerFrame::Message(MessageView::from(message)).to_json();
                    entry
                        .pending
                        .entry(message.seq)
                        .or_insert_with(|| Bytes::from(frame));
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, room = room.0, "could not fill a gap in a room's messages")
            }
        }
        if let (Some(next), Some((&first, _))) = (entry.next_seq, entry.pending.first_key_value()) {
            if first > next && first <= until {
                entry.next_seq = Some(first);
            }
        }
        self.drain(room, entry);
    }
}
