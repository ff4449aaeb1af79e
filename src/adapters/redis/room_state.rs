//! Presence and the message cache in Redis, shared by every natter process (CONTRACT §6).
//!
//! Every step that touches more than one key is one call of `room_state.lua` (EVALSHA,
//! loaded on first use), so it is atomic: a join and a last leave cannot interleave, and
//! the last leave deletes the room's cache in the same step that removes the member.
//!
//! # Keys (all under the prefix)
//!
//! | key | type | holds |
//! | --- | --- | --- |
//! | `room:{id}:members` | HASH | field `{instance}\|{user_id}\|{username}` → 1: one per process and user present |
//! | `room:{id}:users` | HASH | username → how many `members` fields name the user (the member list) |
//! | `room:{id}:messages` | ZSET | score `seq`, member the message as JSON: the newest `capacity` |
//! | `room:{id}:ready` | string | set once the cache was filled from the store |
//! | `rooms` | SET | ids of rooms with members (what the sweep walks) |
//! | `instances` | ZSET | process instance id → its last heartbeat (Redis `TIME`, ms) |
//!
//! The cache keys exist only while the members HASH does: the last leave deletes them, and
//! a room's first join deletes any left over from an earlier life of the room (a key that
//! outlived its members could have missed messages). Reads that need `ready` and the
//! entries (`latest`, `after`) are scripts too, so they see one state; `members` is one
//! `HKEYS` of `users`, and `join` pipelines that read behind its script (one round trip per
//! joiner). Joins and leaves keep `users` in step in O(1); a join used to scan the room,
//! and a storm of 1,000 joiners kept Redis busy for 0.7 s, now 0.13 s (BENCHMARKS.md).
//!
//! # Why the cache is never short
//!
//! `fill` adds the store's tail to what is cached (a union by `seq`), it does not replace
//! it. A send commits to the store and then calls `add`; the first joiner calls `join`,
//! then reads the store's tail, then `fill`. If a send's `add` ran before the HASH existed,
//! it did nothing, but its commit preceded the join, so the tail read after the join
//! contains it; if `add` ran after, the message is in the ZSET already and the union keeps
//! it. Entries are keyed by `seq` (an `add` replaces the entry with its score unless that
//! one is newer), so a message added twice, or by both paths, is harmless.
//!
//! # Why the cache is never stale
//!
//! An entry holds its message's current state (CONTRACT §10). `add`, `fill` and `update`
//! all keep, per `seq`, the state with the higher `rev`: the script decodes the one entry
//! already at that score (`cjson`) and compares. So a fill whose read of the store predates
//! an edit, or a change that reaches Redis after a newer one from another process, cannot
//! bring back an older state, nor a deleted message's text. A reply is cached without its
//! target's name and text (only its id and seq), so a target's edit or delete has no copy
//! here to catch up with; the chat rules resolve them from the store. `update` replaces only an
//! entry the cache holds, except while a fill is pending (members, not ready): then it is
//! kept, since the fill's read may predate the change, and the fill drops it if it is older
//! than the tail.
//!
//! # Crashes and lost data
//!
//! Each process has a random instance id and calls [`Presence::maintain`] every few
//! seconds, which (1) records its heartbeat in `instances`; (2) per room with local
//! members, makes this instance's fields exactly its local members (re-adding them after
//! Redis lost them, removing any a failed `leave` left) and extends every key of the room
//! to 3× the instance expiry, so if every process dies the keys expire by themselves
//! (within 60 s by default); (3) if some instance's heartbeat is older than the expiry
//! (20 s by default), removes that instance's fields from every room in `rooms`, deleting
//! the cache of rooms it emptied, and reports the users who are gone. The sweep script
//! re-checks the heartbeat and returns only users it removed itself, so two processes
//! sweeping at once do not both report them.
//!
//! A process's own changes to a room are ordered by striped async locks: one user's join
//! and leave in a room never overtake each other, joins of different users run side by
//! side, and the re-assertion in `maintain` excludes them all, so it never acts on a
//! stale view of its local members. The process registers its heartbeat in `connect`, so
//! its members are swept even if it dies before its first `maintain`.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use chrono::DateTime;
use rand::Rng;
use redis::aio::ConnectionManager;
use redis::{FromRedisValue, Script, ScriptInvocation};
use serde::{Deserialize, Serialize};

