//! A store in the process's memory: the reference [`Store`]. The port suite holds it to
//! the same behaviours as the SQLite and PostgreSQL stores, and the chat rules' unit tests
//! run on it (no file, no server). Nothing survives the process, so `natter serve` never
//! uses it.

use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard};

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::domain::{
    mentioned_keys, Attention, HistoryRange, Message, NewMessage, Reaction, ReplyRef, Rev, Role,
    Room, RoomId, RoomKind, RoomScope, RoomSummary, Seq, Slug, User, UserId, Username,
};
use crate::ports::{
    Added, Appended, BanRecord, Changed, DmPair, MemberRecord, MessageChange, NewRoom,
    SessionRecord, Standing, Store, StoreError, MAX_EMOJI_PER_MESSAGE,
};

/// `Debug` shows everything it holds: a test looks there for text that must be gone.
#[derive(Default, Debug)]
pub struct MemoryStore {
    state: Mutex<State>,
    /// History reads (`messages`, `changes`) never answer: for tests of what the rules do
    /// with a stalled store.
    history_stalled: AtomicBool,
}

#[derive(Default, Debug)]
struct State {
    /// Ids are positions + 1, as a database's sequences would give them.
    users: Vec<Account>,
    sessions: HashMap<Vec<u8>, (UserId, DateTime<Utc>)>,
    rooms: Vec<RoomRow>,
    /// Every message, in id order (id = position + 1).
    messages: Vec<StoredMessage>,
    /// `(user, client_id)` → position in `messages`: a client_id is one message per user.
    by_client_id: HashMap<(UserId, String), usize>,
    memberships: HashMap<(RoomId, UserId), Role>,
    /// Each member's read marker (CONTRACT §11), kept with `memberships`.
    read_seqs: HashMap<(RoomId, UserId), Seq>,
    /// `(room, banned user)` → who banned them, and when.
    bans: HashMap<(RoomId, UserId), (UserId, DateTime<Utc>)>,
}

#[derive(Debug)]
struct Account {
    user: User,
    key: String,
    password_hash: String,
}

#[derive(Debug)]
struct RoomRow {
    room: Room,
    last_rev: Rev,
    /// A DM's [`DmPair::key`].
    dm_key: Option<String>,
    created_at: DateTime<Utc>,
    last_message_at: Option<DateTime<Utc>>,
    /// Positions in `State::messages`, in `seq` order (`seq` = position here + 1).
    messages: Vec<usize>,
}

/// A message as this store keeps it: what a reader sees of it depends on other rows (its
/// reply's target, the reactors' names), so those are kept as references and resolved on
/// every read, as the SQL stores' joins do.
#[derive(Debug)]
struct StoredMessage {
    /// Its current state, but for `reply_to` and `reactions` (always empty here).
    message: Message,
    /// The position of the message it replies to.
    reply_to: Option<usize>,
    /// `(user, emoji)`, in the order they were made.
    reactions: Vec<(UserId, String)>,
    /// Who it mentions (CONTRACT §11).
    mentions: Vec<UserId>,
}

/// Now, to the millisecond: what the SQL stores keep.
fn now() -> DateTime<Utc> {
    to_ms(Utc::now())
}

fn to_ms(time: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(time.timestamp_millis()).unwrap_or(time)
}

/// The position of message `id` (id = position + 1).
fn position_of(id: i64) -> Option<usize> {
    usize::try_from(id.checked_sub(1)?).ok()
}

impl MemoryStore {
    pub fn new() -> MemoryStore {
        MemoryStore::default()
    }

