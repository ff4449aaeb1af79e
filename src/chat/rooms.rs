//! Rooms: creating (public or private, limited per user), opening DMs, look-up by slug
//! with the user's access (CONTRACT §9), and the list with online counts.

use std::collections::HashSet;
use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::access::{Access, RoomAccess};
use super::first_visits::FirstVisits;
use super::limiter::{Granted, Limiter};
use super::{store_call, user_named, ChatError};
use crate::domain::{
    Attention, Role, Room, RoomId, RoomKind, RoomName, RoomScope, RoomSummary, Slug, User, UserId,
};
use crate::ports::{Added, DmPair, NewRoom, Presence, Rule, Store};

/// Rooms: the store's, with presence for the list's online counts.
pub struct Rooms {
    store: Arc<dyn Store>,
    presence: Arc<dyn Presence>,
    access: Access,
    limiter: Limiter,
    /// [`Limits::room_creates`](super::Limits).
    creates: Rule,
    /// [`Limits::room_list_max`](super::Limits).
    list_max: usize,
}

/// A socket's way into a room, from [`Rooms::enter`].
pub struct Entry {
    pub access: RoomAccess,
    /// The membership a first visit writes: started only once the upgrade is accepted, so
    /// a refused one makes no one a member.
    first_visit: Option<(Arc<FirstVisits>, RoomId, UserId)>,
}

impl Entry {
    /// Starts writing a first visit's membership, behind the socket ([`FirstVisits`]).
    pub fn start_recording(&mut self) {
        if let Some((first_visits, room, user)) = self.first_visit.take() {
            first_visits.record(room, user);
        }
    }

    /// Whether this socket's visit is the user's first, and so makes them a member.
    pub fn is_first_visit(&self) -> bool {
        self.first_visit.is_some()
    }
}

/// A room as the room list shows it.
#[derive(Debug, Clone)]
pub struct RoomListing {
    pub room: Room,
    /// Distinct users connected, on every process.
    pub online: usize,
    pub last_message_at: Option<DateTime<Utc>>,
    /// The viewer's role; `None` when they are not a member.
    pub role: Option<Role>,
    /// The viewer's read marker and counts (CONTRACT §11); `None` when not a member.
    pub attention: Option<Attention>,
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
    pub(super) fn new(ports: &super::Ports, access: Access, limits: &super::Limits) -> Rooms {
        Rooms {
            store: ports.store.clone(),
            presence: ports.room_state.clone(),
            access,
            limiter: Limiter::new(ports),
            creates: limits.room_creates,
            list_max: limits.room_list_max,
        }
    }

    /// A public room: creates it with `user` as its owner, or joins the one whose slug the
    /// name gives (`Banned` if they are banned from it); `true` when created. A private
    /// room: always a new one, with an unguessable slug. Only a new room counts against
    /// the user's room-creation limit.
    pub async fn create(
        &self,
        user: &User,
        name: &str,
        kind: RoomKind,
    ) -> Result<(Room, bool), ChatError> {
        let name = RoomName::parse(name).map_err(ChatError::InvalidRoomName)?;
        let slug = match kind {
            RoomKind::Public => {
                let slug = name.slug();
                if let Some(room) = store_call(self.store.find_room(&slug)).await? {
                    return Ok((self.join(user, room).await?, false));
                }
                slug
            }
            RoomKind::Private => Slug::unguessable("p"),
            RoomKind::Dm => {
                return Err(ChatError::InvalidRequest(
                    "a direct message is opened with a username".into(),
                ))
            }
        };
        let granted = self.admit_creation(user).await?;
        let new = NewRoom {
            slug: &slug,
            name: &name,
            kind,
            owner: user.id,
        };
        let (room, created) = match store_call(self.store.create_room(new)).await {
            Ok(made) => made,
            Err(e) => {
                granted.release().await;
                return Err(e);
            }
        };
        if !created {
            // Someone made it meanwhile: a join after all, which the limit does not count.
            granted.release().await;
            return Ok((self.join(user, room).await?, false));
        }
        self.access.remember(&room);
        Ok((room, true))
    }

    /// A place under the room-creation limit.
    async fn admit_creation(&self, user: &User) -> Result<Granted, ChatError> {
        match self.limiter.acquire(&self.creates, user.id).await {
            Err(ChatError::RateLimited { retry_after }) => {
                Err(ChatError::TooManyRooms { retry_after })
            }
            outcome => outcome,
        }
    }

