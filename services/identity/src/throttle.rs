//! Login throttling: failed sign-ins are counted per e-mail address and per client address in
//! fixed windows, in PostgreSQL so that every replica sees the same counts. Once a count
//! reaches its limit, further attempts are refused with 429 and `Retry-After` *before* the
//! password is checked, so a blocked guesser learns nothing and costs no hashing.
//!
//! Unknown e-mail addresses are counted like known ones: the limit itself must not reveal
//! which accounts exist.

use std::net::IpAddr;

use chrono::Utc;
use sqlx::PgPool;

use crate::config::LoginLimits;
use crate::errors::IdentityError;

#[derive(Clone)]
pub struct LoginThrottle {
    pool: PgPool,
    limits: LoginLimits,
}

/// The counters one sign-in attempt touches, with their limits.
pub struct Attempt {
    keys: [(String, u32); 2],
}

impl LoginThrottle {
    #[must_use]
    pub fn new(pool: PgPool, limits: LoginLimits) -> Self {
        Self { pool, limits }
    }

    #[must_use]
    pub fn attempt(&self, email_key: &str, client: IpAddr) -> Attempt {
        Attempt {
            keys: [
                (format!("account:{email_key}"), self.limits.per_account),
                (format!("address:{client}"), self.limits.per_address),
            ],
        }
    }

    /// # Errors
    /// [`IdentityError::TooManyAttempts`] when a counter of `attempt` is at its limit.
    pub async fn check(&self, attempt: &Attempt) -> Result<(), IdentityError> {
        let keys: Vec<&str> = attempt.keys.iter().map(|(k, _)| k.as_str()).collect();
        let rows: Vec<(String, i32, chrono::DateTime<Utc>)> = sqlx::query_as(
            "SELECT key, failures, window_start FROM login_failures
              WHERE key = ANY($1) AND window_start > now() - make_interval(secs => $2)",
        )
        .bind(&keys)
        .bind(self.limits.window.as_secs_f64())
        .fetch_all(&self.pool)
        .await?;
        let window = chrono::Duration::from_std(self.limits.window).unwrap_or_default();
        let now = Utc::now();
        let retry_after = rows
            .iter()
            .filter(|(key, failures, _)| {
                attempt
                    .keys
                    .iter()
                    .any(|(k, limit)| k == key && i64::from(*failures) >= i64::from(*limit))
            })
            .map(|(_, _, started)| (*started + window - now).num_seconds().max(1))
            .max();
        match retry_after {
            Some(secs) => Err(IdentityError::TooManyAttempts {
                retry_after_secs: secs.unsigned_abs(),
            }),
            None => Ok(()),
        }
    }

    /// Counts one failed sign-in on every counter of `attempt`.
    ///
    /// # Errors
    /// A database error.
    pub async fn record_failure(&self, attempt: &Attempt) -> Result<(), IdentityError> {
        for (key, _) in &attempt.keys {
            sqlx::query(
                "INSERT INTO login_failures (key, window_start, failures) VALUES ($1, now(), 1)
                 ON CONFLICT (key) DO UPDATE SET
                    failures = CASE WHEN login_failures.window_start <= now() - make_interval(secs => $2)
                                    THEN 1 ELSE login_failures.failures + 1 END,
                    window_start = CASE WHEN login_failures.window_start <= now() - make_interval(secs => $2)
                                        THEN now() ELSE login_failures.window_start END",
            )
            .bind(key)
            .bind(self.limits.window.as_secs_f64())
            .execute(&self.pool)
            .await?;
        }
        Ok(())
    }

    /// Forgets the account's failures after a successful sign-in (the address's stay: one
    /// right guess must not reset a guesser's budget across many accounts).
    ///
    /// # Errors
    /// A database error.
    pub async fn clear_account(&self, attempt: &Attempt) -> Result<(), IdentityError> {
        sqlx::query("DELETE FROM login_failures WHERE key = $1")
            .bind(&attempt.keys[0].0)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Drops counters whose window has passed.
    ///
    /// # Errors
    /// A database error.
    pub async fn purge(&self) -> Result<(), sqlx::Error> {
        sqlx::query(
            "DELETE FROM login_failures WHERE window_start <= now() - make_interval(secs => $1)",
        )
        .bind(self.limits.window.as_secs_f64())
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}
