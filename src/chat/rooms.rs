//! Rooms: create-or-join by name, look-up by slug, the list with online counts.

use std::collections::HashMap;
use std::sync::Mutex;

use chrono::{DateTime, Utc};

use super::{store_call, ChatError, ChatService};
use crate::domain::{Room, RoomName, Slug};

/// Rooms looked up by slug, remembered: a room is never renamed or deleted, so a room
/// once found stays right, and a crowd joining a room asks the store once, not once each.
/// Only rooms found are kept (one created later, maybe by another process, is found then).
#[derive(Default)]
pub(super) struct KnownRooms(Mutex<HashMap<String, Room>>);

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

impl ChatService {
    /// Creates the room, or joins the one whose slug the name gives; `true` when created.
    pub async fn create_room(&self, name: &str) -> Result<(Room, bool), ChatError> {
        let name = RoomName::parse(name).map_err(ChatError::InvalidRoomName)?;
        let (room, created) = store_call(self.store.create_room(&name.slug(), &name)).await?;
        self.known_rooms.remember(&room);
        Ok((room, created))
    }

    pub async fn find_room(&self, slug: &str) -> Result<Room, ChatError> {
        let slug = Slug::parse(slug).ok_or(ChatError::RoomNotFound)?;
        if let Some(room) = self.known_rooms.get(&slug) {
            return Ok(room);
        }
        let room = store_call(self.store.find_room(&slug))
            .await?
            .ok_or(ChatError::RoomNotFound)?;
        self.known_rooms.remember(&room);
        Ok(room)
    }

    pub async fn list_rooms(&self) -> Result<Vec<RoomListing>, ChatError> {
        let rooms = store_call(self.store.list_rooms()).await?;
        let ids: Vec<_> = rooms.iter().map(|r| r.room.id).collect();
        let online = match self.presence.online_counts(&ids).await {
            Ok(counts) => counts,
            Err(e) => {
                // The list is still useful without counts.
                tracing::warn!(error = %e, "presence unavailable for the room list");
                Default::default()
            }
        };
        Ok(rooms
            .into_iter()
            .map(|summary| RoomListing {
                online: online.get(&summary.room.id).copied().unwrap_or(0),
                room: summary.room,
                last_message_at: summary.last_message_at,
            })
            .collect())
    }
}
