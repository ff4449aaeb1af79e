//! Who natter answers and trusts: `BIND`, `SECRET_KEY` (or `DJANGO_SECRET_KEY`),
//! `ALLOWED_ORIGINS` with the original project's `HOST` and `DOMAIN`, `ALLOWED_HOSTS` and
//! `TRUSTED_PROXIES`.

use std::fmt;
use std::net::{IpAddr, SocketAddr};

use super::{error, ConfigError};

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

/// The listening address, the secret, and who may talk to natter.
pub(super) struct Web {
    pub bind: SocketAddr,
    pub secret_key: SecretKey,
    pub allowed_origins: Vec<String>,
    pub allowed_hosts: AllowedHosts,
    pub trusted_proxies: TrustedProxies,
}

pub(super) fn parse(get: &impl Fn(&str) -> Option<String>) -> Result<Web, ConfigError> {
    let bind = match get("BIND") {
        Some(v) => v.trim().parse().map_err(|_| {
            error(
                "BIND",
                format!("{v:?} is not host:port (e.g. 127.0.0.1:8000)"),
            )
        })?,
        None => SocketAddr::from(([127, 0, 0, 1], 8000)),
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

    let allowed_hosts = parse_allowed_hosts(get, &allowed_origins)?;
    let trusted_proxies = match get("TRUSTED_PROXIES") {
        Some(list) => {
            TrustedProxies::parse(&list).map_err(|problem| error("TRUSTED_PROXIES", problem))?
        }
        None => TrustedProxies::default(),
    };
    Ok(Web {
        bind,
        secret_key,
        allowed_origins,
        allowed_hosts,
        trusted_proxies,
    })
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
