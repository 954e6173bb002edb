//! Dispatch: who carries which delivery.
//!
//! The rule: a courier carries one delivery at a time, and a delivery has one courier. It is
//! enforced by the `courier_workload` table, whose two unique keys (courier, order) make a
//! *booking* atomic: whoever inserts the row first wins, whatever the number of dispatchers,
//! replicas or managers racing for the same courier or order; the others find the row and try
//! the next courier. The `Assign` command is issued only after a successful booking, and a
//! refused command releases it. Bookings hold no transaction open across the command, so
//! fifty dispatches at once cannot exhaust the connection pool.
//!
//! The table is also kept true by the delivery events ([`workload_subscription`]): a
//! `CourierAssigned` confirms (or, after a crash between booking and command, restores) the
//! row, but leaves alone another courier's booking of the order made after it (a manager's
//! reassignment whose command is on its way); `CourierUnassigned`, delivered, failed and cancelled release it. A booking whose
//! command never happened (the dispatcher was killed in between) is released by the next
//! pass once it is a minute old ([`Dispatcher::release_stale_bookings`]).
//!
//! Automatic dispatch ([`Dispatcher::run`]) serves the queue (deliveries ready for pickup with
//! no courier, longest waiting first) whenever a delivery or courier changes, and every few
//! seconds as a safety net: for each, the nearest free courier on shift (distance from the
//! restaurant to their last position; among couriers within the same half kilometre, the one
//! who waited longest since their last delivery). When nobody is free the delivery waits, and
//! is assigned the moment a courier frees up or comes on shift; past a configured wait, the
//! managers are told (once per delivery).
//!
//! Ahead of readiness: the kitchen quotes when each order will be ready
//! (`kitchen.estimate.ticket_estimated`, kept in `delivery_ready_estimates`). Once a quote
//! falls within the configured lead (the time a courier needs to get there, five minutes by
//! default), dispatch sends a courier to a delivery still only requested (`AssignAhead`), so
//! they arrive as the food does; they pick it up once `TicketReady` has made it ready. The
//! deliveries already ready come first, and the booking is the same: ahead or not, a courier
//! still carries one delivery at a time.

use std::sync::Arc;
use std::time::Duration;

use brigade_domain::delivery::{
    Delivery, DeliveryCommand, DeliveryError, DeliveryEvent, DeliveryStatus,
};
use brigade_nats::store::{self, CommandMetadata, EventStore};
use brigade_nats::{EventHandler, HandlerError, ReceivedEvent, Subscription};
use brigade_projections::couriers::{self, CourierView};
use brigade_projections::feed::FeedHub;
use brigade_projections::live_deliveries;
use chrono::{DateTime, Utc};
use cqrs_es::AggregateError;
use sqlx::{PgConnection, PgPool};
use tokio::sync::{broadcast, watch};
use uuid::Uuid;

use crate::geo::{distance_km, GeoPoint};
use crate::notifications;

/// What a booking attempt found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Booking {
    /// The courier is now booked for the order; `replaced` was booked for it before.
    Booked { replaced: Option<Uuid> },
    /// This very booking already existed (a retry): nothing changed.
    AlreadyBooked,
    /// The courier carries another delivery.
    CourierBusy,
    /// Another courier is booked for this order (only when not replacing).
    OrderTaken,
}

/// Books `courier_id` for `order_id`. With `replace`, a courier booked for the order before
/// is released in the same transaction (a manager's reassignment); without it, an order
/// already booked is left alone (dispatch never overrides anyone).
///
/// # Errors
/// A database error.
pub async fn book(
    pool: &PgPool,
    courier_id: Uuid,
    order_id: Uuid,
    replace: bool,
) -> Result<Booking, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let replaced: Option<Uuid> = if replace {
        sqlx::query_scalar(
            "DELETE FROM courier_workload WHERE order_id = $2 AND courier_id <> $1 RETURNING courier_id",
        )
        .bind(courier_id)
        .bind(order_id)
        .fetch_optional(&mut *tx)
        .await?
    } else {
        None
    };
    // No conflict target: a clash on either key means "taken". A concurrent uncommitted insert
    // of the same key makes this wait for it, then back off: the race has one winner.
    let inserted: Option<Uuid> = sqlx::query_scalar(
        "INSERT INTO courier_workload (courier_id, order_id) VALUES ($1, $2)
         ON CONFLICT DO NOTHING RETURNING courier_id",
    )
    .bind(courier_id)
    .bind(order_id)
    .fetch_optional(&mut *tx)
    .await?;
    if inserted.is_none() {
        let holder: Option<(Uuid, Uuid)> = sqlx::query_as(
            "SELECT courier_id, order_id FROM courier_workload WHERE courier_id = $1 OR order_id = $2",
        )
        .bind(courier_id)
        .bind(order_id)
        .fetch_optional(&mut *tx)
        .await?;
        tx.rollback().await?;
        return Ok(match holder {
            Some((c, o)) if c == courier_id && o == order_id => Booking::AlreadyBooked,
            Some((c, _)) if c == courier_id => Booking::CourierBusy,
            _ => Booking::OrderTaken,
        });
    }
    sqlx::query(
        "INSERT INTO courier_dispatch_turns (courier_id, last_booked_at) VALUES ($1, now())
         ON CONFLICT (courier_id) DO UPDATE SET last_booked_at = now()",
    )
    .bind(courier_id)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(Booking::Booked { replaced })
}

