//! Passwords: the policy a new one must meet, and Argon2id hashing off the async runtime.
//!
//! Argon2id with OWASP's recommended parameters (19 MiB of memory, 2 passes, 1 lane) costs tens
//! of milliseconds of one core per hash, on purpose. Hashing therefore runs on tokio's blocking
//! pool, and at most [`CONCURRENT_HASHES`] at a time, so a burst of sign-ins queues instead of
//! starving every other request. Sign-in against an unknown e-mail verifies the password
//! against a dummy hash, so "no such account" costs the same time as "wrong password".

use std::sync::Arc;

use argon2::password_hash::{PasswordHash, PasswordHasher as _, PasswordVerifier as _, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use brigade_domain::identity::Email;
use rand::RngCore as _;
use tokio::sync::Semaphore;

/// Shortest password accepted, in characters.
pub const MIN_CHARS: usize = 8;
/// Longest password accepted, in characters (passphrases welcome; unbounded input is not).
pub const MAX_CHARS: usize = 128;
/// Hashes computed at once.
pub const CONCURRENT_HASHES: usize = 4;

/// A handful of the most common passwords of at least 8 characters: refusing them costs nothing
/// and stops the first guesses of every attacker.
const COMMON: &[&str] = &[
    "password",
    "password1",
    "password123",
    "12345678",
    "123456789",
    "1234567890",
    "11111111",
    "00000000",
    "qwertyui",
    "qwerty123",
    "azertyui",
    "iloveyou",
    "sunshine",
    "football",
    "baseball",
    "welcome1",
    "letmein1",
    "abcdefgh",
    "abc12345",
    "passw0rd",
    "motdepasse",
    "brigade1",
    "changeme",
];

/// Why a new password was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PasswordError {
    #[error("the password must have at least {min} characters")]
    TooShort { min: usize },
    #[error("the password must have at most {max} characters")]
    TooLong { max: usize },
    #[error("this password is too common; choose another")]
    TooCommon,
    #[error("the password must not be the e-mail address")]
    SameAsEmail,
}

impl PasswordError {
    pub fn code(&self) -> &'static str {
        match self {
            PasswordError::TooShort { .. } => "password-too-short",
            PasswordError::TooLong { .. } => "password-too-long",
            PasswordError::TooCommon => "password-too-common",
            PasswordError::SameAsEmail => "password-same-as-email",
        }
    }
}

/// Checks a new password against the policy: 8 to 128 characters, not a well-known password,
/// not the e-mail address.
///
/// # Errors
/// The first rule the password breaks.
pub fn check_policy(password: &str, email: &Email) -> Result<(), PasswordError> {
    let chars = password.chars().count();
    if chars < MIN_CHARS {
        return Err(PasswordError::TooShort { min: MIN_CHARS });
    }
    if chars > MAX_CHARS {
        return Err(PasswordError::TooLong { max: MAX_CHARS });
    }
    let lower = password.to_lowercase();
    if COMMON.contains(&lower.as_str()) {
        return Err(PasswordError::TooCommon);
    }
    if lower == email.lookup_key() {
        return Err(PasswordError::SameAsEmail);
    }
    Ok(())
}

/// Argon2id hashing and verification. Cheap to clone.
#[derive(Clone)]
pub struct Passwords {
    inner: Arc<Inner>,
}

struct Inner {
    /// A hash of a random password, verified against when the account does not exist.
    dummy_hash: String,
    permits: Semaphore,
}

fn argon2() -> Argon2<'static> {
    let params = Params::new(19 * 1024, 2, 1, None).expect("OWASP's Argon2id parameters are valid");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

fn hash_blocking(password: &[u8]) -> Result<String, argon2::password_hash::Error> {
    let mut salt = [0u8; 16];
    rand::rng().fill_bytes(&mut salt);
    let salt = SaltString::encode_b64(&salt)?;
    Ok(argon2().hash_password(password, &salt)?.to_string())
}

impl Passwords {
    /// Prepares the hasher (computes the dummy hash once).
    ///
    /// # Errors
    /// When hashing fails, which only a broken build could cause.
    pub async fn new() -> anyhow::Result<Self> {
        let mut random = [0u8; 32];
        rand::rng().fill_bytes(&mut random);
        let dummy_hash = tokio::task::spawn_blocking(move || hash_blocking(&random))
            .await?
            .map_err(|e| anyhow::anyhow!("hashing the dummy password: {e}"))?;
        Ok(Self {
            inner: Arc::new(Inner {
                dummy_hash,
                permits: Semaphore::new(CONCURRENT_HASHES),
            }),
        })
    }

    /// A hasher without a dummy hash, for describing the API without running it.
    #[must_use]
    pub fn detached() -> Self {
        Self {
            inner: Arc::new(Inner {
                dummy_hash: String::new(),
                permits: Semaphore::new(CONCURRENT_HASHES),
            }),
        }
    }

    /// The Argon2id PHC string of `password`, with a fresh random salt.
    ///
    /// # Errors
    /// When hashing fails (never with valid parameters) or the blocking task panics.
    pub async fn hash(&self, password: String) -> anyhow::Result<String> {
        let _permit = self.inner.permits.acquire().await?;
        tokio::task::spawn_blocking(move || hash_blocking(password.as_bytes()))
            .await?
            .map_err(|e| anyhow::anyhow!("hashing a password: {e}"))
    }

    /// Whether `password` matches `stored`; with no stored hash, spends the same time on the
    /// dummy hash and answers `false`. The comparison inside Argon2 is constant-time.
    pub async fn verify(&self, password: String, stored: Option<String>) -> bool {
        let Ok(_permit) = self.inner.permits.acquire().await else {
            return false;
        };
        let exists = stored.is_some();
        let hash = stored.unwrap_or_else(|| self.inner.dummy_hash.clone());
        let matched = tokio::task::spawn_blocking(move || {
            PasswordHash::new(&hash).is_ok_and(|parsed| {
                argon2()
                    .verify_password(password.as_bytes(), &parsed)
                    .is_ok()
            })
        })
        .await
        .unwrap_or(false);
        exists && matched
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn email() -> Email {
        Email::parse("ada@example.com").expect("a valid e-mail")
    }

    #[test]
    fn a_password_has_between_8_and_128_characters() {
        assert_eq!(
            check_policy("short", &email()),
            Err(PasswordError::TooShort { min: 8 })
        );
        assert_eq!(check_policy("correct horse", &email()), Ok(()));
        assert_eq!(
            check_policy(&"é".repeat(128), &email()),
            Ok(()),
            "characters, not bytes"
        );
        assert_eq!(
            check_policy(&"x".repeat(129), &email()),
            Err(PasswordError::TooLong { max: 128 })
        );
    }

    #[test]
    fn common_passwords_and_the_email_are_refused() {
        assert_eq!(
            check_policy("Password123", &email()),
            Err(PasswordError::TooCommon)
        );
        assert_eq!(
            check_policy("ADA@example.com", &email()),
            Err(PasswordError::SameAsEmail)
        );
    }

    #[tokio::test]
    async fn a_hash_verifies_its_password_only() {
        let passwords = Passwords::new().await.expect("hasher");
        let hash = passwords.hash("correct horse".into()).await.expect("hash");
        assert!(hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        assert!(!hash.contains("correct horse"));
        assert!(
            passwords
                .verify("correct horse".into(), Some(hash.clone()))
                .await
        );
        assert!(!passwords.verify("wrong horse".into(), Some(hash)).await);
        assert!(!passwords.verify("correct horse".into(), None).await);
    }
}