    /// From now on, [`Store::messages`] never answers (a store that went silent).
    pub fn stall_history_reads(&self) {
        self.history_stalled.store(true, Ordering::Relaxed);
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl State {
    fn room(&self, id: RoomId) -> Option<&RoomRow> {
        usize::try_from(id.0 - 1)
            .ok()
            .and_then(|i| self.rooms.get(i))
    }

    fn user(&self, id: UserId) -> Option<&User> {
        usize::try_from(id.0 - 1)
            .ok()
            .and_then(|i| self.users.get(i))
            .map(|account| &account.user)
    }

    /// The message at `position` as readers see it now.
    fn current(&self, position: usize) -> Message {
        let stored = &self.messages[position];
        let mut message = stored.message.clone();
        message.reply_to = stored
            .reply_to
            .map(|target| ReplyRef::to(&self.messages[target].message));
        message.reactions = Reaction::aggregate(stored.reactions.iter().map(|(user, emoji)| {
            let name = self
                .user(*user)
                .map_or_else(String::new, |u| u.username.clone());
            (emoji.clone(), name)
        }));
        message.mentions = stored
            .mentions
            .iter()
            .filter_map(|user| self.user(*user).map(|u| u.username.clone()))
            .collect();
        message.mentions.sort();
        message
    }

    /// Makes `user` a member of `room` unless they are one; a new member has read the
    /// room up to its last message. `false` when they were a member already.
    fn join(&mut self, room: RoomId, user: UserId, role: Role) -> bool {
        match self.memberships.entry((room, user)) {
            Entry::Occupied(_) => false,
            Entry::Vacant(entry) => {
                entry.insert(role);
                let last = self
                    .room(room)
                    .map_or(Seq::ZERO, |row| Seq::nth(row.messages.len()));
                self.read_seqs.insert((room, user), last);
                true
            }
        }
    }

    fn leave(&mut self, room: RoomId, user: UserId) -> bool {
        self.read_seqs.remove(&(room, user));
        self.memberships.remove(&(room, user)).is_some()
    }

    /// The users of `keys` who can read `room` (a public room: anyone not banned from
    /// it; otherwise its members), but `author`: what the SQL stores'
    /// `insert_mentions_sql` selects.
    fn mentioned(&self, room: RoomId, author: UserId, keys: &[String]) -> Vec<UserId> {
        let public = self
            .room(room)
            .is_some_and(|row| row.room.kind == RoomKind::Public);
        self.users
            .iter()
            .filter(|account| keys.contains(&account.key))
            .map(|account| account.user.id)
            .filter(|&user| user != author)
            .filter(|&user| {
                if public {
                    !self.bans.contains_key(&(room, user))
                } else {
                    self.memberships.contains_key(&(room, user))
                }
            })
            .collect()
    }

    /// A member's marker and counts, counted as the SQL stores' `ATTENTION_COLUMNS` do.
    fn attention(&self, room: RoomId, user: UserId) -> Option<Attention> {
        let read_seq = *self.read_seqs.get(&(room, user))?;
        let row = self.room(room)?;
        let unread: Vec<&StoredMessage> = row
            .messages
            .iter()
            .skip(usize::try_from(read_seq.get()).unwrap_or(usize::MAX))
            .map(|&p| &self.messages[p])
            .filter(|m| m.message.user_id != user && !m.message.is_deleted())
            .collect();
        Some(Attention {
            read_seq,
            last_seq: Seq::nth(row.messages.len()),
            unread: unread.len() as u64,
            mentions: unread.iter().filter(|m| m.mentions.contains(&user)).count() as u64,
        })
    }

    fn find_room(&self, slug: &str) -> Option<&RoomRow> {
        self.rooms.iter().find(|row| row.room.slug == slug)
    }

    /// A new room, with no members yet.
    fn insert_room(
        &mut self,
        slug: &str,
        name: &str,
        kind: RoomKind,
        dm_key: Option<String>,
    ) -> Room {
        let room = Room {
            id: RoomId(self.rooms.len() as i64 + 1),
            slug: slug.to_owned(),
            name: name.to_owned(),
            kind,
        };
        self.rooms.push(RoomRow {
            room: room.clone(),
            last_rev: Rev::ZERO,
            dm_key,
            created_at: now(),
            last_message_at: None,
            messages: Vec::new(),
        });
        room
    }
}

#[async_trait]
impl Store for MemoryStore {
    async fn ping(&self) -> Result<(), StoreError> {
        Ok(())
    }

    async fn create_user(
        &self,
        username: &Username,
        password_hash: &str,
    ) -> Result<User, StoreError> {
        let mut state = self.state();
        let key = username.key();
        if state.users.iter().any(|account| account.key == key) {
            return Err(StoreError::Duplicate);
        }
        let user = User {
            id: UserId(state.users.len() as i64 + 1),
            username: username.as_str().to_owned(),
        };
        state.users.push(Account {
            user: user.clone(),
            key,
            password_hash: password_hash.to_owned(),
        });
        Ok(user)
    }

    async fn find_credentials(
        &self,
        username: &Username,
    ) -> Result<Option<(User, String)>, StoreError> {
        let key = username.key();
        Ok(self
            .state()
            .users
            .iter()
            .find(|account| account.key == key)
            .map(|account| (account.user.clone(), account.password_hash.clone())))
    }

    async fn create_session(
        &self,
        token_hash: &[u8],
        user: UserId,
        expires_at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let mut state = self.state();
        let now = now();
        state.sessions.retain(|_, (_, expires)| *expires > now);
        state
            .sessions
            .insert(token_hash.to_vec(), (user, expires_at));
        Ok(())
    }

    async fn find_session(
        &self,
        token_hash: &[u8],
        now: DateTime<Utc>,
    ) -> Result<Option<SessionRecord>, StoreError> {
        let state = self.state();
        Ok(state
            .sessions
            .get(token_hash)
            .filter(|(_, expires_at)| *expires_at > now)
            .and_then(|(user, expires_at)| {
                let account = state.users.get(usize::try_from(user.0 - 1).ok()?)?;
                Some(SessionRecord {
                    user: account.user.clone(),
                    expires_at: *expires_at,
                })
            }))
    }

    async fn delete_session(&self, token_hash: &[u8]) -> Result<(), StoreError> {
        self.state().sessions.remove(token_hash);
        Ok(())
    }

    async fn find_user(&self, username: &Username) -> Result<Option<User>, StoreError> {
        let key = username.key();
        Ok(self
            .state()
            .users
            .iter()
            .find(|account| account.key == key)
            .map(|account| account.user.clone()))
    }

    async fn create_room(&self, new: NewRoom<'_>) -> Result<(Room, bool), StoreError> {
        let mut state = self.state();
        if let Some(row) = state.find_room(new.slug.as_str()) {
            return Ok((row.room.clone(), false));
        }
        let room = state.insert_room(new.slug.as_str(), new.name.as_str(), new.kind, None);
        state.join(room.id, new.owner, Role::Owner);
        Ok((room, true))
    }

    async fn find_room(&self, slug: &Slug) -> Result<Option<Room>, StoreError> {
        Ok(self
            .state()
            .find_room(slug.as_str())
            .map(|row| row.room.clone()))
    }

    async fn open_dm(
        &self,
        pair: DmPair,
        slug: &Slug,
        name: &str,
    ) -> Result<(Room, bool), StoreError> {
        let mut state = self.state();
        let key = pair.key();
        if let Some(row) = state
            .rooms
            .iter()
            .find(|row| row.dm_key.as_ref() == Some(&key))
        {
            return Ok((row.room.clone(), false));
        }
        // The SQL stores' unique slug.
        if state.find_room(slug.as_str()).is_some() {
            return Err(StoreError::Duplicate);
        }
        let room = state.insert_room(slug.as_str(), name, RoomKind::Dm, Some(key));
        for user in [pair.0, pair.1] {
            state.join(room.id, user, Role::Member);
        }
        Ok((room, true))
    }

    async fn find_dm(&self, pair: DmPair) -> Result<Option<Room>, StoreError> {
        let key = pair.key();
        Ok(self
            .state()
            .rooms
            .iter()
            .find(|row| row.dm_key.as_ref() == Some(&key))
            .map(|row| row.room.clone()))
    }

    async fn list_rooms(
        &self,
        viewer: UserId,
        scope: RoomScope,
        offset: usize,
        limit: usize,
        attention: bool,
    ) -> Result<Vec<RoomSummary>, StoreError> {
        let state = self.state();
        let role = |row: &RoomRow| state.memberships.get(&(row.room.id, viewer)).copied();
        let mut rooms: Vec<&RoomRow> = state
            .rooms
            .iter()
            .filter(|row| {
                let public = row.room.kind == RoomKind::Public;
                match scope {
                    RoomScope::Visible => public || role(row).is_some(),
                    RoomScope::Joined => role(row).is_some(),
                    RoomScope::Public => public,
                }
            })
            .collect();
        // The rule of `sql::ROOM_LIST_ORDER`, in Rust.
        rooms.sort_by(|a, b| {
            let active = |row: &RoomRow| row.last_message_at.unwrap_or(row.created_at);
            active(b).cmp(&active(a)).then(b.room.id.cmp(&a.room.id))
        });
        Ok(rooms
            .into_iter()
            .skip(offset)
            .take(limit)
            .map(|row| RoomSummary {
                room: row.room.clone(),
                last_message_at: row.last_message_at,
                role: role(row),
                attention: if attention {
                    state.attention(row.room.id, viewer)
                } else {
                    None
                },
            })
            .collect())
    }

    async fn standings(&self, room: RoomId, users: &[UserId]) -> Result<Vec<Standing>, StoreError> {
        let state = self.state();
        Ok(users
            .iter()
            .map(|user| Standing {
                role: state.memberships.get(&(room, *user)).copied(),
                banned: state.bans.contains_key(&(room, *user)),
            })
            .collect())
    }

    async fn add_member(
        &self,
        room: RoomId,
        user: UserId,
        role: Role,
    ) -> Result<Added, StoreError> {
        let mut state = self.state();
        if state.bans.contains_key(&(room, user)) {
            return Ok(Added::Banned);
        }
        Ok(if state.join(room, user, role) {
            Added::Added
        } else {
            Added::AlreadyMember
        })
    }

    async fn set_role(&self, room: RoomId, user: UserId, role: Role) -> Result<bool, StoreError> {
        Ok(match self.state().memberships.get_mut(&(room, user)) {
            Some(stored) => {
                *stored = role;
                true
            }
            None => false,
        })
    }

    async fn remove_member(&self, room: RoomId, user: UserId) -> Result<bool, StoreError> {
        Ok(self.state().leave(room, user))
    }

    async fn members(&self, room: RoomId) -> Result<Vec<MemberRecord>, StoreError> {
        let state = self.state();
        Ok(state
            .memberships
            .iter()
            .filter(|((of, _), _)| *of == room)
            .filter_map(|(&(_, user), &role)| {
                Some(MemberRecord {
                    user: state.user(user)?.clone(),
                    role,
                })
            })
            .collect())
    }

    async fn ban(&self, room: RoomId, user: UserId, by: UserId) -> Result<(), StoreError> {
        let mut state = self.state();
        state.leave(room, user);
        state
            .bans
            .entry((room, user))
            .or_insert_with(|| (by, now()));
        Ok(())
    }

    async fn unban(&self, room: RoomId, user: UserId) -> Result<bool, StoreError> {
        Ok(self.state().bans.remove(&(room, user)).is_some())
    }

    async fn bans(&self, room: RoomId) -> Result<Vec<BanRecord>, StoreError> {
        let state = self.state();
        Ok(state
            .bans
            .iter()
            .filter(|((of, _), _)| *of == room)
            .filter_map(|(&(_, user), &(by, at))| {
                Some(BanRecord {
                    user: state.user(user)?.clone(),
                    by: state.user(by)?.clone(),
                    at,
                })
            })
            .collect())
    }

    async fn append_message(&self, message: NewMessage) -> Result<Appended, StoreError> {
        let mut state = self.state();
        if let Some(client_id) = &message.client_id {
            let key = (message.user.id, client_id.as_str().to_owned());
            if let Some(&stored) = state.by_client_id.get(&key) {
                return Ok(Appended {
                    message: state.current(stored),
                    fresh: false,
                });
            }
        }
        let position = state.messages.len();
        let room_index = usize::try_from(message.room.id.0 - 1)
            .ok()
            .filter(|&i| i < state.rooms.len())
            .ok_or_else(|| StoreError::Unavailable("no such room in the store".into()))?;
        // The SQL stores' foreign key.
        let reply_to = match &message.reply_to {
            Some(target) => Some(
                position_of(target.id)
                    .filter(|&t| t < position)
                    .ok_or_else(|| StoreError::Unavailable("no such reply target".into()))?,
            ),
            None => None,
        };
        let sent_at = now();
        let row = &mut state.rooms[room_index];
        row.messages.push(position);
        row.last_message_at = Some(sent_at);
        row.last_rev = row.last_rev.next();
        let seq = Seq::nth(row.messages.len());
        let rev = row.last_rev;
        let mentions = state.mentioned(message.room.id, message.user.id, &message.mentioned_keys());
        if let Some(read) = state.read_seqs.get_mut(&(message.room.id, message.user.id)) {
            *read = (*read).max(seq); // a sender has read the room up to what they send
        }
        let stored = message.stored(position as i64 + 1, seq, rev, sent_at, Vec::new());
        if let Some(client_id) = &message.client_id {
            state
                .by_client_id
                .insert((message.user.id, client_id.as_str().to_owned()), position);
        }
        state.messages.push(StoredMessage {
            message: Message {
                reply_to: None,
                ..stored.clone()
            },
            reply_to,
            reactions: Vec::new(),
            mentions,
        });
        Ok(Appended {
            message: state.current(position),
            fresh: true,
        })
    }

    async fn find_by_client_id(
        &self,
        user: UserId,
        client_id: &str,
    ) -> Result<Option<Message>, StoreError> {
        let state = self.state();
        Ok(state
            .by_client_id
            .get(&(user, client_id.to_owned()))
            .map(|&position| state.current(position)))
    }

    async fn last_seq(&self, room: RoomId) -> Result<Seq, StoreError> {
        Ok(self
            .state()
            .room(room)
            .map_or(Seq::ZERO, |row| Seq::nth(row.messages.len())))
    }

    async fn last_rev(&self, room: RoomId) -> Result<Rev, StoreError> {
        Ok(self
            .state()
            .room(room)
            .map_or(Rev::ZERO, |row| row.last_rev))
    }

    async fn message(&self, room: &Room, id: i64) -> Result<Option<Message>, StoreError> {
        let state = self.state();
        Ok(position_of(id)
            .filter(|&p| {
                state
                    .messages
                    .get(p)
                    .is_some_and(|m| m.message.room_id == room.id)
            })
            .map(|p| state.current(p)))
    }

    async fn attention(&self, room: RoomId, user: UserId) -> Result<Option<Attention>, StoreError> {
        Ok(self.state().attention(room, user))
    }

    async fn mark_read(
        &self,
        room: RoomId,
        user: UserId,
        seq: Seq,
    ) -> Result<Option<Attention>, StoreError> {
        let mut state = self.state();
        if let Some(read) = state.read_seqs.get_mut(&(room, user)) {
            *read = (*read).max(seq);
        }
        Ok(state.attention(room, user))
    }

    async fn reply_refs(&self, room: &Room, ids: &[i64]) -> Result<Vec<ReplyRef>, StoreError> {
        let state = self.state();
        Ok(ids
            .iter()
            .filter_map(|&id| position_of(id))
            .filter_map(|p| state.messages.get(p))
            .filter(|m| m.message.room_id == room.id)
            .map(|m| ReplyRef::to(&m.message))
            .collect())
    }

    async fn change_message(
        &self,
        room: &Room,
        id: i64,
        change: MessageChange<'_>,
    ) -> Result<Changed, StoreError> {
        let mut state = self.state();
        let Some(position) = position_of(id).filter(|&p| {
            state
                .messages
                .get(p)
                .is_some_and(|m| m.message.room_id == room.id)
        }) else {
            return Ok(Changed::UnknownMessage);
        };
        let deleter = match change {
            MessageChange::Delete { by } => Some(
                state
                    .user(by)
                    .map(|u| u.username.clone())
                    .ok_or_else(|| StoreError::Unavailable("no such user".into()))?,
            ),
            _ => None,
        };
        if state.messages[position].message.is_deleted() {
            return Ok(Changed::Deleted);
        }
        let edit_mentions = match change {
            MessageChange::Edit { body, .. } => {
                let author = state.messages[position].message.user_id;
                state.mentioned(room.id, author, &mentioned_keys(body.as_str()))
            }
            _ => Vec::new(),
        };
        let stored = &mut state.messages[position];
        let changed = match change {
            MessageChange::Edit { body, at } => {
                let changed = stored.message.body != body.as_str();
                if changed {
                    stored.message.body = body.as_str().to_owned();
                    stored.message.edited_at = Some(to_ms(at));
                    stored.mentions = edit_mentions;
                }
                changed
            }
            MessageChange::Delete { .. } => {
                stored.message.body = String::new();
                stored.message.deleted_by = deleter;
                stored.reactions.clear();
                stored.mentions.clear();
                true
            }
            MessageChange::React { user, emoji } => {
                let emoji = emoji.as_str();
                if stored
                    .reactions
                    .iter()
                    .any(|r| *r == (user, emoji.to_owned()))
                {
                    false
                } else {
                    let mut distinct: Vec<&str> =
                        stored.reactions.iter().map(|(_, e)| e.as_str()).collect();
                    distinct.sort_unstable();
                    distinct.dedup();
                    if !distinct.contains(&emoji) && distinct.len() >= MAX_EMOJI_PER_MESSAGE {
                        return Ok(Changed::TooManyReactions);
                    }
                    stored.reactions.push((user, emoji.to_owned()));
                    true
                }
            }
            MessageChange::Unreact { user, emoji } => {
                let before = stored.reactions.len();
                stored
                    .reactions
                    .retain(|r| *r != (user, emoji.as_str().to_owned()));
                stored.reactions.len() != before
            }
        };
        if !changed {
            return Ok(Changed::Unchanged(state.current(position)));
        }
        let room_index = position_of(room.id.0)
            .filter(|&i| i < state.rooms.len())
            .ok_or_else(|| StoreError::Unavailable("no such room in the store".into()))?;
        let rev = state.rooms[room_index].last_rev.next();
        state.rooms[room_index].last_rev = rev;
        state.messages[position].message.rev = rev;
        Ok(Changed::Changed(state.current(position)))
    }

    async fn changes(
        &self,
        room: &Room,
        after: Rev,
        up_to: Seq,
        limit: u32,
    ) -> Result<Vec<Message>, StoreError> {
        if self.history_stalled.load(Ordering::Relaxed) {
            std::future::pending::<()>().await;
        }
        let state = self.state();
        let Some(row) = state.room(room.id) else {
            return Ok(Vec::new());
        };
        let mut changed: Vec<usize> = row
            .messages
            .iter()
            .copied()
            .filter(|&p| {
                let message = &state.messages[p].message;
                message.rev > after && message.seq <= up_to
            })
            .collect();
        changed.sort_by_key(|&p| state.messages[p].message.rev);
        Ok(changed
            .into_iter()
            .take(limit as usize)
            .map(|p| state.current(p))
            .collect())
    }

    async fn messages(
        &self,
        room: &Room,
        range: HistoryRange,
        limit: u32,
    ) -> Result<Vec<Message>, StoreError> {
        if self.history_stalled.load(Ordering::Relaxed) {
            std::future::pending::<()>().await;
        }
        let state = self.state();
        let Some(row) = state.room(room.id) else {
            return Ok(Vec::new());
        };
        let limit = limit as usize;
        // `seq` n is at index n - 1 of the room's list.
        let (from, to) = match range {
            HistoryRange::Latest => (row.messages.len().saturating_sub(limit), row.messages.len()),
            HistoryRange::Before(seq) => {
                let end = usize::try_from(seq.get().max(1) - 1)
                    .unwrap_or(0)
                    .min(row.messages.len());
                (end.saturating_sub(limit), end)
            }
            HistoryRange::After(seq) => {
                let start = usize::try_from(seq.get())
                    .unwrap_or(usize::MAX)
                    .min(row.messages.len());
                (start, (start + limit).min(row.messages.len()))
            }
        };
        Ok(row.messages[from..to]
            .iter()
            .map(|&position| state.current(position))
            .collect())
    }
}
