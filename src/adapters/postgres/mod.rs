//! The PostgreSQL store: several natter processes can share one database.
//!
//! It behaves exactly as the SQLite store ([`crate::adapters::sqlite`]) does, and guarantees:
//!
//! - **An ack is a promise.** [`Store::append_message`] returns only after its transaction
//!   committed, with `synchronous_commit=on` forced per connection, whatever the server's
//!   default.
//! - **`seq` has no gap.** Appends are group-committed ([`group_commit`]): a process has
//!   one append transaction in flight, which takes every message waiting in any room. It
//!   locks the batch's rooms in id order (`UPDATE rooms … last_seq + n`), so a room's
//!   appends are serialised across processes without deadlock, and a failed batch rolls
//!   its increments back with it.
//! - **A `(user, client_id)` is stored once**, even when two sends race: the unique index
//!   makes the loser's insert wait for the winner's commit and then fail; its statement
//!   rolls back (the `seq` bump with it), the batch is retried one message at a time, and
//!   the loser is answered with the winner's message and `fresh: false`.
//! - **No call hangs.** Taking a connection, opening one included, gives up after
//!   `ACQUIRE_TIMEOUT` (3 s), and a whole call after `CALL_TIMEOUT` (5 s), with `Unavailable`.
//!   Pooled connections are tested before use, so when PostgreSQL comes back the pool
//!   replaces its dead connections by itself.
//! - **Times read back exactly as written**: they are stored truncated to the millisecond,
//!   as the SQLite store's are.
//! - **A pair has one DM**, however many processes open it at once: the unique `dm_key`
//!   makes every insert but the first wait for it and do nothing.
//! - **`rev` has no gap either.** An append takes the room's next `rev` with its `seq`; a
//!   change to a message ([`Store::change_message`]) locks the room's row as appends do
//!   (`FOR UPDATE`), checks and changes the message, and takes the next `rev`, in one
//!   transaction: a room's changes and appends run one after the other, on any process.
//! - **A banned user is never a member**: adding a member takes a shared lock on the
//!   room's row, banning an exclusive one ([`RoomLock`]), so a ban and an add run one
//!   after the other while adds run together.

mod group_commit;

use std::collections::HashSet;
use std::future::Future;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::migrate::Migrator;

use super::sql;
use super::sql::{
    change as change_sql, from_sqlx, message_columns, reactions_from_json, reply_from_columns,
    room_list_sql, standing_joins, standings_in_order, unavailable, CHANGES_WHERE, ROOM_COLUMNS,
};
use sqlx::postgres::{PgConnectOptions, PgConnection, PgExecutor, PgPool, PgPoolOptions, PgRow};
use sqlx::Row;

use crate::domain::{
    mentioned_keys, Attention, HistoryRange, Message, NewMessage, ReplyRef, Rev, Role, Room,
    RoomId, RoomKind, RoomScope, RoomSummary, Seq, Slug, User, UserId, Username,
};
use crate::ports::{
    Added, Appended, BanRecord, Changed, DmPair, MemberRecord, MessageChange, NewRoom,
    SessionRecord, Standing, Store, StoreError, MAX_EMOJI_PER_MESSAGE,
};

/// Records whom message `id` mentions among `keys` (`sql::insert_mentions_sql`).
async fn insert_mentions(
    connection: &mut PgConnection,
    id: i64,
    keys: &[String],
) -> Result<(), sqlx::Error> {
    if !keys.is_empty() {
        sqlx::query(&sql::insert_mentions_sql("= ANY($2::TEXT[])"))
            .bind(id)
            .bind(keys)
            .execute(&mut *connection)
            .await?;
    }
    Ok(())
}

/// Records whom `message` (just written, or just edited after its old mentions were
/// deleted) mentions among `keys`, in the caller's transaction, and sets its `mentions`.
pub(super) async fn record_mentions(
    connection: &mut PgConnection,
    message: &mut Message,
    keys: &[String],
) -> Result<(), sqlx::Error> {
    message.mentions = Vec::new();
    if keys.is_empty() {
        return Ok(());
    }
    insert_mentions(connection, message.id, keys).await?;
    let names: Vec<String> = sqlx::query_scalar(sql::MENTIONED_NAMES)
        .bind(message.id)
        .fetch_all(&mut *connection)
        .await?;
    message.mentions = sql::sorted_mentions(names);
    Ok(())
}

/// [`message_columns!`] with PostgreSQL's JSON of a message's reactions and mentions.
const MESSAGE_COLUMNS: &str = message_columns!(
    "(SELECT json_agg(json_build_array(x.emoji, xu.username) ORDER BY x.id)::text \
     FROM reactions x JOIN users xu ON xu.id = x.user_id WHERE x.message_id = m.id)",
    "(SELECT json_agg(xu.username)::text \
     FROM mentions x JOIN users xu ON xu.id = x.user_id WHERE x.message_id = m.id)"
);

