//! The order tracking read model (orders service): each order with its lines, total, address
//! and status history, for `GET /orders/{id}` (and its live `/stream`), the customer's history
//! (`GET /orders`) and the manager's board of the day. Fed by the orders service's own
//! `orders.order.*` events.
//!
//! Every change is recorded in the `orders` [`feed`] with the order id as key, so a customer's
//! tracking page follows exactly one order and resumes with `Last-Event-ID`.
//!
//! A second projector, [`KitchenEstimates`], adds the kitchen's quote of when the food will be
//! ready (`kitchen.estimate.ticket_estimated`) while the order is being prepared.

use std::sync::Arc;

use brigade_domain::kitchen::EstimateEvent;
use brigade_domain::ordering::{Order, OrderEvent, OrderLine, OrderStatus};
use brigade_domain::{Actor, Address};
use brigade_nats::{EventHandler, HandlerError, Migration, ReceivedEvent, Subscription};
use chrono::{DateTime, Utc};
use poem_openapi::{Enum, Object};
use serde::{Deserialize, Serialize};
use sqlx::types::Json;
use sqlx::{FromRow, PgConnection, PgPool};
use uuid::Uuid;

use crate::feed;
use crate::menu::Amount;

/// The durable consumer name of this projection.
pub const NAME: &str = "orders-tracking";
/// The durable consumer name of the kitchen's estimates, on the kitchen's stream.
pub const ESTIMATES_NAME: &str = "orders-tracking-estimates";
/// The feed tracking pages follow; keys are order ids.
pub const FEED: &str = "orders";

/// Schema of the read model.
pub const MIGRATIONS: &[Migration] = &[
    Migration {
        name: "0300_order_tracking",
        sql: r"
CREATE TABLE order_tracking (
    order_id         uuid        PRIMARY KEY,
    customer_id      uuid        NOT NULL,
    status           text        NOT NULL,
    items            jsonb       NOT NULL,
    total_amount     bigint      NOT NULL,
    currency         text        NOT NULL,
    delivery_address jsonb       NOT NULL,
    contact_phone    text,
    placed_at        timestamptz NOT NULL,
    history          jsonb       NOT NULL,
    reason           text,
    ready_at         timestamptz,
    delivered_at     timestamptz,
    updated_at       timestamptz NOT NULL,
    version          bigint      NOT NULL
);
CREATE INDEX order_tracking_customer ON order_tracking (customer_id, placed_at DESC, order_id DESC);
CREATE INDEX order_tracking_placed ON order_tracking (placed_at DESC, order_id DESC);
",
    },
    Migration {
        name: "0301_order_tracking_estimate",
        sql: "ALTER TABLE order_tracking ADD COLUMN estimated_ready_at timestamptz;",
    },
    // The kitchen's quotes come from the kitchen's store, not the orders': kept beside the
    // tracking table, they survive its rebuild (which replays the orders' events only).
    Migration {
        name: "0302_order_estimates",
        sql: "CREATE TABLE order_estimates (
                  order_id uuid PRIMARY KEY,
                  ready_at timestamptz NOT NULL
              );
              INSERT INTO order_estimates (order_id, ready_at)
                  SELECT order_id, estimated_ready_at FROM order_tracking
                  WHERE estimated_ready_at IS NOT NULL;
              ALTER TABLE order_tracking DROP COLUMN estimated_ready_at;",
    },
    Migration {
        name: "0303_order_tracking_scheduled_for",
        sql: "ALTER TABLE order_tracking ADD COLUMN scheduled_for timestamptz;",
    },
];

/// Where an order stands (API.md's spelling).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Enum)]
#[serde(rename_all = "snake_case")]
#[oai(rename = "OrderStatus", rename_all = "snake_case")]
pub enum OrderState {
    Placed,
    Accepted,
    InPreparation,
    Ready,
    OutForDelivery,
    Delivered,
    Cancelled,
    Rejected,
}

impl OrderState {
    /// Every state, along the forward path then the two dead ends: the board's columns.
    pub const ALL: [Self; 8] = [
        Self::Placed,
        Self::Accepted,
        Self::InPreparation,
        Self::Ready,
        Self::OutForDelivery,
        Self::Delivered,
        Self::Cancelled,
        Self::Rejected,
    ];

