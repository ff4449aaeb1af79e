//! Group commit: one task owns the write connection, takes every pending append (and
//! membership added on joining, CONTRACT §9, and change to a message, CONTRACT §10),
//! stores them in one transaction (one fsync for the batch) and then answers each sender.
//!
//! Per message, inside the transaction: look up `(user, client_id)` (a resend returns the
//! stored message), else `UPDATE rooms … last_seq + 1, last_rev + 1 RETURNING` and
//! `INSERT`. A failed batch rolls back whole, so `seq` and `rev` never get a gap and
//! nothing unacked is half-written. A change takes the room's next `rev` the same way; the
//! one writer (and SQLite's one write lock, against another process's writer) serialises
//! it with every other write to the room.
//!
//! Before each commit the writer checks that the database file is still the one it opened:
//! a deleted or replaced file would take writes that vanish at the next start, so such a
//! batch fails (`unavailable`) instead of being acked. A probe ([`Job::Probe`]) is a write
//! transaction of its own, so `/readyz` learns whether writes work (a full disk, a
//! read-only file), not merely whether the file can be read.

use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;

use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};
use sqlx::{Connection, Row};
use tokio::sync::{mpsc, oneshot};

use super::{from_sqlx, message_from_row, now_ms, time_from_ms, MESSAGE_COLUMNS};
use crate::adapters::sql;
use crate::adapters::sql::change as change_sql;
use crate::domain::{mentioned_keys, NewMessage, Rev, Role, RoomId, Seq, UserId};
use crate::ports::{Added, Appended, Changed, MessageChange, StoreError, MAX_EMOJI_PER_MESSAGE};

/// Most messages committed in one transaction.
const MAX_BATCH: usize = 256;

pub(super) enum Job {
    Append {
        message: NewMessage,
        reply: oneshot::Sender<Result<Appended, StoreError>>,
    },
    /// [`Store::add_member`](crate::ports::Store::add_member). Under a savepoint of its
    /// own: a refused one (a user that does not exist) fails alone, not the batch.
    AddMember {
        room: RoomId,
        user: UserId,
        role: Role,
        reply: oneshot::Sender<Result<Added, StoreError>>,
    },
    /// [`Store::change_message`](crate::ports::Store::change_message). Under a savepoint
    /// of its own, as `AddMember`.
    Change {
        room: RoomId,
        id: i64,
        change: Change,
        reply: oneshot::Sender<Result<Changed, StoreError>>,
    },
    /// Answers once a write transaction has committed (or why it could not).
    Probe(oneshot::Sender<Result<(), StoreError>>),
}

/// A [`MessageChange`] the job owns, to cross into the writer task.
pub(super) enum Change {
    Edit { body: String, at_ms: i64 },
    Delete { by: UserId },
    React { user: UserId, emoji: String },
    Unreact { user: UserId, emoji: String },
}

impl From<MessageChange<'_>> for Change {
    fn from(change: MessageChange<'_>) -> Change {
        match change {
            MessageChange::Edit { body, at } => Change::Edit {
                body: body.as_str().to_owned(),
                at_ms: at.timestamp_millis(),
            },
            MessageChange::Delete { by } => Change::Delete { by },
            MessageChange::React { user, emoji } => Change::React {
                user,
                emoji: emoji.as_str().to_owned(),
            },
            MessageChange::Unreact { user, emoji } => Change::Unreact {
                user,
                emoji: emoji.as_str().to_owned(),
            },
        }
    }
}

impl Job {
    fn refuse(self, why: StoreError) {
        match self {
            Job::Append { reply, .. } => drop(reply.send(Err(why))),
            Job::AddMember { reply, .. } => drop(reply.send(Err(why))),
            Job::Change { reply, .. } => drop(reply.send(Err(why))),
            Job::Probe(reply) => drop(reply.send(Err(why))),
        }
    }
}

/// What a job of a committed batch answers.
enum Done {
    Appended(Appended),
    Added(Result<Added, sqlx::Error>),
    Changed(Result<Changed, sqlx::Error>),
    Probed,
}

/// Which file the database is: a deleted or replaced file has another (or no) identity.
#[derive(Debug, Clone, PartialEq, Eq)]
struct FileIdentity {
    path: PathBuf,
    device: u64,
    inode: u64,
}