/// Undoes a booking whose command was refused, giving the order back to `replaced` if a
/// manager's reassignment had taken it from them.
///
/// # Errors
/// A database error.
pub async fn unbook(
    pool: &PgPool,
    courier_id: Uuid,
    order_id: Uuid,
    replaced: Option<Uuid>,
) -> Result<(), sqlx::Error> {
    let mut tx = pool.begin().await?;
    sqlx::query("DELETE FROM courier_workload WHERE courier_id = $1 AND order_id = $2")
        .bind(courier_id)
        .bind(order_id)
        .execute(&mut *tx)
        .await?;
    if let Some(previous) = replaced {
        sqlx::query(
            "INSERT INTO courier_workload (courier_id, order_id, confirmed) VALUES ($1, $2, true)
             ON CONFLICT DO NOTHING",
        )
        .bind(previous)
        .bind(order_id)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await
}

/// Whether a courier is booked for a delivery, or carries one according to the read model
/// (the booking table might lag a crash behind; removing a courier must not).
///
/// # Errors
/// A database error.
pub async fn is_carrying(pool: &PgPool, courier_id: Uuid) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM courier_workload WHERE courier_id = $1)
             OR EXISTS (SELECT 1 FROM live_deliveries
                         WHERE courier_id = $1 AND status IN ('assigned', 'picked_up'))",
    )
    .bind(courier_id)
    .fetch_one(pool)
    .await
}

/// Remembers that a courier declined an order: dispatch will not offer it to them again.
///
/// # Errors
/// A database error.
pub async fn record_decline(
    pool: &PgPool,
    order_id: Uuid,
    courier_id: Uuid,
) -> Result<(), sqlx::Error> {
    sqlx::query("INSERT INTO dispatch_declines (order_id, courier_id) VALUES ($1, $2) ON CONFLICT DO NOTHING")
        .bind(order_id)
        .bind(courier_id)
        .execute(pool)
        .await?;
    Ok(())
}

/// Why a dispatch attempt stopped.
#[derive(Debug, thiserror::Error)]
pub enum DispatchError {
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("assigning: {0}")]
    Command(String),
}

/// The automatic dispatcher. Cheap to clone; any number may run at once.
#[derive(Clone)]
pub struct Dispatcher {
    pool: PgPool,
    deliveries: EventStore<Delivery>,
    restaurant: GeoPoint,
    waiting_alert: Option<chrono::Duration>,
    lead: Option<chrono::Duration>,
}

/// How long a booking may stay unconfirmed before dispatch checks whether its `Assign` ever
/// happened: far longer than one command takes, even on a slow database.
pub const STALE_BOOKING: Duration = Duration::from_secs(60);
/// How many deliveries one pass looks at; the rest wait for the next pass.
const QUEUE_PAGE: i64 = 200;
/// How long a change waits for the rest of its burst before dispatch serves them all.
const DEBOUNCE: Duration = Duration::from_millis(100);
/// Couriers within this distance of each other count as equally near (fairness decides).
const NEAR_ENOUGH_KM: f64 = 0.5;

impl Dispatcher {
    #[must_use]
    pub fn new(pool: PgPool, deliveries: EventStore<Delivery>, restaurant: GeoPoint) -> Self {
        Self {
            pool,
            deliveries,
            restaurant,
            waiting_alert: None,
            lead: None,
        }
    }

