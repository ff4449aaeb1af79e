//! Registration, login, sessions. Argon2id hashing runs off the async threads, a few at a
//! time, so a login flood cannot starve the runtime.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use rand::RngCore;
use sha2::{Digest, Sha256};
use tokio::sync::{OnceCell, Semaphore};

use super::throttle::{Throttle, ThrottleKey};
use super::{store_call, ChatError, Limits};
use crate::domain::{Password, User, Username};
use crate::ports::{Bus, BusEvent, Store, StoreError};

const REGISTRATION_WINDOW: Duration = Duration::from_secs(60 * 60);

/// A browser that signed in as `username` before: its device cookie's signature was
/// checked at the edge. Its logins are throttled on their own (CONTRACT §7a), so strangers
/// failing on purpose cannot lock the owner out.
#[derive(Debug, Clone)]
pub struct KnownDevice {
    /// The username in the form usernames are compared in ([`Username::key`]).
    pub username: String,
    /// Random, made at the login that issued the cookie.
    pub id: String,
}

/// Accounts and sessions: the ports they use and the guards around them.
pub struct Accounts {
    store: Arc<dyn Store>,
    /// Tells every process that a session ended, so its sockets close.
    bus: Arc<dyn Bus>,
    session_ttl: Duration,
    passwords: Passwords,
    guards: Guards,
}

/// Argon2id off the async threads, a few hashes at a time.
struct Passwords {
    hashing: Semaphore,
    /// Verified against for unknown usernames, so they cost as much as a wrong password.
    dummy_hash: OnceCell<String>,
}

/// The throttles on failed logins and on registrations (CONTRACT §7a).
struct Guards {
    login_failures_by_user: Throttle,
    login_failures_by_device: Throttle,
    login_failures_by_address: Throttle,
    register_failures_by_address: Throttle,
    registrations_by_address: Throttle,
}

impl Guards {
    fn new(limits: &Limits) -> Guards {
        let failures = |limit| Throttle::new(limit, limits.login_failure_window);
        Guards {
            login_failures_by_user: failures(limits.login_failures_per_username),
            login_failures_by_device: failures(limits.login_failures_per_device),
            login_failures_by_address: failures(limits.failures_per_address),
            register_failures_by_address: failures(limits.failures_per_address),
            registrations_by_address: Throttle::new(
                limits.registrations_per_address_per_hour,
                REGISTRATION_WINDOW,
            ),
        }
    }

    /// The throttles a login is counted in, each with whether a success forgives its key.
    fn login_throttles(
        &self,
        username: Option<&Username>,
        address: IpAddr,
        device: Option<&KnownDevice>,
    ) -> Vec<(&Throttle, ThrottleKey, bool)> {
        let device = device.filter(|d| username.is_some_and(|u| u.key() == d.username));
        let address_key = ThrottleKey::of_address(address);
        let by_address = (&self.login_failures_by_address, address_key, false);
        // The bool: a success forgives this key's failures. The owner is back; but an
        // address may be shared with whoever failed, so its failures stand. An invalid
        // username is never a key: it cannot match an account, and keying on it would let a
        // client fill memory with names of its own making.
        match (device, username) {
            (Some(device), _) => vec![(
                &self.login_failures_by_device,
                ThrottleKey::of("device", device.id.as_bytes()),
                true,
            )],
            (None, Some(username)) => vec![
                (
                    &self.login_failures_by_user,
                    ThrottleKey::of("user", username.key().as_bytes()),
                    true,
                ),
                by_address,
            ],
            (None, None) => vec![by_address],
        }
    }
}

impl Passwords {
    fn new() -> Passwords {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        Passwords {
            hashing: Semaphore::new(cores),
            dummy_hash: OnceCell::new(),
        }
    }

    async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, ChatError> {
        let _permit = self
            .hashing
            .acquire()
            .await
            .map_err(|_| ChatError::Unavailable("hashing is shut down".into()))?;
        tokio::task::spawn_blocking(work)
            .await
            .map_err(|e| ChatError::Unavailable(Box::new(e)))
    }

    async fn hash(&self, password: Password) -> Result<String, ChatError> {
        self.blocking(move || {
            let salt = SaltString::generate(&mut OsRng);
            argon2()
                .hash_password(password.expose().as_bytes(), &salt)
                .map(|hash| hash.to_string())
        })
        .await?
        .map_err(|e| ChatError::Unavailable(e.to_string().into()))
    }

    async fn verify(&self, password: Password, hash: String) -> Result<bool, ChatError> {
        self.blocking(move || match PasswordHash::new(&hash) {
            Ok(parsed) => argon2()
                .verify_password(password.expose().as_bytes(), &parsed)
                .is_ok(),
            Err(_) => false,
        })
        .await
    }