use super::connection::{connect_manager, deadline};
use crate::domain::{Message, Reaction, ReplyRef, Rev, RoomId, Seq, User, UserId};
use crate::ports::{Departure, Joined, MessageCache, Presence, Unavailable};

const DEFAULT_INSTANCE_EXPIRY: Duration = Duration::from_secs(20);
/// Striped per-room locks for this process's own presence changes.
const GATES: usize = 64;

pub struct RedisRoomState {
    conn: ConnectionManager,
    script: Script,
    prefix: String,
    capacity: usize,
    instance: String,
    expiry: Duration,
    /// This process's members: room → (user → username).
    local: Mutex<HashMap<RoomId, HashMap<UserId, String>>>,
    /// Per room (striped): joins and leaves share it, `reconcile` holds it alone.
    gates: Vec<tokio::sync::RwLock<()>>,
    /// Per room and user (striped): one user's join and leave in a room stay in order.
    user_gates: Vec<tokio::sync::Mutex<()>>,
}

/// A cached message: every field of [`Message`], times in microseconds. An entry written
/// before a field existed lacks it, so it does not decode and the store is read instead.
#[derive(Serialize, Deserialize)]
struct Entry {
    id: i64,
    room_id: i64,
    room_slug: String,
    seq: Seq,
    user_id: i64,
    username: String,
    body: String,
    client_id: Option<String>,
    sent_at_us: i64,
    rev: Rev,
    edited_at_us: Option<i64>,
    deleted_by: Option<String>,
    reply_to: Option<ReplyEntry>,
    /// `(emoji, users)`, in the message's order.
    reactions: Vec<(String, Vec<String>)>,
    mentions: Vec<String>,
}

/// A cached [`ReplyRef`]: only which message it answers, never that message's text
/// (see [`MessageCache`]). An entry of an earlier version that held more still decodes.
#[derive(Serialize, Deserialize)]
struct ReplyEntry {
    id: i64,
    seq: Seq,
}

fn encode(m: &Message) -> String {
    let entry = Entry {
        id: m.id,
        room_id: m.room_id.0,
        room_slug: m.room_slug.clone(),
        seq: m.seq,
        user_id: m.user_id.0,
        username: m.username.clone(),
        body: m.body.clone(),
        client_id: m.client_id.clone(),
        sent_at_us: m.sent_at.timestamp_micros(),
        rev: m.rev,
        edited_at_us: m.edited_at.map(|at| at.timestamp_micros()),
        deleted_by: m.deleted_by.clone(),
        reply_to: m.reply_to.as_ref().map(reply_entry),
        reactions: m
            .reactions
            .iter()
            .map(|r| (r.emoji.clone(), r.users.clone()))
            .collect(),
        mentions: m.mentions.clone(),
    };
    serde_json::to_string(&entry).expect("a message serializes")
}

fn reply_entry(r: &ReplyRef) -> ReplyEntry {
    ReplyEntry {
        id: r.id,
        seq: r.seq,
    }
}

/// `None` if an entry does not decode (written by another version): the caller then
/// reads the store, and its `fill` overwrites the entries by `seq`.
fn decode(entries: Vec<String>) -> Option<Vec<Message>> {
    entries
        .iter()
        .map(|raw| {
            let e: Entry = serde_json::from_str(raw).ok()?;
            Some(Message {
                id: e.id,
                room_id: RoomId(e.room_id),
                room_slug: e.room_slug,
                seq: e.seq,
                user_id: UserId(e.user_id),
                username: e.username,
                body: e.body,
                client_id: e.client_id,
                sent_at: DateTime::from_timestamp_micros(e.sent_at_us)?,
                rev: e.rev,
                edited_at: match e.edited_at_us {
                    Some(us) => Some(DateTime::from_timestamp_micros(us)?),
                    None => None,
                },
                deleted_by: e.deleted_by,
                reply_to: e.reply_to.map(|r| ReplyRef::unresolved(r.id, r.seq)),
                reactions: e
                    .reactions
                    .into_iter()
                    .map(|(emoji, users)| Reaction { emoji, users })
                    .collect(),
                mentions: e.mentions,
            })
        })
        .collect::<Option<Vec<_>>>()
        .or_else(|| {
            tracing::warn!("undecodable entry in the Redis message cache; reading the store");
            None
        })
}

