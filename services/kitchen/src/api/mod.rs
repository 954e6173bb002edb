//! The kitchen's HTTP API (API.md, kitchen table). Handlers are thin: authorize, issue one
//! command or one query, map the result.

mod problems;

use brigade_domain::kitchen::{Ticket, TicketCommand};
use brigade_domain::Role;
use brigade_nats::store::{self, CommandMetadata, EventStore};
use brigade_platform::auth::BearerAuth;
use brigade_platform::problem::{command_problem, read_problem};
use brigade_platform::Problem;
use brigade_projections::feed::{self, FeedHub};
use brigade_projections::kitchen_queue::{self, QueuedTicket};
use chrono::Utc;
use futures::StreamExt;
use poem_openapi::param::{Header, Path};
use poem_openapi::payload::{EventStream, Json};
use poem_openapi::types::ToJSON;
use poem_openapi::{Object, OpenApi, Tags};
use sqlx::PgPool;
use uuid::Uuid;

pub use problems::ticket_problem;

#[derive(Tags)]
enum KitchenTags {
    /// The kitchen queue and the chefs' actions on it.
    Tickets,
}

/// Why a chef rejects a ticket.
#[derive(Debug, Object)]
pub struct RejectTicket {
    /// Shown to the customer and the manager: "plus de saumon".
    #[oai(validator(min_length = 1, max_length = 500))]
    pub reason: String,
}

/// One change of the kitchen queue, as pushed to screens.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct TicketChange {
    /// Also the SSE `id`: send it back as `Last-Event-ID` to resume.
    pub change_id: i64,
    pub ticket: QueuedTicket,
}

/// The kitchen service's endpoints.
pub struct KitchenApi {
    pub pool: PgPool,
    pub tickets: EventStore<Ticket>,
    pub hub: FeedHub,
}

const KITCHEN_STAFF: &[Role] = &[Role::Chef, Role::Manager];

#[OpenApi(tag = "KitchenTags::Tickets")]
impl KitchenApi {
    /// Open tickets, oldest order first, each with its items and their progress.
    #[oai(path = "/tickets", method = "get")]
    async fn tickets(&self, auth: BearerAuth) -> Result<Json<Vec<QueuedTicket>>, Problem> {
        auth.0.require(KITCHEN_STAFF)?;
        let tickets = kitchen_queue::open_tickets(&self.pool)
            .await
            .map_err(|e| read_problem(&e))?;
        Ok(Json(tickets))
    }

    /// One ticket, whatever its state.
    #[oai(path = "/tickets/:order_id", method = "get")]
    async fn ticket(
        &self,
        auth: BearerAuth,
        order_id: Path<Uuid>,
    ) -> Result<Json<QueuedTicket>, Problem> {
        auth.0.require(KITCHEN_STAFF)?;
        kitchen_queue::ticket(&self.pool, order_id.0)
            .await
            .map_err(|e| read_problem(&e))?
            .map(Json)
            .ok_or_else(|| {
                Problem::not_found(
                    "ticket-not-found",
                    format!("no ticket for order {}", order_id.0),
                )
            })
    }

    /// A chef starts preparing one item: it becomes *en préparation*.
    #[oai(path = "/tickets/:order_id/items/:index/start", method = "post")]
    async fn start_item(
        &self,
        auth: BearerAuth,
        order_id: Path<Uuid>,
        index: Path<u32>,
    ) -> Result<Json<QueuedTicket>, Problem> {
        auth.0.require(&[Role::Chef])?;
        let command = TicketCommand::StartItem {
            index: index.0 as usize,
            at: Utc::now(),
        };
        self.execute(&auth, order_id.0, command).await
    }

    /// A chef finishes one item: it becomes *prêt à servir* (straight from pending is
    /// allowed); the last one makes the whole ticket ready.
    #[oai(path = "/tickets/:order_id/items/:index/ready", method = "post")]
    async fn ready_item(
        &self,
        auth: BearerAuth,
        order_id: Path<Uuid>,
        index: Path<u32>,
    ) -> Result<Json<QueuedTicket>, Problem> {
        auth.0.require(&[Role::Chef])?;
        let command = TicketCommand::ReadyItem {
            index: index.0 as usize,
            at: Utc::now(),
        };
        self.execute(&auth, order_id.0, command).await
    }

    /// Every remaining item of the ticket is ready at once ("bump").
    #[oai(path = "/tickets/:order_id/bump", method = "post")]
    async fn bump(
        &self,
        auth: BearerAuth,
        order_id: Path<Uuid>,
    ) -> Result<Json<QueuedTicket>, Problem> {
        auth.0.require(&[Role::Chef])?;
        self.execute(&auth, order_id.0, TicketCommand::Bump { at: Utc::now() })
            .await
    }

    /// The kitchen cannot make this order; only before any item is ready.
    #[oai(path = "/tickets/:order_id/reject", method = "post")]
    async fn reject(
        &self,
        auth: BearerAuth,
        order_id: Path<Uuid>,
        body: Json<RejectTicket>,
    ) -> Result<Json<QueuedTicket>, Problem> {
        auth.0.require(KITCHEN_STAFF)?;
        let command = TicketCommand::Reject {
            reason: body.0.reason,
            at: Utc::now(),
        };
        self.execute(&auth, order_id.0, command).await
    }

    /// Every change to the queue, live (server-sent events). Resume with `Last-Event-ID`.
    #[oai(path = "/tickets/stream", method = "get")]
    async fn stream(
        &self,
        auth: BearerAuth,
        #[oai(name = "Last-Event-ID")] last_event_id: Header<Option<i64>>,
    ) -> Result<EventStream<futures::stream::BoxStream<'static, TicketChange>>, Problem> {
        auth.0.require(KITCHEN_STAFF)?;
        let pool = self.pool.clone();
        let changes = feed::follow(
            pool.clone(),
            &self.hub,
            kitchen_queue::FEED,
            None,
            last_event_id.0,
        )
        .filter_map(move |change| {
            let pool = pool.clone();
            async move {
                let order_id = change.key.parse().ok()?;
                let ticket = kitchen_queue::ticket(&pool, order_id).await.ok()??;
                Some(TicketChange {
                    change_id: change.id,
                    ticket,
                })
            }
        })
        .boxed();
        Ok(EventStream::new(changes)
            .keep_alive(std::time::Duration::from_secs(15))
            .to_event(|change| {
                poem::web::sse::Event::message(change.to_json_string())
                    .event_type("ticket")
                    .id(change.change_id.to_string())
            }))
    }
}

impl KitchenApi {
    /// Issues one command on a ticket and answers with the ticket as it now stands (read from
    /// the aggregate: the queue may lag a few milliseconds behind).
    async fn execute(
        &self,
        auth: &BearerAuth,
        order_id: Uuid,
        command: TicketCommand,
    ) -> Result<Json<QueuedTicket>, Problem> {
        let id = order_id.to_string();
        let actor = serde_json::to_string(&auth.0.actor()).map_err(|e| Problem::internal(&e))?;
        let metadata = CommandMetadata::by(actor)
            .correlation(id.clone())
            .causation(format!("http:{}", Uuid::new_v4()));
        self.tickets
            .execute_with_metadata(&id, command, metadata.into_map())
            .await
            .map_err(|e| command_problem(e, ticket_problem))?;
        let loaded = store::load::<Ticket>(&self.pool, &id)
            .await
            .map_err(|e| command_problem(e, ticket_problem))?;
        Ok(Json(problems::queued(
            &loaded.aggregate,
            order_id,
            loaded.version,
        )))
    }
}
