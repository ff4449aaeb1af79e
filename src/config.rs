//! Configuration: the only code that reads the environment.
//!
//! [`Config::from_env`] reads the process environment and, for what it does not set, a
//! `.env` file in the working directory (read here, never into the process environment);
//! tests call [`Config::from_lookup`] with a map. Every error names its variable and never
//! echoes a secret. The original Django project's variables (`POSTGRES_DB_*`,
//! `DJANGO_SECRET_KEY`, `DOMAIN`, `HOST`) are understood here and nowhere else.

use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

use crate::chat::Limits;

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

/// Which `Host` names are served (CONTRACT §7a "Hosts"): a DNS-rebinding page reaches
/// natter under its own name, so an unknown name is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AllowedHosts {
    /// `ALLOWED_HOSTS=*`.
    Any,
    /// Lower-case host names and IP literals (`[::1]` keeps its brackets), without ports.
    Only(Vec<String>),
}

impl AllowedHosts {
    /// Whether a `Host` header value (with or without its port) names an allowed host.
    pub fn allows(&self, host: &str) -> bool {
        match self {
            AllowedHosts::Any => true,
            AllowedHosts::Only(hosts) => {
                let name = host_without_port(host).to_ascii_lowercase();
                hosts.contains(&name)
            }
        }
    }
}

/// `example.com:8000` → `example.com`, `[::1]:8000` → `[::1]`.
fn host_without_port(authority: &str) -> &str {
    if authority.starts_with('[') {
        return match authority.find(']') {
            Some(end) => &authority[..=end],
            None => authority,
        };
    }
    match authority.rsplit_once(':') {
        Some((host, port)) if port.bytes().all(|b| b.is_ascii_digit()) => host,
        _ => authority,
    }
}

/// `TRUSTED_PROXIES`: addresses and CIDR ranges (`10.0.0.0/8`, `fd00::/8`, `127.0.0.1`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<IpRange>);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct IpRange {
    network: IpAddr,
    prefix: u8,
}

impl TrustedProxies {
    pub fn parse(list: &str) -> Result<TrustedProxies, String> {
        list.split(',')
            .map(str::trim)
            .filter(|item| !item.is_empty())
            .map(|item| {
                IpRange::parse(item)
                    .ok_or_else(|| format!("{item:?} is not an address or a range like 10.0.0.0/8"))
            })
            .collect::<Result<_, _>>()
            .map(TrustedProxies)
    }

    pub fn contains(&self, address: IpAddr) -> bool {
        // A dual-stack listener sees IPv4 peers as `::ffff:a.b.c.d`.
        let address = address.to_canonical();
        self.0.iter().any(|range| range.contains(address))
    }
}

impl IpRange {
    fn parse(text: &str) -> Option<IpRange> {
        let (address, prefix) = match text.split_once('/') {
            Some((address, prefix)) => (address, Some(prefix)),
            None => (text, None),
        };
        let network = address.parse::<IpAddr>().ok()?.to_canonical();
        let bits = if network.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            // Digits only: `u8::from_str` would take `+8`.
            Some(p) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => p.parse().ok()?,
            Some(_) => return None,
            None => bits,
        };
        (prefix <= bits).then_some(IpRange { network, prefix })
    }

    fn contains(&self, address: IpAddr) -> bool {
        let (network, address, bits) = match (self.network, address) {
            (IpAddr::V4(n), IpAddr::V4(a)) => (u32::from(n) as u128, u32::from(a) as u128, 32),
            (IpAddr::V6(n), IpAddr::V6(a)) => (u128::from(n), u128::from(a), 128),
            _ => return false,
        };
        let host_bits = bits - u32::from(self.prefix);
        // `checked_shr`: a /0 shifts by the whole width, which `>>` does not allow.
        let mask = |x: u128| x.checked_shr(host_bits).unwrap_or(0);
        mask(network) == mask(address)
    }
}

/// The store to use.
#[derive(Clone, PartialEq, Eq)]
pub enum DatabaseUrl {
    Sqlite(String),
    Postgres(String),
}

