//! The kitchen queue: every ticket with its items and their progress, for the kitchen screen
//! (`GET /tickets`, `GET /tickets/stream`). Fed by the kitchen's own `kitchen.ticket.*` events.

use brigade_domain::kitchen::TicketEvent;
use brigade_nats::{EventHandler, HandlerError, Migration, ReceivedEvent, Subscription};
use chrono::{DateTime, Utc};
use poem_openapi::{Enum, Object};
use serde::{Deserialize, Serialize};
use sqlx::types::Json;
use sqlx::{FromRow, PgConnection, PgPool};
use std::sync::Arc;
use uuid::Uuid;

use crate::feed;

/// The durable consumer (and feed) name of this projection.
pub const NAME: &str = "kitchen-queue";
/// The feed live kitchen screens follow; keys are order ids.
pub const FEED: &str = "kitchen";

/// Schema of the read model.
pub const MIGRATIONS: &[Migration] = &[Migration {
    name: "0200_kitchen_queue",
    sql: r"
CREATE TABLE kitchen_queue (
    order_id  uuid        PRIMARY KEY,
    placed_at timestamptz NOT NULL,
    opened_at timestamptz NOT NULL,
    status    text        NOT NULL,
    items     jsonb       NOT NULL,
    reason    text,
    closed_at timestamptz,
    version   bigint      NOT NULL
);
CREATE INDEX kitchen_queue_open ON kitchen_queue (placed_at) WHERE status = 'open';
",
}];

/// Where a ticket stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Enum)]
#[serde(rename_all = "snake_case")]
#[oai(rename_all = "snake_case")]
pub enum TicketState {
    Open,
    Ready,
    Rejected,
    Cancelled,
}

/// Where one item stands: *en attente*, *en préparation*, *prêt à servir*.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Enum)]
#[serde(rename_all = "snake_case")]
#[oai(rename_all = "snake_case")]
pub enum ItemState {
    Pending,
    InPreparation,
    Ready,
}

/// One line of a ticket on the kitchen screen.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Object)]
#[serde(rename_all = "camelCase")]
#[oai(rename_all = "camelCase")]
pub struct QueuedItem {
    /// Position on the ticket, from 0: the `{index}` of the item endpoints.
    pub index: u32,
    pub dish_id: Uuid,
    pub dish_name: String,
    pub quantity: u32,
    /// The customer's note ("sans oignons"), verbatim.
    pub note: Option<String>,
    pub status: ItemState,
    pub started_at: Option<DateTime<Utc>>,
    pub ready_at: Option<DateTime<Utc>>,
}

/// One ticket on the kitchen screen.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Object)]
#[serde(rename_all = "camelCase")]
#[oai(rename_all = "camelCase")]
pub struct QueuedTicket {
    pub order_id: Uuid,
    pub placed_at: DateTime<Utc>,
    pub status: TicketState,
    pub items: Vec<QueuedItem>,
    /// Why it was rejected.
    pub reason: Option<String>,
    /// When it became ready, rejected or cancelled.
    pub closed_at: Option<DateTime<Utc>>,
    /// Sequence of the last ticket event applied: a screen ignores an older copy.
    pub version: i64,
}

#[derive(FromRow)]
struct Row {
    order_id: Uuid,
    placed_at: DateTime<Utc>,
    status: String,
    items: Json<Vec<QueuedItem>>,
    reason: Option<String>,
    closed_at: Option<DateTime<Utc>>,
    version: i64,
}

impl From<Row> for QueuedTicket {
    fn from(row: Row) -> Self {
        Self {
            order_id: row.order_id,
            placed_at: row.placed_at,
            status: state_of(&row.status),
            items: row.items.0,
            reason: row.reason,
            closed_at: row.closed_at,
            version: row.version,
        }
    }
}

fn state_of(status: &str) -> TicketState {
    match status {
        "ready" => TicketState::Ready,
        "rejected" => TicketState::Rejected,
        "cancelled" => TicketState::Cancelled,
        _ => TicketState::Open,
    }
}

const SELECT: &str =
    "SELECT order_id, placed_at, status, items, reason, closed_at, version FROM kitchen_queue";

/// Open tickets, oldest order first.
///
/// # Errors
/// A database error.
pub async fn open_tickets(pool: &PgPool) -> Result<Vec<QueuedTicket>, sqlx::Error> {
    let rows: Vec<Row> = sqlx::query_as(&format!(
        "{SELECT} WHERE status = 'open' ORDER BY placed_at, order_id"
    ))
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().map(QueuedTicket::from).collect())
}

/// One ticket, whatever its state.
///
/// # Errors
/// A database error.
pub async fn ticket(pool: &PgPool, order_id: Uuid) -> Result<Option<QueuedTicket>, sqlx::Error> {
    let row: Option<Row> = sqlx::query_as(&format!("{SELECT} WHERE order_id = $1"))
        .bind(order_id)
        .fetch_optional(pool)
        .await?;
    Ok(row.map(QueuedTicket::from))
}