    /// Also sends couriers to deliveries whose food the kitchen expects ready within `lead`
    /// (nothing ahead for a zero lead).
    #[must_use]
    pub fn dispatch_ahead(mut self, lead: Duration) -> Self {
        self.lead = (!lead.is_zero())
            .then(|| chrono::Duration::from_std(lead).ok())
            .flatten();
        self
    }

    /// Also tells the managers about deliveries left waiting longer than `after`.
    #[must_use]
    pub fn alert_after(mut self, after: Duration) -> Self {
        self.waiting_alert = chrono::Duration::from_std(after).ok();
        self
    }

    /// Serves the queue until `shutdown`: after changes to deliveries or couriers, and every
    /// `interval`. A change waits [`DEBOUNCE`] (or four times the last pass, when passes grow
    /// long) for the others of its burst, so that one pass serves them all: with a pass after
    /// every change, dispatch read its queue once per order placed, and a long queue (a rush
    /// with too few couriers) made each pass longer and the passes more frequent at once.
    /// Dispatch thereby takes at most a fifth of the service's time however long its queue,
    /// and a courier is sent a tenth of a second later at worst.
    pub async fn run(self, hub: FeedHub, interval: Duration, mut shutdown: watch::Receiver<bool>) {
        let mut changes = hub.subscribe();
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_pass = Duration::ZERO;
        loop {
            tokio::select! {
                _ = shutdown.changed() => return,
                _ = tick.tick() => {}
                change = changes.recv() => match change {
                    Ok(change) if change.feed == live_deliveries::FEED || change.feed == couriers::FEED => {
                        tokio::select! {
                            _ = shutdown.changed() => return,
                            () = tokio::time::sleep(DEBOUNCE.max(last_pass * 4)) => {}
                        }
                    }
                    Ok(_) => continue,
                    Err(broadcast::error::RecvError::Lagged(_)) => {}
                    Err(broadcast::error::RecvError::Closed) => return,
                },
            }
            while changes.try_recv().is_ok() {}
            if *shutdown.borrow() {
                return;
            }
            let started = tokio::time::Instant::now();
            if let Err(error) = self.dispatch_waiting().await {
                tracing::warn!(%error, "dispatch pass failed; retrying at the next change");
            }
            last_pass = started.elapsed();
        }
    }

    /// One pass over the queue, longest waiting first. Returns how many deliveries it assigned.
    ///
    /// # Errors
    /// A database error.
    pub async fn dispatch_waiting(&self) -> Result<usize, DispatchError> {
        self.release_stale_bookings().await?;
        let waiting = live_deliveries::waiting_for_courier(&self.pool, QUEUE_PAGE).await?;
        let mut assigned = 0;
        let mut nobody_free = false;
        for delivery in waiting {
            if !nobody_free {
                match self.dispatch(delivery.order_id).await? {
                    Some(_) => {
                        assigned += 1;
                        continue;
                    }
                    None => nobody_free = self.free_couriers(None).await?.is_empty(),
                }
            }
            let ready_at = delivery.ready_at.unwrap_or(delivery.requested_at);
            if self
                .waiting_alert
                .is_some_and(|alert| Utc::now() - ready_at >= alert)
            {
                notifications::notify_waiting(&self.pool, delivery.order_id, ready_at).await?;
            }
        }
        // Sending a courier ahead needs a free one: when nobody is, the deliveries expected
        // soon are not even looked for (a join over every requested delivery, each pass).
        let ahead = match self.lead {
            Some(lead) if !nobody_free && !self.free_couriers(None).await?.is_empty() => Some(lead),
            _ => None,
        };
        if let Some(lead) = ahead {
            for order_id in self.expected_soon(lead).await? {
                match self.dispatch_as(order_id, true).await? {
                    Some(_) => assigned += 1,
                    None if self.free_couriers(None).await?.is_empty() => break,
                    None => {}
                }
            }
        }
        Ok(assigned)
    }

    /// Deliveries still only requested, no courier yet, whose food the kitchen expects ready
    /// within `lead`: soonest first.
    async fn expected_soon(&self, lead: chrono::Duration) -> Result<Vec<Uuid>, sqlx::Error> {
        sqlx::query_scalar(
            "SELECT d.order_id FROM live_deliveries d
               JOIN delivery_ready_estimates e ON e.order_id = d.order_id
              WHERE d.status = 'requested' AND d.courier_id IS NULL AND e.ready_at <= $1
              ORDER BY e.ready_at, d.order_id LIMIT $2",
        )
        .bind(Utc::now() + lead)
        .bind(QUEUE_PAGE)
        .fetch_all(&self.pool)
        .await
    }

