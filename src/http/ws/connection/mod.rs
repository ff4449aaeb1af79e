//! One socket's life: `joined` and `history`, then live frames out ([`outbound`]) and
//! client frames in ([`inbound`]), until the client leaves, the session ends (1008) or the
//! server stops (1001). This file is the loop.
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

mod inbound;
mod outbound;

use inbound::FrameBudget;
use outbound::{error_frame, write_all};

use std::pin::Pin;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::StreamExt;
use tokio::sync::broadcast::error::{RecvError, TryRecvError};
use tokio::sync::watch;
use tokio::time::Sleep;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_util::sync::CancellationToken;

use super::frames::{self, Keep};
use super::handshake::Socket as WebSocket;
use crate::chat::{AuthSession, ChatError, CloseReason, Delivery, Entry, Visit};
use crate::domain::{Rev, Seq};
use crate::http::AppState;
use crate::protocol::{RoomView, ServerFrame, UserView};

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
/// CONTRACT §9: the user left, or was removed or banned from the room.
const CLOSE_REMOVED: u16 = 4403;

pub async fn run(
    mut ws: WebSocket,
    state: AppState,
    session: AuthSession,
    entry: Entry,
    since: Option<Seq>,
    rev: Option<Rev>,
) {
    let visit = match state.chat.visits().join(&session, entry, since, rev).await {
        Ok(visit) => visit,
        Err(e) => {
            let mut farewell = frames::text(error_frame(&e, None).to_json().as_bytes()).to_vec();
            farewell.extend_from_slice(&match e {
                // A ban that came while the socket was joining.
                ChatError::Banned => frames::close(CLOSE_REMOVED, "you are banned from this room"),
                _ => frames::close(CLOSE_INTERNAL, "could not join the room"),
            });
            let _ =
                tokio::time::timeout(CLOSE_WAIT, write_all(&mut ws, &farewell, &mut true)).await;
            return;
        }
    };
    let mut socket = Socket {
        ws,
        last_seq: visit.since.unwrap_or(Seq::ZERO),
        last_rev: Rev::ZERO,
        budget: FrameBudget::new(state.ws.frames_per_second),
        own_arrival: Bytes::from(
            ServerFrame::MemberJoined {
                user: visit.user.username.clone(),
            }
            .to_json(),
        ),
        username: visit.user.username.clone(),
        typing_sent: Vec::new(),
        unsent: Vec::new(),
        unsent_bytes: 0,
        at_boundary: true,
        max_unsent: state.ws.max_unsent_bytes,
        max_history_bytes: state.ws.max_history_bytes,
        write_timeout: state.ws.write_timeout,
        shutdown: state.shutdown.clone(),
        closed: visit.closed.clone(),
        session_ends: Box::pin(tokio::time::sleep(time_until(session.expires_at))),
    };
    let visit = socket.serve(&state, visit).await;
    // The connection goes first, so a client is not kept waiting on the store.
    drop(socket);
    state.chat.visits().leave(visit).await;
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
    /// The chat service closed the socket (logout, removal from the room).
    Closed(CloseReason),
    SessionExpired,
}

impl Signal {
    fn end(self) -> End {
        match self {
            Signal::Shutdown => End::Close(CLOSE_GOING_AWAY, "server is restarting"),
            Signal::Closed(CloseReason::SessionEnded) => End::Close(CLOSE_POLICY, "session ended"),
            Signal::Closed(CloseReason::Removed) => {
                End::Close(CLOSE_REMOVED, "you are no longer a member of this room")
            }
            Signal::SessionExpired => End::Close(CLOSE_POLICY, "session expired"),
        }
    }
}

/// Waits until the chat service closes the socket, and says why.
async fn closed_by_server(closed: &mut watch::Receiver<Option<CloseReason>>) -> Signal {
    let reason = match closed.wait_for(Option::is_some).await {
        Ok(reason) => *reason,
        // The hub let go of the socket: nothing can reach it any more.
        Err(_) => None,
    };
    Signal::Closed(reason.unwrap_or(CloseReason::SessionEnded))
}

/// What woke the socket up.
enum Event {
    Signal(Signal),
    Delivery(Result<Delivery, RecvError>),
    /// The user's read marker in the room moved (their latest `read` frame).
    Read,
    Incoming(Option<Result<Message, WsError>>),
    PingTime,
}