const MAX_CONNECTIONS: u32 = 32;
/// Longest wait for a pooled connection, including opening a new one.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(3);
/// Longest any call takes: bounds a connection that went silent mid-query, which
/// [`ACQUIRE_TIMEOUT`] does not cover.
const CALL_TIMEOUT: Duration = Duration::from_secs(5);

pub struct PgStore {
    pool: PgPool,
    appends: group_commit::GroupCommit,
}

fn migrator() -> Migrator {
    super::sql::migrator(super::sql::POSTGRES_MIGRATIONS)
}

/// Runs one call under [`CALL_TIMEOUT`] and maps its error.
async fn bounded<T>(call: impl Future<Output = Result<T, sqlx::Error>>) -> Result<T, StoreError> {
    tokio::time::timeout(CALL_TIMEOUT, call)
        .await
        .map_err(unavailable)?
        .map_err(from_sqlx)
}

/// `time` truncated to the millisecond: what the SQLite store keeps, so what this one keeps.
fn to_ms(time: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(time.timestamp_millis()).unwrap_or(time)
}

async fn open(url: &str, max_connections: u32) -> Result<PgPool, StoreError> {
    let options = PgConnectOptions::from_str(url)
        .map_err(unavailable)?
        .application_name("natter")
        .options([("synchronous_commit", "on")]);
    PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(ACQUIRE_TIMEOUT)
        .connect_with(options)
        .await
        .map_err(from_sqlx)
}

impl PgStore {
    /// Connects and applies pending migrations. Fails with `Unavailable` after
    /// `ACQUIRE_TIMEOUT` when PostgreSQL cannot be reached.
    pub async fn connect(url: &str) -> Result<PgStore, StoreError> {
        let pool = open(url, MAX_CONNECTIONS).await?;
        // Not bounded: a migration may rightly take long, or wait for another process's.
        migrator().run(&pool).await.map_err(unavailable)?;
        Ok(PgStore {
            pool,
            appends: group_commit::GroupCommit::default(),
        })
    }

    /// Applies pending migrations and returns (`natter migrate`).
    pub async fn migrate(url: &str) -> Result<(), StoreError> {
        let pool = open(url, 1).await?;
        migrator().run(&pool).await.map_err(unavailable)?;
        pool.close().await;
        Ok(())
    }
}

/// A row of [`MESSAGE_COLUMNS`].
fn message_from_row(row: &PgRow) -> Result<Message, sqlx::Error> {
    Ok(Message {
        id: row.try_get(0)?,
        room_id: RoomId(row.try_get(1)?),
        room_slug: row.try_get(2)?,
        seq: row.try_get(3)?,
        user_id: UserId(row.try_get(4)?),
        username: row.try_get(5)?,
        body: row.try_get(6)?,
        client_id: row.try_get(7)?,
        sent_at: row.try_get(8)?,
        rev: row.try_get(9)?,
        edited_at: row.try_get(10)?,
        deleted_by: row.try_get(11)?,
        reply_to: reply_from_columns(
            row.try_get(12)?,
            row.try_get(13)?,
            row.try_get(14)?,
            row.try_get(15)?,
            row.try_get(16)?,
        ),
        reactions: reactions_from_json(row.try_get(17)?)?,
        mentions: sql::mentions_from_json(row.try_get(18)?)?,
    })
}

fn messages_from_rows(rows: &[PgRow]) -> Result<Vec<Message>, sqlx::Error> {
    rows.iter().map(message_from_row).collect()
}

async fn find_by_client_id<'e>(
    executor: impl PgExecutor<'e>,
    user: UserId,
    client_id: &str,
) -> Result<Option<Message>, sqlx::Error> {
    let row = sqlx::query(&format!(
        "SELECT {MESSAGE_COLUMNS} WHERE m.user_id = $1 AND m.client_id = $2"
    ))
    .bind(user.0)
    .bind(client_id)
    .fetch_optional(executor)
    .await?;
    row.as_ref().map(message_from_row).transpose()
}

