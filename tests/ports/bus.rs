//! The bus: what every adapter does (stamped per adapter), then what only Redis does
//! (room filtering, racing wishes, reconnecting after its subscriber or its publishing
//! connection is killed, and what a publish that cannot be sent leaves behind).
//!
//! A Redis fixture is two `RedisBus` instances on one random prefix — a sender and a
//! receiver, like two processes — so parallel tests never hear each other.

use std::future::{poll_fn, Future};
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::Duration;

use bytes::Bytes;
use futures_util::future::maybe_done;
use natter::adapters::memory::MemoryBus;
use natter::adapters::redis::RedisBus;
use natter::domain::{Rev, RoomId, Seq, UserId};
use natter::ports::{Bus, BusEvent, BusListener, Order};
use tokio::sync::Notify;

use crate::fixtures::PortFixture;

/// Every wait for a delivery is bounded by this.
const WAIT: Duration = Duration::from_secs(10);

port_suite! {
    adapters {
        memory: MemoryPair,
        #[ignore = "needs TEST_REDIS_URL"]
        redis: RedisPair,
    }
    behaviours {
        a_room_frame_reaches_a_subscriber_unchanged,
        a_frame_without_seq_keeps_no_seq,
        a_resync_reaches_a_subscriber,
        typing_reaches_a_subscriber,
        a_read_reaches_a_subscriber,
        a_session_end_reaches_every_instance,
        a_removal_reaches_every_instance_whatever_it_subscribes,
    }
}

/// What a listener heard.
#[derive(Debug, Clone, PartialEq)]
enum Heard {
    Room {
        room: RoomId,
        order: Option<Order>,
        frame: Bytes,
    },
    Resync(RoomId),
    SessionEnded(Bytes),
    MemberRemoved(RoomId, UserId),
    Typing(RoomId, String, bool),
    Read(RoomId, UserId, Bytes),
    LinkRestored,
}

#[derive(Default)]
struct Recorder {
    heard: Mutex<Vec<Heard>>,
    changed: Notify,
}

impl Recorder {
    fn record(&self, heard: Heard) {
        self.heard.lock().unwrap().push(heard);
        self.changed.notify_waiters();
    }

    fn heard(&self) -> Vec<Heard> {
        self.heard.lock().unwrap().clone()
    }

    /// Waits (bounded) until `what` was heard; panics with everything heard otherwise.
    async fn wait_for(&self, what: &Heard) {
        let waited = tokio::time::timeout(WAIT, async {
            loop {
                let changed = self.changed.notified();
                tokio::pin!(changed);
                changed.as_mut().enable();
                if self.heard.lock().unwrap().contains(what) {
                    return;
                }
                changed.await;
            }
        })
        .await;
        assert!(
            waited.is_ok(),
            "never heard {what:?}; heard {:?}",
            self.heard()
        );
    }
}

impl BusListener for Recorder {
    fn deliver(&self, event: BusEvent) {
        self.record(match event {
            BusEvent::Room { room, order, frame } => Heard::Room { room, order, frame },
            BusEvent::Resync { room } => Heard::Resync(room),
            BusEvent::SessionEnded { token_hash } => Heard::SessionEnded(token_hash),
            BusEvent::MemberRemoved { room, user } => Heard::MemberRemoved(room, user),
            BusEvent::Typing { room, user, active } => Heard::Typing(room, user, active),
            BusEvent::Read { room, user, frame } => Heard::Read(room, user, frame),
        });
    }

    fn link_restored(&self) {
        self.record(Heard::LinkRestored);
    }
}

/// A sender and a receiver instance; for the in-process bus they are the same one.
#[derive(Clone)]
struct Pair {
    sender: Arc<dyn Bus>,
    sender_heard: Arc<Recorder>,
    receiver: Arc<dyn Bus>,
    heard: Arc<Recorder>,
}

struct MemoryPair(Pair);

impl PortFixture for MemoryPair {
    type Port = Pair;
    const NEEDS: Option<&'static str> = None;

    async fn make() -> Self {
        let bus = Arc::new(MemoryBus::new());
        let heard = Arc::new(Recorder::default());
        bus.start(heard.clone());
        MemoryPair(Pair {
            sender: bus.clone(),
            sender_heard: heard.clone(),
            receiver: bus,
            heard,
        })
    }

    fn port(&self) -> Pair {
        self.0.clone()
    }
}