    /// Releases the bookings whose `Assign` never happened: a dispatcher killed between its
    /// booking and its command leaves an unconfirmed row behind, which would hold the order and
    /// the courier for ever. A booking still unconfirmed after [`STALE_BOOKING`] is checked
    /// against the delivery itself (not a read model, which may lag): if the delivery is not
    /// with that courier, the row goes. Returns how many were released.
    ///
    /// # Errors
    /// A database error.
    pub async fn release_stale_bookings(&self) -> Result<usize, DispatchError> {
        let stale: Vec<(Uuid, Uuid)> = sqlx::query_as(
            "SELECT courier_id, order_id FROM courier_workload
              WHERE NOT confirmed AND booked_at < now() - make_interval(secs => $1)",
        )
        .bind(STALE_BOOKING.as_secs_f64())
        .fetch_all(&self.pool)
        .await?;
        let mut released = 0;
        for (courier_id, order_id) in stale {
            let delivery = store::load::<Delivery>(&self.pool, &order_id.to_string())
                .await
                .map_err(|e| DispatchError::Command(e.to_string()))?
                .aggregate;
            let carried = delivery.courier_id() == Some(courier_id)
                && matches!(
                    delivery.status(),
                    Some(DeliveryStatus::Assigned | DeliveryStatus::PickedUp)
                );
            if carried {
                // The command went through; its event confirms the row.
                continue;
            }
            let deleted = sqlx::query(
                "DELETE FROM courier_workload
                  WHERE courier_id = $1 AND order_id = $2 AND NOT confirmed",
            )
            .bind(courier_id)
            .bind(order_id)
            .execute(&self.pool)
            .await?;
            if deleted.rows_affected() > 0 {
                tracing::warn!(%order_id, %courier_id, "released a booking whose assignment never happened");
                released += 1;
                // A reassignment that never happened had taken the order from the courier the
                // events say carries it (whose assignment, heard since, left that booking
                // alone): theirs again.
                if let (Some(carrier), Some(DeliveryStatus::Assigned | DeliveryStatus::PickedUp)) =
                    (delivery.courier_id(), delivery.status())
                {
                    sqlx::query(
                        "INSERT INTO courier_workload (courier_id, order_id, confirmed) VALUES ($1, $2, true)
                         ON CONFLICT DO NOTHING",
                    )
                    .bind(carrier)
                    .bind(order_id)
                    .execute(&self.pool)
                    .await?;
                }
            }
        }
        Ok(released)
    }

    /// Assigns one delivery to the nearest free courier, if it is waiting for one and someone
    /// is free. Returns the courier assigned.
    ///
    /// # Errors
    /// A database error, or a command failure other than the delivery having moved on.
    pub async fn dispatch(&self, order_id: Uuid) -> Result<Option<Uuid>, DispatchError> {
        self.dispatch_as(order_id, false).await
    }

    /// [`Self::dispatch`], or with `ahead`, to a delivery whose food is not ready yet.
    async fn dispatch_as(
        &self,
        order_id: Uuid,
        ahead: bool,
    ) -> Result<Option<Uuid>, DispatchError> {
        for courier in self.free_couriers(Some(order_id)).await? {
            match book(&self.pool, courier.id, order_id, false).await? {
                Booking::Booked { .. } => {}
                Booking::CourierBusy => continue,
                Booking::AlreadyBooked | Booking::OrderTaken => return Ok(None),
            }
            match self.assign(order_id, courier.id, ahead).await {
                Ok(true) => return Ok(Some(courier.id)),
                Ok(false) => {
                    unbook(&self.pool, courier.id, order_id, None).await?;
                    return Ok(None);
                }
                Err(error) => {
                    unbook(&self.pool, courier.id, order_id, None).await?;
                    return Err(error);
                }
            }
        }
        Ok(None)
    }

