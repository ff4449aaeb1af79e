//! Members of a room (CONTRACT §9): the list with roles and who is online, adding,
//! roles, removing and leaving, bans. Membership lasts until a member leaves or is
//! removed; it is not presence ([`super::Visits`] is).
//!
//! A removal reaches every process as [`BusEvent::MemberRemoved`]: each closes the removed
//! user's sockets to the room with `4403` (the hub keeps it a while, for a socket that
//! was still joining).

use std::collections::HashSet;
use std::sync::Arc;

use super::access::{Access, RoomAccess};
use super::{store_call, user_named, ChatError};
use crate::domain::{Role, RoomKind, User};
use crate::ports::{Added, Bus, BusEvent, Presence, Store};

/// A member as the members list shows them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberListing {
    pub username: String,
    pub role: Role,
    /// Has a connection to the room now, on any process.
    pub online: bool,
}

/// A ban as the bans list shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BanListing {
    pub username: String,
    pub by: String,
    pub at: chrono::DateTime<chrono::Utc>,
}

pub struct Members {
    store: Arc<dyn Store>,
    presence: Arc<dyn Presence>,
    bus: Arc<dyn Bus>,
    access: Access,
}

impl Members {
    pub(super) fn new(ports: &super::Ports, access: Access) -> Members {
        Members {
            store: ports.store.clone(),
            presence: ports.room_state.clone(),
            bus: ports.bus.clone(),
            access,
        }
    }

    /// The room's members, sorted by username, for anyone who may see the room.
    pub async fn list(&self, user: &User, slug: &str) -> Result<Vec<MemberListing>, ChatError> {
        let access = self.access.visible(user, slug).await?;
        let room = access.room.id;
        self.access.first_visits().settled_for_room(room).await;
        let (members, online) = tokio::join!(
            store_call(self.store.members(room)),
            self.presence.members(room)
        );
        let online: HashSet<String> = online
            .unwrap_or_else(|e| {
                // The list is still right without who is online.
                tracing::warn!(error = %e, "presence unavailable for the members list");
                Vec::new()
            })
            .into_iter()
            .collect();
        let mut members: Vec<_> = members?
            .into_iter()
            .map(|member| MemberListing {
                online: online.contains(&member.user.username),
                username: member.user.username,
                role: member.role,
            })
            .collect();
        members.sort_by(|a, b| a.username.cmp(&b.username));
        Ok(members)
    }

    /// Adds `username` as a member: owners and moderators may, and in a public room any
    /// member. Already a member is fine; a banned user is refused.
    pub async fn add(&self, actor: &User, slug: &str, username: &str) -> Result<(), ChatError> {
        let access = self.managed(actor, slug).await?;
        let may_add =
            access.moderates() || (access.room.kind == RoomKind::Public && access.is_member());
        if !may_add {
            return Err(ChatError::Forbidden(
                "only owners and moderators add members here",
            ));
        }
        let target = self.user(username).await?;
        match store_call(
            self.store
                .add_member(access.room.id, target.id, Role::Member),
        )
        .await?
        {
            Added::Added | Added::AlreadyMember => Ok(()),
            Added::Banned => Err(ChatError::Banned),
        }
    }

    /// Makes a member a moderator or a member again: the owner's call.
    pub async fn set_role(
        &self,
        actor: &User,
        slug: &str,
        username: &str,
        role: &str,
    ) -> Result<(), ChatError> {
        let access = self.managed(actor, slug).await?;
        if !access.owns() {
            return Err(ChatError::Forbidden("only the owner gives roles"));
        }
        let role = match Role::parse(role) {
            Some(role @ (Role::Moderator | Role::Member)) => role,
            _ => return Err(ChatError::InvalidRole),
        };
        let target = self.user(username).await?;
        self.refuse_protected(&access, actor, &target, "change their own role")
            .await?;
        if store_call(self.store.set_role(access.room.id, target.id, role)).await? {
            Ok(())
        } else {
            Err(ChatError::InvalidTarget(
                "they are not a member of this room",
            ))
        }
    }

    /// Removes `username`: oneself (leaving), or another member by an owner or moderator
    /// (a moderator not another moderator). Their sockets to the room close everywhere.
    pub async fn remove(&self, actor: &User, slug: &str, username: &str) -> Result<(), ChatError> {
        let access = self.managed(actor, slug).await?;
        let target = self.user(username).await?;
        if target.id == actor.id {
            return self.leave(&access, actor).await;
        }
        self.may_remove(&access, actor, &target).await?;
        store_call(self.store.remove_member(access.room.id, target.id)).await?;
        self.close_sockets(&access, &target).await;
        Ok(())
    }

