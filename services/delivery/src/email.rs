//! E-mail: the notifications of an account, also sent to its e-mail address through the
//! configured SMTP relay ([`crate::smtp`]).
//!
//! Like the webhooks, `email_deliveries` is both the delivery log and the sender's outbox:
//! [`notifications::notify`](crate::notifications::notify) queues one row per notification
//! (the notification id is the key, so none is queued twice) in the transaction that creates
//! it — only while the e-mail channel is on (`email_channel`, set at start-up from the
//! configuration), and only for accounts whose address identity told us.
//!
//! Never twice: a row is *claimed* (`sending`, committed) before the SMTP conversation, and
//! settled after it. A refusal before the message was handed over (server down, `4xx`) puts
//! it back with a growing delay, up to `max_attempts`; a `5xx` parks it at once. When the
//! outcome is unknown (the connection broke after the message was sent), or the sender died
//! mid-conversation (a claim older than [`STALE_CLAIM`]), the row is parked rather than sent
//! again: a missing e-mail is visible in the log, a doubled one cannot be taken back. Each
//! message also carries a `Message-ID` derived from the notification, for receivers that
//! deduplicate.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::{FromRow, PgPool};
use tokio::sync::watch;
use uuid::Uuid;

use crate::smtp::{self, Email, SmtpConfig, SmtpError};
use crate::webhooks::retry_delay;

/// How many e-mails one pass sends at most (one after the other: a relay is not a crowd).
const BATCH: i64 = 20;
/// A claim this old belongs to a sender that died mid-conversation.
pub const STALE_CLAIM: Duration = Duration::from_secs(600);

/// Turns the e-mail channel on or off for this database: notifications queue e-mails only
/// while it is on. Called at start-up from the configuration.
///
/// # Errors
/// A database error.
pub async fn set_channel(pool: &PgPool, enabled: bool) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO email_channel (id, enabled) VALUES (true, $1)
         ON CONFLICT (id) DO UPDATE SET enabled = EXCLUDED.enabled",
    )
    .bind(enabled)
    .execute(pool)
    .await?;
    Ok(())
}

#[derive(FromRow)]
struct Claimed {
    notification_id: i64,
    address: String,
    attempts: i32,
    title: String,
    message: String,
    created_at: DateTime<Utc>,
    order_id: Option<Uuid>,
}

/// Sends the queued e-mails. Any number may run: rows are claimed with `SKIP LOCKED`.
#[derive(Clone)]
pub struct EmailSender {
    pool: PgPool,
    smtp: SmtpConfig,
    retry_base: Duration,
    max_attempts: i32,
}

impl EmailSender {
    #[must_use]
    pub fn new(pool: PgPool, smtp: SmtpConfig, retry_base: Duration, max_attempts: i32) -> Self {
        Self {
            pool,
            smtp,
            retry_base,
            max_attempts: max_attempts.max(1),
        }
    }

    /// Sends due e-mails every `interval` until `shutdown`.
    pub async fn run(self, interval: Duration, mut shutdown: watch::Receiver<bool>) {
        loop {
            tokio::select! {
                _ = shutdown.changed() => return,
                () = tokio::time::sleep(interval) => {}
            }
            if let Err(error) = self.send_due().await {
                tracing::warn!(%error, "e-mail pass failed; retrying");
            }
        }
    }

    /// One pass: parks stale claims, claims due rows, sends each, records each outcome.
    /// Returns how many were attempted.
    ///
    /// # Errors
    /// A database error.
    pub async fn send_due(&self) -> Result<usize, sqlx::Error> {
        sqlx::query(
            "UPDATE email_deliveries SET status = 'parked',
                    last_error = 'interrupted while sending: not sent again, so that nobody gets it twice'
              WHERE status = 'sending' AND claimed_at < now() - make_interval(secs => $1)",
        )
        .bind(STALE_CLAIM.as_secs_f64())
        .execute(&self.pool)
        .await?;
        let claimed: Vec<Claimed> = sqlx::query_as(
            "WITH due AS (
                 SELECT notification_id FROM email_deliveries
                  WHERE status = 'pending' AND next_attempt_at <= now()
                  ORDER BY notification_id LIMIT $1 FOR UPDATE SKIP LOCKED)
             UPDATE email_deliveries e SET status = 'sending', claimed_at = now()
               FROM due, notifications n
              WHERE e.notification_id = due.notification_id AND n.id = e.notification_id
             RETURNING e.notification_id, e.address, e.attempts, n.title, n.message,
                       n.created_at, n.order_id",
        )
        .bind(BATCH)
        .fetch_all(&self.pool)
        .await?;
        for row in &claimed {
            let outcome = self.send(row).await;
            self.settle(row, outcome).await?;
        }
        Ok(claimed.len())
    }

    async fn send(&self, row: &Claimed) -> Result<(), SmtpError> {
        let message_id = format!(
            "<notification-{}@{}>",
            row.notification_id, self.smtp.hello_name
        );
        let mut body = row.message.clone();
        if let Some(order_id) = row.order_id {
            body.push_str(&format!("\n\nOrder {order_id}"));
        }
        body.push_str("\n\n-- \nBrigade\n");
        let email = Email {
            to: &row.address,
            subject: &row.title,
            body: &body,
            message_id: &message_id,
            date: row.created_at,
        };
        smtp::send(&self.smtp, &email).await
    }

    async fn settle(
        &self,
        row: &Claimed,
        outcome: Result<(), SmtpError>,
    ) -> Result<(), sqlx::Error> {
        let attempts = row.attempts + 1;
        match outcome {
            Ok(()) => {
                sqlx::query(
                    "UPDATE email_deliveries SET status = 'sent', attempts = $2, last_error = NULL,
                            sent_at = now() WHERE notification_id = $1",
                )
                .bind(row.notification_id)
                .bind(attempts)
                .execute(&self.pool)
                .await?;
            }
            Err(error) => {
                let parked = match &error {
                    SmtpError::Refused { permanent, .. } => {
                        *permanent || attempts >= self.max_attempts
                    }
                    SmtpError::Uncertain(_) => true,
                };
                sqlx::query(
                    "UPDATE email_deliveries SET status = $2, attempts = $3, last_error = $4,
                            next_attempt_at = now() + $5 WHERE notification_id = $1",
                )
                .bind(row.notification_id)
                .bind(if parked { "parked" } else { "pending" })
                .bind(attempts)
                .bind(error.to_string())
                .bind(retry_delay(self.retry_base, attempts))
                .execute(&self.pool)
                .await?;
                if parked {
                    tracing::warn!(notification = row.notification_id, %error, "e-mail parked");
                } else {
                    tracing::info!(notification = row.notification_id, %error, "e-mail will be retried");
                }
            }
        }
        Ok(())
    }
}
