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

mod group_commit;

use std::future::Future;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::migrate::Migrator;

use super::sql::{from_sqlx, unavailable, MESSAGE_COLUMNS, ROOM_COLUMNS, ROOM_LIST_ORDER};
use sqlx::postgres::{PgConnectOptions, PgExecutor, PgPool, PgPoolOptions};

use crate::domain::{
    HistoryRange, Message, NewMessage, Room, RoomId, RoomKind, RoomName, RoomSummary, Seq, Slug,
    User, UserId, Username,
};
use crate::ports::{Appended, SessionRecord, Store, StoreError};

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
type MessageRow = (
    i64,
    i64,
    String,
    Seq,
    i64,
    String,
    String,
    Option<String>,
    DateTime<Utc>,
);

fn message_from_row(row: MessageRow) -> Message {
    let (id, room_id, room_slug, seq, user_id, username, body, client_id, sent_at) = row;
    Message {
        id,
        room_id: RoomId(room_id),
        room_slug,
        seq,
        user_id: UserId(user_id),
        username,
        body,
        client_id,
        sent_at,
    }
}

async fn find_by_client_id<'e>(
    executor: impl PgExecutor<'e>,
    user: UserId,
    client_id: &str,
) -> Result<Option<Message>, sqlx::Error> {
    let row: Option<MessageRow> = sqlx::query_as(&format!(
        "SELECT {MESSAGE_COLUMNS} WHERE m.user_id = $1 AND m.client_id = $2"
    ))
    .bind(user.0)
    .bind(client_id)
    .fetch_optional(executor)
    .await?;
    Ok(row.map(message_from_row))
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

    async fn create_room(&self, slug: &Slug, name: &RoomName) -> Result<(Room, bool), StoreError> {
        // A concurrent creator's insert makes this one wait for its commit, then do nothing.
        let inserted = bounded(
            sqlx::query_as(
                &format!("INSERT INTO rooms (slug, name, created_at) VALUES ($1, $2, $3) ON CONFLICT (slug) DO NOTHING RETURNING {ROOM_COLUMNS}"),
            )
            .bind(slug.as_str())
            .bind(name.as_str())
            .bind(to_ms(Utc::now()))
            .fetch_optional(&self.pool),
        )
        .await?;
        if let Some(row) = inserted {
            return Ok((room_from_row(row), true));
        }
        let existing = self.find_room(slug).await?;
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

    async fn list_rooms(
        &self,
        offset: usize,
        limit: usize,
    ) -> Result<Vec<RoomSummary>, StoreError> {
        let rows: Vec<(i64, String, String, RoomKind, Option<DateTime<Utc>>)> = bounded(
            sqlx::query_as(
                &format!("SELECT {ROOM_COLUMNS}, last_message_at FROM rooms ORDER BY {ROOM_LIST_ORDER} LIMIT $1 OFFSET $2"),
            )
            .bind(limit as i64)
            .bind(offset as i64)
            .fetch_all(&self.pool),
        )
        .await?;
        Ok(rows
            .into_iter()
            .map(|(id, slug, name, kind, last_message_at)| RoomSummary {
                room: room_from_row((id, slug, name, kind)),
                last_message_at,
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
        let rows: Vec<MessageRow> = bounded(
            sqlx::query_as(&sql)
                .bind(room.id.0)
                .bind(after)
                .bind(before)
                .bind(i64::from(limit))
                .fetch_all(&self.pool),
        )
        .await?;
        let mut messages: Vec<Message> = rows.into_iter().map(message_from_row).collect();
        if newest_first {
            messages.reverse();
        }
        Ok(messages)
    }

    async fn close(&self) {
        self.pool.close().await;
    }
}