impl fmt::Debug for DatabaseUrl {
    // A Postgres URL may hold a password.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DatabaseUrl::Sqlite(url) => write!(f, "Sqlite({url:?})"),
            DatabaseUrl::Postgres(_) => write!(f, "Postgres([redacted])"),
        }
    }
}

/// `REDIS_URL`; its `Debug` hides it, since it may hold a password.
#[derive(Clone, PartialEq, Eq)]
pub struct RedisUrl(pub String);

impl fmt::Debug for RedisUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RedisUrl([redacted])")
    }
}

/// The key that signs CSRF tokens. Its `Debug` never shows it.
#[derive(Clone)]
pub struct SecretKey {
    bytes: Vec<u8>,
    /// True when no key was configured and a random one was made for this start.
    pub generated: bool,
}

impl SecretKey {
    pub fn expose(&self) -> &[u8] {
        &self.bytes
    }

    fn random() -> Self {
        use rand::RngCore;
        let mut bytes = vec![0u8; 32];
        rand::thread_rng().fill_bytes(&mut bytes);
        SecretKey {
            bytes,
            generated: true,
        }
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretKey([redacted])")
    }
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

/// Characters escaped in the userinfo part of a URL (the original `.env`'s secrets have `$ % (`).
const USERINFO: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

impl Config {
    /// The process environment, falling back to `.env` in the working directory.
    pub fn from_env() -> Result<Config, ConfigError> {
        let file = match std::fs::read_to_string(".env") {
            Ok(text) => parse_dotenv(&text)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => HashMap::new(),
            Err(e) => return Err(error(".env", format!("could not be read: {e}"))),
        };
        Config::from_lookup(|name| std::env::var(name).ok().or_else(|| file.get(name).cloned()))
    }

    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        // An empty variable means "not set", as in most .env tooling.
        let get = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());

        let bind = match get("BIND") {
            Some(v) => v.trim().parse().map_err(|_| {
                error(
                    "BIND",
                    format!("{v:?} is not host:port (e.g. 127.0.0.1:8000)"),
                )
            })?,
            None => SocketAddr::from(([127, 0, 0, 1], 8000)),
        };

        let database = match get("DATABASE_URL") {
            Some(url) => parse_database_url(url.trim())?,
            None => match get("POSTGRES_DB_HOST") {
                Some(host) => DatabaseUrl::Postgres(postgres_url_from_parts(&host, &get)?),
                None => DatabaseUrl::Sqlite("sqlite://natter.db".to_owned()),
            },
        };

        let redis_url = match get("REDIS_URL") {
            Some(url) if url.starts_with("redis://") => Some(RedisUrl(url)),
            Some(url) if url.starts_with("rediss://") => return Err(error(
                "REDIS_URL",
                "rediss:// (TLS) is not supported by this build; use redis:// on a private network",
            )),
            Some(_) => return Err(error("REDIS_URL", "must start with redis://")),
            None => None,
        };

        let secret_key = match get("SECRET_KEY").or_else(|| get("DJANGO_SECRET_KEY")) {
            Some(key) if key.len() < 16 => {
                return Err(error(
                    "SECRET_KEY",
                    "is shorter than 16 characters; use a long random string",
                ))
            }
            Some(key) => SecretKey {
                bytes: key.into_bytes(),
                generated: false,
            },
            None => SecretKey::random(),
        };

        let mut allowed_origins = Vec::new();
        if let Some(list) = get("ALLOWED_ORIGINS") {
            for origin in list.split(',').map(str::trim).filter(|o| !o.is_empty()) {
                allowed_origins.push(parse_origin(origin).ok_or_else(|| {
                    error(
                        "ALLOWED_ORIGINS",
                        format!("{origin:?} is not an origin like https://chat.example.com"),
                    )
                })?);
            }
        }
        if let Some(host) = get("HOST") {
            allowed_origins.push(parse_origin(host.trim()).ok_or_else(|| {
                error(
                    "HOST",
                    format!("{host:?} is not a URL like http://127.0.0.1:8000/"),
                )
            })?);
        }
        if let Some(domain) = get("DOMAIN") {
            let domain = domain.trim();
            if domain.contains('/') || domain.contains(' ') {
                return Err(error(
                    "DOMAIN",
                    format!("{domain:?} is not a host name like chat.example.com"),
                ));
            }
            allowed_origins.push(format!("http://{domain}").to_ascii_lowercase());
            allowed_origins.push(format!("https://{domain}").to_ascii_lowercase());
        }
        allowed_origins.sort();
        allowed_origins.dedup();

