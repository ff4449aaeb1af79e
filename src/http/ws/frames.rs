//! Server frames as bytes on the wire, and `history` frames built within their bound.
//!
//! [`super::connection`] writes every frame itself, straight to the connection, instead of
//! through tungstenite: tungstenite formats each frame into one buffer per socket that is
//! drained but never shrunk, so a `history` of 200 KiB sent through it would stay allocated
//! in that socket for its life (docs/BENCHMARKS.md). A server frame is not masked: a 2–10
//! byte header and the payload, built once here and freed once written.

use bytes::{BufMut, Bytes, BytesMut};

use crate::domain::{Message, Rev, Seq};
use crate::protocol::MessageView;

const OPCODE_TEXT: u8 = 0x1;
const OPCODE_CLOSE: u8 = 0x8;
const OPCODE_PING: u8 = 0x9;
const FINAL: u8 = 0x80;

/// One whole text frame carrying `json` (never fragmented: a `history` is at most
/// `WS_MAX_HISTORY_BYTES` and a client reads it as one message either way).
pub fn text(json: &[u8]) -> Bytes {
    frame(OPCODE_TEXT, &[json])
}

pub fn ping() -> Bytes {
    Bytes::from_static(&[FINAL | OPCODE_PING, 0])
}

/// A close frame; `reason` must be short (a control frame's payload is at most 125 bytes).
pub fn close(code: u16, reason: &str) -> Bytes {
    debug_assert!(reason.len() <= 123);
    frame(OPCODE_CLOSE, &[&code.to_be_bytes(), reason.as_bytes()])
}

fn frame(opcode: u8, payload: &[&[u8]]) -> Bytes {
    let len: usize = payload.iter().map(|p| p.len()).sum();
    let mut out = BytesMut::with_capacity(len + 10);
    out.put_u8(FINAL | opcode);
    match len {
        0..=125 => out.put_u8(len as u8),
        126..=0xFFFF => {
            out.put_u8(126);
            out.put_u16(len as u16);
        }
        _ => {
            out.put_u8(127);
            out.put_u64(len as u64);
        }
    }
    for piece in payload {
        out.put_slice(piece);
    }
    out.freeze()
}

/// Which messages a `history` frame keeps when not all fit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keep {
    /// The latest messages (a join without `since`, `history` `before`): older ones are
    /// had with `before`.
    Newest,
    /// Messages after a point (`?since=`, `history` `after`): the client asks again after
    /// the last one it got.
    Oldest,
}

/// A built `history` frame's JSON and the last `seq` in it.
pub struct History {
    pub json: Vec<u8>,
    pub last_seq: Option<Seq>,
}

/// `{"type":"history","messages":[…]}` of `messages` (oldest first), at most `max` bytes,
/// built message by message; `"truncated":true` when `truncated` or when some did not fit.
pub fn history(messages: &[Message], truncated: bool, keep: Keep, max: usize) -> History {
    let (json, last) = message_list("history", messages, truncated, keep, max, None);
    History {
        json,
        last_seq: last.map(|m| m.seq),
    }
}

/// `{"type":"updates","messages":[…],"rev":R}` (CONTRACT §10) of `changed` (in `rev`
/// order), at most `max` bytes: `R` is `current` when every change fits, else the `rev`
/// of the last one in the frame, after which the client asks again (`"truncated":true`).
pub fn updates(changed: &[Message], truncated: bool, current: Rev, max: usize) -> Vec<u8> {
    message_list(
        "updates",
        changed,
        truncated,
        Keep::Oldest,
        max,
        Some(current),
    )
    .0
}

