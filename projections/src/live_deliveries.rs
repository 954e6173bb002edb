//! The live deliveries read model (delivery service): one row per order's delivery, for the
//! deliveries screen (`GET /deliveries`), a delivery's page and its live stream
//! (`GET /deliveries/{orderId}`, `…/stream`), and the dispatch queue.
//!
//! Fed by the delivery service's own `delivery.delivery.*` events, like the kitchen queue is
//! by the kitchen's. Reads join the [`couriers`](crate::couriers) read model (same database)
//! for the courier's name, vehicle and last position; the ETA is the service's to compute.

use std::sync::Arc;

use brigade_domain::delivery::DeliveryEvent;
use brigade_domain::Address;
use brigade_nats::{EventHandler, HandlerError, Migration, ReceivedEvent, Subscription};
use chrono::{DateTime, Utc};
use poem_openapi::{Enum, Object};
use serde::{Deserialize, Serialize};
use sqlx::types::Json;
use sqlx::{FromRow, PgConnection, PgPool};
use uuid::Uuid;

use crate::couriers::{Position, VehicleKind};
use crate::feed;

/// The durable consumer name of this projection.
pub const NAME: &str = "live-deliveries";
/// The feed delivery pages follow; keys are order ids. Position pings are recorded in it too.
pub const FEED: &str = "deliveries";

/// Schema of the read model.
pub const MIGRATIONS: &[Migration] = &[Migration {
    name: "0310_live_deliveries",
    sql: r"
CREATE TABLE live_deliveries (
    order_id       uuid        PRIMARY KEY,
    customer_id    uuid        NOT NULL,
    status         text        NOT NULL,
    courier_id     uuid,
    address        jsonb       NOT NULL,
    contact_phone  text,
    requested_at   timestamptz NOT NULL,
    ready_at       timestamptz,
    assigned_at    timestamptz,
    picked_up_at   timestamptz,
    finished_at    timestamptz,
    received_by    text,
    note           text,
    failure_reason text,
    version        bigint      NOT NULL
);
CREATE INDEX live_deliveries_in_progress ON live_deliveries (requested_at)
    WHERE status IN ('requested', 'ready_for_pickup', 'assigned', 'picked_up');
CREATE INDEX live_deliveries_by_courier ON live_deliveries (courier_id)
    WHERE status IN ('assigned', 'picked_up');
",
}];

/// Where a delivery stands (API.md's spelling).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Enum)]
#[serde(rename_all = "snake_case")]
#[oai(rename_all = "snake_case")]
pub enum DeliveryState {
    Requested,
    ReadyForPickup,
    Assigned,
    PickedUp,
    Delivered,
    Failed,
    Cancelled,
}

impl DeliveryState {
    /// The stored (and serialized) spelling.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Requested => "requested",
            Self::ReadyForPickup => "ready_for_pickup",
            Self::Assigned => "assigned",
            Self::PickedUp => "picked_up",
            Self::Delivered => "delivered",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
        }
    }

    fn parse(text: &str) -> Self {
        match text {
            "ready_for_pickup" => Self::ReadyForPickup,
            "assigned" => Self::Assigned,
            "picked_up" => Self::PickedUp,
            "delivered" => Self::Delivered,
            "failed" => Self::Failed,
            "cancelled" => Self::Cancelled,
            _ => Self::Requested,
        }
    }

    /// Delivered, failed or cancelled.
    #[must_use]
    pub fn is_finished(self) -> bool {
        matches!(self, Self::Delivered | Self::Failed | Self::Cancelled)
    }
}

/// Where the food goes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Object)]
#[serde(rename_all = "camelCase")]
#[oai(rename_all = "camelCase", skip_serializing_if_is_none)]
pub struct DeliveryAddress {
    pub street: String,
    pub city: String,
    pub postal_code: String,
    pub lat: Option<f64>,
    pub lon: Option<f64>,
}

impl From<Address> for DeliveryAddress {
    fn from(address: Address) -> Self {
        Self {
            street: address.street,
            city: address.city,
            postal_code: address.postal_code,
            lat: address.lat,
            lon: address.lon,
        }
    }
}

