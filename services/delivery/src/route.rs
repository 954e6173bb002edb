//! Route sampling: the way each courier took with the food, kept on the delivery.
//!
//! A courier's positions go to the fast store (`courier_positions`, the last one only) and
//! never become events one by one. While a courier carries food (`picked_up`), each position
//! that is due ([`RoutePoint::is_due_after`]: 30 s or 100 m after the last sample) becomes a
//! *sample* in `delivery_route_samples`, in the transaction that stores the position. Samples
//! are recorded on the delivery (`RecordRoute` → `DeliveryRouteRecorded`) in batches of
//! [`DeliveryConfig::route_batch`](crate::DeliveryConfig), and whatever is left at the latest
//! just before the handover or the failure ([`flush`]), with the courier's very last position.
//!
//! A batch recorded twice (a crash between the event and the `recorded` mark, two pings
//! flushing at once) changes nothing: the aggregate leaves out points not after its last one.

use brigade_domain::delivery::{Delivery, DeliveryCommand, DeliveryError, RoutePoint};
use brigade_nats::store::{self, CommandMetadata, EventStore};
use brigade_projections::couriers::Position;
use chrono::{DateTime, Utc};
use cqrs_es::AggregateError;
use poem_openapi::Object;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

/// One point of a delivery's route, as the API shows it.
#[derive(Debug, Clone, Copy, PartialEq, Object, serde::Serialize, serde::Deserialize)]
#[oai(rename_all = "camelCase")]
#[serde(rename_all = "camelCase")]
pub struct RoutePointView {
    pub lat: f64,
    pub lon: f64,
    pub at: DateTime<Utc>,
}

impl From<RoutePoint> for RoutePointView {
    fn from(point: RoutePoint) -> Self {
        Self {
            lat: point.lat,
            lon: point.lon,
            at: point.at,
        }
    }
}

/// Samples `position` into the route of every delivery `courier_id` carries, when due. Runs
/// in the transaction that stores the position. Returns the deliveries with at least `batch`
/// samples waiting to be recorded.
///
/// # Errors
/// A database error.
pub async fn sample(
    tx: &mut PgConnection,
    courier_id: Uuid,
    position: Position,
    batch: usize,
) -> Result<Vec<Uuid>, sqlx::Error> {
    let carried: Vec<Carried> = sqlx::query_as(
        "SELECT d.order_id, s.lat, s.lon, s.taken_at
           FROM live_deliveries d
           LEFT JOIN LATERAL (SELECT lat, lon, taken_at FROM delivery_route_samples
                               WHERE order_id = d.order_id ORDER BY taken_at DESC LIMIT 1) s ON true
          WHERE d.courier_id = $1 AND d.status = 'picked_up'",
    )
    .bind(courier_id)
    .fetch_all(&mut *tx)
    .await?;
    let point = RoutePoint {
        lat: position.lat,
        lon: position.lon,
        at: position.at,
    };
    let mut full = Vec::new();
    for Carried {
        order_id,
        lat,
        lon,
        taken_at,
    } in carried
    {
        let due = match (lat, lon, taken_at) {
            (Some(lat), Some(lon), Some(at)) => point.is_due_after(&RoutePoint { lat, lon, at }),
            _ => true,
        };
        if !due {
            continue;
        }
        insert(tx, order_id, courier_id, point).await?;
        let pending: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM delivery_route_samples WHERE order_id = $1 AND NOT recorded",
        )
        .bind(order_id)
        .fetch_one(&mut *tx)
        .await?;
        if usize::try_from(pending).unwrap_or(0) >= batch {
            full.push(order_id);
        }
    }
    Ok(full)
}

/// A delivery the courier carries, with its last sample if any.
#[derive(sqlx::FromRow)]
struct Carried {
    order_id: Uuid,
    lat: Option<f64>,
    lon: Option<f64>,
    taken_at: Option<DateTime<Utc>>,
}

async fn insert(
    tx: &mut PgConnection,
    order_id: Uuid,
    courier_id: Uuid,
    point: RoutePoint,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO delivery_route_samples (order_id, courier_id, lat, lon, taken_at)
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
    )
    .bind(order_id)
    .bind(courier_id)
    .bind(point.lat)
    .bind(point.lon)
    .bind(point.at)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Why a flush did not record the waiting samples.
#[derive(Debug, thiserror::Error)]
pub enum RouteError {
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("recording the route: {0}")]
    Command(String),
}

