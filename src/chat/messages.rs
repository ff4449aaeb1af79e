//! Sending and reading messages.
//!
//! A send goes: validate → resend? (answer with the stored message, no limit) → rate
//! limiter → store (durable) → cache → bus. Ack and fan-out happen only after the commit.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;

use super::budget::Budget;
use super::limiter::Limiter;
use super::{store_call, ChatError, Limits};
use chrono::Utc;

use super::access::RoomAccess;
use crate::domain::{
    ClientId, Emoji, HistoryRange, HistoryRequest, Message, MessageBody, NewMessage, ReplyRef, Rev,
    Room, Seq, User, UserId,
};
use crate::ports::{Bus, BusEvent, Changed, MessageCache, MessageChange, Order, Rule, Store};
use crate::protocol::{MessageView, ServerFrame};
use crate::telemetry::Metrics;

/// Sending and reading messages: the store, the cache, the send limiter and the bus.
pub struct Messages {
    store: Arc<dyn Store>,
    cache: Arc<dyn MessageCache>,
    bus: Arc<dyn Bus>,
    limiter: Limiter,
    /// [`Limits::sends`].
    sends: Rule,
    /// [`Limits::changes`].
    changes: Rule,
    /// [`Limits::edit_window`].
    edit_window: Duration,
    /// REST history reads per user (CONTRACT §7a).
    history_reads: Budget<UserId>,
    /// Stored messages and changes the cache did not take (its service was down); retried
    /// by [`Messages::retry_uncached`] so an active room's cache keeps no hole and no state
    /// older than the store's (a deleted text included).
    uncached: Mutex<Vec<(CacheWrite, Message)>>,
    metrics: Metrics,
}

/// The answer to an accepted send: the message as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sent {
    pub message: Message,
    /// `false` for a resend of a message already stored (nothing new was stored).
    pub fresh: bool,
}