/// Two processes' buses on a prefix of their own: the sender and the receiver.
struct RedisPair(Pair);

impl PortFixture for RedisPair {
    type Port = Pair;
    const NEEDS: Option<&'static str> = Some("TEST_REDIS_URL");

    async fn make() -> Self {
        let url = Self::service_url();
        let redis = redis_buses_at(&url, &url).await;
        RedisPair(Pair {
            sender: redis.sender,
            sender_heard: redis.sender_heard,
            receiver: redis.receiver,
            heard: redis.heard,
        })
    }

    fn port(&self) -> Pair {
        self.0.clone()
    }
}

/// Two started Redis buses on a fresh prefix, plus a plain connection for poking Redis.
struct RedisBuses {
    url: String,
    prefix: String,
    sender: Arc<RedisBus>,
    sender_heard: Arc<Recorder>,
    receiver: Arc<RedisBus>,
    heard: Arc<Recorder>,
}

async fn redis_buses() -> RedisBuses {
    let url = RedisPair::service_url();
    redis_buses_at(&url, &url).await
}

/// A started bus on `prefix`, once its subscriber link is up.
async fn started_bus(url: &str, prefix: &str) -> (Arc<RedisBus>, Arc<Recorder>) {
    let bus = RedisBus::connect(url, prefix)
        .await
        .expect("redis bus connects");
    let heard = Arc::new(Recorder::default());
    bus.start(heard.clone());
    // The link comes up in the background; a confirmed wish (on a room no test uses)
    // proves it is up and hears session ends.
    bus.subscribe(RoomId(-1)).await.expect("link up");
    bus.unsubscribe(RoomId(-1)).await.expect("link up");
    (Arc::new(bus), heard)
}

/// The sender reaches Redis at `sender_url`, the receiver at `url`.
async fn redis_buses_at(url: &str, sender_url: &str) -> RedisBuses {
    let prefix = format!("natter-test-{:016x}:", rand::random::<u64>());
    let (sender, sender_heard) = started_bus(sender_url, &prefix).await;
    let (receiver, heard) = started_bus(url, &prefix).await;
    RedisBuses {
        url: url.to_owned(),
        prefix,
        sender,
        sender_heard,
        receiver,
        heard,
    }
}

/// A room event; with a `seq`, a new message's (its `rev` the same number).
fn room_event(room: i64, seq: Option<Seq>, frame: &'static [u8]) -> (BusEvent, Heard) {
    let order = seq.map(|seq| Order {
        rev: Rev::new(seq.get()).unwrap(),
        seq,
        new: true,
    });
    ordered_event(room, order, frame)
}

fn ordered_event(room: i64, order: Option<Order>, frame: &'static [u8]) -> (BusEvent, Heard) {
    let frame = Bytes::from_static(frame);
    let room = RoomId(room);
    (
        BusEvent::Room {
            room,
            order,
            frame: frame.clone(),
        },
        Heard::Room { room, order, frame },
    )
}

fn session_end(hash: &[u8]) -> (BusEvent, Heard) {
    let hash = Bytes::copy_from_slice(hash);
    (
        BusEvent::SessionEnded {
            token_hash: hash.clone(),
        },
        Heard::SessionEnded(hash),
    )
}

// ---- every adapter ----

async fn a_room_frame_reaches_a_subscriber_unchanged(pair: Pair) {
    pair.receiver.subscribe(RoomId(1)).await.unwrap();
    // Not only JSON: any bytes (NUL, non-UTF-8, multi-byte) travel unchanged.
    let (event, heard) = room_event(1, Seq::new(i64::MAX - 1), b"{\"t\":\"\xc3\xa9\"}\x00\xff");
    pair.sender.publish(event).await.unwrap();
    pair.heard.wait_for(&heard).await;
}

async fn a_frame_without_seq_keeps_no_seq(pair: Pair) {
    pair.receiver.subscribe(RoomId(2)).await.unwrap();
    let (event, heard) = room_event(2, None, b"{\"type\":\"member_joined\"}");
    pair.sender.publish(event).await.unwrap();
    pair.heard.wait_for(&heard).await;
    let (event, heard) = room_event(2, Seq::new(0), b"");
    pair.sender.publish(event).await.unwrap();
    pair.heard.wait_for(&heard).await;
    // A change of a message: its rev and its message's seq apart, and not new.
    let change = Order {
        rev: Rev::new(9).unwrap(),
        seq: Seq::new(3).unwrap(),
        new: false,
    };
    let (event, heard) = ordered_event(2, Some(change), b"{\"type\":\"message_updated\"}");
    pair.sender.publish(event).await.unwrap();
    pair.heard.wait_for(&heard).await;
}

