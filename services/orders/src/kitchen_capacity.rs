//! Kitchen capacity: how many tickets the kitchen takes per 15-minute slot, the ready time
//! quoted to customers, and the refusal of an order when its slot is full.
//!
//! **The load.** `kitchen_load` holds one row per order with the time it is expected ready:
//! written when the order is placed (its quoted or scheduled time), then moved by the kitchen's
//! own quotes (`kitchen.estimate.ticket_estimated`, from its live load) and closed by the
//! ticket's end (`kitchen.ticket.ready` / `rejected` / `cancelled`), both through the
//! [`KitchenLoad`] consumer. A scheduled order is never expected before its time. An open
//! ticket counts in the slot it is expected ready in; one already overdue counts in the slot
//! of now; one overdue by hours is a ticket the kitchen forgot to close and counts nowhere.
//!
//! **A new order** is expected ready at the earliest after its longest dish's preparation
//! time. When that slot holds `BRIGADE_KITCHEN_SLOT_CAPACITY` tickets already, the order is
//! refused (409 `kitchen-slot-full`, with `nextAvailableAt`, the start of the next slot with
//! room) unless it asks for a later time (`scheduledFor`) in a slot with room: then it is
//! placed as scheduled. Never queued silently.
//!
//! **Concurrency.** Two customers must not both take the last place of a slot: the check and
//! the booking run under one PostgreSQL advisory lock (transaction-scoped, so it is released
//! whatever happens), shared by every replica of the service. Within one process, bookings
//! first queue on a mutex, so that at most one pooled connection waits on (or holds) the lock:
//! a pool filled with waiters would leave none for the service's other requests. The order, its
//! key and its row in the load are stored by one statement in the lock's transaction
//! ([`crate::placement`]), so the booking commits with the order or not at all. Without a limit
//! there is nothing to check and no lock is taken: the statement commits on its own.

use std::sync::Arc;

use brigade_domain::kitchen::{EstimateEvent, TicketEvent};
use brigade_nats::{EventHandler, HandlerError, Migration, ReceivedEvent, Subscription};
use chrono::{DateTime, Duration, TimeZone, Utc};
use sqlx::postgres::PgArguments;
use sqlx::query::QueryScalar;
use sqlx::{PgConnection, PgPool, Postgres, Transaction};
use tokio::sync::{Mutex, OwnedMutexGuard};
use uuid::Uuid;

use crate::placement::Booking;

/// Length of a kitchen slot.
pub const SLOT_MINUTES: i64 = 15;
/// How far ahead a quote looks for a slot with room (one day of slots).
const HORIZON_SLOTS: i64 = 96;
/// An open ticket expected ready longer ago than this is not load any more (a ticket the
/// kitchen never closed must not block every slot for ever).
const FORGOTTEN_AFTER_HOURS: i64 = 6;
/// The advisory lock taken while a slot is checked and booked ("kitchen" in ASCII).
const BOOKING_LOCK: i64 = 0x006b_6974_6368_656e;
/// The durable consumer name.
pub const CONSUMER: &str = "orders-kitchen-load";

/// Schema of the load.
pub const MIGRATIONS: &[Migration] = &[Migration {
    name: "0410_kitchen_load",
    sql: r"
CREATE TABLE kitchen_load (
    order_id      uuid        PRIMARY KEY,
    ready_at      timestamptz NOT NULL,
    scheduled_for timestamptz,
    open          boolean     NOT NULL DEFAULT true,
    updated_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX kitchen_load_open ON kitchen_load (ready_at) WHERE open;
",
}];

/// The start of the slot `at` falls in (slots start on the quarter hour, UTC).
#[must_use]
pub fn slot_start(at: DateTime<Utc>) -> DateTime<Utc> {
    let length = SLOT_MINUTES * 60;
    let seconds = at.timestamp();
    Utc.timestamp_opt(seconds - seconds.rem_euclid(length), 0)
        .single()
        .unwrap_or(at)
}

/// The open tickets by the time each is expected ready, and how many a slot takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Load {
    /// When each open ticket is expected ready, already moved to now when overdue.
    expected: Vec<DateTime<Utc>>,
    /// `None`: no limit.
    per_slot: Option<u32>,
}

impl Load {
    /// The load at `now` of tickets expected ready at `expected` (forgotten ones dropped).
    #[must_use]
    pub fn new(now: DateTime<Utc>, expected: &[DateTime<Utc>], per_slot: Option<u32>) -> Self {
        let forgotten = now - Duration::hours(FORGOTTEN_AFTER_HOURS);
        Self {
            expected: expected
                .iter()
                .filter(|at| **at >= forgotten)
                .map(|at| (*at).max(now))
                .collect(),
            per_slot,
        }
    }