/// Changes message `id` of `room` in the transaction on `tx`, which has locked the room's
/// row: no other append or change of the room runs between the checks and the change,
/// and every statement here sees what the ones before the lock committed. Every outcome
/// reads the message back in the transaction, as it will be once committed.
async fn change_locked(
    tx: &mut PgConnection,
    room: RoomId,
    id: i64,
    change: MessageChange<'_>,
) -> Result<Changed, sqlx::Error> {
    let state: Option<(String, bool)> = sqlx::query_as(change_sql::MESSAGE_STATE)
        .bind(id)
        .bind(room.0)
        .fetch_optional(&mut *tx)
        .await?;
    let Some((body, deleted)) = state else {
        return Ok(Changed::UnknownMessage);
    };
    if deleted {
        return Ok(Changed::Deleted);
    }
    let changed = match change {
        MessageChange::Edit { body: new, at } => {
            if new.as_str() == body {
                false
            } else {
                sqlx::query(change_sql::EDIT)
                    .bind(new.as_str())
                    .bind(to_ms(at))
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                sqlx::query(change_sql::DELETE_MENTIONS)
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                insert_mentions(tx, id, &mentioned_keys(new.as_str())).await?;
                true
            }
        }
        MessageChange::Delete { by } => {
            for statement in [change_sql::DELETE_REACTIONS, change_sql::DELETE_MENTIONS] {
                sqlx::query(statement).bind(id).execute(&mut *tx).await?;
            }
            sqlx::query(change_sql::TOMBSTONE)
                .bind(by.0)
                .bind(id)
                .execute(&mut *tx)
                .await?;
            true
        }
        MessageChange::React { user, emoji } => {
            let (present, distinct): (bool, i64) = sqlx::query_as(change_sql::EMOJI_STATE)
                .bind(id)
                .bind(emoji.as_str())
                .fetch_one(&mut *tx)
                .await?;
            if !present && distinct >= MAX_EMOJI_PER_MESSAGE as i64 {
                return Ok(Changed::TooManyReactions);
            }
            sqlx::query(change_sql::REACT)
                .bind(id)
                .bind(user.0)
                .bind(emoji.as_str())
                .bind(to_ms(Utc::now()))
                .execute(&mut *tx)
                .await?
                .rows_affected()
                == 1
        }
        MessageChange::Unreact { user, emoji } => {
            sqlx::query(change_sql::UNREACT)
                .bind(id)
                .bind(user.0)
                .bind(emoji.as_str())
                .execute(&mut *tx)
                .await?
                .rows_affected()
                == 1
        }
    };
    if changed {
        let rev: Rev = sqlx::query_scalar(change_sql::NEXT_REV)
            .bind(room.0)
            .fetch_one(&mut *tx)
            .await?;
        sqlx::query(change_sql::SET_REV)
            .bind(rev)
            .bind(id)
            .execute(&mut *tx)
            .await?;
    }
    let row = sqlx::query(&format!("SELECT {MESSAGE_COLUMNS} WHERE m.id = $1"))
        .bind(id)
        .fetch_one(&mut *tx)
        .await?;
    let message = message_from_row(&row)?;
    Ok(if changed {
        Changed::Changed(message)
    } else {
        Changed::Unchanged(message)
    })
}

/// A row of [`ROOM_COLUMNS`].
type RoomRow = (i64, String, String, RoomKind);

fn room_from_row((id, slug, name, kind): RoomRow) -> Room {
    Room {
        id: RoomId(id),
        slug,
        name,
        kind,
    }
}

fn user_from_row((id, username): (i64, String)) -> User {
    User {
        id: UserId(id),
        username,
    }
}

async fn insert_membership(
    connection: &mut PgConnection,
    room: RoomId,
    user: UserId,
    role: Role,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO memberships (room_id, user_id, role, joined_at) VALUES ($1, $2, $3, $4)",
    )
    .bind(room.0)
    .bind(user.0)
    .bind(role)
    .bind(to_ms(Utc::now()))
    .execute(connection)
    .await?;
    Ok(())
}

/// How a membership write locks its room's row until the transaction ends.
#[derive(Clone, Copy)]
enum RoomLock {
    /// [`Store::add_member`]: `FOR KEY SHARE`, which adds share with each other (a crowd
    /// joining a room is not queued one by one) and with the message appends that bump
    /// the row's `last_seq` (`FOR NO KEY UPDATE`).
    Adding,
    /// [`Store::ban`]: `FOR UPDATE`, which waits for every add in flight and holds new
    /// ones back until the ban commits. Without the two, under READ COMMITTED, an add's
    /// "not banned" check and a ban's "delete the membership" could each miss the
    /// other's uncommitted row, and both commit: a banned member. (A ban also waits for
    /// the room's appends in flight; bans are rare.)
    Banning,
}

async fn lock_room(
    connection: &mut PgConnection,
    room: RoomId,
    lock: RoomLock,
) -> Result<(), sqlx::Error> {
    let sql = match lock {
        RoomLock::Adding => "SELECT 1 FROM rooms WHERE id = $1 FOR KEY SHARE",
        RoomLock::Banning => "SELECT 1 FROM rooms WHERE id = $1 FOR UPDATE",
    };
    sqlx::query(sql).bind(room.0).execute(connection).await?;
    Ok(())
}

#[async_trait]
impl Store for PgStore {
    /// Answers, and takes writes: a server that became a standby (a failover pointed the
    /// URL at it) or was made read-only still answers reads, but every send would fail.
    async fn ping(&self) -> Result<(), StoreError> {
        let read_only: bool = bounded(
            sqlx::query_scalar(
                "SELECT pg_is_in_recovery() OR current_setting('transaction_read_only')::boolean",
            )
            .fetch_one(&self.pool),
        )
        .await?;
        if read_only {
            return Err(StoreError::Unavailable(
                "PostgreSQL is read-only (a standby, or default_transaction_read_only)".into(),
            ));
        }
        Ok(())
    }