async fn a_resync_reaches_a_subscriber(pair: Pair) {
    pair.receiver.subscribe(RoomId(3)).await.unwrap();
    pair.sender
        .publish(BusEvent::Resync { room: RoomId(3) })
        .await
        .unwrap();
    pair.heard.wait_for(&Heard::Resync(RoomId(3))).await;
}

async fn typing_reaches_a_subscriber(pair: Pair) {
    pair.receiver.subscribe(RoomId(4)).await.unwrap();
    for active in [true, false] {
        let event = BusEvent::Typing {
            room: RoomId(4),
            user: "bob".into(),
            active,
        };
        pair.sender.publish(event).await.unwrap();
        pair.heard
            .wait_for(&Heard::Typing(RoomId(4), "bob".into(), active))
            .await;
    }
}

async fn a_read_reaches_a_subscriber(pair: Pair) {
    pair.receiver.subscribe(RoomId(5)).await.unwrap();
    let frame = Bytes::from_static(b"{\"type\":\"read\",\"seq\":3}");
    let event = BusEvent::Read {
        room: RoomId(5),
        user: UserId(9),
        frame: frame.clone(),
    };
    pair.sender.publish(event).await.unwrap();
    pair.heard
        .wait_for(&Heard::Read(RoomId(5), UserId(9), frame))
        .await;
}

async fn a_session_end_reaches_every_instance(pair: Pair) {
    let (event, heard) = session_end(&[7; 32]);
    pair.sender.publish(event).await.unwrap();
    pair.heard.wait_for(&heard).await;
    pair.sender_heard.wait_for(&heard).await;
}

/// A process with no socket in the room yet may be letting one in: it must hear too.
async fn a_removal_reaches_every_instance_whatever_it_subscribes(pair: Pair) {
    let (room, user) = (RoomId(i64::MAX), UserId(-1));
    pair.sender
        .publish(BusEvent::MemberRemoved { room, user })
        .await
        .unwrap();
    let heard = Heard::MemberRemoved(room, user);
    pair.heard.wait_for(&heard).await;
    pair.sender_heard.wait_for(&heard).await;
}

// ---- Redis only ----

/// Redis delivers one publisher's messages to one subscriber in order, so once a later
/// marker (a session end, always subscribed) arrives, everything before it has arrived too.
async fn flush(buses: &RedisBuses) {
    let (event, heard) = session_end(format!("marker-{}", rand::random::<u64>()).as_bytes());
    buses.sender.publish(event).await.unwrap();
    buses.heard.wait_for(&heard).await;
}

fn rooms_heard(recorder: &Recorder) -> Vec<RoomId> {
    let mut rooms: Vec<RoomId> = recorder
        .heard()
        .into_iter()
        .filter_map(|h| match h {
            Heard::Room { room, .. } => Some(room),
            _ => None,
        })
        .collect();
    rooms.sort();
    rooms.dedup();
    rooms
}

async fn admin(url: &str) -> ::redis::aio::MultiplexedConnection {
    ::redis::Client::open(url)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .expect("admin connection")
}

/// The `id` of the client named `name` in `CLIENT LIST`, if it is connected.
async fn client_id(admin: &mut ::redis::aio::MultiplexedConnection, name: &str) -> Option<String> {
    let list: String = ::redis::cmd("CLIENT")
        .arg("LIST")
        .query_async(admin)
        .await
        .unwrap();
    list.lines().find_map(|line| {
        let field = |key: &str| {
            line.split(' ')
                .find_map(|f| f.strip_prefix(key)?.strip_prefix('='))
        };
        (field("name") == Some(name)).then(|| field("id").unwrap().to_owned())
    })
}

