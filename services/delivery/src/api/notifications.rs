//! Notifications for everyone (listed and live), and the webhooks managers plug in to receive
//! all of them elsewhere.

use brigade_domain::Role;
use brigade_platform::auth::BearerAuth;
use brigade_platform::problem::read_problem;
use brigade_platform::sse::EventStream;
use brigade_platform::Problem;
use brigade_projections::feed;
use chrono::{DateTime, Utc};
use futures::StreamExt;
use poem_openapi::param::{Header, Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::types::ToJSON;
use poem_openapi::{ApiResponse, Object, OpenApi};
use sqlx::FromRow;
use uuid::Uuid;

use super::{Context, DeliveryTags};
use crate::notifications::{self, Notification};

/// A webhook endpoint to register.
#[derive(Debug, Object)]
pub struct NewWebhook {
    /// `http://` or `https://`; receives a signed `POST` per notification.
    pub url: String,
    /// The HMAC key of the signatures; generated when absent (and shown once, here).
    pub secret: Option<String>,
}

/// A registered webhook.
#[derive(Debug, Object, FromRow)]
#[oai(rename_all = "camelCase", skip_serializing_if_is_none)]
pub struct Webhook {
    pub id: Uuid,
    pub url: String,
    pub active: bool,
    pub created_at: DateTime<Utc>,
    /// Only in the answer to its registration.
    #[oai(skip_serializing_if_is_none)]
    #[sqlx(skip)]
    pub secret: Option<String>,
}

/// One entry of a webhook's delivery log.
#[derive(Debug, Object, FromRow)]
#[oai(rename_all = "camelCase", skip_serializing_if_is_none)]
pub struct WebhookDelivery {
    pub id: i64,
    pub notification_id: i64,
    pub kind: String,
    /// `pending` (queued or waiting to retry), `delivered`, `parked` (gave up).
    pub status: String,
    pub attempts: i32,
    /// The HTTP status of the last attempt, if the endpoint answered.
    pub last_status: Option<i32>,
    pub last_error: Option<String>,
    pub next_attempt_at: DateTime<Utc>,
    pub delivered_at: Option<DateTime<Utc>>,
}

/// One notification pushed live.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct NotificationChange {
    /// Also the SSE `id`: send it back as `Last-Event-ID` to resume.
    pub change_id: i64,
    pub notification: Notification,
}

#[derive(ApiResponse)]
enum Registered {
    /// The webhook was registered; its secret is shown this once.
    #[oai(status = 201)]
    Created(Json<Webhook>),
}

#[derive(ApiResponse)]
enum Done {
    /// Done.
    #[oai(status = 204)]
    Done,
}

/// The notification and webhook endpoints.
pub struct NotificationsApi(pub Context);

#[OpenApi(tag = "DeliveryTags::Notifications")]
impl NotificationsApi {
    /// The caller's notifications (status changes of their orders or deliveries), newest first.
    #[oai(path = "/notifications", method = "get")]
    async fn notifications(
        &self,
        auth: BearerAuth,
        /// At most this many (default 50, at most 200).
        limit: Query<Option<i64>>,
    ) -> Result<Json<Vec<Notification>>, Problem> {
        let limit = limit.0.unwrap_or(50).clamp(1, 200);
        notifications::for_caller(&self.0.pool, &auth.0, limit)
            .await
            .map(Json)
            .map_err(|e| read_problem(&e))
    }

