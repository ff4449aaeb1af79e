//! Rooms: create-or-join by name, look-up by slug, the list with online counts.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};

use super::{store_call, ChatError};
use crate::domain::{Room, RoomName, Slug};
use crate::ports::{Presence, Store};

/// Rooms: the store's, with presence for the list's online counts.
pub struct Rooms {
    store: Arc<dyn Store>,
    presence: Arc<dyn Presence>,
    known: KnownRooms,
    /// [`Limits::room_list_max`](super::Limits).
    list_max: usize,
}

/// Rooms looked up by slug, remembered: a room is never renamed or deleted, so a room
/// once found stays right, and a crowd joining a room asks the store once, not once each.
/// Only rooms found are kept (one created later, maybe by another process, is found then).
#[derive(Default)]
struct KnownRooms(Mutex<HashMap<String, Room>>);

/// More rooms than this and the memory starts over (it is only a shortcut).
const KNOWN_ROOMS_MAX: usize = 10_000;

impl KnownRooms {
    fn get(&self, slug: &Slug) -> Option<Room> {
        self.lock().get(slug.as_str()).cloned()
    }

    fn remember(&self, room: &Room) {
        let mut rooms = self.lock();
        if rooms.len() >= KNOWN_ROOMS_MAX {
            rooms.clear();
        }
        rooms.insert(room.slug.clone(), room.clone());
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Room>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A room as the room list shows it.
#[derive(Debug, Clone)]
pub struct RoomListing {
    pub room: Room,
    /// Distinct users connected, on every process.
    pub online: usize,
    pub last_message_at: Option<DateTime<Utc>>,
}

/// The room list: what fits, and whether rooms were left out.
#[derive(Debug, Clone)]
pub struct RoomList {
    pub rooms: Vec<RoomListing>,
    /// More rooms matched than [`Limits::room_list_max`](super::Limits).
    pub truncated: bool,
}

/// Rooms read from the store at a time while filtering by name.
const ROOM_SCAN_PAGE: usize = 1000;

impl Rooms {
    pub(super) fn new(
        store: Arc<dyn Store>,
        presence: Arc<dyn Presence>,
        list_max: usize,
    ) -> Rooms {
        Rooms {
            store,
            presence,
            known: KnownRooms::default(),
            list_max,
        }
    }

    /// Creates the room, or joins the one whose slug the name gives; `true` when created.
    pub async fn create(&self, name: &str) -> Result<(Room, bool), ChatError> {
        let name = RoomName::parse(name).map_err(ChatError::InvalidRoomName)?;
        let (room, created) = store_call(self.store.create_room(&name.slug(), &name)).await?;
        self.known.remember(&room);
        Ok((room, created))
    }

    pub async fn find(&self, slug: &str) -> Result<Room, ChatError> {
        let slug = Slug::parse(slug).ok_or(ChatError::RoomNotFound)?;
        if let Some(room) = self.known.get(&slug) {
            return Ok(room);
        }
        let room = store_call(self.store.find_room(&slug))
            .await?
            .ok_or(ChatError::RoomNotFound)?;
        self.known.remember(&room);
        Ok(room)
    }

    /// At most [`Limits::room_list_max`](super::Limits) rooms, most recently active first, only those whose name
    /// contains `name_contains` (case-insensitive) when it is given.
    pub async fn list(&self, name_contains: Option<&str>) -> Result<RoomList, ChatError> {
        let most = self.list_max;
        let wanted = most + 1;
        let mut rooms = Vec::new();
        match name_contains.map(str::to_lowercase) {
            None => rooms = store_call(self.store.list_rooms(0, wanted)).await?,
            // Filtered here, not in SQL: neither SQLite's LIKE nor a C-locale PostgreSQL
            // folds non-ASCII case, and both stores must give the same answer.
            Some(needle) => {
                let mut seen = HashSet::new();
                let mut offset = 0;
                while rooms.len() < wanted {
                    let page = store_call(self.store.list_rooms(offset, ROOM_SCAN_PAGE)).await?;
                    offset += page.len();
                    let last_page = page.len() < ROOM_SCAN_PAGE;
                    rooms.extend(page.into_iter().filter(|summary| {
                        // A room may move between pages when a message arrives meanwhile.
                        summary.room.name.to_lowercase().contains(&needle)
                            && seen.insert(summary.room.id)
                    }));
                    if last_page {
                        break;
                    }
                }
            }
        }
        let truncated = rooms.len() > most;
        rooms.truncate(most);
        let ids: Vec<_> = rooms.iter().map(|r| r.room.id).collect();
        let online = match self.presence.online_counts(&ids).await {
            Ok(counts) => counts,
            Err(e) => {
                // The list is still useful without counts.
                tracing::warn!(error = %e, "presence unavailable for the room list");
                Default::default()
            }
        };
        let rooms = rooms
            .into_iter()
            .map(|summary| RoomListing {
                online: online.get(&summary.room.id).copied().unwrap_or(0),
                room: summary.room,
                last_message_at: summary.last_message_at,
            })
            .collect();
        Ok(RoomList { rooms, truncated })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapters::memory::{MemoryRoomState, MemoryStore};
    use crate::domain::{User, UserId};

    /// An area is its ports and its rules: testable on the in-process adapters alone.
    fn rooms(list_max: usize) -> (Rooms, Arc<MemoryRoomState>) {
        let presence = Arc::new(MemoryRoomState::new(10));
        let rooms = Rooms::new(Arc::new(MemoryStore::new()), presence.clone(), list_max);
        (rooms, presence)
    }

    #[tokio::test]
    async fn creating_a_room_twice_joins_the_first_and_finding_it_needs_its_slug() {
        let (rooms, _) = rooms(500);
        let (first, created) = rooms.create("Quiet École").await.unwrap();
        assert!(created);
        assert_eq!(first.slug, "quiet-ecole");
        let (again, created) = rooms.create("quiet ecole").await.unwrap();
        assert!(!created);
        assert_eq!(again, first);
        assert_eq!(rooms.find("quiet-ecole").await.unwrap(), first);
        assert!(matches!(
            rooms.find("nowhere").await,
            Err(ChatError::RoomNotFound)
        ));
        assert!(matches!(
            rooms.create("   ").await,
            Err(ChatError::InvalidRoomName(_))
        ));
    }

    #[tokio::test]
    async fn the_list_is_capped_filtered_by_name_and_counts_who_is_online() {
        let (rooms, presence) = rooms(2);
        for name in ["Alpha", "Beta", "Gamma"] {
            rooms.create(name).await.unwrap();
        }
        let all = rooms.list(None).await.unwrap();
        assert_eq!(all.rooms.len(), 2);
        assert!(all.truncated);

        let alpha = rooms.find("alpha").await.unwrap();
        let alice = User {
            id: UserId(1),
            username: "alice".into(),
        };
        presence.join(alpha.id, &alice).await.unwrap();
        let found = rooms.list(Some("ALP")).await.unwrap();
        assert!(!found.truncated);
        let listed: Vec<_> = found
            .rooms
            .iter()
            .map(|r| (r.room.name.as_str(), r.online))
            .collect();
        assert_eq!(listed, [("Alpha", 1)]);
    }
}
