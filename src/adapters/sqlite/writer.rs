//! Group commit: one task owns the write connection, takes every pending append, stores
//! them in one transaction (one fsync for the batch) and then answers each sender.
//!
//! Per message, inside the transaction: look up `(user, client_id)` (a resend returns the
//! stored message), else `UPDATE rooms … last_seq + 1 RETURNING` and `INSERT`. A failed
//! batch rolls back whole, so `seq` never gets a gap and nothing unacked is half-written.

use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};
use sqlx::{Connection, Row};
use tokio::sync::{mpsc, oneshot};

use super::{from_sqlx, message_from_row, now_ms, time_from_ms, MESSAGE_COLUMNS};
use crate::domain::NewMessage;
use crate::ports::{Appended, StoreError};

/// Most messages committed in one transaction.
const MAX_BATCH: usize = 256;

pub(super) struct AppendJob {
    pub message: NewMessage,
    pub reply: oneshot::Sender<Result<Appended, StoreError>>,
}

pub(super) async fn spawn(
    options: SqliteConnectOptions,
) -> Result<mpsc::Sender<AppendJob>, StoreError> {
    let connection = SqliteConnection::connect_with(&options)
        .await
        .map_err(from_sqlx)?;
    let (sender, receiver) = mpsc::channel(4 * MAX_BATCH);
    tokio::spawn(run(connection, receiver));
    Ok(sender)
}

async fn run(mut connection: SqliteConnection, mut jobs: mpsc::Receiver<AppendJob>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while jobs.recv_many(&mut batch, MAX_BATCH).await > 0 {
        match commit(&mut connection, &batch).await {
            Ok(results) => {
                for (job, result) in batch.drain(..).zip(results) {
                    let _ = job.reply.send(Ok(result));
                }
            }
            Err(e) => {
                tracing::error!(error = %e, size = batch.len(), "message batch not stored");
                let _ = sqlx::query("ROLLBACK").execute(&mut connection).await;
                let message = e.to_string();
                for job in batch.drain(..) {
                    let _ = job
                        .reply
                        .send(Err(StoreError::Unavailable(message.clone().into())));
                }
            }
        }
    }
    let _ = connection.close().await;
}

async fn commit(
    connection: &mut SqliteConnection,
    batch: &[AppendJob],
) -> Result<Vec<Appended>, sqlx::Error> {
    // IMMEDIATE takes the write lock up front, so the batch cannot fail half-way on a busy upgrade.
    sqlx::query("BEGIN IMMEDIATE")
        .execute(&mut *connection)
        .await?;
    let mut results = Vec::with_capacity(batch.len());
    for job in batch {
        results.push(append_one(connection, &job.message).await?);
    }
    sqlx::query("COMMIT").execute(&mut *connection).await?;
    Ok(results)
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
    let seq: i64 = sqlx::query("UPDATE rooms SET last_seq = last_seq + 1, last_message_at = ? WHERE id = ? RETURNING last_seq")
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