/// The courier carrying a delivery.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Object)]
#[serde(rename_all = "camelCase")]
#[oai(rename_all = "camelCase")]
pub struct CourierSummary {
    pub id: Uuid,
    pub name: String,
    pub vehicle: VehicleKind,
}

/// One delivery, as screens show it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Object)]
#[serde(rename_all = "camelCase")]
#[oai(rename_all = "camelCase", skip_serializing_if_is_none)]
pub struct LiveDelivery {
    pub order_id: Uuid,
    pub status: DeliveryState,
    pub customer_id: Uuid,
    pub address: DeliveryAddress,
    pub contact_phone: Option<String>,
    /// The assigned courier (the last one, once finished).
    pub courier: Option<CourierSummary>,
    /// The courier's last known position, while the delivery is assigned or picked up.
    pub courier_position: Option<Position>,
    /// Expected arrival at the customer's door, while assigned or picked up, when the courier's
    /// position and the address's coordinates are known.
    pub eta: Option<DateTime<Utc>>,
    pub requested_at: DateTime<Utc>,
    /// When the food became ready at the pass: the dispatch queue's order.
    pub ready_at: Option<DateTime<Utc>>,
    pub assigned_at: Option<DateTime<Utc>>,
    pub picked_up_at: Option<DateTime<Utc>>,
    /// When it was delivered, failed or cancelled.
    pub finished_at: Option<DateTime<Utc>>,
    /// Proof of delivery: who took the food.
    pub received_by: Option<String>,
    pub note: Option<String>,
    /// Why the courier could not deliver.
    pub failure_reason: Option<String>,
    /// Sequence of the last delivery event applied: a screen ignores an older copy.
    pub version: i64,
}

#[derive(FromRow)]
struct Row {
    order_id: Uuid,
    customer_id: Uuid,
    status: String,
    courier_id: Option<Uuid>,
    courier_name: Option<String>,
    courier_vehicle: Option<String>,
    lat: Option<f64>,
    lon: Option<f64>,
    position_at: Option<DateTime<Utc>>,
    address: Json<Address>,
    contact_phone: Option<String>,
    requested_at: DateTime<Utc>,
    ready_at: Option<DateTime<Utc>>,
    assigned_at: Option<DateTime<Utc>>,
    picked_up_at: Option<DateTime<Utc>>,
    finished_at: Option<DateTime<Utc>>,
    received_by: Option<String>,
    note: Option<String>,
    failure_reason: Option<String>,
    version: i64,
}

impl From<Row> for LiveDelivery {
    fn from(row: Row) -> Self {
        let courier = row.courier_id.map(|id| CourierSummary {
            id,
            // A courier the fleet projection has not caught up with yet (or removed since).
            name: row.courier_name.unwrap_or_default(),
            vehicle: row
                .courier_vehicle
                .as_deref()
                .map_or(VehicleKind::Bike, |v| match v {
                    "scooter" => VehicleKind::Scooter,
                    "car" => VehicleKind::Car,
                    _ => VehicleKind::Bike,
                }),
        });
        let courier_position = match (row.lat, row.lon, row.position_at) {
            (Some(lat), Some(lon), Some(at)) => Some(Position { lat, lon, at }),
            _ => None,
        };
        Self {
            order_id: row.order_id,
            status: DeliveryState::parse(&row.status),
            customer_id: row.customer_id,
            address: row.address.0.into(),
            contact_phone: row.contact_phone,
            courier,
            courier_position,
            eta: None,
            requested_at: row.requested_at,
            ready_at: row.ready_at,
            assigned_at: row.assigned_at,
            picked_up_at: row.picked_up_at,
            finished_at: row.finished_at,
            received_by: row.received_by,
            note: row.note,
            failure_reason: row.failure_reason,
            version: row.version,
        }
    }
}

/// The position is only shown while a courier is on the way: a finished delivery does not
/// keep telling the customer where its courier went next.
const SELECT: &str = "SELECT d.order_id, d.customer_id, d.status, d.courier_id,
        c.name AS courier_name, c.vehicle AS courier_vehicle,
        p.lat, p.lon, p.recorded_at AS position_at,
        d.address, d.contact_phone, d.requested_at, d.ready_at, d.assigned_at, d.picked_up_at,
        d.finished_at, d.received_by, d.note, d.failure_reason, d.version
   FROM live_deliveries d
   LEFT JOIN couriers c ON c.courier_id = d.courier_id
   LEFT JOIN courier_positions p ON p.courier_id = d.courier_id
                                AND d.status IN ('assigned', 'picked_up')";