impl RedisRoomState {
    /// `capacity`: messages kept per room (`CACHE_MESSAGES`). Registers this process's
    /// heartbeat, so its members are swept if it dies before its first `maintain`.
    pub async fn connect(
        url: &str,
        key_prefix: &str,
        capacity: usize,
    ) -> Result<RedisRoomState, Unavailable> {
        let state = RedisRoomState {
            conn: connect_manager(url).await?,
            script: Script::new(include_str!("room_state.lua")),
            prefix: key_prefix.to_owned(),
            capacity,
            instance: format!("{:016x}", rand::thread_rng().gen::<u64>()),
            expiry: DEFAULT_INSTANCE_EXPIRY,
            local: Mutex::new(HashMap::new()),
            gates: (0..GATES).map(|_| tokio::sync::RwLock::new(())).collect(),
            user_gates: (0..GATES).map(|_| tokio::sync::Mutex::new(())).collect(),
        };
        state.beat().await?;
        Ok(state)
    }

    /// How long a process may miss heartbeats before others remove its members (default
    /// 20 s); keys are kept alive for 3× this.
    pub fn with_instance_expiry(mut self, expiry: Duration) -> Self {
        self.expiry = expiry;
        self
    }

    fn ttl_ms(&self) -> u64 {
        3 * self.expiry.as_millis() as u64
    }

    fn room_key(&self, room: RoomId, what: &str) -> String {
        format!("{}room:{}:{what}", self.prefix, room.0)
    }

    fn field(&self, user: UserId, username: &str) -> String {
        format!("{}|{}|{username}", self.instance, user.0)
    }

