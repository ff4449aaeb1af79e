//! One socket's life: `joined` and `history`, then live frames out and client frames in,
//! until the client leaves, the session ends (1008) or the server stops (1001).
//!
//! Live frames come from the room's bounded ring in the hub, already serialized; a socket
//! that falls behind the ring gets `resync` with the last `seq` it was sent.
//!
//! Every frame is written here, straight to the connection ([`frames`] says why not through
//! tungstenite), and every write is bounded (CONTRACT §7a): at most `max_unsent_bytes` are
//! queued for a socket (it writes what it holds before it takes more, and takes nothing
//! while a write is pending: deliveries wait in the room's ring meanwhile), one write waits
//! at most `write_timeout`, and logout, session expiry and shutdown are raced against every
//! write, so a client that stops reading cannot keep its socket open past them.

use std::collections::VecDeque;
use std::pin::Pin;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use tokio::io::AsyncWriteExt;
use tokio::sync::broadcast::error::{RecvError, TryRecvError};
use tokio::sync::watch;
use tokio::time::Sleep;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_util::sync::CancellationToken;

use super::frames::{self, Keep};
use super::handshake::Socket as WebSocket;
use super::MAX_FRAME_BYTES;
use crate::chat::{AuthSession, ChatError, CloseReason, Delivery, Membership, SharedFrame};
use crate::domain::{HistoryRange, HistoryRequest, Room, Seq};
use crate::http::strict_json;
use crate::http::AppState;
use crate::protocol::{ClientFrame, ErrorCode, RoomView, ServerFrame, UserView};

/// The server pings this often; a client silent for [`IDLE_LIMIT`] is gone.
const PING_EVERY: Duration = Duration::from_secs(30);
const IDLE_LIMIT: Duration = Duration::from_secs(75);
/// Deliveries written before one flush.
const WRITE_BATCH: usize = 64;
/// How long a close frame may take to be written before the connection is just dropped.
const CLOSE_WAIT: Duration = Duration::from_secs(1);

const CLOSE_GOING_AWAY: u16 = 1001;
const CLOSE_POLICY: u16 = 1008;
const CLOSE_TOO_BIG: u16 = 1009;
const CLOSE_INTERNAL: u16 = 1011;

pub async fn run(
    mut ws: WebSocket,
    state: AppState,
    session: AuthSession,
    room: Room,
    since: Option<Seq>,
) {
    let membership = match state.chat.join(&session, room, since).await {
        Ok(membership) => membership,
        Err(e) => {
            let mut farewell = frames::text(error_frame(&e, None).to_json().as_bytes()).to_vec();
            farewell.extend_from_slice(&frames::close(CLOSE_INTERNAL, "could not join the room"));
            let _ =
                tokio::time::timeout(CLOSE_WAIT, write_all(&mut ws, &farewell, &mut true)).await;
            return;
        }
    };
    let mut socket = Socket {
        ws,
        last_seq: membership.since.unwrap_or(0),
        budget: FrameBudget::new(state.ws.frames_per_second),
        own_arrival: Bytes::from(
            ServerFrame::MemberJoined {
                user: membership.user.username.clone(),
            }
            .to_json(),
        ),
        unsent: Vec::new(),
        unsent_bytes: 0,
        at_boundary: true,
        max_unsent: state.ws.max_unsent_bytes,
        max_history_bytes: state.ws.max_history_bytes,
        write_timeout: state.ws.write_timeout,
        shutdown: state.shutdown.clone(),
        closed: membership.closed.clone(),
        session_ends: Box::pin(tokio::time::sleep(time_until(session.expires_at))),
    };
    let membership = socket.serve(&state, membership).await;
    // The connection goes first, so a client is not kept waiting on the store.
    drop(socket);
    state.chat.leave(membership).await;
}