/// What a user asks to change of a message (CONTRACT §10).
#[derive(Debug, Clone, Copy)]
pub enum Change<'a> {
    Edit { body: &'a str },
    Delete,
    React { emoji: &'a str },
    Unreact { emoji: &'a str },
}

/// What the cache is to do with a stored message.
#[derive(Debug, Clone, Copy)]
enum CacheWrite {
    /// A new message: [`MessageCache::add`].
    Add,
    /// A changed one: [`MessageCache::update`].
    Update,
}

/// The answer to `updates` (CONTRACT §10): the current state of the messages changed
/// after a `rev`, each once, in `rev` order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Updates {
    pub messages: Vec<Message>,
    /// More changed than [`UPDATES_MAX`]: the client asks again after `rev`.
    pub truncated: bool,
    /// The `rev` the client has reached with these.
    pub rev: Rev,
}

/// Most messages one `updates` answer holds.
pub const UPDATES_MAX: usize = 1000;

/// The messages of `room` changed after `after` whose `seq` is at most `up_to`.
pub(super) async fn changes_after(
    store: &dyn Store,
    room: &Room,
    after: Rev,
    up_to: Seq,
) -> Result<Updates, ChatError> {
    // Read first: a change committed after it is in the list or arrives live.
    let current = store_call(store.last_rev(room.id)).await?;
    let wanted = UPDATES_MAX as u32 + 1;
    let mut messages = store_call(store.changes(room, after, up_to, wanted)).await?;
    let truncated = messages.len() > UPDATES_MAX;
    messages.truncate(UPDATES_MAX);
    let listed = messages.iter().map(|m| m.rev).max();
    let rev = match (truncated, listed) {
        (true, Some(last)) => last,
        (_, listed) => listed.unwrap_or(after).max(current).max(after),
    };
    Ok(Updates {
        messages,
        truncated,
        rev,
    })
}

/// Most failed cache additions kept for another try.
const UNCACHED_MAX: usize = 10_000;
/// Most messages a resume (`?since=`) returns before saying `truncated`.
pub const RESUME_MAX: usize = 1000;

/// The answer to a send whose `(user, client_id)` is already stored: that message when
/// it is the same message again, a refusal when the `client_id` names another message
/// (acking it would say the new text was stored when it was dropped).
fn resent(stored: Message, room: &Room, body: &MessageBody) -> Result<Sent, ChatError> {
    if stored.room_id == room.id && stored.body == body.as_str() {
        Ok(Sent {
            message: stored,
            fresh: false,
        })
    } else {
        Err(ChatError::ClientIdReused)
    }
}

impl Messages {
    pub(super) fn new(ports: &super::Ports, limits: &Limits, metrics: Metrics) -> Messages {
        Messages {
            store: ports.store.clone(),
            cache: ports.room_state.clone(),
            bus: ports.bus.clone(),
            limiter: Limiter::new(ports),
            sends: limits.sends,
            changes: limits.changes,
            edit_window: limits.edit_window,
            history_reads: Budget::new(limits.history_reads_per_second, Duration::from_secs(1)),
            uncached: Mutex::new(Vec::new()),
            metrics,
        }
    }

    /// Stores `body` as `user`'s message in `room` (answering the message `reply_to`, which
    /// must be of the same room) and fans it out; identity and room come from the
    /// caller's session and socket, never from the frame.
    pub async fn send(
        &self,
        user: &User,
        room: &Room,
        body: &str,
        client_id: Option<&str>,
        reply_to: Option<i64>,
    ) -> Result<Sent, ChatError> {
        let body = MessageBody::parse(body).map_err(ChatError::InvalidBody)?;
        let client_id = client_id
            .map(ClientId::parse)
            .transpose()
            .map_err(|e| ChatError::InvalidFrame(e.to_string()))?;
        let reply_to = match reply_to {
            None => None,
            Some(id) => match store_call(self.store.message(room, id)).await? {
                Some(target) => Some(ReplyRef::to(&target)),
                None => return Err(ChatError::InvalidReply),
            },
        };

        // A resend is not limited again. Most sends are not resends, so the store is asked
        // only when the limiter refuses; a resend that got a slot gives it back below.
        let granted = match self.limiter.acquire(&self.sends, user.id).await {
            Ok(admitted) => admitted,
            Err(refused @ ChatError::RateLimited { .. }) => {
                if let Some(client_id) = &client_id {
                    let stored = self.store.find_by_client_id(user.id, client_id.as_str());
                    if let Some(stored) = store_call(stored).await? {
                        return resent(stored, room, &body);
                    }
                }
                self.metrics.rate_limited.inc();
                return Err(refused);
            }
            Err(e) => return Err(e),
        };

        // Only a send with a client_id can come back as an earlier message to compare with.
        let sent_body = client_id.as_ref().map(|_| body.clone());
        let new = NewMessage {
            room: room.clone(),
            user: user.clone(),
            body,
            client_id,
            reply_to,
        };
        let appended = match store_call(self.store.append_message(new)).await {
            Ok(appended) => appended,
            Err(e) => {
                granted.release().await;
                return Err(e);
            }
        };
        if !appended.fresh {
            // A resend (or a reused client_id): nothing was stored; the slot goes back.
            granted.release().await;
            return match &sent_body {
                Some(body) => resent(appended.message, room, body),
                None => Err(ChatError::Unavailable(
                    "the store matched a send without a client_id to an earlier one".into(),
                )),
            };
        }
        self.metrics.messages.inc();
        self.publish_message(&appended.message).await;
        Ok(Sent {
            message: appended.message,
            fresh: true,
        })
    }

    /// Cache, then bus: a joiner either read the message from the cache or store, or hears it.
    async fn publish_message(&self, message: &Message) {
        self.cache_write(CacheWrite::Add, message).await;
        self.fan_out(message, true).await;
    }

    /// Publishes a stored message (`new`) or a change of one to every process, in the
    /// room's `rev` order.
    async fn fan_out(&self, message: &Message, new: bool) {
        let view = MessageView::from(message);
        let frame = if new {
            ServerFrame::Message(view)
        } else {
            ServerFrame::MessageUpdated(view)
        };
        let event = BusEvent::Room {
            room: message.room_id,
            order: Some(Order {
                rev: message.rev,
                seq: message.seq,
                new,
            }),
            frame: Bytes::from(frame.to_json()),
        };
        if let Err(e) = self.bus.publish(event).await {
            // Stored and acked; members get it through `history`/`updates` when they
            // notice the gap.
            tracing::warn!(error = %e, "stored but not fanned out");
        }
    }

    /// Changes message `id` of the room `access` lets `user` into, and answers with its
    /// current state: edits by the author only (within the edit window), deletes by the
    /// author or the room's owner, moderators and admins, reactions by anyone in the room.
    /// Asking for what is already so (the same body, a reaction there or absent) changes
    /// nothing and answers the message as it is.
    pub async fn change(
        &self,
        user: &User,
        access: &RoomAccess,
        id: i64,
        change: Change<'_>,
    ) -> Result<Message, ChatError> {
        let room = &access.room;
        let body = match change {
            Change::Edit { body } => {
                Some(MessageBody::parse(body).map_err(ChatError::InvalidBody)?)
            }
            _ => None,
        };
        let emoji = match change {
            Change::React { emoji } | Change::Unreact { emoji } => {
                Some(Emoji::parse(emoji).map_err(ChatError::InvalidEmoji)?)
            }
            _ => None,
        };
        let target = store_call(self.store.message(room, id))
            .await?
            .ok_or(ChatError::UnknownMessage)?;
        if target.is_deleted() {
            return Err(ChatError::MessageDeleted);
        }
        let own = target.user_id == user.id;
        let change = match (change, &body, &emoji) {
            (Change::Edit { .. }, Some(body), _) => {
                if !own {
                    return Err(ChatError::Forbidden("only its author edits a message"));
                }
                let now = Utc::now();
                let sent_ago = (now - target.sent_at).to_std().unwrap_or_default();
                if !self.edit_window.is_zero() && sent_ago > self.edit_window {
                    return Err(ChatError::EditWindowPassed);
                }
                MessageChange::Edit { body, at: now }
            }
            (Change::Delete, _, _) => {
                if !own && !access.moderates() {
                    return Err(ChatError::Forbidden(
                        "only its author, the room's owner and moderators delete a message",
                    ));
                }
                MessageChange::Delete { by: user.id }
            }
            (Change::React { .. }, _, Some(emoji)) => MessageChange::React {
                user: user.id,
                emoji,
            },
            (Change::Unreact { .. }, _, Some(emoji)) => MessageChange::Unreact {
                user: user.id,
                emoji,
            },
            _ => unreachable!("each change's input was parsed above"),
        };
        // The slot is kept whatever the store answers: the limit counts requests.
        let _counted = self.limiter.acquire(&self.changes, user.id).await?;
        match store_call(self.store.change_message(room, id, change)).await? {
            Changed::Changed(message) => {
                self.cache_write(CacheWrite::Update, &message).await;
                self.fan_out(&message, false).await;
                Ok(message)
            }
            Changed::Unchanged(message) => Ok(message),
            Changed::UnknownMessage => Err(ChatError::UnknownMessage),
            Changed::Deleted => Err(ChatError::MessageDeleted),
            Changed::TooManyReactions => Err(ChatError::TooManyReactions),
        }
    }

    /// Writes a stored message or change to the cache; keeps it for another try when the
    /// cache's service is down.
    async fn cache_write(&self, write: CacheWrite, message: &Message) {
        if let Err(e) = self.try_cache_write(write, message).await {
            tracing::warn!(error = %e, "stored but not cached; will retry");
            self.uncached
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push((write, message.clone()));
        }
    }

    async fn try_cache_write(
        &self,
        write: CacheWrite,
        message: &Message,
    ) -> Result<(), crate::ports::Unavailable> {
        match write {
            CacheWrite::Add => self.cache.add(message.room_id, message).await,
            CacheWrite::Update => self.cache.update(message.room_id, message).await,
        }
    }

    /// Caches what [`Self::cache_write`] could not; keeps what still fails.
    pub(super) async fn retry_uncached(&self) {
        let waiting = std::mem::take(&mut *self.uncached.lock().unwrap_or_else(|e| e.into_inner()));
        let mut failed = Vec::new();
        for (write, message) in waiting {
            if self.try_cache_write(write, &message).await.is_err() {
                failed.push((write, message));
            }
        }
        if !failed.is_empty() {
            // Bounded: a long outage must not grow memory; a restarted Redis has no cache to
            // repair anyway (the next joiner fills it from the store).
            failed.truncate(UNCACHED_MAX);
            self.uncached
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .extend(failed);
        }
    }

    /// Every change in `room` after `after` (the `updates` frame).
    pub async fn updates(&self, room: &Room, after: Rev) -> Result<Updates, ChatError> {
        changes_after(&*self.store, room, after, Seq::MAX).await
    }

    /// [`Self::history`] for `user` over HTTP, within their per-second budget.
    pub async fn read_history(
        &self,
        user: &User,
        room: &Room,
        request: HistoryRequest,
    ) -> Result<(Vec<Message>, bool), ChatError> {
        self.history_reads
            .take(user.id)
            .map_err(|retry_after| ChatError::RateLimited { retry_after })?;
        self.history(room, request).await
    }

    /// A page of history, oldest first; `truncated` when more messages lie beyond it.
    pub async fn history(
        &self,
        room: &Room,
        request: HistoryRequest,
    ) -> Result<(Vec<Message>, bool), ChatError> {
        let (range, limit) = (request.range(), request.limit());
        let mut messages = store_call(self.store.messages(room, range, limit + 1)).await?;
        let truncated = messages.len() > limit as usize;
        if truncated {
            match range {
                HistoryRange::After(_) => messages.truncate(limit as usize),
                _ => {
                    messages.remove(0);
                }
            }
        }
        Ok((messages, truncated))
    }
}