    /// The caller's notifications live (server-sent events, `notification` events). Resume
    /// with `Last-Event-ID`.
    #[oai(path = "/notifications/stream", method = "get")]
    async fn stream(
        &self,
        auth: BearerAuth,
        #[oai(name = "Last-Event-ID")] last_event_id: Header<Option<i64>>,
    ) -> EventStream<futures::stream::BoxStream<'static, NotificationChange>> {
        let pool = self.0.pool.clone();
        let caller = auth.0;
        let changes = feed::follow(
            pool.clone(),
            &self.0.hub,
            notifications::FEED,
            None,
            last_event_id.0,
        )
        .filter_map(move |change| {
            let (pool, id) = (
                pool.clone(),
                notifications::addressed_to(&change.key, &caller),
            );
            async move {
                let notification = notifications::notification(&pool, id?).await.ok()??;
                Some(NotificationChange {
                    change_id: change.id,
                    notification,
                })
            }
        })
        .boxed();
        EventStream::new(changes)
            .keep_alive(std::time::Duration::from_secs(15))
            .to_event(|change| {
                poem::web::sse::Event::message(change.to_json_string())
                    .event_type("notification")
                    .id(change.change_id.to_string())
            })
    }

    /// Registers a webhook: every notification from now on is posted to it, signed.
    #[oai(path = "/webhooks", method = "post")]
    async fn register(
        &self,
        auth: BearerAuth,
        body: Json<NewWebhook>,
    ) -> Result<Registered, Problem> {
        auth.0.require(&[Role::Manager])?;
        let NewWebhook { url, secret } = body.0;
        let url = url.trim().to_owned();
        let valid = reqwest::Url::parse(&url)
            .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some());
        if !valid {
            return Err(Problem::unprocessable(
                "webhook-invalid-url",
                "the url must be an http(s) URL",
            )
            .with_field("url"));
        }
        let secret = match secret.map(|s| s.trim().to_owned()) {
            Some(secret) if secret.len() < 16 => {
                return Err(Problem::unprocessable(
                    "webhook-weak-secret",
                    "the secret needs at least 16 characters",
                )
                .with_field("secret"));
            }
            Some(secret) => secret,
            None => format!("{}{}", Uuid::new_v4().simple(), Uuid::new_v4().simple()),
        };
        let mut webhook: Webhook = sqlx::query_as(
            "INSERT INTO webhooks (id, url, secret) VALUES ($1, $2, $3) RETURNING id, url, active, created_at",
        )
        .bind(Uuid::new_v4())
        .bind(&url)
        .bind(&secret)
        .fetch_one(&self.0.pool)
        .await
        .map_err(|e| read_problem(&e))?;
        webhook.secret = Some(secret);
        Ok(Registered::Created(Json(webhook)))
    }

    /// The registered webhooks (without their secrets).
    #[oai(path = "/webhooks", method = "get")]
    async fn webhooks(&self, auth: BearerAuth) -> Result<Json<Vec<Webhook>>, Problem> {
        auth.0.require(&[Role::Manager])?;
        sqlx::query_as("SELECT id, url, active, created_at FROM webhooks ORDER BY created_at, id")
            .fetch_all(&self.0.pool)
            .await
            .map(Json)
            .map_err(|e| read_problem(&e))
    }

    /// Stops posting to a webhook; its delivery log stays readable.
    #[oai(path = "/webhooks/:id", method = "delete")]
    async fn deactivate(&self, auth: BearerAuth, id: Path<Uuid>) -> Result<Done, Problem> {
        auth.0.require(&[Role::Manager])?;
        let changed = sqlx::query("UPDATE webhooks SET active = false WHERE id = $1")
            .bind(id.0)
            .execute(&self.0.pool)
            .await
            .map_err(|e| read_problem(&e))?
            .rows_affected();
        if changed == 0 {
            return Err(webhook_not_found(id.0));
        }
        Ok(Done::Done)
    }

    /// A webhook's delivery log, newest first: what was sent, how often, what failed.
    #[oai(path = "/webhooks/:id/deliveries", method = "get")]
    async fn deliveries(
        &self,
        auth: BearerAuth,
        id: Path<Uuid>,
    ) -> Result<Json<Vec<WebhookDelivery>>, Problem> {
        auth.0.require(&[Role::Manager])?;
        self.exists(id.0).await?;
        sqlx::query_as(
            "SELECT d.id, d.notification_id, n.kind, d.status, d.attempts, d.last_status, d.last_error,
                    d.next_attempt_at, d.delivered_at
               FROM webhook_deliveries d JOIN notifications n ON n.id = d.notification_id
              WHERE d.webhook_id = $1 ORDER BY d.id DESC LIMIT 500",
        )
        .bind(id.0)
        .fetch_all(&self.0.pool)
        .await
        .map(Json)
        .map_err(|e| read_problem(&e))
    }

    /// Sends the parked deliveries of a webhook again (after its endpoint was fixed).
    #[oai(path = "/webhooks/:id/retry", method = "post")]
    async fn retry(&self, auth: BearerAuth, id: Path<Uuid>) -> Result<Done, Problem> {
        auth.0.require(&[Role::Manager])?;
        self.exists(id.0).await?;
        sqlx::query(
            "UPDATE webhook_deliveries SET status = 'pending', attempts = 0, next_attempt_at = now()
              WHERE webhook_id = $1 AND status = 'parked'",
        )
        .bind(id.0)
        .execute(&self.0.pool)
        .await
        .map_err(|e| read_problem(&e))?;
        Ok(Done::Done)
    }
}

impl NotificationsApi {
    async fn exists(&self, id: Uuid) -> Result<(), Problem> {
        let found: bool =
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM webhooks WHERE id = $1)")
                .bind(id)
                .fetch_one(&self.0.pool)
                .await
                .map_err(|e| read_problem(&e))?;
        if found {
            Ok(())
        } else {
            Err(webhook_not_found(id))
        }
    }
}

fn webhook_not_found(id: Uuid) -> Problem {
    Problem::not_found("webhook-not-found", format!("no webhook {id}"))
}
