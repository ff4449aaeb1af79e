//! What one client may do (CONTRACT §5, §7a): the rules' [`Limits`] and the edge's
//! bounds on sockets, requests and connections. Each variable's default is the contract's.

use std::time::Duration;

use super::{error, parse_number, ConfigError};
use crate::chat::Limits;
use crate::ports::Rule;

/// The per-client limits of CONTRACT §5 and §7a; unset variables keep the contract's
/// defaults ([`Limits::default`]).
pub(super) fn parse_limits(get: &impl Fn(&str) -> Option<String>) -> Result<Limits, ConfigError> {
    let default = Limits::default();
    let number = |variable, default| parse_number(get, variable, default, 1, 1_000_000);
    Ok(Limits {
        sends: parse_send_rule(get, default.sends)?,
        login_failures_per_username: number(
            "LOGIN_FAILURES_PER_USERNAME",
            default.login_failures_per_username,
        )?,
        login_failures_per_device: number(
            "LOGIN_FAILURES_PER_DEVICE",
            default.login_failures_per_device,
        )?,
        failures_per_address: number("LOGIN_FAILURES_PER_ADDRESS", default.failures_per_address)?,
        login_failure_window: Duration::from_secs(parse_number(
            get,
            "LOGIN_FAILURE_WINDOW",
            default.login_failure_window.as_secs() as usize,
            1,
            7 * 24 * 3600,
        )? as u64),
        registrations_per_address_per_hour: number(
            "REGISTRATIONS_PER_ADDRESS_PER_HOUR",
            default.registrations_per_address_per_hour,
        )?,
        room_creates: Rule {
            // Each user's creations in the hour are kept by the limiter: the bound keeps
            // that small.
            per_window: parse_number(
                get,
                "ROOM_CREATE_LIMIT",
                default.room_creates.per_window,
                1,
                10_000,
            )?,
            ..default.room_creates
        },
        changes: Rule {
            per_window: parse_number(
                get,
                "CHANGES_PER_MINUTE",
                default.changes.per_window,
                1,
                10_000,
            )?,
            ..default.changes
        },
        edit_window: Duration::from_secs(parse_number(
            get,
            "EDIT_WINDOW_SECONDS",
            default.edit_window.as_secs() as usize,
            0,
            10 * 365 * 24 * 3600,
        )? as u64),
        typing_expiry: Duration::from_millis(parse_number(
            get,
            "TYPING_TIMEOUT_MS",
            default.typing_expiry.as_millis() as usize,
            50,
            60_000,
        )? as u64),
        room_list_max: number("ROOM_LIST_MAX", default.room_list_max)?,
        history_reads_per_second: number(
            "HISTORY_READS_PER_SECOND",
            default.history_reads_per_second,
        )?,
    })
}

/// CONTRACT §5's send rule: a gap between one user's sends, and at most so many in any
/// trailing window.
fn parse_send_rule(
    get: &impl Fn(&str) -> Option<String>,
    default: Rule,
) -> Result<Rule, ConfigError> {
    let rule = Rule {
        name: default.name,
        min_gap: Duration::from_millis(parse_number(
            get,
            "SEND_MIN_INTERVAL_MS",
            default.min_gap.as_millis() as usize,
            1,
            3_600_000,
        )? as u64),
        // Each user's accepted sends in the window are kept, by the limiter in memory or in
        // Redis: the bound keeps that small.
        per_window: parse_number(get, "SENDS_PER_WINDOW", default.per_window, 1, 10_000)?,
        window: Duration::from_secs(parse_number(
            get,
            "SEND_WINDOW",
            default.window.as_secs() as usize,
            1,
            24 * 3600,
        )? as u64),
    };
    // The limiters forget a user's sends once they leave the window, the last one too: a
    // gap longer than the window would not be enforced after the window.
    if rule.min_gap > rule.window {
        return Err(error(
            "SEND_MIN_INTERVAL_MS",
            format!(
                "{} ms is longer than SEND_WINDOW ({} s)",
                rule.min_gap.as_millis(),
                rule.window.as_secs()
            ),
        ));
    }
    Ok(rule)
}

/// The HTTP and WebSocket edge's bounds.
pub(super) struct EdgeLimits {
    pub ws_max_unsent_bytes: usize,
    pub ws_write_timeout: Duration,
    pub max_sockets_per_user: usize,
    pub max_upgrades_per_user: usize,
    pub ws_frames_per_second: usize,
    pub ws_max_history_bytes: usize,
    pub request_head_timeout: Duration,
    pub request_body_timeout: Duration,
    pub max_connections_per_address: usize,
}

pub(super) fn parse_edge(get: &impl Fn(&str) -> Option<String>) -> Result<EdgeLimits, ConfigError> {
    let seconds = |variable, default, max| -> Result<Duration, ConfigError> {
        Ok(Duration::from_secs(
            parse_number(get, variable, default, 1, max)? as u64,
        ))
    };
    Ok(EdgeLimits {
        ws_max_unsent_bytes: parse_number(
            get,
            "WS_MAX_UNSENT_BYTES",
            1024 * 1024,
            64 * 1024,
            64 * 1024 * 1024,
        )?,
        ws_write_timeout: seconds("WS_WRITE_TIMEOUT", 30, 600)?,
        max_sockets_per_user: parse_number(get, "MAX_SOCKETS_PER_USER", 20, 1, 10_000)?,
        max_upgrades_per_user: parse_number(get, "MAX_UPGRADES_PER_USER", 10, 1, 10_000)?,
        ws_frames_per_second: parse_number(get, "WS_FRAMES_PER_SECOND", 20, 1, 10_000)?,
        // A history frame must hold at least one message of 4,000 characters of 4 bytes.
        ws_max_history_bytes: parse_number(
            get,
            "WS_MAX_HISTORY_BYTES",
            512 * 1024,
            64 * 1024,
            64 * 1024 * 1024,
        )?,
        request_head_timeout: seconds("REQUEST_HEAD_TIMEOUT", 10, 3600)?,
        request_body_timeout: seconds("REQUEST_BODY_TIMEOUT", 10, 3600)?,
        max_connections_per_address: parse_number(
            get,
            "MAX_CONNECTIONS_PER_ADDRESS",
            1000,
            1,
            10_000_000,
        )?,
    })
}