    async fn create_user(
        &self,
        username: &Username,
        password_hash: &str,
    ) -> Result<User, StoreError> {
        let id: i64 = bounded(
            sqlx::query_scalar(
                "INSERT INTO users (username, username_key, password_hash, created_at) VALUES ($1, $2, $3, $4) RETURNING id",
            )
            .bind(username.as_str())
            .bind(username.key())
            .bind(password_hash)
            .bind(to_ms(Utc::now()))
            .fetch_one(&self.pool),
        )
        .await?;
        Ok(User {
            id: UserId(id),
            username: username.as_str().to_owned(),
        })
    }

    async fn find_credentials(
        &self,
        username: &Username,
    ) -> Result<Option<(User, String)>, StoreError> {
        let row: Option<(i64, String, String)> = bounded(
            sqlx::query_as("SELECT id, username, password_hash FROM users WHERE username_key = $1")
                .bind(username.key())
                .fetch_optional(&self.pool),
        )
        .await?;
        Ok(row.map(|(id, username, hash)| {
            (
                User {
                    id: UserId(id),
                    username,
                },
                hash,
            )
        }))
    }

    async fn create_session(
        &self,
        token_hash: &[u8],
        user: UserId,
        expires_at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let now = to_ms(Utc::now());
        bounded(async {
            // Expired sessions are removed as new ones arrive; the index keeps it cheap.
            sqlx::query("DELETE FROM sessions WHERE expires_at <= $1")
                .bind(now)
                .execute(&self.pool)
                .await?;
            sqlx::query("INSERT INTO sessions (token_hash, user_id, created_at, expires_at) VALUES ($1, $2, $3, $4)")
                .bind(token_hash)
                .bind(user.0)
                .bind(now)
                .bind(to_ms(expires_at))
                .execute(&self.pool)
                .await
        })
        .await?;
        Ok(())
    }

    async fn find_session(
        &self,
        token_hash: &[u8],
        now: DateTime<Utc>,
    ) -> Result<Option<SessionRecord>, StoreError> {
        let row: Option<(i64, String, DateTime<Utc>)> = bounded(
            sqlx::query_as(
                "SELECT u.id, u.username, s.expires_at FROM sessions s JOIN users u ON u.id = s.user_id \
                 WHERE s.token_hash = $1 AND s.expires_at > $2",
            )
            .bind(token_hash)
            .bind(to_ms(now))
            .fetch_optional(&self.pool),
        )
        .await?;
        Ok(row.map(|(id, username, expires_at)| SessionRecord {
            user: User {
                id: UserId(id),
                username,
            },
            expires_at,
        }))
    }

    async fn delete_session(&self, token_hash: &[u8]) -> Result<(), StoreError> {
        bounded(
            sqlx::query("DELETE FROM sessions WHERE token_hash = $1")
                .bind(token_hash)
                .execute(&self.pool),
        )
        .await?;
        Ok(())
    }

    async fn find_user(&self, username: &Username) -> Result<Option<User>, StoreError> {
        let row = bounded(
            sqlx::query_as("SELECT id, username FROM users WHERE username_key = $1")
                .bind(username.key())
                .fetch_optional(&self.pool),
        )
        .await?;
        Ok(row.map(user_from_row))
    }

    async fn create_room(&self, new: NewRoom<'_>) -> Result<(Room, bool), StoreError> {
        let created = bounded(async {
            let mut tx = self.pool.begin().await?;
            // A concurrent creator's insert makes this one wait for its commit, then do nothing.
            let inserted: Option<RoomRow> = sqlx::query_as(
                &format!("INSERT INTO rooms (slug, name, kind, created_at) VALUES ($1, $2, $3, $4) ON CONFLICT (slug) DO NOTHING RETURNING {ROOM_COLUMNS}"),
            )
            .bind(new.slug.as_str())
            .bind(new.name.as_str())
            .bind(new.kind)
            .bind(to_ms(Utc::now()))
            .fetch_optional(&mut *tx)
            .await?;
            let Some(row) = inserted else {
                return Ok(None);
            };
            let room = room_from_row(row);
            insert_membership(&mut tx, room.id, new.owner, Role::Owner).await?;
            tx.commit().await?;
            Ok(Some(room))
        })
        .await?;
        if let Some(room) = created {
            return Ok((room, true));
        }
        let existing = self.find_room(new.slug).await?;
        existing
            .map(|room| (room, false))
            .ok_or_else(|| unavailable(sqlx::Error::RowNotFound))
    }

