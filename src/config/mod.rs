//! Configuration: the only code that reads the environment.
//!
//! [`Config::from_env`] reads the process environment and, for what it does not set, a
//! `.env` file in the working directory ([`dotenv`]: read here, never into the process
//! environment); tests call [`Config::from_lookup`] with a map. One parser per group of
//! variables: [`storage`], [`web`], [`limits`], and the chat numbers here. Every error
//! names its variable and never echoes a secret. The original Django project's variables
//! (`POSTGRES_DB_*`, `DJANGO_SECRET_KEY`, `DOMAIN`, `HOST`) are understood here and
//! nowhere else.

mod dotenv;
mod limits;
mod storage;
mod web;

use std::net::SocketAddr;
use std::time::Duration;

pub use dotenv::parse_dotenv;
pub use storage::{DatabaseUrl, RedisUrl};
pub use web::{AllowedHosts, SecretKey, TrustedProxies};

use crate::chat::{Admins, Limits};
use crate::domain::Username;

/// Everything natter needs to start, parsed and validated.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where `natter serve` listens (port 0 picks a free port).
    pub bind: SocketAddr,
    pub database: DatabaseUrl,
    /// When set, cache, presence, rate limiter and fan-out live in Redis.
    pub redis_url: Option<RedisUrl>,
    pub redis_key_prefix: String,
    pub secret_key: SecretKey,
    /// Origins allowed to open WebSockets and post forms, besides the request's own host.
    pub allowed_origins: Vec<String>,
    /// Messages sent to a client when it joins a room.
    pub history_on_join: usize,
    /// Most recent messages kept in the cache per active room.
    pub cache_messages: usize,
    pub session_ttl: Duration,
    /// `ADMIN_USERNAMES`: users who act as owner in every public room and in the private
    /// rooms they are a member of (CONTRACT §9).
    pub admin_usernames: Vec<String>,
    /// Data queued for one WebSocket and not yet taken by the OS (CONTRACT §7a).
    pub ws_max_unsent_bytes: usize,
    /// How long one write to a WebSocket may wait before the socket is closed.
    pub ws_write_timeout: Duration,
    /// WebSockets one user may hold open at once.
    pub max_sockets_per_user: usize,
    /// WebSocket upgrades one user may make in any 10 seconds.
    pub max_upgrades_per_user: usize,
    /// Peers whose `X-Forwarded-For` / `X-Forwarded-Proto` are believed (`TRUSTED_PROXIES`).
    pub trusted_proxies: TrustedProxies,
    /// What one client may do: login failures, registrations, the room list, history
    /// reads (CONTRACT §5, §7a).
    pub limits: Limits,
    /// Frames per second per WebSocket that are not accepted `send`s.
    pub ws_frames_per_second: usize,
    /// JSON in one `history` frame; more is cut and says `truncated`.
    pub ws_max_history_bytes: usize,
    /// `Host` names (without port) this server answers to; see [`AllowedHosts`].
    pub allowed_hosts: AllowedHosts,
    /// How long a connection may take to send a request head; it also closes idle
    /// keep-alive connections, so their descriptors come back.
    pub request_head_timeout: Duration,
    /// How long a request body may take to arrive after its head (then `408`).
    pub request_body_timeout: Duration,
    /// Open connections one client address may hold; beyond, new ones are closed at once.
    pub max_connections_per_address: usize,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{variable}: {problem}")]
pub struct ConfigError {
    pub variable: &'static str,
    pub problem: String,
}

fn error(variable: &'static str, problem: impl Into<String>) -> ConfigError {
    ConfigError {
        variable,
        problem: problem.into(),
    }
}

impl Config {
    /// The process environment, falling back to `.env` in the working directory.
    pub fn from_env() -> Result<Config, ConfigError> {
        let file = dotenv::read_working_directory_file()?;
        Config::from_lookup(|name| std::env::var(name).ok().or_else(|| file.get(name).cloned()))
    }

