//! `/dead-letters`: the messages this service's consumers could not apply, for managers.
//!
//! Every service mounts the same endpoints (see [`crate::runtime`]): a manager lists what is
//! parked, reads one with its message, and after fixing the cause replays it through the
//! consumer that parked it, or discards it. The same operations as `brigade dead-letters`, over
//! HTTP, so the manager console can offer them without a shell on the server.
//!
//! A replay runs the handler of the consumer that parked the message, as registered with
//! [`Service::subscribe`](crate::Service::subscribe) in this very process: the code that failed
//! is the code that tries again.

use std::sync::Arc;

use brigade_domain::Role;
use brigade_nats::consumer::EventHandler;
use brigade_nats::dead_letters::{self, DeadLetter, ReplayError};
use chrono::{DateTime, Utc};
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi, Tags};
use sqlx::PgPool;

use crate::auth::BearerAuth;
use crate::config::ServiceName;
use crate::problem::{read_problem, Problem};

/// Dead letters in one page unless `pageSize` says otherwise.
pub const DEFAULT_PAGE_SIZE: u32 = 50;
/// Most dead letters in one page.
pub const MAX_PAGE_SIZE: u32 = 200;

#[derive(Tags)]
enum DeadLetterTags {
    /// Messages this service could not apply: list, read, replay, discard (manager).
    DeadLetters,
}

/// Where a dead letter stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, poem_openapi::Enum)]
#[oai(rename_all = "snake_case")]
pub enum DeadLetterStatus {
    /// Parked, waiting for a manager.
    Open,
    /// Applied again after a fix.
    Replayed,
    /// Set aside without being applied.
    Discarded,
}

/// One parked message, without its body.
#[derive(Debug, Clone, Object)]
#[oai(rename_all = "camelCase", skip_serializing_if_is_none)]
pub struct DeadLetterSummary {
    pub id: i64,
    /// The service that parked it (this one).
    pub service: String,
    /// The durable consumer that could not apply it: `kitchen-orders`.
    pub consumer: String,
    pub subject: String,
    /// `{aggregate}:{id}:{sequence}`, when the message is a Brigade event.
    pub message_id: Option<String>,
    pub aggregate_type: Option<String>,
    pub aggregate_id: Option<String>,
    pub sequence: Option<i64>,
    /// The last error its handler gave.
    pub error: String,
    pub attempts: i64,
    pub parked_at: DateTime<Utc>,
    pub replayed_at: Option<DateTime<Utc>>,
    pub discarded_at: Option<DateTime<Utc>>,
    pub status: DeadLetterStatus,
    /// Open, and its consumer runs in this service: a replay can be tried.
    pub replayable: bool,
}

/// One parked message with its body.
#[derive(Debug, Clone, Object)]
#[oai(rename_all = "camelCase")]
pub struct DeadLetterDetail {
    #[oai(flatten)]
    pub summary: DeadLetterSummary,
    /// The message as it was received (the event's JSON envelope), as text.
    pub payload: String,
}

/// A page of dead letters, oldest first.
#[derive(Debug, Clone, Object)]
#[oai(rename_all = "camelCase")]
pub struct DeadLetterPage {
    pub items: Vec<DeadLetterSummary>,
    /// From 1.
    pub page: u32,
    pub page_size: u32,
    /// Dead letters in all pages.
    pub total: i64,
}

/// The handler of each consumer of a service, by consumer name.
pub type ConsumerHandlers = Arc<Vec<(String, Arc<dyn EventHandler>)>>;

/// The dead-letter endpoints of one service.
pub struct DeadLettersApi {
    pub service: ServiceName,
    pub pool: PgPool,
    /// The consumers that may have parked messages, to replay them with.
    pub handlers: ConsumerHandlers,
}

impl DeadLettersApi {
    /// The endpoints of a service that is only being described (OpenAPI export): nothing
    /// is connected.
    #[must_use]
    pub fn described(service: ServiceName) -> Self {
        Self {
            service,
            pool: crate::system::lazy_pool(),
            handlers: Arc::default(),
        }
    }

    fn handler(&self, consumer: &str) -> Option<&Arc<dyn EventHandler>> {
        self.handlers
            .iter()
            .find(|(name, _)| name == consumer)
            .map(|(_, handler)| handler)
    }

    fn summary(&self, letter: &DeadLetter) -> DeadLetterSummary {
        let status = if letter.replayed_at.is_some() {
            DeadLetterStatus::Replayed
        } else if letter.discarded_at.is_some() {
            DeadLetterStatus::Discarded
        } else {
            DeadLetterStatus::Open
        };
        DeadLetterSummary {
            id: letter.id,
            service: self.service.as_str().to_owned(),
            consumer: letter.consumer.clone(),
            subject: letter.subject.clone(),
            message_id: letter.message_id.clone(),
            aggregate_type: letter.aggregate_type.clone(),
            aggregate_id: letter.aggregate_id.clone(),
            sequence: letter.sequence,
            error: letter.error.clone(),
            attempts: letter.attempts,
            parked_at: letter.parked_at,
            replayed_at: letter.replayed_at,
            discarded_at: letter.discarded_at,
            status,
            replayable: status == DeadLetterStatus::Open
                && self.handler(&letter.consumer).is_some(),
        }
    }

    /// The dead letter `id`, or 404.
    async fn find(&self, id: i64) -> Result<DeadLetter, Problem> {
        dead_letters::get(&self.pool, id)
            .await
            .map_err(|e| read_problem(&e))?
            .ok_or_else(|| not_found(id))
    }
}

