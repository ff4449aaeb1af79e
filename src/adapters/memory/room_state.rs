//! Presence and the message cache in one mutex, so a last leave deletes the cache
//! atomically with the member (the same guarantee the Redis scripts give).

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use async_trait::async_trait;

use crate::domain::{Message, ReplyRef, RoomId, Seq, User, UserId};
use crate::ports::{Joined, MessageCache, Presence, Unavailable};

#[derive(Default)]
struct RoomState {
    /// Present users and their names.
    members: HashMap<UserId, String>,
    ready: bool,
    cached: BTreeMap<Seq, Message>,
}

pub struct MemoryRoomState {
    capacity: usize,
    rooms: Mutex<HashMap<RoomId, RoomState>>,
}

impl MemoryRoomState {
    /// `capacity`: messages kept per room (`CACHE_MESSAGES`).
    pub fn new(capacity: usize) -> MemoryRoomState {
        MemoryRoomState {
            capacity,
            rooms: Mutex::new(HashMap::new()),
        }
    }

    fn with_rooms<T>(&self, f: impl FnOnce(&mut HashMap<RoomId, RoomState>) -> T) -> T {
        // A panic while holding the lock cannot leave a room half-updated: every update
        // below is a single insert/remove, so the data is usable after poisoning.
        let mut rooms = self.rooms.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut rooms)
    }

    fn trim(&self, state: &mut RoomState) {
        while state.cached.len() > self.capacity {
            state.cached.pop_first();
        }
    }
}

/// Caches `message` unless the entry at its `seq` has a `rev` at least its: of two states
/// of one message, the newer stays. A reply is kept without its target's text (the port's
/// rule: the reader resolves it).
fn keep_newer(cached: &mut BTreeMap<Seq, Message>, message: &Message) {
    if cached
        .get(&message.seq)
        .is_some_and(|held| held.rev >= message.rev)
    {
        return;
    }
    let mut entry = message.clone();
    entry.reply_to = message
        .reply_to
        .as_ref()
        .map(|to| ReplyRef::unresolved(to.id, to.seq));
    cached.insert(message.seq, entry);
}

#[async_trait]
impl Presence for MemoryRoomState {
    async fn join(&self, room: RoomId, user: &User) -> Result<Joined, Unavailable> {
        Ok(self.with_rooms(|rooms| {
            let members = &mut rooms.entry(room).or_default().members;
            let first = members.insert(user.id, user.username.clone()).is_none();
            Joined {
                first,
                members: sorted_names(members),
            }
        }))
    }

    async fn leave(&self, room: RoomId, user: &User) -> Result<bool, Unavailable> {
        Ok(self.with_rooms(|rooms| {
            let Some(state) = rooms.get_mut(&room) else {
                return false;
            };
            let removed = state.members.remove(&user.id).is_some();
            if state.members.is_empty() {
                rooms.remove(&room);
            }
            removed
        }))
    }

    async fn members(&self, room: RoomId) -> Result<Vec<String>, Unavailable> {
        Ok(self.with_rooms(|rooms| {
            rooms
                .get(&room)
                .map(|s| sorted_names(&s.members))
                .unwrap_or_default()
        }))
    }

    async fn online_counts(
        &self,
        wanted: &[RoomId],
    ) -> Result<HashMap<RoomId, usize>, Unavailable> {
        Ok(self.with_rooms(|rooms| {
            wanted
                .iter()
                .filter_map(|id| rooms.get(id).map(|s| (*id, s.members.len())))
                .collect()
        }))
    }
}

#[async_trait]
impl MessageCache for MemoryRoomState {
    async fn latest(
        &self,
        room: RoomId,
        limit: usize,
    ) -> Result<Option<Vec<Message>>, Unavailable> {
        Ok(self.with_rooms(|rooms| {
            let state = rooms.get(&room).filter(|s| s.ready)?;
            let skip = state.cached.len().saturating_sub(limit);
            Some(state.cached.values().skip(skip).cloned().collect())
        }))
    }

    async fn after(
        &self,
        room: RoomId,
        after: Seq,
        limit: usize,
    ) -> Result<Option<Vec<Message>>, Unavailable> {
        Ok(self.with_rooms(|rooms| {
            let state = rooms.get(&room).filter(|s| s.ready)?;
            let complete = match state.cached.first_key_value() {
                Some((oldest, _)) => *oldest <= after.next(),
                // Ready and empty: the room had no messages when filled and none since.
                None => true,
            };
            complete.then(|| {
                state
                    .cached
                    .range(after.next()..)
                    .take(limit)
                    .map(|(_, m)| m.clone())
                    .collect()
            })
        }))
    }

    async fn at(&self, room: RoomId, seqs: &[Seq]) -> Result<Option<Vec<Message>>, Unavailable> {
        Ok(self.with_rooms(|rooms| {
            let state = rooms.get(&room).filter(|s| s.ready)?;
            let mut seqs = seqs.to_vec();
            seqs.sort_unstable();
            seqs.dedup();
            Some(
                seqs.iter()
                    .filter_map(|seq| state.cached.get(seq).cloned())
                    .collect(),
            )
        }))
    }

    async fn fill(&self, room: RoomId, tail: &[Message]) -> Result<(), Unavailable> {
        self.with_rooms(|rooms| {
            let Some(state) = rooms.get_mut(&room) else {
                return;
            };
            if !state.ready {
                // What `update` kept while the tail was read, if older than the tail.
                if let Some(first) = tail.iter().map(|m| m.seq).min() {
                    state.cached = state.cached.split_off(&first);
                }
            }
            for message in tail {
                keep_newer(&mut state.cached, message);
            }
            state.ready = true;
            self.trim(state);
        });
        Ok(())
    }

    async fn add(&self, room: RoomId, message: &Message) -> Result<(), Unavailable> {
        self.with_rooms(|rooms| {
            if let Some(state) = rooms.get_mut(&room) {
                keep_newer(&mut state.cached, message);
                self.trim(state);
            }
        });
        Ok(())
    }

    async fn update(&self, room: RoomId, message: &Message) -> Result<(), Unavailable> {
        self.with_rooms(|rooms| {
            let Some(state) = rooms.get_mut(&room) else {
                return;
            };
            // Not ready: a fill is on its way with a read that may predate this change.
            if !state.ready || state.cached.contains_key(&message.seq) {
                keep_newer(&mut state.cached, message);
                self.trim(state);
            }
        });
        Ok(())
    }
}

fn sorted_names(members: &HashMap<UserId, String>) -> Vec<String> {
    let mut names: Vec<String> = members.values().cloned().collect();
    names.sort();
    names
}