    async fn dummy_hash(&self) -> Result<String, ChatError> {
        self.dummy_hash
            .get_or_try_init(|| async {
                let mut random = [0u8; 24];
                rand::thread_rng().fill_bytes(&mut random);
                let password =
                    Password::parse(&URL_SAFE_NO_PAD.encode(random)).expect("32 characters");
                self.hash(password).await
            })
            .await
            .cloned()
    }
}

/// Argon2id with the OWASP minimum: 19 MiB, 2 passes, 1 lane.
fn argon2() -> Argon2<'static> {
    Argon2::new(
        Algorithm::Argon2id,
        Version::V0x13,
        Params::new(19 * 1024, 2, 1, None).expect("valid Argon2 parameters"),
    )
}

/// A session just created: the token goes into the cookie and nowhere else.
#[derive(Debug, Clone)]
pub struct NewSession {
    pub token: String,
    pub user: User,
    pub expires_at: DateTime<Utc>,
}

/// A request's valid session.
#[derive(Debug, Clone)]
pub struct AuthSession {
    pub user: User,
    pub expires_at: DateTime<Utc>,
    /// Names the session's sockets in the hub.
    pub token_hash: Bytes,
}

fn token_hash(token: &str) -> Bytes {
    Bytes::copy_from_slice(&Sha256::digest(token.as_bytes()))
}

impl Accounts {
    pub(super) fn new(
        store: Arc<dyn Store>,
        bus: Arc<dyn Bus>,
        session_ttl: Duration,
        limits: &Limits,
    ) -> Accounts {
        Accounts {
            store,
            bus,
            session_ttl,
            passwords: Passwords::new(),
            guards: Guards::new(limits),
        }
    }

    /// Creates the account and signs it in. `password_confirm` is checked when given (forms).
    pub async fn register(
        &self,
        username: &str,
        password: &str,
        password_confirm: Option<&str>,
        address: IpAddr,
    ) -> Result<NewSession, ChatError> {
        let (guards, passwords) = (&self.guards, &self.passwords);
        let address_key = ThrottleKey::of_address(address);
        let too_many = |retry_after| ChatError::TooManyAttempts { retry_after };
        guards
            .register_failures_by_address
            .check(address_key)
            .map_err(too_many)?;
        // Counted before the slow hash, so parallel requests cannot all pass the check.
        guards
            .registrations_by_address
            .admit(address_key)
            .map_err(too_many)?;
        let result = async {
            let username = Username::parse(username).map_err(ChatError::InvalidUsername)?;
            let password = Password::parse(password).map_err(ChatError::InvalidPassword)?;
            if password_confirm.is_some_and(|confirm| confirm != password.expose()) {
                return Err(ChatError::PasswordMismatch);
            }
            let hash = passwords.hash(password).await?;
            match store_call(async {
                match self.store.create_user(&username, &hash).await {
                    Err(StoreError::Duplicate) => Ok(None),
                    other => other.map(Some),
                }
            })
            .await?
            {
                Some(user) => Ok(user),
                None => Err(ChatError::UsernameTaken),
            }
        }
        .await;
        match result {
            Ok(user) => self.start_session(user).await,
            Err(e) => {
                guards.registrations_by_address.forget_latest(address_key);
                if !matches!(e, ChatError::Unavailable(_)) {
                    guards.register_failures_by_address.record(address_key);
                }
                Err(e)
            }
        }
    }

    /// Signs in. With a `device` that signed in as this username before, only that
    /// device's failures count; otherwise the username's and the address's do.
    pub async fn login(
        &self,
        username: &str,
        password: &str,
        address: IpAddr,
        device: Option<&KnownDevice>,
    ) -> Result<NewSession, ChatError> {
        let passwords = &self.passwords;
        let parsed = Username::parse(username).ok();
        let throttles = self
            .guards
            .login_throttles(parsed.as_ref(), address, device);
        // Every attempt counts as a failure until it succeeds, so a burst of parallel
        // guesses cannot all pass the check before the first one fails.
        for (admitted, (throttle, key, _)) in throttles.iter().enumerate() {
            if let Err(retry_after) = throttle.admit(*key) {
                for (throttle, key, _) in &throttles[..admitted] {
                    throttle.forget_latest(*key);
                }
                return Err(ChatError::TooManyAttempts { retry_after });
            }
        }
        let outcome = async {
            // Malformed input cannot match an account; refuse it without hashing a huge password.
            let (Some(username), Ok(password)) = (parsed, Password::parse(password)) else {
                return Err(ChatError::InvalidCredentials);
            };
            let found = store_call(self.store.find_credentials(&username)).await?;
            let (user, hash) = match found {
                Some((user, hash)) => (Some(user), hash),
                None => (None, passwords.dummy_hash().await?),
            };
            match (user, passwords.verify(password, hash).await?) {
                (Some(user), true) => self.start_session(user).await,
                _ => Err(ChatError::InvalidCredentials),
            }
        }
        .await;
        match &outcome {
            Err(ChatError::InvalidCredentials) => {}
            Ok(_) => {
                for (throttle, key, forgiven) in &throttles {
                    if *forgiven {
                        throttle.clear(*key);
                    } else {
                        throttle.forget_latest(*key);
                    }
                }
            }
            // Not the client's failure (the store is down): it does not count.
            Err(_) => {
                for (throttle, key, _) in &throttles {
                    throttle.forget_latest(*key);
                }
            }
        }
        outcome
    }

