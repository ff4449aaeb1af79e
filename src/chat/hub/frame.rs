//! A broadcast frame, serialized once and shared by every socket of the process.

use std::sync::OnceLock;

use bytes::Bytes;

/// A frame's JSON, serialized once by its sender, and the bytes the edge writes for it
/// (for a WebSocket: a frame header and the JSON), made once by the first socket that asks
/// and shared with the rest, so work such as UTF-8 validation is done once per broadcast,
/// not once per socket.
pub struct SharedFrame {
    json: Bytes,
    wire: OnceLock<Option<Bytes>>,
}

impl SharedFrame {
    pub fn new(json: Bytes) -> SharedFrame {
        SharedFrame {
            json,
            wire: OnceLock::new(),
        }
    }

    pub fn json(&self) -> &Bytes {
        &self.json
    }

    /// The frame as the edge writes it: `encode` runs for the first socket only, and
    /// `None` (the edge will not send these bytes) is remembered too.
    pub fn wire(&self, encode: impl FnOnce(&Bytes) -> Option<Bytes>) -> Option<Bytes> {
        self.wire.get_or_init(|| encode(&self.json)).clone()
    }
}

impl std::fmt::Debug for SharedFrame {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("SharedFrame").field(&self.json).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shared_frame_is_encoded_once_for_every_socket() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let frame = SharedFrame::new(Bytes::from_static(b"{\"type\":\"pong\"}"));
        let encodings = AtomicUsize::new(0);
        let encode = |json: &Bytes| {
            encodings.fetch_add(1, Ordering::Relaxed);
            Some(Bytes::from(format!("framed {}", json.len())))
        };
        for _ in 0..3 {
            assert_eq!(frame.wire(encode).as_deref(), Some(&b"framed 15"[..]));
        }
        assert_eq!(encodings.load(Ordering::Relaxed), 1);
    }
}
