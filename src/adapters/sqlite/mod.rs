//! The SQLite store: the embedded default.
//!
//! WAL mode with `synchronous=FULL` (an ack is a promise, so a commit must survive power
//! loss). Messages are appended by one writer task that commits whole batches in one
//! transaction ([`writer`]); everything else goes through a small pool.

mod writer;

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::migrate::Migrator;

use super::sql::{from_sqlx, unavailable, MESSAGE_COLUMNS, ROOM_COLUMNS, ROOM_LIST_ORDER};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::Row;
use tokio::sync::{mpsc, oneshot};

use crate::domain::{
    HistoryRange, Message, NewMessage, Room, RoomId, RoomName, RoomSummary, Seq, Slug, User,
    UserId, Username,
};
use crate::ports::{Appended, SessionRecord, Store, StoreError};

pub struct SqliteStore {
    pool: SqlitePool,
    writes: mpsc::Sender<writer::Job>,
}

fn migrator() -> Migrator {
    super::sql::migrator(super::sql::SQLITE_MIGRATIONS)
}

fn options(url: &str) -> Result<SqliteConnectOptions, StoreError> {
    Ok(SqliteConnectOptions::from_str(url)
        .map_err(unavailable)?
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Full)
        .busy_timeout(Duration::from_secs(5))
        .foreign_keys(true))
}

pub(crate) fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
}

pub(crate) fn time_from_ms(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or_default()
}

impl SqliteStore {
    /// Opens (creating if needed) and migrates the database, and starts the writer.
    pub async fn connect(url: &str) -> Result<SqliteStore, StoreError> {
        let options = options(url)?;
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .acquire_timeout(Duration::from_secs(5))
            .connect_with(options.clone())
            .await
            .map_err(from_sqlx)?;
        migrator().run(&pool).await.map_err(unavailable)?;
        let writes = writer::spawn(options).await?;
        Ok(SqliteStore { pool, writes })
    }

    /// Applies pending migrations and returns (`natter migrate`).
    pub async fn migrate(url: &str) -> Result<(), StoreError> {
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options(url)?)
            .await
            .map_err(from_sqlx)?;
        migrator().run(&pool).await.map_err(unavailable)?;
        pool.close().await;
        Ok(())
    }
}

pub(crate) fn message_from_row(row: &SqliteRow) -> Result<Message, sqlx::Error> {
    Ok(Message {
        id: row.try_get(0)?,
        room_id: RoomId(row.try_get(1)?),
        room_slug: row.try_get(2)?,
        seq: row.try_get(3)?,
        user_id: UserId(row.try_get(4)?),
        username: row.try_get(5)?,
        body: row.try_get(6)?,
        client_id: row.try_get(7)?,
        sent_at: time_from_ms(row.try_get(8)?),
    })
}

fn room_from_row(row: &SqliteRow) -> Result<Room, sqlx::Error> {
    Ok(Room {
        id: RoomId(row.try_get("id")?),
        slug: row.try_get("slug")?,
        name: row.try_get("name")?,
        kind: row.try_get("kind")?,
    })
}

