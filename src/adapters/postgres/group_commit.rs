//! Group commit across rooms.
//!
//! Every commit waits for a WAL flush (an fsync). One transaction per message, or even
//! one per room, made each process pay one flush per room with traffic: with hundreds of
//! busy rooms the flushes queued and acks took seconds. Here a process has at most one
//! append transaction in flight; the messages that arrive meanwhile, in any room, wait and
//! go together in the next one: one statement, one flush, for the whole batch.
//!
//! The transaction first locks the batch's rooms in id order, so two processes whose
//! batches share rooms wait for each other instead of deadlocking; the row locks also keep
//! each room's `seq` and `rev` gapless and ordered across processes.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use tokio::sync::oneshot;

use crate::domain::{NewMessage, Rev, Seq};
use crate::ports::Appended;

/// Most messages in one statement.
const BATCH_MAX: usize = 512;

struct Job {
    message: NewMessage,
    reply: oneshot::Sender<Result<Appended, sqlx::Error>>,
}

#[derive(Default)]
struct Queue {
    in_flight: bool,
    waiting: Vec<Job>,
}

#[derive(Clone, Default)]
pub(super) struct GroupCommit {
    queue: Arc<Mutex<Queue>>,
}

impl GroupCommit {
    /// Appends `message`, together with whatever else is waiting.
    pub(super) async fn append(
        &self,
        pool: &PgPool,
        message: NewMessage,
    ) -> Result<Appended, sqlx::Error> {
        let (reply, answer) = oneshot::channel();
        let lead = {
            let mut queue = self.queue.lock().unwrap_or_else(|e| e.into_inner());
            queue.waiting.push(Job { message, reply });
            !std::mem::replace(&mut queue.in_flight, true)
        };
        if lead {
            // Its own task: the batch must finish even if this caller stops waiting.
            tokio::spawn(self.clone().drain(pool.clone()));
        }
        answer.await.map_err(|_| sqlx::Error::PoolClosed)?
    }

