//! Dead letters: messages a consumer could not apply, parked with their error.
//!
//! JetStream has no dead-letter queue (after `max_deliver` a message just stays in the stream,
//! skipped), so consumers park messages here themselves. A parked message blocks nothing: the
//! consumer's checkpoint moves past it. Managers list them, and after fixing the cause replay
//! one (its handler runs again, bypassing the checkpoint) or discard it.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{FromRow, PgPool};

use crate::consumer::{
    advance_checkpoint, lock_checkpoint, EventHandler, HandlerError, ReceivedEvent,
};
use crate::EventEnvelope;

/// One parked message.
#[derive(Debug, Clone, Serialize, FromRow)]
#[serde(rename_all = "camelCase")]
pub struct DeadLetter {
    pub id: i64,
    pub consumer: String,
    pub subject: String,
    pub message_id: Option<String>,
    pub aggregate_type: Option<String>,
    pub aggregate_id: Option<String>,
    pub sequence: Option<i64>,
    #[serde(skip)]
    pub payload: Vec<u8>,
    pub error: String,
    pub attempts: i64,
    pub parked_at: DateTime<Utc>,
    pub replayed_at: Option<DateTime<Utc>>,
    pub discarded_at: Option<DateTime<Utc>>,
}

impl DeadLetter {
    /// The message body as text, for display.
    #[must_use]
    pub fn payload_text(&self) -> String {
        String::from_utf8_lossy(&self.payload).into_owned()
    }
}

/// Parks a message and, when it is the next in its aggregate's line, moves the consumer's
/// checkpoint past it, in one transaction.
pub(crate) async fn park(
    pool: &PgPool,
    consumer: &str,
    subject: &str,
    payload: &[u8],
    envelope: Option<&EventEnvelope>,
    error: &str,
    attempts: i64,
) -> Result<(), sqlx::Error> {
    let mut tx = pool.begin().await?;
    sqlx::query(
        "INSERT INTO dead_letters (consumer, subject, message_id, aggregate_type, aggregate_id,
                                   sequence, payload, error, attempts)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(consumer)
    .bind(subject)
    .bind(envelope.map(EventEnvelope::message_id))
    .bind(envelope.map(|e| e.aggregate_type.clone()))
    .bind(envelope.map(|e| e.aggregate_id.clone()))
    .bind(envelope.map(|e| e.sequence))
    .bind(payload)
    .bind(error)
    .bind(attempts)
    .execute(&mut *tx)
    .await?;
    if let Some(envelope) = envelope {
        let last = lock_checkpoint(&mut tx, consumer, envelope).await?;
        if envelope.sequence == last + 1 {
            advance_checkpoint(&mut tx, consumer, envelope).await?;
        }
    }
    tx.commit().await
}

/// Open dead letters (neither replayed nor discarded), oldest first; all of them with `all`.
///
/// # Errors
/// A database error.
pub async fn list(pool: &PgPool, all: bool) -> Result<Vec<DeadLetter>, sqlx::Error> {
    sqlx::query_as(
        "SELECT * FROM dead_letters
         WHERE $1 OR (replayed_at IS NULL AND discarded_at IS NULL)
         ORDER BY id",
    )
    .bind(all)
    .fetch_all(pool)
    .await
}

/// Number of open dead letters.
///
/// # Errors
/// A database error.
pub async fn count_open(pool: &PgPool) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT count(*) FROM dead_letters WHERE replayed_at IS NULL AND discarded_at IS NULL",
    )
    .fetch_one(pool)
    .await
}

/// One dead letter.
///
/// # Errors
/// A database error.
pub async fn get(pool: &PgPool, id: i64) -> Result<Option<DeadLetter>, sqlx::Error> {
    sqlx::query_as("SELECT * FROM dead_letters WHERE id = $1")
        .bind(id)
        .fetch_optional(pool)
        .await
}

/// Marks a dead letter discarded; returns whether it was open.
///
/// # Errors
/// A database error.
pub async fn discard(pool: &PgPool, id: i64) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE dead_letters SET discarded_at = now()
         WHERE id = $1 AND replayed_at IS NULL AND discarded_at IS NULL",
    )
    .bind(id)
    .execute(pool)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Why a replay did not happen.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("no open dead letter #{0}")]
    NotFound(i64),
    #[error("dead letter #{id} is not a Brigade event and cannot be replayed: {reason}")]
    Unreadable { id: i64, reason: String },
    #[error("the handler still fails: {0}")]
    StillFailing(HandlerError),
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
}

/// Applies a parked message again with its consumer's handler, in one transaction with
/// marking it replayed. The checkpoint already moved past it, so this bypasses the sequence
/// check: replay is the operator's decision, after fixing the cause.
///
/// # Errors
/// See [`ReplayError`]; on error nothing changes.
pub async fn replay(pool: &PgPool, id: i64, handler: &dyn EventHandler) -> Result<(), ReplayError> {
    let letter = get(pool, id)
        .await?
        .filter(|l| l.replayed_at.is_none() && l.discarded_at.is_none())
        .ok_or(ReplayError::NotFound(id))?;
    let envelope: EventEnvelope =
        serde_json::from_slice(&letter.payload).map_err(|e| ReplayError::Unreadable {
            id,
            reason: e.to_string(),
        })?;
    let event = ReceivedEvent {
        envelope,
        subject: letter.subject.clone(),
        delivered: letter.attempts + 1,
    };
    let mut tx = pool.begin().await?;
    handler
        .handle(&event, &mut tx)
        .await
        .map_err(ReplayError::StillFailing)?;
    sqlx::query("UPDATE dead_letters SET replayed_at = now() WHERE id = $1")
        .bind(id)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(())
}