    fn of(status: &str) -> Self {
        Self::ALL
            .into_iter()
            .find(|state| OrderStatus::from(*state).as_str() == status)
            .unwrap_or(Self::Placed)
    }
}

impl From<OrderStatus> for OrderState {
    fn from(status: OrderStatus) -> Self {
        match status {
            OrderStatus::Placed => Self::Placed,
            OrderStatus::Accepted => Self::Accepted,
            OrderStatus::InPreparation => Self::InPreparation,
            OrderStatus::Ready => Self::Ready,
            OrderStatus::OutForDelivery => Self::OutForDelivery,
            OrderStatus::Delivered => Self::Delivered,
            OrderStatus::Cancelled => Self::Cancelled,
            OrderStatus::Rejected => Self::Rejected,
        }
    }
}

impl From<OrderState> for OrderStatus {
    fn from(state: OrderState) -> Self {
        match state {
            OrderState::Placed => Self::Placed,
            OrderState::Accepted => Self::Accepted,
            OrderState::InPreparation => Self::InPreparation,
            OrderState::Ready => Self::Ready,
            OrderState::OutForDelivery => Self::OutForDelivery,
            OrderState::Delivered => Self::Delivered,
            OrderState::Cancelled => Self::Cancelled,
            OrderState::Rejected => Self::Rejected,
        }
    }
}

/// Where to deliver: also the shape `POST /orders` takes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Object)]
#[serde(rename_all = "camelCase")]
#[oai(rename_all = "camelCase", skip_serializing_if_is_none)]
pub struct DeliveryAddress {
    pub street: String,
    pub city: String,
    pub postal_code: String,
    #[oai(skip_serializing_if_is_none)]
    pub lat: Option<f64>,
    #[oai(skip_serializing_if_is_none)]
    pub lon: Option<f64>,
}

impl From<&Address> for DeliveryAddress {
    fn from(address: &Address) -> Self {
        Self {
            street: address.street.clone(),
            city: address.city.clone(),
            postal_code: address.postal_code.clone(),
            lat: address.lat,
            lon: address.lon,
        }
    }
}

impl From<DeliveryAddress> for Address {
    fn from(address: DeliveryAddress) -> Self {
        Self {
            street: address.street,
            city: address.city,
            postal_code: address.postal_code,
            lat: address.lat,
            lon: address.lon,
        }
    }
}

/// One line of an order, as snapshotted from the menu when it was placed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Object)]
#[serde(rename_all = "camelCase")]
#[oai(rename_all = "camelCase", skip_serializing_if_is_none)]
pub struct TrackedLine {
    pub dish_id: Uuid,
    pub name: String,
    pub unit_price: Amount,
    pub quantity: u32,
    /// The customer's note ("sans oignons"), verbatim.
    pub note: Option<String>,
    /// The options picked, in menu order; `unitPrice` includes their deltas.
    #[serde(default)]
    #[oai(default)]
    pub options: Vec<TrackedOption>,
    pub line_total: Amount,
}

/// An option of an order line, as it was on the menu when the order was placed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Object)]
#[serde(rename_all = "camelCase")]
#[oai(rename_all = "camelCase")]
pub struct TrackedOption {
    pub group_id: Uuid,
    /// The group's name ("Cuisson").
    pub group: String,
    pub choice_id: Uuid,
    /// The choice's name ("saignant").
    pub choice: String,
    /// What it added to the dish's price.
    pub price_delta: Amount,
}

impl From<&OrderLine> for TrackedLine {
    fn from(line: &OrderLine) -> Self {
        // The aggregate refused any order whose line totals overflow, so this never saturates.
        let line_total = line.line_total().unwrap_or_else(|| line.unit_price.clone());
        Self {
            dish_id: line.dish_id,
            name: line.name.clone(),
            unit_price: Amount::from(&line.unit_price),
            quantity: line.quantity,
            note: line.note.clone(),
            options: line
                .options
                .iter()
                .map(|option| TrackedOption {
                    group_id: option.group_id,
                    group: option.group.clone(),
                    choice_id: option.choice_id,
                    choice: option.choice.clone(),
                    price_delta: Amount::from(&option.price_delta),
                })
                .collect(),
            line_total: Amount::from(&line_total),
        }
    }
}