    /// Open tickets expected ready in the slot starting at `start`.
    #[must_use]
    pub fn booked(&self, start: DateTime<Utc>) -> u32 {
        let count = self
            .expected
            .iter()
            .filter(|at| slot_start(**at) == start)
            .count();
        u32::try_from(count).unwrap_or(u32::MAX)
    }

    #[must_use]
    pub fn has_room(&self, start: DateTime<Utc>) -> bool {
        self.per_slot.is_none_or(|limit| self.booked(start) < limit)
    }

    /// The start of the first slot with room at or after the slot of `from`, within a day.
    #[must_use]
    pub fn first_free_slot(&self, from: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let first = slot_start(from);
        (0..HORIZON_SLOTS)
            .map(|n| first + Duration::minutes(n * SLOT_MINUTES))
            .find(|start| self.has_room(*start))
    }

    /// Where a new order goes: at `earliest` (its longest dish from now) or, when asked, at
    /// `scheduled_for`.
    ///
    /// # Errors
    /// The slot is full (with the next time that has room), or the scheduled time is before
    /// the order could be ready.
    pub fn place(
        &self,
        earliest: DateTime<Utc>,
        scheduled_for: Option<DateTime<Utc>>,
    ) -> Result<DateTime<Utc>, SlotRefusal> {
        let wanted = match scheduled_for {
            Some(at) if at < earliest => {
                return Err(SlotRefusal::TooSoon { earliest });
            }
            Some(at) => at,
            None => earliest,
        };
        if self.has_room(slot_start(wanted)) {
            return Ok(wanted);
        }
        let after = slot_start(wanted) + Duration::minutes(SLOT_MINUTES);
        Err(SlotRefusal::Full {
            slot_start: slot_start(wanted),
            next_available_at: self.first_free_slot(after),
        })
    }
}

/// Why an order cannot be ready when asked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SlotRefusal {
    #[error("the kitchen is full for the slot starting at {}; the next time with room is {}", .slot_start.format("%H:%M UTC"), next_label(.next_available_at))]
    Full {
        slot_start: DateTime<Utc>,
        next_available_at: Option<DateTime<Utc>>,
    },
    #[error("the order cannot be ready before {}: choose that time or later", .earliest.format("%H:%M:%S UTC"))]
    TooSoon { earliest: DateTime<Utc> },
}

fn next_label(next: &Option<DateTime<Utc>>) -> String {
    next.map_or_else(
        || "not within the next day".to_owned(),
        |at| at.format("%H:%M UTC").to_string(),
    )
}

impl SlotRefusal {
    /// The stable problem code.
    #[must_use]
    pub fn code(&self) -> &'static str {
        match self {
            SlotRefusal::Full { .. } => "kitchen-slot-full",
            SlotRefusal::TooSoon { .. } => "order-schedule-too-soon",
        }
    }

    /// The earliest time a new attempt may succeed.
    #[must_use]
    pub fn next_available_at(&self) -> Option<DateTime<Utc>> {
        match self {
            SlotRefusal::Full {
                next_available_at, ..
            } => *next_available_at,
            SlotRefusal::TooSoon { earliest } => Some(*earliest),
        }
    }
}

/// What a customer is told before ordering: when an order would be ready.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quote {
    /// The earliest an order could be ready (its longest dish from now), or the start of the
    /// next slot with room when that slot is full; `None`: no room within a day.
    pub ready_at: Option<DateTime<Utc>>,
    /// The slot of the earliest time, and its load.
    pub slot_start: DateTime<Utc>,
    pub booked: u32,
    pub per_slot: Option<u32>,
}

/// The kitchen's capacity as the orders service sees it.
#[derive(Debug, Clone)]
pub struct KitchenCapacity {
    pool: PgPool,
    /// Tickets per slot; `None`: no limit.
    per_slot: Option<u32>,
    /// This process's queue for the booking lock.
    gate: Arc<Mutex<()>>,
}

impl KitchenCapacity {
    #[must_use]
    pub fn new(pool: PgPool, per_slot: Option<u32>) -> Self {
        Self {
            pool,
            per_slot,
            gate: Arc::default(),
        }
    }

