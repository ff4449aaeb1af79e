//! One socket's life: `joined` and `history`, then live frames out and client frames in,
//! until the client leaves, the session ends (1008) or the server stops (1001).
//!
//! Live frames come from the room's bounded ring in the hub, already serialized; a socket
//! that falls behind the ring gets `resync` with the last `seq` it was sent.
//!
//! A text frame longer than [`SOCKET_BUFFER_BYTES`] goes out as WebSocket fragments of at
//! most that size (clients reassemble them: the message is the same). tungstenite formats
//! every frame into one buffer per socket that is drained but never shrunk, so a `history`
//! sent whole would keep its size in every socket for the socket's life: 13.4 KiB per idle
//! socket in rooms with 50 messages, instead of a few (docs/BENCHMARKS.md).

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use tokio::sync::broadcast::error::{RecvError, TryRecvError};
use tokio_tungstenite::tungstenite::protocol::frame::coding::{CloseCode, Data, OpCode};
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{Error as WsError, Message, Utf8Bytes};

use super::handshake::Socket as WebSocket;
use super::{MAX_FRAME_BYTES, SOCKET_BUFFER_BYTES};
use crate::chat::{AuthSession, ChatError, CloseReason, Delivery, Membership, SharedFrame};
use crate::domain::{HistoryRange, Room, Seq};
use crate::http::AppState;
use crate::protocol::{ClientFrame, MessageView, RoomView, ServerFrame, UserView};

/// Non-`send` frames (history, ping, malformed) allowed per second per connection.
const OTHER_FRAMES_PER_SECOND: usize = 20;
/// The server pings this often; a client silent for [`IDLE_LIMIT`] is gone.
const PING_EVERY: Duration = Duration::from_secs(30);
const IDLE_LIMIT: Duration = Duration::from_secs(75);
/// Deliveries written before one flush.
const WRITE_BATCH: usize = 64;

const CLOSE_GOING_AWAY: u16 = 1001;
const CLOSE_POLICY: u16 = 1008;
const CLOSE_TOO_BIG: u16 = 1009;
const CLOSE_INTERNAL: u16 = 1011;

type Sink = SplitSink<WebSocket, Message>;
type Stream = SplitStream<WebSocket>;

pub async fn run(
    socket: WebSocket,
    state: AppState,
    session: AuthSession,
    room: Room,
    since: Option<Seq>,
) {
    let (mut sink, mut stream) = socket.split();
    let membership = match state.chat.join(&session, room, since).await {
        Ok(membership) => membership,
        Err(e) => {
            let _ = send_frame(&mut sink, &error_frame(&e, None)).await;
            let _ = close(&mut sink, CLOSE_INTERNAL, "could not join the room").await;
            return;
        }
    };
    let own_arrival = ServerFrame::MemberJoined {
        user: membership.user.username.clone(),
    }
    .to_json();
    let mut socket = Socket {
        sink,
        last_seq: since.unwrap_or(0),
        budget: FrameBudget::default(),
        own_arrival: Bytes::from(own_arrival),
    };
    let membership = socket
        .serve(&state, &session, &mut stream, membership)
        .await;
    state.chat.leave(membership).await;
}

struct Socket {
    sink: Sink,
    /// The highest `seq` this client has been sent.
    last_seq: Seq,
    budget: FrameBudget,
    /// The `member_joined` this socket's own arrival caused: the joiner knows already.
    own_arrival: Bytes,
}

