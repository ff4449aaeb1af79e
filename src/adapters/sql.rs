//! What the two SQL stores share: embedded migrations (every file, by `build.rs`), the
//! message columns, and the mapping of driver errors.

use std::borrow::Cow;
use std::collections::HashMap;

use sqlx::migrate::{Migration, MigrationType, Migrator};

use crate::domain::{
    excerpt, Attention, Reaction, ReplyRef, Rev, Role, RoomKind, RoomScope, Seq, UserId,
};
use crate::ports::{Standing, StoreError};

// `SQLITE_MIGRATIONS` and `POSTGRES_MIGRATIONS`: every file of `migrations/<store>/`, in
// version order, embedded by `build.rs`.
include!(concat!(env!("OUT_DIR"), "/migrations.rs"));

/// A migrator for one store's embedded migrations ([`SQLITE_MIGRATIONS`] or
/// [`POSTGRES_MIGRATIONS`]); no database is needed at build time.
pub(super) fn migrator(migrations: &'static [(i64, &'static str, &'static str)]) -> Migrator {
    let migrations = migrations
        .iter()
        .map(|&(version, description, sql)| {
            Migration::new(
                version,
                Cow::Borrowed(description),
                MigrationType::Simple,
                Cow::Borrowed(sql),
                false,
            )
        })
        .collect();
    Migrator {
        migrations: Cow::Owned(migrations),
        ..Migrator::DEFAULT
    }
}

/// A room counter (`seq`, `rev`) is a BIGINT/INTEGER column; reading a negative one is a
/// corrupt row, an error rather than a value that breaks the counter's promise.
macro_rules! counter_column {
    ($counter:ty, $what:literal) => {
        impl<DB: sqlx::Database> sqlx::Type<DB> for $counter
        where
            i64: sqlx::Type<DB>,
        {
            fn type_info() -> DB::TypeInfo {
                <i64 as sqlx::Type<DB>>::type_info()
            }

            fn compatible(ty: &DB::TypeInfo) -> bool {
                <i64 as sqlx::Type<DB>>::compatible(ty)
            }
        }

        impl<'r, DB: sqlx::Database> sqlx::Decode<'r, DB> for $counter
        where
            i64: sqlx::Decode<'r, DB>,
        {
            fn decode(value: DB::ValueRef<'r>) -> Result<$counter, sqlx::error::BoxDynError> {
                let raw = <i64 as sqlx::Decode<'r, DB>>::decode(value)?;
                <$counter>::new(raw)
                    .ok_or_else(|| format!("a negative {} ({raw}) in the store", $what).into())
            }
        }

        impl<'q, DB: sqlx::Database> sqlx::Encode<'q, DB> for $counter
        where
            i64: sqlx::Encode<'q, DB>,
        {
            fn encode_by_ref(
                &self,
                buf: &mut DB::ArgumentBuffer<'q>,
            ) -> Result<sqlx::encode::IsNull, sqlx::error::BoxDynError> {
                <i64 as sqlx::Encode<'q, DB>>::encode_by_ref(&self.get(), buf)
            }
        }
    };
}

counter_column!(Seq, "seq");
counter_column!(Rev, "rev");

/// A TEXT column holding one of an enum's `as_str` words (a CHECK keeps it to those
/// words): a room's `kind`, a member's `role`. Any other word is a corrupt row, an error.
macro_rules! text_column {
    ($value:ty, $what:literal) => {
        impl<DB: sqlx::Database> sqlx::Type<DB> for $value
        where
            String: sqlx::Type<DB>,
        {
            fn type_info() -> DB::TypeInfo {
                <String as sqlx::Type<DB>>::type_info()
            }

            fn compatible(ty: &DB::TypeInfo) -> bool {
                <String as sqlx::Type<DB>>::compatible(ty)
            }
        }

        impl<'r, DB: sqlx::Database> sqlx::Decode<'r, DB> for $value
        where
            String: sqlx::Decode<'r, DB>,
        {
            fn decode(value: DB::ValueRef<'r>) -> Result<$value, sqlx::error::BoxDynError> {
                let word = <String as sqlx::Decode<'r, DB>>::decode(value)?;
                <$value>::parse(&word)
                    .ok_or_else(|| format!("an unknown {} {word:?} in the store", $what).into())
            }
        }

        impl<'q, DB: sqlx::Database> sqlx::Encode<'q, DB> for $value
        where
            String: sqlx::Encode<'q, DB>,
        {
            fn encode_by_ref(
                &self,
                buf: &mut DB::ArgumentBuffer<'q>,
            ) -> Result<sqlx::encode::IsNull, sqlx::error::BoxDynError> {
                <String as sqlx::Encode<'q, DB>>::encode_by_ref(&self.as_str().to_owned(), buf)
            }
        }
    };
}