    /// An invocation of operation `op` on `room`'s keys (ARGV 1–3: op, room id, key ttl).
    fn op(&self, op: &str, room: Option<RoomId>) -> ScriptInvocation<'_> {
        let mut call = self.script.prepare_invoke();
        call.key(format!("{}instances", self.prefix))
            .key(format!("{}rooms", self.prefix));
        if let Some(room) = room {
            call.key(self.room_key(room, "members"))
                .key(self.room_key(room, "messages"))
                .key(self.room_key(room, "ready"))
                .key(self.room_key(room, "users"));
        }
        call.arg(op).arg(room.map_or(0, |r| r.0)).arg(self.ttl_ms());
        call
    }

    async fn run<T: FromRedisValue>(&self, call: &ScriptInvocation<'_>) -> Result<T, Unavailable> {
        let mut conn = self.conn.clone();
        deadline(call.invoke_async(&mut conn)).await
    }

    /// Runs `call` and then `read` in one round trip (a pipeline, so `read` sees the
    /// script's effect). A pipeline does not load the script by itself: after a Redis
    /// restart the first try finds it missing, loads it and tries again.
    async fn run_then<T: FromRedisValue, U: FromRedisValue>(
        &self,
        call: &ScriptInvocation<'_>,
        read: redis::Cmd,
    ) -> Result<(T, U), Unavailable> {
        let mut conn = self.conn.clone();
        let mut pipe = redis::pipe();
        pipe.invoke_script(call).add_command(read);
        deadline(async {
            match pipe.query_async(&mut conn).await {
                Err(e)
                    if e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript) =>
                {
                    call.load_async(&mut conn).await?;
                    pipe.query_async(&mut conn).await
                }
                result => result,
            }
        })
        .await
    }

    /// Reads the usernames present in `room`, in no order (callers sort).
    fn members_cmd(&self, room: RoomId) -> redis::Cmd {
        redis::cmd("HKEYS").arg(self.room_key(room, "users")).take()
    }

    fn gate(&self, room: RoomId) -> &tokio::sync::RwLock<()> {
        &self.gates[room.0.rem_euclid(GATES as i64) as usize]
    }

    fn user_gate(&self, room: RoomId, user: UserId) -> &tokio::sync::Mutex<()> {
        let stripe = room.0.wrapping_mul(31).wrapping_add(user.0);
        &self.user_gates[stripe.rem_euclid(GATES as i64) as usize]
    }

    fn with_local<T>(
        &self,
        f: impl FnOnce(&mut HashMap<RoomId, HashMap<UserId, String>>) -> T,
    ) -> T {
        f(&mut self.local.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Records the heartbeat; returns the instances whose heartbeat expired.
    async fn beat(&self) -> Result<Vec<String>, Unavailable> {
        let mut call = self.op("beat", None);
        call.arg(&self.instance).arg(self.expiry.as_millis() as u64);
        self.run(&call).await
    }

    /// Makes this instance's fields in `room` exactly its local members; returns the users
    /// who left because of it (a `leave` that failed to reach Redis).
    async fn reconcile(&self, room: RoomId) -> Result<Vec<String>, Unavailable> {
        let _gate = self.gate(room).write().await;
        let Some(fields) = self.with_local(|local| {
            local.get(&room).map(|users| {
                users
                    .iter()
                    .map(|(id, name)| self.field(*id, name))
                    .collect::<Vec<_>>()
            })
        }) else {
            return Ok(Vec::new());
        };
        let mut call = self.op("reconcile", Some(room));
        call.arg(&self.instance).arg(&fields);
        let gone = self.run(&call).await?;
        if fields.is_empty() {
            self.with_local(|local| {
                if local.get(&room).is_some_and(|users| users.is_empty()) {
                    local.remove(&room);
                }
            });
        }
        Ok(gone)
    }

    /// A call of `add` or `update` (ARGV 4–7: capacity, seq, rev, entry).
    fn put_call(&self, op: &str, room: RoomId, message: &Message) -> ScriptInvocation<'_> {
        let mut call = self.op(op, Some(room));
        call.arg(self.capacity)
            .arg(message.seq.get())
            .arg(message.rev.get())
            .arg(encode(message));
        call
    }

    /// Removes the fields of `dead` instances from every room; returns who left.
    async fn sweep(&self, dead: &[String]) -> Result<Vec<Departure>, Unavailable> {
        let mut conn = self.conn.clone();
        let rooms: Vec<i64> = deadline(
            redis::cmd("SMEMBERS")
                .arg(format!("{}rooms", self.prefix))
                .query_async(&mut conn),
        )
        .await?;
        let expiry_ms = self.expiry.as_millis() as u64;
        let mut departures = Vec::new();
        for room in rooms.into_iter().map(RoomId) {
            let mut call = self.op("sweep", Some(room));
            call.arg(expiry_ms).arg(dead);
            let gone: Vec<String> = self.run(&call).await?;
            departures.extend(
                gone.into_iter()
                    .map(|username| Departure { room, username }),
            );
        }
        let mut call = self.op("forget", None);
        call.arg(expiry_ms).arg(dead);
        self.run::<()>(&call).await?;
        Ok(departures)
    }
}

#[async_trait]
impl Presence for RedisRoomState {
    async fn join(&self, room: RoomId, user: &User) -> Result<Joined, Unavailable> {
        // Joins of different users run concurrently (a join storm would otherwise queue
        // for one round trip each); each script is atomic in Redis.
        let _room = self.gate(room).read().await;
        let _user = self.user_gate(room, user.id).lock().await;
        self.with_local(|local| {
            local
                .entry(room)
                .or_default()
                .insert(user.id, user.username.clone())
        });
        let mut call = self.op("join", Some(room));
        call.arg(self.field(user.id, &user.username))
            .arg(&user.username);
        let (first, mut members): (bool, Vec<String>) =
            self.run_then(&call, self.members_cmd(room)).await?;
        members.sort_unstable();
        Ok(Joined { first, members })
    }