impl FileIdentity {
    fn of(path: PathBuf) -> Option<FileIdentity> {
        let meta = std::fs::metadata(&path).ok()?;
        Some(FileIdentity {
            device: meta.dev(),
            inode: meta.ino(),
            path,
        })
    }

    fn still_there(&self) -> Result<(), sqlx::Error> {
        match FileIdentity::of(self.path.clone()) {
            Some(now) if now == *self => Ok(()),
            _ => Err(sqlx::Error::Protocol(format!(
                "the database file {} was deleted or replaced; writes would be lost",
                self.path.display()
            ))),
        }
    }
}

pub(super) async fn spawn(options: SqliteConnectOptions) -> Result<mpsc::Sender<Job>, StoreError> {
    let connection = SqliteConnection::connect_with(&options)
        .await
        .map_err(from_sqlx)?;
    // An in-memory database has no file to lose.
    let identity = FileIdentity::of(options.get_filename().to_path_buf());
    let (sender, receiver) = mpsc::channel(4 * MAX_BATCH);
    tokio::spawn(run(connection, identity, receiver));
    Ok(sender)
}

async fn run(
    mut connection: SqliteConnection,
    identity: Option<FileIdentity>,
    mut jobs: mpsc::Receiver<Job>,
) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while jobs.recv_many(&mut batch, MAX_BATCH).await > 0 {
        match commit(&mut connection, identity.as_ref(), &batch).await {
            Ok(results) => {
                for (job, done) in batch.drain(..).zip(results) {
                    match (job, done) {
                        (Job::Append { reply, .. }, Done::Appended(appended)) => {
                            let _ = reply.send(Ok(appended));
                        }
                        (Job::AddMember { reply, .. }, Done::Added(added)) => {
                            let _ = reply.send(added.map_err(from_sqlx));
                        }
                        (Job::Change { reply, .. }, Done::Changed(changed)) => {
                            let _ = reply.send(changed.map_err(from_sqlx));
                        }
                        (Job::Probe(reply), Done::Probed) => {
                            let _ = reply.send(Ok(()));
                        }
                        (job, _) => {
                            job.refuse(StoreError::Unavailable("a job without its result".into()))
                        }
                    }
                }
            }
            Err(e) => {
                tracing::error!(error = %e, size = batch.len(), "write batch not stored");
                let _ = sqlx::query("ROLLBACK").execute(&mut connection).await;
                let message = e.to_string();
                let refusal = || StoreError::Unavailable(message.clone().into());
                for job in batch.drain(..) {
                    job.refuse(refusal());
                }
            }
        }
    }
    let _ = connection.close().await;
}

/// One result per job, in order.
async fn commit(
    connection: &mut SqliteConnection,
    identity: Option<&FileIdentity>,
    batch: &[Job],
) -> Result<Vec<Done>, sqlx::Error> {
    if let Some(identity) = identity {
        identity.still_there()?;
    }
    // IMMEDIATE takes the write lock up front, so the batch cannot fail half-way on a busy upgrade.
    sqlx::query("BEGIN IMMEDIATE")
        .execute(&mut *connection)
        .await?;
    let mut results = Vec::with_capacity(batch.len());
    for job in batch {
        results.push(match job {
            Job::Append { message, .. } => Done::Appended(append_one(connection, message).await?),
            Job::AddMember {
                room, user, role, ..
            } => {
                savepoint(connection).await?;
                let added = try_add_member(connection, *room, *user, *role).await;
                end_savepoint(connection, added.is_ok()).await?;
                Done::Added(added)
            }
            Job::Change {
                room, id, change, ..
            } => {
                savepoint(connection).await?;
                let changed = change_one(connection, *room, *id, change).await;
                end_savepoint(connection, changed.is_ok()).await?;
                Done::Changed(changed)
            }
            Job::Probe(_) => {
                probe(connection).await?;
                Done::Probed
            }
        });
    }
    sqlx::query("COMMIT").execute(&mut *connection).await?;
    Ok(results)
}

