//! Joining and leaving a room: presence, `member_joined`/`member_left`, and the history a
//! joiner gets (CONTRACT §6: the first joiner fills the cache, later joiners read it, the
//! last leaver's presence removal deletes it).
//!
//! Order that loses nothing: attach to the hub and subscribe on the bus (confirmed) →
//! presence → read history → the socket sends `history`, then live frames with a `seq`
//! above the history's last. A message is either in what the joiner read, or published
//! after the joiner was listening.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::{broadcast, watch};

use super::hub::{Hub, RoomChannel};
use super::messages::{changes_after, Updates, RESUME_MAX};
use super::{store_call, AuthSession, ChatError, CloseReason, Delivery, Entry, SharedFrame};
use crate::domain::{HistoryRange, Message, ReplyRef, Rev, Room, RoomId, Seq, User};
use crate::ports::{Bus, BusEvent, Departure, MessageCache, Presence, Store};
use crate::protocol::ServerFrame;
use crate::telemetry::Metrics;

/// Who is in which room: joining and leaving, presence and its announcements, and the
/// history a joiner gets.
pub struct Visits {
    store: Arc<dyn Store>,
    cache: Arc<dyn MessageCache>,
    presence: Arc<dyn Presence>,
    bus: Arc<dyn Bus>,
    hub: Arc<Hub>,
    metrics: Metrics,
    /// Messages a joiner without `?since=` gets.
    history_on_join: usize,
    /// Messages the first joiner reads from the store into the cache.
    cache_messages: usize,
}

/// A socket's visit of a room, from [`Visits::join`] until [`Visits::leave`].
pub struct Visit {
    pub room: Room,
    pub user: User,
    /// Usernames online in the room, the joiner included, sorted.
    pub members: Vec<String>,
    pub history: Vec<Message>,
    /// More than [`RESUME_MAX`] messages were missed; the client should page on.
    pub truncated: bool,
    /// The joiner's `?since=`, lowered to the room's last `seq` if it was above it
    /// (CONTRACT §7a): live messages after it are the client's.
    pub since: Option<Seq>,
    /// With `?since=SEQ&rev=R`: what changed after `R` among the messages up to `SEQ`,
    /// sent after the history (CONTRACT §10).
    pub updates: Option<Updates>,
    /// Who was typing in the room when the joiner arrived (CONTRACT §11), sorted; later
    /// changes come with the deliveries.
    pub typing: Vec<String>,
    /// Live frames for the room.
    pub deliveries: broadcast::Receiver<Delivery>,
    /// Becomes `Some` when the server must close the socket.
    pub closed: watch::Receiver<Option<CloseReason>>,
    /// The user's latest `read` frame in the room (CONTRACT §11), as their marker moves.
    pub reads: watch::Receiver<Option<Arc<SharedFrame>>>,
    session: Bytes,
    connection: u64,
    channel: Arc<RoomChannel>,
}

impl Visits {
    pub(super) fn new(
        ports: &super::Ports,
        hub: Arc<Hub>,
        settings: &super::ChatSettings,
        metrics: Metrics,
    ) -> Visits {
        Visits {
            store: ports.store.clone(),
            // The one room-state adapter under each of its two roles.
            cache: ports.room_state.clone(),
            presence: ports.room_state.clone(),
            bus: ports.bus.clone(),
            hub,
            metrics,
            history_on_join: settings.history_on_join,
            cache_messages: settings.cache_messages,
        }
    }

    /// Joins the room `entry` (from [`Rooms::enter`](super::Rooms::enter)) lets the
    /// session's user into.
    pub async fn join(
        &self,
        session: &AuthSession,
        mut entry: Entry,
        since: Option<Seq>,
        rev: Option<Rev>,
    ) -> Result<Visit, ChatError> {
        entry.start_recording();
        let user = session.user.clone();
        let access = entry.access.clone();
        let room = access.room;
        let attachment = self
            .hub
            .attach(&room, user.id, &session.token_hash, access.checked_at);
        // After the attach: a change from here on is delivered as well, never lost.
        let typing = self.hub.typing_now(room.id);
        let mut visit = Visit {
            room,
            user,
            members: Vec::new(),
            history: Vec::new(),
            truncated: false,
            since,
            updates: None,
            typing,
            deliveries: attachment.receiver,
            closed: attachment.closed,
            reads: attachment.reads,
            session: session.token_hash.clone(),
            connection: attachment.connection,
            channel: attachment.channel,
        };
        self.metrics.ws_connections.inc();
        let entered = self
            .enter(&mut visit, attachment.first_for_user, since, rev)
            .await;
        match entered {
            Ok(()) => Ok(visit),
            Err(e) => {
                self.leave(visit).await;
                Err(e)
            }
        }
    }

