//! Always-valid values and the records the product talks about.
//!
//! A value of a type here has passed its `parse`: the rest of the code never re-checks a
//! username's characters or a body's length. No I/O here.

pub mod history;
mod mentions;
mod values;

pub use history::{HistoryError, HistoryRange, HistoryRequest};
pub use mentions::mentioned_keys;
pub use values::{ClientId, Emoji, MessageBody, Password, RoomName, Slug, Username, ValueError};

use chrono::{DateTime, Utc};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UserId(pub i64);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RoomId(pub i64);

mod seq;
pub use seq::{Rev, Seq};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: UserId,
    pub username: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Room {
    pub id: RoomId,
    pub slug: String,
    pub name: String,
    pub kind: RoomKind,
}

/// Who may see a room (CONTRACT §9): every room of §3 is public; private rooms and direct
/// messages exist only for their members.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RoomKind {
    Public,
    Private,
    Dm,
}

impl RoomKind {
    /// The word clients and the stores use.
    pub const fn as_str(self) -> &'static str {
        match self {
            RoomKind::Public => "public",
            RoomKind::Private => "private",
            RoomKind::Dm => "dm",
        }
    }

    pub fn parse(word: &str) -> Option<RoomKind> {
        [RoomKind::Public, RoomKind::Private, RoomKind::Dm]
            .into_iter()
            .find(|kind| kind.as_str() == word)
    }
}

/// A member's standing in a room (CONTRACT §9). Admins act as owners without a role of
/// their own; that is a rule of the chat service, not a stored role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    Owner,
    Moderator,
    Member,
}

impl Role {
    /// The word clients and the stores use.
    pub const fn as_str(self) -> &'static str {
        match self {
            Role::Owner => "owner",
            Role::Moderator => "moderator",
            Role::Member => "member",
        }
    }

    pub fn parse(word: &str) -> Option<Role> {
        [Role::Owner, Role::Moderator, Role::Member]
            .into_iter()
            .find(|role| role.as_str() == word)
    }
}

/// Which rooms the store's `list_rooms` lists for a viewer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoomScope {
    /// What the viewer may see: every public room, and the private rooms and DMs they are
    /// a member of.
    Visible,
    /// Only the rooms the viewer is a member of (the sidebar).
    Joined,
    /// Only public rooms (the browse page).
    Public,
}

/// A room as a user's room list shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomSummary {
    pub room: Room,
    pub last_message_at: Option<DateTime<Utc>>,
    /// The viewer's stored role; `None` when they are not a member.
    pub role: Option<Role>,
    /// The viewer's read marker and counts; `None` when they are not a member.
    pub attention: Option<Attention>,
}

/// What a member has not read in a room (CONTRACT §11). Counted from the store when asked,
/// never kept as a counter, so it is exact on every process and after a restart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attention {
    /// The last `seq` the member has read.
    pub read_seq: Seq,
    /// The room's last `seq`.
    pub last_seq: Seq,
    /// The room's messages after `read_seq`, not deleted, not the member's own.
    pub unread: u64,
    /// Those of them that mention the member.
    pub mentions: u64,
}

/// A stored message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub id: i64,
    pub room_id: RoomId,
    pub room_slug: String,
    pub seq: Seq,
    pub user_id: UserId,
    pub username: String,
    /// The current text; `""` once deleted.
    pub body: String,
    pub client_id: Option<String>,
    pub sent_at: DateTime<Utc>,
    /// The room's `rev` at the message's latest change (CONTRACT §10).
    pub rev: Rev,
    pub edited_at: Option<DateTime<Utc>>,
    /// Who deleted it: a deleted message is a tombstone, its text gone.
    pub deleted_by: Option<String>,
    pub reply_to: Option<ReplyRef>,
    /// In order of each emoji's first reaction; none once deleted.
    pub reactions: Vec<Reaction>,
    /// The users it mentions who can read the room (CONTRACT §11), canonical usernames,
    /// sorted; none once deleted.
    pub mentions: Vec<String>,
}

impl Message {
    pub fn is_deleted(&self) -> bool {
        self.deleted_by.is_some()
    }
}

/// The message a reply answers, as the reply shows it (CONTRACT §10).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplyRef {
    pub id: i64,
    pub seq: Seq,
    pub username: String,
    /// The first [`REPLY_EXCERPT_CHARS`] characters of the target's current body (`""`
    /// once deleted).
    pub excerpt: String,
    pub deleted: bool,
}