/// The subscription that keeps the queue up to date.
#[must_use]
pub fn subscription() -> Subscription {
    Subscription {
        name: NAME.to_owned(),
        source: "kitchen",
        aggregate_types: vec!["ticket"],
        handler: Arc::new(KitchenQueue),
    }
}

/// The projector.
pub struct KitchenQueue;

#[async_trait::async_trait]
impl EventHandler for KitchenQueue {
    async fn handle(
        &self,
        event: &ReceivedEvent,
        tx: &mut PgConnection,
    ) -> Result<(), HandlerError> {
        let envelope = &event.envelope;
        let order_id: Uuid = envelope.aggregate_id.parse().map_err(|_| {
            HandlerError::Permanent(format!(
                "ticket id {:?} is not a uuid",
                envelope.aggregate_id
            ))
        })?;
        let ticket_event: TicketEvent = envelope
            .decode()
            .map_err(|e| HandlerError::Permanent(format!("not a ticket event: {e}")))?;
        let version = envelope.sequence;
        match ticket_event {
            TicketEvent::TicketOpened {
                placed_at,
                items,
                at,
                ..
            } => {
                let items: Vec<QueuedItem> = items
                    .into_iter()
                    .enumerate()
                    .map(|(index, item)| QueuedItem {
                        index: u32::try_from(index).unwrap_or(u32::MAX),
                        dish_id: item.dish_id,
                        dish_name: item.dish_name,
                        quantity: item.quantity,
                        note: item.note,
                        status: ItemState::Pending,
                        started_at: None,
                        ready_at: None,
                    })
                    .collect();
                sqlx::query(
                    "INSERT INTO kitchen_queue (order_id, placed_at, opened_at, status, items, version)
                     VALUES ($1, $2, $3, 'open', $4, $5) ON CONFLICT (order_id) DO NOTHING",
                )
                .bind(order_id)
                .bind(placed_at)
                .bind(at)
                .bind(Json(items))
                .bind(version)
                .execute(&mut *tx)
                .await?;
            }
            TicketEvent::ItemStarted { index, at } => {
                update_item(tx, order_id, index, version, |item| {
                    item.status = ItemState::InPreparation;
                    item.started_at = Some(at);
                })
                .await?;
            }
            TicketEvent::ItemReady { index, at } => {
                update_item(tx, order_id, index, version, |item| {
                    item.status = ItemState::Ready;
                    item.ready_at = Some(at);
                })
                .await?;
            }
            TicketEvent::TicketReady { at } => {
                close(tx, order_id, "ready", None, at, version).await?
            }
            TicketEvent::TicketRejected { reason, at } => {
                close(tx, order_id, "rejected", Some(reason), at, version).await?;
            }
            TicketEvent::TicketCancelled { at } => {
                close(tx, order_id, "cancelled", None, at, version).await?;
            }
        }
        feed::record(tx, FEED, &order_id.to_string()).await?;
        Ok(())
    }
}

async fn update_item(
    tx: &mut PgConnection,
    order_id: Uuid,
    index: usize,
    version: i64,
    change: impl FnOnce(&mut QueuedItem),
) -> Result<(), HandlerError> {
    let items: Option<Json<Vec<QueuedItem>>> =
        sqlx::query_scalar("SELECT items FROM kitchen_queue WHERE order_id = $1 FOR UPDATE")
            .bind(order_id)
            .fetch_optional(&mut *tx)
            .await?;
    let Some(Json(mut items)) = items else {
        return Err(HandlerError::Permanent(format!(
            "no ticket {order_id} in the queue"
        )));
    };
    let item = items
        .get_mut(index)
        .ok_or_else(|| HandlerError::Permanent(format!("ticket {order_id} has no item {index}")))?;
    change(item);
    sqlx::query("UPDATE kitchen_queue SET items = $2, version = $3 WHERE order_id = $1")
        .bind(order_id)
        .bind(Json(items))
        .bind(version)
        .execute(&mut *tx)
        .await?;
    Ok(())
}

async fn close(
    tx: &mut PgConnection,
    order_id: Uuid,
    status: &str,
    reason: Option<String>,
    at: DateTime<Utc>,
    version: i64,
) -> Result<(), HandlerError> {
    sqlx::query(
        "UPDATE kitchen_queue SET status = $2, reason = $3, closed_at = $4, version = $5 WHERE order_id = $1",
    )
    .bind(order_id)
    .bind(status)
    .bind(reason)
    .bind(at)
    .bind(version)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// How to rebuild the kitchen queue from the kitchen's event store.
#[must_use]
pub fn spec() -> crate::rebuild::ProjectionSpec {
    crate::rebuild::ProjectionSpec {
        name: NAME,
        service: "kitchen",
        aggregate_types: &["ticket"],
        tables: &["kitchen_queue"],
        migrations: MIGRATIONS,
        handler: Arc::new(KitchenQueue),
    }
}