    /// Makes `user` a member of the public `room` (a join); `Banned` if they are banned.
    async fn join(&self, user: &User, room: Room) -> Result<Room, ChatError> {
        if room.kind != RoomKind::Public {
            // Unreachable by slug (an unguessable slug is never a public one), and a room
            // one is not in does not exist.
            return Err(ChatError::RoomNotFound);
        }
        match store_call(self.store.add_member(room.id, user.id, Role::Member)).await? {
            Added::Added | Added::AlreadyMember => {
                self.access.remember(&room);
                Ok(room)
            }
            Added::Banned => Err(ChatError::Banned),
        }
    }

    /// The DM between `user` and `username`, opened now (both become its members) or
    /// already open; `true` when new. Only a new one counts against the creation limit.
    pub async fn open_dm(&self, user: &User, username: &str) -> Result<(Room, bool), ChatError> {
        let other = user_named(&*self.store, username).await?;
        if other.id == user.id {
            return Err(ChatError::InvalidTarget(
                "a direct message is with someone else",
            ));
        }
        let pair = DmPair(user.id, other.id);
        if let Some(room) = store_call(self.store.find_dm(pair)).await? {
            return Ok((room, false));
        }
        let granted = self.admit_creation(user).await?;
        let mut names = [user.username.as_str(), other.username.as_str()];
        names.sort_unstable();
        let name = names.join(", ");
        let slug = Slug::unguessable("dm");
        match store_call(self.store.open_dm(pair, &slug, &name)).await {
            Ok((room, created)) => {
                if !created {
                    granted.release().await;
                }
                self.access.remember(&room);
                Ok((room, created))
            }
            Err(e) => {
                granted.release().await;
                Err(e)
            }
        }
    }

    /// [`Access::visible`], for a socket: opening a public room's socket makes the user a
    /// member, written once (later connections find them one) and behind the socket
    /// ([`Entry::start_recording`]), so that a crowd's first visit does not wait for it.
    pub async fn enter(&self, user: &User, slug: &str) -> Result<Entry, ChatError> {
        let mut access = self.access.visible(user, slug).await?;
        let mut first_visit = None;
        if !access.is_member() {
            if access.room.kind != RoomKind::Public {
                return Err(ChatError::RoomNotFound);
            }
            first_visit = Some((self.access.first_visits().clone(), access.room.id, user.id));
            access.membership = Some(Role::Member);
            access.acts_as = access.acts_as.or(Some(Role::Member));
        }
        Ok(Entry {
            access,
            first_visit,
        })
    }

    /// A room by slug, for `user`: `RoomNotFound` unless it exists and they may see it
    /// (CONTRACT §9), `Banned` from a public room they are banned from.
    pub async fn visible(&self, user: &User, slug: &str) -> Result<RoomAccess, ChatError> {
        self.access.visible(user, slug).await
    }