/// Characters of a reply's target shown in the reply.
pub const REPLY_EXCERPT_CHARS: usize = 100;

impl ReplyRef {
    /// A reference to the message `id` (`seq`) whose name, excerpt and tombstone are not
    /// known here: what the message cache holds, to be resolved from the store when read
    /// (so no edit or delete of a target ever has a cached copy of its text to change).
    pub fn unresolved(id: i64, seq: Seq) -> ReplyRef {
        ReplyRef {
            id,
            seq,
            username: String::new(),
            excerpt: String::new(),
            deleted: false,
        }
    }

    /// The reference to `target` as it is now.
    pub fn to(target: &Message) -> ReplyRef {
        ReplyRef {
            id: target.id,
            seq: target.seq,
            username: target.username.clone(),
            excerpt: excerpt(&target.body),
            deleted: target.is_deleted(),
        }
    }
}

/// The first [`REPLY_EXCERPT_CHARS`] characters of `body`.
pub fn excerpt(body: &str) -> String {
    body.chars().take(REPLY_EXCERPT_CHARS).collect()
}

/// One emoji's reactions to a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reaction {
    pub emoji: String,
    /// Who reacted with it, sorted; the count is their number.
    pub users: Vec<String>,
}

impl Reaction {
    /// A message's reactions as it shows them, from its stored `(emoji, username)` pairs in
    /// the order they were made: one entry per emoji, in order of the emoji's first
    /// (standing) reaction, its users sorted. Every store aggregates here, so the three
    /// cannot order them differently (a database's collation would sort names its own way).
    pub fn aggregate(made: impl IntoIterator<Item = (String, String)>) -> Vec<Reaction> {
        let mut reactions: Vec<Reaction> = Vec::new();
        for (emoji, user) in made {
            match reactions.iter_mut().find(|r| r.emoji == emoji) {
                Some(reaction) => reaction.users.push(user),
                None => reactions.push(Reaction {
                    emoji,
                    users: vec![user],
                }),
            }
        }
        for reaction in &mut reactions {
            reaction.users.sort();
        }
        reactions
    }
}

/// A message before the store has given it an id, a `seq` and a time.
#[derive(Debug, Clone)]
pub struct NewMessage {
    pub room: Room,
    pub user: User,
    pub body: MessageBody,
    pub client_id: Option<ClientId>,
    /// The message it replies to, checked to be of the same room.
    pub reply_to: Option<ReplyRef>,
}

impl NewMessage {
    /// The usernames (keys) its body mentions; the store keeps those who can read the room.
    pub fn mentioned_keys(&self) -> Vec<String> {
        mentioned_keys(self.body.as_str())
    }

    /// The message as the store keeps it, once it has an id, a `seq`, a `rev`, a time and
    /// the users it mentions.
    pub fn stored(
        &self,
        id: i64,
        seq: Seq,
        rev: Rev,
        sent_at: chrono::DateTime<chrono::Utc>,
        mentions: Vec<String>,
    ) -> Message {
        Message {
            id,
            room_id: self.room.id,
            room_slug: self.room.slug.clone(),
            seq,
            user_id: self.user.id,
            username: self.user.username.clone(),
            body: self.body.as_str().to_owned(),
            client_id: self.client_id.as_ref().map(|c| c.as_str().to_owned()),
            sent_at,
            rev,
            edited_at: None,
            deleted_by: None,
            reply_to: self.reply_to.clone(),
            reactions: Vec::new(),
            mentions,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reactions_show_each_emoji_once_in_order_of_first_reaction_with_users_sorted() {
        let made = [
            ("🎉", "bob"),
            ("👍", "carol"),
            ("🎉", "Alice"),
            ("🎉", "alice"),
        ];
        let shown = Reaction::aggregate(made.map(|(e, u)| (e.to_owned(), u.to_owned())));
        assert_eq!(
            shown,
            [
                Reaction {
                    emoji: "🎉".into(),
                    users: vec!["Alice".into(), "alice".into(), "bob".into()],
                },
                Reaction {
                    emoji: "👍".into(),
                    users: vec!["carol".into()],
                },
            ]
        );
        assert!(Reaction::aggregate([]).is_empty());
    }

    #[test]
    fn an_excerpt_is_the_first_100_characters() {
        let body = "é".repeat(150);
        assert_eq!(excerpt(&body), "é".repeat(REPLY_EXCERPT_CHARS));
        assert_eq!(excerpt("short"), "short");
    }
}