    /// The load as it stands (read through `conn`, which may hold the booking lock).
    async fn load(&self, conn: &mut PgConnection, now: DateTime<Utc>) -> Result<Load, sqlx::Error> {
        let expected: Vec<DateTime<Utc>> = sqlx::query_scalar(
            "SELECT greatest(ready_at, coalesce(scheduled_for, ready_at))
               FROM kitchen_load WHERE open",
        )
        .fetch_all(&mut *conn)
        .await?;
        Ok(Load::new(now, &expected, self.per_slot))
    }

    /// When an order whose longest dish takes `prep_minutes` would be ready.
    ///
    /// # Errors
    /// A database error.
    pub async fn quote(&self, now: DateTime<Utc>, prep_minutes: u32) -> Result<Quote, sqlx::Error> {
        let mut conn = self.pool.acquire().await?;
        let load = self.load(&mut conn, now).await?;
        let earliest = now + Duration::minutes(i64::from(prep_minutes));
        let slot = slot_start(earliest);
        let ready_at = if load.has_room(slot) {
            Some(earliest)
        } else {
            load.first_free_slot(slot)
        };
        Ok(Quote {
            ready_at,
            slot_start: slot,
            booked: load.booked(slot),
            per_slot: self.per_slot,
        })
    }

    /// Checks that a new order has room at `earliest` (or at `scheduled_for`) and holds the
    /// booking lock until [`Reservation::commit`] or the reservation is dropped.
    ///
    /// # Errors
    /// The outer error is a database fault; the inner one the slot's refusal.
    pub async fn reserve(
        &self,
        now: DateTime<Utc>,
        earliest: DateTime<Utc>,
        scheduled_for: Option<DateTime<Utc>>,
    ) -> Result<Result<Reservation, SlotRefusal>, sqlx::Error> {
        if self.per_slot.is_none() {
            let placed = Load::new(now, &[], None).place(earliest, scheduled_for);
            return Ok(placed.map(|ready_at| Reservation {
                held: None,
                pool: self.pool.clone(),
                ready_at,
                scheduled_for,
            }));
        }
        let queued = Arc::clone(&self.gate).lock_owned().await;
        let mut tx = self.pool.begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(BOOKING_LOCK)
            .execute(&mut *tx)
            .await?;
        let load = self.load(&mut tx, now).await?;
        Ok(load
            .place(earliest, scheduled_for)
            .map(|ready_at| Reservation {
                held: Some((queued, tx)),
                pool: self.pool.clone(),
                ready_at,
                scheduled_for,
            }))
    }
}

/// A slot checked for a new order, the booking lock held (when there is a limit) until the
/// order is committed or the reservation dropped.
pub struct Reservation {
    held: Option<(OwnedMutexGuard<()>, Transaction<'static, Postgres>)>,
    pool: PgPool,
    /// When the order is expected ready.
    pub ready_at: DateTime<Utc>,
    scheduled_for: Option<DateTime<Utc>>,
}

impl Reservation {
    /// The order's row in the load, as the placement statement writes it.
    #[must_use]
    pub fn booking(&self) -> Booking {
        Booking {
            ready_at: self.ready_at,
            scheduled_for: self.scheduled_for,
        }
    }

    /// Runs `placement` ([`crate::placement::statement`], which writes the order's row in the
    /// load with the order) and commits it: in the booking lock's transaction when there is a
    /// limit (the commit releases the lock), as a statement of its own otherwise.
    ///
    /// # Errors
    /// A database error: nothing of the order is stored.
    pub async fn commit<'q, O>(
        self,
        placement: QueryScalar<'q, Postgres, O, PgArguments>,
    ) -> Result<Option<O>, sqlx::Error>
    where
        O: Send + Unpin + for<'r> sqlx::Decode<'r, Postgres> + sqlx::Type<Postgres>,
    {
        match self.held {
            Some((_queued, mut tx)) => {
                let placed = placement.fetch_optional(&mut *tx).await?;
                tx.commit().await?;
                Ok(placed)
            }
            None => placement.fetch_optional(&self.pool).await,
        }
    }
}

/// The consumer that keeps `kitchen_load` in step with the kitchen.
#[must_use]
pub fn subscription() -> Subscription {
    Subscription {
        name: CONSUMER.to_owned(),
        source: "kitchen",
        aggregate_types: vec!["ticket", "estimate"],
        handler: Arc::new(KitchenLoad),
    }
}

/// Moves each order's expected ready time with the kitchen's quotes, and closes it with the
/// ticket. Every statement is an upsert that a redelivery repeats harmlessly.
pub struct KitchenLoad;