        let redis_key_prefix = get("REDIS_KEY_PREFIX").unwrap_or_else(|| "natter:".to_owned());
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

        let ws_max_unsent_bytes = parse_number(
            &get,
            "WS_MAX_UNSENT_BYTES",
            1024 * 1024,
            64 * 1024,
            64 * 1024 * 1024,
        )?;
        let ws_write_timeout =
            Duration::from_secs(parse_number(&get, "WS_WRITE_TIMEOUT", 30, 1, 600)? as u64);
        let max_sockets_per_user = parse_number(&get, "MAX_SOCKETS_PER_USER", 20, 1, 10_000)?;
        let max_upgrades_per_user = parse_number(&get, "MAX_UPGRADES_PER_USER", 10, 1, 10_000)?;
        let trusted_proxies = match get("TRUSTED_PROXIES") {
            Some(list) => {
                TrustedProxies::parse(&list).map_err(|problem| error("TRUSTED_PROXIES", problem))?
            }
            None => TrustedProxies::default(),
        };
        let limits = parse_limits(&get)?;
        let ws_frames_per_second = parse_number(&get, "WS_FRAMES_PER_SECOND", 20, 1, 10_000)?;
        // A history frame must hold at least one message of 4,000 characters of 4 bytes.
        let ws_max_history_bytes = parse_number(
            &get,
            "WS_MAX_HISTORY_BYTES",
            512 * 1024,
            64 * 1024,
            64 * 1024 * 1024,
        )?;
        let allowed_hosts = parse_allowed_hosts(&get, &allowed_origins)?;
        let seconds = |variable, default| -> Result<Duration, ConfigError> {
            Ok(Duration::from_secs(
                parse_number(&get, variable, default, 1, 3600)? as u64,
            ))
        };
        let request_head_timeout = seconds("REQUEST_HEAD_TIMEOUT", 10)?;
        let request_body_timeout = seconds("REQUEST_BODY_TIMEOUT", 10)?;
        let max_connections_per_address =
            parse_number(&get, "MAX_CONNECTIONS_PER_ADDRESS", 1000, 1, 10_000_000)?;

        Ok(Config {
            bind,
            database,
            redis_url,
            redis_key_prefix,
            secret_key,
            allowed_origins,
            history_on_join,
            cache_messages,
            session_ttl,
            ws_max_unsent_bytes,
            ws_write_timeout,
            max_sockets_per_user,
            max_upgrades_per_user,
            trusted_proxies,
            limits,
            ws_frames_per_second,
            ws_max_history_bytes,
            allowed_hosts,
            request_head_timeout,
            request_body_timeout,
            max_connections_per_address,
        })
    }
}

/// Parses a `.env` file: `KEY=value` lines, `#` comments, optional `export ` and quotes.
///
/// Values are taken literally: no `$VAR` expansion, so a secret such as the original
/// project's (`…o7$v6*0^6l…`) arrives unchanged, as Django's reader left it.
pub fn parse_dotenv(text: &str) -> Result<HashMap<String, String>, ConfigError> {
    let mut vars = HashMap::new();
    for (number, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line);
        let Some((key, value)) = line.split_once('=') else {
            return Err(error(
                ".env",
                format!("line {} is not KEY=value", number + 1),
            ));
        };
        let value = value.trim();
        let value = match value.as_bytes().first() {
            Some(&quote @ (b'"' | b'\''))
                if value.len() >= 2 && value.as_bytes()[value.len() - 1] == quote =>
            {
                &value[1..value.len() - 1]
            }
            // An unquoted value ends at a comment that follows whitespace.
            _ => value.split(" #").next().unwrap_or(value).trim_end(),
        };
        vars.insert(key.trim().to_owned(), value.to_owned());
    }
    Ok(vars)
}