/// Why a socket stops.
enum End {
    /// With a close frame (the connection is between frames).
    Close(u16, &'static str),
    /// At once: the client left, or the connection is in the middle of a frame.
    Drop,
}

/// What ends a socket from outside, even in the middle of a write.
#[derive(Clone, Copy)]
enum Signal {
    Shutdown,
    SessionEnded,
    SessionExpired,
}

impl Signal {
    fn end(self) -> End {
        match self {
            Signal::Shutdown => End::Close(CLOSE_GOING_AWAY, "server is restarting"),
            Signal::SessionEnded => End::Close(CLOSE_POLICY, "session ended"),
            Signal::SessionExpired => End::Close(CLOSE_POLICY, "session expired"),
        }
    }
}

/// What woke the socket up.
enum Event {
    Signal(Signal),
    Delivery(Result<Delivery, RecvError>),
    Incoming(Option<Result<Message, WsError>>),
    PingTime,
}

struct Socket {
    ws: WebSocket,
    /// The highest `seq` this client has been sent.
    last_seq: Seq,
    budget: FrameBudget,
    /// The `member_joined` this socket's own arrival caused: the joiner knows already.
    own_arrival: Bytes,
    /// Wire frames queued and not yet written, and their size.
    unsent: Vec<Bytes>,
    unsent_bytes: usize,
    /// False while the connection is in the middle of a frame (a close cannot go out then).
    at_boundary: bool,
    max_unsent: usize,
    max_history_bytes: usize,
    write_timeout: Duration,
    shutdown: CancellationToken,
    /// Becomes `Some` (or its sender goes) when the session ends.
    closed: watch::Receiver<Option<CloseReason>>,
    session_ends: Pin<Box<Sleep>>,
}

impl Socket {
    async fn serve(&mut self, state: &AppState, mut membership: Membership) -> Membership {
        if let Err(end) = self.greet(&mut membership).await {
            self.end(end).await;
            return membership;
        }
        let mut ping = tokio::time::interval(PING_EVERY);
        ping.reset();
        let mut last_heard = Instant::now();

        loop {
            let event = tokio::select! {
                biased;
                _ = self.shutdown.cancelled() => Event::Signal(Signal::Shutdown),
                _ = self.closed.wait_for(Option::is_some) => Event::Signal(Signal::SessionEnded),
                _ = self.session_ends.as_mut() => Event::Signal(Signal::SessionExpired),
                delivery = membership.deliveries.recv() => Event::Delivery(delivery),
                incoming = self.ws.next() => Event::Incoming(incoming),
                _ = ping.tick() => Event::PingTime,
            };
            let outcome = match event {
                Event::Signal(signal) => Err(signal.end()),
                Event::Delivery(delivery) => self.forward(delivery, &mut membership).await,
                Event::Incoming(incoming) => {
                    last_heard = Instant::now();
                    self.receive(state, &membership, incoming).await
                }
                Event::PingTime if last_heard.elapsed() > IDLE_LIMIT => {
                    Err(End::Close(CLOSE_GOING_AWAY, "idle"))
                }
                Event::PingTime => self.send(frames::ping()).await,
            };
            if let Err(end) = outcome {
                self.end(end).await;
                break;
            }
        }
        membership
    }

    async fn end(&mut self, end: End) {
        if let End::Close(code, reason) = end {
            if self.at_boundary {
                let frame = frames::close(code, reason);
                let _ = tokio::time::timeout(
                    CLOSE_WAIT,
                    write_all(&mut self.ws, &frame, &mut self.at_boundary),
                )
                .await;
            }
        }
    }

    async fn greet(&mut self, membership: &mut Membership) -> Result<(), End> {
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
        let keep = match membership.since {
            Some(_) => Keep::Oldest,
            None => Keep::Newest,
        };
        let history = frames::history(
            &std::mem::take(&mut membership.history),
            membership.truncated,
            keep,
            self.max_history_bytes,
        );
        if let Some(last) = history.last_seq {
            self.last_seq = self.last_seq.max(last);
        }
        self.queue(frames::text(joined.to_json().as_bytes()))
            .await?;
        self.queue(frames::text(&history.json)).await?;
        self.write_out().await
    }

