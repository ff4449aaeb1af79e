//! Fan-out between processes over Redis pub/sub.
//!
//! Guarantees and shape:
//! - **At-most-once.** A publication reaches the processes subscribed to its channel at
//!   that moment; nothing is stored or replayed.
//! - **One subscriber connection per [`RedisBus`]** (so per process), owned by one
//!   background task started in [`Bus::start`]. It is named
//!   `CLIENT SETNAME natter-bus-<random>` ([`RedisBus::subscriber_name`]). It always
//!   listens on `{prefix}bus:sessions` and `{prefix}bus:members` (removals from rooms:
//!   every process hears them, since a socket may be joining a room this process does
//!   not subscribe yet), plus `{prefix}bus:room:{id}` for every room this process wants. It speaks RESP3 (Redis ≥ 6), so subscribing, pinging and receiving share
//!   the one connection.
//! - **Last call wins.** `subscribe`/`unsubscribe` record the wish synchronously under a
//!   mutex; the task reconciles what is subscribed with what is wanted and confirms. Each
//!   call returns once Redis confirmed a state that includes it (or `Unavailable` after
//!   3 s; the wish stays recorded, so the next connection covers it).
//! - **Reconnect, resubscribe, `link_restored`.** When the connection drops (or a ping gets
//!   no answer) the task reconnects with backoff (100 ms doubling to 2 s), subscribes the
//!   sessions and members channels and every wanted room, and only then calls
//!   [`BusListener::link_restored`] once: publications made in between are lost, and the
//!   hub tells sockets to `resync`.
//! - **Publishing never leaves a silent hole.** Publishes share one connection
//!   (`natter-bus-<random>-pub`, [`RedisBus::publisher_name`]). A publish that fails on it
//!   (Redis restarted: the first command on the old connection meets a broken pipe) drops
//!   it and tries once more on a fresh one, all within 2.5 s. If that fails too, the event
//!   goes to this process's listener directly (local sockets get the message, in order),
//!   the room is remembered, and a background task publishes [`BusEvent::Resync`] for it,
//!   retrying with the same backoff until Redis takes it: the other processes' sockets of
//!   the room resync within about 2 s of Redis answering again. (A process whose own link
//!   was also down resyncs every socket on `link_restored` anyway.)
//! - The tasks stop when the `RedisBus` is dropped; their connections close with them.
//!
//! Payloads. A room event is a 17-byte header — a flag byte (`0`: unordered, `1`: a new
//! message, `3`: a change of one, `2`: a resync, no frame), then the `rev` and the `seq` as
//! 8 bytes big-endian each (zero when unordered) — followed by the frame's bytes exactly as
//! the sender serialized them; the receiver hands
//! a slice of the received buffer to the listener, so nothing is re-encoded. A session end
//! is the token hash bytes. Malformed payloads are logged and dropped.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use redis::aio::MultiplexedConnection;
use redis::{
    AsyncConnectionConfig, Client, IntoConnectionInfo, ProtocolVersion, PushInfo, PushKind,
    RedisResult, Value,
};
use tokio::sync::{mpsc, watch, Notify};
use tokio::task::AbortHandle;

use super::connection::{unavailable, IO_TIMEOUT};
use crate::domain::{Rev, RoomId, Seq, UserId};
use crate::ports::{BoxError, Bus, BusEvent, BusListener, Order, Unavailable};

/// A publish (both of its tries) answers within this, even while Redis is down.
const PUBLISH_TIMEOUT: Duration = Duration::from_millis(2500);
/// How long `subscribe`/`unsubscribe` wait for Redis to confirm.
const CONFIRM_TIMEOUT: Duration = Duration::from_secs(3);
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(2);
/// The subscriber pings this often, so a silently dead link is noticed.
const PING_EVERY: Duration = Duration::from_secs(10);

