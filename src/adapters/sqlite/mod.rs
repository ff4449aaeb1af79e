//! The SQLite store: the embedded default.
//!
//! WAL mode with `synchronous=FULL` (an ack is a promise, so a commit must survive power
//! loss). Messages are appended by one writer task that commits whole batches in one
//! transaction ([`writer`]); everything else goes through a small pool.
//!
//! A transaction through the pool starts with a write, so SQLite takes its one write lock
//! at once (waiting up to `busy_timeout` for another connection's, the writer's included)
//! rather than failing to upgrade a read snapshot that went stale. Holding that lock, it
//! sees no other writer's work in progress: a room and its first members appear together,
//! and an added member and a ban of them cannot both commit.

mod writer;

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::migrate::Migrator;

use super::sql;
use super::sql::{
    from_sqlx, message_columns, reactions_from_json, reply_from_columns, room_list_sql,
    standing_joins, standings_in_order, unavailable, CHANGES_WHERE, ROOM_COLUMNS, ROOM_LIST_ORDER,
};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
    SqliteRow, SqliteSynchronous,
};
use sqlx::Row;
use tokio::sync::{mpsc, oneshot};

use crate::domain::{
    Attention, HistoryRange, Message, NewMessage, ReplyRef, Rev, Role, Room, RoomId, RoomKind,
    RoomScope, RoomSummary, Seq, Slug, User, UserId, Username,
};
use crate::ports::{
    Added, Appended, BanRecord, Changed, DmPair, MemberRecord, MessageChange, NewRoom,
    SessionRecord, Standing, Store, StoreError,
};

/// [`message_columns!`] with SQLite's JSON of a message's reactions and mentions.
pub(crate) const MESSAGE_COLUMNS: &str = message_columns!(
    "(SELECT json_group_array(json_array(x.emoji, xu.username) ORDER BY x.id) \
     FROM reactions x JOIN users xu ON xu.id = x.user_id WHERE x.message_id = m.id)",
    "(SELECT json_group_array(xu.username) \
     FROM mentions x JOIN users xu ON xu.id = x.user_id WHERE x.message_id = m.id)"
);

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

/// A row of [`MESSAGE_COLUMNS`].
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
        rev: row.try_get(9)?,
        edited_at: row.try_get::<Option<i64>, _>(10)?.map(time_from_ms),
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

fn room_from_row(row: &SqliteRow) -> Result<Room, sqlx::Error> {
    Ok(Room {
        id: RoomId(row.try_get("id")?),
        slug: row.try_get("slug")?,
        name: row.try_get("name")?,
        kind: row.try_get("kind")?,
    })
}

/// The user whose id and username are columns `at` and `at + 1`.
fn user_from_row(row: &SqliteRow, at: usize) -> Result<User, sqlx::Error> {
    Ok(User {
        id: UserId(row.try_get(at)?),
        username: row.try_get(at + 1)?,
    })
}

/// Adds a member of a room the transaction on `connection` has just created.
async fn insert_membership(
    connection: &mut SqliteConnection,
    room: RoomId,
    user: UserId,
    role: Role,
) -> Result<(), sqlx::Error> {
    sqlx::query("INSERT INTO memberships (room_id, user_id, role, joined_at) VALUES (?, ?, ?, ?)")
        .bind(room.0)
        .bind(user.0)
        .bind(role)
        .bind(now_ms())
        .execute(connection)
        .await?;
    Ok(())
}