    async fn start_session(&self, user: User) -> Result<NewSession, ChatError> {
        let mut random = [0u8; 32];
        rand::thread_rng().fill_bytes(&mut random);
        let token = URL_SAFE_NO_PAD.encode(random);
        let ttl =
            chrono::Duration::from_std(self.session_ttl).unwrap_or(chrono::Duration::days(14));
        let expires_at = Utc::now() + ttl;
        store_call(
            self.store
                .create_session(&token_hash(&token), user.id, expires_at),
        )
        .await?;
        Ok(NewSession {
            token,
            user,
            expires_at,
        })
    }

    /// The session behind a cookie's token, if it is live.
    pub async fn authenticate(&self, token: &str) -> Result<Option<AuthSession>, ChatError> {
        // A real token is 43 characters; anything far off is not worth a query.
        if token.is_empty() || token.len() > 128 {
            return Ok(None);
        }
        let hash = token_hash(token);
        let record = store_call(self.store.find_session(&hash, Utc::now())).await?;
        Ok(record.map(|record| AuthSession {
            user: record.user,
            expires_at: record.expires_at,
            token_hash: hash,
        }))
    }

    /// Ends the session and closes its sockets, on every process.
    pub async fn logout(&self, token: &str) -> Result<(), ChatError> {
        let hash = token_hash(token);
        store_call(self.store.delete_session(&hash)).await?;
        if let Err(e) = self
            .bus
            .publish(BusEvent::SessionEnded { token_hash: hash })
            .await
        {
            tracing::warn!(error = %e, "could not announce a logout; its sockets close at their next check");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn passwords_are_stored_as_argon2id_with_owasp_parameters_and_a_salt_each() {
        let passwords = Passwords::new();
        let password = || Password::parse("correct horse battery").unwrap();
        let first = passwords.hash(password()).await.unwrap();
        let second = passwords.hash(password()).await.unwrap();
        assert!(
            first.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{first}"
        );
        assert_ne!(first, second, "a random salt per password");
        assert!(passwords.verify(password(), first.clone()).await.unwrap());
        assert!(!passwords
            .verify(Password::parse("wrong horse battery").unwrap(), first)
            .await
            .unwrap());
    }

    #[test]
    fn an_invalid_username_is_never_a_throttle_key_only_its_address_counts() {
        let guards = Guards::new(&Limits::default());
        let address: IpAddr = "203.0.113.7".parse().unwrap();
        for i in 0..1_000 {
            let huge = format!("{i}{}", "x".repeat(60_000));
            let username = Username::parse(&huge).ok();
            assert!(username.is_none());
            for (throttle, key, _) in guards.login_throttles(username.as_ref(), address, None) {
                throttle.record(key);
            }
        }
        assert_eq!(guards.login_failures_by_user.keys(), 0);
        assert_eq!(guards.login_failures_by_address.keys(), 1);
        assert!(guards
            .login_failures_by_address
            .check(ThrottleKey::of_address(address))
            .is_err());
    }

    #[test]
    fn a_device_counts_only_for_the_username_it_names() {
        let guards = Guards::new(&Limits::default());
        let address: IpAddr = "203.0.113.7".parse().unwrap();
        let alice = Username::parse("Alice").unwrap();
        let device = KnownDevice {
            username: "alice".into(),
            id: "device-1".into(),
        };
        let throttles = guards.login_throttles(Some(&alice), address, Some(&device));
        assert_eq!(throttles.len(), 1);
        assert!(std::ptr::eq(
            throttles[0].0,
            &guards.login_failures_by_device
        ));
        let bob = Username::parse("bob").unwrap();
        let throttles = guards.login_throttles(Some(&bob), address, Some(&device));
        assert_eq!(throttles.len(), 2, "the user's and the address's");
        assert!(throttles
            .iter()
            .all(|(t, _, _)| !std::ptr::eq(*t, &guards.login_failures_by_device)));
    }
}