text_column!(RoomKind, "room kind");
text_column!(Role, "role");

/// The room columns every room read selects, in [`Room`](crate::domain::Room)'s order.
/// Unqualified, as is [`ROOM_LIST_ORDER`]: no other table the room list joins has a column
/// of these names.
pub(super) const ROOM_COLUMNS: &str = "id, slug, name, kind";

/// The room list's order (the store port's `list_rooms`), as both schemas name the
/// columns: most recently active first, by the last message or, for a room without one,
/// its creation; the newer room first on a tie, so pages never overlap. The in-process
/// store keeps the same rule, and the store suite holds all three to it.
pub(super) const ROOM_LIST_ORDER: &str = "COALESCE(last_message_at, created_at) DESC, id DESC";

/// The store port's `list_rooms` in both stores' SQL, given their placeholders for the
/// viewer, the limit and the offset; it selects [`ROOM_COLUMNS`], `last_message_at`, `created_at`,
/// the viewer's `role` and their [`ATTENTION_COLUMNS`]. Joined on the room and the viewer, the viewer's membership of a
/// room is found by index, never by reading the room's memberships; for
/// [`RoomScope::Joined`] the viewer's rooms come from `memberships_user` instead of every
/// room.
pub(super) fn room_list_sql(
    scope: RoomScope,
    [viewer, limit, offset]: [&str; 3],
    attention: bool,
) -> String {
    let public = RoomKind::Public.as_str();
    let (join, visible) = match scope {
        RoomScope::Joined => ("JOIN", String::new()),
        RoomScope::Visible => (
            "LEFT JOIN",
            format!("WHERE kind = '{public}' OR mb.user_id IS NOT NULL"),
        ),
        RoomScope::Public => ("LEFT JOIN", format!("WHERE kind = '{public}'")),
    };
    let counts = if attention {
        ATTENTION_COLUMNS
    } else {
        "NULL AS read_seq, NULL AS last_seq, NULL AS unread, NULL AS mentions"
    };
    format!(
        "SELECT {ROOM_COLUMNS}, last_message_at, created_at, mb.role AS role, {counts} \
         FROM rooms r {join} memberships mb ON mb.room_id = r.id AND mb.user_id = {viewer} \
         {visible} ORDER BY {ROOM_LIST_ORDER} LIMIT {limit} OFFSET {offset}"
    )
}

/// The joins that give each user id `u.value` their membership `m` and ban `b` in the
/// room of placeholder `room`: both by primary key.
pub(super) fn standing_joins(room: &str) -> String {
    format!(
        "LEFT JOIN memberships m ON m.room_id = {room} AND m.user_id = u.value \
         LEFT JOIN bans b ON b.room_id = {room} AND b.user_id = u.value"
    )
}

/// The standings of `users`, in their order, from rows of (user id, role, banned); a
/// user without a row stands nowhere.
pub(super) fn standings_in_order(
    users: &[UserId],
    rows: Vec<(i64, Option<Role>, bool)>,
) -> Vec<Standing> {
    let found: HashMap<i64, Standing> = rows
        .into_iter()
        .map(|(user, role, banned)| (user, Standing { role, banned }))
        .collect();
    users
        .iter()
        .map(|user| found.get(&user.0).copied().unwrap_or_default())
        .collect()
}

