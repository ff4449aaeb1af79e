//! One store call for a crowd: requests about one room that arrive while a call for that
//! room is in flight wait and go together in the next call, like the SQLite writer's
//! group commit. A crowd opening a room (issue 14's join storm) then asks the store a
//! few times, not once per person, and a lone request goes at once.
//!
//! Written here rather than taken from a crate: the dataloader crates batch by time
//! window (every request waits for the window) and are built around GraphQL.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::oneshot;

use super::ChatError;
use crate::domain::RoomId;

/// Requests `T` about a room, answered `R` each, in calls of `run(room, requests)` that
/// answer in the requests' order.
pub(super) struct Crowd<T, R> {
    rooms: Mutex<HashMap<RoomId, Waiting<T, R>>>,
}

struct Waiting<T, R> {
    /// A call for the room is in flight (its task takes what waits when it ends).
    calling: bool,
    requests: Vec<(T, oneshot::Sender<Result<R, Failed>>)>,
}

/// Why a crowd's call failed, told to each of its requests.
#[derive(Debug, Clone)]
struct Failed(String);

impl<T, R> Crowd<T, R>
where
    T: Send + 'static,
    R: Send + 'static,
{
    pub fn new() -> Arc<Crowd<T, R>> {
        Arc::new(Crowd {
            rooms: Mutex::default(),
        })
    }

    /// `request`'s answer, from the next call for `room`.
    pub async fn ask<F, Fut>(
        self: &Arc<Self>,
        room: RoomId,
        request: T,
        run: F,
    ) -> Result<R, ChatError>
    where
        F: Fn(RoomId, Vec<T>) -> Fut + Send + 'static,
        Fut: Future<Output = Result<Vec<R>, ChatError>> + Send + 'static,
    {
        let (answer, answered) = oneshot::channel();
        let lead = {
            let mut rooms = self.lock();
            let waiting = rooms.entry(room).or_insert_with(|| Waiting {
                calling: false,
                requests: Vec::new(),
            });
            waiting.requests.push((request, answer));
            !std::mem::replace(&mut waiting.calling, true)
        };
        if lead {
            // A task of its own, so that no requester's answer waits for later calls.
            tokio::spawn(self.clone().call_while_waiting(room, run));
        }
        match answered.await {
            Ok(Ok(answer)) => Ok(answer),
            Ok(Err(Failed(why))) => Err(ChatError::Unavailable(why.into())),
            Err(_) => Err(ChatError::Unavailable("a crowd's store call ended".into())),
        }
    }

    async fn call_while_waiting<F, Fut>(self: Arc<Self>, room: RoomId, run: F)
    where
        F: Fn(RoomId, Vec<T>) -> Fut,
        Fut: Future<Output = Result<Vec<R>, ChatError>>,
    {
        loop {
            let requests = {
                let mut rooms = self.lock();
                let Some(waiting) = rooms.get_mut(&room) else {
                    return;
                };
                if waiting.requests.is_empty() {
                    rooms.remove(&room);
                    return;
                }
                std::mem::take(&mut waiting.requests)
            };
            let (asked, answers): (Vec<T>, Vec<_>) = requests.into_iter().unzip();
            match run(room, asked).await {
                Ok(results) if results.len() == answers.len() => {
                    for (answer, result) in answers.into_iter().zip(results) {
                        let _ = answer.send(Ok(result));
                    }
                }
                Ok(_) => fail(
                    answers,
                    "a store call answered the wrong number of requests",
                ),
                Err(e) => fail(answers, &e.to_string()),
            }
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<RoomId, Waiting<T, R>>> {
        self.rooms.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn fail<R>(answers: Vec<oneshot::Sender<Result<R, Failed>>>, why: &str) {
    for answer in answers {
        let _ = answer.send(Err(Failed(why.to_owned())));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test]
    async fn a_crowd_arriving_during_a_call_goes_in_the_next_one() {
        let crowd: Arc<Crowd<u32, u32>> = Crowd::new();
        let calls = Arc::new(AtomicUsize::new(0));
        let (release, released) = tokio::sync::watch::channel(false);
        let run = {
            let calls = calls.clone();
            move |_room: RoomId, asked: Vec<u32>| {
                let calls = calls.clone();
                let mut released = released.clone();
                async move {
                    calls.fetch_add(1, Ordering::SeqCst);
                    // The first call is held until the crowd has arrived.
                    let _ = released.wait_for(|go| *go).await;
                    Ok(asked.iter().map(|n| n * 10).collect())
                }
            }
        };
        let room = RoomId(1);
        let first = tokio::spawn({
            let (crowd, run) = (crowd.clone(), run.clone());
            async move { crowd.ask(room, 1, run).await.unwrap() }
        });
        tokio::task::yield_now().await;
        let rest: Vec<_> = (2..=50)
            .map(|n| {
                let (crowd, run) = (crowd.clone(), run.clone());
                tokio::spawn(async move { crowd.ask(room, n, run).await.unwrap() })
            })
            .collect();
        tokio::task::yield_now().await;
        release.send(true).unwrap();
        assert_eq!(first.await.unwrap(), 10);
        for (n, answer) in (2..=50).zip(rest) {
            assert_eq!(answer.await.unwrap(), n * 10);
        }
        assert_eq!(
            calls.load(Ordering::SeqCst),
            2,
            "one call, then one for the crowd"
        );
        assert!(crowd.lock().is_empty(), "nothing left waiting");
    }

    #[tokio::test]
    async fn a_failed_call_fails_each_of_its_requests_and_the_next_call_is_fresh() {
        let crowd: Arc<Crowd<u32, u32>> = Crowd::new();
        let failing = |_room: RoomId, _asked: Vec<u32>| async {
            Err::<Vec<u32>, _>(ChatError::Unavailable("down".into()))
        };
        assert!(matches!(
            crowd.ask(RoomId(1), 1, failing).await,
            Err(ChatError::Unavailable(_))
        ));
        let working = |_room: RoomId, asked: Vec<u32>| async move {
            Ok(asked.iter().map(|n| n + 1).collect())
        };
        assert_eq!(crowd.ask(RoomId(1), 1, working).await.unwrap(), 2);
    }
}
