//! The couriers read model (delivery service): the fleet as managers see it (`GET /couriers`)
//! and as dispatch reads it (who is active and on shift), plus each courier's last known
//! position.
//!
//! The fleet is fed by the delivery service's own `delivery.courier.*` events. Positions are
//! not events: couriers send several per minute, and an event per ping would bloat the event
//! store with facts nobody audits. Only the last position per courier is kept, in
//! `courier_positions`, written directly by `POST /couriers/me/position` through
//! [`record_position`], which also pushes the change to the live delivery streams of the
//! courier's deliveries.

use std::sync::Arc;

use brigade_domain::delivery::{CourierEvent, Vehicle};
use brigade_nats::{EventHandler, HandlerError, Migration, ReceivedEvent, Subscription};
use chrono::{DateTime, Utc};
use poem_openapi::{Enum, Object};
use serde::{Deserialize, Serialize};
use sqlx::{FromRow, PgConnection, PgPool};
use uuid::Uuid;

use crate::feed;

/// The durable consumer name of this projection.
pub const NAME: &str = "couriers";
/// The feed of fleet changes; keys are courier ids.
pub const FEED: &str = "couriers";

/// Schema of the read model.
pub const MIGRATIONS: &[Migration] = &[Migration {
    name: "0300_couriers",
    sql: r"
CREATE TABLE couriers (
    courier_id uuid        PRIMARY KEY,
    account_id uuid,
    name       text        NOT NULL,
    phone      text,
    vehicle    text        NOT NULL,
    active     boolean     NOT NULL,
    on_shift   boolean     NOT NULL,
    removed    boolean     NOT NULL DEFAULT false,
    hired_at   timestamptz NOT NULL,
    version    bigint      NOT NULL
);
CREATE INDEX couriers_on_shift ON couriers (courier_id) WHERE on_shift AND active AND NOT removed;
CREATE TABLE courier_positions (
    courier_id  uuid             PRIMARY KEY,
    lat         double precision NOT NULL,
    lon         double precision NOT NULL,
    recorded_at timestamptz      NOT NULL
);
",
}];

/// How a courier gets around; sets the speed used for ETAs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Enum)]
#[serde(rename_all = "snake_case")]
#[oai(rename_all = "snake_case")]
pub enum VehicleKind {
    Bike,
    Scooter,
    Car,
}

impl From<Vehicle> for VehicleKind {
    fn from(vehicle: Vehicle) -> Self {
        match vehicle {
            Vehicle::Bike => Self::Bike,
            Vehicle::Scooter => Self::Scooter,
            Vehicle::Car => Self::Car,
        }
    }
}

impl From<VehicleKind> for Vehicle {
    fn from(vehicle: VehicleKind) -> Self {
        match vehicle {
            VehicleKind::Bike => Self::Bike,
            VehicleKind::Scooter => Self::Scooter,
            VehicleKind::Car => Self::Car,
        }
    }
}

impl VehicleKind {
    fn parse(text: &str) -> Self {
        match text {
            "scooter" => Self::Scooter,
            "car" => Self::Car,
            _ => Self::Bike,
        }
    }
}

/// Where a courier was last seen.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Object)]
#[serde(rename_all = "camelCase")]
#[oai(rename_all = "camelCase")]
pub struct Position {
    pub lat: f64,
    pub lon: f64,
    /// When the courier's phone sent it.
    pub at: DateTime<Utc>,
}

/// One courier of the fleet.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Object)]
#[serde(rename_all = "camelCase")]
#[oai(rename_all = "camelCase", skip_serializing_if_is_none)]
pub struct CourierView {
    pub id: Uuid,
    /// The courier's sign-in account (then equal to `id`), if they have one.
    pub account_id: Option<Uuid>,
    pub name: String,
    pub phone: Option<String>,
    pub vehicle: VehicleKind,
    /// Works for the restaurant; an inactive courier cannot start a shift.
    pub active: bool,
    /// Working now: dispatch may offer them deliveries.
    pub on_shift: bool,
    pub hired_at: DateTime<Utc>,
    /// The last position sent, if any.
    pub position: Option<Position>,
    /// Sequence of the last courier event applied.
    pub version: i64,
}

#[derive(FromRow)]
struct Row {
    courier_id: Uuid,
    account_id: Option<Uuid>,
    name: String,
    phone: Option<String>,
    vehicle: String,
    active: bool,
    on_shift: bool,
    hired_at: DateTime<Utc>,
    version: i64,
    lat: Option<f64>,
    lon: Option<f64>,
    recorded_at: Option<DateTime<Utc>>,
}

impl From<Row> for CourierView {
    fn from(row: Row) -> Self {
        let position = match (row.lat, row.lon, row.recorded_at) {
            (Some(lat), Some(lon), Some(at)) => Some(Position { lat, lon, at }),
            _ => None,
        };
        Self {
            id: row.courier_id,
            account_id: row.account_id,
            name: row.name,
            phone: row.phone,
            vehicle: VehicleKind::parse(&row.vehicle),
            active: row.active,
            on_shift: row.on_shift,
            hired_at: row.hired_at,
            position,
            version: row.version,
        }
    }
}

const SELECT: &str =
    "SELECT c.courier_id, c.account_id, c.name, c.phone, c.vehicle, c.active, c.on_shift,
        c.hired_at, c.version, p.lat, p.lon, p.recorded_at
   FROM couriers c LEFT JOIN courier_positions p ON p.courier_id = c.courier_id";