/// A message's columns as both schemas name them, for
/// `const MESSAGE_COLUMNS: &str = message_columns!("…")` in each store, given the store's
/// SQL for the message's reactions as JSON (`[[emoji, username], …]` in the order they
/// were made, or NULL), then `SELECT {MESSAGE_COLUMNS} WHERE …`. One statement reads the
/// message, its reply's target as it is now and its reactions, so they agree with each
/// other whatever commits meanwhile, and a page of history is one query. The columns, in
/// order: 0 id, 1 room id, 2 room slug, 3 seq, 4 user id, 5 username, 6 body, 7 client_id,
/// 8 sent_at, 9 rev, 10 edited_at, 11 the deleter's username, 12–16 the reply's target
/// (id, seq, username, body, deleted), 17 the reactions, 18 the mentioned usernames (the
/// store's SQL for a JSON array of them, or NULL).
macro_rules! message_columns {
    ($reactions_json:literal, $mentions_json:literal) => {
        concat!(
            "m.id, m.room_id, r.slug, m.seq, m.user_id, u.username, m.body, m.client_id, m.sent_at, \
             m.rev, m.edited_at, d.username, \
             t.id, t.seq, tu.username, t.body, t.deleted_by IS NOT NULL, ",
            $reactions_json,
            ", ",
            $mentions_json,
            " FROM messages m JOIN users u ON u.id = m.user_id JOIN rooms r ON r.id = m.room_id \
             LEFT JOIN users d ON d.id = m.deleted_by \
             LEFT JOIN messages t ON t.id = m.reply_to LEFT JOIN users tu ON tu.id = t.user_id"
        )
    };
}
pub(super) use message_columns;

/// The reply columns (12–16) of [`message_columns!`]: `None` for a message that replies to
/// nothing.
pub(super) fn reply_from_columns(
    id: Option<i64>,
    seq: Option<Seq>,
    username: Option<String>,
    body: Option<String>,
    deleted: bool,
) -> Option<ReplyRef> {
    Some(ReplyRef {
        id: id?,
        seq: seq?,
        username: username?,
        excerpt: excerpt(&body?),
        deleted,
    })
}

/// `reply_refs`: the messages of room `$1` among the ids `$2` (each store's list of
/// them), as replies quote them: id, seq, username, body, deleted.
pub(super) fn reply_refs_query(ids: &str) -> String {
    format!(
        "SELECT t.id, t.seq, u.username, t.body, t.deleted_by IS NOT NULL \
         FROM messages t JOIN users u ON u.id = t.user_id WHERE t.room_id = $1 AND t.id IN {ids}"
    )
}

/// A row of [`reply_refs_query`].
pub(super) type ReplyRefRow = (i64, Seq, String, String, bool);

pub(super) fn reply_ref_from_row((id, seq, username, body, deleted): ReplyRefRow) -> ReplyRef {
    ReplyRef {
        id,
        seq,
        username,
        excerpt: excerpt(&body),
        deleted,
    }
}

/// The reactions column (17) of [`message_columns!`].
pub(super) fn reactions_from_json(json: Option<&str>) -> Result<Vec<Reaction>, sqlx::Error> {
    match json {
        None | Some("[]") => Ok(Vec::new()),
        Some(json) => {
            let made: Vec<(String, String)> = serde_json::from_str(json)
                .map_err(|e| sqlx::Error::Decode(format!("a message's reactions: {e}").into()))?;
            Ok(Reaction::aggregate(made))
        }
    }
}

/// `changes`: the messages of room `$1` changed after rev `$2`, up to seq `$3`, in rev
/// order, `$4` of them; a range read of `messages_room_rev`.
pub(super) const CHANGES_WHERE: &str =
    "m.room_id = $1 AND m.rev > $2 AND m.seq <= $3 ORDER BY m.rev LIMIT $4";

