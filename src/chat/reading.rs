//! Read markers and what is left to read (CONTRACT §11). The counts are the store's,
//! counted when asked (`Store::attention`), so they are exact on every process and after
//! a restart; two rules that move a marker by themselves (joining, sending) are the
//! store's too, in its schema.

use std::sync::Arc;

use bytes::Bytes;

use super::{store_call, ChatError};
use crate::domain::{Attention, Room, Seq, User};
use crate::ports::{Bus, BusEvent, Store};
use crate::protocol::ServerFrame;

pub struct Reading {
    store: Arc<dyn Store>,
    bus: Arc<dyn Bus>,
}

impl Reading {
    pub(super) fn new(store: Arc<dyn Store>, bus: Arc<dyn Bus>) -> Reading {
        Reading { store, bus }
    }

    /// `user`'s read marker and counts in `room`; `None` when they are not a member.
    pub async fn attention(
        &self,
        user: &User,
        room: &Room,
    ) -> Result<Option<Attention>, ChatError> {
        store_call(self.store.attention(room.id, user.id)).await
    }

    /// Moves `user`'s read marker in `room` (one they may see) to `seq` (never back) and
    /// returns the marker and counts after. `seq` must be from 0 to the room's last `seq`;
    /// only a member has a marker.
    pub async fn mark_read(
        &self,
        user: &User,
        room: &Room,
        seq: i64,
    ) -> Result<Attention, ChatError> {
        let room = room.id;
        let seq = Seq::new(seq).ok_or(ChatError::InvalidSeq)?;
        // Messages only add seqs: one at most the last now stays valid.
        if seq > store_call(self.store.last_seq(room)).await? {
            return Err(ChatError::InvalidSeq);
        }
        let read = store_call(self.store.mark_read(room, user.id, seq))
            .await?
            .ok_or(ChatError::Forbidden("only members have a read marker"))?;
        // Every socket of the user in the room hears where the marker is, on every process
        // (the one that asked included: it is the answer to its `read`).
        let frame = ServerFrame::Read {
            seq: read.read_seq,
            unread: read.unread,
            mentions: read.mentions,
        };
        let event = BusEvent::Read {
            room,
            user: user.id,
            frame: Bytes::from(frame.to_json()),
        };
        if let Err(e) = self.bus.publish(event).await {
            tracing::debug!(error = %e, "a read marker's move did not reach every process");
        }
        Ok(read)
    }
}