/// Every courier not removed, by name.
///
/// # Errors
/// A database error.
pub async fn all(pool: &PgPool) -> Result<Vec<CourierView>, sqlx::Error> {
    let rows: Vec<Row> = sqlx::query_as(&format!(
        "{SELECT} WHERE NOT c.removed ORDER BY c.name, c.courier_id"
    ))
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().map(CourierView::from).collect())
}

/// One courier, unless removed.
///
/// # Errors
/// A database error.
pub async fn courier(pool: &PgPool, courier_id: Uuid) -> Result<Option<CourierView>, sqlx::Error> {
    let row: Option<Row> = sqlx::query_as(&format!(
        "{SELECT} WHERE c.courier_id = $1 AND NOT c.removed"
    ))
    .bind(courier_id)
    .fetch_optional(pool)
    .await?;
    Ok(row.map(CourierView::from))
}

/// Couriers dispatch may offer a delivery to: active and on shift.
///
/// # Errors
/// A database error.
pub async fn on_shift(pool: &PgPool) -> Result<Vec<CourierView>, sqlx::Error> {
    let rows: Vec<Row> = sqlx::query_as(&format!(
        "{SELECT} WHERE c.on_shift AND c.active AND NOT c.removed ORDER BY c.courier_id"
    ))
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().map(CourierView::from).collect())
}

/// Stores a courier's last position; an older ping arriving late never overwrites a newer
/// one. The caller then records a feed change for each delivery the courier carries
/// ([`crate::live_deliveries::carried_by`]), so that customers following them see the courier
/// move.
///
/// # Errors
/// A database error.
pub async fn record_position(
    tx: &mut PgConnection,
    courier_id: Uuid,
    position: Position,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO courier_positions (courier_id, lat, lon, recorded_at) VALUES ($1, $2, $3, $4)
         ON CONFLICT (courier_id) DO UPDATE SET lat = EXCLUDED.lat, lon = EXCLUDED.lon,
             recorded_at = EXCLUDED.recorded_at
         WHERE courier_positions.recorded_at <= EXCLUDED.recorded_at",
    )
    .bind(courier_id)
    .bind(position.lat)
    .bind(position.lon)
    .bind(position.at)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// The subscription that keeps the fleet up to date.
#[must_use]
pub fn subscription() -> Subscription {
    Subscription {
        name: NAME.to_owned(),
        source: "delivery",
        aggregate_types: vec!["courier"],
        handler: Arc::new(Couriers),
    }
}

/// The projector.
pub struct Couriers;

#[async_trait::async_trait]
impl EventHandler for Couriers {
    async fn handle(
        &self,
        event: &ReceivedEvent,
        tx: &mut PgConnection,
    ) -> Result<(), HandlerError> {
        let envelope = &event.envelope;
        let courier_id: Uuid = envelope.aggregate_uuid("courier")?;
        let courier_event: CourierEvent = envelope
            .decode()
            .map_err(|e| HandlerError::Permanent(format!("not a courier event: {e}")))?;
        let version = envelope.sequence;
        match courier_event {
            CourierEvent::CourierHired {
                account_id,
                name,
                phone,
                vehicle,
                at,
                ..
            } => {
                sqlx::query(
                    "INSERT INTO couriers (courier_id, account_id, name, phone, vehicle, active, on_shift,
                                           hired_at, version)
                     VALUES ($1, $2, $3, $4, $5, true, false, $6, $7) ON CONFLICT (courier_id) DO NOTHING",
                )
                .bind(courier_id)
                .bind(account_id)
                .bind(name)
                .bind(phone)
                .bind(vehicle.as_str())
                .bind(at)
                .bind(version)
                .execute(&mut *tx)
                .await?;
            }
            CourierEvent::CourierUpdated {
                name,
                phone,
                vehicle,
                active,
                ..
            } => {
                // `phone: Some("")` is a removal; `None` leaves each column as it is.
                sqlx::query(
                    "UPDATE couriers SET
                        name = coalesce($2, name),
                        phone = CASE WHEN $3::text IS NULL THEN phone ELSE nullif($3, '') END,
                        vehicle = coalesce($4, vehicle),
                        active = coalesce($5, active),
                        version = $6
                     WHERE courier_id = $1",
                )
                .bind(courier_id)
                .bind(name)
                .bind(phone)
                .bind(vehicle.map(Vehicle::as_str))
                .bind(active)
                .bind(version)
                .execute(&mut *tx)
                .await?;
            }
            CourierEvent::CourierOnShift { .. } => {
                set(tx, courier_id, "on_shift = true", version).await?
            }
            CourierEvent::CourierOffShift { .. } => {
                set(tx, courier_id, "on_shift = false", version).await?
            }
            CourierEvent::CourierRemoved { .. } => {
                set(tx, courier_id, "removed = true, on_shift = false", version).await?;
            }
        }
        feed::record(tx, FEED, &courier_id.to_string()).await?;
        Ok(())
    }
}

async fn set(
    tx: &mut PgConnection,
    courier_id: Uuid,
    assignments: &str,
    version: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(&format!(
        "UPDATE couriers SET {assignments}, version = $2 WHERE courier_id = $1"
    ))
    .bind(courier_id)
    .bind(version)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// How to rebuild the fleet from the delivery service's event store. Positions are not events
/// and not part of the rebuild: they stay as they are.
#[must_use]
pub fn spec() -> crate::rebuild::ProjectionSpec {
    crate::rebuild::ProjectionSpec {
        name: NAME,
        service: "delivery",
        aggregate_types: &["courier"],
        tables: &["couriers"],
        migrations: MIGRATIONS,
        handler: Arc::new(Couriers),
    }
}
