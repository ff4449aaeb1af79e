//! Every cookie natter reads or sets, in one place: their names, how a request's are read,
//! and the attributes each is set with. All are `Path=/; HttpOnly; SameSite=Lax`, and
//! `Secure` when the client came over HTTPS (through a trusted proxy, see
//! [`OverHttps`](super::extract::OverHttps)), so no cookie can drift from the others.

use axum::http::{header, HeaderMap, HeaderValue};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;

use crate::chat::{KnownDevice, NewSession};
use crate::config::SecretKey;

/// The session's token (server-side sessions: the cookie holds nothing else).
pub const SESSION: &str = "natter_session";
/// Binds an anonymous visitor's CSRF tokens until they sign in.
pub const PRE_SESSION: &str = "natter_csrf";
/// Names a browser that signed in before, so its owner's logins are throttled apart from
/// strangers' (CONTRACT §7a). It outlives sessions and logout: that is its point.
pub const DEVICE: &str = "natter_device";
/// 400 days, the longest browsers keep a cookie.
const DEVICE_MAX_AGE: i64 = 400 * 24 * 60 * 60;

/// The value of the request's cookie `name`, if it sent one.
pub fn read(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value.trim_matches('"').to_owned())
}

/// A `Set-Cookie` value with natter's attributes; `max_age` `None` lasts the browser session.
fn set(name: &str, value: &str, max_age: Option<i64>, over_https: bool) -> HeaderValue {
    let mut cookie = format!("{name}={value}; Path=/; HttpOnly; SameSite=Lax");
    if let Some(seconds) = max_age {
        cookie += &format!("; Max-Age={}", seconds.max(0));
    }
    if over_https {
        cookie += "; Secure";
    }
    // Names are ours; values are base64url, usernames and numbers: always a valid header.
    HeaderValue::from_str(&cookie).expect("cookie values are visible ASCII")
}

pub fn session(session: &NewSession, over_https: bool) -> HeaderValue {
    let max_age = (session.expires_at - chrono::Utc::now()).num_seconds();
    set(SESSION, &session.token, Some(max_age), over_https)
}

/// Tells the browser to drop its session cookie (logout).
pub fn session_ended(over_https: bool) -> HeaderValue {
    set(SESSION, "", Some(0), over_https)
}

/// A new random pre-session value, and its cookie.
pub fn new_pre_session(over_https: bool) -> (String, HeaderValue) {
    let mut random = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut random);
    let value = URL_SAFE_NO_PAD.encode(random);
    let cookie = set(PRE_SESSION, &value, None, over_https);
    (value, cookie)
}

fn device_mac(secret: &SecretKey, username: &str, id: &str) -> Hmac<Sha256> {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.expose()).expect("HMAC takes any key length");
    // Domain-separated from the CSRF tokens signed with the same key.
    mac.update(b"natter-device:");
    mac.update(username.as_bytes());
    mac.update(b".");
    mac.update(id.as_bytes());
    mac
}

/// The device cookie for `device`: `{username}.{id}.{mac}`. A username may hold `.`; the id
/// and the MAC are base64url, which never does, so the value is split from the right.
pub fn device(secret: &SecretKey, device: &KnownDevice, over_https: bool) -> HeaderValue {
    let mac = URL_SAFE_NO_PAD.encode(
        device_mac(secret, &device.username, &device.id)
            .finalize()
            .into_bytes(),
    );
    let value = format!("{}.{}.{mac}", device.username, device.id);
    set(DEVICE, &value, Some(DEVICE_MAX_AGE), over_https)
}

/// The request's device cookie, if its signature holds.
pub fn known_device(secret: &SecretKey, headers: &HeaderMap) -> Option<KnownDevice> {
    let value = read(headers, DEVICE)?;
    // A real value is about 100 characters; a huge one is not worth hashing.
    if value.len() > 256 {
        return None;
    }
    let mut parts = value.rsplitn(3, '.');
    let (mac, id, username) = (parts.next()?, parts.next()?, parts.next()?);
    let mac = URL_SAFE_NO_PAD.decode(mac).ok()?;
    device_mac(secret, username, id).verify_slice(&mac).ok()?;
    Some(KnownDevice {
        username: username.to_owned(),
        id: id.to_owned(),
    })
}