    async fn find_room(&self, slug: &Slug) -> Result<Option<Room>, StoreError> {
        let row = bounded(
            sqlx::query_as(&format!("SELECT {ROOM_COLUMNS} FROM rooms WHERE slug = $1"))
                .bind(slug.as_str())
                .fetch_optional(&self.pool),
        )
        .await?;
        Ok(row.map(room_from_row))
    }

    async fn open_dm(
        &self,
        pair: DmPair,
        slug: &Slug,
        name: &str,
    ) -> Result<(Room, bool), StoreError> {
        let created = bounded(async {
            let mut tx = self.pool.begin().await?;
            // Another process opening the pair's DM makes this insert wait for its commit,
            // then do nothing. Any conflict, not only the pair's: callers racing with the
            // same slug must not fail on the slug's index while they wait on the pair's.
            let inserted: Option<RoomRow> = sqlx::query_as(
                &format!("INSERT INTO rooms (slug, name, kind, dm_key, created_at) VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING RETURNING {ROOM_COLUMNS}"),
            )
            .bind(slug.as_str())
            .bind(name)
            .bind(RoomKind::Dm)
            .bind(pair.key())
            .bind(to_ms(Utc::now()))
            .fetch_optional(&mut *tx)
            .await?;
            let Some(row) = inserted else {
                return Ok(None);
            };
            let room = room_from_row(row);
            for user in [pair.0, pair.1] {
                insert_membership(&mut tx, room.id, user, Role::Member).await?;
            }
            tx.commit().await?;
            Ok(Some(room))
        })
        .await?;
        if let Some(room) = created {
            return Ok((room, true));
        }
        // Nothing inserted and no DM: the slug is another room's.
        let existing = self.find_dm(pair).await?;
        existing
            .map(|room| (room, false))
            .ok_or(StoreError::Duplicate)
    }

    async fn attention(&self, room: RoomId, user: UserId) -> Result<Option<Attention>, StoreError> {
        let row: Option<sql::AttentionRow> = bounded(
            sqlx::query_as(&sql::attention_sql())
                .bind(room.0)
                .bind(user.0)
                .fetch_optional(&self.pool),
        )
        .await?;
        Ok(row.and_then(sql::attention_from_row))
    }

    async fn mark_read(
        &self,
        room: RoomId,
        user: UserId,
        seq: Seq,
    ) -> Result<Option<Attention>, StoreError> {
        bounded(
            sqlx::query(&sql::mark_read_sql("GREATEST"))
                .bind(room.0)
                .bind(user.0)
                .bind(seq)
                .execute(&self.pool),
        )
        .await?;
        self.attention(room, user).await
    }

    async fn find_dm(&self, pair: DmPair) -> Result<Option<Room>, StoreError> {
        let row = bounded(
            sqlx::query_as(&format!(
                "SELECT {ROOM_COLUMNS} FROM rooms WHERE dm_key = $1"
            ))
            .bind(pair.key())
            .fetch_optional(&self.pool),
        )
        .await?;
        Ok(row.map(room_from_row))
    }

    async fn list_rooms(
        &self,
        viewer: UserId,
        scope: RoomScope,
        offset: usize,
        limit: usize,
        attention: bool,
    ) -> Result<Vec<RoomSummary>, StoreError> {
        type Listed = (
            i64,
            String,
            String,
            RoomKind,
            Option<DateTime<Utc>>,
            DateTime<Utc>,
            Option<Role>,
            Option<Seq>,
            Option<Seq>,
            Option<i64>,
            Option<i64>,
        );
        let rows: Vec<Listed> = bounded(
            sqlx::query_as(&room_list_sql(scope, ["$1", "$2", "$3"], attention))
                .bind(viewer.0)
                .bind(limit as i64)
                .bind(offset as i64)
                .fetch_all(&self.pool),
        )
        .await?;
        Ok(rows
            .into_iter()
            .map(
                |(
                    id,
                    slug,
                    name,
                    kind,
                    last_message_at,
                    _created_at,
                    role,
                    read,
                    last,
                    unread,
                    mentions,
                )| RoomSummary {
                    room: room_from_row((id, slug, name, kind)),
                    last_message_at,
                    attention: sql::attention_from_row((read, last, unread, mentions)),
                    role,
                },
            )
            .collect())
    }

    async fn standings(&self, room: RoomId, users: &[UserId]) -> Result<Vec<Standing>, StoreError> {
        let ids: Vec<i64> = users.iter().map(|user| user.0).collect();
        let rows: Vec<(i64, Option<Role>, bool)> = bounded(
            sqlx::query_as(&format!(
                "SELECT u.value, m.role, b.user_id IS NOT NULL \
                 FROM unnest($2::BIGINT[]) AS u(value) {}",
                standing_joins("$1")
            ))
            .bind(room.0)
            .bind(ids)
            .fetch_all(&self.pool),
        )
        .await?;
        Ok(standings_in_order(users, rows))
    }