impl Socket {
    async fn serve(
        &mut self,
        state: &AppState,
        session: &AuthSession,
        stream: &mut Stream,
        mut membership: Membership,
    ) -> Membership {
        if self.greet(&mut membership).await.is_err() {
            return membership;
        }
        let session_ends = tokio::time::sleep(time_until(session.expires_at));
        tokio::pin!(session_ends);
        let mut ping = tokio::time::interval(PING_EVERY);
        ping.reset();
        let mut last_heard = Instant::now();

        loop {
            let outcome: Result<(), ()> = tokio::select! {
                biased;
                _ = state.shutdown.cancelled() => {
                    let _ = close(&mut self.sink, CLOSE_GOING_AWAY, "server is restarting").await;
                    break;
                }
                changed = membership.closed.changed() => {
                    if changed.is_err() || *membership.closed.borrow() == Some(CloseReason::SessionEnded) {
                        let _ = close(&mut self.sink, CLOSE_POLICY, "session ended").await;
                        break;
                    }
                    Ok(())
                }
                _ = &mut session_ends => {
                    let _ = close(&mut self.sink, CLOSE_POLICY, "session expired").await;
                    break;
                }
                delivery = membership.deliveries.recv() => {
                    self.forward(delivery, &mut membership).await
                }
                incoming = stream.next() => {
                    last_heard = Instant::now();
                    match incoming {
                        Some(Ok(Message::Text(text))) => self.handle_text(state, &membership, text.as_str()).await,
                        Some(Ok(Message::Binary(_))) => {
                            self.refuse_or_answer(|| Err(ChatError::InvalidFrame("frames are JSON text".into()))).await
                        }
                        Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => Ok(()),
                        Some(Ok(Message::Close(_))) | None => break,
                        Some(Err(e)) => {
                            if is_too_large(&e) {
                                let refusal = ServerFrame::Error {
                                    code: "frame_too_large",
                                    message: format!("frames are limited to {} KiB", MAX_FRAME_BYTES / 1024),
                                    client_id: None,
                                    retry_after_ms: None,
                                };
                                let _ = send_frame(&mut self.sink, &refusal).await;
                                let _ = close(&mut self.sink, CLOSE_TOO_BIG, "frame too large").await;
                            }
                            break;
                        }
                    }
                }
                _ = ping.tick() => {
                    if last_heard.elapsed() > IDLE_LIMIT {
                        let _ = close(&mut self.sink, CLOSE_GOING_AWAY, "idle").await;
                        break;
                    }
                    self.sink.send(Message::Ping(Default::default())).await.map_err(drop)
                }
            };
            if outcome.is_err() {
                break;
            }
        }
        membership
    }

    async fn greet(&mut self, membership: &mut Membership) -> Result<(), ()> {
        let joined = ServerFrame::Joined {
            room: RoomView {
                slug: membership.room.slug.clone(),
                name: membership.room.name.clone(),
            },
            user: UserView {
                id: membership.user.id.0,
                username: membership.user.username.clone(),
            },
            members: std::mem::take(&mut membership.members),
        };
        let history = std::mem::take(&mut membership.history);
        if let Some(last) = history.last() {
            self.last_seq = self.last_seq.max(last.seq);
        }
        let history = ServerFrame::History {
            messages: history.iter().map(MessageView::from).collect(),
            truncated: membership.truncated,
        };
        feed_text(&mut self.sink, json_text(&joined)).await?;
        feed_text(&mut self.sink, json_text(&history)).await?;
        self.sink.flush().await.map_err(drop)
    }