    pub fn admins(&self) -> Admins {
        Admins::new(self.admin_usernames.iter().map(String::as_str))
    }

    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        // An empty variable means "not set", as in most .env tooling.
        let get = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());

        let (database, redis_url, redis_key_prefix) = storage::parse(&get)?;
        let web = web::parse(&get)?;
        let history_on_join = parse_number(&get, "HISTORY_ON_JOIN", 50, 0, 1000)?;
        let cache_messages = parse_number(&get, "CACHE_MESSAGES", 100, 1, 10_000)?;
        if history_on_join > cache_messages {
            return Err(error(
                "HISTORY_ON_JOIN",
                format!("{history_on_join} is more than CACHE_MESSAGES ({cache_messages}); the cache must hold a joiner's history"),
            ));
        }
        let session_ttl = Duration::from_secs(parse_number(
            &get,
            "SESSION_TTL",
            1_209_600,
            1,
            31_536_000,
        )? as u64);

        let edge = limits::parse_edge(&get)?;
        let admin_usernames = parse_admin_usernames(get("ADMIN_USERNAMES").as_deref())?;
        Ok(Config {
            bind: web.bind,
            database,
            redis_url,
            redis_key_prefix,
            secret_key: web.secret_key,
            allowed_origins: web.allowed_origins,
            history_on_join,
            cache_messages,
            session_ttl,
            admin_usernames,
            ws_max_unsent_bytes: edge.ws_max_unsent_bytes,
            ws_write_timeout: edge.ws_write_timeout,
            max_sockets_per_user: edge.max_sockets_per_user,
            max_upgrades_per_user: edge.max_upgrades_per_user,
            trusted_proxies: web.trusted_proxies,
            limits: limits::parse_limits(&get)?,
            ws_frames_per_second: edge.ws_frames_per_second,
            ws_max_history_bytes: edge.ws_max_history_bytes,
            allowed_hosts: web.allowed_hosts,
            request_head_timeout: edge.request_head_timeout,
            request_body_timeout: edge.request_body_timeout,
            max_connections_per_address: edge.max_connections_per_address,
        })
    }
}

fn parse_number(
    get: &impl Fn(&str) -> Option<String>,
    variable: &'static str,
    default: usize,
    min: usize,
    max: usize,
) -> Result<usize, ConfigError> {
    let Some(raw) = get(variable) else {
        return Ok(default);
    };
    let value: usize = raw
        .trim()
        .parse()
        .map_err(|_| error(variable, format!("{raw:?} is not a whole number")))?;
    if !(min..=max).contains(&value) {
        return Err(error(variable, format!("{value} is outside {min}..={max}")));
    }
    Ok(value)
}