/// The room list as SQLite returns it in one row: a JSON array of `[id, slug, name,
/// kind, last_message_at (ms since the epoch, or null), role (or null)]`, in the list's
/// order. One row, not hundreds: sqlx's SQLite worker thread hands each row over
/// separately, which for a list of 500 rooms cost more than the query.
/// (PostgreSQL's `json_agg` of the same list measured slower than its rows.)
fn summaries_from_json(json: &str) -> Result<Vec<RoomSummary>, StoreError> {
    type Listed = (
        i64,
        String,
        String,
        String,
        Option<i64>,
        Option<String>,
        Option<Seq>,
        Option<Seq>,
        Option<i64>,
        Option<i64>,
    );
    let rooms: Vec<Listed> = serde_json::from_str(json).map_err(unavailable)?;
    let corrupt = |what: &str| unavailable(sqlx::Error::Decode(what.into()));
    rooms
        .into_iter()
        .map(
            |(id, slug, name, kind, last_message_at, role, read, last, unread, mentions)| {
                Ok(RoomSummary {
                    room: Room {
                        id: RoomId(id),
                        slug,
                        name,
                        kind: RoomKind::parse(&kind).ok_or_else(|| corrupt("a room's kind"))?,
                    },
                    last_message_at: match last_message_at {
                        Some(ms) => Some(
                            DateTime::from_timestamp_millis(ms)
                                .ok_or_else(|| corrupt("a room's last message time"))?,
                        ),
                        None => None,
                    },
                    role: match role {
                        Some(role) => Some(Role::parse(&role).ok_or_else(|| corrupt("a role"))?),
                        None => None,
                    },
                    attention: sql::attention_from_row((read, last, unread, mentions)),
                })
            },
        )
        .collect()
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

    async fn find_user(&self, username: &Username) -> Result<Option<User>, StoreError> {
        let row = sqlx::query("SELECT id, username FROM users WHERE username_key = ?")
            .bind(username.key())
            .fetch_optional(&self.pool)
            .await
            .map_err(from_sqlx)?;
        row.map(|row| user_from_row(&row, 0))
            .transpose()
            .map_err(from_sqlx)
    }

    async fn create_room(&self, new: NewRoom<'_>) -> Result<(Room, bool), StoreError> {
        let mut tx = self.pool.begin().await.map_err(from_sqlx)?;
        let inserted = sqlx::query(
            &format!("INSERT INTO rooms (slug, name, kind, created_at) VALUES (?, ?, ?, ?) ON CONFLICT (slug) DO NOTHING RETURNING {ROOM_COLUMNS}"),
        )
        .bind(new.slug.as_str())
        .bind(new.name.as_str())
        .bind(new.kind)
        .bind(now_ms())
        .fetch_optional(&mut *tx)
        .await
        .map_err(from_sqlx)?;
        let Some(row) = inserted else {
            // Nothing was written: end the transaction, and its write lock, before reading.
            drop(tx);
            let existing = self.find_room(new.slug).await?;
            return existing
                .map(|room| (room, false))
                .ok_or_else(|| unavailable(sqlx::Error::RowNotFound));
        };
        let room = room_from_row(&row).map_err(from_sqlx)?;
        insert_membership(&mut tx, room.id, new.owner, Role::Owner)
            .await
            .map_err(from_sqlx)?;
        tx.commit().await.map_err(from_sqlx)?;
        Ok((room, true))
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

    async fn open_dm(
        &self,
        pair: DmPair,
        slug: &Slug,
        name: &str,
    ) -> Result<(Room, bool), StoreError> {
        let mut tx = self.pool.begin().await.map_err(from_sqlx)?;
        let inserted = sqlx::query(
            &format!("INSERT INTO rooms (slug, name, kind, dm_key, created_at) VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING RETURNING {ROOM_COLUMNS}"),
        )
        .bind(slug.as_str())
        .bind(name)
        .bind(RoomKind::Dm)
        .bind(pair.key())
        .bind(now_ms())
        .fetch_optional(&mut *tx)
        .await
        .map_err(from_sqlx)?;
        let Some(row) = inserted else {
            drop(tx);
            // Nothing inserted and no DM: the slug is another room's.
            let existing = self.find_dm(pair).await?;
            return existing
                .map(|room| (room, false))
                .ok_or(StoreError::Duplicate);
        };
        let room = room_from_row(&row).map_err(from_sqlx)?;
        for user in [pair.0, pair.1] {
            insert_membership(&mut tx, room.id, user, Role::Member)
                .await
                .map_err(from_sqlx)?;
        }
        tx.commit().await.map_err(from_sqlx)?;
        Ok((room, true))
    }

    async fn find_dm(&self, pair: DmPair) -> Result<Option<Room>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {ROOM_COLUMNS} FROM rooms WHERE dm_key = ?"
        ))
        .bind(pair.key())
        .fetch_optional(&self.pool)
        .await
        .map_err(from_sqlx)?;
        row.map(|r| room_from_row(&r))
            .transpose()
            .map_err(from_sqlx)
    }

    /// One row of JSON ([`summaries_from_json`]): sqlx hands each row of a SQLite query
    /// from its worker thread to the task separately, which for a list of hundreds of
    /// rooms cost several times the query itself.
    async fn list_rooms(
        &self,
        viewer: UserId,
        scope: RoomScope,
        offset: usize,
        limit: usize,
        attention: bool,
    ) -> Result<Vec<RoomSummary>, StoreError> {
        let listed = room_list_sql(scope, ["?1", "?2", "?3"], attention);
        let sql = format!(
            "SELECT json_group_array(json_array(id, slug, name, kind, last_message_at, role, \
                 read_seq, last_seq, unread, mentions) \
             ORDER BY {ROOM_LIST_ORDER}) FROM ({listed})"
        );
        let json: String = sqlx::query_scalar(&sql)
            .bind(viewer.0)
            .bind(limit as i64)
            .bind(offset as i64)
            .fetch_one(&self.pool)
            .await
            .map_err(from_sqlx)?;
        summaries_from_json(&json)
    }

    async fn standings(&self, room: RoomId, users: &[UserId]) -> Result<Vec<Standing>, StoreError> {
        let ids: Vec<i64> = users.iter().map(|user| user.0).collect();
        let ids = serde_json::to_string(&ids).expect("ids serialize");
        let rows: Vec<(i64, Option<Role>, bool)> = sqlx::query_as(&format!(
            "SELECT u.value, m.role, b.user_id IS NOT NULL FROM json_each(?2) u {}",
            standing_joins("?1")
        ))
        .bind(room.0)
        .bind(ids)
        .fetch_all(&self.pool)
        .await
        .map_err(from_sqlx)?;
        Ok(standings_in_order(users, rows))
    }

    /// One statement checks the bans and inserts, under the write lock that keeps any ban
    /// out until it commits; the bans are read again only to say why nothing was added.
    /// Through the writer, with the batch of whatever else is being written: a crowd
    /// joining a public room for the first time adds its members in a few transactions
    /// (a few fsyncs), not one each.
    async fn add_member(
        &self,
        room: RoomId,
        user: UserId,
        role: Role,
    ) -> Result<Added, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.writes
            .send(writer::Job::AddMember {
                room,
                user,
                role,
                reply,
            })
            .await
            .map_err(|_| unavailable(sqlx::Error::PoolClosed))?;
        answer
            .await
            .map_err(|_| unavailable(sqlx::Error::PoolClosed))?
    }

    async fn attention(&self, room: RoomId, user: UserId) -> Result<Option<Attention>, StoreError> {
        let row: Option<sql::AttentionRow> = sqlx::query_as(&sql::attention_sql())
            .bind(room.0)
            .bind(user.0)
            .fetch_optional(&self.pool)
            .await
            .map_err(from_sqlx)?;
        Ok(row.and_then(sql::attention_from_row))
    }

    /// On the pool, not through the writer, as `set_role`: one row, no batch to join.
    async fn mark_read(
        &self,
        room: RoomId,
        user: UserId,
        seq: Seq,
    ) -> Result<Option<Attention>, StoreError> {
        sqlx::query(&sql::mark_read_sql("max"))
            .bind(room.0)
            .bind(user.0)
            .bind(seq)
            .execute(&self.pool)
            .await
            .map_err(from_sqlx)?;
        self.attention(room, user).await
    }

    async fn set_role(&self, room: RoomId, user: UserId, role: Role) -> Result<bool, StoreError> {
        let updated =
            sqlx::query("UPDATE memberships SET role = ? WHERE room_id = ? AND user_id = ?")
                .bind(role)
                .bind(room.0)
                .bind(user.0)
                .execute(&self.pool)
                .await
                .map_err(from_sqlx)?;
        Ok(updated.rows_affected() == 1)
    }

    async fn remove_member(&self, room: RoomId, user: UserId) -> Result<bool, StoreError> {
        let removed = sqlx::query("DELETE FROM memberships WHERE room_id = ? AND user_id = ?")
            .bind(room.0)
            .bind(user.0)
            .execute(&self.pool)
            .await
            .map_err(from_sqlx)?;
        Ok(removed.rows_affected() == 1)
    }

    async fn members(&self, room: RoomId) -> Result<Vec<MemberRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT u.id, u.username, m.role FROM memberships m JOIN users u ON u.id = m.user_id \
             WHERE m.room_id = ?",
        )
        .bind(room.0)
        .fetch_all(&self.pool)
        .await
        .map_err(from_sqlx)?;
        rows.iter()
            .map(|row| {
                Ok(MemberRecord {
                    user: user_from_row(row, 0)?,
                    role: row.try_get(2)?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(from_sqlx)
    }

    async fn ban(&self, room: RoomId, user: UserId, by: UserId) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await.map_err(from_sqlx)?;
        sqlx::query("DELETE FROM memberships WHERE room_id = ? AND user_id = ?")
            .bind(room.0)
            .bind(user.0)
            .execute(&mut *tx)
            .await
            .map_err(from_sqlx)?;
        // A second ban keeps the first one's author and time.
        sqlx::query(
            "INSERT INTO bans (room_id, user_id, banned_by, banned_at) VALUES (?, ?, ?, ?) \
             ON CONFLICT (room_id, user_id) DO NOTHING",
        )
        .bind(room.0)
        .bind(user.0)
        .bind(by.0)
        .bind(now_ms())
        .execute(&mut *tx)
        .await
        .map_err(from_sqlx)?;
        tx.commit().await.map_err(from_sqlx)
    }

    async fn unban(&self, room: RoomId, user: UserId) -> Result<bool, StoreError> {
        let removed = sqlx::query("DELETE FROM bans WHERE room_id = ? AND user_id = ?")
            .bind(room.0)
            .bind(user.0)
            .execute(&self.pool)
            .await
            .map_err(from_sqlx)?;
        Ok(removed.rows_affected() == 1)
    }

    async fn bans(&self, room: RoomId) -> Result<Vec<BanRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT u.id, u.username, by_user.id, by_user.username, b.banned_at FROM bans b \
             JOIN users u ON u.id = b.user_id JOIN users by_user ON by_user.id = b.banned_by \
             WHERE b.room_id = ?",
        )
        .bind(room.0)
        .fetch_all(&self.pool)
        .await
        .map_err(from_sqlx)?;
        rows.iter()
            .map(|row| {
                Ok(BanRecord {
                    user: user_from_row(row, 0)?,
                    by: user_from_row(row, 2)?,
                    at: time_from_ms(row.try_get(4)?),
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

    async fn last_rev(&self, room: RoomId) -> Result<Rev, StoreError> {
        let rev: Option<Rev> = sqlx::query_scalar("SELECT last_rev FROM rooms WHERE id = ?")
            .bind(room.0)
            .fetch_optional(&self.pool)
            .await
            .map_err(from_sqlx)?;
        Ok(rev.unwrap_or(Rev::ZERO))
    }

    async fn message(&self, room: &Room, id: i64) -> Result<Option<Message>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {MESSAGE_COLUMNS} WHERE m.id = $1 AND m.room_id = $2"
        ))
        .bind(id)
        .bind(room.id.0)
        .fetch_optional(&self.pool)
        .await
        .map_err(from_sqlx)?;
        row.map(|r| message_from_row(&r))
            .transpose()
            .map_err(from_sqlx)
    }

    async fn reply_refs(&self, room: &Room, ids: &[i64]) -> Result<Vec<ReplyRef>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let ids = serde_json::to_string(ids).expect("ids serialize");
        let rows: Vec<sql::ReplyRefRow> =
            sqlx::query_as(&sql::reply_refs_query("(SELECT value FROM json_each($2))"))
                .bind(room.id.0)
                .bind(ids)
                .fetch_all(&self.pool)
                .await
                .map_err(from_sqlx)?;
        Ok(rows.into_iter().map(sql::reply_ref_from_row).collect())
    }

    /// Through the writer, under a savepoint of its own in whatever batch it joins.
    async fn change_message(
        &self,
        room: &Room,
        id: i64,
        change: MessageChange<'_>,
    ) -> Result<Changed, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.writes
            .send(writer::Job::Change {
                room: room.id,
                id,
                change: writer::Change::from(change),
                reply,
            })
            .await
            .map_err(|_| unavailable(sqlx::Error::PoolClosed))?;
        answer
            .await
            .map_err(|_| unavailable(sqlx::Error::PoolClosed))?
    }

    async fn changes(
        &self,
        room: &Room,
        after: Rev,
        up_to: Seq,
        limit: u32,
    ) -> Result<Vec<Message>, StoreError> {
        let rows = sqlx::query(&format!("SELECT {MESSAGE_COLUMNS} WHERE {CHANGES_WHERE}"))
            .bind(room.id.0)
            .bind(after)
            .bind(up_to)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await
            .map_err(from_sqlx)?;
        rows.iter()
            .map(message_from_row)
            .collect::<Result<_, _>>()
            .map_err(from_sqlx)
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

    /// A database made before CONTRACT §9 keeps its rooms, as public rooms without members,
    /// and its messages as they were.
    #[tokio::test]
    async fn rooms_made_before_kinds_become_public_and_keep_their_messages() {
        let dir = tempfile::tempdir().unwrap();
        let store = upgraded(&dir, 1, &[
            "INSERT INTO users (username, username_key, password_hash, created_at) VALUES ('alice', 'alice', 'x', 1)",
            "INSERT INTO rooms (slug, name, last_seq, last_message_at, created_at) VALUES ('general', 'General', 1, 2, 1)",
            "INSERT INTO messages (room_id, seq, user_id, body, client_id, sent_at) VALUES (1, 1, 1, 'hello', 'c1', 2)",
        ])
        .await;
        super::super::sql::assert_old_room_upgraded(&store).await;
        store.close().await;
    }

    /// The store on a database made at the first `applied` migrations and filled by
    /// `statements` (the data an upgrade must keep), opened: so migrated the rest of the way.
    async fn upgraded(dir: &tempfile::TempDir, applied: usize, statements: &[&str]) -> SqliteStore {
        let url = format!("sqlite://{}", dir.path().join("old.db").display());
        let pool = SqlitePoolOptions::new()
            .connect_with(options(&url).unwrap())
            .await
            .unwrap();
        super::super::sql::migrator(&super::super::sql::SQLITE_MIGRATIONS[..applied])
            .run(&pool)
            .await
            .unwrap();
        for statement in statements {
            sqlx::query(statement).execute(&pool).await.unwrap();
        }
        pool.close().await;
        SqliteStore::connect(&url).await.unwrap()
    }

    /// A database made before CONTRACT §10 keeps its messages, each with rev = seq.
    #[tokio::test]
    async fn messages_made_before_revs_take_their_seq_as_rev() {
        let dir = tempfile::tempdir().unwrap();
        let store = upgraded(&dir, 3, &[
            "INSERT INTO users (username, username_key, password_hash, created_at) VALUES ('alice', 'alice', 'x', 1)",
            "INSERT INTO rooms (slug, name, last_seq, last_message_at, created_at) VALUES ('general', 'General', 2, 3, 1)",
            "INSERT INTO messages (room_id, seq, user_id, body, sent_at) VALUES (1, 1, 1, 'one', 2), (1, 2, 1, 'two', 3)",
        ])
        .await;
        super::super::sql::assert_old_messages_have_revs(&store).await;
        store.close().await;
    }

    /// Members added on joining share the writer's batches with messages: one that the
    /// store refuses (no such user) must fail alone.
    #[tokio::test]
    async fn a_refused_member_fails_alone_not_the_batch_it_shares() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("batch.db").display());
        let store = SqliteStore::connect(&url).await.unwrap();
        let alice = store
            .create_user(&Username::parse("alice").unwrap(), "x")
            .await
            .unwrap();
        let name = crate::domain::RoomName::parse("General").unwrap();
        let slug = name.slug();
        let new = crate::ports::NewRoom {
            slug: &slug,
            name: &name,
            kind: RoomKind::Public,
            owner: alice.id,
        };
        let (room, _) = store.create_room(new).await.unwrap();
        let message = |body: &str| NewMessage {
            room: room.clone(),
            user: alice.clone(),
            body: crate::domain::MessageBody::parse(body).unwrap(),
            client_id: None,
            reply_to: None,
        };
        let (first, ghost, second) = tokio::join!(
            store.append_message(message("one")),
            store.add_member(room.id, UserId(999), Role::Member),
            store.append_message(message("two")),
        );
        assert!(ghost.is_err());
        assert!(first.is_ok() && second.is_ok());
        assert_eq!(
            store
                .messages(&room, HistoryRange::Latest, 10)
                .await
                .unwrap()
                .len(),
            2
        );
        assert_eq!(
            store
                .add_member(room.id, alice.id, Role::Member)
                .await
                .unwrap(),
            Added::AlreadyMember
        );
    }

    /// The room list looks the viewer's membership of each room up by index: one room
    /// never costs a scan of every membership, and its counts are index ranges. (PostgreSQL's plan depends on its
    /// statistics; it hashes the viewer's memberships, read by `memberships_user`, once.)
    #[tokio::test]
    async fn the_room_list_never_scans_memberships() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("plan.db").display());
        let store = SqliteStore::connect(&url).await.unwrap();
        for scope in [RoomScope::Visible, RoomScope::Joined, RoomScope::Public] {
            let sql = super::super::sql::room_list_sql(scope, ["?1", "?2", "?3"], true);
            let plan: Vec<String> = sqlx::query(&format!("EXPLAIN QUERY PLAN {sql}"))
                .bind(1_i64)
                .bind(10_i64)
                .bind(0_i64)
                .fetch_all(&store.pool)
                .await
                .unwrap()
                .iter()
                .map(|step| step.get("detail"))
                .collect();
            assert!(
                plan.iter().any(|step| step.starts_with("SEARCH mb USING"))
                    && !plan.iter().any(|step| step.starts_with("SCAN mb")),
                "{scope:?}: {plan:?}"
            );
            // The counts (CONTRACT §11) are index ranges too, never a scan of a table.
            assert!(
                !plan.iter().any(|step| step.starts_with("SCAN x")),
                "{scope:?}: {plan:?}"
            );
            if scope == RoomScope::Joined {
                assert!(
                    plan[0].starts_with("SEARCH mb USING INDEX memberships_user"),
                    "the viewer's rooms, not every room: {plan:?}"
                );
            }
        }
        store.close().await;
    }
}