/// A fresh device id: 128 random bits.
pub fn new_device_id() -> String {
    let mut random = [0u8; 16];
    rand::thread_rng().fill_bytes(&mut random);
    URL_SAFE_NO_PAD.encode(random)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::test_headers as headers;

    fn secret_key(key: &str) -> SecretKey {
        crate::config::Config::from_lookup(|name| (name == "SECRET_KEY").then(|| key.to_owned()))
            .unwrap()
            .secret_key
    }

    fn session_ending_in(seconds: i64) -> NewSession {
        NewSession {
            token: "token123".into(),
            expires_at: chrono::Utc::now() + chrono::Duration::seconds(seconds),
            user: crate::domain::User {
                id: crate::domain::UserId(1),
                username: "alice".into(),
            },
        }
    }

    /// Every cookie natter sets, over HTTP and over HTTPS.
    fn every_cookie(over_https: bool) -> Vec<String> {
        let device = KnownDevice {
            username: "alice".into(),
            id: new_device_id(),
        };
        [
            session(&session_ending_in(60), over_https),
            session_ended(over_https),
            new_pre_session(over_https).1,
            super::device(
                &secret_key("a-secret-key-for-the-tests"),
                &device,
                over_https,
            ),
        ]
        .into_iter()
        .map(|value| value.to_str().unwrap().to_owned())
        .collect()
    }

    #[test]
    fn every_cookie_has_the_same_attributes_and_secure_exactly_over_https() {
        for over_https in [false, true] {
            for cookie in every_cookie(over_https) {
                assert!(
                    cookie.contains("; Path=/; HttpOnly; SameSite=Lax"),
                    "{cookie}"
                );
                assert_eq!(cookie.ends_with("; Secure"), over_https, "{cookie}");
            }
        }
        let ended = session_ended(false);
        assert_eq!(
            ended.to_str().unwrap(),
            "natter_session=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0"
        );
        let live = session(&session_ending_in(60), false);
        assert!(live
            .to_str()
            .unwrap()
            .starts_with("natter_session=token123;"));
    }

    #[test]
    fn a_cookie_is_read_by_its_exact_name() {
        let sent = headers(&[
            ("cookie", "natter_sessionx=wrong; natter_session=\"right\""),
            ("cookie", "natter_csrf=pre"),
        ]);
        assert_eq!(read(&sent, SESSION).as_deref(), Some("right"));
        assert_eq!(read(&sent, PRE_SESSION).as_deref(), Some("pre"));
        assert_eq!(read(&sent, DEVICE), None);
    }

    #[test]
    fn a_device_cookie_holds_only_with_its_signature() {
        let secret = secret_key("a-secret-key-for-the-tests");
        let device = KnownDevice {
            username: "al.ice".into(),
            id: new_device_id(),
        };
        let set = super::device(&secret, &device, false);
        let value = set.to_str().unwrap().split(';').next().unwrap().to_owned();
        let found = known_device(&secret, &headers(&[("cookie", &value)])).unwrap();
        assert_eq!(
            (found.username, found.id),
            (device.username, device.id.clone())
        );
        let other = secret_key("another-secret-key-entirely");
        assert!(known_device(&other, &headers(&[("cookie", &value)])).is_none());
        let forged = value.replacen("al.ice", "bob", 1);
        assert!(known_device(&secret, &headers(&[("cookie", &forged)])).is_none());
        for junk in [
            "natter_device=x",
            "natter_device=a.b",
            "natter_device=..",
            "natter_device=a.b.!!",
        ] {
            assert!(
                known_device(&secret, &headers(&[("cookie", junk)])).is_none(),
                "{junk}"
            );
        }
    }
}
