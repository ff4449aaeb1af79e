//! The process's local fan-out (here: attaching sockets, sessions, dispatch; [`ordering`],
//! [`presence`], [`frame`]): one broadcast channel per room with local members, fed
//! by the bus, read by every socket of the room.
//!
//! A frame is serialized once by its sender; the hub hands every socket a clone of the same
//! `Bytes`. Each room's channel is a bounded ring: a socket that falls behind loses its
//! place (and is told to `resync`) instead of growing memory.
//!
//! Messages reach the hub out of order when sends commit concurrently (or on different
//! processes). The hub keeps the next `seq` it expects per room and holds later ones back;
//! if a hole is not filled within [`GAP_WAIT`](ordering::GAP_WAIT), it reads the missing messages from the
//! store. Sockets therefore see `seq` in order without gaps.
//!
//! Frames without a `seq` are presence (`member_joined`, `member_left`). A crowd joining
//! makes O(n²) of them, one wake-up and one write per frame per socket if each went alone;
//! so the first in a quiet room goes at once and opens a [`PRESENCE_WINDOW`](presence::PRESENCE_WINDOW), and those that
//! come while it is open go together when it closes (or just before the next message, so
//! none arrives after a later message).

mod frame;
mod ordering;
mod presence;
mod typing;

pub use frame::SharedFrame;
use presence::send_held_presence;
pub use typing::TypingList;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::{broadcast, watch};

use crate::domain::{Rev, Room, RoomId, RoomKind, Seq, UserId};
use crate::ports::{BusEvent, BusListener, Order, Store};
use crate::telemetry::Metrics;

/// Frames a room's ring holds; a socket further behind than this gets `resync`.
const ROOM_RING: usize = 1024;

/// What every socket of a room receives.
#[derive(Debug, Clone)]
pub enum Delivery {
    /// A `message` or `message_updated` frame, shared by every socket.
    Message {
        order: Order,
        frame: Arc<SharedFrame>,
    },
    /// Presence frames, in the order they happened (one, or a burst's worth).
    Presence(Arc<[Arc<SharedFrame>]>),
    /// Frames may have been lost on the way here (the bus link dropped, or another process
    /// could not publish): the socket tells its client to `resync` after the last `seq` it
    /// sent.
    Resync,
    /// Who is typing now (CONTRACT §11), the whole list.
    Typing(Arc<TypingList>),
}

/// Why the server closes a socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    /// The session ended (logout or expiry): close code 1008.
    SessionEnded,
    /// The user left the room or was removed or banned from it: close code 4403.
    Removed,
}

/// How long a removal is remembered for sockets still joining: far longer than a join
/// takes between its access check and [`Hub::attach`].
const REMOVAL_MEMORY: Duration = Duration::from_secs(60);

/// What a room needs while it has local members.
pub(crate) struct RoomChannel {
    pub room: Room,
    sender: broadcast::Sender<Delivery>,
    /// Set once the bus delivers the room here and the expected `seq` is known.
    pub ready: tokio::sync::OnceCell<()>,
    /// Joiners of a room with a cold cache share one fill (single-flight).
    pub fill: tokio::sync::Mutex<()>,
}

struct RoomEntry {
    channel: Arc<RoomChannel>,
    /// Local connections per user.
    users: HashMap<UserId, usize>,
    /// `None` until the room's last stored `rev` is known; frames wait in `pending`.
    next_rev: Option<Rev>,
    pending: BTreeMap<Rev, (Order, Bytes)>,
    /// The highest `seq` sent as a new message (a hole filled from the store sends what
    /// is above it as new messages, the rest as changes).
    last_seq: Seq,
    gap_timer_armed: bool,
    /// Presence frames waiting for the [`PRESENCE_WINDOW`](presence::PRESENCE_WINDOW) to close.
    presence: Vec<Arc<SharedFrame>>,
    presence_window_open: bool,
    /// Who is typing, on any process, until when (tokio's clock: see `typing.rs`).
    typing: HashMap<String, tokio::time::Instant>,
    /// The typing list last sent to the room's sockets.
    typing_sent: Vec<String>,
    typing_tick_armed: bool,
}