/// Records the samples of `order_id` still waiting on the delivery (`DeliveryRouteRecorded`).
/// With `last_position`, the courier's last known position is sampled first whatever its
/// distance or age: the handover point ends the route. Returns how many points were sent.
///
/// # Errors
/// A database error, or a command failure other than the delivery having moved on.
pub async fn flush(
    pool: &PgPool,
    deliveries: &EventStore<Delivery>,
    order_id: Uuid,
    last_position: bool,
) -> Result<usize, RouteError> {
    if last_position {
        sqlx::query(
            "INSERT INTO delivery_route_samples (order_id, courier_id, lat, lon, taken_at)
             SELECT d.order_id, p.courier_id, p.lat, p.lon, p.recorded_at
               FROM live_deliveries d JOIN courier_positions p ON p.courier_id = d.courier_id
              WHERE d.order_id = $1 AND d.status = 'picked_up' AND p.recorded_at > d.picked_up_at
             ON CONFLICT DO NOTHING",
        )
        .bind(order_id)
        .execute(pool)
        .await?;
    }
    let pending: Vec<(Uuid, f64, f64, DateTime<Utc>)> = sqlx::query_as(
        "SELECT courier_id, lat, lon, taken_at FROM delivery_route_samples
          WHERE order_id = $1 AND NOT recorded ORDER BY taken_at",
    )
    .bind(order_id)
    .fetch_all(pool)
    .await?;
    let Some(&(courier_id, _, _, _)) = pending.first() else {
        return Ok(0);
    };
    let points: Vec<RoutePoint> = pending
        .iter()
        .filter(|(courier, ..)| *courier == courier_id)
        .map(|&(_, lat, lon, at)| RoutePoint { lat, lon, at })
        .collect();
    let Some(until) = points.last().map(|p| p.at) else {
        return Ok(0);
    };
    let count = points.len();
    let id = order_id.to_string();
    let metadata = CommandMetadata::by(r#"{"kind":"system"}"#.to_owned())
        .correlation(id.clone())
        .causation(format!("route-sampling:{}", Uuid::new_v4()));
    let command = DeliveryCommand::RecordRoute {
        courier_id,
        points,
        at: Utc::now(),
    };
    match deliveries
        .execute_with_metadata(&id, command, metadata.into_map())
        .await
    {
        // The delivery moved on (handed over, reassigned): these samples will never be
        // recorded; marking them keeps them from being tried again.
        Ok(())
        | Err(AggregateError::UserError(
            DeliveryError::WrongStatus { .. }
            | DeliveryError::NotYourDelivery
            | DeliveryError::DeliveryNotFound,
        )) => {}
        // Another flush of the same delivery won the race: it recorded these points.
        Err(AggregateError::AggregateConflict) => return Ok(0),
        Err(error) => return Err(RouteError::Command(error.to_string())),
    }
    sqlx::query(
        "UPDATE delivery_route_samples SET recorded = true
          WHERE order_id = $1 AND courier_id = $2 AND taken_at <= $3 AND NOT recorded",
    )
    .bind(order_id)
    .bind(courier_id)
    .bind(until)
    .execute(pool)
    .await?;
    Ok(count)
}

/// The route of a delivery: the points recorded on it, then the samples still waiting.
///
/// # Errors
/// A database error, or the delivery's events could not be read.
pub async fn route(pool: &PgPool, order_id: Uuid) -> Result<Vec<RoutePointView>, RouteError> {
    let delivery = store::load::<Delivery>(pool, &order_id.to_string())
        .await
        .map_err(|e| RouteError::Command(e.to_string()))?
        .aggregate;
    let mut route: Vec<RoutePointView> = delivery.route().iter().copied().map(Into::into).collect();
    let after = delivery.route().last().map(|p| p.at);
    let waiting: Vec<(f64, f64, DateTime<Utc>)> = sqlx::query_as(
        "SELECT lat, lon, taken_at FROM delivery_route_samples
          WHERE order_id = $1 AND NOT recorded AND ($2::timestamptz IS NULL OR taken_at > $2)
          ORDER BY taken_at",
    )
    .bind(order_id)
    .bind(after)
    .fetch_all(pool)
    .await?;
    route.extend(
        waiting
            .into_iter()
            .map(|(lat, lon, at)| RoutePointView { lat, lon, at }),
    );
    Ok(route)
}
