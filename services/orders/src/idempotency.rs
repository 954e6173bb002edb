//! `Idempotency-Key` for `POST /orders`: a customer who retries a request (a timeout, a double
//! tap, a flaky network) gets the order the first attempt placed, never a second one.
//!
//! The key is *claimed* in the very statement that stores the order (see [`crate::placement`]):
//! a key stands for an order exactly when the order exists. A concurrent request with the same
//! key waits on the first one's uncommitted claim, then finds the key taken, [`lookup`]s the
//! order it stands for and answers with it: two requests, one order. A digest of the request
//! is kept with the claim: the same key with a different request is refused rather than
//! silently answered with an unrelated order. A refused order claims nothing, so the customer
//! may fix the request and send it again with the same key.
//!
//! Keys expire [`KEY_TTL`] (24 hours) after they were first used: a retry comes within seconds
//! or minutes, and a day is ample for a phone that was offline. An expired key is treated as
//! unknown (the same key then places a new order, as a fresh key would), and [`purge_task`]
//! deletes expired claims every [`PURGE_INTERVAL`] so the table holds one day of orders, not
//! every order ever placed. The orders themselves are never touched.

use brigade_nats::Migration;
use serde::Serialize;
use sha2::{Digest, Sha256};
use sqlx::PgPool;
use std::time::Duration;
use tokio::sync::watch;
use uuid::Uuid;

/// Schema of the claims.
pub const MIGRATIONS: &[Migration] = &[
    Migration {
        name: "0400_idempotency_keys",
        sql: r"
CREATE TABLE idempotency_keys (
    customer_id  uuid        NOT NULL,
    key          text        NOT NULL,
    order_id     uuid        NOT NULL UNIQUE,
    request_hash text        NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (customer_id, key)
);
",
    },
    Migration {
        name: "0401_idempotency_keys_expiry",
        sql: r"
CREATE INDEX idempotency_keys_created_at ON idempotency_keys (created_at);
",
    },
];

/// How long a key stands for its order.
pub const KEY_TTL: Duration = Duration::from_secs(24 * 60 * 60);

/// How often expired keys are deleted.
pub const PURGE_INTERVAL: Duration = Duration::from_secs(60 * 60);

/// Longest key accepted, in characters.
pub const MAX_KEY_CHARS: usize = 200;

/// Why an `Idempotency-Key` header was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("the Idempotency-Key header is required: send a fresh random value (a UUID) with each new order, and the same value when retrying it")]
    Missing,
    #[error("the Idempotency-Key header must be 1 to {MAX_KEY_CHARS} characters")]
    Invalid,
}

impl KeyError {
    /// The stable problem code.
    #[must_use]
    pub fn code(&self) -> &'static str {
        match self {
            KeyError::Missing => "idempotency-key-required",
            KeyError::Invalid => "idempotency-key-invalid",
        }
    }
}

/// The key, checked: 1 to [`MAX_KEY_CHARS`] characters, not blank.
///
/// # Errors
/// When it is absent, blank or too long.
pub fn valid_key(key: Option<&str>) -> Result<&str, KeyError> {
    let key = key.ok_or(KeyError::Missing)?;
    if key.trim().is_empty() || key.chars().count() > MAX_KEY_CHARS {
        return Err(KeyError::Invalid);
    }
    Ok(key)
}

/// A digest of the request as the service understood it (fields it ignores do not count).
#[must_use]
pub fn request_hash(request: &impl Serialize) -> String {
    // Serializing a plain struct of strings and numbers cannot fail; an empty string would
    // only make every such request look the same, which the claim then reports as a reuse.
    let canonical = serde_json::to_vec(request).unwrap_or_default();
    Sha256::digest(&canonical)
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// An order a key stands for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Held {
    pub order_id: Uuid,
    /// The digest of the request that claimed the key ([`request_hash`]).
    pub request_hash: String,
}

/// The order `key` stands for, unless the key is unknown or expired.
///
/// # Errors
/// A database error.
pub async fn lookup(
    pool: &PgPool,
    customer_id: Uuid,
    key: &str,
) -> Result<Option<Held>, sqlx::Error> {
    let held: Option<(Uuid, String)> = sqlx::query_as(
        "SELECT order_id, request_hash FROM idempotency_keys
          WHERE customer_id = $1 AND key = $2
            AND created_at >= now() - make_interval(secs => $3)",
    )
    .bind(customer_id)
    .bind(key)
    .bind(ttl_seconds(KEY_TTL))
    .fetch_optional(pool)
    .await?;
    Ok(held.map(|(order_id, request_hash)| Held {
        order_id,
        request_hash,
    }))
}

/// Deletes the claims older than `ttl`; returns how many.
///
/// # Errors
/// A database error.
pub async fn purge_expired(pool: &PgPool, ttl: Duration) -> Result<u64, sqlx::Error> {
    let purged = sqlx::query(
        "DELETE FROM idempotency_keys WHERE created_at < now() - make_interval(secs => $1)",
    )
    .bind(ttl_seconds(ttl))
    .execute(pool)
    .await?;
    Ok(purged.rows_affected())
}

/// Purges expired keys at start and then every [`PURGE_INTERVAL`], until `shutdown`. Every
/// replica may run it: a delete of rows already deleted deletes nothing.
pub async fn purge_task(pool: PgPool, mut shutdown: watch::Receiver<bool>) {
    loop {
        match purge_expired(&pool, KEY_TTL).await {
            Ok(0) => {}
            Ok(purged) => tracing::info!(purged, "expired idempotency keys purged"),
            Err(error) => tracing::warn!(%error, "purging idempotency keys failed; retrying later"),
        }
        tokio::select! {
            _ = shutdown.changed() => return,
            () = tokio::time::sleep(PURGE_INTERVAL) => {}
        }
    }
}

/// A duration as `make_interval(secs => …)` takes it.
pub(crate) fn ttl_seconds(ttl: Duration) -> f64 {
    ttl.as_secs_f64()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_one_to_two_hundred_characters() {
        assert_eq!(valid_key(None), Err(KeyError::Missing));
        assert_eq!(valid_key(Some("")), Err(KeyError::Invalid));
        assert_eq!(valid_key(Some("   ")), Err(KeyError::Invalid));
        assert_eq!(valid_key(Some(&"k".repeat(201))), Err(KeyError::Invalid));
        assert_eq!(
            valid_key(Some(&"é".repeat(200))),
            Ok("é".repeat(200).as_str())
        );
    }

    #[test]
    fn equal_requests_have_equal_digests() {
        let a = serde_json::json!({"items": [{"dishId": "x", "quantity": 2}]});
        let b = serde_json::json!({"items": [{"dishId": "x", "quantity": 3}]});
        assert_eq!(request_hash(&a), request_hash(&a.clone()));
        assert_ne!(request_hash(&a), request_hash(&b));
        assert_eq!(request_hash(&a).len(), 64);
    }
}