/// The close signals of some open sockets, by connection number.
type Closers = HashMap<u64, watch::Sender<Option<CloseReason>>>;

/// The latest `read` frame (CONTRACT §11) of some open sockets, by connection number.
/// Only the latest matters, so each is a watch: no queue to grow.
type ReadSenders = HashMap<u64, watch::Sender<Option<Arc<SharedFrame>>>>;

#[derive(Default)]
struct HubState {
    rooms: HashMap<RoomId, RoomEntry>,
    /// Open sockets by session token hash, so a logout closes them.
    sessions: HashMap<Bytes, Closers>,
    /// Open sockets by room and user, so a removal closes them.
    members: HashMap<(RoomId, UserId), Closers>,
    /// The same sockets' read markers: a user's `read` goes to their sockets only, not
    /// to every socket of the room.
    reads: HashMap<(RoomId, UserId), ReadSenders>,
    /// When each recent removal arrived here: a socket whose access was checked before
    /// then may have been let in by a check that missed it.
    removals: HashMap<(RoomId, UserId), Instant>,
    next_connection: u64,
}

pub(crate) struct Hub {
    me: Weak<Hub>,
    store: Arc<dyn Store>,
    metrics: Metrics,
    /// How long a `typing` lasts without another (CONTRACT §11: 6 seconds).
    typing_expiry: Duration,
    state: Mutex<HubState>,
}

/// A socket's place in the hub, returned by [`Hub::attach`].
pub(crate) struct Attachment {
    pub channel: Arc<RoomChannel>,
    pub receiver: broadcast::Receiver<Delivery>,
    pub closed: watch::Receiver<Option<CloseReason>>,
    /// The user's latest `read` frame in this room, as their marker moves.
    pub reads: watch::Receiver<Option<Arc<SharedFrame>>>,
    pub connection: u64,
    /// This is the user's first connection to the room on this process.
    pub first_for_user: bool,
}

/// What [`Hub::detach`] left behind.
pub(crate) struct Detached {
    /// The user has no other connection to the room on this process.
    pub last_for_user: bool,
    /// The room has no local connection left.
    pub room_empty: bool,
}

impl Hub {
    pub fn new(store: Arc<dyn Store>, metrics: Metrics, typing_expiry: Duration) -> Arc<Hub> {
        Arc::new_cyclic(|me| Hub {
            me: me.clone(),
            store,
            metrics,
            typing_expiry,
            state: Mutex::new(HubState::default()),
        })
    }

    fn state(&self) -> MutexGuard<'_, HubState> {
        // Every update under this lock is small and leaves the state consistent.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `checked_at`: when the user's access to the room was checked; if a removal arrived
    /// since, the socket is closed at once.
    pub fn attach(
        &self,
        room: &Room,
        user: UserId,
        session: &Bytes,
        checked_at: Instant,
    ) -> Attachment {
        let mut state = self.state();
        let connection = state.next_connection;
        state.next_connection += 1;
        let removed_since_check = state
            .removals
            .get(&(room.id, user))
            .is_some_and(|&removed_at| removed_at >= checked_at);
        let (close_tx, closed) =
            watch::channel(removed_since_check.then_some(CloseReason::Removed));
        state
            .members
            .entry((room.id, user))
            .or_default()
            .insert(connection, close_tx.clone());
        state
            .sessions
            .entry(session.clone())
            .or_default()
            .insert(connection, close_tx);
        let (reads_tx, reads) = watch::channel(None);
        state
            .reads
            .entry((room.id, user))
            .or_default()
            .insert(connection, reads_tx);

        let entry = state.rooms.entry(room.id).or_insert_with(|| {
            self.metrics.rooms_active.inc();
            RoomEntry {
                channel: Arc::new(RoomChannel {
                    room: room.clone(),
                    sender: broadcast::channel(ROOM_RING).0,
                    ready: tokio::sync::OnceCell::new(),
                    fill: tokio::sync::Mutex::new(()),
                }),
                users: HashMap::new(),
                next_rev: None,
                pending: BTreeMap::new(),
                last_seq: Seq::ZERO,
                gap_timer_armed: false,
                presence: Vec::new(),
                presence_window_open: false,
                typing: HashMap::new(),
                typing_sent: Vec::new(),
                typing_tick_armed: false,
            }
        });
        let count = entry.users.entry(user).or_insert(0);
        *count += 1;
        Attachment {
            channel: entry.channel.clone(),
            receiver: entry.channel.sender.subscribe(),
            closed,
            reads,
            connection,
            first_for_user: *count == 1,
        }
    }

