//! Rooms: create-or-join by name, look-up by slug, the list with online counts.

use chrono::{DateTime, Utc};

use super::{store_call, ChatError, ChatService};
use crate::domain::{Room, RoomName, Slug};

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
        store_call(self.store.create_room(&name.slug(), &name)).await
    }

    pub async fn find_room(&self, slug: &str) -> Result<Room, ChatError> {
        let slug = Slug::parse(slug).ok_or(ChatError::RoomNotFound)?;
        store_call(self.store.find_room(&slug))
            .await?
            .ok_or(ChatError::RoomNotFound)
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
