//! Webhooks: the notifications, posted to endpoints the managers register.
//!
//! `webhook_deliveries` is both the delivery log and the sender's outbox: a row per
//! (webhook, notification) is written in the transaction that creates the notification, so
//! no notification misses a webhook and none is queued twice. The sender posts due rows,
//! signed, and records each outcome; a failure is retried with a growing delay, and after
//! `max_attempts` the row is parked (`status = 'parked'`), visible in the log and retryable by
//! a manager, while the other rows keep flowing.
//!
//! A row is posted only once it is durable ([`WebhookSender::send_due`]): a consumer's commit
//! does not wait for the disk, and a notification posted and then taken back by a crash would
//! reach the receiver twice, or its id would name another one.
//!
//! Delivery to the endpoint is at least once (a crash after the endpoint answered but before
//! the outcome is recorded sends it again): receivers drop repeats by `Brigade-Delivery-Id`.
//!
//! The signature, `Brigade-Signature: t={unix seconds},v1={hex HMAC-SHA256}`, is computed with
//! the webhook's secret over `{t}.{body}`: the receiver recomputes it, compares in constant
//! time, and rejects old timestamps to stop replays.

use std::time::Duration;

use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use sqlx::{FromRow, PgPool};
use tokio::sync::watch;
use uuid::Uuid;

use crate::notifications::Notification;

/// The signature header.
pub const SIGNATURE_HEADER: &str = "Brigade-Signature";
/// The header naming the delivery (stable across retries): receivers deduplicate on it.
pub const DELIVERY_ID_HEADER: &str = "Brigade-Delivery-Id";
/// How many deliveries one pass sends at most (in parallel).
const BATCH: i64 = 20;
/// The longest wait between two attempts.
const MAX_DELAY: Duration = Duration::from_secs(3600);

/// `t={timestamp},v1={hex HMAC-SHA256(secret, "{timestamp}.{body}")}`.
#[must_use]
pub fn signature(secret: &str, timestamp: i64, body: &[u8]) -> String {
    // HMAC accepts keys of any length: this cannot fail.
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    let digest = mac.finalize().into_bytes();
    let hex: String = digest.iter().map(|byte| format!("{byte:02x}")).collect();
    format!("t={timestamp},v1={hex}")
}

/// What a webhook endpoint receives.
#[derive(Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WebhookPayload<'a> {
    pub delivery_id: i64,
    /// `account:{id}` or `role:manager`.
    pub recipient: &'a str,
    pub notification: &'a Notification,
}

#[derive(FromRow)]
struct Due {
    delivery_id: i64,
    attempts: i32,
    url: String,
    secret: String,
    recipient_id: Option<Uuid>,
    recipient_role: Option<String>,
    id: i64,
    kind: String,
    order_id: Option<Uuid>,
    title: String,
    message: String,
    created_at: DateTime<Utc>,
}

/// Sends the queued webhook deliveries. Any number may run: rows are claimed with
/// `FOR UPDATE SKIP LOCKED`.
#[derive(Clone)]
pub struct WebhookSender {
    pool: PgPool,
    client: reqwest::Client,
    retry_base: Duration,
    max_attempts: i32,
}

impl WebhookSender {
    #[must_use]
    pub fn new(pool: PgPool, retry_base: Duration, max_attempts: i32) -> Self {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
            .unwrap_or_default();
        Self {
            pool,
            client,
            retry_base,
            max_attempts: max_attempts.max(1),
        }
    }

    /// Sends due deliveries every `interval` until `shutdown`.
    pub async fn run(self, interval: Duration, mut shutdown: watch::Receiver<bool>) {
        loop {
            tokio::select! {
                _ = shutdown.changed() => return,
                () = tokio::time::sleep(interval) => {}
            }
            if let Err(error) = self.send_due().await {
                tracing::warn!(%error, "webhook pass failed; retrying");
            }
        }
    }