#[tokio::test]
#[ignore = "needs TEST_REDIS_URL"]
async fn redis_delivers_only_subscribed_rooms() {
    let buses = redis_buses().await;
    buses.receiver.subscribe(RoomId(1)).await.unwrap();
    buses.receiver.subscribe(RoomId(3)).await.unwrap();
    buses.receiver.unsubscribe(RoomId(3)).await.unwrap();
    for room in [1, 2, 3] {
        let (event, _) = room_event(room, Seq::new(1), b"{}");
        buses.sender.publish(event).await.unwrap();
    }
    flush(&buses).await;
    assert_eq!(rooms_heard(&buses.heard), vec![RoomId(1)]);
    // The sender subscribed nothing: it hears session ends only.
    assert_eq!(rooms_heard(&buses.sender_heard), vec![]);
}

#[tokio::test]
#[ignore = "needs TEST_REDIS_URL"]
async fn redis_drops_malformed_payloads_and_keeps_going() {
    let buses = redis_buses().await;
    buses.receiver.subscribe(RoomId(1)).await.unwrap();
    let mut admin = admin(&buses.url).await;
    let channel = format!("{}bus:room:1", buses.prefix);
    for garbage in [&b""[..], b"short", &[9; 20]] {
        ::redis::cmd("PUBLISH")
            .arg(&channel)
            .arg(garbage)
            .exec_async(&mut admin)
            .await
            .unwrap();
    }
    let (event, heard) = room_event(1, Seq::new(5), b"{}");
    buses.sender.publish(event).await.unwrap();
    buses.heard.wait_for(&heard).await;
    assert_eq!(buses.heard.heard(), vec![heard]);
}

