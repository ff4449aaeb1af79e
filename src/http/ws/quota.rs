//! How many WebSockets one user may hold, and open, on this process (CONTRACT §7a
//! "Connections"): one account must not be able to take every descriptor, nor flood a
//! room with `member_joined`/`member_left` by reconnecting in a loop.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::domain::UserId;

/// The window [`SocketQuota`] counts upgrades in.
pub const UPGRADE_WINDOW: Duration = Duration::from_secs(10);

/// Users below this many entries are never swept (the sweep is amortised over admissions).
const SWEEP_FLOOR: usize = 1024;

/// Why an upgrade is refused.
#[derive(Debug, PartialEq, Eq)]
pub enum Refused {
    /// The user holds the most sockets allowed at once.
    TooManyOpen,
    /// The user opened the most sockets allowed in [`UPGRADE_WINDOW`]; one more fits after this.
    TooManyUpgrades { retry_after: Duration },
}

pub struct SocketQuota {
    max_open: usize,
    max_upgrades: usize,
    users: Mutex<Users>,
}

struct Users {
    by_id: HashMap<UserId, UserSockets>,
    sweep_at: usize,
}

#[derive(Default)]
struct UserSockets {
    open: usize,
    /// When the upgrades of the last [`UPGRADE_WINDOW`] were accepted, oldest first.
    upgrades: VecDeque<Instant>,
}

/// One open socket's place in its user's quota, given back when it is dropped.
pub struct SocketPlace {
    quota: Arc<SocketQuota>,
    user: UserId,
}

impl SocketQuota {
    pub fn new(max_open: usize, max_upgrades: usize) -> SocketQuota {
        SocketQuota {
            max_open,
            max_upgrades,
            users: Mutex::new(Users {
                by_id: HashMap::new(),
                sweep_at: SWEEP_FLOOR,
            }),
        }
    }

    /// Takes a place for a new socket of `user`, or says why there is none.
    pub fn admit(self: &Arc<Self>, user: UserId) -> Result<SocketPlace, Refused> {
        self.admit_at(user, Instant::now())
    }

    fn admit_at(self: &Arc<Self>, user: UserId, now: Instant) -> Result<SocketPlace, Refused> {
        let mut users = self.users.lock().expect("socket quota lock");
        if users.by_id.len() >= users.sweep_at {
            // Users who hold no socket and made no recent upgrade need no entry.
            users.by_id.retain(|_, sockets| {
                sockets.forget_before(now);
                sockets.open > 0 || !sockets.upgrades.is_empty()
            });
            users.sweep_at = (users.by_id.len() * 2).max(SWEEP_FLOOR);
        }
        let sockets = users.by_id.entry(user).or_default();
        sockets.forget_before(now);
        if sockets.open >= self.max_open {
            return Err(Refused::TooManyOpen);
        }
        if sockets.upgrades.len() >= self.max_upgrades {
            let oldest = sockets.upgrades[0];
            return Err(Refused::TooManyUpgrades {
                retry_after: UPGRADE_WINDOW.saturating_sub(now.duration_since(oldest)),
            });
        }
        sockets.open += 1;
        sockets.upgrades.push_back(now);
        Ok(SocketPlace {
            quota: self.clone(),
            user,
        })
    }
}

impl UserSockets {
    fn forget_before(&mut self, now: Instant) {
        while self
            .upgrades
            .front()
            .is_some_and(|t| now.duration_since(*t) >= UPGRADE_WINDOW)
        {
            self.upgrades.pop_front();
        }
    }
}

impl Drop for SocketPlace {
    fn drop(&mut self) {
        let mut users = self.quota.users.lock().expect("socket quota lock");
        if let Some(sockets) = users.by_id.get_mut(&self.user) {
            sockets.open = sockets.open.saturating_sub(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_sockets_are_capped_and_a_closed_one_frees_its_place() {
        let quota = Arc::new(SocketQuota::new(2, 100));
        let alice = UserId(1);
        let first = quota.admit(alice).unwrap();
        let _second = quota.admit(alice).unwrap();
        assert_eq!(quota.admit(alice).err(), Some(Refused::TooManyOpen));
        // Another user is not affected.
        assert!(quota.admit(UserId(2)).is_ok());
        drop(first);
        assert!(quota.admit(alice).is_ok());
    }

    #[test]
    fn upgrades_are_capped_per_window_even_when_each_socket_closes() {
        let quota = Arc::new(SocketQuota::new(100, 3));
        let alice = UserId(1);
        let start = Instant::now();
        for n in 0..3 {
            drop(
                quota
                    .admit_at(alice, start + Duration::from_secs(n))
                    .unwrap(),
            );
        }
        let refused = quota.admit_at(alice, start + Duration::from_secs(4));
        assert_eq!(
            refused.err(),
            Some(Refused::TooManyUpgrades {
                retry_after: Duration::from_secs(6)
            })
        );
        // Ten seconds after the first upgrade, one more fits.
        assert!(quota.admit_at(alice, start + UPGRADE_WINDOW).is_ok());
    }

    #[test]
    fn idle_users_are_swept_once_there_are_many() {
        let quota = Arc::new(SocketQuota::new(10, 10));
        let start = Instant::now();
        let held = quota.admit_at(UserId(-1), start).unwrap();
        for id in 1..SWEEP_FLOOR as i64 {
            drop(quota.admit_at(UserId(id), start).unwrap());
        }
        let later = start + UPGRADE_WINDOW;
        drop(quota.admit_at(UserId(-2), later).unwrap());
        let users = quota.users.lock().unwrap();
        // Only the user holding a socket and the one who just upgraded remain.
        assert_eq!(users.by_id.len(), 2);
        drop(users);
        drop(held);
    }
}
