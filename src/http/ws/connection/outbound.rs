//! Frames out: live deliveries from the room's ring, answers, and the bounded writes
//! (CONTRACT §7a: unsent bytes, one write's wait, and the signals raced against it).

use std::time::Duration;

use bytes::Bytes;
use futures_util::SinkExt;
use tokio::io::AsyncWriteExt;

use super::super::frames;
use super::super::handshake::Socket as WebSocket;
use super::{End, Signal, Socket, CLOSE_POLICY};
use crate::chat::{ChatError, Delivery, SharedFrame, TypingList};
use crate::protocol::ServerFrame;

impl Socket {
    pub(super) async fn queue_delivery(&mut self, delivery: Delivery) -> Result<(), End> {
        match delivery {
            Delivery::Message { order, frame } => {
                if order.new {
                    // Already in the history this client was sent.
                    if order.seq <= self.last_seq {
                        return Ok(());
                    }
                    self.last_seq = order.seq;
                }
                self.last_rev = self.last_rev.max(order.rev);
                self.queue_shared(&frame).await
            }
            Delivery::Presence(frames) => {
                for frame in frames.iter() {
                    if frame.json() != &self.own_arrival {
                        self.queue_shared(frame).await?;
                    }
                }
                Ok(())
            }
            Delivery::Resync => self.queue_resync().await,
            Delivery::Typing(list) => self.queue_typing(&list).await,
        }
    }

    /// A shared frame on its own, written out at once.
    pub(super) async fn write_shared(&mut self, frame: &SharedFrame) -> Result<(), End> {
        self.queue_shared(frame).await?;
        self.write_out().await
    }

    pub(super) async fn queue_shared(&mut self, frame: &SharedFrame) -> Result<(), End> {
        // Validated and framed once per broadcast, by the first socket here; the rest
        // write the same bytes.
        let wire = frame.wire(|json| {
            std::str::from_utf8(json)
                .is_ok()
                .then(|| frames::text(json))
        });
        match wire {
            Some(wire) => self.queue(wire).await,
            None => Ok(()),
        }
    }

    /// The room's typing list, without this connection's own user (they know they are
    /// typing), and only when that differs from what this client has. Everyone else gets
    /// the room's shared frame; a typing user's sockets get their own.
    async fn queue_typing(&mut self, list: &TypingList) -> Result<(), End> {
        if !list.users.contains(&self.username) {
            if list.users == self.typing_sent {
                return Ok(());
            }
            self.typing_sent = list.users.clone();
            return self.queue_shared(&list.frame).await;
        }
        let others: Vec<String> = list
            .users
            .iter()
            .filter(|user| **user != self.username)
            .cloned()
            .collect();
        if others == self.typing_sent {
            return Ok(());
        }
        self.typing_sent = others.clone();
        let frame = ServerFrame::Typing { users: others };
        self.queue(frames::text(frame.to_json().as_bytes())).await
    }

    pub(super) async fn queue_resync(&mut self) -> Result<(), End> {
        let resync = ServerFrame::Resync {
            after: self.last_seq,
            rev: self.last_rev,
        };
        self.queue(frames::text(resync.to_json().as_bytes())).await
    }

    pub(super) async fn send_frame(&mut self, frame: &ServerFrame) -> Result<(), End> {
        self.send(frames::text(frame.to_json().as_bytes())).await
    }

    pub(super) async fn send(&mut self, wire: Bytes) -> Result<(), End> {
        self.queue(wire).await?;
        self.write_out().await
    }

    /// Queues one wire frame, writing what is queued first if both would not fit.
    pub(super) async fn queue(&mut self, wire: Bytes) -> Result<(), End> {
        if self.unsent_bytes + wire.len() > self.max_unsent {
            self.write_out().await?;
            if wire.len() > self.max_unsent {
                return Err(End::Close(CLOSE_POLICY, "too much unsent data"));
            }
        }
        self.unsent_bytes += wire.len();
        self.unsent.push(wire);
        Ok(())
    }

    /// Writes everything queued, unless it takes longer than the write timeout or the
    /// socket must close first; then the socket ends.
    pub(super) async fn write_out(&mut self) -> Result<(), End> {
        let pieces = std::mem::take(&mut self.unsent);
        let bytes = match pieces.as_slice() {
            [] => return Ok(()),
            [one] => one.clone(),
            many => Bytes::from(many.concat()),
        };
        drop(pieces);
        let written = {
            let write = write_all(&mut self.ws, &bytes, &mut self.at_boundary);
            tokio::select! {
                biased;
                _ = self.shutdown.cancelled() => Err(Signal::Shutdown),
                signal = super::closed_by_server(&mut self.closed) => Err(signal),
                _ = self.session_ends.as_mut() => Err(Signal::SessionExpired),
                written = tokio::time::timeout(self.write_timeout, write) => Ok(written),
            }
        };
        self.unsent_bytes = 0;
        match written {
            Ok(Ok(Ok(()))) => Ok(()),
            Ok(Ok(Err(()))) => Err(End::Drop),
            Ok(Err(_elapsed)) => Err(End::Close(CLOSE_POLICY, "write timed out")),
            // The write is abandoned: [`Socket::end`] sends the close only if the
            // connection is between frames, else drops it.
            Err(signal) => Err(signal.end()),
        }
    }
}

/// Writes `bytes` (whole frames) after whatever tungstenite still holds (a pong), so that
/// frames never interleave; `at_boundary` says whether the connection is between frames.
pub(super) async fn write_all(
    ws: &mut WebSocket,
    bytes: &[u8],
    at_boundary: &mut bool,
) -> Result<(), ()> {
    *at_boundary = false;
    ws.flush().await.map_err(drop)?;
    *at_boundary = true;
    let io = ws.get_mut();
    let mut written = 0;
    while written < bytes.len() {
        let n = io.write(&bytes[written..]).await.map_err(drop)?;
        if n == 0 {
            return Err(());
        }
        written += n;
        *at_boundary = written == bytes.len();
    }
    io.flush().await.map_err(drop)
}

pub(super) fn error_frame(error: &ChatError, client_id: Option<String>) -> ServerFrame {
    if let ChatError::Unavailable(source) = error {
        tracing::error!(error = %source, "websocket request failed: service unavailable");
    }
    ServerFrame::Error {
        code: error.code(),
        message: error.to_string(),
        client_id,
        retry_after_ms: error.retry_after().map(|d| d.as_millis().max(1) as u64),
    }
}

pub(super) fn rate_limited(wait: Duration, client_id: Option<String>) -> ServerFrame {
    error_frame(&ChatError::TooManyFrames { retry_after: wait }, client_id)
}