/// The per-client limits of CONTRACT §5 and §7a; unset variables keep the contract's
/// defaults ([`Limits::default`]).
fn parse_limits(get: &impl Fn(&str) -> Option<String>) -> Result<Limits, ConfigError> {
    let default = Limits::default();
    let number = |variable, default| parse_number(get, variable, default, 1, 1_000_000);
    Ok(Limits {
        sends: default.sends,
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
        room_list_max: number("ROOM_LIST_MAX", default.room_list_max)?,
        history_reads_per_second: number(
            "HISTORY_READS_PER_SECOND",
            default.history_reads_per_second,
        )?,
    })
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

fn parse_database_url(url: &str) -> Result<DatabaseUrl, ConfigError> {
    if url.starts_with("sqlite:") {
        Ok(DatabaseUrl::Sqlite(url.to_owned()))
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(DatabaseUrl::Postgres(url.to_owned()))
    } else {
        // Not echoed: a mistyped URL may still carry a password.
        Err(error(
            "DATABASE_URL",
            "must start with sqlite:// or postgres://",
        ))
    }
}

fn postgres_url_from_parts(
    host: &str,
    get: &impl Fn(&str) -> Option<String>,
) -> Result<String, ConfigError> {
    let user = get("POSTGRES_DB_USER").unwrap_or_else(|| "postgres".to_owned());
    let password = get("POSTGRES_DB_PASSWORD");
    let name = get("POSTGRES_DB_NAME").unwrap_or_else(|| "postgres".to_owned());
    let port: u16 = match get("POSTGRES_DB_PORT") {
        Some(raw) => raw
            .trim()
            .parse()
            .map_err(|_| error("POSTGRES_DB_PORT", format!("{raw:?} is not a port number")))?,
        None => 5432,
    };
    let userinfo = match password {
        Some(password) => format!(
            "{}:{}",
            utf8_percent_encode(&user, USERINFO),
            utf8_percent_encode(&password, USERINFO)
        ),
        None => utf8_percent_encode(&user, USERINFO).to_string(),
    };
    Ok(format!(
        "postgres://{userinfo}@{}:{port}/{}",
        host.trim(),
        utf8_percent_encode(&name, USERINFO)
    ))
}

/// The loopback names, the hosts of the allowed origins (which hold `DOMAIN` and `HOST`),
/// and `ALLOWED_HOSTS`.
fn parse_allowed_hosts(
    get: &impl Fn(&str) -> Option<String>,
    allowed_origins: &[String],
) -> Result<AllowedHosts, ConfigError> {
    let mut hosts: Vec<String> = ["localhost", "127.0.0.1", "[::1]"]
        .into_iter()
        .map(str::to_owned)
        .collect();
    for origin in allowed_origins {
        let authority = origin.split_once("://").map_or(origin.as_str(), |(_, a)| a);
        hosts.push(host_without_port(authority).to_owned());
    }
    if let Some(list) = get("ALLOWED_HOSTS") {
        for host in list.split(',').map(str::trim).filter(|h| !h.is_empty()) {
            if host == "*" {
                return Ok(AllowedHosts::Any);
            }
            if host.contains(['/', ' ', '@']) {
                return Err(error(
                    "ALLOWED_HOSTS",
                    format!("{host:?} is not a host name like chat.example.com"),
                ));
            }
            hosts.push(host_without_port(host).to_ascii_lowercase());
        }
    }
    hosts.sort();
    hosts.dedup();
    Ok(AllowedHosts::Only(hosts))
}

/// `scheme://host[:port]`, lower-cased, from an origin or a URL with a path.
fn parse_origin(value: &str) -> Option<String> {
    let (scheme, rest) = value.split_once("://")?;
    if scheme != "http" && scheme != "https" {
        return None;
    }
    let authority = rest.split('/').next()?;
    if authority.is_empty() || authority.contains(' ') || authority.contains('@') {
        return None;
    }
    Some(format!("{scheme}://{authority}").to_ascii_lowercase())
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
        assert_eq!(c.limits, Limits::default());
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
            ("HISTORY_READS_PER_SECOND", "9"),
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
        ] {
            let e = config(&[(variable, bad)]).unwrap_err();
            assert_eq!(e.variable, variable);
        }
    }

    #[test]
    fn the_original_django_env_is_accepted_unchanged() {
        let map = parse_dotenv(include_str!("../tests/fixtures/original.env")).unwrap();
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
