//! Group commit: one task owns the write connection, takes every pending append, stores
//! them in one transaction (one fsync for the batch) and then answers each sender.
//!
//! Per message, inside the transaction: look up `(user, client_id)` (a resend returns the
//! stored message), else `UPDATE rooms … last_seq + 1 RETURNING` and `INSERT`. A failed
//! batch rolls back whole, so `seq` never gets a gap and nothing unacked is half-written.
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
use crate::domain::{NewMessage, Seq};
use crate::ports::{Appended, StoreError};

/// Most messages committed in one transaction.
const MAX_BATCH: usize = 256;

pub(super) enum Job {
    Append {
        message: NewMessage,
        reply: oneshot::Sender<Result<Appended, StoreError>>,
    },
    /// Answers once a write transaction has committed (or why it could not).
    Probe(oneshot::Sender<Result<(), StoreError>>),
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
                for (job, result) in batch.drain(..).zip(results) {
                    match job {
                        Job::Append { reply, .. } => {
                            let _ = reply.send(result.ok_or_else(|| {
                                StoreError::Unavailable("an append without a result".into())
                            }));
                        }
                        Job::Probe(reply) => {
                            let _ = reply.send(Ok(()));
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
                    match job {
                        Job::Append { reply, .. } => {
                            let _ = reply.send(Err(refusal()));
                        }
                        Job::Probe(reply) => {
                            let _ = reply.send(Err(refusal()));
                        }
                    }
                }
            }
        }
    }
    let _ = connection.close().await;
}

/// One result per job: the append's, or `None` for a probe.
async fn commit(
    connection: &mut SqliteConnection,
    identity: Option<&FileIdentity>,
    batch: &[Job],
) -> Result<Vec<Option<Appended>>, sqlx::Error> {
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
            Job::Append { message, .. } => Some(append_one(connection, message).await?),
            Job::Probe(_) => {
                probe(connection).await?;
                None
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
    let seq: Seq = sqlx::query("UPDATE rooms SET last_seq = last_seq + 1, last_message_at = ? WHERE id = ? RETURNING last_seq")
        .bind(sent_at)
        .bind(new.room.id.0)
        .fetch_one(&mut *connection)
        .await?
        .try_get(0)?;
    let id: i64 = sqlx::query(
        "INSERT INTO messages (room_id, seq, user_id, body, client_id, sent_at) VALUES (?, ?, ?, ?, ?, ?) RETURNING id",
    )
    .bind(new.room.id.0)
    .bind(seq)
    .bind(new.user.id.0)
    .bind(new.body.as_str())
    .bind(new.client_id.as_ref().map(|c| c.as_str()))
    .bind(sent_at)
    .fetch_one(&mut *connection)
    .await?
    .try_get(0)?;
    Ok(Appended {
        message: new.stored(id, seq, time_from_ms(sent_at)),
        fresh: true,
    })
}