    async fn enter(
        &self,
        visit: &mut Visit,
        first_for_user: bool,
        since: Option<Seq>,
        rev: Option<Rev>,
    ) -> Result<(), ChatError> {
        let room = visit.room.clone();
        visit
            .channel
            .ready
            .get_or_try_init(|| async {
                self.bus.subscribe(room.id).await?;
                // The rev first: a message stored between the two reads then has a rev
                // the hub still waits for (a seq read first would let the hub skip it).
                let last_rev = store_call(self.store.last_rev(room.id)).await?;
                let last_seq = store_call(self.store.last_seq(room.id)).await?;
                self.hub.start_ordering(room.id, last_rev, last_seq);
                Ok::<_, ChatError>(())
            })
            .await?;

        visit.members = if first_for_user {
            let joined = self.presence.join(room.id, &visit.user).await?;
            if joined.first {
                self.announce(
                    room.id,
                    ServerFrame::MemberJoined {
                        user: visit.user.username.clone(),
                    },
                )
                .await;
            }
            joined.members
        } else {
            self.presence.members(room.id).await?
        };

        let (history, truncated) = match since {
            Some(since) => {
                // Read before the history: a message stored after this has a higher `seq`
                // than the clamp, so it is in the history or arrives live, never skipped.
                let last = store_call(self.store.last_seq(room.id)).await?;
                let since = since.min(last);
                visit.since = Some(since);
                if let Some(rev) = rev {
                    visit.updates = Some(changes_after(&*self.store, &room, rev, since).await?);
                }
                self.history_since(&room, since).await?
            }
            None => (self.history_on_join(visit).await?, false),
        };
        visit.history = history;
        visit.truncated = truncated;
        Ok(())
    }

    async fn history_on_join(&self, visit: &Visit) -> Result<Vec<Message>, ChatError> {
        let room = &visit.room;
        let wanted = self.history_on_join;
        if let Some(cached) = self.cache.latest(room.id, wanted).await? {
            self.count_history_load("cache");
            return self.with_replies_resolved(room, cached).await;
        }
        // Cold cache: one joiner per process reads the store and fills; the rest wait and read the cache.
        let _fill = visit.channel.fill.lock().await;
        if let Some(cached) = self.cache.latest(room.id, wanted).await? {
            self.count_history_load("cache");
            return self.with_replies_resolved(room, cached).await;
        }
        let limit = self.cache_messages as u32;
        let tail = store_call(self.store.messages(room, HistoryRange::Latest, limit)).await?;
        self.cache.fill(room.id, &tail).await?;
        self.count_history_load("store");
        let skip = tail.len().saturating_sub(wanted);
        Ok(tail[skip..].to_vec())
    }

    /// Every message after `since`, up to [`RESUME_MAX`].
    async fn history_since(
        &self,
        room: &Room,
        since: Seq,
    ) -> Result<(Vec<Message>, bool), ChatError> {
        let mut messages = match self.cache.after(room.id, since, RESUME_MAX + 1).await? {
            Some(cached) => {
                self.count_history_load("cache");
                self.with_replies_resolved(room, cached).await?
            }
            None => {
                self.count_history_load("store");
                let limit = RESUME_MAX as u32 + 1;
                store_call(self.store.messages(room, HistoryRange::After(since), limit)).await?
            }
        };
        let truncated = messages.len() > RESUME_MAX;
        messages.truncate(RESUME_MAX);
        Ok((messages, truncated))
    }

    /// `typing` from the visitor (CONTRACT §11): every process hears it; typing is never
    /// stored.
    pub async fn typing(&self, visit: &Visit, active: bool) {
        self.publish_typing(visit.room.id, &visit.user, active)
            .await;
    }

    /// Takes `user` off the room's typing list if they are on it (a send of theirs was
    /// accepted, or their last connection closed).
    pub async fn stopped_typing(&self, room: RoomId, user: &User) {
        if self.hub.is_typing(room, &user.username) {
            self.publish_typing(room, user, false).await;
        }
    }

    async fn publish_typing(&self, room: RoomId, user: &User, active: bool) {
        let event = BusEvent::Typing {
            room,
            user: user.username.clone(),
            active,
        };
        if let Err(e) = self.bus.publish(event).await {
            tracing::debug!(error = %e, "a typing change did not reach every process");
        }
    }