    async fn add_member(
        &self,
        room: RoomId,
        user: UserId,
        role: Role,
    ) -> Result<Added, StoreError> {
        bounded(async {
            let mut tx = self.pool.begin().await?;
            lock_room(&mut tx, room, RoomLock::Adding).await?;
            // A statement of its own after the lock, so it sees a ban committed while the
            // lock was awaited.
            let inserted = sqlx::query(
                "INSERT INTO memberships (room_id, user_id, role, joined_at) \
                 SELECT $1, $2, $3, $4 \
                 WHERE NOT EXISTS (SELECT 1 FROM bans WHERE room_id = $1 AND user_id = $2) \
                 ON CONFLICT (room_id, user_id) DO NOTHING",
            )
            .bind(room.0)
            .bind(user.0)
            .bind(role)
            .bind(to_ms(Utc::now()))
            .execute(&mut *tx)
            .await?;
            if inserted.rows_affected() == 1 {
                tx.commit().await?;
                return Ok(Added::Added);
            }
            let banned: bool = sqlx::query_scalar(
                "SELECT EXISTS (SELECT 1 FROM bans WHERE room_id = $1 AND user_id = $2)",
            )
            .bind(room.0)
            .bind(user.0)
            .fetch_one(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok(if banned {
                Added::Banned
            } else {
                Added::AlreadyMember
            })
        })
        .await
    }

    /// One transaction for the crowd, under the same shared lock as [`Store::add_member`].
    async fn add_members(
        &self,
        room: RoomId,
        users: &[UserId],
        role: Role,
    ) -> Result<Vec<Added>, StoreError> {
        let ids: Vec<i64> = users.iter().map(|user| user.0).collect();
        bounded(async {
            let mut tx = self.pool.begin().await?;
            lock_room(&mut tx, room, RoomLock::Adding).await?;
            let added: HashSet<i64> = sqlx::query_scalar(
                "INSERT INTO memberships (room_id, user_id, role, joined_at) \
                 SELECT $1, u.id, $3, $4 FROM unnest($2::BIGINT[]) AS u(id) \
                 WHERE NOT EXISTS (SELECT 1 FROM bans WHERE room_id = $1 AND user_id = u.id) \
                 ON CONFLICT (room_id, user_id) DO NOTHING RETURNING user_id",
            )
            .bind(room.0)
            .bind(&ids)
            .bind(role)
            .bind(to_ms(Utc::now()))
            .fetch_all(&mut *tx)
            .await?
            .into_iter()
            .collect();
            let banned: HashSet<i64> = if added.len() < ids.len() {
                sqlx::query_scalar(
                    "SELECT user_id FROM bans WHERE room_id = $1 AND user_id = ANY($2)",
                )
                .bind(room.0)
                .bind(&ids)
                .fetch_all(&mut *tx)
                .await?
                .into_iter()
                .collect()
            } else {
                HashSet::new()
            };
            tx.commit().await?;
            let mut answered = HashSet::new();
            Ok(ids
                .iter()
                .map(|id| {
                    // A user named twice was added once: the second is already a member.
                    if added.contains(id) && answered.insert(*id) {
                        Added::Added
                    } else if banned.contains(id) {
                        Added::Banned
                    } else {
                        Added::AlreadyMember
                    }
                })
                .collect())
        })
        .await
    }

    async fn set_role(&self, room: RoomId, user: UserId, role: Role) -> Result<bool, StoreError> {
        let updated = bounded(
            sqlx::query("UPDATE memberships SET role = $1 WHERE room_id = $2 AND user_id = $3")
                .bind(role)
                .bind(room.0)
                .bind(user.0)
                .execute(&self.pool),
        )
        .await?;
        Ok(updated.rows_affected() == 1)
    }

    async fn remove_member(&self, room: RoomId, user: UserId) -> Result<bool, StoreError> {
        let removed = bounded(
            sqlx::query("DELETE FROM memberships WHERE room_id = $1 AND user_id = $2")
                .bind(room.0)
                .bind(user.0)
                .execute(&self.pool),
        )
        .await?;
        Ok(removed.rows_affected() == 1)
    }

    async fn members(&self, room: RoomId) -> Result<Vec<MemberRecord>, StoreError> {
        let rows: Vec<(i64, String, Role)> = bounded(
            sqlx::query_as(
                "SELECT u.id, u.username, m.role FROM memberships m JOIN users u ON u.id = m.user_id \
                 WHERE m.room_id = $1",
            )
            .bind(room.0)
            .fetch_all(&self.pool),
        )
        .await?;
        Ok(rows
            .into_iter()
            .map(|(id, username, role)| MemberRecord {
                user: user_from_row((id, username)),
                role,
            })
            .collect())
    }

    async fn ban(&self, room: RoomId, user: UserId, by: UserId) -> Result<(), StoreError> {
        bounded(async {
            let mut tx = self.pool.begin().await?;
            lock_room(&mut tx, room, RoomLock::Banning).await?;
            sqlx::query("DELETE FROM memberships WHERE room_id = $1 AND user_id = $2")
                .bind(room.0)
                .bind(user.0)
                .execute(&mut *tx)
                .await?;
            // A second ban keeps the first one's author and time.
            sqlx::query(
                "INSERT INTO bans (room_id, user_id, banned_by, banned_at) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (room_id, user_id) DO NOTHING",
            )
            .bind(room.0)
            .bind(user.0)
            .bind(by.0)
            .bind(to_ms(Utc::now()))
            .execute(&mut *tx)
            .await?;
            tx.commit().await
        })
        .await
    }

    async fn unban(&self, room: RoomId, user: UserId) -> Result<bool, StoreError> {
        let removed = bounded(
            sqlx::query("DELETE FROM bans WHERE room_id = $1 AND user_id = $2")
                .bind(room.0)
                .bind(user.0)
                .execute(&self.pool),
        )
        .await?;
        Ok(removed.rows_affected() == 1)
    }

    async fn bans(&self, room: RoomId) -> Result<Vec<BanRecord>, StoreError> {
        let rows: Vec<(i64, String, i64, String, DateTime<Utc>)> = bounded(
            sqlx::query_as(
                "SELECT u.id, u.username, by_user.id, by_user.username, b.banned_at FROM bans b \
                 JOIN users u ON u.id = b.user_id JOIN users by_user ON by_user.id = b.banned_by \
                 WHERE b.room_id = $1",
            )
            .bind(room.0)
            .fetch_all(&self.pool),
        )
        .await?;
        Ok(rows
            .into_iter()
            .map(|(id, username, by_id, by_username, at)| BanRecord {
                user: user_from_row((id, username)),
                by: user_from_row((by_id, by_username)),
                at,
            })
            .collect())
    }

    async fn append_message(&self, message: NewMessage) -> Result<Appended, StoreError> {
        // As with the SQLite writer, any failure is `Unavailable` (a unique violation here
        // would be a bug, not a user's duplicate).
        tokio::time::timeout(CALL_TIMEOUT, self.appends.append(&self.pool, message))
            .await
            .map_err(unavailable)?
            .map_err(unavailable)
    }

    async fn find_by_client_id(
        &self,
        user: UserId,
        client_id: &str,
    ) -> Result<Option<Message>, StoreError> {
        bounded(find_by_client_id(&self.pool, user, client_id)).await
    }

    async fn last_seq(&self, room: RoomId) -> Result<Seq, StoreError> {
        let seq: Option<Seq> = bounded(
            sqlx::query_scalar("SELECT last_seq FROM rooms WHERE id = $1")
                .bind(room.0)
                .fetch_optional(&self.pool),
        )
        .await?;
        Ok(seq.unwrap_or(Seq::ZERO))
    }

    async fn last_rev(&self, room: RoomId) -> Result<Rev, StoreError> {
        let rev: Option<Rev> = bounded(
            sqlx::query_scalar("SELECT last_rev FROM rooms WHERE id = $1")
                .bind(room.0)
                .fetch_optional(&self.pool),
        )
        .await?;
        Ok(rev.unwrap_or(Rev::ZERO))
    }

    async fn message(&self, room: &Room, id: i64) -> Result<Option<Message>, StoreError> {
        bounded(async {
            let row = sqlx::query(&format!(
                "SELECT {MESSAGE_COLUMNS} WHERE m.id = $1 AND m.room_id = $2"
            ))
            .bind(id)
            .bind(room.id.0)
            .fetch_optional(&self.pool)
            .await?;
            row.as_ref().map(message_from_row).transpose()
        })
        .await
    }

    async fn reply_refs(&self, room: &Room, ids: &[i64]) -> Result<Vec<ReplyRef>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let rows: Vec<sql::ReplyRefRow> = bounded(
            sqlx::query_as(&sql::reply_refs_query("(SELECT unnest($2::BIGINT[]))"))
                .bind(room.id.0)
                .bind(ids)
                .fetch_all(&self.pool),
        )
        .await?;
        Ok(rows.into_iter().map(sql::reply_ref_from_row).collect())
    }

