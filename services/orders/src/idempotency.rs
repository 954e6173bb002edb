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

use brigade_nats::Migration;
use serde::Serialize;
use sha2::{Digest, Sha256};
use sqlx::PgPool;
use uuid::Uuid;

/// Schema of the claims.
pub const MIGRATIONS: &[Migration] = &[Migration {
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
}];

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
        let inserted: Option<Uuid> = sqlx::query_scalar(
            "INSERT INTO idempotency_keys (customer_id, key, order_id, request_hash)
             VALUES ($1, $2, $3, $4) ON CONFLICT (customer_id, key) DO NOTHING RETURNING order_id",
        )
        .bind(customer_id)
        .bind(key)
        .bind(Uuid::new_v4())
        .bind(request_hash)
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