    /// Cached replies come without their targets' names and text (`MessageCache`): a
    /// target read in the same batch (a reply mostly answers something recent) is taken
    /// from there, as the cache holds it now; the others from the cache in one more call
    /// (`at`), and only those older than the cache from the store, in one query. Either
    /// way a reply shows its target as it is.
    async fn with_replies_resolved(
        &self,
        room: &Room,
        mut messages: Vec<Message>,
    ) -> Result<Vec<Message>, ChatError> {
        if !messages.iter().any(|m| m.reply_to.is_some()) {
            return Ok(messages);
        }
        let read: HashMap<i64, &Message> = messages.iter().map(|m| (m.id, m)).collect();
        let mut refs: HashMap<i64, ReplyRef> = HashMap::new();
        let mut elsewhere: Vec<(i64, Seq)> = Vec::new();
        for to in messages.iter().filter_map(|m| m.reply_to.as_ref()) {
            match read.get(&to.id) {
                Some(target) => {
                    refs.insert(to.id, ReplyRef::to(target));
                }
                None => elsewhere.push((to.id, to.seq)),
            }
        }
        if !elsewhere.is_empty() {
            let seqs: Vec<Seq> = elsewhere.iter().map(|&(_, seq)| seq).collect();
            for target in self.cache.at(room.id, &seqs).await?.unwrap_or_default() {
                refs.insert(target.id, ReplyRef::to(&target));
            }
            elsewhere.retain(|(id, _)| !refs.contains_key(id));
        }
        let mut elsewhere: Vec<i64> = elsewhere.into_iter().map(|(id, _)| id).collect();
        elsewhere.sort_unstable();
        elsewhere.dedup();
        if !elsewhere.is_empty() {
            let stored = store_call(self.store.reply_refs(room, &elsewhere)).await?;
            refs.extend(stored.into_iter().map(|to| (to.id, to)));
        }
        for to in messages.iter_mut().filter_map(|m| m.reply_to.as_mut()) {
            if let Some(now) = refs.get(&to.id) {
                *to = now.clone();
            }
        }
        Ok(messages)
    }

    fn count_history_load(&self, source: &str) {
        self.metrics
            .history_loads
            .with_label_values(&[source])
            .inc();
    }

    /// Ends a visit: the user's last connection here leaves presence; the room's last
    /// local connection unsubscribes this process from it.
    pub async fn leave(&self, visit: Visit) {
        let room = visit.room;
        self.metrics.ws_connections.dec();
        let detached = self
            .hub
            .detach(room.id, visit.user.id, &visit.session, visit.connection);
        if detached.last_for_user {
            match self.presence.leave(room.id, &visit.user).await {
                Ok(true) => {
                    // Their last connection anywhere: off the typing list at once.
                    self.stopped_typing(room.id, &visit.user).await;
                    self.announce(
                        room.id,
                        ServerFrame::MemberLeft {
                            user: visit.user.username.clone(),
                        },
                    )
                    .await
                }
                Ok(false) => {}
                Err(e) => tracing::warn!(error = %e, "presence unavailable on leave"),
            }
        }
        if detached.room_empty && !self.hub.has_local_members(room.id) {
            if let Err(e) = self.bus.unsubscribe(room.id).await {
                tracing::warn!(error = %e, "could not unsubscribe from a room");
            }
            // A joiner that arrived while this unsubscribe was on its way may have
            // subscribed first; the bus keeps the last call, so subscribe again for it.
            if self.hub.has_local_members(room.id) {
                if let Err(e) = self.bus.subscribe(room.id).await {
                    tracing::warn!(error = %e, "could not resubscribe to a room");
                }
            }
        }
    }

    /// Presence heartbeats, and the removal of members of processes that died (announced
    /// as `member_left`).
    pub(super) async fn maintain(&self) {
        match self.presence.maintain().await {
            Ok(departures) => {
                for departure in departures {
                    self.announce_departure(departure).await;
                }
            }
            Err(e) => tracing::warn!(error = %e, "presence upkeep failed"),
        }
    }

    /// A user whose process died without saying so (found by presence upkeep) has left.
    async fn announce_departure(&self, departure: Departure) {
        let frame = ServerFrame::MemberLeft {
            user: departure.username,
        };
        self.announce(departure.room, frame).await;
    }

    async fn announce(&self, room: RoomId, frame: ServerFrame) {
        let event = BusEvent::Room {
            room,
            order: None,
            frame: Bytes::from(frame.to_json()),
        };
        if let Err(e) = self.bus.publish(event).await {
            tracing::warn!(error = %e, "could not announce a presence change");
        }
    }
}
