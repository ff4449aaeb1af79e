//! Where natter keeps its data: `DATABASE_URL` (or the original project's
//! `POSTGRES_DB_*`), `REDIS_URL` and `REDIS_KEY_PREFIX`.

use std::fmt;

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

use super::{error, ConfigError};

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

/// Characters escaped in the userinfo part of a URL (the original `.env`'s secrets have `$ % (`).
const USERINFO: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// The store, Redis (when configured) and its key prefix.
pub(super) fn parse(
    get: &impl Fn(&str) -> Option<String>,
) -> Result<(DatabaseUrl, Option<RedisUrl>, String), ConfigError> {
    let database = match get("DATABASE_URL") {
        Some(url) => parse_database_url(url.trim())?,
        None => match get("POSTGRES_DB_HOST") {
            Some(host) => DatabaseUrl::Postgres(postgres_url_from_parts(&host, get)?),
            None => DatabaseUrl::Sqlite("sqlite://natter.db".to_owned()),
        },
    };
    let redis_url =
        match get("REDIS_URL") {
            Some(url) if url.starts_with("redis://") => Some(RedisUrl(url)),
            Some(url) if url.starts_with("rediss://") => return Err(error(
                "REDIS_URL",
                "rediss:// (TLS) is not supported by this build; use redis:// on a private network",
            )),
            Some(_) => return Err(error("REDIS_URL", "must start with redis://")),
            None => None,
        };
    let redis_key_prefix = get("REDIS_KEY_PREFIX").unwrap_or_else(|| "natter:".to_owned());
    Ok((database, redis_url, redis_key_prefix))
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