/// A frame of `kind` listing `messages` within `max` bytes (and, for `updates`, the `rev`
/// it brings the client to); the last message it holds, in the list's order.
fn message_list<'m>(
    kind: &str,
    messages: &'m [Message],
    truncated: bool,
    keep: Keep,
    max: usize,
    current: Option<Rev>,
) -> (Vec<u8>, Option<&'m Message>) {
    let head = format!(r#"{{"type":"{kind}","messages":["#);
    // Room for the longest tail is kept from the start, so it can always be chosen.
    let longest_tail = r#"],"rev":9223372036854775807,"truncated":true}"#.len();
    let budget = max.saturating_sub(head.len() + longest_tail);
    let mut pieces: Vec<(Vec<u8>, &Message)> = Vec::new();
    let mut used = 0;
    let ordered: Box<dyn Iterator<Item = &Message>> = match keep {
        Keep::Oldest => Box::new(messages.iter()),
        Keep::Newest => Box::new(messages.iter().rev()),
    };
    for message in ordered {
        let piece = serde_json::to_vec(&MessageView::from(message)).expect("messages serialize");
        let comma = usize::from(!pieces.is_empty());
        if used + comma + piece.len() > budget {
            break;
        }
        used += comma + piece.len();
        pieces.push((piece, message));
    }
    let left_out = pieces.len() < messages.len();
    if keep == Keep::Newest {
        pieces.reverse();
    }
    let last = pieces.last().map(|(_, message)| *message);
    let mut tail = String::from("]");
    if let Some(current) = current {
        let reached = match (left_out, last) {
            (true, Some(last)) => last.rev,
            // Not even the first fits (a message with a crowd's reactions, over the
            // bound): it is skipped rather than asked for again and again.
            (true, None) => messages.first().map_or(current, |m| m.rev),
            (false, _) => current,
        };
        tail.push_str(&format!(r#","rev":{reached}"#));
    }
    if truncated || left_out {
        tail.push_str(r#","truncated":true"#);
    }
    tail.push('}');
    let mut json = Vec::with_capacity(head.len() + used + tail.len());
    json.extend_from_slice(head.as_bytes());
    for (n, (piece, _)) in pieces.iter().enumerate() {
        if n > 0 {
            json.push(b',');
        }
        json.extend_from_slice(piece);
    }
    json.extend_from_slice(tail.as_bytes());
    (json, last)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{RoomId, UserId};
    use crate::protocol::ServerFrame;
    use serde_json::Value;

    /// The default bound (`WS_MAX_HISTORY_BYTES`).
    const MAX_HISTORY_JSON: usize = 512 * 1024;

    fn message(seq: i64, body: &str) -> Message {
        Message {
            id: seq * 10,
            room_id: RoomId(1),
            room_slug: "general".into(),
            seq: Seq::new(seq).unwrap(),
            user_id: UserId(1),
            username: "alice".into(),
            body: body.into(),
            client_id: None,
            sent_at: chrono::Utc::now(),
            rev: crate::domain::Rev::new(seq).unwrap(),
            edited_at: None,
            deleted_by: None,
            reply_to: None,
            reactions: Vec::new(),
            mentions: Vec::new(),
        }
    }

    fn parse(json: &[u8]) -> Value {
        serde_json::from_slice(json).unwrap()
    }

    fn seqs(value: &Value) -> Vec<i64> {
        value["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["seq"].as_i64().unwrap())
            .collect()
    }

    #[test]
    fn a_history_that_fits_is_what_serde_would_write() {
        let messages: Vec<Message> = (1..=3).map(|n| message(n, "hi \"there\" é")).collect();
        for truncated in [false, true] {
            let built = history(&messages, truncated, Keep::Newest, MAX_HISTORY_JSON);
            let expected = ServerFrame::History {
                messages: messages.iter().map(MessageView::from).collect(),
                truncated,
            }
            .to_json();
            assert_eq!(String::from_utf8(built.json).unwrap(), expected);
            assert_eq!(built.last_seq, Seq::new(3));
        }
        let empty = history(&[], false, Keep::Oldest, MAX_HISTORY_JSON);
        assert_eq!(
            parse(&empty.json),
            serde_json::json!({"type":"history","messages":[]})
        );
        assert_eq!(empty.last_seq, None);
    }

    #[test]
    fn a_long_history_keeps_the_newest_or_the_oldest_within_the_bound() {
        let body = "🎉".repeat(4000);
        let messages: Vec<Message> = (1..=100).map(|n| message(n, &body)).collect();
        let newest = history(&messages, false, Keep::Newest, MAX_HISTORY_JSON);
        assert!(newest.json.len() <= MAX_HISTORY_JSON);
        let value = parse(&newest.json);
        assert_eq!(value["truncated"], true);
        let kept = seqs(&value);
        assert!(kept.len() > 10 && kept.len() < 100, "{}", kept.len());
        assert_eq!(kept.last(), Some(&100));
        assert!(kept.windows(2).all(|w| w[1] == w[0] + 1));
        assert_eq!(newest.last_seq, Seq::new(100));

        let oldest = history(&messages, false, Keep::Oldest, MAX_HISTORY_JSON);
        assert!(oldest.json.len() <= MAX_HISTORY_JSON);
        let kept = seqs(&parse(&oldest.json));
        assert_eq!(kept[0], 1);
        assert_eq!(oldest.last_seq, kept.last().copied().and_then(Seq::new));
    }

    #[test]
    fn headers_carry_the_length_in_the_smallest_form() {
        assert_eq!(&text(b"{}")[..], b"\x81\x02{}");
        let medium = text(&[b' '; 300]);
        assert_eq!(&medium[..4], &[0x81, 126, 1, 44]);
        assert_eq!(medium.len(), 304);
        let large = text(&vec![b' '; 70_000]);
        assert_eq!(&large[..10], &[0x81, 127, 0, 0, 0, 0, 0, 1, 0x11, 0x70]);
        assert_eq!(&close(1008, "bye")[..], b"\x88\x05\x03\xf0bye");
        assert_eq!(&ping()[..], b"\x89\x00");
    }

    #[test]
    fn an_updates_frame_that_cannot_hold_every_change_says_how_far_it_got() {
        let changed: Vec<Message> = (1..=5).map(|n| message(n, &"x".repeat(3000))).collect();
        let all: Value =
            serde_json::from_slice(&updates(&changed, false, Rev::new(9).unwrap(), 1 << 20))
                .unwrap();
        assert_eq!((all["rev"].as_i64(), all.get("truncated")), (Some(9), None));
        assert_eq!(all["messages"].as_array().unwrap().len(), 5);

        // Room for two: the client is at the second's rev, and asks again from there.
        let two: Value =
            serde_json::from_slice(&updates(&changed, false, Rev::new(9).unwrap(), 7000)).unwrap();
        assert_eq!(two["messages"].as_array().unwrap().len(), 2, "{two}");
        assert_eq!(
            (two["rev"].as_i64(), &two["truncated"]),
            (Some(2), &Value::Bool(true))
        );
    }
}