/// Whether a person or the system acted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Enum)]
#[serde(rename_all = "snake_case")]
#[oai(rename_all = "snake_case")]
pub enum ActorKind {
    User,
    System,
}

/// Who caused a status change: a user (customer, chef, courier, manager) or the system
/// (a status following the kitchen or the delivery).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Object)]
#[serde(rename_all = "camelCase")]
#[oai(rename_all = "camelCase", skip_serializing_if_is_none)]
pub struct ActedBy {
    pub kind: ActorKind,
    #[oai(skip_serializing_if_is_none)]
    pub account_id: Option<Uuid>,
    /// `customer`, `chef`, `courier` or `manager`.
    #[oai(skip_serializing_if_is_none)]
    pub role: Option<String>,
}

impl From<Actor> for ActedBy {
    fn from(actor: Actor) -> Self {
        Self {
            kind: match actor {
                Actor::User { .. } => ActorKind::User,
                Actor::System => ActorKind::System,
            },
            account_id: actor.account_id(),
            role: actor.role().map(|role| role.as_str().to_owned()),
        }
    }
}

/// One entry of an order's history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Object)]
#[serde(rename_all = "camelCase")]
#[oai(rename_all = "camelCase", skip_serializing_if_is_none)]
pub struct StatusEntry {
    pub status: OrderState,
    pub at: DateTime<Utc>,
    #[oai(skip_serializing_if_is_none)]
    pub by: Option<ActedBy>,
    /// Why it was cancelled or rejected.
    #[oai(skip_serializing_if_is_none)]
    pub reason: Option<String>,
}

/// One order as its customer and the staff follow it.
#[derive(Debug, Clone, PartialEq, Object)]
#[oai(rename_all = "camelCase", skip_serializing_if_is_none)]
pub struct TrackedOrder {
    pub order_id: Uuid,
    pub customer_id: Uuid,
    pub status: OrderState,
    pub items: Vec<TrackedLine>,
    pub total: Amount,
    pub delivery_address: DeliveryAddress,
    pub contact_phone: Option<String>,
    pub placed_at: DateTime<Utc>,
    /// Every status the order went through, oldest first, starting with `placed`.
    pub history: Vec<StatusEntry>,
    /// Why it was cancelled or rejected.
    pub reason: Option<String>,
    /// The kitchen's latest quote of when the food will be ready, until it is.
    pub estimated_ready_at: Option<DateTime<Utc>>,
    /// When a scheduled order is to be ready; absent for "as soon as possible".
    #[oai(skip_serializing_if_is_none)]
    pub scheduled_for: Option<DateTime<Utc>>,
    /// Sequence of the last order event applied: a screen ignores an older copy.
    pub version: i64,
}

impl TrackedOrder {
    /// The order as it stands in the aggregate, for an answer that must not wait for the read
    /// model (right after `POST /orders`); `None` for an order never placed. The aggregate keeps
    /// no actors, so the history has no `by`.
    #[must_use]
    pub fn from_aggregate(order: &Order, version: i64) -> Option<Self> {
        Some(Self {
            order_id: order.order_id()?,
            customer_id: order.customer_id()?,
            status: OrderState::from(order.status()?),
            items: order.lines().iter().map(TrackedLine::from).collect(),
            total: Amount::from(order.total()?),
            delivery_address: DeliveryAddress::from(order.delivery_address()?),
            contact_phone: order.contact_phone().map(ToOwned::to_owned),
            placed_at: order.placed_at()?,
            history: order
                .history()
                .iter()
                .map(|change| StatusEntry {
                    status: OrderState::from(change.status),
                    at: change.at,
                    by: None,
                    reason: None,
                })
                .collect(),
            reason: None,
            estimated_ready_at: None,
            scheduled_for: order.scheduled_for(),
            version,
        })
    }
}

