//! The store: the truth for accounts, sessions, rooms and every message.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::BoxError;
use crate::domain::{
    Attention, Emoji, HistoryRange, Message, MessageBody, NewMessage, ReplyRef, Rev, Role, Room,
    RoomId, RoomKind, RoomName, RoomScope, RoomSummary, Seq, Slug, User, UserId, Username,
};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A unique value (a username) is already taken.
    #[error("already exists")]
    Duplicate,
    /// The store could not be reached or failed; nothing was written.
    #[error("store unavailable: {0}")]
    Unavailable(#[source] BoxError),
}

/// A live session: who it belongs to and when it ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRecord {
    pub user: User,
    pub expires_at: DateTime<Utc>,
}

/// What [`Store::append_message`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Appended {
    pub message: Message,
    /// False when the same `(user, client_id)` was already stored and this is that message.
    pub fresh: bool,
}

/// A room to create, with the user who becomes its owner.
#[derive(Debug, Clone, Copy)]
pub struct NewRoom<'a> {
    pub slug: &'a Slug,
    pub name: &'a RoomName,
    /// `Public` or `Private`; a DM is made by [`Store::open_dm`].
    pub kind: RoomKind,
    pub owner: UserId,
}

/// The two members of a direct message, in either order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DmPair(pub UserId, pub UserId);

impl DmPair {
    /// The pair's one key, whichever of the two asks: `"low:high"`.
    pub fn key(&self) -> String {
        let (low, high) = if self.0 <= self.1 {
            (self.0, self.1)
        } else {
            (self.1, self.0)
        };
        format!("{}:{}", low.0, high.0)
    }
}

/// Where a user stands in a room.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Standing {
    /// Their stored role; `None` when not a member.
    pub role: Option<Role>,
    pub banned: bool,
}

/// What [`Store::add_member`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Added {
    Added,
    /// Already a member: nothing changed, their role is kept.
    AlreadyMember,
    /// The user is banned from the room: nothing changed.
    Banned,
}

/// A member of a room.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberRecord {
    pub user: User,
    pub role: Role,
}

/// A ban: who, by whom, when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BanRecord {
    pub user: User,
    pub by: User,
    pub at: DateTime<Utc>,
}

/// A change to a stored message (CONTRACT §10), for [`Store::change_message`]. Who may
/// make it is the chat rules' decision; the store keeps what must hold in one transaction.
#[derive(Debug, Clone, Copy)]
pub enum MessageChange<'a> {
    /// A new body; `at` becomes `edited_at`.
    Edit {
        body: &'a MessageBody,
        at: DateTime<Utc>,
    },
    /// Makes a tombstone: the body is erased and the reactions removed in the same
    /// transaction.
    Delete {
        by: UserId,
    },
    React {
        user: UserId,
        emoji: &'a Emoji,
    },
    Unreact {
        user: UserId,
        emoji: &'a Emoji,
    },
}

/// The most distinct emoji one message carries (CONTRACT §10).
pub const MAX_EMOJI_PER_MESSAGE: usize = 20;

/// What [`Store::change_message`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Changed {
    /// Changed: the message's current state, with the room's new `rev`.
    Changed(Message),
    /// Nothing to change (the same body, a reaction already there or already absent):
    /// the message as it is; the room's `rev` did not move.
    Unchanged(Message),
    /// No message of that id in the room.
    UnknownMessage,
    /// The message is deleted: nothing about it changes any more.
    Deleted,
    /// A reaction with a new emoji on a message that has [`MAX_EMOJI_PER_MESSAGE`].
    TooManyReactions,
}