const HEADER: usize = 17;
const UNORDERED: u8 = 0;
const NEW_MESSAGE: u8 = 1;
const RESYNC: u8 = 2;
const CHANGE: u8 = 3;
/// A typing start (`TYPING_ON`) or stop (`TYPING_OFF`); the frame is the username.
const TYPING_ON: u8 = 4;
const TYPING_OFF: u8 = 5;
/// A user's `read` frame; the payload is their 8-byte id, then the frame.
const READ: u8 = 6;

pub struct RedisBus {
    publisher: Arc<Publisher>,
    subscriber: Client,
    channels: Channels,
    name: String,
    shared: Arc<Shared>,
    /// Where events go when they cannot be published.
    listener: OnceLock<Arc<dyn BusListener>>,
    resyncs: Arc<Resyncs>,
    /// The subscriber and resync tasks.
    tasks: OnceLock<[AbortHandle; 2]>,
}

/// The connection publishes share, replaced by a fresh one when a publish fails on it.
struct Publisher {
    client: Client,
    config: AsyncConnectionConfig,
    name: String,
    /// Locked while connecting, so publishes that fail together share one new connection.
    current: tokio::sync::Mutex<Current>,
}

#[derive(Default)]
struct Current {
    /// `None` after a failure, until the next publish connects.
    conn: Option<MultiplexedConnection>,
    /// Counts connections, so a failure discards the one it happened on and no newer one.
    generation: u64,
}

/// Rooms whose publish failed, waiting for a `Resync` to be published.
#[derive(Default)]
struct Resyncs {
    rooms: Mutex<HashSet<RoomId>>,
    wake: Notify,
}

/// What the callers want and what the task has confirmed.
struct Shared {
    wanted: Mutex<Wanted>,
    /// Wakes the task when `wanted` changed.
    wake: Notify,
    /// The highest `Wanted::version` the subscriber connection has confirmed.
    applied: watch::Sender<u64>,
}

#[derive(Default)]
struct Wanted {
    rooms: HashSet<RoomId>,
    /// Rooms whose wish changed since the task last looked.
    changed: HashSet<RoomId>,
    /// Bumped by every `subscribe`/`unsubscribe` call.
    version: u64,
}

#[derive(Clone)]
struct Channels {
    room_prefix: String,
    sessions: String,
    members: String,
}

impl RedisBus {
    /// Connects the publisher (failing with `Unavailable` if Redis does not answer); the
    /// subscriber connects in [`Bus::start`].
    pub async fn connect(url: &str, key_prefix: &str) -> Result<RedisBus, Unavailable> {
        let info = url.into_connection_info().map_err(unavailable)?;
        let resp3 = info
            .redis_settings()
            .clone()
            .set_protocol(ProtocolVersion::RESP3);
        let subscriber =
            Client::open(info.clone().set_redis_settings(resp3)).map_err(unavailable)?;
        let name = format!("natter-bus-{:016x}", rand::random::<u64>());
        let publisher = Publisher {
            client: Client::open(info).map_err(unavailable)?,
            config: AsyncConnectionConfig::new()
                .set_connection_timeout(Some(IO_TIMEOUT))
                .set_response_timeout(Some(IO_TIMEOUT)),
            name: format!("{name}-pub"),
            current: tokio::sync::Mutex::default(),
        };
        tokio::time::timeout(PUBLISH_TIMEOUT, publisher.connection())
            .await
            .map_err(|_| Unavailable("redis did not answer in time".into()))?
            .map_err(unavailable)?;
        Ok(RedisBus {
            publisher: Arc::new(publisher),
            subscriber,
            channels: Channels {
                room_prefix: format!("{key_prefix}bus:room:"),
                sessions: format!("{key_prefix}bus:sessions"),
                members: format!("{key_prefix}bus:members"),
            },
            name,
            shared: Arc::new(Shared {
                wanted: Mutex::new(Wanted::default()),
                wake: Notify::new(),
                applied: watch::Sender::new(0),
            }),
            listener: OnceLock::new(),
            resyncs: Arc::default(),
            tasks: OnceLock::new(),
        })
    }