#[derive(FromRow)]
struct Row {
    order_id: Uuid,
    customer_id: Uuid,
    status: String,
    items: Json<Vec<TrackedLine>>,
    total_amount: i64,
    currency: String,
    delivery_address: Json<DeliveryAddress>,
    contact_phone: Option<String>,
    placed_at: DateTime<Utc>,
    history: Json<Vec<StatusEntry>>,
    reason: Option<String>,
    estimated_ready_at: Option<DateTime<Utc>>,
    scheduled_for: Option<DateTime<Utc>>,
    version: i64,
}

impl From<Row> for TrackedOrder {
    fn from(row: Row) -> Self {
        Self {
            order_id: row.order_id,
            customer_id: row.customer_id,
            status: OrderState::of(&row.status),
            items: row.items.0,
            total: Amount {
                amount: row.total_amount,
                currency: row.currency,
            },
            delivery_address: row.delivery_address.0,
            contact_phone: row.contact_phone,
            placed_at: row.placed_at,
            history: row.history.0,
            reason: row.reason,
            estimated_ready_at: row.estimated_ready_at,
            scheduled_for: row.scheduled_for,
            version: row.version,
        }
    }
}

/// A quote is shown only while the food is being prepared.
const SELECT: &str =
    "SELECT order_id, customer_id, status, items, total_amount, currency, delivery_address,
        contact_phone, placed_at, history, reason,
        CASE WHEN status IN ('placed', 'accepted', 'in_preparation') THEN e.ready_at END
            AS estimated_ready_at,
        scheduled_for, version
     FROM order_tracking LEFT JOIN order_estimates e USING (order_id)";

/// One order.
///
/// # Errors
/// A database error.
pub async fn order(pool: &PgPool, order_id: Uuid) -> Result<Option<TrackedOrder>, sqlx::Error> {
    let row: Option<Row> = sqlx::query_as(&format!("{SELECT} WHERE order_id = $1"))
        .bind(order_id)
        .fetch_optional(pool)
        .await?;
    Ok(row.map(TrackedOrder::from))
}

/// The id of the latest change recorded in the `orders` feed (0 when there is none): a
/// tracking stream that reads an order after taking this id, then follows the changes after
/// it, misses nothing.
///
/// # Errors
/// A database error.
pub async fn last_change_id(pool: &PgPool) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("SELECT coalesce(max(id), 0) FROM projection_changes WHERE feed = $1")
        .bind(FEED)
        .fetch_one(pool)
        .await
}

/// One page of orders, newest first: one customer's, or everyone's. `page` counts from 1.
/// Returns the page and the number of orders in all pages.
///
/// # Errors
/// A database error.
pub async fn page(
    pool: &PgPool,
    customer_id: Option<Uuid>,
    page: u32,
    page_size: u32,
) -> Result<(Vec<TrackedOrder>, i64), sqlx::Error> {
    let offset = i64::from(page.saturating_sub(1)) * i64::from(page_size);
    let rows: Vec<Row> = sqlx::query_as(&format!(
        "{SELECT} WHERE ($1::uuid IS NULL OR customer_id = $1)
         ORDER BY placed_at DESC, order_id DESC LIMIT $2 OFFSET $3"
    ))
    .bind(customer_id)
    .bind(i64::from(page_size))
    .bind(offset)
    .fetch_all(pool)
    .await?;
    let total: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM order_tracking WHERE ($1::uuid IS NULL OR customer_id = $1)",
    )
    .bind(customer_id)
    .fetch_one(pool)
    .await?;
    Ok((rows.into_iter().map(TrackedOrder::from).collect(), total))
}

/// One order on the manager's board.
#[derive(Debug, Clone, PartialEq, Object)]
#[oai(rename_all = "camelCase")]
pub struct BoardCard {
    pub order_id: Uuid,
    pub placed_at: DateTime<Utc>,
    pub total: Amount,
    /// Dishes in the order (sum of the quantities).
    pub dishes: u32,
}

/// One column of the board: the orders in one status, oldest first.
#[derive(Debug, Clone, PartialEq, Object)]
pub struct BoardColumn {
    pub status: OrderState,
    pub count: u32,
    pub orders: Vec<BoardCard>,
}