    async fn leave(&self, access: &RoomAccess, user: &User) -> Result<(), ChatError> {
        let room = &access.room;
        if room.kind == RoomKind::Private && access.membership == Some(Role::Owner) {
            let members = store_call(self.store.members(room.id)).await?;
            if members.iter().any(|member| member.user.id != user.id) {
                return Err(ChatError::OwnerCannotLeave);
            }
        }
        store_call(self.store.remove_member(room.id, user.id)).await?;
        self.close_sockets(access, user).await;
        Ok(())
    }

    /// Bans `username` (owner or moderator): removes them and keeps them out.
    pub async fn ban(&self, actor: &User, slug: &str, username: &str) -> Result<(), ChatError> {
        let access = self.managed(actor, slug).await?;
        let target = self.user(username).await?;
        if target.id == actor.id {
            return Err(ChatError::InvalidTarget(
                "you cannot ban yourself; leave the room instead",
            ));
        }
        self.may_remove(&access, actor, &target).await?;
        store_call(self.store.ban(access.room.id, target.id, actor.id)).await?;
        self.close_sockets(&access, &target).await;
        Ok(())
    }

    /// Lifts a ban (owner or moderator); lifting none is fine.
    pub async fn unban(&self, actor: &User, slug: &str, username: &str) -> Result<(), ChatError> {
        let access = self.moderated(actor, slug).await?;
        let target = self.user(username).await?;
        store_call(self.store.unban(access.room.id, target.id)).await?;
        Ok(())
    }

    /// The room's bans, sorted by username (owner or moderator).
    pub async fn bans(&self, actor: &User, slug: &str) -> Result<Vec<BanListing>, ChatError> {
        let access = self.moderated(actor, slug).await?;
        let mut bans: Vec<_> = store_call(self.store.bans(access.room.id))
            .await?
            .into_iter()
            .map(|ban| BanListing {
                username: ban.user.username,
                by: ban.by.username,
                at: ban.at,
            })
            .collect();
        bans.sort_by(|a, b| a.username.cmp(&b.username));
        Ok(bans)
    }

    /// Access to a room whose members change: a DM's never do.
    async fn managed(&self, actor: &User, slug: &str) -> Result<RoomAccess, ChatError> {
        let access = self.access.visible(actor, slug).await?;
        if access.room.kind == RoomKind::Dm {
            return Err(ChatError::NotAllowedInDm);
        }
        Ok(access)
    }

    /// [`Members::managed`], for an owner or moderator.
    async fn moderated(&self, actor: &User, slug: &str) -> Result<RoomAccess, ChatError> {
        let access = self.managed(actor, slug).await?;
        if !access.moderates() {
            return Err(ChatError::Forbidden(
                "only owners and moderators manage bans",
            ));
        }
        Ok(access)
    }

    /// Whether `actor` may remove or ban `target` (not themselves: the callers see to it).
    async fn may_remove(
        &self,
        access: &RoomAccess,
        actor: &User,
        target: &User,
    ) -> Result<(), ChatError> {
        if !access.moderates() {
            return Err(ChatError::Forbidden(
                "only owners and moderators remove members",
            ));
        }
        let target_role = self
            .refuse_protected(access, actor, target, "remove yourself; leave instead")
            .await?;
        if target_role == Some(Role::Moderator) && !access.owns() {
            return Err(ChatError::Forbidden("a moderator cannot remove another"));
        }
        Ok(())
    }

    /// Refuses acting on oneself, the owner or an admin; returns the target's role.
    async fn refuse_protected(
        &self,
        access: &RoomAccess,
        actor: &User,
        target: &User,
        on_oneself: &'static str,
    ) -> Result<Option<Role>, ChatError> {
        if target.id == actor.id {
            return Err(ChatError::InvalidTarget(on_oneself));
        }
        if self.access.is_admin(target) {
            return Err(ChatError::InvalidTarget("an admin cannot be acted on"));
        }
        let standing = store_call(self.store.standing(access.room.id, target.id)).await?;
        if standing.role == Some(Role::Owner) {
            return Err(ChatError::InvalidTarget("the owner cannot be acted on"));
        }
        Ok(standing.role)
    }

    async fn user(&self, username: &str) -> Result<User, ChatError> {
        user_named(&*self.store, username).await
    }

    /// Tells every process to close the user's sockets to the room.
    async fn close_sockets(&self, access: &RoomAccess, user: &User) {
        let event = BusEvent::MemberRemoved {
            room: access.room.id,
            user: user.id,
        };
        if let Err(e) = self.bus.publish(event).await {
            // The store already says they are out: a new socket is refused everywhere, and
            // this process's own were closed by the adapter's local delivery.
            tracing::warn!(error = %e, "could not tell other processes about a removal");
        }
    }
}