const IN_PROGRESS: &str = "d.status IN ('requested', 'ready_for_pickup', 'assigned', 'picked_up')";

/// Deliveries in progress (not delivered, failed or cancelled), oldest order first; only
/// those of `courier` when given.
///
/// # Errors
/// A database error.
pub async fn in_progress(
    pool: &PgPool,
    courier: Option<Uuid>,
) -> Result<Vec<LiveDelivery>, sqlx::Error> {
    let rows: Vec<Row> = match courier {
        Some(courier_id) => {
            sqlx::query_as(&format!(
                "{SELECT} WHERE {IN_PROGRESS} AND d.courier_id = $1 ORDER BY d.requested_at, d.order_id"
            ))
            .bind(courier_id)
            .fetch_all(pool)
            .await?
        }
        None => {
            sqlx::query_as(&format!(
                "{SELECT} WHERE {IN_PROGRESS} ORDER BY d.requested_at, d.order_id"
            ))
            .fetch_all(pool)
            .await?
        }
    };
    Ok(rows.into_iter().map(LiveDelivery::from).collect())
}

/// The dispatch queue: deliveries ready for pickup with no courier, longest waiting first.
///
/// # Errors
/// A database error.
pub async fn waiting_for_courier(
    pool: &PgPool,
    limit: i64,
) -> Result<Vec<LiveDelivery>, sqlx::Error> {
    let rows: Vec<Row> = sqlx::query_as(&format!(
        "{SELECT} WHERE d.status = 'ready_for_pickup' ORDER BY d.ready_at, d.order_id LIMIT $1"
    ))
    .bind(limit)
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().map(LiveDelivery::from).collect())
}

/// One delivery, whatever its state.
///
/// # Errors
/// A database error.
pub async fn delivery(pool: &PgPool, order_id: Uuid) -> Result<Option<LiveDelivery>, sqlx::Error> {
    let row: Option<Row> = sqlx::query_as(&format!("{SELECT} WHERE d.order_id = $1"))
        .bind(order_id)
        .fetch_optional(pool)
        .await?;
    Ok(row.map(LiveDelivery::from))
}

/// The deliveries a courier is carrying now (assigned or picked up): those whose pages a new
/// position of theirs changes.
///
/// # Errors
/// A database error.
pub async fn carried_by(tx: &mut PgConnection, courier_id: Uuid) -> Result<Vec<Uuid>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT order_id FROM live_deliveries
          WHERE courier_id = $1 AND status IN ('assigned', 'picked_up') ORDER BY order_id",
    )
    .bind(courier_id)
    .fetch_all(&mut *tx)
    .await
}

/// The subscription that keeps the deliveries up to date.
#[must_use]
pub fn subscription() -> Subscription {
    Subscription {
        name: NAME.to_owned(),
        source: "delivery",
        aggregate_types: vec!["delivery"],
        handler: Arc::new(LiveDeliveries),
    }
}

/// The projector.
pub struct LiveDeliveries;

