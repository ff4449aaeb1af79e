//! The numbers that bound what one client may do (CONTRACT §5, §7a). Each is a default
//! that configuration may change (`config/limits.rs` names the variables); the rules read them
//! from here, never from a literal of their own.

use std::time::Duration;

use crate::ports::Rule;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Sends per user (CONTRACT §5), across rooms, connections and processes.
    pub sends: Rule,
    /// Failed logins per username in [`Limits::login_failure_window`], from browsers that
    /// do not present that user's device cookie.
    pub login_failures_per_username: usize,
    /// Failed logins per device cookie in the window: the owner's own browser is throttled
    /// only by its own failures.
    pub login_failures_per_device: usize,
    /// Failed logins, and failed registrations, per client address in the window.
    pub failures_per_address: usize,
    pub login_failure_window: Duration,
    /// Accounts one client address may create per hour.
    pub registrations_per_address_per_hour: usize,
    /// New rooms per user (CONTRACT §9): public rooms with a new slug, private rooms and
    /// new DMs together, in any trailing hour, across processes.
    pub room_creates: Rule,
    /// Edits, deletes and reactions per user (CONTRACT §10).
    pub changes: Rule,
    /// How long after sending a message its author may edit it; zero: always.
    pub edit_window: Duration,
    /// How long a user stays on a room's typing list after their last `typing` (CONTRACT
    /// §11: 6 seconds).
    pub typing_expiry: Duration,
    /// Most rooms one listing returns; more say `truncated`.
    pub room_list_max: usize,
    /// History pages one user may read over HTTP per second (a WebSocket's `history`
    /// frames count against its own per-connection budget instead).
    pub history_reads_per_second: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            sends: Rule::SENDS,
            login_failures_per_username: 5,
            login_failures_per_device: 5,
            failures_per_address: 20,
            login_failure_window: Duration::from_secs(15 * 60),
            registrations_per_address_per_hour: 20,
            room_creates: Rule::ROOM_CREATES,
            changes: Rule::CHANGES,
            edit_window: Duration::ZERO,
            typing_expiry: Duration::from_secs(6),
            room_list_max: 500,
            history_reads_per_second: 20,
        }
    }
}