    /// Issues `Assign` (or `AssignAhead`) if the delivery still waits for a courier; `false`
    /// when it has moved on (cancelled, assigned by a manager meanwhile, not ready after all).
    async fn assign(
        &self,
        order_id: Uuid,
        courier_id: Uuid,
        ahead: bool,
    ) -> Result<bool, DispatchError> {
        let id = order_id.to_string();
        let loaded = store::load::<Delivery>(&self.pool, &id)
            .await
            .map_err(|e| DispatchError::Command(e.to_string()))?;
        let waiting = match loaded.aggregate.status() {
            Some(DeliveryStatus::ReadyForPickup) => true,
            Some(DeliveryStatus::Requested) => ahead,
            _ => false,
        };
        if !waiting {
            return Ok(false);
        }
        let (cause, at) = (
            if ahead { "dispatch-ahead" } else { "dispatch" },
            Utc::now(),
        );
        let metadata = CommandMetadata::by(r#"{"kind":"system"}"#.to_owned())
            .correlation(id.clone())
            .causation(format!("{cause}:{}", Uuid::new_v4()));
        let command = if ahead {
            DeliveryCommand::AssignAhead { courier_id, at }
        } else {
            DeliveryCommand::Assign { courier_id, at }
        };
        match self
            .deliveries
            .execute_with_metadata(&id, command, metadata.into_map())
            .await
        {
            Ok(()) => {
                tracing::info!(%order_id, %courier_id, ahead, "dispatched");
                Ok(true)
            }
            Err(AggregateError::UserError(
                DeliveryError::NotReadyForPickup
                | DeliveryError::WrongStatus { .. }
                | DeliveryError::DeliveryNotFound,
            ))
            | Err(AggregateError::AggregateConflict) => Ok(false),
            Err(error) => Err(DispatchError::Command(error.to_string())),
        }
    }

    /// Active couriers on shift with no booking, nearest to the restaurant first (those who
    /// never sent a position last), skipping those who declined `order_id`.
    async fn free_couriers(&self, order_id: Option<Uuid>) -> Result<Vec<CourierView>, sqlx::Error> {
        let on_shift = couriers::on_shift(&self.pool).await?;
        let busy: Vec<Uuid> = sqlx::query_scalar("SELECT courier_id FROM courier_workload")
            .fetch_all(&self.pool)
            .await?;
        let declined: Vec<Uuid> = match order_id {
            Some(order_id) => {
                sqlx::query_scalar("SELECT courier_id FROM dispatch_declines WHERE order_id = $1")
                    .bind(order_id)
                    .fetch_all(&self.pool)
                    .await?
            }
            None => Vec::new(),
        };
        let turns: Vec<(Uuid, DateTime<Utc>)> =
            sqlx::query_as("SELECT courier_id, last_booked_at FROM courier_dispatch_turns")
                .fetch_all(&self.pool)
                .await?;
        let free: Vec<CourierView> = on_shift
            .into_iter()
            .filter(|c| !busy.contains(&c.id) && !declined.contains(&c.id))
            .collect();
        Ok(rank(free, self.restaurant, &turns))
    }
}

/// Nearest first, by steps of [`NEAR_ENOUGH_KM`]; within a step, the courier whose last
/// delivery is oldest (or who never had one); couriers with no known position last.
fn rank(
    mut couriers: Vec<CourierView>,
    restaurant: GeoPoint,
    turns: &[(Uuid, DateTime<Utc>)],
) -> Vec<CourierView> {
    let key = |courier: &CourierView| {
        let step = courier.position.map_or(u64::MAX, |p| {
            // Truncation is the point: whole steps of half a kilometre.
            (distance_km(restaurant, p.into()) / NEAR_ENOUGH_KM) as u64
        });
        let last_turn = turns
            .iter()
            .find(|(id, _)| *id == courier.id)
            .map(|(_, at)| *at);
        (step, last_turn, courier.id)
    };
    couriers.sort_by_cached_key(key);
    couriers
}

/// The subscription that keeps `courier_workload` true to the delivery events.
#[must_use]
pub fn workload_subscription() -> Subscription {
    Subscription {
        name: "delivery-workload".to_owned(),
        source: "delivery",
        aggregate_types: vec!["delivery"],
        handler: Arc::new(Workload),
    }
}

/// Confirms and releases bookings from the delivery events.
pub struct Workload;

#[async_trait::async_trait]
impl EventHandler for Workload {
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
        match delivery_event {
            DeliveryEvent::CourierAssigned { courier_id, .. } => {
                // Another courier's booking of the order made after this event is a manager's
                // reassignment on its way (its command follows it): left alone, it also keeps
                // this courier from being booked back below. Older ones the events overrule.
                sqlx::query(
                    "DELETE FROM courier_workload
                      WHERE order_id = $2 AND courier_id <> $1 AND booked_at <= $3",
                )
                .bind(courier_id)
                .bind(order_id)
                .bind(envelope.recorded_at)
                .execute(&mut *tx)
                .await?;
                let booked: Option<Uuid> = sqlx::query_scalar(
                    "SELECT order_id FROM courier_workload WHERE courier_id = $1 FOR UPDATE",
                )
                .bind(courier_id)
                .fetch_optional(&mut *tx)
                .await?;
                match booked {
                    Some(booked) if booked == order_id => {
                        sqlx::query(
                            "UPDATE courier_workload SET confirmed = true WHERE courier_id = $1",
                        )
                        .bind(courier_id)
                        .execute(&mut *tx)
                        .await?;
                    }
                    // Only a crash between a booking and its command, or a manager's
                    // concurrent reassignment, gets here: the events are the truth, say so.
                    Some(booked) => {
                        tracing::warn!(%courier_id, %order_id, other = %booked, "courier assigned while booked for another order");
                    }
                    None => {
                        sqlx::query(
                            "INSERT INTO courier_workload (courier_id, order_id, confirmed) VALUES ($1, $2, true)
                             ON CONFLICT DO NOTHING",
                        )
                        .bind(courier_id)
                        .bind(order_id)
                        .execute(&mut *tx)
                        .await?;
                    }
                }
            }
            DeliveryEvent::CourierUnassigned { courier_id, .. } => {
                sqlx::query("DELETE FROM courier_workload WHERE courier_id = $1 AND order_id = $2")
                    .bind(courier_id)
                    .bind(order_id)
                    .execute(&mut *tx)
                    .await?;
            }
            DeliveryEvent::DeliveryDelivered { .. }
            | DeliveryEvent::DeliveryFailed { .. }
            | DeliveryEvent::DeliveryCancelled { .. } => {
                sqlx::query("DELETE FROM courier_workload WHERE order_id = $1")
                    .bind(order_id)
                    .execute(&mut *tx)
                    .await?;
            }
            DeliveryEvent::DeliveryRequested { .. }
            | DeliveryEvent::DeliveryReadyForPickup { .. }
            | DeliveryEvent::DeliveryPickedUp { .. }
            | DeliveryEvent::DeliveryRouteRecorded { .. } => {}
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use brigade_projections::couriers::{Position, VehicleKind};

    use super::*;

    fn courier(n: u128, km_north: Option<f64>) -> CourierView {
        CourierView {
            id: Uuid::from_u128(n),
            account_id: None,
            name: format!("c{n}"),
            phone: None,
            vehicle: VehicleKind::Bike,
            active: true,
            on_shift: true,
            hired_at: DateTime::<Utc>::default(),
            position: km_north.map(|km| Position {
                lat: 48.0 + km / 111.2,
                lon: 2.0,
                at: DateTime::<Utc>::default(),
            }),
            version: 1,
        }
    }

    const RESTAURANT: GeoPoint = GeoPoint {
        lat: 48.0,
        lon: 2.0,
    };

    #[test]
    fn the_nearest_courier_comes_first_and_the_unlocated_last() {
        let ranked = rank(
            vec![
                courier(1, None),
                courier(2, Some(3.0)),
                courier(3, Some(0.8)),
            ],
            RESTAURANT,
            &[],
        );
        let ids: Vec<u128> = ranked.iter().map(|c| c.id.as_u128()).collect();
        assert_eq!(ids, vec![3, 2, 1]);
    }

    #[test]
    fn among_couriers_about_as_near_the_one_idle_longest_comes_first() {
        let earlier = DateTime::<Utc>::default();
        let later = earlier + chrono::Duration::minutes(5);
        let turns = vec![(Uuid::from_u128(1), later), (Uuid::from_u128(2), earlier)];
        let ranked = rank(
            vec![
                courier(1, Some(0.1)),
                courier(2, Some(0.3)),
                courier(3, Some(0.2)),
            ],
            RESTAURANT,
            &turns,
        );
        let ids: Vec<u128> = ranked.iter().map(|c| c.id.as_u128()).collect();
        // 3 never had a delivery, 2 had one long ago, 1 just had one.
        assert_eq!(ids, vec![3, 2, 1]);
    }
}