fn not_found(id: i64) -> Problem {
    Problem::not_found("dead-letter-not-found", format!("no dead letter #{id}"))
}

fn closed(letter: &DeadLetter) -> Problem {
    let what = if letter.replayed_at.is_some() {
        "replayed"
    } else {
        "discarded"
    };
    Problem::conflict(
        "dead-letter-closed",
        format!("dead letter #{} was already {what}", letter.id),
    )
}

const MANAGERS: &[Role] = &[Role::Manager];

#[OpenApi(tag = "DeadLetterTags::DeadLetters")]
impl DeadLettersApi {
    /// Messages this service could not apply, oldest first: the open ones, or every one
    /// (replayed and discarded too) with `all=true`. Manager only.
    #[oai(path = "/dead-letters", method = "get")]
    async fn list(
        &self,
        auth: BearerAuth,
        all: Query<Option<bool>>,
        page: Query<Option<u32>>,
        #[oai(name = "pageSize")] page_size: Query<Option<u32>>,
    ) -> Result<Json<DeadLetterPage>, Problem> {
        auth.0.require(MANAGERS)?;
        let (page, page_size) = crate::problem::page_request(
            page.0,
            page_size.0,
            DEFAULT_PAGE_SIZE,
            MAX_PAGE_SIZE,
            "dead letters",
        )?;
        // Dead letters are rare (each one is a bug or a poison message someone must look at),
        // so the list is read whole and paged here.
        let letters = dead_letters::list(&self.pool, all.0.unwrap_or(false))
            .await
            .map_err(|e| read_problem(&e))?;
        let skip = (page as usize - 1).saturating_mul(page_size as usize);
        let items = letters
            .iter()
            .skip(skip)
            .take(page_size as usize)
            .map(|letter| self.summary(letter))
            .collect();
        Ok(Json(DeadLetterPage {
            items,
            page,
            page_size,
            total: i64::try_from(letters.len()).unwrap_or(i64::MAX),
        }))
    }

    /// One dead letter with its message. Manager only.
    #[oai(path = "/dead-letters/:id", method = "get")]
    async fn get(
        &self,
        auth: BearerAuth,
        id: Path<i64>,
    ) -> Result<Json<DeadLetterDetail>, Problem> {
        auth.0.require(MANAGERS)?;
        let letter = self.find(id.0).await?;
        Ok(Json(DeadLetterDetail {
            summary: self.summary(&letter),
            payload: letter.payload_text(),
        }))
    }

    /// Applies an open dead letter again through the consumer that parked it, after its cause
    /// was fixed; it is marked replayed in the same transaction. When the handler still fails
    /// nothing changes (409 `dead-letter-still-failing`, with the error). Manager only.
    #[oai(path = "/dead-letters/:id/replay", method = "post")]
    async fn replay(
        &self,
        auth: BearerAuth,
        id: Path<i64>,
    ) -> Result<Json<DeadLetterSummary>, Problem> {
        auth.0.require(MANAGERS)?;
        let letter = self.find(id.0).await?;
        if letter.replayed_at.is_some() || letter.discarded_at.is_some() {
            return Err(closed(&letter));
        }
        let Some(handler) = self.handler(&letter.consumer) else {
            return Err(Problem::conflict(
                "dead-letter-no-consumer",
                format!(
                    "{} has no consumer {:?} to replay dead letter #{} with",
                    self.service.as_str(),
                    letter.consumer,
                    letter.id
                ),
            ));
        };
        match dead_letters::replay(&self.pool, letter.id, handler.as_ref()).await {
            Ok(()) => {}
            // Replayed or discarded by someone else since it was read.
            Err(ReplayError::NotFound(_)) => {
                let now = self.find(id.0).await?;
                return Err(closed(&now));
            }
            Err(error @ ReplayError::Unreadable { .. }) => {
                return Err(Problem::unprocessable(
                    "dead-letter-unreadable",
                    error.to_string(),
                ))
            }
            Err(ReplayError::StillFailing(error)) => {
                return Err(Problem::conflict(
                    "dead-letter-still-failing",
                    format!("the consumer still cannot apply it: {error}"),
                ))
            }
            Err(ReplayError::Database(error)) => return Err(read_problem(&error)),
        }
        tracing::info!(
            service = self.service.as_str(),
            id = letter.id,
            consumer = letter.consumer,
            by = %auth.0.account_id,
            "dead letter replayed"
        );
        let letter = self.find(id.0).await?;
        Ok(Json(self.summary(&letter)))
    }

    /// Sets an open dead letter aside without applying it. Manager only.
    #[oai(path = "/dead-letters/:id/discard", method = "post")]
    async fn discard(
        &self,
        auth: BearerAuth,
        id: Path<i64>,
    ) -> Result<Json<DeadLetterSummary>, Problem> {
        auth.0.require(MANAGERS)?;
        let discarded = dead_letters::discard(&self.pool, id.0)
            .await
            .map_err(|e| read_problem(&e))?;
        let letter = self.find(id.0).await?;
        if !discarded {
            return Err(closed(&letter));
        }
        tracing::info!(
            service = self.service.as_str(),
            id = letter.id,
            consumer = letter.consumer,
            by = %auth.0.account_id,
            "dead letter discarded"
        );
        Ok(Json(self.summary(&letter)))
    }
}