#[async_trait::async_trait]
impl EventHandler for LiveDeliveries {
    async fn handle(
        &self,
        event: &ReceivedEvent,
        tx: &mut PgConnection,
    ) -> Result<(), HandlerError> {
        let envelope = &event.envelope;
        let order_id: Uuid = envelope.aggregate_uuid("delivery")?;
        let delivery_event: DeliveryEvent = envelope
            .decode()
            .map_err(|e| HandlerError::Permanent(format!("not a delivery event: {e}")))?;
        let version = envelope.sequence;
        match delivery_event {
            DeliveryEvent::DeliveryRequested {
                customer_id,
                address,
                contact_phone,
                at,
                ..
            } => {
                sqlx::query(
                    "INSERT INTO live_deliveries (order_id, customer_id, status, address, contact_phone,
                                                  requested_at, version)
                     VALUES ($1, $2, 'requested', $3, $4, $5, $6) ON CONFLICT (order_id) DO NOTHING",
                )
                .bind(order_id)
                .bind(customer_id)
                .bind(Json(address))
                .bind(contact_phone)
                .bind(at)
                .bind(version)
                .execute(&mut *tx)
                .await?;
            }
            DeliveryEvent::DeliveryReadyForPickup { at } => {
                apply(
                    tx,
                    order_id,
                    version,
                    // A courier sent ahead of readiness stays assigned.
                    "status = CASE WHEN status = 'requested' THEN 'ready_for_pickup' ELSE status END,
                     ready_at = $3",
                    |q| q.bind(at),
                )
                .await?;
            }
            DeliveryEvent::CourierAssigned { courier_id, at } => {
                apply(
                    tx,
                    order_id,
                    version,
                    "status = 'assigned', courier_id = $3, assigned_at = $4",
                    |q| q.bind(courier_id).bind(at),
                )
                .await?;
            }
            DeliveryEvent::CourierUnassigned { .. } => {
                apply(
                    tx,
                    order_id,
                    version,
                    // Unassigned before the food is ready: it is still only requested.
                    "status = CASE WHEN ready_at IS NULL THEN 'requested' ELSE 'ready_for_pickup' END,
                     courier_id = NULL, assigned_at = NULL",
                    |q| q,
                )
                .await?;
            }
            DeliveryEvent::DeliveryPickedUp { courier_id, at } => {
                apply(
                    tx,
                    order_id,
                    version,
                    "status = 'picked_up', courier_id = $3, picked_up_at = $4",
                    |q| q.bind(courier_id).bind(at),
                )
                .await?;
            }
            DeliveryEvent::DeliveryDelivered {
                received_by,
                note,
                at,
                ..
            } => {
                apply(
                    tx,
                    order_id,
                    version,
                    "status = 'delivered', finished_at = $3, received_by = $4, note = $5",
                    |q| q.bind(at).bind(received_by).bind(note),
                )
                .await?;
            }
            DeliveryEvent::DeliveryFailed { reason, at, .. } => {
                apply(
                    tx,
                    order_id,
                    version,
                    "status = 'failed', finished_at = $3, failure_reason = $4",
                    |q| q.bind(at).bind(reason),
                )
                .await?;
            }
            DeliveryEvent::DeliveryCancelled { at, .. } => {
                apply(
                    tx,
                    order_id,
                    version,
                    "status = 'cancelled', finished_at = $3",
                    |q| q.bind(at),
                )
                .await?;
            }
            // The route is the delivery service's to show; the page follows the change.
            DeliveryEvent::DeliveryRouteRecorded { .. } => {
                sqlx::query("UPDATE live_deliveries SET version = $2 WHERE order_id = $1")
                    .bind(order_id)
                    .bind(version)
                    .execute(&mut *tx)
                    .await?;
            }
        }
        feed::record(tx, FEED, &order_id.to_string()).await?;
        Ok(())
    }
}

type Query<'q> = sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>;

/// Runs `UPDATE live_deliveries SET {assignments}, version = $2 WHERE order_id = $1`, with
/// `bind` adding the parameters from `$3` on.
async fn apply(
    tx: &mut PgConnection,
    order_id: Uuid,
    version: i64,
    assignments: &str,
    bind: impl for<'q> FnOnce(Query<'q>) -> Query<'q>,
) -> Result<(), sqlx::Error> {
    let sql = format!("UPDATE live_deliveries SET {assignments}, version = $2 WHERE order_id = $1");
    bind(sqlx::query(&sql).bind(order_id).bind(version))
        .execute(&mut *tx)
        .await?;
    Ok(())
}

/// How to rebuild the live deliveries from the delivery service's event store.
#[must_use]
pub fn spec() -> crate::rebuild::ProjectionSpec {
    crate::rebuild::ProjectionSpec {
        name: NAME,
        service: "delivery",
        aggregate_types: &["delivery"],
        tables: &["live_deliveries"],
        migrations: MIGRATIONS,
        handler: Arc::new(LiveDeliveries),
    }
}
