//! The wire format of one event on the bus: the stored event and everything a consumer needs
//! to apply it once and in order (its aggregate, its sequence in that aggregate, its metadata).

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// One stored event, as published by the relay and read by consumers and audits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EventEnvelope {
    pub event_id: Uuid,
    pub aggregate_type: String,
    pub aggregate_id: String,
    /// Position of the event in its aggregate's history, from 1, without gaps.
    pub sequence: i64,
    pub event_type: String,
    pub event_version: String,
    /// The domain event as postgres-es stores it (`{"OrderPlaced": {...}}`).
    pub payload: serde_json::Value,
    /// `actor`, `correlation_id`, `causation_id`: see [`crate::store::CommandMetadata`].
    pub metadata: HashMap<String, String>,
    pub recorded_at: DateTime<Utc>,
}

impl EventEnvelope {
    /// The JetStream message id, unique per stored event: `{aggregate_type}:{aggregate_id}:{sequence}`.
    #[must_use]
    pub fn message_id(&self) -> String {
        format!(
            "{}:{}:{}",
            self.aggregate_type, self.aggregate_id, self.sequence
        )
    }

    /// The domain event, typed.
    ///
    /// # Errors
    /// When the payload is not an event of type `E` (a poison message for that consumer).
    pub fn decode<E: DeserializeOwned>(&self) -> Result<E, serde_json::Error> {
        E::deserialize(&self.payload)
    }

    /// The aggregate's id as a UUID, as every Brigade aggregate is keyed; `what` names the
    /// aggregate in the error ("order id \"x\" is not a uuid"): a message no retry will mend.
    ///
    /// # Errors
    /// A permanent handler error when the id is not a UUID.
    pub fn aggregate_uuid(&self, what: &str) -> Result<uuid::Uuid, crate::HandlerError> {
        self.aggregate_id.parse().map_err(|_| {
            crate::HandlerError::Permanent(format!(
                "{what} id {:?} is not a uuid",
                self.aggregate_id
            ))
        })
    }

    /// The correlation id (the order id for an order's whole journey), if the command set one.
    #[must_use]
    pub fn correlation_id(&self) -> Option<&str> {
        self.metadata.get("correlation_id").map(String::as_str)
    }
}

impl EventEnvelope {
    /// Reads a row of `events` or `outbox` (same columns) into an envelope.
    ///
    /// # Errors
    /// When a column is missing or of another type.
    pub fn from_row(row: &sqlx::postgres::PgRow) -> Result<Self, sqlx::Error> {
        use sqlx::Row as _;
        let metadata: serde_json::Value = row.try_get("metadata")?;
        Ok(Self {
            event_id: row.try_get("event_id")?,
            aggregate_type: row.try_get("aggregate_type")?,
            aggregate_id: row.try_get("aggregate_id")?,
            sequence: row.try_get("sequence")?,
            event_type: row.try_get("event_type")?,
            event_version: row.try_get("event_version")?,
            payload: row.try_get("payload")?,
            metadata: serde_json::from_value(metadata).unwrap_or_default(),
            recorded_at: row.try_get("recorded_at")?,
        })
    }
}