    pub fn detach(&self, room: RoomId, user: UserId, session: &Bytes, connection: u64) -> Detached {
        let mut state = self.state();
        if let Some(connections) = state.sessions.get_mut(session) {
            connections.remove(&connection);
            if connections.is_empty() {
                state.sessions.remove(session);
            }
        }
        if let Some(connections) = state.members.get_mut(&(room, user)) {
            connections.remove(&connection);
            if connections.is_empty() {
                state.members.remove(&(room, user));
            }
        }
        if let Some(connections) = state.reads.get_mut(&(room, user)) {
            connections.remove(&connection);
            if connections.is_empty() {
                state.reads.remove(&(room, user));
            }
        }
        let Some(entry) = state.rooms.get_mut(&room) else {
            return Detached {
                last_for_user: true,
                room_empty: true,
            };
        };
        let mut last_for_user = true;
        if let Some(count) = entry.users.get_mut(&user) {
            *count -= 1;
            last_for_user = *count == 0;
            if last_for_user {
                entry.users.remove(&user);
            }
        }
        let room_empty = entry.users.is_empty();
        if room_empty {
            state.rooms.remove(&room);
            self.metrics.rooms_active.dec();
        }
        Detached {
            last_for_user,
            room_empty,
        }
    }

    /// Whether this process still has a connection in the room.
    pub fn has_local_members(&self, room: RoomId) -> bool {
        self.state().rooms.contains_key(&room)
    }

    /// Closes the user's sockets to the room, and remembers the removal for a while.
    fn remove_member(&self, room: RoomId, user: UserId) {
        let mut state = self.state();
        let now = Instant::now();
        state
            .removals
            .retain(|_, &mut removed_at| now.duration_since(removed_at) < REMOVAL_MEMORY);
        state.removals.insert((room, user), now);
        if let Some(connections) = state.members.get(&(room, user)) {
            for close in connections.values() {
                let _ = close.send(Some(CloseReason::Removed));
            }
        }
    }

    fn end_session(&self, token_hash: &Bytes) {
        let state = self.state();
        if let Some(connections) = state.sessions.get(token_hash) {
            for close in connections.values() {
                let _ = close.send(Some(CloseReason::SessionEnded));
            }
        }
    }
}

impl BusListener for Hub {
    fn deliver(&self, event: BusEvent) {
        match event {
            BusEvent::Room {
                room,
                order: Some(order),
                frame,
            } => self.deliver_ordered(room, order, frame),
            BusEvent::Room {
                room,
                order: None,
                frame,
            } => self.deliver_presence(room, frame),
            BusEvent::Resync { room } => {
                if let Some(entry) = self.state().rooms.get_mut(&room) {
                    send_resync(entry);
                }
            }
            BusEvent::Typing { room, user, active } => self.deliver_typing(room, user, active),
            BusEvent::Read { room, user, frame } => {
                if let Some(sockets) = self.state().reads.get(&(room, user)) {
                    let frame = Arc::new(SharedFrame::new(frame));
                    for socket in sockets.values() {
                        socket.send_replace(Some(frame.clone()));
                    }
                }
            }
            BusEvent::SessionEnded { token_hash } => self.end_session(&token_hash),
            BusEvent::MemberRemoved { room, user } => self.remove_member(room, user),
        }
    }

    fn link_restored(&self) {
        let mut state = self.state();
        for entry in state.rooms.values_mut() {
            send_resync(entry);
        }
        drop(state);
        if let Some(hub) = self.me.upgrade() {
            tokio::spawn(async move { hub.close_sockets_of_the_removed().await });
        }
    }
}