/// The statements of `change_message` both stores run, in the room's transaction (which
/// each store serialises its own way), `$n` placeholders in both.
pub(super) mod change {
    /// Message `$1` of room `$2`: its body and whether it is deleted.
    pub(in crate::adapters) const MESSAGE_STATE: &str =
        "SELECT body, deleted_by IS NOT NULL FROM messages WHERE id = $1 AND room_id = $2";
    /// `$1` new body, `$2` edited_at, of message `$3`.
    pub(in crate::adapters) const EDIT: &str =
        "UPDATE messages SET body = $1, edited_at = $2 WHERE id = $3";
    /// Message `$1`'s reactions go with its text.
    pub(in crate::adapters) const DELETE_REACTIONS: &str =
        "DELETE FROM reactions WHERE message_id = $1";
    /// Message `$2`, deleted by `$1`: the text itself is overwritten.
    pub(in crate::adapters) const TOMBSTONE: &str =
        "UPDATE messages SET body = '', deleted_by = $1 WHERE id = $2";
    /// Of message `$1`: whether emoji `$2` is on it, and how many distinct emoji are.
    pub(in crate::adapters) const EMOJI_STATE: &str =
        "SELECT EXISTS (SELECT 1 FROM reactions WHERE message_id = $1 AND emoji = $2), \
         (SELECT COUNT(DISTINCT emoji) FROM reactions WHERE message_id = $1)";
    /// Message `$1`, user `$2`, emoji `$3`, at `$4`; a reaction already there adds no row.
    pub(in crate::adapters) const REACT: &str =
        "INSERT INTO reactions (message_id, user_id, emoji, reacted_at) VALUES ($1, $2, $3, $4) \
         ON CONFLICT DO NOTHING";
    pub(in crate::adapters) const UNREACT: &str =
        "DELETE FROM reactions WHERE message_id = $1 AND user_id = $2 AND emoji = $3";
    /// Message `$1`'s mentions go with its text, and before an edit's new ones.
    pub(in crate::adapters) const DELETE_MENTIONS: &str =
        "DELETE FROM mentions WHERE message_id = $1";
    /// Room `$1`'s next rev, its row already locked by the transaction.
    pub(in crate::adapters) const NEXT_REV: &str =
        "UPDATE rooms SET last_rev = last_rev + 1 WHERE id = $1 RETURNING last_rev";
    /// Message `$2` changed at rev `$1`.
    pub(in crate::adapters) const SET_REV: &str = "UPDATE messages SET rev = $1 WHERE id = $2";
}

/// Records who message `$1` mentions (CONTRACT §11), given the mentioned username keys as
/// `$2` in the store's list form (`keys_in`: `IN (…)` or `= ANY(…)`): the users of those
/// names who can read the room (a public room: anyone not banned from it; otherwise its
/// members), never its author. Run in the transaction that writes the message or its edit.
pub(super) fn insert_mentions_sql(keys_in: &str) -> String {
    let public = RoomKind::Public.as_str();
    format!(
        "INSERT INTO mentions (message_id, user_id, room_id, seq) \
         SELECT m.id, u.id, m.room_id, m.seq FROM messages m \
         JOIN rooms r ON r.id = m.room_id JOIN users u ON u.username_key {keys_in} \
         WHERE m.id = $1 AND u.id <> m.user_id \
         AND (r.kind = '{public}' \
              OR EXISTS (SELECT 1 FROM memberships WHERE room_id = m.room_id AND user_id = u.id)) \
         AND NOT EXISTS (SELECT 1 FROM bans WHERE room_id = m.room_id AND user_id = u.id) \
         ON CONFLICT DO NOTHING"
    )
}

/// The usernames message `$1` mentions.
pub(super) const MENTIONED_NAMES: &str =
    "SELECT u.username FROM mentions x JOIN users u ON u.id = x.user_id WHERE x.message_id = $1";

/// A message's mentions as the message object lists them: sorted, each once.
pub(super) fn sorted_mentions(mut names: Vec<String>) -> Vec<String> {
    names.sort();
    names.dedup();
    names
}

/// The mentions column (18) of [`message_columns!`]: a JSON array of usernames, or NULL.
pub(super) fn mentions_from_json(json: Option<&str>) -> Result<Vec<String>, sqlx::Error> {
    match json {
        None | Some("[]") => Ok(Vec::new()),
        Some(json) => serde_json::from_str(json)
            .map(sorted_mentions)
            .map_err(|e| sqlx::Error::Decode(format!("a message's mentions: {e}").into())),
    }
}

/// The attention columns of a member's room (CONTRACT §11), for the membership `mb` of
/// user `mb.user_id` in room `r`: read_seq, last_seq, unread (the room's messages after
/// the marker, not deleted, not the member's own) and mentions (those of them that
/// mention the member: a deleted message's mentions are gone with it). Counted, not kept
/// as counters, so they are exact whatever wrote meanwhile; each is one index range. In a
/// room the viewer is not a member of (`mb` NULL) neither count runs: a range from NULL
/// would not be empty to every planner.
pub(super) const ATTENTION_COLUMNS: &str = "mb.read_seq AS read_seq, \
     CASE WHEN mb.read_seq IS NULL THEN NULL ELSE r.last_seq END AS last_seq, \
     CASE WHEN mb.read_seq IS NULL THEN NULL ELSE \
       (SELECT COUNT(*) FROM messages x WHERE x.room_id = r.id AND x.seq > mb.read_seq \
          AND x.user_id <> mb.user_id AND x.deleted_by IS NULL) END AS unread, \
     CASE WHEN mb.read_seq IS NULL THEN NULL ELSE \
       (SELECT COUNT(*) FROM mentions x WHERE x.user_id = mb.user_id AND x.room_id = r.id \
          AND x.seq > mb.read_seq) END AS mentions";