    /// The rooms of `scope` for `viewer`, at most [`Limits::room_list_max`](super::Limits), most recently
    /// active first, only those whose name contains `name_contains` (case-insensitive)
    /// when it is given; with `attention`, the viewer's read marker and counts in theirs.
    pub async fn list(
        &self,
        viewer: &User,
        scope: RoomScope,
        name_contains: Option<&str>,
        attention: bool,
    ) -> Result<RoomList, ChatError> {
        let (rooms, truncated) = self
            .summaries(viewer, scope, name_contains, attention)
            .await?;
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
                role: summary.role,
                attention: summary.attention,
            })
            .collect();
        Ok(RoomList { rooms, truncated })
    }

    /// The viewer's rooms for a page's sidebar (at most
    /// [`Limits::room_list_max`](super::Limits)): no online counts, which it does not show.
    pub async fn joined(&self, viewer: &User) -> Result<Vec<Room>, ChatError> {
        let (rooms, _) = self
            .summaries(viewer, RoomScope::Joined, None, false)
            .await?;
        Ok(rooms.into_iter().map(|summary| summary.room).collect())
    }

    /// [`Rooms::list`] without the online counts; `true` when rooms were left out.
    async fn summaries(
        &self,
        viewer: &User,
        scope: RoomScope,
        name_contains: Option<&str>,
        attention: bool,
    ) -> Result<(Vec<RoomSummary>, bool), ChatError> {
        // A room the viewer has just visited is listed with their role.
        self.access.first_visits().settled_for_user(viewer.id).await;
        let most = self.list_max;
        let wanted = most + 1;
        let page = |offset, limit| {
            self.store
                .list_rooms(viewer.id, scope, offset, limit, attention)
        };
        let mut rooms = Vec::new();
        match name_contains.map(str::to_lowercase) {
            None => rooms = store_call(page(0, wanted)).await?,
            // Filtered here, not in SQL: neither SQLite's LIKE nor a C-locale PostgreSQL
            // folds non-ASCII case, and both stores must give the same answer.
            Some(needle) => {
                let mut seen = HashSet::new();
                let mut offset = 0;
                while rooms.len() < wanted {
                    let found = store_call(page(offset, ROOM_SCAN_PAGE)).await?;
                    offset += found.len();
                    let last_page = found.len() < ROOM_SCAN_PAGE;
                    rooms.extend(found.into_iter().filter(|summary| {
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
        Ok((rooms, truncated))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapters::memory::{MemoryBus, MemoryRateLimiter, MemoryRoomState, MemoryStore};
    use crate::chat::{Admins, Limits, Ports};
    use crate::domain::Username;

    /// An area is its ports and its rules: testable on the in-process adapters alone.
    struct Fixture {
        rooms: Rooms,
        presence: Arc<MemoryRoomState>,
        store: Arc<MemoryStore>,
    }

    fn fixture(limits: Limits) -> Fixture {
        let store = Arc::new(MemoryStore::new());
        let presence = Arc::new(MemoryRoomState::new(10));
        let ports = Ports {
            store: store.clone(),
            room_state: presence.clone(),
            limiter: Arc::new(MemoryRateLimiter::new()),
            bus: Arc::new(MemoryBus::new()),
            fallback_limiter: None,
        };
        let access = Access::new(store.clone(), Admins::default());
        Fixture {
            rooms: Rooms::new(&ports, access, &limits),
            presence,
            store,
        }
    }

    async fn user(store: &MemoryStore, name: &str) -> User {
        let name = Username::parse(name).unwrap();
        store.create_user(&name, "hash").await.unwrap()
    }

    #[tokio::test]
    async fn creating_a_room_twice_joins_the_first_and_finding_it_needs_its_slug() {
        let Fixture { rooms, store, .. } = fixture(Limits::default());
        let alice = user(&store, "alice").await;
        let bob = user(&store, "bob").await;
        let (first, created) = rooms
            .create(&alice, "Quiet École", RoomKind::Public)
            .await
            .unwrap();
        assert!(created);
        assert_eq!(first.slug, "quiet-ecole");
        let (again, created) = rooms
            .create(&bob, "quiet ecole", RoomKind::Public)
            .await
            .unwrap();
        assert!(!created);
        assert_eq!(again, first);
        let access = rooms.visible(&bob, "quiet-ecole").await.unwrap();
        assert_eq!(
            (access.room, access.membership),
            (first, Some(Role::Member))
        );
        assert!(matches!(
            rooms.visible(&bob, "nowhere").await,
            Err(ChatError::RoomNotFound)
        ));
        assert!(matches!(
            rooms.create(&bob, "   ", RoomKind::Public).await,
            Err(ChatError::InvalidRoomName(_))
        ));
    }

    #[tokio::test]
    async fn a_private_room_is_new_every_time_and_seen_only_by_its_members() {
        let Fixture { rooms, store, .. } = fixture(Limits::default());
        let alice = user(&store, "alice").await;
        let bob = user(&store, "bob").await;
        let (private, _) = rooms
            .create(&alice, "Secret", RoomKind::Private)
            .await
            .unwrap();
        let (another, _) = rooms
            .create(&alice, "Secret", RoomKind::Private)
            .await
            .unwrap();
        assert_ne!(private.slug, another.slug);
        assert_eq!(
            rooms.visible(&alice, &private.slug).await.unwrap().acts_as,
            Some(Role::Owner)
        );
        assert!(matches!(
            rooms.enter(&bob, &private.slug).await,
            Err(ChatError::RoomNotFound)
        ));
        let mine = rooms
            .list(&bob, RoomScope::Visible, None, true)
            .await
            .unwrap();
        assert!(mine.rooms.is_empty());
    }

    #[tokio::test]
    async fn a_first_visit_makes_a_member_once_and_the_users_next_reads_see_it() {
        let Fixture { rooms, store, .. } = fixture(Limits::default());
        let alice = user(&store, "alice").await;
        let bob = user(&store, "bob").await;
        let (lobby, _) = rooms
            .create(&alice, "Lobby", RoomKind::Public)
            .await
            .unwrap();

        // An upgrade refused after the access check writes nothing.
        let refused = rooms.enter(&bob, "lobby").await.unwrap();
        assert!(refused.is_first_visit());
        drop(refused);
        tokio::task::yield_now().await;
        assert_eq!(store.standing(lobby.id, bob.id).await.unwrap().role, None);

        // The write runs behind the socket; the user's own reads on this process wait
        // for it, so the room is listed as theirs at once.
        let mut entry = rooms.enter(&bob, "lobby").await.unwrap();
        assert_eq!(entry.access.acts_as, Some(Role::Member));
        entry.start_recording();
        let mine = rooms
            .list(&bob, RoomScope::Joined, None, true)
            .await
            .unwrap();
        let listed: Vec<_> = mine.rooms.iter().map(|r| (&r.room, r.role)).collect();
        assert_eq!(listed, [(&lobby, Some(Role::Member))]);

        // Later sockets find a member and write nothing.
        let again = rooms.enter(&bob, "lobby").await.unwrap();
        assert!(!again.is_first_visit());
        assert_eq!(again.access.membership, Some(Role::Member));
    }

    #[tokio::test]
    async fn only_new_rooms_count_against_the_creation_limit() {
        let mut limits = Limits::default();
        limits.room_creates.per_window = 2;
        let Fixture { rooms, store, .. } = fixture(limits);
        let alice = user(&store, "alice").await;
        let bob = user(&store, "bob").await;
        rooms.create(&bob, "Old", RoomKind::Public).await.unwrap();
        rooms.create(&alice, "One", RoomKind::Public).await.unwrap();
        rooms.open_dm(&alice, "bob").await.unwrap();
        assert!(matches!(
            rooms.create(&alice, "Three", RoomKind::Private).await,
            Err(ChatError::TooManyRooms { .. })
        ));
        assert!(matches!(
            rooms.create(&alice, "Three", RoomKind::Public).await,
            Err(ChatError::TooManyRooms { .. })
        ));
        // Joins: an existing room, an open DM.
        let (_, created) = rooms.create(&alice, "old", RoomKind::Public).await.unwrap();
        assert!(!created);
        let (_, created) = rooms.open_dm(&alice, "BOB").await.unwrap();
        assert!(!created);
    }

    #[tokio::test]
    async fn a_burst_of_creations_within_the_limit_all_get_their_places() {
        let mut limits = Limits::default();
        limits.room_creates.per_window = 100;
        let Fixture { rooms, store, .. } = fixture(limits);
        let alice = user(&store, "alice").await;
        let names: Vec<String> = (0..64).map(|n| format!("Burst {n}")).collect();
        let made = futures_util::future::join_all(
            names
                .iter()
                .map(|name| rooms.create(&alice, name, RoomKind::Public)),
        )
        .await;
        assert!(
            made.iter().all(|made| matches!(made, Ok((_, true)))),
            "{made:?}"
        );
    }

    #[tokio::test]
    async fn the_list_is_capped_filtered_by_name_and_counts_who_is_online() {
        let limits = Limits {
            room_list_max: 2,
            ..Limits::default()
        };
        let Fixture {
            rooms,
            presence,
            store,
        } = fixture(limits);
        let alice = user(&store, "alice").await;
        for name in ["Alpha", "Beta", "Gamma"] {
            rooms.create(&alice, name, RoomKind::Public).await.unwrap();
        }
        let all = rooms
            .list(&alice, RoomScope::Visible, None, true)
            .await
            .unwrap();
        assert_eq!(all.rooms.len(), 2);
        assert!(all.truncated);

        let alpha = rooms.visible(&alice, "alpha").await.unwrap().room;
        presence.join(alpha.id, &alice).await.unwrap();
        let found = rooms
            .list(&alice, RoomScope::Visible, Some("ALP"), true)
            .await
            .unwrap();
        assert!(!found.truncated);
        let listed: Vec<_> = found
            .rooms
            .iter()
            .map(|r| (r.room.name.as_str(), r.online, r.role))
            .collect();
        assert_eq!(listed, [("Alpha", 1, Some(Role::Owner))]);
    }
}