#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Answers when the store can serve requests.
    async fn ping(&self) -> Result<(), StoreError>;

    /// `Duplicate` when the name is taken, compared case-insensitively.
    async fn create_user(
        &self,
        username: &Username,
        password_hash: &str,
    ) -> Result<User, StoreError>;
    /// The user and their password hash, by case-insensitive name.
    async fn find_credentials(
        &self,
        username: &Username,
    ) -> Result<Option<(User, String)>, StoreError>;

    /// Sessions are found by the hash of their token; the token itself is never stored.
    async fn create_session(
        &self,
        token_hash: &[u8],
        user: UserId,
        expires_at: DateTime<Utc>,
    ) -> Result<(), StoreError>;
    /// Only a session that has not expired.
    async fn find_session(
        &self,
        token_hash: &[u8],
        now: DateTime<Utc>,
    ) -> Result<Option<SessionRecord>, StoreError>;
    async fn delete_session(&self, token_hash: &[u8]) -> Result<(), StoreError>;

    /// The user, by case-insensitive name.
    async fn find_user(&self, username: &Username) -> Result<Option<User>, StoreError>;

    /// Creates the room with its owner as its first member (one transaction), or returns
    /// the room that has this slug, changing nothing; `true` when it was created.
    async fn create_room(&self, room: NewRoom<'_>) -> Result<(Room, bool), StoreError>;
    async fn find_room(&self, slug: &Slug) -> Result<Option<Room>, StoreError>;
    /// The pair's direct message: created with both users as members (role `member`, one
    /// transaction) under `slug` and `name`, or the one that exists, whichever of the two
    /// asks and however many ask at once, on any process; `true` when it was created.
    async fn open_dm(
        &self,
        pair: DmPair,
        slug: &Slug,
        name: &str,
    ) -> Result<(Room, bool), StoreError>;
    async fn find_dm(&self, pair: DmPair) -> Result<Option<Room>, StoreError>;
    /// The rooms of `scope` for `viewer`, most recently active first (by the last message,
    /// or creation for a room without one); `limit` of them after skipping `offset`. Each
    /// carries the viewer's role and, with `attention`, their marker and counts
    /// (CONTRACT §11; counting costs a range read per member room, so callers that show
    /// no counts leave them out).
    async fn list_rooms(
        &self,
        viewer: UserId,
        scope: RoomScope,
        offset: usize,
        limit: usize,
        attention: bool,
    ) -> Result<Vec<RoomSummary>, StoreError>;

    /// The user's role in the room, and whether they are banned from it.
    async fn standing(&self, room: RoomId, user: UserId) -> Result<Standing, StoreError> {
        let mut standings = self.standings(room, &[user]).await?;
        Ok(standings.pop().unwrap_or_default())
    }
    /// [`Store::standing`] of each of `users` (in their order), in one read: a crowd
    /// opening a room asks once, not once each.
    async fn standings(&self, room: RoomId, users: &[UserId]) -> Result<Vec<Standing>, StoreError>;
    /// Makes the user a member with `role`, unless they already are one (their role is
    /// kept) or are banned. Atomic with [`Store::ban`]: a user is never left both a member
    /// and banned, even when the two race on different processes.
    async fn add_member(&self, room: RoomId, user: UserId, role: Role)
        -> Result<Added, StoreError>;
    /// [`Store::add_member`] of each of `users` (answers in their order), as few
    /// transactions as the store can: a crowd's first visits (CONTRACT §9). A store that
    /// batches its writes anyway keeps this default.
    async fn add_members(
        &self,
        room: RoomId,
        users: &[UserId],
        role: Role,
    ) -> Result<Vec<Added>, StoreError> {
        futures_util::future::try_join_all(
            users.iter().map(|user| self.add_member(room, *user, role)),
        )
        .await
    }
    /// `false` (and nothing changes) when the user is not a member.
    async fn set_role(&self, room: RoomId, user: UserId, role: Role) -> Result<bool, StoreError>;
    /// `false` when the user was not a member.
    async fn remove_member(&self, room: RoomId, user: UserId) -> Result<bool, StoreError>;
    /// Every member of the room with their role, in no particular order.
    async fn members(&self, room: RoomId) -> Result<Vec<MemberRecord>, StoreError>;
    /// Removes the user's membership and records the ban (one transaction); banning a
    /// banned user again changes nothing.
    async fn ban(&self, room: RoomId, user: UserId, by: UserId) -> Result<(), StoreError>;
    /// `false` when the user was not banned.
    async fn unban(&self, room: RoomId, user: UserId) -> Result<bool, StoreError>;
    /// Every ban of the room, in no particular order.
    async fn bans(&self, room: RoomId) -> Result<Vec<BanRecord>, StoreError>;

    /// Stores a message: allocates the room's next `seq`, its next `rev` and the id in one
    /// transaction (a reply's target is the caller's to check: same room).
    /// A `(user, client_id)` already stored returns that message with `fresh: false`
    /// and changes nothing. Returns only after the message is durable.
    async fn append_message(&self, message: NewMessage) -> Result<Appended, StoreError>;
    async fn find_by_client_id(
        &self,
        user: UserId,
        client_id: &str,
    ) -> Result<Option<Message>, StoreError>;
    /// The room's highest `seq` (0 when it has no messages).
    async fn last_seq(&self, room: RoomId) -> Result<Seq, StoreError>;
    /// The room's `rev` (0 before its first change).
    async fn last_rev(&self, room: RoomId) -> Result<Rev, StoreError>;
    /// One message of the room, as it is now; `None` when the room has no such id.
    async fn message(&self, room: &Room, id: i64) -> Result<Option<Message>, StoreError>;
    /// The member's read marker and counts in the room; `None` when they are not a member.
    async fn attention(&self, room: RoomId, user: UserId) -> Result<Option<Attention>, StoreError>;
    /// Moves the member's read marker to `seq` unless it is there or beyond already (it
    /// never moves back; `seq` is the caller's to check against the room's last), and
    /// returns the marker and counts after; `None` when they are not a member.
    async fn mark_read(
        &self,
        room: RoomId,
        user: UserId,
        seq: Seq,
    ) -> Result<Option<Attention>, StoreError>;
    /// The messages `ids` of the room as replies quote them now (CONTRACT §10 `reply_to`),
    /// in no particular order; an id not of this room is left out.
    async fn reply_refs(&self, room: &Room, ids: &[i64]) -> Result<Vec<ReplyRef>, StoreError>;
    /// Changes a message of `room` and allocates the room's next `rev` in one
    /// transaction, unless nothing changes; returns once durable.
    async fn change_message(
        &self,
        room: &Room,
        id: i64,
        change: MessageChange<'_>,
    ) -> Result<Changed, StoreError>;
    /// The current state of up to `limit` messages of the room whose `rev` is after
    /// `after` and whose `seq` is at most `up_to`, in `rev` order (each message once).
    async fn changes(
        &self,
        room: &Room,
        after: Rev,
        up_to: Seq,
        limit: u32,
    ) -> Result<Vec<Message>, StoreError>;
    /// Up to `limit` messages of `range`, oldest first.
    async fn messages(
        &self,
        room: &Room,
        range: HistoryRange,
        limit: u32,
    ) -> Result<Vec<Message>, StoreError>;

    /// Finishes pending writes and closes connections (at shutdown).
    async fn close(&self) {}
}