    /// The `CLIENT SETNAME` of this bus's subscriber connection.
    pub fn subscriber_name(&self) -> String {
        self.name.clone()
    }

    /// The `CLIENT SETNAME` of this bus's publishing connection.
    pub fn publisher_name(&self) -> String {
        self.publisher.name.clone()
    }

    /// Records the wish for `room` and waits until Redis confirmed a state that includes it.
    async fn want(&self, room: RoomId, subscribed: bool) -> Result<(), Unavailable> {
        let mut applied = self.shared.applied.subscribe();
        let version = {
            let mut wanted = self.shared.wanted.lock().unwrap_or_else(|e| e.into_inner());
            if subscribed {
                wanted.rooms.insert(room);
            } else {
                wanted.rooms.remove(&room);
            }
            wanted.changed.insert(room);
            wanted.version += 1;
            wanted.version
        };
        self.shared.wake.notify_one();
        let confirmed = tokio::time::timeout(CONFIRM_TIMEOUT, applied.wait_for(|v| *v >= version))
            .await
            .is_ok_and(|r| r.is_ok());
        if confirmed {
            Ok(())
        } else {
            Err(Unavailable(
                "redis did not confirm the subscription in time".into(),
            ))
        }
    }
}

impl Drop for RedisBus {
    fn drop(&mut self) {
        for task in self.tasks.get().into_iter().flatten() {
            task.abort();
        }
    }
}

#[async_trait]
impl Bus for RedisBus {
    fn start(&self, listener: Arc<dyn BusListener>) {
        self.tasks.get_or_init(|| {
            let _ = self.listener.set(listener.clone());
            let subscriber = Subscriber {
                client: self.subscriber.clone(),
                name: self.name.clone(),
                channels: self.channels.clone(),
                shared: self.shared.clone(),
                listener,
            };
            let resyncs = publish_resyncs(
                self.publisher.clone(),
                self.channels.clone(),
                self.resyncs.clone(),
            );
            [
                tokio::spawn(subscriber.run()).abort_handle(),
                tokio::spawn(resyncs).abort_handle(),
            ]
        });
    }

    async fn publish(&self, event: BusEvent) -> Result<(), Unavailable> {
        let (channel, payload) = self.channels.encode(&event);
        let published =
            tokio::time::timeout(PUBLISH_TIMEOUT, self.publisher.publish(&channel, &payload)).await;
        let error = match published {
            Ok(Ok(())) => return Ok(()),
            Ok(Err(error)) => unavailable(error),
            Err(_) => Unavailable("redis did not answer the publish in time".into()),
        };
        // The other processes may not have it: this one gets it directly, and they are
        // told to resync the room once Redis takes a publish again.
        if let BusEvent::Room { room, .. } | BusEvent::Resync { room } = &event {
            self.resyncs.add(*room);
        }
        if let Some(listener) = self.listener.get() {
            listener.deliver(event);
        }
        Err(error)
    }

    async fn subscribe(&self, room: RoomId) -> Result<(), Unavailable> {
        self.want(room, true).await
    }

    async fn unsubscribe(&self, room: RoomId) -> Result<(), Unavailable> {
        self.want(room, false).await
    }
}

impl Publisher {
    /// One try on the shared connection, then, if that failed, one on a fresh connection.
    async fn publish(&self, channel: &str, payload: &[u8]) -> RedisResult<()> {
        match self.try_publish(channel, payload).await {
            Err(error) => {
                tracing::debug!(error = %error, "publish failed; retrying on a fresh connection");
                self.try_publish(channel, payload).await
            }
            ok => ok,
        }
    }

    async fn try_publish(&self, channel: &str, payload: &[u8]) -> RedisResult<()> {
        let (generation, mut conn) = self.connection().await?;
        let result = redis::cmd("PUBLISH")
            .arg(channel)
            .arg(payload)
            .exec_async(&mut conn)
            .await;
        if result.is_err() {
            // Whatever failed (a broken pipe, no answer), this connection is not trusted
            // again.
            let mut current = self.current.lock().await;
            if current.generation == generation {
                current.conn = None;
            }
        }
        result
    }