    async fn leave(&self, room: RoomId, user: &User) -> Result<bool, Unavailable> {
        let _room = self.gate(room).read().await;
        let _user = self.user_gate(room, user.id).lock().await;
        self.with_local(|local| local.get_mut(&room).map(|users| users.remove(&user.id)));
        let mut call = self.op("leave", Some(room));
        call.arg(self.field(user.id, &user.username))
            .arg(&user.username);
        // On failure the (possibly empty) local entry stays, and `maintain` removes the
        // field once Redis answers again.
        let gone = self.run(&call).await?;
        self.with_local(|local| {
            if local.get(&room).is_some_and(|users| users.is_empty()) {
                local.remove(&room);
            }
        });
        Ok(gone)
    }

    async fn members(&self, room: RoomId) -> Result<Vec<String>, Unavailable> {
        let mut conn = self.conn.clone();
        let mut members: Vec<String> =
            deadline(self.members_cmd(room).query_async(&mut conn)).await?;
        members.sort_unstable();
        Ok(members)
    }

    async fn online_counts(&self, rooms: &[RoomId]) -> Result<HashMap<RoomId, usize>, Unavailable> {
        if rooms.is_empty() {
            return Ok(HashMap::new());
        }
        let mut call = self.op("counts", None);
        for room in rooms {
            call.key(self.room_key(*room, "users"));
        }
        let counts: Vec<usize> = self.run(&call).await?;
        Ok(rooms
            .iter()
            .zip(counts)
            .filter(|(_, n)| *n > 0)
            .map(|(room, n)| (*room, n))
            .collect())
    }

    async fn ping(&self) -> Result<(), Unavailable> {
        let mut conn = self.conn.clone();
        deadline(redis::cmd("PING").query_async::<()>(&mut conn)).await
    }

    async fn maintain(&self) -> Result<Vec<Departure>, Unavailable> {
        let dead = self.beat().await?;
        let rooms: Vec<RoomId> = self.with_local(|local| local.keys().copied().collect());
        let mut departures = Vec::new();
        for room in rooms {
            let gone = self.reconcile(room).await?;
            departures.extend(
                gone.into_iter()
                    .map(|username| Departure { room, username }),
            );
        }
        if !dead.is_empty() {
            departures.extend(self.sweep(&dead).await?);
        }
        Ok(departures)
    }
}

#[async_trait]
impl MessageCache for RedisRoomState {
    async fn latest(
        &self,
        room: RoomId,
        limit: usize,
    ) -> Result<Option<Vec<Message>>, Unavailable> {
        let mut call = self.op("latest", Some(room));
        call.arg(limit);
        let entries: Option<Vec<String>> = self.run(&call).await?;
        Ok(entries.and_then(decode))
    }

    async fn after(
        &self,
        room: RoomId,
        after: Seq,
        limit: usize,
    ) -> Result<Option<Vec<Message>>, Unavailable> {
        let mut call = self.op("after", Some(room));
        call.arg(after.get()).arg(limit);
        let entries: Option<Vec<String>> = self.run(&call).await?;
        Ok(entries.and_then(decode))
    }

    async fn at(&self, room: RoomId, seqs: &[Seq]) -> Result<Option<Vec<Message>>, Unavailable> {
        let mut call = self.op("at", Some(room));
        let mut seqs = seqs.to_vec();
        seqs.sort_unstable();
        seqs.dedup();
        for seq in seqs {
            call.arg(seq.get());
        }
        let entries: Option<Vec<String>> = self.run(&call).await?;
        Ok(entries.and_then(decode))
    }

    async fn fill(&self, room: RoomId, tail: &[Message]) -> Result<(), Unavailable> {
        let mut call = self.op("fill", Some(room));
        call.arg(self.capacity);
        for message in tail {
            call.arg(message.seq.get())
                .arg(message.rev.get())
                .arg(encode(message));
        }
        self.run::<()>(&call).await
    }

    async fn add(&self, room: RoomId, message: &Message) -> Result<(), Unavailable> {
        let call = self.put_call("add", room, message);
        self.run::<()>(&call).await
    }

    async fn update(&self, room: RoomId, message: &Message) -> Result<(), Unavailable> {
        let call = self.put_call("update", room, message);
        self.run::<()>(&call).await
    }
}