/// One member's [`ATTENTION_COLUMNS`]: room `$1`, user `$2`.
pub(super) fn attention_sql() -> String {
    format!(
        "SELECT {ATTENTION_COLUMNS} FROM memberships mb JOIN rooms r ON r.id = mb.room_id \
         WHERE mb.room_id = $1 AND mb.user_id = $2"
    )
}

/// Moves member `$2`'s marker in room `$1` to seq `$3`, never back (`greatest`: the
/// store's two-argument maximum, `max` or `GREATEST`).
pub(super) fn mark_read_sql(greatest: &str) -> String {
    format!(
        "UPDATE memberships SET read_seq = {greatest}(read_seq, $3) \
         WHERE room_id = $1 AND user_id = $2"
    )
}

/// A row of [`ATTENTION_COLUMNS`]; `None` for a room the viewer is not a member of.
pub(super) type AttentionRow = (Option<Seq>, Option<Seq>, Option<i64>, Option<i64>);

pub(super) fn attention_from_row(
    (read_seq, last_seq, unread, mentions): AttentionRow,
) -> Option<Attention> {
    Some(Attention {
        read_seq: read_seq?,
        last_seq: last_seq?,
        unread: unread?.max(0) as u64,
        mentions: mentions?.max(0) as u64,
    })
}

pub(super) fn unavailable(e: impl std::error::Error + Send + Sync + 'static) -> StoreError {
    StoreError::Unavailable(Box::new(e))
}

/// A unique violation is the caller's duplicate; anything else means the store is not
/// answering as it should.
pub(super) fn from_sqlx(e: sqlx::Error) -> StoreError {
    match &e {
        sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::Duplicate,
        _ => unavailable(e),
    }
}