/// The manager's board: orders placed since `since`, by status, with the kitchen's and the
/// couriers' average times over those orders.
#[derive(Debug, Clone, PartialEq, Object)]
#[oai(rename_all = "camelCase", skip_serializing_if_is_none)]
pub struct Board {
    pub since: DateTime<Utc>,
    pub total: u32,
    /// Every status, in the order of the state machine, even when empty.
    pub columns: Vec<BoardColumn>,
    /// Average seconds from placed to ready, over the orders that became ready.
    pub average_placed_to_ready_secs: Option<f64>,
    /// Average seconds from ready to delivered, over the orders delivered.
    pub average_ready_to_delivered_secs: Option<f64>,
}

#[derive(FromRow)]
struct BoardRow {
    order_id: Uuid,
    status: String,
    items: Json<Vec<TrackedLine>>,
    total_amount: i64,
    currency: String,
    placed_at: DateTime<Utc>,
    ready_at: Option<DateTime<Utc>>,
    delivered_at: Option<DateTime<Utc>>,
}

/// The board of the orders placed since `since` (the start of the day).
///
/// # Errors
/// A database error.
pub async fn board(pool: &PgPool, since: DateTime<Utc>) -> Result<Board, sqlx::Error> {
    let rows: Vec<BoardRow> = sqlx::query_as(
        "SELECT order_id, status, items, total_amount, currency, placed_at, ready_at, delivered_at
         FROM order_tracking WHERE placed_at >= $1 ORDER BY placed_at, order_id",
    )
    .bind(since)
    .fetch_all(pool)
    .await?;
    let mut columns: Vec<BoardColumn> = OrderState::ALL
        .into_iter()
        .map(|status| BoardColumn {
            status,
            count: 0,
            orders: Vec::new(),
        })
        .collect();
    let mut to_ready = Vec::new();
    let mut to_delivered = Vec::new();
    for row in &rows {
        if let Some(ready_at) = row.ready_at {
            to_ready.push(seconds_between(row.placed_at, ready_at));
            if let Some(delivered_at) = row.delivered_at {
                to_delivered.push(seconds_between(ready_at, delivered_at));
            }
        }
        let state = OrderState::of(&row.status);
        if let Some(column) = columns.iter_mut().find(|c| c.status == state) {
            column.count += 1;
            column.orders.push(BoardCard {
                order_id: row.order_id,
                placed_at: row.placed_at,
                total: Amount {
                    amount: row.total_amount,
                    currency: row.currency.clone(),
                },
                dishes: row.items.0.iter().map(|line| line.quantity).sum(),
            });
        }
    }
    Ok(Board {
        since,
        total: u32::try_from(rows.len()).unwrap_or(u32::MAX),
        columns,
        average_placed_to_ready_secs: average(&to_ready),
        average_ready_to_delivered_secs: average(&to_delivered),
    })
}

#[allow(clippy::cast_precision_loss)] // milliseconds of one day fit an f64 exactly
fn seconds_between(from: DateTime<Utc>, to: DateTime<Utc>) -> f64 {
    (to - from).num_milliseconds() as f64 / 1000.0
}

#[allow(clippy::cast_precision_loss)] // a day's orders fit an f64 exactly
fn average(values: &[f64]) -> Option<f64> {
    (!values.is_empty()).then(|| values.iter().sum::<f64>() / values.len() as f64)
}

/// The subscription that keeps the tracking table up to date.
#[must_use]
pub fn subscription() -> Subscription {
    Subscription {
        name: NAME.to_owned(),
        source: "orders",
        aggregate_types: vec!["order"],
        handler: Arc::new(OrderTracking),
    }
}

/// The projector.
pub struct OrderTracking;