/// Comma-separated usernames; a name no account could have is a mistake worth stopping for.
fn parse_admin_usernames(raw: Option<&str>) -> Result<Vec<String>, ConfigError> {
    let names = raw.unwrap_or("").split(',').map(str::trim);
    names
        .filter(|name| !name.is_empty())
        .map(|name| match Username::parse(name) {
            Ok(_) => Ok(name.to_owned()),
            Err(e) => Err(error("ADMIN_USERNAMES", format!("{name:?}: {e}"))),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(|name| map.get(name).cloned())
    }

    #[test]
    fn defaults_are_the_embedded_setup_on_port_8000() {
        let c = config(&[]).unwrap();
        assert_eq!(c.bind, "127.0.0.1:8000".parse().unwrap());
        assert_eq!(c.database, DatabaseUrl::Sqlite("sqlite://natter.db".into()));
        assert!(c.redis_url.is_none());
        assert!(c.secret_key.generated);
        assert_eq!((c.history_on_join, c.cache_messages), (50, 100));
        assert_eq!(c.session_ttl, Duration::from_secs(1_209_600));
        assert_eq!(c.redis_key_prefix, "natter:");
    }

    #[test]
    fn every_per_client_limit_has_the_contracts_default_and_a_variable() {
        let c = config(&[]).unwrap();
        // The contract's numbers (§5, §7a), written out: a changed default must fail here.
        assert_eq!(
            c.limits,
            Limits {
                sends: crate::ports::Rule {
                    name: "send",
                    min_gap: Duration::from_secs(1),
                    per_window: 10,
                    window: Duration::from_secs(60),
                },
                login_failures_per_username: 5,
                login_failures_per_device: 5,
                failures_per_address: 20,
                login_failure_window: Duration::from_secs(15 * 60),
                registrations_per_address_per_hour: 20,
                room_creates: crate::ports::Rule {
                    name: "room_create",
                    min_gap: Duration::from_millis(1),
                    per_window: 10,
                    window: Duration::from_secs(3600),
                },
                changes: crate::ports::Rule {
                    name: "change",
                    min_gap: Duration::from_millis(1),
                    per_window: 60,
                    window: Duration::from_secs(60),
                },
                edit_window: Duration::ZERO,
                typing_expiry: Duration::from_secs(6),
                room_list_max: 500,
                history_reads_per_second: 20,
            }
        );
        assert_eq!(
            (c.ws_frames_per_second, c.ws_max_history_bytes),
            (20, 512 * 1024)
        );
        let c = config(&[
            ("LOGIN_FAILURES_PER_USERNAME", "3"),
            ("LOGIN_FAILURES_PER_DEVICE", "4"),
            ("LOGIN_FAILURES_PER_ADDRESS", "50"),
            ("LOGIN_FAILURE_WINDOW", "60"),
            ("REGISTRATIONS_PER_ADDRESS_PER_HOUR", "7"),
            ("ROOM_LIST_MAX", "2"),
            ("ROOM_CREATE_LIMIT", "4"),
            ("HISTORY_READS_PER_SECOND", "9"),
            ("CHANGES_PER_MINUTE", "30"),
            ("EDIT_WINDOW_SECONDS", "900"),
            ("TYPING_TIMEOUT_MS", "500"),
            ("WS_FRAMES_PER_SECOND", "11"),
            ("WS_MAX_HISTORY_BYTES", "65536"),
        ])
        .unwrap();
        assert_eq!(
            c.limits,
            Limits {
                sends: crate::ports::Rule::SENDS,
                login_failures_per_username: 3,
                login_failures_per_device: 4,
                failures_per_address: 50,
                login_failure_window: Duration::from_secs(60),
                registrations_per_address_per_hour: 7,
                room_creates: crate::ports::Rule {
                    per_window: 4,
                    ..crate::ports::Rule::ROOM_CREATES
                },
                changes: crate::ports::Rule {
                    per_window: 30,
                    ..crate::ports::Rule::CHANGES
                },
                edit_window: Duration::from_secs(900),
                typing_expiry: Duration::from_millis(500),
                room_list_max: 2,
                history_reads_per_second: 9,
            }
        );
        assert_eq!(
            (c.ws_frames_per_second, c.ws_max_history_bytes),
            (11, 65536)
        );
        for (variable, bad) in [
            ("ROOM_LIST_MAX", "0"),
            ("LOGIN_FAILURE_WINDOW", "x"),
            ("WS_MAX_HISTORY_BYTES", "1024"),
            ("WS_FRAMES_PER_SECOND", "-1"),
            ("CHANGES_PER_MINUTE", "0"),
            ("EDIT_WINDOW_SECONDS", "soon"),
            ("TYPING_TIMEOUT_MS", "10"),
        ] {
            let e = config(&[(variable, bad)]).unwrap_err();
            assert_eq!(e.variable, variable);
        }
    }

    #[test]
    fn the_send_rule_is_set_by_its_three_variables_within_its_window() {
        let c = config(&[
            ("SEND_MIN_INTERVAL_MS", "150"),
            ("SENDS_PER_WINDOW", "3"),
            ("SEND_WINDOW", "2"),
        ])
        .unwrap();
        assert_eq!(
            c.limits.sends,
            crate::ports::Rule {
                name: "send",
                min_gap: Duration::from_millis(150),
                per_window: 3,
                window: Duration::from_secs(2),
            }
        );
        for (variable, bad) in [
            ("SEND_MIN_INTERVAL_MS", "0"),
            ("SEND_MIN_INTERVAL_MS", "1s"),
            ("SENDS_PER_WINDOW", "0"),
            ("SENDS_PER_WINDOW", "10001"),
            ("SEND_WINDOW", "0"),
            ("SEND_WINDOW", "86401"),
        ] {
            let e = config(&[(variable, bad)]).unwrap_err();
            assert_eq!(e.variable, variable, "{bad}");
        }
        // The limiters forget sends that left the window: a longer gap could not hold.
        let longer = config(&[("SEND_MIN_INTERVAL_MS", "2001"), ("SEND_WINDOW", "2")]);
        assert_eq!(longer.unwrap_err().variable, "SEND_MIN_INTERVAL_MS");
        let equal = config(&[("SEND_MIN_INTERVAL_MS", "2000"), ("SEND_WINDOW", "2")]);
        assert_eq!(equal.unwrap().limits.sends.min_gap, Duration::from_secs(2));
    }

    #[test]
    fn the_original_django_env_is_accepted_unchanged() {
        let map = parse_dotenv(include_str!("../../tests/fixtures/original.env")).unwrap();
        let c = Config::from_lookup(|name| map.get(name).cloned()).unwrap();
        let DatabaseUrl::Postgres(url) = &c.database else {
            panic!("POSTGRES_DB_* must select PostgreSQL");
        };
        assert_eq!(url, "postgres://postgres:postgres@postgres:5432/postgres");
        assert_eq!(c.redis_url, Some(RedisUrl("redis://redis:6379".to_owned())));
        assert!(
            !format!("{c:?}").contains("redis://"),
            "the URL may hold a password"
        );
        assert!(!c.secret_key.generated);
        assert_eq!(
            c.secret_key.expose(),
            b"django-insecure-1!p(mrem9s2(bi9vu%24g+mr1!o7$v6*0^6l^421)0-6)&74r="
        );
        assert!(c
            .allowed_origins
            .contains(&"http://127.0.0.1:8000".to_string()));
        assert!(c.allowed_hosts.allows("127.0.0.1:8000"));
    }

    #[test]
    fn a_postgres_password_is_percent_encoded() {
        let c = config(&[
            ("POSTGRES_DB_HOST", "db"),
            ("POSTGRES_DB_PASSWORD", "p@ss:w/rd%$("),
        ])
        .unwrap();
        assert_eq!(
            c.database,
            DatabaseUrl::Postgres(
                "postgres://postgres:p%40ss%3Aw%2Frd%25%24%28@db:5432/postgres".into()
            )
        );
    }

    #[test]
    fn database_url_wins_over_postgres_parts() {
        let c = config(&[
            ("DATABASE_URL", "sqlite://x.db"),
            ("POSTGRES_DB_HOST", "db"),
        ])
        .unwrap();
        assert_eq!(c.database, DatabaseUrl::Sqlite("sqlite://x.db".into()));
    }

    #[test]
    fn bad_values_name_their_variable() {
        for (pairs, variable) in [
            (vec![("BIND", "abc")], "BIND"),
            (
                vec![("DATABASE_URL", "mysql://u:secret@h/db")],
                "DATABASE_URL",
            ),
            (vec![("REDIS_URL", "http://x")], "REDIS_URL"),
            (vec![("HISTORY_ON_JOIN", "lots")], "HISTORY_ON_JOIN"),
            (vec![("CACHE_MESSAGES", "0")], "CACHE_MESSAGES"),
            (vec![("HISTORY_ON_JOIN", "200")], "HISTORY_ON_JOIN"),
            (vec![("SESSION_TTL", "-5")], "SESSION_TTL"),
            (
                vec![("POSTGRES_DB_HOST", "db"), ("POSTGRES_DB_PORT", "x")],
                "POSTGRES_DB_PORT",
            ),
            (
                vec![("ALLOWED_ORIGINS", "not an origin")],
                "ALLOWED_ORIGINS",
            ),
            (vec![("SECRET_KEY", "short")], "SECRET_KEY"),
            (vec![("TRUSTED_PROXIES", "10.0.0.0/33")], "TRUSTED_PROXIES"),
            (
                vec![("REGISTRATIONS_PER_ADDRESS_PER_HOUR", "0")],
                "REGISTRATIONS_PER_ADDRESS_PER_HOUR",
            ),
        ] {
            let err = config(&pairs).unwrap_err();
            assert_eq!(err.variable, variable, "{pairs:?}");
            assert!(err.to_string().starts_with(variable));
        }
    }

    #[test]
    fn admins_are_listed_by_name_and_found_whatever_the_case() {
        assert!(config(&[]).unwrap().admin_usernames.is_empty());
        let c = config(&[("ADMIN_USERNAMES", " Alice, bob ,,")]).unwrap();
        assert_eq!(c.admin_usernames, ["Alice", "bob"]);
        let admins = c.admins();
        assert!(admins.contains("alice") && admins.contains("BOB"));
        assert!(!admins.contains("carol"));
        let err = config(&[("ADMIN_USERNAMES", "alice,not a name")]).unwrap_err();
        assert_eq!(err.variable, "ADMIN_USERNAMES");
    }

    #[test]
    fn errors_and_debug_never_show_secrets() {
        let err = config(&[("DATABASE_URL", "mysql://u:hunter2hunter2@h/db")]).unwrap_err();
        assert!(!err.to_string().contains("hunter2"));
        let c = config(&[
            ("SECRET_KEY", "a-very-secret-key-value"),
            ("DATABASE_URL", "postgres://u:hunter2@h/db"),
        ])
        .unwrap();
        let debug = format!("{c:?}");
        assert!(
            !debug.contains("a-very-secret") && !debug.contains("hunter2"),
            "{debug}"
        );
    }

    #[test]
    fn dotenv_values_are_literal() {
        let vars = parse_dotenv("# comment\nA=x$HOME(y)%z\nexport B=\"quoted # not a comment\"\nC='single' \nD=v # note\n").unwrap();
        assert_eq!(vars["A"], "x$HOME(y)%z");
        assert_eq!(vars["B"], "quoted # not a comment");
        assert_eq!(vars["C"], "single");
        assert_eq!(vars["D"], "v");
        assert!(parse_dotenv("JUSTAWORD\n").is_err());
    }

    #[test]
    fn allowed_hosts_come_from_the_origins_and_allowed_hosts() {
        let c = config(&[
            ("DOMAIN", "Chat.Example.com:8443"),
            ("HOST", "https://natter.example.org/"),
            ("ALLOWED_ORIGINS", "https://other.example.net"),
            ("ALLOWED_HOSTS", "lan-box, 192.168.1.5:8000, [fe80::1]"),
        ])
        .unwrap();
        let h = &c.allowed_hosts;
        for allowed in [
            "localhost",
            "localhost:8000",
            "127.0.0.1:9",
            "[::1]:8000",
            "[::1]",
            "chat.example.com",
            "CHAT.example.com:80",
            "natter.example.org",
            "other.example.net:443",
            "lan-box",
            "192.168.1.5",
            "[fe80::1]:8000",
        ] {
            assert!(h.allows(allowed), "{allowed}");
        }
        for refused in [
            "evil.example",
            "chat.example.com.evil.example",
            "127.0.0.2",
            "",
        ] {
            assert!(!h.allows(refused), "{refused}");
        }
    }

    #[test]
    fn a_star_allows_any_host_and_the_default_is_loopback() {
        let any = config(&[("ALLOWED_HOSTS", "example.com, *")]).unwrap();
        assert_eq!(any.allowed_hosts, AllowedHosts::Any);
        assert!(any.allowed_hosts.allows("anything.example"));
        let default = config(&[]).unwrap();
        assert_eq!(
            default.allowed_hosts,
            AllowedHosts::Only(vec!["127.0.0.1".into(), "[::1]".into(), "localhost".into()])
        );
        let err = config(&[("ALLOWED_HOSTS", "http://x.example/")]).unwrap_err();
        assert_eq!(err.variable, "ALLOWED_HOSTS");
    }

    #[test]
    fn edge_limits_default_to_the_contract() {
        let c = config(&[]).unwrap();
        assert_eq!(c.request_head_timeout, Duration::from_secs(10));
        assert_eq!(c.request_body_timeout, Duration::from_secs(10));
        assert_eq!(c.max_connections_per_address, 1000);
        let c = config(&[
            ("REQUEST_BODY_TIMEOUT", "1"),
            ("MAX_CONNECTIONS_PER_ADDRESS", "5"),
        ])
        .unwrap();
        assert_eq!(c.request_body_timeout, Duration::from_secs(1));
        assert_eq!(c.max_connections_per_address, 5);
        assert_eq!(
            config(&[("REQUEST_BODY_TIMEOUT", "0")])
                .unwrap_err()
                .variable,
            "REQUEST_BODY_TIMEOUT"
        );
    }

    #[test]
    fn allowed_origins_are_normalised() {
        let c = config(&[(
            "ALLOWED_ORIGINS",
            "https://Chat.Example.com, http://127.0.0.1:8000/",
        )])
        .unwrap();
        assert_eq!(
            c.allowed_origins,
            vec!["http://127.0.0.1:8000", "https://chat.example.com"]
        );
    }

    #[test]
    fn trusted_proxies_are_addresses_and_ranges() {
        let c = config(&[]).unwrap();
        assert!(!c.trusted_proxies.contains("127.0.0.1".parse().unwrap()));
        assert_eq!(c.limits.registrations_per_address_per_hour, 20);
        let c = config(&[(
            "TRUSTED_PROXIES",
            " 10.0.0.0/8, 192.168.1.7 ,fd00::/8,,2001:db8::1",
        )])
        .unwrap();
        let trusted = |ip: &str| c.trusted_proxies.contains(ip.parse().unwrap());
        for ip in [
            "10.0.0.1",
            "10.255.255.255",
            "192.168.1.7",
            "fd12::1",
            "2001:db8::1",
        ] {
            assert!(trusted(ip), "{ip}");
        }
        // An IPv4 peer of a dual-stack listener.
        assert!(trusted("::ffff:10.1.2.3"));
        for ip in [
            "11.0.0.1",
            "192.168.1.8",
            "fe00::1",
            "2001:db8::2",
            "127.0.0.1",
        ] {
            assert!(!trusted(ip), "{ip}");
        }
        let everyone = TrustedProxies::parse("0.0.0.0/0,::/0").unwrap();
        assert!(everyone.contains("203.0.113.9".parse().unwrap()));
        assert!(everyone.contains("2001:db8::9".parse().unwrap()));
        for bad in [
            "10.0.0.0/33",
            "::/129",
            "10.0.0.0/",
            "10.0.0.0/+8",
            "proxy.local",
            "10.0.0/8",
        ] {
            assert!(TrustedProxies::parse(bad).is_err(), "{bad}");
        }
    }
}