/// What both stores' upgrade tests check of a database made before CONTRACT §9, which
/// each fills in its own SQL, at migration 0001: user `alice`, room `general` ("General")
/// and its one message (seq 1, body "hello", client_id "c1").
#[cfg(test)]
pub(super) async fn assert_old_room_upgraded(store: &dyn crate::ports::Store) {
    use crate::domain::{HistoryRange, Slug, Username};

    let general = store
        .find_room(&Slug::parse("general").unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(general.kind, RoomKind::Public);
    assert_eq!(general.name, "General");
    let messages = store
        .messages(&general, HistoryRange::Latest, 10)
        .await
        .unwrap();
    assert_eq!(messages.len(), 1);
    assert_eq!(
        (
            messages[0].seq,
            messages[0].body.as_str(),
            messages[0].client_id.as_deref()
        ),
        (Seq::new(1).unwrap(), "hello", Some("c1"))
    );
    assert_eq!(
        store.last_seq(general.id).await.unwrap(),
        Seq::new(1).unwrap()
    );
    assert_eq!(
        (messages[0].rev, store.last_rev(general.id).await.unwrap()),
        (Rev::new(1).unwrap(), Rev::new(1).unwrap()),
        "every old message was one change"
    );

    // No owner and no members, not even the author of its messages.
    let alice = store
        .find_user(&Username::parse("alice").unwrap())
        .await
        .unwrap()
        .unwrap();
    assert!(store.members(general.id).await.unwrap().is_empty());
    assert_eq!(
        store.standing(general.id, alice.id).await.unwrap(),
        crate::ports::Standing::default()
    );
    let listed = store
        .list_rooms(alice.id, RoomScope::Visible, 0, 10, true)
        .await
        .unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!((&listed[0].room, listed[0].role), (&general, None));
    assert!(store
        .list_rooms(alice.id, RoomScope::Joined, 0, 10, true)
        .await
        .unwrap()
        .is_empty());
}

/// What both stores' upgrade tests check of a database made before CONTRACT §10, which
/// each fills in its own SQL, at migration 0003: user `alice`, room `general` and its two
/// messages (seq 1 "one", seq 2 "two"). Each old message was one change: rev = seq, and
/// the room's rev goes on from there.
#[cfg(test)]
pub(super) async fn assert_old_messages_have_revs(store: &dyn crate::ports::Store) {
    use crate::domain::{HistoryRange, MessageBody, NewMessage, Slug, Username};
    use crate::ports::{Changed, MessageChange};

    let general = store
        .find_room(&Slug::parse("general").unwrap())
        .await
        .unwrap()
        .unwrap();
    let old = store
        .messages(&general, HistoryRange::Latest, 10)
        .await
        .unwrap();
    let shown: Vec<_> = old
        .iter()
        .map(|m| (m.seq.get(), m.rev.get(), m.body.as_str()))
        .collect();
    assert_eq!(shown, [(1, 1, "one"), (2, 2, "two")]);
    assert!(old.iter().all(|m| m.edited_at.is_none()
        && !m.is_deleted()
        && m.reply_to.is_none()
        && m.reactions.is_empty()));
    assert_eq!(store.last_rev(general.id).await.unwrap().get(), 2);

    let alice = store
        .find_user(&Username::parse("alice").unwrap())
        .await
        .unwrap()
        .unwrap();
    let new = store
        .append_message(NewMessage {
            room: general.clone(),
            user: alice,
            body: MessageBody::parse("three").unwrap(),
            client_id: None,
            reply_to: None,
        })
        .await
        .unwrap()
        .message;
    assert_eq!((new.seq.get(), new.rev.get()), (3, 3));
    let body = MessageBody::parse("one, edited").unwrap();
    let edit = MessageChange::Edit {
        body: &body,
        at: chrono::Utc::now(),
    };
    match store
        .change_message(&general, old[0].id, edit)
        .await
        .unwrap()
    {
        Changed::Changed(edited) => assert_eq!(edited.rev.get(), 4),
        other => panic!("{other:?}"),
    }
    let changed: Vec<_> = store
        .changes(&general, Rev::new(2).unwrap(), Seq::MAX, 10)
        .await
        .unwrap()
        .iter()
        .map(|m| m.seq.get())
        .collect();
    assert_eq!(changed, [3, 1]);
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    /// What is in `migrations/<store>/` now, read at test time: (version, file text).
    fn files_of(store: &str) -> Vec<(i64, String)> {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("migrations")
            .join(store);
        let mut found: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|entry| entry.unwrap().path())
            .filter(|path| path.extension().is_some_and(|e| e == "sql"))
            .map(|path| {
                let name = path.file_name().unwrap().to_str().unwrap().to_owned();
                let version = name.split('_').next().unwrap().parse().unwrap();
                (version, std::fs::read_to_string(&path).unwrap())
            })
            .collect();
        found.sort();
        found
    }

    #[test]
    fn every_migration_file_is_embedded_in_order() {
        for (store, embedded) in [
            ("sqlite", SQLITE_MIGRATIONS),
            ("postgres", POSTGRES_MIGRATIONS),
        ] {
            let files = files_of(store);
            let migrator = migrator(embedded);
            let versions: Vec<_> = migrator.iter().map(|m| m.version).collect();
            assert_eq!(
                versions,
                files.iter().map(|(v, _)| *v).collect::<Vec<_>>(),
                "{store}: one migration per file, in version order"
            );
            assert!(
                versions.windows(2).all(|pair| pair[0] < pair[1]),
                "{store}: versions are unique: {versions:?}"
            );
            for (migration, (_, text)) in migrator.iter().zip(&files) {
                assert_eq!(
                    migration.sql,
                    text.as_str(),
                    "{store} {}",
                    migration.version
                );
            }
        }
        let first = &SQLITE_MIGRATIONS[0];
        assert_eq!(
            (first.0, first.1),
            (1, "init"),
            "databases made before build.rs recorded version 1 as \"init\""
        );
    }

    #[test]
    fn both_stores_have_the_same_migrations() {
        let versions = |list: &[(i64, &str, &str)]| -> Vec<(i64, String)> {
            list.iter().map(|(v, d, _)| (*v, d.to_string())).collect()
        };
        assert_eq!(versions(SQLITE_MIGRATIONS), versions(POSTGRES_MIGRATIONS));
    }
}
