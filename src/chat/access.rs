//! Who may see a room and act in it (CONTRACT §9): the one place that decides, so that a
//! private room or DM is invisible to a non-member on every route, page and socket alike.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use super::crowd::Crowd;
use super::first_visits::FirstVisits;
use super::{store_call, ChatError};
use crate::domain::{Role, Room, RoomKind, Slug, User, UserId, Username};
use crate::ports::{Standing, Store};

/// A user's standing in a room they may see.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomAccess {
    pub room: Room,
    /// Their stored role; `None` when they are not a member (of a public room).
    pub membership: Option<Role>,
    /// The role they act with: their own, or an admin's `Owner`.
    pub acts_as: Option<Role>,
    /// When the store was asked: a removal that arrives after this may have been missed
    /// by the check (the hub closes a socket let in by it).
    pub checked_at: Instant,
}

impl RoomAccess {
    pub fn is_member(&self) -> bool {
        self.membership.is_some()
    }

    /// Owners and moderators (and admins) remove, ban and see bans.
    pub fn moderates(&self) -> bool {
        matches!(self.acts_as, Some(Role::Owner | Role::Moderator))
    }

    pub fn owns(&self) -> bool {
        self.acts_as == Some(Role::Owner)
    }
}

/// `ADMIN_USERNAMES`, compared case-insensitively.
#[derive(Debug, Clone, Default)]
pub struct Admins(HashSet<String>);

impl Admins {
    /// From the configured names; names that cannot be usernames are skipped.
    pub fn new<'a>(names: impl IntoIterator<Item = &'a str>) -> Admins {
        Admins(
            names
                .into_iter()
                .filter_map(|name| Username::parse(name.trim()).ok())
                .map(|name| name.key())
                .collect(),
        )
    }

    pub fn contains(&self, username: &str) -> bool {
        !self.0.is_empty() && self.0.contains(&username.to_lowercase())
    }
}

/// Finds rooms and decides who may see them; shared by the areas that take a slug.
#[derive(Clone)]
pub(super) struct Access {
    store: Arc<dyn Store>,
    admins: Arc<Admins>,
    known: Arc<KnownRooms>,
    first_visits: Arc<FirstVisits>,
    standings: Arc<Crowd<UserId, Standing>>,
}

impl Access {
    pub fn new(store: Arc<dyn Store>, admins: Admins) -> Access {
        Access {
            first_visits: FirstVisits::new(store.clone()),
            store,
            admins: Arc::new(admins),
            known: Arc::default(),
            standings: Crowd::new(),
        }
    }

    /// The memberships first visits are writing on this process.
    pub fn first_visits(&self) -> &Arc<FirstVisits> {
        &self.first_visits
    }

    /// A room by slug, for `user`: `RoomNotFound` unless it exists and they may see it,
    /// `Banned` from a public room they are banned from.
    pub async fn visible(&self, user: &User, slug: &str) -> Result<RoomAccess, ChatError> {
        let room = self.find(slug).await?;
        self.first_visits.settled(room.id, user.id).await;
        self.check(user, room).await
    }

    /// A room by slug, whoever asks: only for callers that check access themselves.
    async fn find(&self, slug: &str) -> Result<Room, ChatError> {
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

    /// Remembers a room just made or joined, so that its crowd's look-ups skip the store.
    pub fn remember(&self, room: &Room) {
        self.known.remember(room);
    }

    pub fn is_admin(&self, user: &User) -> bool {
        self.admins.contains(&user.username)
    }

    /// The user's access to `room`: `RoomNotFound` when it is private or a DM and they are
    /// not a member (a banned user is no longer one), `Banned` from a public room.
    pub async fn check(&self, user: &User, room: Room) -> Result<RoomAccess, ChatError> {
        let checked_at = Instant::now();
        let store = self.store.clone();
        let standing = self
            .standings
            .ask(room.id, user.id, move |room, users| {
                let store = store.clone();
                async move { store_call(store.standings(room, &users)).await }
            })
            .await?;
        self.decide(user, room, standing, checked_at)
    }

    /// [`Access::check`] with the standing already read.
    fn decide(
        &self,
        user: &User,
        room: Room,
        standing: Standing,
        checked_at: Instant,
    ) -> Result<RoomAccess, ChatError> {
        let public = room.kind == RoomKind::Public;
        if !public && standing.role.is_none() {
            return Err(ChatError::RoomNotFound);
        }
        if standing.banned {
            return Err(if public {
                ChatError::Banned
            } else {
                ChatError::RoomNotFound
            });
        }
        // Admins act as owners in every public room and the private rooms they are in;
        // a DM has no owner.
        let admin_here = room.kind != RoomKind::Dm && self.is_admin(user);
        let acts_as = if admin_here {
            Some(Role::Owner)
        } else {
            standing.role
        };
        Ok(RoomAccess {
            room,
            membership: standing.role,
            acts_as,
            checked_at,
        })
    }
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