    async fn change_message(
        &self,
        room: &Room,
        id: i64,
        change: MessageChange<'_>,
    ) -> Result<Changed, StoreError> {
        bounded(async {
            let mut tx = self.pool.begin().await?;
            // The lock appends take (group_commit.rs): the room's appends and changes, on
            // every process, run one after the other, so `rev` has no gap.
            sqlx::query("SELECT 1 FROM rooms WHERE id = $1 FOR UPDATE")
                .bind(room.id.0)
                .execute(&mut *tx)
                .await?;
            let changed = change_locked(&mut tx, room.id, id, change).await?;
            tx.commit().await?;
            Ok(changed)
        })
        .await
    }

    async fn changes(
        &self,
        room: &Room,
        after: Rev,
        up_to: Seq,
        limit: u32,
    ) -> Result<Vec<Message>, StoreError> {
        bounded(async {
            let rows = sqlx::query(&format!("SELECT {MESSAGE_COLUMNS} WHERE {CHANGES_WHERE}"))
                .bind(room.id.0)
                .bind(after)
                .bind(up_to)
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await?;
            messages_from_rows(&rows)
        })
        .await
    }

    async fn messages(
        &self,
        room: &Room,
        range: HistoryRange,
        limit: u32,
    ) -> Result<Vec<Message>, StoreError> {
        // Every range is an open interval of seqs, read from the end it starts at.
        let (after, before, newest_first) = match range {
            HistoryRange::Latest => (Seq::ZERO, Seq::MAX, true),
            HistoryRange::Before(seq) => (Seq::ZERO, seq, true),
            HistoryRange::After(seq) => (seq, Seq::MAX, false),
        };
        let order = if newest_first { "DESC" } else { "ASC" };
        let sql = format!(
            "SELECT {MESSAGE_COLUMNS} WHERE m.room_id = $1 AND m.seq > $2 AND m.seq < $3 ORDER BY m.seq {order} LIMIT $4"
        );
        let mut messages = bounded(async {
            let rows = sqlx::query(&sql)
                .bind(room.id.0)
                .bind(after)
                .bind(before)
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await?;
            messages_from_rows(&rows)
        })
        .await?;
        if newest_first {
            messages.reverse();
        }
        Ok(messages)
    }

