//! A new order stored in one commit: its events (the outbox rows follow by trigger), the claim
//! of its `Idempotency-Key` and its row in the kitchen's load.
//!
//! One statement, one round trip, one WAL flush. Placing an order used to take three commits
//! one after the other (the key's claim, the events through cqrs-es's `execute`, the kitchen
//! booking) and about ten round trips; see BENCHMARKS.md ("an order is stored by one
//! statement"). It is also stronger: a key never stands for an order that was not stored, and
//! an order is never stored without its place in the kitchen's load.
//!
//! The claim is an `INSERT … ON CONFLICT` on the key; the events and the booking are inserted
//! from what the claim returns, so when the key is already taken nothing at all is written and
//! the statement returns no row. The key is taken over when it has expired, or when it already
//! stands for this very order id with this very request: a claim an earlier version of the
//! service committed on its own, before an order that never followed.

use brigade_nats::store::NewEvents;
use chrono::{DateTime, Utc};
use sqlx::postgres::PgArguments;
use sqlx::query::QueryScalar;
use sqlx::Postgres;
use uuid::Uuid;

use crate::idempotency::{ttl_seconds, KEY_TTL};

/// The key under which an order is placed.
#[derive(Debug, Clone, Copy)]
pub struct KeyClaim<'a> {
    pub customer_id: Uuid,
    pub key: &'a str,
    pub request_hash: &'a str,
}

/// Where the order stands in the kitchen's load.
#[derive(Debug, Clone, Copy)]
pub struct Booking {
    pub ready_at: DateTime<Utc>,
    pub scheduled_for: Option<DateTime<Utc>>,
}

const PLACE: &str = r"
WITH claim AS (
    INSERT INTO idempotency_keys (customer_id, key, order_id, request_hash)
    VALUES ($1, $2, $3, $4)
    ON CONFLICT (customer_id, key) DO UPDATE
       SET order_id = EXCLUDED.order_id,
           request_hash = EXCLUDED.request_hash,
           created_at = CASE WHEN idempotency_keys.order_id = EXCLUDED.order_id
                             THEN idempotency_keys.created_at ELSE now() END
     WHERE idempotency_keys.created_at < now() - make_interval(secs => $5)
        OR (idempotency_keys.order_id = EXCLUDED.order_id
            AND idempotency_keys.request_hash = EXCLUDED.request_hash)
    RETURNING order_id
), stored AS (
    INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version,
                        payload, metadata)
    SELECT $6, claim.order_id::text, event.sequence, event.event_type, event.event_version,
           event.payload::json, $10::json
      FROM claim,
           unnest($7::text[], $8::text[], $9::text[])
               WITH ORDINALITY AS event (event_type, event_version, payload, sequence)
), booked AS (
    INSERT INTO kitchen_load (order_id, ready_at, scheduled_for)
    SELECT order_id, $11, $12 FROM claim
    ON CONFLICT (order_id) DO NOTHING
)
SELECT order_id FROM claim";

/// The statement that stores order `order_id` (`events`, decided by `Place` on a new order)
/// under `claim` with its `booking`. Run it with [`crate::kitchen_capacity::Reservation::commit`]:
/// it returns the order id when the order is stored, no row when the key stands for another
/// order (or for this one, stored by a concurrent request: look the key up), and a unique
/// violation on the events' key ([`brigade_nats::store::sequence_taken`]) when an order with
/// this id exists already.
pub fn statement<'q>(
    claim: KeyClaim<'q>,
    order_id: Uuid,
    events: &'q NewEvents,
    booking: Booking,
) -> QueryScalar<'q, Postgres, Uuid, PgArguments> {
    sqlx::query_scalar(PLACE)
        .bind(claim.customer_id)
        .bind(claim.key)
        .bind(order_id)
        .bind(claim.request_hash)
        .bind(ttl_seconds(KEY_TTL))
        .bind(events.aggregate_type)
        .bind(&events.event_types)
        .bind(&events.event_versions)
        .bind(&events.payloads)
        .bind(&events.metadata)
        .bind(booking.ready_at)
        .bind(booking.scheduled_for)
}