    /// The shared connection, made (and named) if there is none.
    async fn connection(&self) -> RedisResult<(u64, MultiplexedConnection)> {
        let mut current = self.current.lock().await;
        if let Some(conn) = &current.conn {
            return Ok((current.generation, conn.clone()));
        }
        let mut conn = self
            .client
            .get_multiplexed_async_connection_with_config(&self.config)
            .await?;
        redis::cmd("CLIENT")
            .arg("SETNAME")
            .arg(&self.name)
            .exec_async(&mut conn)
            .await?;
        current.generation += 1;
        current.conn = Some(conn.clone());
        Ok((current.generation, conn))
    }
}

impl Resyncs {
    fn add(&self, room: RoomId) {
        self.rooms
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(room);
        self.wake.notify_one();
    }

    fn take(&self) -> HashSet<RoomId> {
        std::mem::take(&mut *self.rooms.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

/// Publishes a `Resync` for every room whose publish failed, retrying with backoff until
/// Redis takes each one.
async fn publish_resyncs(publisher: Arc<Publisher>, channels: Channels, resyncs: Arc<Resyncs>) {
    let mut backoff = BACKOFF_MIN;
    loop {
        let rooms = resyncs.take();
        if rooms.is_empty() {
            backoff = BACKOFF_MIN;
            resyncs.wake.notified().await;
            continue;
        }
        let mut failed = false;
        for room in rooms {
            let (channel, payload) = channels.encode(&BusEvent::Resync { room });
            let sent =
                tokio::time::timeout(PUBLISH_TIMEOUT, publisher.publish(&channel, &payload)).await;
            if matches!(sent, Ok(Ok(()))) {
                tracing::info!(
                    room = room.0,
                    "published a resync for a room whose publish failed"
                );
            } else {
                failed = true;
                resyncs
                    .rooms
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(room);
            }
        }
        if failed {
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(BACKOFF_MAX);
        }
    }
}

/// The background task that owns the subscriber connection.
struct Subscriber {
    client: Client,
    name: String,
    channels: Channels,
    shared: Arc<Shared>,
    listener: Arc<dyn BusListener>,
}

/// One live subscriber connection.
struct Link {
    conn: MultiplexedConnection,
    pushes: mpsc::UnboundedReceiver<PushInfo>,
    subscribed: HashSet<RoomId>,
}

impl Subscriber {
    async fn run(self) {
        let mut backoff = BACKOFF_MIN;
        let mut linked_before = false;
        let mut failing = false;
        loop {
            match self.open().await {
                Ok(link) => {
                    backoff = BACKOFF_MIN;
                    failing = false;
                    if linked_before {
                        tracing::info!("bus link restored; sockets will resync");
                        self.listener.link_restored();
                    }
                    linked_before = true;
                    let error = self.serve(link).await;
                    tracing::warn!(error = %error, "bus link lost; reconnecting");
                }
                Err(error) if !failing => {
                    failing = true;
                    tracing::warn!(error = %error, "bus cannot connect to redis; retrying");
                }
                Err(error) => tracing::debug!(error = %error, "bus still cannot connect"),
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(BACKOFF_MAX);
        }
    }

    /// Connects, names the connection, and subscribes the sessions channel and every
    /// wanted room.
    async fn open(&self) -> Result<Link, BoxError> {
        let (sender, pushes) = mpsc::unbounded_channel();
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(IO_TIMEOUT))
            .set_response_timeout(Some(IO_TIMEOUT))
            .set_push_sender(sender);
        let mut conn = self
            .client
            .get_multiplexed_async_connection_with_config(&config)
            .await?;
        redis::cmd("CLIENT")
            .arg("SETNAME")
            .arg(&self.name)
            .exec_async(&mut conn)
            .await?;
        let (rooms, version) = {
            let mut wanted = self.shared.wanted.lock().unwrap_or_else(|e| e.into_inner());
            wanted.changed.clear();
            (wanted.rooms.clone(), wanted.version)
        };
        let mut channels = vec![
            self.channels.sessions.clone(),
            self.channels.members.clone(),
        ];
        channels.extend(rooms.iter().map(|room| self.channels.room(*room)));
        conn.subscribe(&channels).await?;
        self.shared.applied.send_replace(version);
        Ok(Link {
            conn,
            pushes,
            subscribed: rooms,
        })
    }

    /// Delivers messages and applies wishes until the link fails; returns why.
    async fn serve(&self, mut link: Link) -> BoxError {
        let start = tokio::time::Instant::now() + PING_EVERY;
        let mut ping = tokio::time::interval_at(start, PING_EVERY);
        ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let result = tokio::select! {
                push = link.pushes.recv() => match push {
                    Some(push) if push.kind != PushKind::Disconnection => {
                        self.handle(push);
                        Ok(())
                    }
                    _ => Err("connection closed".into()),
                },
                _ = self.shared.wake.notified() => self.reconcile(&mut link).await,
                _ = ping.tick() => redis::cmd("PING")
                    .exec_async(&mut link.conn)
                    .await
                    .map_err(BoxError::from),
            };
            if let Err(error) = result {
                return error;
            }
        }
    }

    /// Subscribes and unsubscribes what changed, then confirms the version it saw.
    async fn reconcile(&self, link: &mut Link) -> Result<(), BoxError> {
        let (add, remove, version) = {
            let mut wanted = self.shared.wanted.lock().unwrap_or_else(|e| e.into_inner());
            let changed = std::mem::take(&mut wanted.changed);
            let (add, remove): (Vec<RoomId>, Vec<RoomId>) = changed
                .into_iter()
                .filter(|room| wanted.rooms.contains(room) != link.subscribed.contains(room))
                .partition(|room| wanted.rooms.contains(room));
            (add, remove, wanted.version)
        };
        if !add.is_empty() {
            let channels: Vec<String> = add.iter().map(|r| self.channels.room(*r)).collect();
            link.conn.subscribe(&channels).await?;
            link.subscribed.extend(add);
        }
        if !remove.is_empty() {
            let channels: Vec<String> = remove.iter().map(|r| self.channels.room(*r)).collect();
            link.conn.unsubscribe(&channels).await?;
            for room in &remove {
                link.subscribed.remove(room);
            }
        }
        self.shared.applied.send_replace(version);
        Ok(())
    }

    fn handle(&self, push: PushInfo) {
        if push.kind != PushKind::Message {
            return; // subscription confirmations and the like
        }
        let mut data = push.data.into_iter();
        let decoded = match (data.next(), data.next()) {
            (Some(Value::BulkString(channel)), Some(Value::BulkString(payload))) => {
                self.channels.decode(&channel, Bytes::from(payload))
            }
            _ => Err("not a channel and a payload"),
        };
        match decoded {
            Ok(event) => self.listener.deliver(event),
            Err(why) => tracing::warn!(why, "dropped a malformed bus message"),
        }
    }
}

impl Channels {
    fn room(&self, room: RoomId) -> String {
        format!("{}{}", self.room_prefix, room.0)
    }

    /// The channel and payload an event is published as.
    fn encode(&self, event: &BusEvent) -> (String, Vec<u8>) {
        match event {
            BusEvent::Room { room, order, frame } => (
                self.room(*room),
                encode_room(order_flag(order), *order, frame),
            ),
            BusEvent::Resync { room } => (self.room(*room), encode_room(RESYNC, None, b"")),
            BusEvent::Read { room, user, frame } => {
                let mut payload = user.0.to_be_bytes().to_vec();
                payload.extend_from_slice(frame);
                (self.room(*room), encode_room(READ, None, &payload))
            }
            BusEvent::Typing { room, user, active } => {
                let flag = if *active { TYPING_ON } else { TYPING_OFF };
                (self.room(*room), encode_room(flag, None, user.as_bytes()))
            }
            BusEvent::SessionEnded { token_hash } => (self.sessions.clone(), token_hash.to_vec()),
            BusEvent::MemberRemoved { room, user } => {
                let mut payload = room.0.to_be_bytes().to_vec();
                payload.extend_from_slice(&user.0.to_be_bytes());
                (self.members.clone(), payload)
            }
        }
    }

    fn decode(&self, channel: &[u8], payload: Bytes) -> Result<BusEvent, &'static str> {
        if channel == self.sessions.as_bytes() {
            return Ok(BusEvent::SessionEnded {
                token_hash: payload,
            });
        }
        if channel == self.members.as_bytes() {
            let (room, user) = payload.split_at_checked(8).ok_or("short removal")?;
            let id = |bytes: &[u8]| bytes.try_into().map(i64::from_be_bytes);
            return match (id(room), id(user)) {
                (Ok(room), Ok(user)) => Ok(BusEvent::MemberRemoved {
                    room: RoomId(room),
                    user: UserId(user),
                }),
                _ => Err("a removal is two 8-byte ids"),
            };
        }
        let room = channel
            .strip_prefix(self.room_prefix.as_bytes())
            .and_then(|id| std::str::from_utf8(id).ok()?.parse().ok())
            .ok_or("unknown channel")?;
        decode_room(RoomId(room), payload)
    }
}

fn order_flag(order: &Option<Order>) -> u8 {
    match order {
        None => UNORDERED,
        Some(Order { new: true, .. }) => NEW_MESSAGE,
        Some(Order { new: false, .. }) => CHANGE,
    }
}

fn encode_room(flag: u8, order: Option<Order>, frame: &[u8]) -> Vec<u8> {
    let (rev, seq) = order.map_or((0, 0), |o| (o.rev.get(), o.seq.get()));
    let mut payload = Vec::with_capacity(HEADER + frame.len());
    payload.push(flag);
    payload.extend_from_slice(&rev.to_be_bytes());
    payload.extend_from_slice(&seq.to_be_bytes());
    payload.extend_from_slice(frame);
    payload
}

fn decode_room(room: RoomId, payload: Bytes) -> Result<BusEvent, &'static str> {
    let header = payload
        .get(..HEADER)
        .ok_or("payload shorter than its header")?;
    let number = |at: usize| {
        header[at..at + 8]
            .try_into()
            .map(i64::from_be_bytes)
            .map_err(|_| "bad header")
    };
    let ordered = |new| -> Result<Option<Order>, &'static str> {
        Ok(Some(Order {
            rev: Rev::new(number(1)?).ok_or("negative rev")?,
            seq: Seq::new(number(9)?).ok_or("negative seq")?,
            new,
        }))
    };
    let order = match header[0] {
        UNORDERED => None,
        NEW_MESSAGE => ordered(true)?,
        CHANGE => ordered(false)?,
        RESYNC => return Ok(BusEvent::Resync { room }),
        READ => {
            let body = payload.slice(HEADER..);
            let (user, _) = body.split_at_checked(8).ok_or("a read without its user")?;
            let user = i64::from_be_bytes(user.try_into().map_err(|_| "bad user id")?);
            return Ok(BusEvent::Read {
                room,
                user: UserId(user),
                frame: body.slice(8..),
            });
        }
        flag @ (TYPING_ON | TYPING_OFF) => {
            let user =
                std::str::from_utf8(&payload[HEADER..]).map_err(|_| "a username is UTF-8")?;
            return Ok(BusEvent::Typing {
                room,
                user: user.to_owned(),
                active: flag == TYPING_ON,
            });
        }
        _ => return Err("unknown header flag"),
    };
    Ok(BusEvent::Room {
        room,
        order,
        frame: payload.slice(HEADER..),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn channels() -> Channels {
        Channels {
            room_prefix: "p:bus:room:".into(),
            sessions: "p:bus:sessions".into(),
            members: "p:bus:members".into(),
        }
    }

    /// Encodes `event` and decodes what would arrive on its channel.
    fn round_trip(event: &BusEvent) -> BusEvent {
        let (channel, payload) = channels().encode(event);
        channels()
            .decode(channel.as_bytes(), Bytes::from(payload))
            .unwrap()
    }

    #[test]
    fn room_payloads_round_trip_with_and_without_order() {
        let order = |rev, seq, new| {
            Some(Order {
                rev: Rev::new(rev).unwrap(),
                seq: Seq::new(seq).unwrap(),
                new,
            })
        };
        for sent in [
            None,
            order(0, 0, true),
            order(42, 40, true),
            order(43, 7, false),
            order(i64::MAX, i64::MAX, false),
        ] {
            let event = round_trip(&BusEvent::Room {
                room: RoomId(7),
                order: sent,
                frame: Bytes::from_static(b"{\"a\":1}"),
            });
            let BusEvent::Room { room, order, frame } = event else {
                panic!("not a room event")
            };
            assert_eq!(
                (room, order, &frame[..]),
                (RoomId(7), sent, &b"{\"a\":1}"[..])
            );
        }
    }

    #[test]
    fn reads_round_trip() {
        let event = round_trip(&BusEvent::Read {
            room: RoomId(7),
            user: UserId(42),
            frame: Bytes::from_static(b"{\"type\":\"read\"}"),
        });
        assert!(
            matches!(&event, BusEvent::Read { room: RoomId(7), user: UserId(42), frame }
                if &frame[..] == b"{\"type\":\"read\"}"),
            "{event:?}"
        );
    }

    #[test]
    fn typing_round_trips() {
        for active in [true, false] {
            let event = round_trip(&BusEvent::Typing {
                room: RoomId(7),
                user: "Zoë.b".into(),
                active,
            });
            assert!(
                matches!(&event, BusEvent::Typing { room: RoomId(7), user, active: a }
                    if user == "Zoë.b" && *a == active),
                "{event:?}"
            );
        }
    }

    #[test]
    fn resyncs_and_session_ends_round_trip() {
        let event = round_trip(&BusEvent::Resync { room: RoomId(7) });
        assert!(
            matches!(event, BusEvent::Resync { room: RoomId(7) }),
            "{event:?}"
        );
        let event = round_trip(&BusEvent::SessionEnded {
            token_hash: Bytes::from_static(b"hash"),
        });
        assert!(
            matches!(&event, BusEvent::SessionEnded { token_hash } if token_hash == "hash"),
            "{event:?}"
        );
    }

    #[test]
    fn malformed_messages_are_refused() {
        let order = Order {
            rev: Rev::ZERO.next(),
            seq: Seq::ZERO.next(),
            new: true,
        };
        let ok = || Bytes::from(encode_room(NEW_MESSAGE, Some(order), b"x"));
        let c = channels();
        assert!(c
            .decode(b"p:bus:room:7", Bytes::from_static(b"short"))
            .is_err());
        assert!(c.decode(b"p:bus:room:7", Bytes::from(vec![9; 12])).is_err());
        assert!(c.decode(b"p:bus:room:x", ok()).is_err());
        assert!(c.decode(b"p:bus:other", ok()).is_err());
        assert!(c
            .decode(b"p:bus:sessions", Bytes::from_static(b"hash"))
            .is_ok());
        assert!(c
            .decode(b"p:bus:members", Bytes::from_static(b"short"))
            .is_err());
        assert!(c
            .decode(b"p:bus:members", Bytes::from(vec![0; 17]))
            .is_err());
    }

    #[test]
    fn a_removal_round_trips() {
        let event = round_trip(&BusEvent::MemberRemoved {
            room: RoomId(7),
            user: UserId(-3),
        });
        assert!(matches!(
            event,
            BusEvent::MemberRemoved {
                room: RoomId(7),
                user: UserId(-3)
            }
        ));
    }
}