#[async_trait::async_trait]
impl EventHandler for OrderTracking {
    async fn handle(
        &self,
        event: &ReceivedEvent,
        tx: &mut PgConnection,
    ) -> Result<(), HandlerError> {
        let envelope = &event.envelope;
        let order_id: Uuid = envelope.aggregate_uuid("order")?;
        let order_event: OrderEvent = envelope
            .decode()
            .map_err(|e| HandlerError::Permanent(format!("not an order event: {e}")))?;
        // Who issued the command, from the event's metadata (absent in hand-made events).
        let issued_by = envelope
            .metadata
            .get("actor")
            .and_then(|actor| serde_json::from_str::<Actor>(actor).ok());
        let version = envelope.sequence;
        match order_event {
            OrderEvent::OrderPlaced {
                customer_id,
                lines,
                delivery_address,
                contact_phone,
                total,
                placed_at,
                scheduled_for,
                ..
            } => {
                let items: Vec<TrackedLine> = lines.iter().map(TrackedLine::from).collect();
                let history = vec![StatusEntry {
                    status: OrderState::Placed,
                    at: placed_at,
                    by: issued_by.map(ActedBy::from),
                    reason: None,
                }];
                sqlx::query(
                    "INSERT INTO order_tracking (order_id, customer_id, status, items, total_amount, currency,
                        delivery_address, contact_phone, placed_at, history, updated_at, version,
                        scheduled_for)
                     VALUES ($1, $2, 'placed', $3, $4, $5, $6, $7, $8, $9, $8, $10, $11)
                     ON CONFLICT (order_id) DO NOTHING",
                )
                .bind(order_id)
                .bind(customer_id)
                .bind(Json(items))
                .bind(total.amount)
                .bind(total.currency)
                .bind(Json(DeliveryAddress::from(&delivery_address)))
                .bind(contact_phone)
                .bind(placed_at)
                .bind(Json(history))
                .bind(version)
                .bind(scheduled_for)
                .execute(&mut *tx)
                .await?;
            }
            OrderEvent::OrderStepRecordedLate { status, at } => {
                record_late_step(
                    tx,
                    order_id,
                    StatusEntry {
                        status: OrderState::from(status),
                        at,
                        by: issued_by.map(ActedBy::from),
                        reason: None,
                    },
                    version,
                )
                .await?;
            }
            change => {
                let Some((status, by, reason)) = status_change(&change, issued_by) else {
                    return Ok(());
                };
                let at = change.occurred_at();
                let entry = StatusEntry {
                    status,
                    at,
                    by: by.map(ActedBy::from),
                    reason: reason.clone(),
                };
                let updated = sqlx::query(
                    "UPDATE order_tracking SET
                        status = $2,
                        history = history || $3,
                        reason = coalesce($4, reason),
                        ready_at = CASE WHEN $2 = 'ready' THEN $5 ELSE ready_at END,
                        delivered_at = CASE WHEN $2 = 'delivered' THEN $5 ELSE delivered_at END,
                        updated_at = $5,
                        version = $6
                     WHERE order_id = $1",
                )
                .bind(order_id)
                .bind(OrderStatus::from(status).as_str())
                .bind(Json(vec![entry]))
                .bind(reason)
                .bind(at)
                .bind(version)
                .execute(&mut *tx)
                .await?;
                if updated.rows_affected() == 0 {
                    return Err(HandlerError::Permanent(format!(
                        "no order {order_id} to track"
                    )));
                }
            }
        }
        feed::record(tx, FEED, &order_id.to_string()).await?;
        Ok(())
    }
}

/// How to rebuild order tracking from the orders service's event store. The kitchen's
/// estimates live beside it (`order_estimates`) and are kept as they are.
#[must_use]
pub fn spec() -> crate::rebuild::ProjectionSpec {
    crate::rebuild::ProjectionSpec {
        name: NAME,
        service: "orders",
        aggregate_types: &["order"],
        tables: &["order_tracking"],
        migrations: MIGRATIONS,
        handler: Arc::new(OrderTracking),
    }
}

/// The subscription that adds the kitchen's estimates to the tracking table.
#[must_use]
pub fn estimates_subscription() -> Subscription {
    Subscription {
        name: ESTIMATES_NAME.to_owned(),
        source: "kitchen",
        aggregate_types: vec!["estimate"],
        handler: Arc::new(KitchenEstimates),
    }
}

/// Records the kitchen's latest quote (`TicketEstimated`) of each order; reads show it only
/// while the order is being prepared, so a quote trailing the order's `ready` changes nothing.
pub struct KitchenEstimates;

