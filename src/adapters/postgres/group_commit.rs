//! Group commit per room.
//!
//! A room's appends are serialized by its row lock, which is held until the commit's WAL
//! flush. One message per transaction therefore caps a room at one message per flush
//! (about 100/s on this box's disk), and a busier room queued for seconds. Here a room has
//! at most one append statement in flight; messages that arrive meanwhile wait and go
//! together in the next statement, sharing one lock acquisition and one flush. Different
//! rooms run in parallel on the pool.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use tokio::sync::oneshot;

use crate::domain::{NewMessage, RoomId, Seq};
use crate::ports::Appended;

/// Most messages in one statement.
const BATCH_MAX: usize = 256;

struct Job {
    message: NewMessage,
    reply: oneshot::Sender<Result<Appended, sqlx::Error>>,
}

#[derive(Default)]
struct RoomQueue {
    in_flight: bool,
    waiting: Vec<Job>,
}

#[derive(Clone, Default)]
pub(super) struct GroupCommit {
    rooms: Arc<Mutex<HashMap<RoomId, RoomQueue>>>,
}

impl GroupCommit {
    /// Appends `message`, together with whatever else its room has waiting.
    pub(super) async fn append(
        &self,
        pool: &PgPool,
        message: NewMessage,
        sent_at: DateTime<Utc>,
    ) -> Result<Appended, sqlx::Error> {
        let room = message.room.id;
        let (reply, answer) = oneshot::channel();
        let lead = {
            let mut rooms = self.rooms.lock().unwrap_or_else(|e| e.into_inner());
            let queue = rooms.entry(room).or_default();
            queue.waiting.push(Job { message, reply });
            !std::mem::replace(&mut queue.in_flight, true)
        };
        if lead {
            // Its own task: the batch must finish even if this caller stops waiting.
            tokio::spawn(self.clone().drain(pool.clone(), room, sent_at));
        }
        answer.await.map_err(|_| sqlx::Error::PoolClosed)?
    }

    async fn drain(self, pool: PgPool, room: RoomId, mut sent_at: DateTime<Utc>) {
        loop {
            let jobs = {
                let mut rooms = self.rooms.lock().unwrap_or_else(|e| e.into_inner());
                let Some(queue) = rooms.get_mut(&room) else {
                    return;
                };
                if queue.waiting.is_empty() {
                    rooms.remove(&room);
                    return;
                }
                let take = queue.waiting.len().min(BATCH_MAX);
                queue.waiting.drain(..take).collect::<Vec<_>>()
            };
            // A sender that stopped waiting (its deadline passed) was told `unavailable`:
            // its message must not be stored after all.
            let jobs: Vec<Job> = jobs.into_iter().filter(|j| !j.reply.is_closed()).collect();
            if jobs.is_empty() {
                continue;
            }
            match append_batch(&pool, &jobs, sent_at).await {
                Ok(appended) => {
                    for (job, appended) in jobs.into_iter().zip(appended) {
                        let _ = job.reply.send(Ok(appended));
                    }
                }
                // One message whose client_id is stored already (a resend racing its
                // original) fails the whole statement, which rolls back: go one by one.
                Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                    for job in jobs {
                        let one = append_one(&pool, &job.message, sent_at).await;
                        let _ = job.reply.send(one);
                    }
                }
                Err(e) => {
                    let reason = e.to_string();
                    for job in jobs {
                        let _ = job
                            .reply
                            .send(Err(sqlx::Error::Io(std::io::Error::other(reason.clone()))));
                    }
                }
            }
            sent_at = super::to_ms(Utc::now());
        }
    }
}

/// Stores `jobs` (all in one room) in one statement: one seq range, one commit.
async fn append_batch(
    pool: &PgPool,
    jobs: &[Job],
    sent_at: DateTime<Utc>,
) -> Result<Vec<Appended>, sqlx::Error> {
    let first = &jobs[0].message;
    let users: Vec<i64> = jobs.iter().map(|j| j.message.user.id.0).collect();
    let bodies: Vec<&str> = jobs.iter().map(|j| j.message.body.as_str()).collect();
    let client_ids: Vec<Option<&str>> = jobs
        .iter()
        .map(|j| j.message.client_id.as_ref().map(|c| c.as_str()))
        .collect();
    let rows: Vec<(i64, Seq)> = sqlx::query_as(
        "WITH bumped AS (UPDATE rooms SET last_seq = last_seq + $3, last_message_at = $1 \
                         WHERE id = $2 RETURNING last_seq) \
         INSERT INTO messages (room_id, seq, user_id, body, client_id, sent_at) \
         SELECT $2, bumped.last_seq - $3 + t.ord, t.user_id, t.body, t.client_id, $1 \
         FROM bumped, UNNEST($4::bigint[], $5::text[], $6::text[]) WITH ORDINALITY AS t(user_id, body, client_id, ord) \
         RETURNING id, seq",
    )
    .bind(sent_at)
    .bind(first.room.id.0)
    .bind(jobs.len() as i64)
    .bind(&users)
    .bind(&bodies)
    .bind(&client_ids)
    .fetch_all(pool)
    .await?;
    if rows.len() != jobs.len() {
        return Err(sqlx::Error::RowNotFound);
    }
    let first_seq = rows.iter().map(|(_, seq)| *seq).min().unwrap_or(0);
    let mut appended: Vec<Option<Appended>> = vec![None; jobs.len()];
    for (id, seq) in rows {
        let index = (seq - first_seq) as usize;
        let job = jobs.get(index).ok_or(sqlx::Error::RowNotFound)?;
        appended[index] = Some(fresh(&job.message, id, seq, sent_at));
    }
    appended
        .into_iter()
        .map(|a| a.ok_or(sqlx::Error::RowNotFound))
        .collect()
}

/// Stores one message; a client_id stored before answers with the stored message.
async fn append_one(
    pool: &PgPool,
    new: &NewMessage,
    sent_at: DateTime<Utc>,
) -> Result<Appended, sqlx::Error> {
    let client_id = new.client_id.as_ref().map(|c| c.as_str());
    let inserted: Result<Option<(i64, Seq)>, sqlx::Error> = sqlx::query_as(
        "WITH bumped AS (UPDATE rooms SET last_seq = last_seq + 1, last_message_at = $1 WHERE id = $2 RETURNING last_seq) \
         INSERT INTO messages (room_id, seq, user_id, body, client_id, sent_at) \
         SELECT $2, last_seq, $3, $4, $5, $1 FROM bumped RETURNING id, seq",
    )
    .bind(sent_at)
    .bind(new.room.id.0)
    .bind(new.user.id.0)
    .bind(new.body.as_str())
    .bind(client_id)
    .fetch_optional(pool)
    .await;
    match (inserted, client_id) {
        (Ok(Some((id, seq))), _) => Ok(fresh(new, id, seq, sent_at)),
        (Ok(None), _) => Err(sqlx::Error::RowNotFound),
        // The same client_id was stored first (a resend racing its original): the whole
        // statement rolled back, the seq bump with it; answer with the stored message.
        (Err(sqlx::Error::Database(e)), Some(client_id)) if e.is_unique_violation() => {
            super::find_by_client_id(pool, new.user.id, client_id)
                .await?
                .map(|message| Appended {
                    message,
                    fresh: false,
                })
                .ok_or(sqlx::Error::RowNotFound)
        }
        (Err(e), _) => Err(e),
    }
}

fn fresh(new: &NewMessage, id: i64, seq: Seq, sent_at: DateTime<Utc>) -> Appended {
    Appended {
        message: new.stored(id, seq, sent_at),
        fresh: true,
    }
}