/// A write that changes nothing: the schema cookie set to its own value still dirties
/// the header page, so the commit has to reach the disk.
async fn probe(connection: &mut SqliteConnection) -> Result<(), sqlx::Error> {
    let version: i64 = sqlx::query("PRAGMA user_version")
        .fetch_one(&mut *connection)
        .await?
        .try_get(0)?;
    sqlx::query(&format!("PRAGMA user_version = {version}"))
        .execute(&mut *connection)
        .await?;
    Ok(())
}

/// Starts a job that must fail alone: a refused one (a user that does not exist) undoes
/// its own writes, not the batch's ([`end_savepoint`]).
async fn savepoint(connection: &mut SqliteConnection) -> Result<(), sqlx::Error> {
    sqlx::query("SAVEPOINT job")
        .execute(&mut *connection)
        .await?;
    Ok(())
}

/// Keeps the job's writes if it `succeeded`, else undoes them. An error here fails the
/// batch: the connection could not even undo the savepoint.
async fn end_savepoint(
    connection: &mut SqliteConnection,
    succeeded: bool,
) -> Result<(), sqlx::Error> {
    if !succeeded {
        sqlx::query("ROLLBACK TO job")
            .execute(&mut *connection)
            .await?;
    }
    sqlx::query("RELEASE job").execute(&mut *connection).await?;
    Ok(())
}

/// Adds the member unless they are one or are banned: one statement, so the single
/// writer sees no ban slip in between.
async fn try_add_member(
    connection: &mut SqliteConnection,
    room: RoomId,
    user: UserId,
    role: Role,
) -> Result<Added, sqlx::Error> {
    let inserted = sqlx::query(
        "INSERT INTO memberships (room_id, user_id, role, joined_at) \
         SELECT ?1, ?2, ?3, ?4 \
         WHERE NOT EXISTS (SELECT 1 FROM bans WHERE room_id = ?1 AND user_id = ?2) \
         ON CONFLICT (room_id, user_id) DO NOTHING",
    )
    .bind(room.0)
    .bind(user.0)
    .bind(role)
    .bind(now_ms())
    .execute(&mut *connection)
    .await?
    .rows_affected();
    if inserted == 1 {
        return Ok(Added::Added);
    }
    let banned: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM bans WHERE room_id = ? AND user_id = ?)")
            .bind(room.0)
            .bind(user.0)
            .fetch_one(&mut *connection)
            .await?;
    Ok(if banned {
        Added::Banned
    } else {
        Added::AlreadyMember
    })
}

async fn append_one(
    connection: &mut SqliteConnection,
    new: &NewMessage,
) -> Result<Appended, sqlx::Error> {
    if let Some(client_id) = &new.client_id {
        let existing = sqlx::query(&format!(
            "SELECT {MESSAGE_COLUMNS} WHERE m.user_id = ? AND m.client_id = ?"
        ))
        .bind(new.user.id.0)
        .bind(client_id.as_str())
        .fetch_optional(&mut *connection)
        .await?;
        if let Some(row) = existing {
            return Ok(Appended {
                message: message_from_row(&row)?,
                fresh: false,
            });
        }
    }
    let sent_at = now_ms();
    let (seq, rev): (Seq, Rev) = sqlx::query_as(
        "UPDATE rooms SET last_seq = last_seq + 1, last_rev = last_rev + 1, last_message_at = ? \
         WHERE id = ? RETURNING last_seq, last_rev",
    )
    .bind(sent_at)
    .bind(new.room.id.0)
    .fetch_one(&mut *connection)
    .await?;
    let id: i64 = sqlx::query(
        "INSERT INTO messages (room_id, seq, rev, user_id, body, client_id, sent_at, reply_to) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
    )
    .bind(new.room.id.0)
    .bind(seq)
    .bind(rev)
    .bind(new.user.id.0)
    .bind(new.body.as_str())
    .bind(new.client_id.as_ref().map(|c| c.as_str()))
    .bind(sent_at)
    .bind(new.reply_to.as_ref().map(|target| target.id))
    .fetch_one(&mut *connection)
    .await?
    .try_get(0)?;
    let keys = new.mentioned_keys();
    let mentions = if keys.is_empty() {
        Vec::new()
    } else {
        insert_mentions(connection, id, &keys).await?;
        sql::sorted_mentions(
            sqlx::query_scalar(sql::MENTIONED_NAMES)
                .bind(id)
                .fetch_all(&mut *connection)
                .await?,
        )
    };
    Ok(Appended {
        message: new.stored(id, seq, rev, time_from_ms(sent_at), mentions),
        fresh: true,
    })
}

