//! `Idempotency-Key` for `POST /orders`: a customer who retries a request (a timeout, a double
//! tap, a flaky network) gets the order the first attempt placed, never a second one.
//!
//! The key is *claimed* before the order is placed: the claim fixes the order id the key stands
//! for (`INSERT … ON CONFLICT DO NOTHING`). Every request that holds the claim places the order
//! under that one id, and the `Order` aggregate accepts `Place` only once per id, so two
//! concurrent requests with the same key place one order and both answer with it. A digest of
//! the request is kept with the claim: the same key with a different request is refused rather
//! than silently answered with an unrelated order. When the order is refused (bad input), the
//! claim is released so that the customer may fix the request and send it again with the same
//! key.
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

/// What a request may do with its key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// The request holds the key: place (or find) the order with this id. `first` is false for
    /// a retry, whose order may already exist.
    Held { order_id: Uuid, first: bool },
    /// The key already stands for a different request.
    Reused,
}

/// Claims `key` for this customer and this request.
///
/// # Errors
/// A database error.
pub async fn claim(
    pool: &PgPool,
    customer_id: Uuid,
    key: &str,
    request_hash: &str,
) -> Result<Claim, sqlx::Error> {
    // Twice at most: a claim released between our insert and our read is claimed again.
    for _ in 0..2 {
        // The claim's commit does not wait for its WAL flush (`synchronous_commit` off for
        // this one statement's transaction): the order's own commit, which is synchronous,
        // flushes the WAL up to itself and so the claim before it. A crash may only lose a
        // claim whose order was never committed, and the retry then claims the key afresh.
        // One WAL flush per order placed instead of two: the flush was the largest single
        // wait of `POST /orders` (see BENCHMARKS.md).
        //
        // An expired claim no longer counts: the key is free again, and this statement takes
        // it over (one round trip, where a separate purge of the key took two).
        let inserted: Option<Uuid> = sqlx::query_scalar(
            "INSERT INTO idempotency_keys (customer_id, key, order_id, request_hash)
             SELECT $1, $2, $3, $4
               FROM (SELECT set_config('synchronous_commit', 'off', true)) AS asynchronous_commit
             ON CONFLICT (customer_id, key) DO UPDATE
                SET order_id = EXCLUDED.order_id,
                    request_hash = EXCLUDED.request_hash,
                    created_at = now()
              WHERE idempotency_keys.created_at < now() - make_interval(secs => $5)
             RETURNING order_id",
        )
        .bind(customer_id)
        .bind(key)
        .bind(Uuid::new_v4())
        .bind(request_hash)
        .bind(ttl_seconds(KEY_TTL))
        .fetch_optional(pool)
        .await?;
        if let Some(order_id) = inserted {
            return Ok(Claim::Held {
                order_id,
                first: true,
            });
        }
        let existing: Option<(Uuid, String)> =
            sqlx::query_as("SELECT order_id, request_hash FROM idempotency_keys WHERE customer_id = $1 AND key = $2")
                .bind(customer_id)
                .bind(key)
                .fetch_optional(pool)
                .await?;
        match existing {
            Some((order_id, hash)) if hash == request_hash => {
                return Ok(Claim::Held {
                    order_id,
                    first: false,
                })
            }
            Some(_) => return Ok(Claim::Reused),
            None => {}
        }
    }
    Err(sqlx::Error::Protocol(
        "the idempotency key keeps being released".to_owned(),
    ))
}

/// Releases a claim whose order was refused, unless the order exists after all (a concurrent
/// request with the same key placed it): a key that stands for an order is never released.
///
/// # Errors
/// A database error.
pub async fn release(
    pool: &PgPool,
    customer_id: Uuid,
    key: &str,
    order_id: Uuid,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "DELETE FROM idempotency_keys
         WHERE customer_id = $1 AND key = $2 AND order_id = $3
           AND NOT EXISTS (SELECT 1 FROM events WHERE aggregate_type = 'order' AND aggregate_id = $4)",
    )
    .bind(customer_id)
    .bind(key)
    .bind(order_id)
    .bind(order_id.to_string())
    .execute(pool)
    .await?;
    Ok(())
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

fn ttl_seconds(ttl: Duration) -> f64 {
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