#[async_trait::async_trait]
impl EventHandler for KitchenLoad {
    async fn handle(
        &self,
        event: &ReceivedEvent,
        tx: &mut PgConnection,
    ) -> Result<(), HandlerError> {
        let envelope = &event.envelope;
        let order_id: Uuid = envelope.aggregate_uuid("order")?;
        if envelope.aggregate_type == "estimate" {
            let EstimateEvent::TicketEstimated { ready_at, .. } = envelope
                .decode()
                .map_err(|e| HandlerError::Permanent(format!("not an estimate event: {e}")))?;
            sqlx::query(
                "INSERT INTO kitchen_load (order_id, ready_at) VALUES ($1, $2)
                 ON CONFLICT (order_id) DO UPDATE
                    SET ready_at = EXCLUDED.ready_at, updated_at = now()",
            )
            .bind(order_id)
            .bind(ready_at)
            .execute(&mut *tx)
            .await?;
            return Ok(());
        }
        let ticket_event: TicketEvent = envelope
            .decode()
            .map_err(|e| HandlerError::Permanent(format!("not a ticket event: {e}")))?;
        match ticket_event {
            TicketEvent::TicketOpened {
                placed_at,
                scheduled_for,
                ..
            } => {
                // Booked at placement already, unless the process died in between.
                let ready_at = placed_at
                    + Duration::minutes(i64::from(
                        brigade_projections::kitchen_queue::DEFAULT_PREP_MINUTES,
                    ));
                sqlx::query(
                    "INSERT INTO kitchen_load (order_id, ready_at, scheduled_for)
                     VALUES ($1, $2, $3) ON CONFLICT (order_id) DO NOTHING",
                )
                .bind(order_id)
                .bind(ready_at)
                .bind(scheduled_for)
                .execute(&mut *tx)
                .await?;
            }
            TicketEvent::TicketReady { at }
            | TicketEvent::TicketRejected { at, .. }
            | TicketEvent::TicketCancelled { at } => {
                sqlx::query(
                    "INSERT INTO kitchen_load (order_id, ready_at, open) VALUES ($1, $2, false)
                     ON CONFLICT (order_id) DO UPDATE SET open = false, updated_at = now()",
                )
                .bind(order_id)
                .bind(at)
                .execute(&mut *tx)
                .await?;
            }
            TicketEvent::ItemStarted { .. }
            | TicketEvent::ItemReady { .. }
            | TicketEvent::ItemStepUndone { .. } => {}
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn noon(minute: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, 2, 12, 0, 0)
            .single()
            .expect("a valid time")
            + Duration::minutes(minute)
    }

    #[test]
    fn slots_start_on_the_quarter_hour() {
        assert_eq!(slot_start(noon(0)), noon(0));
        assert_eq!(slot_start(noon(14) + Duration::seconds(59)), noon(0));
        assert_eq!(slot_start(noon(15)), noon(15));
        assert_eq!(slot_start(noon(-1)), noon(-15));
    }

    #[test]
    fn a_full_slot_refuses_and_names_the_next_slot_with_room() {
        let load = Load::new(noon(0), &[noon(20), noon(25), noon(33)], Some(2));
        assert_eq!(load.booked(noon(15)), 2);
        assert_eq!(
            load.place(noon(18), None),
            Err(SlotRefusal::Full {
                slot_start: noon(15),
                next_available_at: Some(noon(30)),
            })
        );
        assert_eq!(load.place(noon(5), None), Ok(noon(5)));
    }

    #[test]
    fn a_scheduled_order_takes_a_later_slot_with_room_but_not_an_earlier_time() {
        let load = Load::new(noon(0), &[noon(20), noon(25)], Some(2));
        assert_eq!(load.place(noon(18), Some(noon(31))), Ok(noon(31)));
        assert_eq!(
            load.place(noon(18), Some(noon(10))),
            Err(SlotRefusal::TooSoon { earliest: noon(18) })
        );
        assert_eq!(
            load.place(noon(18), Some(noon(29))).map_err(|e| e.code()),
            Err("kitchen-slot-full")
        );
    }

    #[test]
    fn overdue_tickets_count_now_and_forgotten_ones_not_at_all() {
        let load = Load::new(noon(0), &[noon(-20), noon(-8 * 60)], Some(1));
        assert_eq!(load.booked(noon(0)), 1);
        assert_eq!(load.booked(noon(-15)), 0);
        assert!(!load.has_room(noon(0)));
        assert!(load.has_room(noon(15)));
    }

    #[test]
    fn without_a_limit_every_slot_has_room() {
        let load = Load::new(noon(0), &[noon(20); 50], None);
        assert_eq!(load.place(noon(18), None), Ok(noon(18)));
    }
}