    async fn drain(self, pool: PgPool) {
        loop {
            let jobs = {
                let mut queue = self.queue.lock().unwrap_or_else(|e| e.into_inner());
                if queue.waiting.is_empty() {
                    queue.in_flight = false;
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
            let sent_at = super::to_ms(Utc::now());
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
        }
    }
}

/// Stores `jobs` (any rooms) in one transaction: each room gets one `seq` range and one
/// `rev` range, in the jobs' order.
async fn append_batch(
    pool: &PgPool,
    jobs: &[Job],
    sent_at: DateTime<Utc>,
) -> Result<Vec<Appended>, sqlx::Error> {
    let rooms: Vec<i64> = jobs.iter().map(|j| j.message.room.id.0).collect();
    let users: Vec<i64> = jobs.iter().map(|j| j.message.user.id.0).collect();
    let bodies: Vec<&str> = jobs.iter().map(|j| j.message.body.as_str()).collect();
    let client_ids: Vec<Option<&str>> = jobs
        .iter()
        .map(|j| j.message.client_id.as_ref().map(|c| c.as_str()))
        .collect();
    let reply_tos: Vec<Option<i64>> = jobs
        .iter()
        .map(|j| j.message.reply_to.as_ref().map(|target| target.id))
        .collect();
    let mut tx = pool.begin().await?;
    sqlx::query("SELECT 1 FROM rooms WHERE id = ANY($1) ORDER BY id FOR UPDATE")
        .bind(&rooms)
        .execute(&mut *tx)
        .await?;
    // A room's k-th message takes its seq base + k and rev base + k.
    let rows: Vec<(i64, i64, Seq, Rev)> = sqlx::query_as(
        "WITH input AS ( \
             SELECT * FROM UNNEST($2::bigint[], $3::bigint[], $4::text[], $5::text[], $6::bigint[]) \
                 WITH ORDINALITY AS t(room_id, user_id, body, client_id, reply_to, ord)), \
         counts AS (SELECT room_id, count(*) AS n FROM input GROUP BY room_id), \
         bumped AS ( \
             UPDATE rooms r SET last_seq = r.last_seq + c.n, last_rev = r.last_rev + c.n, \
                 last_message_at = $1 \
             FROM counts c WHERE r.id = c.room_id \
             RETURNING r.id, r.last_seq - c.n AS seq_base, r.last_rev - c.n AS rev_base), \
         numbered AS ( \
             SELECT i.*, row_number() OVER (PARTITION BY i.room_id ORDER BY i.ord) AS k \
             FROM input i) \
         INSERT INTO messages (room_id, seq, rev, user_id, body, client_id, sent_at, reply_to) \
         SELECT i.room_id, b.seq_base + i.k, b.rev_base + i.k, \
                i.user_id, i.body, i.client_id, $1, i.reply_to \
         FROM numbered i JOIN bumped b ON b.id = i.room_id \
         RETURNING id, room_id, seq, rev",
    )
    .bind(sent_at)
    .bind(&rooms)
    .bind(&users)
    .bind(&bodies)
    .bind(&client_ids)
    .bind(&reply_tos)
    .fetch_all(&mut *tx)
    .await?;
    if rows.len() != jobs.len() {
        return Err(sqlx::Error::RowNotFound);
    }
    let mut appended = match_rows(jobs, rows, sent_at)?;
    for (job, appended) in jobs.iter().zip(&mut appended) {
        super::record_mentions(
            &mut tx,
            &mut appended.message,
            &job.message.mentioned_keys(),
        )
        .await?;
    }
    tx.commit().await?;
    Ok(appended)
}

/// Pairs the inserted `(id, room, seq, rev)` rows with their jobs: within a room, seqs were
/// given in the jobs' order, so the room's k-th job has the room's k-th smallest seq.
fn match_rows(
    jobs: &[Job],
    mut rows: Vec<(i64, i64, Seq, Rev)>,
    sent_at: DateTime<Utc>,
) -> Result<Vec<Appended>, sqlx::Error> {
    rows.sort_unstable_by_key(|&(_, room, seq, _)| (room, seq));
    let mut by_room: HashMap<i64, VecDeque<(i64, Seq, Rev)>> = HashMap::new();
    for (id, room, seq, rev) in rows {
        by_room.entry(room).or_default().push_back((id, seq, rev));
    }
    jobs.iter()
        .map(|job| {
            let (id, seq, rev) = by_room
                .get_mut(&job.message.room.id.0)
                .and_then(VecDeque::pop_front)
                .ok_or(sqlx::Error::RowNotFound)?;
            Ok(fresh(&job.message, id, seq, rev, sent_at))
        })
        .collect()
}

/// Stores one message; a client_id stored before answers with the stored message.
async fn append_one(
    pool: &PgPool,
    new: &NewMessage,
    sent_at: DateTime<Utc>,
) -> Result<Appended, sqlx::Error> {
    let client_id = new.client_id.as_ref().map(|c| c.as_str());
    let mut tx = pool.begin().await?;
    let inserted: Result<Option<(i64, Seq, Rev)>, sqlx::Error> = sqlx::query_as(
        "WITH bumped AS (UPDATE rooms SET last_seq = last_seq + 1, last_rev = last_rev + 1, \
             last_message_at = $1 WHERE id = $2 RETURNING last_seq, last_rev) \
         INSERT INTO messages (room_id, seq, rev, user_id, body, client_id, sent_at, reply_to) \
         SELECT $2, last_seq, last_rev, $3, $4, $5, $1, $6 FROM bumped RETURNING id, seq, rev",
    )
    .bind(sent_at)
    .bind(new.room.id.0)
    .bind(new.user.id.0)
    .bind(new.body.as_str())
    .bind(client_id)
    .bind(new.reply_to.as_ref().map(|target| target.id))
    .fetch_optional(&mut *tx)
    .await;
    match (inserted, client_id) {
        (Ok(Some((id, seq, rev))), _) => {
            let mut appended = fresh(new, id, seq, rev, sent_at);
            super::record_mentions(&mut tx, &mut appended.message, &new.mentioned_keys()).await?;
            tx.commit().await?;
            Ok(appended)
        }
        (Ok(None), _) => Err(sqlx::Error::RowNotFound),
        // The same client_id was stored first (a resend racing its original): the whole
        // transaction rolls back (dropped), the seq bump with it; answer with the stored
        // message.
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

fn fresh(new: &NewMessage, id: i64, seq: Seq, rev: Rev, sent_at: DateTime<Utc>) -> Appended {
    Appended {
        message: new.stored(id, seq, rev, sent_at, Vec::new()),
        fresh: true,
    }
}