    /// Writes a delivery and whatever else is already waiting, then flushes once.
    async fn forward(
        &mut self,
        first: Result<Delivery, RecvError>,
        membership: &mut Membership,
    ) -> Result<(), End> {
        let mut next = first;
        for _ in 0..WRITE_BATCH {
            match next {
                Ok(delivery) => self.queue_delivery(delivery).await?,
                Err(RecvError::Lagged(_)) => self.queue_resync().await?,
                Err(RecvError::Closed) => return Err(End::Drop),
            }
            next = match membership.deliveries.try_recv() {
                Ok(delivery) => Ok(delivery),
                Err(TryRecvError::Lagged(n)) => Err(RecvError::Lagged(n)),
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Closed) => Err(RecvError::Closed),
            };
        }
        self.write_out().await
    }

    async fn queue_delivery(&mut self, delivery: Delivery) -> Result<(), End> {
        match delivery {
            Delivery::Message { seq, frame } => {
                // Already in the history this client was sent.
                if seq <= self.last_seq {
                    return Ok(());
                }
                self.last_seq = seq;
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
        }
    }

    async fn queue_shared(&mut self, frame: &SharedFrame) -> Result<(), End> {
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

    async fn queue_resync(&mut self) -> Result<(), End> {
        let resync = ServerFrame::Resync {
            after: self.last_seq,
        };
        self.queue(frames::text(resync.to_json().as_bytes())).await
    }

    async fn receive(
        &mut self,
        state: &AppState,
        membership: &Membership,
        incoming: Option<Result<Message, WsError>>,
    ) -> Result<(), End> {
        match incoming {
            Some(Ok(Message::Text(text))) => {
                self.handle_text(state, membership, text.as_bytes()).await
            }
            Some(Ok(Message::Binary(_))) => {
                let refusal = ChatError::InvalidFrame("frames are JSON text".into());
                self.refuse(&refusal, None).await
            }
            // tungstenite answers a ping with a pong by itself; it still counts.
            Some(Ok(Message::Ping(_))) => match self.budget.take() {
                Ok(()) => Ok(()),
                Err(wait) => self.send_frame(&rate_limited(wait, None)).await,
            },
            Some(Ok(Message::Pong(_) | Message::Frame(_))) => Ok(()),
            Some(Ok(Message::Close(_))) | None => Err(End::Drop),
            Some(Err(e)) if is_too_large(&e) => {
                let refusal = ServerFrame::Error {
                    code: ErrorCode::FrameTooLarge,
                    message: format!("frames are limited to {} KiB", MAX_FRAME_BYTES / 1024),
                    client_id: None,
                    retry_after_ms: None,
                };
                self.send_frame(&refusal).await?;
                Err(End::Close(CLOSE_TOO_BIG, "frame too large"))
            }
            Some(Err(_)) => Err(End::Drop),
        }
    }

    async fn handle_text(
        &mut self,
        state: &AppState,
        membership: &Membership,
        raw: &[u8],
    ) -> Result<(), End> {
        let value = strict_json::parse_object(raw);
        let client_id = value
            .as_ref()
            .ok()
            .and_then(|v| v.get("client_id"))
            .and_then(|v| v.as_str())
            .map(str::to_owned);
        let frame = value
            .map_err(|e| ChatError::InvalidFrame(e.to_string()))
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
                    Err(e) => return self.refuse(&e, client_id).await,
                };
                self.send_frame(&reply).await
            }
            Ok(ClientFrame::Ping) => {
                let reply = match self.budget.take() {
                    Ok(()) => ServerFrame::Pong,
                    Err(wait) => rate_limited(wait, None),
                };
                self.send_frame(&reply).await
            }
            Ok(ClientFrame::History {
                before,
                after,
                limit,
            }) => {
                if let Err(wait) = self.budget.take() {
                    return self.send_frame(&rate_limited(wait, None)).await;
                }
                let answer = match history_request(before, after, limit) {
                    Ok((request, keep)) => state.chat.history(&membership.room, request).await.map(
                        |(messages, truncated)| {
                            frames::history(&messages, truncated, keep, self.max_history_bytes)
                        },
                    ),
                    Err(e) => Err(e),
                };
                match answer {
                    Ok(history) => self.send(frames::text(&history.json)).await,
                    Err(e) => self.send_frame(&error_frame(&e, None)).await,
                }
            }
            Err(e) => self.refuse(&e, client_id).await,
        }
    }

    /// Answers a refused frame with its error, or `rate_limited` beyond the budget.
    async fn refuse(&mut self, error: &ChatError, client_id: Option<String>) -> Result<(), End> {
        let reply = match self.budget.take() {
            Ok(()) => error_frame(error, client_id),
            Err(wait) => rate_limited(wait, client_id),
        };
        self.send_frame(&reply).await
    }

    async fn send_frame(&mut self, frame: &ServerFrame) -> Result<(), End> {
        self.send(frames::text(frame.to_json().as_bytes())).await
    }

    async fn send(&mut self, wire: Bytes) -> Result<(), End> {
        self.queue(wire).await?;
        self.write_out().await
    }

    /// Queues one wire frame, writing what is queued first if both would not fit.
    async fn queue(&mut self, wire: Bytes) -> Result<(), End> {
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
    async fn write_out(&mut self) -> Result<(), End> {
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
                _ = self.closed.wait_for(Option::is_some) => Err(Signal::SessionEnded),
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
async fn write_all(ws: &mut WebSocket, bytes: &[u8], at_boundary: &mut bool) -> Result<(), ()> {
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

/// A `history` frame's request, and which end of it a bounded frame keeps: after a point
/// the oldest (the client pages on after the last), else the newest.
fn history_request(
    before: Option<Seq>,
    after: Option<Seq>,
    limit: Option<u32>,
) -> Result<(HistoryRequest, Keep), ChatError> {
    let request = HistoryRequest::before_or_after(before, after, limit.map(i64::from))
        .map_err(|e| ChatError::InvalidFrame(e.to_string()))?;
    let keep = match request.range() {
        HistoryRange::After(_) => Keep::Oldest,
        HistoryRange::Before(_) | HistoryRange::Latest => Keep::Newest,
    };
    Ok((request, keep))
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

fn rate_limited(wait: Duration, client_id: Option<String>) -> ServerFrame {
    error_frame(&ChatError::TooManyFrames { retry_after: wait }, client_id)
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

/// A sliding one-second window of frames that are not accepted `send`s.
struct FrameBudget {
    per_second: usize,
    recent: VecDeque<Instant>,
}

impl FrameBudget {
    fn new(per_second: usize) -> FrameBudget {
        FrameBudget {
            per_second,
            recent: VecDeque::new(),
        }
    }

    fn take(&mut self) -> Result<(), Duration> {
        let now = Instant::now();
        while self
            .recent
            .front()
            .is_some_and(|t| now.duration_since(*t) >= Duration::from_secs(1))
        {
            self.recent.pop_front();
        }
        if self.recent.len() >= self.per_second {
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
    fn a_history_frame_keeps_the_end_it_pages_from_and_refuses_as_invalid_frame() {
        let (before, keep) = history_request(Some(5), None, None).unwrap();
        assert_eq!(before.range(), HistoryRange::Before(5));
        assert!(matches!(keep, Keep::Newest));
        let (after, keep) = history_request(None, Some(0), Some(100)).unwrap();
        assert_eq!(
            (after.range(), after.limit()),
            (HistoryRange::After(0), 100)
        );
        assert!(matches!(keep, Keep::Oldest));
        for (before, after, limit) in [
            (Some(-1), None, None),
            (None, None, None),
            (None, Some(1), Some(0)),
        ] {
            assert!(
                matches!(
                    history_request(before, after, limit),
                    Err(ChatError::InvalidFrame(_))
                ),
                "{before:?} {after:?} {limit:?}"
            );
        }
    }
}