impl Hub {
    /// A removal published while the bus was down never arrived here: asks the store who
    /// may still be in each room with local sockets, and closes the others' sockets as
    /// the removal would have. (In a public room only a ban shows: a removed member may
    /// come back by opening the room again.)
    async fn close_sockets_of_the_removed(&self) {
        let rooms: Vec<(Room, Vec<UserId>)> = self
            .state()
            .rooms
            .values()
            .map(|entry| {
                (
                    entry.channel.room.clone(),
                    entry.users.keys().copied().collect(),
                )
            })
            .collect();
        for (room, users) in rooms {
            let standings =
                tokio::time::timeout(super::STORE_TIMEOUT, self.store.standings(room.id, &users))
                    .await;
            let Ok(Ok(standings)) = standings else {
                tracing::warn!(
                    room = room.id.0,
                    "could not recheck who may be in a room after the bus came back"
                );
                continue;
            };
            for (user, standing) in users.into_iter().zip(standings) {
                let may_stay =
                    !standing.banned && (room.kind == RoomKind::Public || standing.role.is_some());
                if !may_stay {
                    self.remove_member(room.id, user);
                }
            }
        }
    }
}

/// Tells every socket of the room to `resync`, after the presence frames that came before.
fn send_resync(entry: &mut RoomEntry) {
    send_held_presence(entry);
    let _ = entry.channel.sender.send(Delivery::Resync);
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::sync::broadcast::error::RecvError;

    use super::super::STORE_TIMEOUT;
    use super::ordering::GAP_WAIT;
    use super::presence::PRESENCE_WINDOW;
    use super::*;
    use crate::adapters::memory::MemoryStore;

    /// A short typing expiry, so a test sees a name go without a long sleep.
    const TYPING: Duration = Duration::from_millis(300);

    fn hub_with_room() -> (Arc<Hub>, Room) {
        let room = Room {
            id: RoomId(1),
            slug: "general".into(),
            name: "General".into(),
            kind: crate::domain::RoomKind::Public,
        };
        (
            Hub::new(Arc::new(MemoryStore::new()), Metrics::new(), TYPING),
            room,
        )
    }

    fn seq(n: i64) -> Seq {
        Seq::new(n).unwrap()
    }

    /// A room event; with a `seq`, a new message's (its `rev` the same number).
    fn event(room: &Room, seq: Option<Seq>, json: &str) -> BusEvent {
        BusEvent::Room {
            room: room.id,
            order: seq.map(|seq| Order {
                rev: Rev::new(seq.get()).unwrap(),
                seq,
                new: true,
            }),
            frame: Bytes::from(json.to_owned()),
        }
    }

    /// What the receiver has now, without waiting: message seqs as numbers, presence
    /// batches as their frames.
    fn received(receiver: &mut broadcast::Receiver<Delivery>) -> Vec<String> {
        std::iter::from_fn(|| receiver.try_recv().ok())
            .map(|delivery| match delivery {
                Delivery::Message { order, .. } => order.rev.to_string(),
                Delivery::Presence(frames) => {
                    let texts: Vec<_> = frames
                        .iter()
                        .map(|f| String::from_utf8_lossy(f.json()).into_owned())
                        .collect();
                    format!("[{}]", texts.join(","))
                }
                Delivery::Resync => "resync".into(),
                Delivery::Typing(list) => format!("typing {:?}", list.users),
            })
            .collect()
    }

    #[tokio::test]
    async fn a_socket_that_falls_behind_loses_its_place_not_memory() {
        let (hub, room) = hub_with_room();
        let mut slow = hub.attach(
            &room,
            UserId(1),
            &Bytes::from_static(b"session"),
            Instant::now(),
        );
        hub.start_ordering(room.id, Rev::ZERO, Seq::ZERO);
        let overflow = 10;
        for n in 1..=ROOM_RING + overflow {
            hub.deliver(event(&room, Some(Seq::nth(n)), "{}"));
        }
        // The ring keeps ROOM_RING frames whatever the reader does: the oldest were
        // dropped, the reader learns how many it missed (the socket then sends `resync`)
        // and goes on with the oldest kept.
        match slow.receiver.recv().await {
            Err(RecvError::Lagged(missed)) => assert_eq!(missed, overflow as u64),
            other => panic!("expected a lag, got {other:?}"),
        }
        match slow.receiver.recv().await {
            Ok(Delivery::Message { order, .. }) => assert_eq!(order.seq, Seq::nth(overflow + 1)),
            other => panic!("expected the oldest kept message, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn presence_bursts_travel_together_and_never_behind_a_later_message() {
        let (hub, room) = hub_with_room();
        tokio::time::pause();
        let mut socket = hub.attach(
            &room,
            UserId(1),
            &Bytes::from_static(b"session"),
            Instant::now(),
        );
        hub.start_ordering(room.id, Rev::ZERO, Seq::ZERO);

        // The first goes at once; the rest of the burst waits for the window.
        for who in ["a", "b", "c"] {
            hub.deliver(event(&room, None, who));
        }
        assert_eq!(received(&mut socket.receiver), ["[a]"]);
        // A message takes what waits ahead of itself.
        hub.deliver(event(&room, Some(seq(1)), "{}"));
        assert_eq!(received(&mut socket.receiver), ["[b,c]", "1"]);
        // The window is still open: the next waits for it to close.
        hub.deliver(event(&room, None, "d"));
        assert_eq!(received(&mut socket.receiver), Vec::<String>::new());
        tokio::time::sleep(PRESENCE_WINDOW + Duration::from_millis(1)).await;
        assert_eq!(received(&mut socket.receiver), ["[d]"]);
        // A window that closes with nothing in it leaves the room quiet: the next goes at once.
        tokio::time::sleep(2 * PRESENCE_WINDOW).await;
        hub.deliver(event(&room, None, "e"));
        assert_eq!(received(&mut socket.receiver), ["[e]"]);
    }

    #[tokio::test]
    async fn a_read_reaches_its_users_sockets_only_and_keeps_the_latest() {
        let (hub, room) = hub_with_room();
        let session = Bytes::from_static(b"session");
        let mut bobs = hub.attach(&room, UserId(2), &session, Instant::now());
        let mut bobs_other = hub.attach(&room, UserId(2), &session, Instant::now());
        let mut carols = hub.attach(&room, UserId(3), &session, Instant::now());
        for seq in [4, 5] {
            hub.deliver(BusEvent::Read {
                room: room.id,
                user: UserId(2),
                frame: Bytes::from(format!("read {seq}")),
            });
        }
        for socket in [&mut bobs, &mut bobs_other] {
            assert!(socket.reads.has_changed().unwrap());
            let latest = socket.reads.borrow_and_update().clone().unwrap();
            assert_eq!(&latest.json()[..], b"read 5");
        }
        assert!(!carols.reads.has_changed().unwrap(), "not carol's");
        assert_eq!(received(&mut carols.receiver), Vec::<String>::new());
    }

    #[tokio::test(start_paused = true)]
    async fn typing_lists_go_at_once_then_per_tick_and_names_expire() {
        use super::typing::TYPING_TICK;
        let (hub, room) = hub_with_room();
        let mut socket = hub.attach(
            &room,
            UserId(1),
            &Bytes::from_static(b"session"),
            Instant::now(),
        );
        let typing = |user: &str, active| BusEvent::Typing {
            room: room.id,
            user: user.into(),
            active,
        };
        hub.deliver(typing("bob", true));
        assert_eq!(received(&mut socket.receiver), [r#"typing ["bob"]"#]);
        // Changes within a tick go together at its end.
        hub.deliver(typing("carol", true));
        hub.deliver(typing("bob", false));
        assert_eq!(received(&mut socket.receiver), Vec::<String>::new());
        tokio::time::sleep(TYPING_TICK + Duration::from_millis(1)).await;
        assert_eq!(received(&mut socket.receiver), [r#"typing ["carol"]"#]);
        // Still typing changes no list.
        hub.deliver(typing("carol", true));
        tokio::time::sleep(TYPING_TICK * 2).await;
        assert_eq!(received(&mut socket.receiver), Vec::<String>::new());
        assert!(hub.is_typing(room.id, "carol"));
        // Without another `typing` the name expires, on this process's own clock.
        tokio::time::sleep(TYPING).await;
        assert_eq!(received(&mut socket.receiver), ["typing []"]);
        assert!(!hub.is_typing(room.id, "carol"));
        // The tick has stopped with it: a quiet room's first change goes at once again.
        hub.deliver(typing("dave", true));
        assert_eq!(received(&mut socket.receiver), [r#"typing ["dave"]"#]);
        assert_eq!(hub.typing_now(room.id), ["dave"]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_gap_the_store_cannot_fill_in_time_is_skipped_after_the_store_deadline() {
        let room = Room {
            id: RoomId(1),
            slug: "general".into(),
            name: "General".into(),
            kind: crate::domain::RoomKind::Public,
        };
        let store = MemoryStore::new();
        store.stall_history_reads();
        let hub = Hub::new(Arc::new(store), Metrics::new(), TYPING);
        let mut socket = hub.attach(
            &room,
            UserId(1),
            &Bytes::from_static(b"session"),
            Instant::now(),
        );
        hub.start_ordering(room.id, Rev::ZERO, Seq::ZERO);
        hub.deliver(event(&room, Some(seq(1)), "{}"));
        hub.deliver(event(&room, Some(seq(3)), "{}"));
        assert_eq!(received(&mut socket.receiver), ["1"]);
        // The hole at 2 waits for the store, but no longer than its deadline.
        tokio::time::sleep(GAP_WAIT + STORE_TIMEOUT - Duration::from_millis(10)).await;
        assert_eq!(received(&mut socket.receiver), Vec::<String>::new());
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(received(&mut socket.receiver), ["3"]);
    }

    /// Frames go out in `rev` order, changes among messages; a hole is filled from the
    /// store's changes, a message new to the sockets as `message`.
    #[tokio::test(start_paused = true)]
    async fn a_hole_in_the_revs_is_filled_from_the_stores_changes() {
        use crate::domain::{MessageBody, NewMessage, RoomName, Slug, Username};
        use crate::ports::{MessageChange, NewRoom};
        let store = Arc::new(MemoryStore::new());
        let alice = store
            .create_user(&Username::parse("alice").unwrap(), "hash")
            .await
            .unwrap();
        let (slug, name) = (
            Slug::parse("general").unwrap(),
            RoomName::parse("General").unwrap(),
        );
        let new_room = NewRoom {
            slug: &slug,
            name: &name,
            kind: crate::domain::RoomKind::Public,
            owner: alice.id,
        };
        let room = store.create_room(new_room).await.unwrap().0;
        let send = |body: &str| NewMessage {
            room: room.clone(),
            user: alice.clone(),
            body: MessageBody::parse(body).unwrap(),
            client_id: None,
            reply_to: None,
        };
        let first = store.append_message(send("one")).await.unwrap().message;
        store.append_message(send("two")).await.unwrap();
        let body = MessageBody::parse("one, edited").unwrap();
        let edit = MessageChange::Edit {
            body: &body,
            at: chrono::Utc::now(),
        };
        store.change_message(&room, first.id, edit).await.unwrap();

        let hub = Hub::new(store.clone(), Metrics::new(), TYPING);
        let mut socket = hub.attach(&room, alice.id, &Bytes::from_static(b"s"), Instant::now());
        hub.start_ordering(room.id, Rev::ZERO, Seq::ZERO);
        hub.deliver(event(&room, Some(seq(1)), "{}"));
        hub.deliver(BusEvent::Room {
            room: room.id,
            order: Some(Order {
                rev: Rev::new(3).unwrap(),
                seq: seq(1),
                new: false,
            }),
            frame: Bytes::from_static(b"{\"type\":\"message_updated\"}"),
        });
        tokio::time::sleep(GAP_WAIT * 2).await;
        let delivered: Vec<(i64, bool, String)> =
            std::iter::from_fn(|| socket.receiver.try_recv().ok())
                .filter_map(|delivery| match delivery {
                    Delivery::Message { order, frame } => {
                        let json: serde_json::Value = serde_json::from_slice(frame.json()).unwrap();
                        let kind = json["type"].as_str().unwrap_or_default().to_owned();
                        Some((order.rev.get(), order.new, kind))
                    }
                    _ => None,
                })
                .collect();
        assert_eq!(
            delivered,
            [
                (1, true, String::new()),
                (2, true, "message".into()),
                (3, false, "message_updated".into())
            ]
        );
    }

    #[tokio::test]
    async fn a_removal_closes_the_users_sockets_to_that_room_and_no_others() {
        let (hub, room) = hub_with_room();
        let other_room = Room {
            id: RoomId(room.id.0 + 1),
            slug: "elsewhere".into(),
            ..room.clone()
        };
        let session = Bytes::from_static(b"session");
        let checked_at = Instant::now();
        let removed = hub.attach(&room, UserId(1), &session, checked_at);
        let elsewhere = hub.attach(&other_room, UserId(1), &session, checked_at);
        let someone_else = hub.attach(&room, UserId(2), &session, checked_at);
        hub.deliver(BusEvent::MemberRemoved {
            room: room.id,
            user: UserId(1),
        });
        assert_eq!(*removed.closed.borrow(), Some(CloseReason::Removed));
        assert_eq!(*elsewhere.closed.borrow(), None);
        assert_eq!(*someone_else.closed.borrow(), None);
    }

    /// A removal whose bus event was lost (Redis down) still closes the sockets once the
    /// link is back: the store is asked.
    #[tokio::test]
    async fn after_the_bus_comes_back_sockets_of_the_removed_are_closed() {
        use crate::domain::{Role, RoomName, Slug, Username};
        use crate::ports::NewRoom;
        let store = Arc::new(MemoryStore::new());
        let hub = Hub::new(store.clone(), Metrics::new(), TYPING);
        let user = |name: &str| {
            let store = store.clone();
            let name = Username::parse(name).unwrap();
            async move { store.create_user(&name, "hash").await.unwrap().id }
        };
        let (alice, bob, carol) = (user("alice").await, user("bob").await, user("carol").await);
        let new_room = |slug: &str, kind| {
            let store = store.clone();
            let slug = Slug::parse(slug).unwrap();
            async move {
                let name = RoomName::parse(slug.as_str()).unwrap();
                let room = NewRoom {
                    slug: &slug,
                    name: &name,
                    kind,
                    owner: alice,
                };
                store.create_room(room).await.unwrap().0
            }
        };
        let secret = new_room("secret", RoomKind::Private).await;
        let lobby = new_room("lobby", RoomKind::Public).await;
        store
            .add_member(secret.id, bob, Role::Member)
            .await
            .unwrap();
        let session = Bytes::from_static(b"session");
        let now = Instant::now();
        let alices = hub.attach(&secret, alice, &session, now);
        let bobs = hub.attach(&secret, bob, &session, now);
        let carols = hub.attach(&lobby, carol, &session, now);
        let bob_in_lobby = hub.attach(&lobby, bob, &session, now);
        // Removed and banned with no event delivered.
        store.remove_member(secret.id, bob).await.unwrap();
        store.ban(lobby.id, carol, alice).await.unwrap();

        hub.link_restored();
        for closed in [&bobs.closed, &carols.closed] {
            let mut closed = closed.clone();
            tokio::time::timeout(Duration::from_secs(5), closed.wait_for(Option::is_some))
                .await
                .expect("closed")
                .unwrap();
            assert_eq!(*closed.borrow(), Some(CloseReason::Removed));
        }
        assert_eq!(*alices.closed.borrow(), None);
        assert_eq!(
            *bob_in_lobby.closed.borrow(),
            None,
            "not a member, but it is public"
        );
    }

    #[tokio::test]
    async fn a_socket_let_in_by_a_check_before_a_removal_is_closed_as_it_attaches() {
        let (hub, room) = hub_with_room();
        let session = Bytes::from_static(b"session");
        let checked_before = Instant::now();
        hub.deliver(BusEvent::MemberRemoved {
            room: room.id,
            user: UserId(1),
        });
        let late = hub.attach(&room, UserId(1), &session, checked_before);
        assert_eq!(*late.closed.borrow(), Some(CloseReason::Removed));
        // A check made after the removal arrived saw it: a user added back stays.
        let checked_after = Instant::now();
        let back = hub.attach(&room, UserId(1), &session, checked_after);
        assert_eq!(*back.closed.borrow(), None);
    }
}