#[async_trait]
impl Store for SqliteStore {
    /// Reads and writes: a store that can be read but not written to (a full disk, a
    /// read-only or deleted file) is not ready.
    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map_err(from_sqlx)?;
        let (reply, answer) = oneshot::channel();
        self.writes
            .send(writer::Job::Probe(reply))
            .await
            .map_err(|_| unavailable(sqlx::Error::PoolClosed))?;
        answer
            .await
            .map_err(|_| unavailable(sqlx::Error::PoolClosed))?
    }

    async fn create_user(
        &self,
        username: &Username,
        password_hash: &str,
    ) -> Result<User, StoreError> {
        let row = sqlx::query(
            "INSERT INTO users (username, username_key, password_hash, created_at) VALUES (?, ?, ?, ?) RETURNING id",
        )
        .bind(username.as_str())
        .bind(username.key())
        .bind(password_hash)
        .bind(now_ms())
        .fetch_one(&self.pool)
        .await
        .map_err(from_sqlx)?;
        Ok(User {
            id: UserId(row.try_get(0).map_err(from_sqlx)?),
            username: username.as_str().to_owned(),
        })
    }

    async fn find_credentials(
        &self,
        username: &Username,
    ) -> Result<Option<(User, String)>, StoreError> {
        let row =
            sqlx::query("SELECT id, username, password_hash FROM users WHERE username_key = ?")
                .bind(username.key())
                .fetch_optional(&self.pool)
                .await
                .map_err(from_sqlx)?;
        row.map(|row| {
            Ok((
                User {
                    id: UserId(row.try_get(0)?),
                    username: row.try_get(1)?,
                },
                row.try_get(2)?,
            ))
        })
        .transpose()
        .map_err(from_sqlx)
    }

    async fn create_session(
        &self,
        token_hash: &[u8],
        user: UserId,
        expires_at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let now = now_ms();
        // Expired sessions are removed as new ones arrive; the index keeps it cheap.
        sqlx::query("DELETE FROM sessions WHERE expires_at <= ?")
            .bind(now)
            .execute(&self.pool)
            .await
            .map_err(from_sqlx)?;
        sqlx::query("INSERT INTO sessions (token_hash, user_id, created_at, expires_at) VALUES (?, ?, ?, ?)")
            .bind(token_hash)
            .bind(user.0)
            .bind(now)
            .bind(expires_at.timestamp_millis())
            .execute(&self.pool)
            .await
            .map_err(from_sqlx)?;
        Ok(())
    }

    async fn find_session(
        &self,
        token_hash: &[u8],
        now: DateTime<Utc>,
    ) -> Result<Option<SessionRecord>, StoreError> {
        let row = sqlx::query(
            "SELECT u.id, u.username, s.expires_at FROM sessions s JOIN users u ON u.id = s.user_id \
             WHERE s.token_hash = ? AND s.expires_at > ?",
        )
        .bind(token_hash)
        .bind(now.timestamp_millis())
        .fetch_optional(&self.pool)
        .await
        .map_err(from_sqlx)?;
        row.map(|row| {
            Ok(SessionRecord {
                user: User {
                    id: UserId(row.try_get(0)?),
                    username: row.try_get(1)?,
                },
                expires_at: time_from_ms(row.try_get(2)?),
            })
        })
        .transpose()
        .map_err(from_sqlx)
    }

    async fn delete_session(&self, token_hash: &[u8]) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM sessions WHERE token_hash = ?")
            .bind(token_hash)
            .execute(&self.pool)
            .await
            .map_err(from_sqlx)?;
        Ok(())
    }

    async fn create_room(&self, slug: &Slug, name: &RoomName) -> Result<(Room, bool), StoreError> {
        let inserted = sqlx::query(
            &format!("INSERT INTO rooms (slug, name, created_at) VALUES (?, ?, ?) ON CONFLICT (slug) DO NOTHING RETURNING {ROOM_COLUMNS}"),
        )
        .bind(slug.as_str())
        .bind(name.as_str())
        .bind(now_ms())
        .fetch_optional(&self.pool)
        .await
        .map_err(from_sqlx)?;
        if let Some(row) = inserted {
            return Ok((room_from_row(&row).map_err(from_sqlx)?, true));
        }
        let existing = self.find_room(slug).await?;
        existing
            .map(|room| (room, false))
            .ok_or_else(|| unavailable(sqlx::Error::RowNotFound))
    }

    async fn find_room(&self, slug: &Slug) -> Result<Option<Room>, StoreError> {
        let row = sqlx::query(&format!("SELECT {ROOM_COLUMNS} FROM rooms WHERE slug = ?"))
            .bind(slug.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(from_sqlx)?;
        row.map(|r| room_from_row(&r))
            .transpose()
            .map_err(from_sqlx)
    }

    async fn list_rooms(
        &self,
        offset: usize,
        limit: usize,
    ) -> Result<Vec<RoomSummary>, StoreError> {
        let rows = sqlx::query(
            &format!("SELECT {ROOM_COLUMNS}, last_message_at FROM rooms ORDER BY {ROOM_LIST_ORDER} LIMIT ? OFFSET ?"),
        )
        .bind(limit as i64)
        .bind(offset as i64)
        .fetch_all(&self.pool)
        .await
        .map_err(from_sqlx)?;
        rows.iter()
            .map(|row| {
                Ok(RoomSummary {
                    room: room_from_row(row)?,
                    last_message_at: row
                        .try_get::<Option<i64>, _>("last_message_at")?
                        .map(time_from_ms),
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(from_sqlx)
    }

    async fn append_message(&self, message: NewMessage) -> Result<Appended, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.writes
            .send(writer::Job::Append { message, reply })
            .await
            .map_err(|_| unavailable(sqlx::Error::PoolClosed))?;
        answer
            .await
            .map_err(|_| unavailable(sqlx::Error::PoolClosed))?
    }

    async fn find_by_client_id(
        &self,
        user: UserId,
        client_id: &str,
    ) -> Result<Option<Message>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {MESSAGE_COLUMNS} WHERE m.user_id = ? AND m.client_id = ?"
        ))
        .bind(user.0)
        .bind(client_id)
        .fetch_optional(&self.pool)
        .await
        .map_err(from_sqlx)?;
        row.map(|r| message_from_row(&r))
            .transpose()
            .map_err(from_sqlx)
    }

    async fn last_seq(&self, room: RoomId) -> Result<Seq, StoreError> {
        let row = sqlx::query("SELECT last_seq FROM rooms WHERE id = ?")
            .bind(room.0)
            .fetch_optional(&self.pool)
            .await
            .map_err(from_sqlx)?;
        Ok(match row {
            Some(row) => row.try_get(0).map_err(from_sqlx)?,
            None => Seq::ZERO,
        })
    }

    async fn messages(
        &self,
        room: &Room,
        range: HistoryRange,
        limit: u32,
    ) -> Result<Vec<Message>, StoreError> {
        let (condition, bound, newest_first) = match range {
            HistoryRange::Latest => ("", None, true),
            HistoryRange::Before(seq) => (" AND m.seq < ?", Some(seq), true),
            HistoryRange::After(seq) => (" AND m.seq > ?", Some(seq), false),
        };
        let order = if newest_first { "DESC" } else { "ASC" };
        let sql = format!("SELECT {MESSAGE_COLUMNS} WHERE m.room_id = ?{condition} ORDER BY m.seq {order} LIMIT ?");
        let mut query = sqlx::query(&sql).bind(room.id.0);
        if let Some(seq) = bound {
            query = query.bind(seq);
        }
        let rows = query
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await
            .map_err(from_sqlx)?;
        let mut messages = rows
            .iter()
            .map(message_from_row)
            .collect::<Result<Vec<_>, _>>()
            .map_err(from_sqlx)?;
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
    use super::*;
    use crate::domain::RoomKind;

    /// A database made before CONTRACT §9 keeps its rooms, as public rooms, and its
    /// messages as they were.
    #[tokio::test]
    async fn rooms_made_before_kinds_become_public_and_keep_their_messages() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("old.db").display());
        let pool = SqlitePoolOptions::new()
            .connect_with(options(&url).unwrap())
            .await
            .unwrap();
        super::super::sql::migrator(&super::super::sql::SQLITE_MIGRATIONS[..1])
            .run(&pool)
            .await
            .unwrap();
        for statement in [
            "INSERT INTO users (username, username_key, password_hash, created_at) VALUES ('alice', 'alice', 'x', 1)",
            "INSERT INTO rooms (slug, name, last_seq, last_message_at, created_at) VALUES ('general', 'General', 1, 2, 1)",
            "INSERT INTO messages (room_id, seq, user_id, body, client_id, sent_at) VALUES (1, 1, 1, 'hello', 'c1', 2)",
        ] {
            sqlx::query(statement).execute(&pool).await.unwrap();
        }
        pool.close().await;

        let store = SqliteStore::connect(&url).await.unwrap();
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
        store.close().await;
    }
}