    /// Writes a delivery and whatever else is already waiting, then flushes once.
    async fn forward(
        &mut self,
        first: Result<Delivery, RecvError>,
        membership: &mut Membership,
    ) -> Result<(), ()> {
        let mut next = first;
        for _ in 0..WRITE_BATCH {
            match next {
                Ok(delivery) => self.feed_delivery(delivery).await?,
                Err(RecvError::Lagged(_)) => self.feed_resync().await?,
                Err(RecvError::Closed) => return Err(()),
            }
            next = match membership.deliveries.try_recv() {
                Ok(delivery) => Ok(delivery),
                Err(TryRecvError::Lagged(n)) => Err(RecvError::Lagged(n)),
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Closed) => Err(RecvError::Closed),
            };
        }
        self.sink.flush().await.map_err(drop)
    }

    async fn feed_delivery(&mut self, delivery: Delivery) -> Result<(), ()> {
        match delivery {
            Delivery::Message { seq, frame } => {
                // Already in the history this client was sent.
                if seq <= self.last_seq {
                    return Ok(());
                }
                self.last_seq = seq;
                self.feed_shared(&frame).await
            }
            Delivery::Presence(frames) => {
                for frame in frames.iter() {
                    if frame.json() != &self.own_arrival {
                        self.feed_shared(frame).await?;
                    }
                }
                Ok(())
            }
            Delivery::Resync => self.feed_resync().await,
        }
    }

    async fn feed_shared(&mut self, frame: &SharedFrame) -> Result<(), ()> {
        // Validated and cut into fragments once per broadcast, by the first socket here.
        let encoded = frame.encoded(|json| {
            Utf8Bytes::try_from(json.clone())
                .map(|text| Arc::<[Message]>::from(text_messages(text)))
                .ok()
        });
        for message in encoded.iter().flat_map(|messages| messages.iter()) {
            self.sink.feed(message.clone()).await.map_err(drop)?;
        }
        Ok(())
    }

    async fn feed_resync(&mut self) -> Result<(), ()> {
        let resync = ServerFrame::Resync {
            after: self.last_seq,
        };
        feed_text(&mut self.sink, json_text(&resync)).await
    }

    async fn handle_text(
        &mut self,
        state: &AppState,
        membership: &Membership,
        raw: &str,
    ) -> Result<(), ()> {
        let value: Result<serde_json::Value, _> = serde_json::from_str(raw);
        let client_id = value
            .as_ref()
            .ok()
            .and_then(|v| v.get("client_id"))
            .and_then(|v| v.as_str())
            .map(str::to_owned);
        let frame = value
            .map_err(|e| ChatError::InvalidFrame(format!("not JSON: {e}")))
            .and_then(|v| {
                serde_json::from_value::<ClientFrame>(v)
                    .map_err(|e| ChatError::InvalidFrame(e.to_string()))
            });
        match frame {
            Ok(ClientFrame::Send { body, client_id }) => {
                let reply = match state
                    .chat
                    .send(
                        &membership.user,
                        &membership.room,
                        &body,
                        client_id.as_deref(),
                    )
                    .await
                {
                    Ok(ack) => ServerFrame::Ack {
                        room: ack.room,
                        client_id: ack.client_id,
                        id: ack.id,
                        seq: ack.seq,
                    },
                    Err(e) => error_frame(&e, client_id),
                };
                send_frame(&mut self.sink, &reply).await
            }
            Ok(ClientFrame::Ping) => self.refuse_or_answer(|| Ok(ServerFrame::Pong)).await,
            Ok(ClientFrame::History {
                before,
                after,
                limit,
            }) => {
                if let Err(wait) = self.budget.take() {
                    return send_frame(&mut self.sink, &rate_limited(wait)).await;
                }
                let reply = match history_request(before, after, limit) {
                    Ok((range, limit)) => {
                        match state.chat.history(&membership.room, range, limit).await {
                            Ok((messages, truncated)) => ServerFrame::History {
                                messages: messages.iter().map(MessageView::from).collect(),
                                truncated,
                            },
                            Err(e) => error_frame(&e, None),
                        }
                    }
                    Err(e) => error_frame(&e, None),
                };
                send_frame(&mut self.sink, &reply).await
            }
            Err(e) => {
                if let Err(wait) = self.budget.take() {
                    return send_frame(&mut self.sink, &rate_limited(wait)).await;
                }
                send_frame(&mut self.sink, &error_frame(&e, client_id)).await
            }
        }
    }

    /// Answers a non-`send` frame, within the per-connection budget.
    async fn refuse_or_answer(
        &mut self,
        answer: impl FnOnce() -> Result<ServerFrame, ChatError>,
    ) -> Result<(), ()> {
        let reply = match self.budget.take() {
            Err(wait) => rate_limited(wait),
            Ok(()) => answer().unwrap_or_else(|e| error_frame(&e, None)),
        };
        send_frame(&mut self.sink, &reply).await
    }
}

fn history_request(
    before: Option<Seq>,
    after: Option<Seq>,
    limit: Option<u32>,
) -> Result<(HistoryRange, u32), ChatError> {
    let range = match (before, after) {
        (Some(before), None) => HistoryRange::Before(before),
        (None, Some(after)) => HistoryRange::After(after),
        _ => {
            return Err(ChatError::InvalidFrame(
                "history needs exactly one of before or after".into(),
            ))
        }
    };
    let limit = limit.unwrap_or(50);
    if !(1..=100).contains(&limit) {
        return Err(ChatError::InvalidFrame("limit must be 1 to 100".into()));
    }
    Ok((range, limit))
}