    async fn close(&self) {
        self.pool.close().await;
    }
}

#[cfg(test)]
mod tests {
    use natter_test_support::{missing_service, TestDatabase};

    use super::*;

    /// The store on a fresh database made at the first `applied` migrations and filled
    /// by `statements` (the data an upgrade must keep), opened: so migrated the rest of
    /// the way. The database lives as long as the first value.
    async fn upgraded(applied: usize, statements: &[&str]) -> (TestDatabase, PgStore) {
        let admin_url = std::env::var("TEST_DATABASE_URL")
            .ok()
            .filter(|url| !url.is_empty())
            .unwrap_or_else(|| missing_service("TEST_DATABASE_URL"));
        let database = TestDatabase::create(&admin_url).await;
        let pool = open(&database.url, 1).await.unwrap();
        super::super::sql::migrator(&super::super::sql::POSTGRES_MIGRATIONS[..applied])
            .run(&pool)
            .await
            .unwrap();
        for statement in statements {
            sqlx::query(statement).execute(&pool).await.unwrap();
        }
        pool.close().await;
        let store = PgStore::connect(&database.url).await.unwrap();
        (database, store)
    }

    /// A database made before CONTRACT §9 keeps its rooms, as public rooms without members,
    /// and its messages as they were: the SQLite store's test of the same name, here.
    #[tokio::test]
    #[ignore = "needs TEST_DATABASE_URL"]
    async fn rooms_made_before_kinds_become_public_and_keep_their_messages() {
        let (_database, store) = upgraded(1, &[
            "INSERT INTO users (username, username_key, password_hash, created_at) VALUES ('alice', 'alice', 'x', '2024-01-01T00:00:00Z')",
            "INSERT INTO rooms (slug, name, last_seq, last_message_at, created_at) VALUES ('general', 'General', 1, '2024-01-01T00:00:02Z', '2024-01-01T00:00:01Z')",
            "INSERT INTO messages (room_id, seq, user_id, body, client_id, sent_at) VALUES (1, 1, 1, 'hello', 'c1', '2024-01-01T00:00:02Z')",
        ])
        .await;
        super::super::sql::assert_old_room_upgraded(&store).await;
        store.close().await;
    }

    /// A database made before CONTRACT §10 keeps its messages, each with rev = seq: the
    /// SQLite store's test of the same name, here.
    #[tokio::test]
    #[ignore = "needs TEST_DATABASE_URL"]
    async fn messages_made_before_revs_take_their_seq_as_rev() {
        let (_database, store) = upgraded(3, &[
            "INSERT INTO users (username, username_key, password_hash, created_at) VALUES ('alice', 'alice', 'x', '2024-01-01T00:00:00Z')",
            "INSERT INTO rooms (slug, name, last_seq, last_message_at, created_at) VALUES ('general', 'General', 2, '2024-01-01T00:00:03Z', '2024-01-01T00:00:01Z')",
            "INSERT INTO messages (room_id, seq, user_id, body, sent_at) VALUES (1, 1, 1, 'one', '2024-01-01T00:00:02Z'), (1, 2, 1, 'two', '2024-01-01T00:00:03Z')",
        ])
        .await;
        super::super::sql::assert_old_messages_have_revs(&store).await;
        store.close().await;
    }
}