/// Runs `calls` concurrently, polling each first in list order: a bus records a wish when
/// its call is first polled, so the list's order is the order of the calls.
async fn in_call_order<F: Future>(calls: Vec<F>) -> Vec<F::Output> {
    let mut calls: Vec<_> = calls.into_iter().map(|c| Box::pin(maybe_done(c))).collect();
    poll_fn(|cx| {
        let mut done = true;
        for call in &mut calls {
            done &= call.as_mut().poll(cx).is_ready();
        }
        if done {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    })
    .await;
    calls
        .iter_mut()
        .map(|call| call.as_mut().take_output().unwrap())
        .collect()
}

#[tokio::test]
#[ignore = "needs TEST_REDIS_URL"]
async fn redis_racing_subscribe_and_unsubscribe_ends_in_the_last_calls_state() {
    let buses = redis_buses().await;
    for round in 0..5u64 {
        // Per room, an alternating run of calls, all in flight at once (with every other
        // room's); the last in the list is the last call.
        let mut calls = Vec::new();
        let mut expected = Vec::new();
        for room in 1..=20i64 {
            let runs = 1 + (room as u64 * 7 + round * 3) % 6;
            let mut subscribe = (room as u64 + round).is_multiple_of(2);
            for _ in 0..runs {
                let bus = buses.receiver.clone();
                calls.push(async move {
                    if subscribe {
                        bus.subscribe(RoomId(room)).await
                    } else {
                        bus.unsubscribe(RoomId(room)).await
                    }
                });
                subscribe = !subscribe;
            }
            if !subscribe {
                expected.push(RoomId(room)); // the last call was a subscribe
            }
        }
        for result in in_call_order(calls).await {
            result.expect("redis answers");
        }

        let before = buses.heard.heard().len();
        for room in 1..=20 {
            let (event, _) = room_event(room, Seq::new(round as i64), b"{}");
            buses.sender.publish(event).await.unwrap();
        }
        flush(&buses).await;
        let mut heard: Vec<RoomId> = buses.heard.heard()[before..]
            .iter()
            .filter_map(|h| match h {
                Heard::Room { room, .. } => Some(*room),
                _ => None,
            })
            .collect();
        heard.sort();
        assert_eq!(heard, expected, "round {round}");
    }
}

#[tokio::test]
#[ignore = "needs TEST_REDIS_URL"]
async fn redis_resubscribes_and_reports_the_restored_link_after_its_subscriber_is_killed() {
    let buses = redis_buses().await;
    buses.receiver.subscribe(RoomId(1)).await.unwrap();
    let (event, heard) = room_event(1, Seq::new(1), b"before");
    buses.sender.publish(event).await.unwrap();
    buses.heard.wait_for(&heard).await;

    let mut admin = admin(&buses.url).await;
    let name = buses.receiver.subscriber_name();
    let id = client_id(&mut admin, &name)
        .await
        .expect("the subscriber is in CLIENT LIST under its name");
    ::redis::cmd("CLIENT")
        .arg("KILL")
        .arg("ID")
        .arg(&id)
        .exec_async(&mut admin)
        .await
        .unwrap();

    buses.heard.wait_for(&Heard::LinkRestored).await;
    // Resubscribed before link_restored: the room and session ends arrive again, with no
    // new subscribe call.
    let (event, heard) = room_event(1, Seq::new(2), b"after");
    buses.sender.publish(event).await.unwrap();
    buses.heard.wait_for(&heard).await;
    flush(&buses).await;
    let restored = buses
        .heard
        .heard()
        .iter()
        .filter(|h| **h == Heard::LinkRestored)
        .count();
    assert_eq!(restored, 1);
    assert_ne!(
        client_id(&mut admin, &name).await,
        Some(id),
        "a new connection"
    );
    // The sender's link was never touched.
    assert!(!buses.sender_heard.heard().contains(&Heard::LinkRestored));
}

#[tokio::test]
#[ignore = "needs TEST_REDIS_URL"]
async fn redis_dropping_the_bus_closes_its_subscriber() {
    let buses = redis_buses().await;
    buses.receiver.subscribe(RoomId(1)).await.unwrap();
    let name = buses.receiver.subscriber_name();
    assert_ne!(name, buses.sender.subscriber_name());
    let mut admin = admin(&buses.url).await;
    assert!(client_id(&mut admin, &name).await.is_some());
    let RedisBuses { receiver, .. } = buses;
    drop(receiver);
    // Bounded polling: the server notices the closed socket on its own schedule.
    let gone = tokio::time::timeout(WAIT, async {
        while client_id(&mut admin, &name).await.is_some() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(
        gone.is_ok(),
        "{name} still connected after the bus was dropped"
    );
}

#[tokio::test]
#[ignore = "needs TEST_REDIS_URL"]
async fn redis_a_publish_after_its_connection_was_killed_goes_out_on_a_fresh_one() {
    let buses = redis_buses().await;
    buses.receiver.subscribe(RoomId(1)).await.unwrap();
    let (event, heard) = room_event(1, Seq::new(1), b"before");
    buses.sender.publish(event).await.unwrap();
    buses.heard.wait_for(&heard).await;

    // What a Redis restart does to the publishing connection: the next command on it
    // meets a closed socket.
    let mut admin = admin(&buses.url).await;
    let name = buses.sender.publisher_name();
    let id = client_id(&mut admin, &name)
        .await
        .expect("the publisher is in CLIENT LIST under its name");
    ::redis::cmd("CLIENT")
        .arg("KILL")
        .arg("ID")
        .arg(&id)
        .exec_async(&mut admin)
        .await
        .unwrap();

    let (event, heard) = room_event(1, Seq::new(2), b"after");
    buses.sender.publish(event).await.expect("retried and sent");
    buses.heard.wait_for(&heard).await;
    assert_ne!(
        client_id(&mut admin, &name).await,
        Some(id),
        "a new connection"
    );
}

#[tokio::test]
#[ignore = "needs TEST_REDIS_URL"]
async fn redis_a_publish_that_cannot_be_sent_is_delivered_here_and_resyncs_the_room_everywhere() {
    let url = RedisPair::service_url();
    let info = ::redis::IntoConnectionInfo::into_connection_info(url.as_str()).unwrap();
    let proxy = natter_test_support::proxy::Proxy::start(info.addr().to_string()).await;
    // Only the sender's way to Redis goes through the proxy: the receiver's link never
    // drops, so it never resyncs by itself.
    let buses = redis_buses_at(&url, &format!("redis://{}", proxy.addr)).await;
    buses.receiver.subscribe(RoomId(1)).await.unwrap();

    proxy.cut();
    let (event, heard) = room_event(1, Seq::new(7), b"stored, not sent");
    let refused = buses.sender.publish(event).await;
    assert!(refused.is_err(), "Redis is out of reach");
    assert!(
        buses.sender_heard.heard().contains(&heard),
        "this process's listener got it anyway: {:?}",
        buses.sender_heard.heard()
    );

    proxy.restore();
    buses.heard.wait_for(&Heard::Resync(RoomId(1))).await;
    assert!(!buses.heard.heard().contains(&heard));
    assert!(!buses.heard.heard().contains(&Heard::LinkRestored));
    // And publishing works again.
    let (event, heard) = room_event(1, Seq::new(8), b"sent");
    buses.sender.publish(event).await.unwrap();
    buses.heard.wait_for(&heard).await;
}