fn error_frame(error: &ChatError, client_id: Option<String>) -> ServerFrame {
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

fn rate_limited(wait: Duration) -> ServerFrame {
    ServerFrame::Error {
        code: "rate_limited",
        message: "too many frames; slow down".into(),
        client_id: None,
        retry_after_ms: Some(wait.as_millis().max(1) as u64),
    }
}

fn json_text(frame: &ServerFrame) -> Utf8Bytes {
    Utf8Bytes::from(frame.to_json())
}

/// Feeds one text message (see [`text_messages`]).
async fn feed_text(sink: &mut Sink, text: Utf8Bytes) -> Result<(), ()> {
    for message in text_messages(text) {
        sink.feed(message).await.map_err(drop)?;
    }
    Ok(())
}

/// What one text message is written as: itself, or if longer than [`SOCKET_BUFFER_BYTES`]
/// its fragments of at most that size (see the module's comment).
fn text_messages(text: Utf8Bytes) -> Vec<Message> {
    if text.len() <= SOCKET_BUFFER_BYTES {
        return vec![Message::Text(text)];
    }
    let pieces = fragments(text.as_str(), SOCKET_BUFFER_BYTES);
    let last = pieces.len() - 1;
    let bytes = Bytes::from(text);
    pieces
        .into_iter()
        .enumerate()
        .map(|(n, range)| {
            let opcode = OpCode::Data(if n == 0 { Data::Text } else { Data::Continue });
            Message::Frame(Frame::message(bytes.slice(range), opcode, n == last))
        })
        .collect()
}

/// `text` cut into consecutive pieces of at most `max` bytes (`max` ≥ 4), each whole
/// characters, so every fragment is valid UTF-8 by itself too.
fn fragments(text: &str, max: usize) -> Vec<std::ops::Range<usize>> {
    let mut pieces = Vec::with_capacity(text.len().div_ceil(max));
    let mut start = 0;
    while start < text.len() {
        let mut end = (start + max).min(text.len());
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        pieces.push(start..end);
        start = end;
    }
    pieces
}

async fn send_frame(sink: &mut Sink, frame: &ServerFrame) -> Result<(), ()> {
    feed_text(sink, json_text(frame)).await?;
    sink.flush().await.map_err(drop)
}

async fn close(sink: &mut Sink, code: u16, reason: &'static str) -> Result<(), ()> {
    let frame = CloseFrame {
        code: CloseCode::from(code),
        reason: Utf8Bytes::from_static(reason),
    };
    sink.send(Message::Close(Some(frame))).await.map_err(drop)
}

fn time_until(moment: chrono::DateTime<chrono::Utc>) -> Duration {
    (moment - chrono::Utc::now())
        .to_std()
        .unwrap_or(Duration::ZERO)
}

/// A frame or message over the size limits.
fn is_too_large(error: &WsError) -> bool {
    matches!(error, WsError::Capacity(_))
}

/// A sliding one-second window of non-`send` frames.
#[derive(Default)]
struct FrameBudget {
    recent: VecDeque<Instant>,
}

impl FrameBudget {
    fn take(&mut self) -> Result<(), Duration> {
        let now = Instant::now();
        while self
            .recent
            .front()
            .is_some_and(|t| now.duration_since(*t) >= Duration::from_secs(1))
        {
            self.recent.pop_front();
        }
        if self.recent.len() >= OTHER_FRAMES_PER_SECOND {
            let oldest = self.recent[0];
            return Err(Duration::from_secs(1).saturating_sub(now.duration_since(oldest)));
        }
        self.recent.push_back(now);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fragments_are_whole_characters_within_the_limit_and_add_up() {
        let text = "é🎉 chat ".repeat(200);
        for max in [4, 5, 7, 1024] {
            let pieces = fragments(&text, max);
            assert!(pieces.iter().all(|r| !r.is_empty() && r.len() <= max));
            let joined: String = pieces.iter().map(|r| &text[r.clone()]).collect();
            assert_eq!(joined, text, "max {max}");
        }
        assert_eq!(fragments("short", 1024), vec![0..5]);
    }

    #[test]
    fn a_long_text_is_one_text_fragment_then_continuations_the_last_final() {
        let short = text_messages(Utf8Bytes::from_static("short"));
        assert!(matches!(short.as_slice(), [Message::Text(t)] if t.as_str() == "short"));

        let long = "é🎉 chat ".repeat(300);
        let messages = text_messages(Utf8Bytes::from(long.clone()));
        let frames: Vec<&Frame> = messages
            .iter()
            .map(|m| match m {
                Message::Frame(frame) => frame,
                other => panic!("expected a fragment, got {other:?}"),
            })
            .collect();
        assert!(frames.len() > 1);
        for (n, frame) in frames.iter().enumerate() {
            let header = frame.header();
            let expected = if n == 0 { Data::Text } else { Data::Continue };
            assert_eq!(header.opcode, OpCode::Data(expected));
            assert_eq!(header.is_final, n == frames.len() - 1);
            assert!(frame.payload().len() <= SOCKET_BUFFER_BYTES);
        }
        let payload: Vec<u8> = frames.iter().flat_map(|f| f.payload().to_vec()).collect();
        assert_eq!(payload, long.as_bytes());
    }
}