#[async_trait::async_trait]
impl EventHandler for KitchenEstimates {
    async fn handle(
        &self,
        event: &ReceivedEvent,
        tx: &mut PgConnection,
    ) -> Result<(), HandlerError> {
        let envelope = &event.envelope;
        let EstimateEvent::TicketEstimated {
            order_id, ready_at, ..
        } = envelope
            .decode()
            .map_err(|e| HandlerError::Permanent(format!("not an estimate event: {e}")))?;
        sqlx::query(
            "INSERT INTO order_estimates (order_id, ready_at) VALUES ($1, $2)
             ON CONFLICT (order_id) DO UPDATE SET ready_at = EXCLUDED.ready_at",
        )
        .bind(order_id)
        .bind(ready_at)
        .execute(&mut *tx)
        .await?;
        feed::record(tx, FEED, &order_id.to_string()).await?;
        Ok(())
    }
}

/// Puts a step heard late in its place in the order's history (as the aggregate does), and
/// its time in `ready_at` if it is the kitchen's `ready`. The status stays where it is.
async fn record_late_step(
    tx: &mut PgConnection,
    order_id: Uuid,
    entry: StatusEntry,
    version: i64,
) -> Result<(), HandlerError> {
    let history: Option<Json<Vec<StatusEntry>>> =
        sqlx::query_scalar("SELECT history FROM order_tracking WHERE order_id = $1")
            .bind(order_id)
            .fetch_optional(&mut *tx)
            .await?;
    let Some(Json(mut history)) = history else {
        return Err(HandlerError::Permanent(format!(
            "no order {order_id} to track"
        )));
    };
    let (status, at) = (OrderStatus::from(entry.status), entry.at);
    let place = status.place_in(history.iter().map(|e| OrderStatus::from(e.status)));
    history.insert(place, entry);
    sqlx::query(
        "UPDATE order_tracking SET
            history = $2,
            ready_at = CASE WHEN $3 = 'ready' THEN $4 ELSE ready_at END,
            version = $5
         WHERE order_id = $1",
    )
    .bind(order_id)
    .bind(Json(history))
    .bind(status.as_str())
    .bind(at)
    .bind(version)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// The status an event moves the order to, who moved it and why; `None` for the events that
/// move no status (`OrderPlaced`, `OrderStepRecordedLate`).
/// A cancellation names its actor in the event; the others take the command's actor.
fn status_change(
    event: &OrderEvent,
    issued_by: Option<Actor>,
) -> Option<(OrderState, Option<Actor>, Option<String>)> {
    Some(match event {
        OrderEvent::OrderPlaced { .. } | OrderEvent::OrderStepRecordedLate { .. } => return None,
        OrderEvent::OrderAccepted { .. } => (OrderState::Accepted, issued_by, None),
        OrderEvent::OrderInPreparation { .. } => (OrderState::InPreparation, issued_by, None),
        OrderEvent::OrderReady { .. } => (OrderState::Ready, issued_by, None),
        OrderEvent::OrderOutForDelivery { .. } => (OrderState::OutForDelivery, issued_by, None),
        OrderEvent::OrderDelivered { .. } => (OrderState::Delivered, issued_by, None),
        OrderEvent::OrderCancelled { by, reason, .. } => {
            (OrderState::Cancelled, Some(*by), reason.clone())
        }
        OrderEvent::OrderRejected { reason, .. } => {
            (OrderState::Rejected, issued_by, Some(reason.clone()))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_are_spelled_as_the_domain_spells_statuses() {
        for state in OrderState::ALL {
            let status = OrderStatus::from(state);
            assert_eq!(OrderState::from(status), state);
            assert_eq!(OrderState::of(status.as_str()), state);
            assert_eq!(
                serde_json::to_value(state).expect("serializes"),
                serde_json::json!(status.as_str())
            );
        }
    }

    #[test]
    fn averages_ignore_empty_sets() {
        assert_eq!(average(&[]), None);
        assert_eq!(average(&[60.0, 120.0]), Some(90.0));
    }
}
