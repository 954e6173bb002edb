//! What the bus's test suites share.
#![allow(clippy::unwrap_used)]

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use brigade_nats::{EventEnvelope, EventHandler, HandlerError, ReceivedEvent};
use sqlx::PgConnection;
use uuid::Uuid;

/// Records each event it applies; fails the first `failures` attempts of sequence 1.
pub struct Recorder {
    failures: AtomicU32,
    poison_sequence: Option<i64>,
}

#[async_trait::async_trait]
impl EventHandler for Recorder {
    async fn handle(
        &self,
        event: &ReceivedEvent,
        tx: &mut PgConnection,
    ) -> Result<(), HandlerError> {
        let envelope = &event.envelope;
        if Some(envelope.sequence) == self.poison_sequence {
            return Err(HandlerError::Permanent(
                "this event can never be applied".into(),
            ));
        }
        if envelope.sequence == 1 && self.failures.load(Ordering::SeqCst) > 0 {
            self.failures.fetch_sub(1, Ordering::SeqCst);
            return Err(HandlerError::Transient("the database blinked".into()));
        }
        sqlx::query("INSERT INTO applied (aggregate_id, sequence) VALUES ($1, $2)")
            .bind(&envelope.aggregate_id)
            .bind(envelope.sequence)
            .execute(&mut *tx)
            .await?;
        Ok(())
    }
}

pub fn recorder(failures: u32, poison_sequence: Option<i64>) -> Arc<Recorder> {
    Arc::new(Recorder {
        failures: AtomicU32::new(failures),
        poison_sequence,
    })
}

/// An `OrderPlaced` event of one aggregate, as a relay would publish it.
pub fn placed(aggregate_type: &str, aggregate_id: &str, sequence: i64) -> EventEnvelope {
    EventEnvelope {
        event_id: Uuid::new_v4(),
        aggregate_type: aggregate_type.into(),
        aggregate_id: aggregate_id.into(),
        sequence,
        event_type: "OrderPlaced".into(),
        event_version: "1.0".into(),
        payload: serde_json::json!({"OrderPlaced": {}}),
        metadata: Default::default(),
        recorded_at: chrono::Utc::now(),
    }
}