    /// One pass: sends the deliveries that are due, records each outcome. Returns how many
    /// were attempted.
    ///
    /// # Errors
    /// A database error (the claimed rows are then tried again next pass).
    pub async fn send_due(&self) -> Result<usize, sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        let due: Vec<Due> = sqlx::query_as(
            "SELECT d.id AS delivery_id, d.attempts, w.url, w.secret, n.recipient_id, n.recipient_role,
                    n.id, n.kind, n.order_id, n.title, n.message, n.created_at
               FROM webhook_deliveries d
               JOIN webhooks w ON w.id = d.webhook_id
               JOIN notifications n ON n.id = d.notification_id
              WHERE d.status = 'pending' AND d.next_attempt_at <= now() AND w.active
              ORDER BY d.id LIMIT $1
                FOR UPDATE OF d SKIP LOCKED",
        )
        .bind(BATCH)
        .fetch_all(&mut *tx)
        .await?;
        if !due.is_empty() {
            // The notifications and their deliveries are written by a consumer, whose commit
            // does not wait for the disk: posted before its flush, one that a crash then took
            // back would come again under another id (twice for the receiver), or its id
            // would go to another one (which the receiver would drop as a repeat).
            brigade_nats::durable::wait_until_durable(&self.pool, &mut tx).await?;
        }
        let outcomes = futures::future::join_all(due.iter().map(|row| self.post(row))).await;
        for (row, outcome) in due.iter().zip(outcomes) {
            let attempts = row.attempts + 1;
            match outcome {
                Ok(status) => {
                    sqlx::query(
                        "UPDATE webhook_deliveries SET status = 'delivered', attempts = $2, last_status = $3,
                                last_error = NULL, delivered_at = now() WHERE id = $1",
                    )
                    .bind(row.delivery_id)
                    .bind(attempts)
                    .bind(i32::from(status))
                    .execute(&mut *tx)
                    .await?;
                }
                Err((status, error)) => {
                    let parked = attempts >= self.max_attempts;
                    let delay = retry_delay(self.retry_base, attempts);
                    sqlx::query(
                        "UPDATE webhook_deliveries SET status = $2, attempts = $3, last_status = $4,
                                last_error = $5, next_attempt_at = now() + $6 WHERE id = $1",
                    )
                    .bind(row.delivery_id)
                    .bind(if parked { "parked" } else { "pending" })
                    .bind(attempts)
                    .bind(status.map(i32::from))
                    .bind(&error)
                    .bind(delay)
                    .execute(&mut *tx)
                    .await?;
                    if parked {
                        tracing::warn!(delivery = row.delivery_id, url = %row.url, %error, "webhook delivery parked");
                    }
                }
            }
        }
        tx.commit().await?;
        Ok(due.len())
    }

    /// Posts one delivery; `Ok(status)` for a 2xx answer.
    async fn post(&self, row: &Due) -> Result<u16, (Option<u16>, String)> {
        let recipient = match (row.recipient_id, &row.recipient_role) {
            (Some(id), _) => format!("account:{id}"),
            (None, Some(role)) => format!("role:{role}"),
            (None, None) => String::new(),
        };
        let notification = Notification {
            id: row.id,
            kind: row.kind.clone(),
            order_id: row.order_id,
            title: row.title.clone(),
            message: row.message.clone(),
            created_at: row.created_at,
        };
        let payload = WebhookPayload {
            delivery_id: row.delivery_id,
            recipient: &recipient,
            notification: &notification,
        };
        let body = serde_json::to_vec(&payload).map_err(|e| (None, e.to_string()))?;
        let response = self
            .client
            .post(&row.url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(
                SIGNATURE_HEADER,
                signature(&row.secret, Utc::now().timestamp(), &body),
            )
            .header(DELIVERY_ID_HEADER, row.delivery_id.to_string())
            .body(body)
            .send()
            .await
            .map_err(|e| (None, e.to_string()))?;
        let status = response.status();
        if status.is_success() {
            Ok(status.as_u16())
        } else {
            Err((
                Some(status.as_u16()),
                format!("the endpoint answered {status}"),
            ))
        }
    }
}

/// The wait after `attempts` failures: `base`, doubled at each further failure, capped at an
/// hour. Webhooks and e-mails retry alike.
pub(crate) fn retry_delay(base: Duration, attempts: i32) -> chrono::Duration {
    let factor = 2u32.saturating_pow(u32::try_from(attempts - 1).unwrap_or(0).min(20));
    let delay = base.saturating_mul(factor).min(MAX_DELAY);
    chrono::Duration::from_std(delay).unwrap_or_else(|_| chrono::Duration::hours(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_is_hmac_sha256_of_timestamp_dot_body() {
        // Computed independently: python3 hmac.new(b"secret", b"1700000000.{}", sha256).
        assert_eq!(
            signature("secret", 1_700_000_000, b"{}"),
            "t=1700000000,v1=b8569b78799ff9e3cbff0fc2d63a33a2b57f3282abd07c37ae5e8e7d79a5f163"
        );
    }

    #[test]
    fn retries_wait_longer_each_time_up_to_an_hour() {
        let base = Duration::from_secs(1);
        assert_eq!(retry_delay(base, 1), chrono::Duration::seconds(1));
        assert_eq!(retry_delay(base, 3), chrono::Duration::seconds(4));
        assert_eq!(retry_delay(base, 30), chrono::Duration::hours(1));
        let base = Duration::from_secs(2);
        assert_eq!(retry_delay(base, 1), chrono::Duration::seconds(2));
        assert_eq!(retry_delay(base, 2), chrono::Duration::seconds(4));
        assert_eq!(retry_delay(base, 40), chrono::Duration::hours(1));
    }
}
