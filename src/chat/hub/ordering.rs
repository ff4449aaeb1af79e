//! Frames that carry a `rev` (`message`, `message_updated`; CONTRACT §10) in `rev` order:
//! later ones wait for a hole to fill by itself for [`GAP_WAIT`], then the hub reads the
//! room's changes after it from the store (under the store deadline) or skips it. `seq`
//! order follows, since a new message takes both.

use std::time::Duration;

use bytes::Bytes;

use super::{send_held_presence, Delivery, Hub, RoomEntry, SharedFrame};
use crate::domain::{Rev, RoomId, Seq};
use crate::ports::Order;
use crate::protocol::{MessageView, ServerFrame};
use std::sync::Arc;

/// How long a later frame waits for an earlier one before the hub asks the store.
pub(super) const GAP_WAIT: Duration = Duration::from_millis(50);

impl Hub {
    /// Starts ordered delivery: changes up to `last_rev`, and messages up to `last_seq`,
    /// are in the store already.
    pub fn start_ordering(&self, room: RoomId, last_rev: Rev, last_seq: Seq) {
        let mut state = self.state();
        let Some(entry) = state.rooms.get_mut(&room) else {
            return;
        };
        if entry.next_rev.is_some() {
            return;
        }
        entry.next_rev = Some(last_rev.next());
        entry.last_seq = entry.last_seq.max(last_seq);
        entry.pending = entry.pending.split_off(&last_rev.next());
        self.drain(room, entry);
    }

    pub(super) fn deliver_ordered(&self, room: RoomId, order: Order, frame: Bytes) {
        let mut state = self.state();
        let Some(entry) = state.rooms.get_mut(&room) else {
            return;
        };
        match entry.next_rev {
            Some(next) if order.rev < next => {}
            _ => {
                entry.pending.insert(order.rev, (order, frame));
                self.drain(room, entry);
            }
        }
    }

    /// Sends every pending frame that is next in line; arms the gap timer if a hole remains.
    fn drain(&self, room: RoomId, entry: &mut RoomEntry) {
        let Some(mut next) = entry.next_rev else {
            return;
        };
        while let Some((order, frame)) = entry.pending.remove(&next) {
            send_held_presence(entry);
            if order.new {
                entry.last_seq = entry.last_seq.max(order.seq);
            }
            let _ = entry.channel.sender.send(Delivery::Message {
                order,
                frame: Arc::new(SharedFrame::new(frame)),
            });
            next = next.next();
        }
        entry.next_rev = Some(next);
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

    /// Reads a hole that did not fill by itself from the store: the current state of the
    /// messages changed in it (a message changed again since is sent by its later `rev`,
    /// and its earlier one is skipped). Skips the hole if the store fails (sockets see the
    /// jump and clients ask for `history` or `updates`).
    async fn fill_gap(&self, room: RoomId) {
        let (channel, from, until) = {
            let mut state = self.state();
            let Some(entry) = state.rooms.get_mut(&room) else {
                return;
            };
            entry.gap_timer_armed = false;
            match (entry.next_rev, entry.pending.first_key_value()) {
                (Some(next), Some((&first, _))) if first > next => {
                    (entry.channel.clone(), next, first)
                }
                _ => return,
            }
        };
        let limit = (until.get() - from.get()).clamp(1, 1000) as u32;
        // Under the store deadline like every store call: a stalled store must not hold
        // the room's later frames back for longer.
        let missing = super::super::store_call(self.store.changes(
            &channel.room,
            from.previous(),
            Seq::MAX,
            limit,
        ))
        .await;
        let mut state = self.state();
        let Some(entry) = state.rooms.get_mut(&room) else {
            return;
        };
        match missing {
            Ok(messages) => {
                // What sockets have not had as a new message comes as one.
                let mut last_seq = entry.last_seq;
                for message in messages.iter().filter(|m| m.rev < until) {
                    let new = message.seq > last_seq;
                    last_seq = last_seq.max(message.seq);
                    let view = MessageView::from(message);
                    let frame = if new {
                        ServerFrame::Message(view)
                    } else {
                        ServerFrame::MessageUpdated(view)
                    };
                    let order = Order {
                        rev: message.rev,
                        seq: message.seq,
                        new,
                    };
                    entry
                        .pending
                        .entry(message.rev)
                        .or_insert_with(|| (order, Bytes::from(frame.to_json())));
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, room = room.0, "could not fill a gap in a room's changes")
            }
        }
        if let (Some(next), Some((&first, _))) = (entry.next_rev, entry.pending.first_key_value()) {
            if first > next && first <= until {
                entry.next_rev = Some(first);
            }
        }
        self.drain(room, entry);
    }
}