/// Records whom message `id` mentions among `keys` (`sql::insert_mentions_sql`).
async fn insert_mentions(
    connection: &mut SqliteConnection,
    id: i64,
    keys: &[String],
) -> Result<(), sqlx::Error> {
    if !keys.is_empty() {
        let keys = serde_json::to_string(keys).expect("keys serialize");
        sqlx::query(&sql::insert_mentions_sql(
            "IN (SELECT value FROM json_each($2))",
        ))
        .bind(id)
        .bind(keys)
        .execute(&mut *connection)
        .await?;
    }
    Ok(())
}

/// Changes message `id` of `room` under the writer's write lock: nothing else writes to
/// the room between the checks and the change. Every outcome reads the message back in
/// the transaction, as it will be once committed.
async fn change_one(
    connection: &mut SqliteConnection,
    room: RoomId,
    id: i64,
    change: &Change,
) -> Result<Changed, sqlx::Error> {
    let state: Option<(String, bool)> = sqlx::query_as(change_sql::MESSAGE_STATE)
        .bind(id)
        .bind(room.0)
        .fetch_optional(&mut *connection)
        .await?;
    let Some((body, deleted)) = state else {
        return Ok(Changed::UnknownMessage);
    };
    if deleted {
        return Ok(Changed::Deleted);
    }
    let changed = match change {
        Change::Edit { body: new, at_ms } => {
            if *new == body {
                false
            } else {
                sqlx::query(change_sql::EDIT)
                    .bind(new)
                    .bind(at_ms)
                    .bind(id)
                    .execute(&mut *connection)
                    .await?;
                sqlx::query(change_sql::DELETE_MENTIONS)
                    .bind(id)
                    .execute(&mut *connection)
                    .await?;
                insert_mentions(connection, id, &mentioned_keys(new)).await?;
                true
            }
        }
        Change::Delete { by } => {
            for statement in [change_sql::DELETE_REACTIONS, change_sql::DELETE_MENTIONS] {
                sqlx::query(statement)
                    .bind(id)
                    .execute(&mut *connection)
                    .await?;
            }
            sqlx::query(change_sql::TOMBSTONE)
                .bind(by.0)
                .bind(id)
                .execute(&mut *connection)
                .await?;
            true
        }
        Change::React { user, emoji } => {
            let (present, distinct): (bool, i64) = sqlx::query_as(change_sql::EMOJI_STATE)
                .bind(id)
                .bind(emoji)
                .fetch_one(&mut *connection)
                .await?;
            if !present && distinct >= MAX_EMOJI_PER_MESSAGE as i64 {
                return Ok(Changed::TooManyReactions);
            }
            sqlx::query(change_sql::REACT)
                .bind(id)
                .bind(user.0)
                .bind(emoji)
                .bind(now_ms())
                .execute(&mut *connection)
                .await?
                .rows_affected()
                == 1
        }
        Change::Unreact { user, emoji } => {
            sqlx::query(change_sql::UNREACT)
                .bind(id)
                .bind(user.0)
                .bind(emoji)
                .execute(&mut *connection)
                .await?
                .rows_affected()
                == 1
        }
    };
    if changed {
        let rev: Rev = sqlx::query_scalar(change_sql::NEXT_REV)
            .bind(room.0)
            .fetch_one(&mut *connection)
            .await?;
        sqlx::query(change_sql::SET_REV)
            .bind(rev)
            .bind(id)
            .execute(&mut *connection)
            .await?;
    }
    let row = sqlx::query(&format!("SELECT {MESSAGE_COLUMNS} WHERE m.id = ?"))
        .bind(id)
        .fetch_one(&mut *connection)
        .await?;
    let message = message_from_row(&row)?;
    Ok(if changed {
        Changed::Changed(message)
    } else {
        Changed::Unchanged(message)
    })
}
