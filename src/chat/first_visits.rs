//! First visits' memberships, written behind the socket (CONTRACT §9: opening a public
//! room's socket makes the user a member).
//!
//! A crowd opening a room for the first time must cost no more than before membership
//! existed (issue 14), so a first visit does not wait for its membership write: the
//! write runs beside the join. What could then read the store too early on this process
//! waits for the writes it would miss: the user's access to that room (their next socket
//! finds them a member and writes nothing), their room list, and the room's members
//! list. Another process may see the membership a few milliseconds late.
//!
//! A ban racing a first visit needs nothing here: the write finds the ban and adds no
//! one, and the ban's `MemberRemoved` closes the socket (the hub remembers removals for
//! the sockets that attach after them). A write that fails is logged, and the next visit
//! writes it again (the user is then still not a member).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::watch;

use super::crowd::Crowd;
use super::store_call;
use crate::domain::{Role, RoomId, UserId};
use crate::ports::{Added, Store};

/// The longest a read waits for the writes in flight before answering without them.
const SETTLE_MAX: Duration = Duration::from_secs(5);

/// This process's first-visit membership writes still in flight.
pub(super) struct FirstVisits {
    store: Arc<dyn Store>,
    /// A crowd's writes go together ([`Crowd`]).
    writes: Arc<Crowd<UserId, Added>>,
    /// Each write's receiver: its sender is dropped when the write has ended.
    in_flight: Mutex<HashMap<(RoomId, UserId), watch::Receiver<()>>>,
}

impl FirstVisits {
    pub fn new(store: Arc<dyn Store>) -> Arc<FirstVisits> {
        Arc::new(FirstVisits {
            store,
            writes: Crowd::new(),
            in_flight: Mutex::default(),
        })
    }

    /// Starts writing `user`'s membership of the public `room`, unless it is being
    /// written already (two sockets opened at once).
    pub fn record(self: &Arc<Self>, room: RoomId, user: UserId) {
        let (ended, receiver) = watch::channel(());
        {
            let mut in_flight = self.lock();
            if in_flight.contains_key(&(room, user)) {
                return;
            }
            in_flight.insert((room, user), receiver);
        }
        let this = self.clone();
        tokio::spawn(async move {
            let store = this.store.clone();
            let written = this.writes.ask(room, user, move |room, users| {
                let store = store.clone();
                async move { store_call(store.add_members(room, &users, Role::Member)).await }
            });
            match written.await {
                Ok(Added::Added | Added::AlreadyMember) => {}
                Ok(Added::Banned) => {
                    tracing::debug!("a ban came before a first visit's membership");
                }
                Err(e) => {
                    tracing::warn!(error = %e, "a first visit's membership was not written; the next visit writes it");
                }
            }
            this.lock().remove(&(room, user));
            drop(ended);
        });
    }

    /// Waits for the writes of `user`'s membership of `room`.
    pub async fn settled(&self, room: RoomId, user: UserId) {
        self.wait(|key| key == (room, user)).await;
    }

    /// Waits for the writes of `user`'s memberships.
    pub async fn settled_for_user(&self, user: UserId) {
        self.wait(|(_, writing)| writing == user).await;
    }

    /// Waits for the writes of memberships of `room`.
    pub async fn settled_for_room(&self, room: RoomId) {
        self.wait(|(writing, _)| writing == room).await;
    }

    async fn wait(&self, wanted: impl Fn((RoomId, UserId)) -> bool) {
        let writes: Vec<_> = self
            .lock()
            .iter()
            .filter(|(key, _)| wanted(**key))
            .map(|(_, ended)| ended.clone())
            .collect();
        if writes.is_empty() {
            return;
        }
        let all_ended = async {
            for mut ended in writes {
                // `Err` once the sender is dropped: the write has ended.
                while ended.changed().await.is_ok() {}
            }
        };
        if tokio::time::timeout(SETTLE_MAX, all_ended).await.is_err() {
            tracing::warn!("answering without a first visit's membership still being written");
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<(RoomId, UserId), watch::Receiver<()>>> {
        self.in_flight.lock().unwrap_or_else(|e| e.into_inner())
    }
}