struct Socket {
    ws: WebSocket,
    /// The highest `seq` this client has been sent.
    last_seq: Seq,
    /// The last `rev` sent on this connection (for `resync`).
    last_rev: Rev,
    budget: FrameBudget,
    /// The `member_joined` this socket's own arrival caused: the joiner knows already.
    own_arrival: Bytes,
    /// This connection's user, whom its typing lists leave out.
    username: String,
    /// The typing list this client was last sent (without its own user).
    typing_sent: Vec<String>,
    /// Wire frames queued and not yet written, and their size.
    unsent: Vec<Bytes>,
    unsent_bytes: usize,
    /// False while the connection is in the middle of a frame (a close cannot go out then).
    at_boundary: bool,
    max_unsent: usize,
    max_history_bytes: usize,
    write_timeout: Duration,
    shutdown: CancellationToken,
    /// Becomes `Some` (or its sender goes) when the session ends or the user is removed.
    closed: watch::Receiver<Option<CloseReason>>,
    session_ends: Pin<Box<Sleep>>,
}

impl Socket {
    async fn serve(&mut self, state: &AppState, mut visit: Visit) -> Visit {
        if let Err(end) = self.greet(&mut visit).await {
            self.end(end).await;
            return visit;
        }
        let mut ping = tokio::time::interval(PING_EVERY);
        ping.reset();
        let mut last_heard = Instant::now();

        loop {
            let event = tokio::select! {
                biased;
                _ = self.shutdown.cancelled() => Event::Signal(Signal::Shutdown),
                signal = closed_by_server(&mut self.closed) => Event::Signal(signal),
                _ = self.session_ends.as_mut() => Event::Signal(Signal::SessionExpired),
                delivery = visit.deliveries.recv() => Event::Delivery(delivery),
                Ok(()) = visit.reads.changed() => Event::Read,
                incoming = self.ws.next() => Event::Incoming(incoming),
                _ = ping.tick() => Event::PingTime,
            };
            let outcome = match event {
                Event::Signal(signal) => Err(signal.end()),
                Event::Delivery(delivery) => self.forward(delivery, &mut visit).await,
                Event::Read => {
                    let read = visit.reads.borrow_and_update().clone();
                    match read {
                        Some(frame) => self.write_shared(&frame).await,
                        None => Ok(()),
                    }
                }
                Event::Incoming(incoming) => {
                    last_heard = Instant::now();
                    self.receive(state, &visit, incoming).await
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
        visit
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

    async fn greet(&mut self, visit: &mut Visit) -> Result<(), End> {
        let joined = ServerFrame::Joined {
            room: RoomView::from(&visit.room),
            user: UserView {
                id: visit.user.id.0,
                username: visit.user.username.clone(),
            },
            members: std::mem::take(&mut visit.members),
        };
        let keep = match visit.since {
            Some(_) => Keep::Oldest,
            None => Keep::Newest,
        };
        let history = frames::history(
            &std::mem::take(&mut visit.history),
            visit.truncated,
            keep,
            self.max_history_bytes,
        );
        if let Some(last) = history.last_seq {
            self.last_seq = self.last_seq.max(last);
        }
        self.queue(frames::text(joined.to_json().as_bytes()))
            .await?;
        self.queue(frames::text(&history.json)).await?;
        if let Some(updates) = visit.updates.take() {
            let json = frames::updates(
                &updates.messages,
                updates.truncated,
                updates.rev,
                self.max_history_bytes,
            );
            self.queue(frames::text(&json)).await?;
        }
        // Who is typing already: a joiner need not wait for the list's next change.
        let typing: Vec<String> = std::mem::take(&mut visit.typing)
            .into_iter()
            .filter(|user| *user != self.username)
            .collect();
        if !typing.is_empty() {
            self.typing_sent = typing.clone();
            let frame = ServerFrame::Typing { users: typing };
            self.queue(frames::text(frame.to_json().as_bytes())).await?;
        }
        self.write_out().await
    }

    /// Writes a delivery and whatever else is already waiting, then flushes once.
    async fn forward(
        &mut self,
        first: Result<Delivery, RecvError>,
        visit: &mut Visit,
    ) -> Result<(), End> {
        let mut next = first;
        for _ in 0..WRITE_BATCH {
            match next {
                Ok(delivery) => self.queue_delivery(delivery).await?,
                Err(RecvError::Lagged(_)) => self.queue_resync().await?,
                Err(RecvError::Closed) => return Err(End::Drop),
            }
            next = match visit.deliveries.try_recv() {
                Ok(delivery) => Ok(delivery),
                Err(TryRecvError::Lagged(n)) => Err(RecvError::Lagged(n)),
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Closed) => Err(RecvError::Closed),
            };
        }
        self.write_out().await
    }
}

fn time_until(moment: chrono::DateTime<chrono::Utc>) -> Duration {
    (moment - chrono::Utc::now())
        .to_std()
        .unwrap_or(Duration::ZERO)
}
