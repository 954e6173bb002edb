//! The kitchen queue: every ticket with its items and their progress, for the kitchen screen
//! (`GET /tickets`, `GET /tickets/stream`). Fed by the kitchen's own `kitchen.ticket.*` events.
//!
//! Station routing: the kitchen keeps a small table of the menu's dishes (`kitchen_dishes`:
//! station and preparation minutes), fed by a second subscription, to the orders service's
//! `orders.dish.*` events. When a ticket opens, each item gets its dish's station and minutes
//! (a dish the kitchen has not heard of: station `main`, 15 minutes), and the ticket's target
//! is the longest of them. They are copied onto the ticket then, like the price on an order:
//! editing a dish later does not move a ticket already on the pass. (A rebuild copies them
//! again from the dishes as they are at that time.)
//!
//! Ready-time quotes (`kitchen.estimate.*`, from the kitchen's estimator) are kept beside the
//! queue in `kitchen_estimates` by a third subscription, and shown on each ticket.

use brigade_domain::kitchen::estimate::PrepSample;
use brigade_domain::kitchen::{EstimateEvent, ItemStatus, TicketEvent};
use brigade_domain::ordering::{Dish, DishEvent};
use brigade_nats::{EventHandler, HandlerError, Migration, ReceivedEvent, Subscription};
use chrono::{DateTime, Duration, Utc};
use poem_openapi::{Enum, Object};
use serde::{Deserialize, Serialize};
use sqlx::types::Json;
use sqlx::{FromRow, PgConnection, PgPool};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use uuid::Uuid;

use crate::feed;
use crate::menu::AllergenName;

/// The durable consumer (and feed) name of this projection.
pub const NAME: &str = "kitchen-queue";
/// The durable consumer that keeps the kitchen's copy of the dishes' stations.
pub const DISHES_NAME: &str = "kitchen-dishes";
/// The durable consumer that keeps the latest ready-time quote of each ticket.
pub const ESTIMATES_NAME: &str = "kitchen-estimates";
/// The feed live kitchen screens follow; keys are order ids.
pub const FEED: &str = "kitchen";
/// The station of a dish the kitchen does not know (the menu's own default).
pub const DEFAULT_STATION: &str = Dish::DEFAULT_STATION;
/// The preparation minutes of a dish the kitchen does not know.
pub const DEFAULT_PREP_MINUTES: u32 = 15;

/// Schema of the read model.
pub const MIGRATIONS: &[Migration] = &[
    Migration {
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
    },
    Migration {
        name: "0201_kitchen_queue_routing",
        // `kitchen_dishes` is named `public.` and created `IF NOT EXISTS` on purpose: a rebuild
        // replays these migrations into a shadow schema first on the search path, and the
        // dishes (fed from the orders stream, not from tickets) must not be shadowed by an
        // empty copy there.
        sql: r"
CREATE TABLE IF NOT EXISTS public.kitchen_dishes (
    dish_id      uuid    PRIMARY KEY,
    station      text    NOT NULL,
    prep_minutes integer NOT NULL
);
ALTER TABLE kitchen_queue
    ADD COLUMN target_minutes     integer NOT NULL DEFAULT 15,
    ADD COLUMN estimated_ready_at timestamptz;
CREATE INDEX kitchen_queue_closed ON kitchen_queue (closed_at) WHERE status <> 'open';
",
    },
    Migration {
        name: "0202_kitchen_estimates",
        // Quotes moved off the ticket to their own stream (`kitchen.estimate.*`), so they are
        // kept beside the queue rather than in it: a rebuild of the queue, which replays only
        // ticket events, must not lose them. Same `public.` / `IF NOT EXISTS` reason as 0201.
        sql: r"
CREATE TABLE IF NOT EXISTS public.kitchen_estimates (
    order_id  uuid        PRIMARY KEY,
    ready_at  timestamptz NOT NULL,
    quoted_at timestamptz NOT NULL
);
ALTER TABLE kitchen_queue DROP COLUMN IF EXISTS estimated_ready_at;
",
    },
    Migration {
        name: "0203_kitchen_queue_allergies",
        sql: r"
ALTER TABLE kitchen_queue
    ADD COLUMN allergies     jsonb NOT NULL DEFAULT '[]',
    ADD COLUMN scheduled_for timestamptz;
",
    },
];

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

impl From<ItemStatus> for ItemState {
    fn from(status: ItemStatus) -> Self {
        match status {
            ItemStatus::Pending => ItemState::Pending,
            ItemStatus::InPreparation => ItemState::InPreparation,
            ItemStatus::Ready => ItemState::Ready,
        }
    }
}

fn default_station() -> String {
    DEFAULT_STATION.to_owned()
}

fn default_prep_minutes() -> u32 {
    DEFAULT_PREP_MINUTES
}

/// One line of a ticket on the kitchen screen.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Object)]
#[serde(rename_all = "camelCase")]
#[oai(rename_all = "camelCase", skip_serializing_if_is_none)]
pub struct QueuedItem {
    /// Position on the ticket, from 0: the `{index}` of the item endpoints.
    pub index: u32,
    pub dish_id: Uuid,
    pub dish_name: String,
    pub quantity: u32,
    /// The customer's note ("sans oignons"), verbatim.
    pub note: Option<String>,
    /// The options the customer picked, as labels ("Cuisson: saignant").
    #[serde(default)]
    #[oai(default)]
    pub options: Vec<String>,
    pub status: ItemState,
    pub started_at: Option<DateTime<Utc>>,
    pub ready_at: Option<DateTime<Utc>>,
    /// The station that cooks it (grill, cold, pastry…): its dish's, `main` when unknown.
    #[serde(default = "default_station")]
    pub station: String,
    /// Its dish's preparation time (15 when unknown).
    #[serde(default = "default_prep_minutes")]
    pub prep_minutes: u32,
}

/// One ticket on the kitchen screen.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Object)]
#[serde(rename_all = "camelCase")]
#[oai(rename_all = "camelCase", skip_serializing_if_is_none)]
pub struct QueuedTicket {
    pub order_id: Uuid,
    pub placed_at: DateTime<Utc>,
    pub status: TicketState,
    pub items: Vec<QueuedItem>,
    /// Why it was rejected.
    pub reason: Option<String>,
    /// When it became ready, rejected or cancelled.
    pub closed_at: Option<DateTime<Utc>>,
    /// Sequence of the last ticket event applied: a screen ignores an older copy. (A new
    /// quote alone, `estimatedReadyAt`, is pushed with the same version.)
    pub version: i64,
    /// The preparation target: the longest preparation time of its dishes.
    pub target_minutes: u32,
    /// `placedAt` + `targetMinutes`.
    pub target_at: DateTime<Utc>,
    /// Seconds from `placedAt` to the time of the answer (open), or to `closedAt`. A screen
    /// keeps counting from `placedAt` itself between two changes.
    pub elapsed_seconds: i64,
    /// Open past its `targetAt`, or made ready after it.
    pub late: bool,
    /// The kitchen's current quote of when it will be ready, from the live load
    /// (`kitchen.estimate.ticket_estimated`); none until the first quote.
    pub estimated_ready_at: Option<DateTime<Utc>>,
    /// The customer's declared allergens: the screen shows them as an allergy banner.
    /// Empty: no allergy declared.
    #[serde(default)]
    #[oai(default)]
    pub allergies: Vec<AllergenName>,
    /// When a scheduled order is to be ready; absent: as soon as possible.
    #[serde(default)]
    pub scheduled_for: Option<DateTime<Utc>>,
}

impl QueuedTicket {
    /// Fills in the fields that depend on the time: `targetAt`, `elapsedSeconds`, `late`.
    #[must_use]
    pub fn timed(mut self, now: DateTime<Utc>) -> Self {
        self.target_at = self.placed_at + Duration::minutes(i64::from(self.target_minutes));
        let until = match self.status {
            TicketState::Open => now,
            _ => self.closed_at.unwrap_or(now),
        };
        self.elapsed_seconds = (until - self.placed_at).num_seconds().max(0);
        self.late = match self.status {
            TicketState::Open | TicketState::Ready => until > self.target_at,
            TicketState::Rejected | TicketState::Cancelled => false,
        };
        self
    }

    /// Where it stands in the queue: by when it should start, a scheduled ticket its time
    /// less its target minutes, any other when it was placed (ties by order id).
    #[must_use]
    pub fn queue_position(&self) -> (DateTime<Utc>, Uuid) {
        let start = self.scheduled_for.map_or(self.placed_at, |at| {
            at - Duration::minutes(i64::from(self.target_minutes))
        });
        (start, self.order_id)
    }

    /// The ticket as one station's screen shows it: only that station's items (each keeps
    /// its `index`), or nothing when it has none.
    #[must_use]
    pub fn for_station(mut self, station: &str) -> Option<Self> {
        self.items.retain(|item| item.station == station);
        (!self.items.is_empty()).then_some(self)
    }
}

/// The preparation target of a ticket: its longest dish.
#[must_use]
pub fn target_minutes(items: &[QueuedItem]) -> u32 {
    items
        .iter()
        .map(|item| item.prep_minutes)
        .max()
        .unwrap_or(DEFAULT_PREP_MINUTES)
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
    target_minutes: i32,
    estimated_ready_at: Option<DateTime<Utc>>,
    allergies: Json<Vec<AllergenName>>,
    scheduled_for: Option<DateTime<Utc>>,
}

impl Row {
    fn into_ticket(self, now: DateTime<Utc>) -> QueuedTicket {
        QueuedTicket {
            order_id: self.order_id,
            placed_at: self.placed_at,
            status: state_of(&self.status),
            items: self.items.0,
            reason: self.reason,
            closed_at: self.closed_at,
            version: self.version,
            target_minutes: u32::try_from(self.target_minutes).unwrap_or(DEFAULT_PREP_MINUTES),
            target_at: self.placed_at,
            elapsed_seconds: 0,
            late: false,
            estimated_ready_at: self.estimated_ready_at,
            allergies: self.allergies.0,
            scheduled_for: self.scheduled_for,
        }
        .timed(now)
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

/// A ticket's columns in `kitchen_queue` (a [`Row`] but its quote), for the two reads below.
macro_rules! ticket_columns {
    () => {
        "order_id, placed_at, status, items, reason, closed_at, version, target_minutes, \
         allergies, scheduled_for"
    };
}

const SELECT: &str = concat!(
    "SELECT ",
    ticket_columns!(),
    ", e.ready_at AS estimated_ready_at \
     FROM kitchen_queue LEFT JOIN kitchen_estimates e USING (order_id)"
);

/// [`SELECT`] for a few tickets named by id (`WHERE order_id = ANY($1)`), what a screen's
/// stream reads for every burst of changes: each quote looked up by its key rather than
/// joined. Same rows, planned faster, and PostgreSQL plans it on every call (a custom plan
/// for each array of ids): with the join, planning was 0.22 ms of a read's 0.32 at 75
/// orders/s; looked up, 0.16 of 0.24 (`pg_stat_statements`, BENCHMARKS.md).
const SELECT_BY_ID: &str = concat!(
    "SELECT ",
    ticket_columns!(),
    ", (SELECT e.ready_at FROM kitchen_estimates e WHERE e.order_id = q.order_id) \
     AS estimated_ready_at FROM kitchen_queue q WHERE order_id = ANY($1)"
);

/// Open tickets in queue order ([`QueuedTicket::queue_position`]), timed at `now`.
///
/// # Errors
/// A database error.
pub async fn open_tickets(
    pool: &PgPool,
    now: DateTime<Utc>,
) -> Result<Vec<QueuedTicket>, sqlx::Error> {
    let rows: Vec<Row> = sqlx::query_as(&format!("{SELECT} WHERE status = 'open'"))
        .fetch_all(pool)
        .await?;
    let mut open: Vec<QueuedTicket> = rows.into_iter().map(|row| row.into_ticket(now)).collect();
    open.sort_by_key(QueuedTicket::queue_position);
    Ok(open)
}

/// A copy of the open tickets kept in memory and caught up from the feed's changes: what the
/// kitchen's estimator quotes from several times a second. Reading every open ticket (items,
/// names, notes) for each pass cost a busy evening's thousands of rows to quote the few that
/// changed; with this, the whole queue is read at first and when changes may have been missed
/// ([`Self::missed_changes`]), and otherwise only the tickets the feed named since (its keys
/// are order ids: every move of a ticket and every new quote is a change of [`FEED`]).
#[derive(Debug)]
pub struct OpenTickets {
    by_order: HashMap<Uuid, QueuedTicket>,
    /// Tickets changed since the last read.
    changed: HashSet<Uuid>,
    /// The whole queue is to be read again.
    stale: bool,
}

impl Default for OpenTickets {
    fn default() -> Self {
        Self::new()
    }
}

impl OpenTickets {
    /// Nothing known yet: the first [`Self::catch_up`] reads the whole queue.
    #[must_use]
    pub fn new() -> Self {
        Self {
            by_order: HashMap::new(),
            changed: HashSet::new(),
            stale: true,
        }
    }

    /// A change of the kitchen feed: its ticket is read again at the next catch-up.
    pub fn note_change(&mut self, change: &feed::Change) {
        match change.key.parse() {
            Ok(order_id) => {
                self.changed.insert(order_id);
            }
            Err(_) => self.stale = true,
        }
    }

    /// Changes may have been missed: the next catch-up reads the whole queue.
    pub fn missed_changes(&mut self) {
        self.stale = true;
    }

    /// Reads what changed since the last catch-up (everything, when stale). What is to be
    /// read is forgotten only once read: after a database error the next catch-up reads it.
    ///
    /// # Errors
    /// A database error.
    pub async fn catch_up(&mut self, pool: &PgPool, now: DateTime<Utc>) -> Result<(), sqlx::Error> {
        if self.stale {
            let open = open_tickets(pool, now).await?;
            self.by_order = open.into_iter().map(|t| (t.order_id, t)).collect();
            (self.stale, self.changed) = (false, HashSet::new());
        } else if !self.changed.is_empty() {
            let ids: Vec<Uuid> = self.changed.iter().copied().collect();
            let read = tickets(pool, &ids, now).await?;
            for order_id in self.changed.drain() {
                self.by_order.remove(&order_id);
            }
            let still_open = read.into_iter().filter(|t| t.status == TicketState::Open);
            self.by_order.extend(still_open.map(|t| (t.order_id, t)));
        }
        Ok(())
    }

    /// The open tickets in queue order, each as it was last read (its time-dependent fields,
    /// `elapsedSeconds` and `late`, are as of that read).
    #[must_use]
    pub fn in_order(&self) -> Vec<&QueuedTicket> {
        let mut open: Vec<&QueuedTicket> = self.by_order.values().collect();
        open.sort_by_key(|ticket| ticket.queue_position());
        open
    }
}

/// Tickets closed (ready, rejected or cancelled) since `since`, most recently closed first.
///
/// # Errors
/// A database error.
pub async fn closed_since(
    pool: &PgPool,
    since: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<Vec<QueuedTicket>, sqlx::Error> {
    let rows: Vec<Row> = sqlx::query_as(&format!(
        "{SELECT} WHERE status <> 'open' AND closed_at >= $1 ORDER BY closed_at DESC, order_id"
    ))
    .bind(since)
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().map(|row| row.into_ticket(now)).collect())
}

/// How long each line finished since `since` took, from started to ready, beside its dish's
/// preparation minutes: what the estimator learns the kitchen's pace from. Read in SQL, line
/// by line, so that only the two numbers of each finished line leave the database, not every
/// ticket of the period (a busy evening's thousands, each with its names and notes).
///
/// # Errors
/// A database error.
pub async fn prep_samples(
    pool: &PgPool,
    since: DateTime<Utc>,
) -> Result<Vec<PrepSample>, sqlx::Error> {
    let rows: Vec<(i64, i32)> = sqlx::query_as(
        "SELECT trunc(extract(epoch FROM ready_at - started_at))::bigint,
                coalesce((item->>'prepMinutes')::integer, $2)
           FROM kitchen_queue,
                jsonb_array_elements(items) AS item,
                LATERAL (SELECT (item->>'startedAt')::timestamptz AS started_at,
                                (item->>'readyAt')::timestamptz AS ready_at) AS line
          WHERE placed_at >= $1 AND started_at IS NOT NULL AND ready_at >= $1",
    )
    .bind(since)
    .bind(i32::try_from(DEFAULT_PREP_MINUTES).unwrap_or(i32::MAX))
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(actual_secs, prep_minutes)| PrepSample {
            actual_secs,
            prep_minutes: u32::try_from(prep_minutes).unwrap_or(0),
        })
        .collect())
}

/// One ticket, whatever its state, timed at `now`.
///
/// # Errors
/// A database error.
pub async fn ticket(
    pool: &PgPool,
    order_id: Uuid,
    now: DateTime<Utc>,
) -> Result<Option<QueuedTicket>, sqlx::Error> {
    Ok(tickets(pool, &[order_id], now).await?.pop())
}

/// The tickets of several orders in one read, timed at `now` (an order with no ticket is
/// absent): what a kitchen screen's stream reads for a burst of changes.
///
/// # Errors
/// A database error.
pub async fn tickets(
    pool: &PgPool,
    order_ids: &[Uuid],
    now: DateTime<Utc>,
) -> Result<Vec<QueuedTicket>, sqlx::Error> {
    let rows: Vec<Row> = sqlx::query_as(SELECT_BY_ID)
        .bind(order_ids)
        .fetch_all(pool)
        .await?;
    Ok(rows.into_iter().map(|row| row.into_ticket(now)).collect())
}

/// The name a dish had on its latest ticket (the kitchen's copy of the menu keeps no names),
/// for the record of a chef saying it ran out.
///
/// # Errors
/// A database error.
pub async fn dish_name(pool: &PgPool, dish_id: Uuid) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT item->>'dishName' FROM kitchen_queue, jsonb_array_elements(items) AS item
          WHERE item->>'dishId' = $1 ORDER BY placed_at DESC LIMIT 1",
    )
    .bind(dish_id.to_string())
    .fetch_optional(pool)
    .await
}

/// The kitchen's day so far: closed tickets since `since` (the start of the day).
#[derive(Debug, Clone, PartialEq)]
pub struct DayStats {
    pub ready: i64,
    /// Made ready after their target.
    pub ready_late: i64,
    pub rejected: i64,
    pub cancelled: i64,
    /// From the order being placed to the ticket being ready, over the tickets made ready.
    pub average_prep_seconds: Option<f64>,
    pub p90_prep_seconds: Option<f64>,
}

/// What the kitchen has closed since `since`.
///
/// # Errors
/// A database error.
pub async fn day_stats(pool: &PgPool, since: DateTime<Utc>) -> Result<DayStats, sqlx::Error> {
    let row: (i64, i64, i64, i64, Option<f64>, Option<f64>) = sqlx::query_as(
        "SELECT count(*) FILTER (WHERE status = 'ready'),
                count(*) FILTER (WHERE status = 'ready'
                                   AND closed_at > placed_at + target_minutes * interval '1 minute'),
                count(*) FILTER (WHERE status = 'rejected'),
                count(*) FILTER (WHERE status = 'cancelled'),
                (avg(extract(epoch FROM closed_at - placed_at)) FILTER (WHERE status = 'ready'))::float8,
                percentile_cont(0.9) WITHIN GROUP (ORDER BY extract(epoch FROM closed_at - placed_at)::float8)
                    FILTER (WHERE status = 'ready')
         FROM kitchen_queue WHERE status <> 'open' AND closed_at >= $1",
    )
    .bind(since)
    .fetch_one(pool)
    .await?;
    Ok(DayStats {
        ready: row.0,
        ready_late: row.1,
        rejected: row.2,
        cancelled: row.3,
        average_prep_seconds: row.4,
        p90_prep_seconds: row.5,
    })
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

/// The subscription that keeps the kitchen's copy of the dishes' stations and minutes.
#[must_use]
pub fn dishes_subscription() -> Subscription {
    Subscription {
        name: DISHES_NAME.to_owned(),
        source: "orders",
        aggregate_types: vec!["dish"],
        handler: Arc::new(KitchenDishes),
    }
}

/// The subscription that keeps the latest quote of each ticket.
#[must_use]
pub fn estimates_subscription() -> Subscription {
    Subscription {
        name: ESTIMATES_NAME.to_owned(),
        source: "kitchen",
        aggregate_types: vec!["estimate"],
        handler: Arc::new(KitchenEstimates),
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
        let order_id: Uuid = envelope.aggregate_uuid("ticket")?;
        let ticket_event: TicketEvent = envelope
            .decode()
            .map_err(|e| HandlerError::Permanent(format!("not a ticket event: {e}")))?;
        let version = envelope.sequence;
        match ticket_event {
            TicketEvent::TicketOpened {
                placed_at,
                items,
                at,
                allergies,
                scheduled_for,
                ..
            } => {
                let dish_ids: Vec<Uuid> = items.iter().map(|item| item.dish_id).collect();
                let routes = routes(tx, &dish_ids).await?;
                let items = queued_items(items, &routes);
                let target = i32::try_from(target_minutes(&items)).unwrap_or(i32::MAX);
                let allergies: Vec<AllergenName> =
                    allergies.into_iter().map(AllergenName::from).collect();
                sqlx::query(
                    "INSERT INTO kitchen_queue (order_id, placed_at, opened_at, status, items, version, target_minutes, allergies, scheduled_for)
                     VALUES ($1, $2, $3, 'open', $4, $5, $6, $7, $8) ON CONFLICT (order_id) DO NOTHING",
                )
                .bind(order_id)
                .bind(placed_at)
                .bind(at)
                .bind(Json(items))
                .bind(version)
                .bind(target)
                .bind(Json(allergies))
                .bind(scheduled_for)
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
            TicketEvent::ItemStepUndone { index, to, .. } => {
                update_item(tx, order_id, index, version, |item| {
                    item.status = to.into();
                    if to != ItemStatus::Ready {
                        item.ready_at = None;
                    }
                    if to == ItemStatus::Pending {
                        item.started_at = None;
                    }
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

    /// The same changes as [`handle`](Self::handle) on each event in turn, in bulk: one read
    /// of the tickets the run touches, one of their dishes' routes, the run folded in memory,
    /// one upsert. No feed change is recorded: only rebuilds call this, and their feed is a
    /// shadow copy that is thrown away.
    async fn handle_many(
        &self,
        events: &[ReceivedEvent],
        tx: &mut PgConnection,
    ) -> Result<(), HandlerError> {
        let mut decoded = Vec::with_capacity(events.len());
        for event in events {
            let envelope = &event.envelope;
            let order_id: Uuid = envelope.aggregate_uuid("ticket")?;
            let ticket_event: TicketEvent = envelope
                .decode()
                .map_err(|e| HandlerError::Permanent(format!("not a ticket event: {e}")))?;
            decoded.push((order_id, envelope.sequence, ticket_event));
        }
        let mut ids: Vec<Uuid> = decoded.iter().map(|(id, _, _)| *id).collect();
        ids.sort_unstable();
        ids.dedup();
        let mut tickets: HashMap<Uuid, Option<StoredTicket>> = sqlx::query_as::<_, StoredTicket>(
            "SELECT order_id, placed_at, opened_at, status, items, reason, closed_at, version,
                    target_minutes, allergies, scheduled_for
               FROM kitchen_queue WHERE order_id = ANY($1)",
        )
        .bind(&ids)
        .fetch_all(&mut *tx)
        .await?
        .into_iter()
        .map(|ticket| (ticket.order_id, Some(ticket)))
        .collect();
        let mut dish_ids: Vec<Uuid> = decoded
            .iter()
            .filter_map(|(_, _, event)| match event {
                TicketEvent::TicketOpened { items, .. } => Some(items.iter().map(|i| i.dish_id)),
                _ => None,
            })
            .flatten()
            .collect();
        dish_ids.sort_unstable();
        dish_ids.dedup();
        let routes = routes(tx, &dish_ids).await?;

        let mut changed: Vec<Uuid> = Vec::new();
        for (order_id, version, event) in decoded {
            let slot = tickets.entry(order_id).or_insert(None);
            let touched = fold(slot, order_id, version, event, &routes)?;
            if touched {
                changed.push(order_id);
            }
        }
        changed.sort_unstable();
        changed.dedup();
        let rows: Vec<&StoredTicket> = changed
            .iter()
            .filter_map(|id| tickets.get(id).and_then(Option::as_ref))
            .collect();
        if rows.is_empty() {
            return Ok(());
        }
        sqlx::query(
            "INSERT INTO kitchen_queue (order_id, placed_at, opened_at, status, items, reason,
                                        closed_at, version, target_minutes, allergies,
                                        scheduled_for)
             SELECT * FROM UNNEST($1::uuid[], $2::timestamptz[], $3::timestamptz[], $4::text[],
                                  $5::jsonb[], $6::text[], $7::timestamptz[], $8::bigint[],
                                  $9::integer[], $10::jsonb[], $11::timestamptz[])
             ON CONFLICT (order_id) DO UPDATE SET
                 placed_at = EXCLUDED.placed_at, opened_at = EXCLUDED.opened_at,
                 status = EXCLUDED.status, items = EXCLUDED.items, reason = EXCLUDED.reason,
                 closed_at = EXCLUDED.closed_at, version = EXCLUDED.version,
                 target_minutes = EXCLUDED.target_minutes, allergies = EXCLUDED.allergies,
                 scheduled_for = EXCLUDED.scheduled_for",
        )
        .bind(rows.iter().map(|t| t.order_id).collect::<Vec<_>>())
        .bind(rows.iter().map(|t| t.placed_at).collect::<Vec<_>>())
        .bind(rows.iter().map(|t| t.opened_at).collect::<Vec<_>>())
        .bind(rows.iter().map(|t| t.status.clone()).collect::<Vec<_>>())
        .bind(
            rows.iter()
                .map(|t| Json(t.items.0.clone()))
                .collect::<Vec<_>>(),
        )
        .bind(rows.iter().map(|t| t.reason.clone()).collect::<Vec<_>>())
        .bind(rows.iter().map(|t| t.closed_at).collect::<Vec<_>>())
        .bind(rows.iter().map(|t| t.version).collect::<Vec<_>>())
        .bind(rows.iter().map(|t| t.target_minutes).collect::<Vec<_>>())
        .bind(
            rows.iter()
                .map(|t| Json(t.allergies.0.clone()))
                .collect::<Vec<_>>(),
        )
        .bind(rows.iter().map(|t| t.scheduled_for).collect::<Vec<_>>())
        .execute(&mut *tx)
        .await?;
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

/// Station and minutes of each of `dish_ids`, from the kitchen's copy of the menu.
async fn routes(
    tx: &mut PgConnection,
    dish_ids: &[Uuid],
) -> Result<HashMap<Uuid, (String, i32)>, sqlx::Error> {
    Ok(sqlx::query_as::<_, (Uuid, String, i32)>(
        "SELECT dish_id, station, prep_minutes FROM kitchen_dishes WHERE dish_id = ANY($1)",
    )
    .bind(dish_ids)
    .fetch_all(&mut *tx)
    .await?
    .into_iter()
    .map(|(dish_id, station, minutes)| (dish_id, (station, minutes)))
    .collect())
}

/// A new ticket's lines, each pending, with its dish's station and minutes.
fn queued_items(
    items: Vec<brigade_domain::kitchen::NewTicketItem>,
    routes: &HashMap<Uuid, (String, i32)>,
) -> Vec<QueuedItem> {
    items
        .into_iter()
        .enumerate()
        .map(|(index, item)| {
            let (station, prep_minutes) = routes.get(&item.dish_id).map_or_else(
                || (default_station(), DEFAULT_PREP_MINUTES),
                |(station, minutes)| {
                    (
                        station.clone(),
                        u32::try_from(*minutes).unwrap_or(DEFAULT_PREP_MINUTES),
                    )
                },
            );
            QueuedItem {
                index: u32::try_from(index).unwrap_or(u32::MAX),
                dish_id: item.dish_id,
                dish_name: item.dish_name,
                quantity: item.quantity,
                note: item.note,
                options: item.options,
                status: ItemState::Pending,
                started_at: None,
                ready_at: None,
                station,
                prep_minutes,
            }
        })
        .collect()
}

/// One row of `kitchen_queue`, as stored.
#[derive(FromRow)]
struct StoredTicket {
    order_id: Uuid,
    placed_at: DateTime<Utc>,
    opened_at: DateTime<Utc>,
    status: String,
    items: Json<Vec<QueuedItem>>,
    reason: Option<String>,
    closed_at: Option<DateTime<Utc>>,
    version: i64,
    target_minutes: i32,
    allergies: Json<Vec<AllergenName>>,
    scheduled_for: Option<DateTime<Utc>>,
}

/// What [`KitchenQueue::handle`] does to one row, done to the row in memory (`None`: no row).
/// Returns whether the row changed.
fn fold(
    slot: &mut Option<StoredTicket>,
    order_id: Uuid,
    version: i64,
    event: TicketEvent,
    routes: &HashMap<Uuid, (String, i32)>,
) -> Result<bool, HandlerError> {
    match event {
        TicketEvent::TicketOpened {
            placed_at,
            items,
            at,
            allergies,
            scheduled_for,
            ..
        } => {
            // `ON CONFLICT DO NOTHING`: a ticket opens once.
            if slot.is_some() {
                return Ok(false);
            }
            let items = queued_items(items, routes);
            *slot = Some(StoredTicket {
                order_id,
                placed_at,
                opened_at: at,
                status: "open".to_owned(),
                target_minutes: i32::try_from(target_minutes(&items)).unwrap_or(i32::MAX),
                items: Json(items),
                reason: None,
                closed_at: None,
                version,
                allergies: Json(allergies.into_iter().map(AllergenName::from).collect()),
                scheduled_for,
            });
        }
        TicketEvent::ItemStarted { index, at } => {
            let item = item_of(slot, order_id, index, version)?;
            item.status = ItemState::InPreparation;
            item.started_at = Some(at);
        }
        TicketEvent::ItemReady { index, at } => {
            let item = item_of(slot, order_id, index, version)?;
            item.status = ItemState::Ready;
            item.ready_at = Some(at);
        }
        TicketEvent::ItemStepUndone { index, to, .. } => {
            let item = item_of(slot, order_id, index, version)?;
            item.status = to.into();
            if to != ItemStatus::Ready {
                item.ready_at = None;
            }
            if to == ItemStatus::Pending {
                item.started_at = None;
            }
        }
        TicketEvent::TicketReady { at } => {
            return Ok(close_in_memory(slot, "ready", None, at, version))
        }
        TicketEvent::TicketRejected { reason, at } => {
            return Ok(close_in_memory(slot, "rejected", Some(reason), at, version))
        }
        TicketEvent::TicketCancelled { at } => {
            return Ok(close_in_memory(slot, "cancelled", None, at, version))
        }
    }
    Ok(true)
}

/// The item `index` of the ticket in memory, its version moved to `version`: what
/// `update_item` finds with `SELECT … FOR UPDATE`.
fn item_of(
    slot: &mut Option<StoredTicket>,
    order_id: Uuid,
    index: usize,
    version: i64,
) -> Result<&mut QueuedItem, HandlerError> {
    let Some(ticket) = slot.as_mut() else {
        return Err(HandlerError::Permanent(format!(
            "no ticket {order_id} in the queue"
        )));
    };
    ticket.version = version;
    ticket
        .items
        .0
        .get_mut(index)
        .ok_or_else(|| HandlerError::Permanent(format!("ticket {order_id} has no item {index}")))
}

/// `close`, in memory: an `UPDATE` of a row that is not there changes nothing.
fn close_in_memory(
    slot: &mut Option<StoredTicket>,
    status: &str,
    reason: Option<String>,
    at: DateTime<Utc>,
    version: i64,
) -> bool {
    let Some(ticket) = slot.as_mut() else {
        return false;
    };
    status.clone_into(&mut ticket.status);
    ticket.reason = reason;
    ticket.closed_at = Some(at);
    ticket.version = version;
    true
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

/// Keeps `kitchen_dishes` (station and minutes of every dish of the menu) from the orders
/// service's `dish` events. Nothing watches it live, so it records no feed change.
pub struct KitchenDishes;

#[async_trait::async_trait]
impl EventHandler for KitchenDishes {
    async fn handle(
        &self,
        event: &ReceivedEvent,
        tx: &mut PgConnection,
    ) -> Result<(), HandlerError> {
        let envelope = &event.envelope;
        let dish_id: Uuid = envelope.aggregate_uuid("dish")?;
        let dish_event: DishEvent = envelope
            .decode()
            .map_err(|e| HandlerError::Permanent(format!("not a dish event: {e}")))?;
        match dish_event {
            DishEvent::DishAdded {
                station,
                prep_minutes,
                ..
            } => {
                sqlx::query(
                    "INSERT INTO kitchen_dishes (dish_id, station, prep_minutes) VALUES ($1, $2, $3)
                     ON CONFLICT (dish_id) DO UPDATE SET station = EXCLUDED.station,
                                                         prep_minutes = EXCLUDED.prep_minutes",
                )
                .bind(dish_id)
                .bind(station)
                .bind(i32::try_from(prep_minutes).unwrap_or(i32::MAX))
                .execute(&mut *tx)
                .await?;
            }
            DishEvent::DishUpdated {
                station,
                prep_minutes,
                ..
            } if station.is_some() || prep_minutes.is_some() => {
                sqlx::query(
                    "UPDATE kitchen_dishes SET station = coalesce($2, station),
                                               prep_minutes = coalesce($3, prep_minutes)
                     WHERE dish_id = $1",
                )
                .bind(dish_id)
                .bind(station)
                .bind(prep_minutes.map(|m| i32::try_from(m).unwrap_or(i32::MAX)))
                .execute(&mut *tx)
                .await?;
            }
            // Only these two carry a station or minutes; the menu's other facts (availability,
            // photo, position…) are none of the kitchen's business.
            _ => {}
        }
        Ok(())
    }
}

/// Keeps `kitchen_estimates`, the latest quote of each ticket, and tells the screens.
pub struct KitchenEstimates;

#[async_trait::async_trait]
impl EventHandler for KitchenEstimates {
    async fn handle(
        &self,
        event: &ReceivedEvent,
        tx: &mut PgConnection,
    ) -> Result<(), HandlerError> {
        let EstimateEvent::TicketEstimated {
            order_id,
            ready_at,
            at,
        } = event
            .envelope
            .decode()
            .map_err(|e| HandlerError::Permanent(format!("not an estimate event: {e}")))?;
        sqlx::query(
            "INSERT INTO kitchen_estimates (order_id, ready_at, quoted_at) VALUES ($1, $2, $3)
             ON CONFLICT (order_id) DO UPDATE SET ready_at = EXCLUDED.ready_at,
                                                  quoted_at = EXCLUDED.quoted_at",
        )
        .bind(order_id)
        .bind(ready_at)
        .bind(at)
        .execute(&mut *tx)
        .await?;
        feed::record(tx, FEED, &order_id.to_string()).await?;
        Ok(())
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn noon(minute: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2025, 1, 15, 12, minute, 0)
            .single()
            .expect("a valid fixed date")
    }

    fn item(index: u32, station: &str, prep_minutes: u32) -> QueuedItem {
        QueuedItem {
            index,
            dish_id: Uuid::from_u128(u128::from(index)),
            dish_name: format!("Plat {index}"),
            quantity: 1,
            note: None,
            options: Vec::new(),
            status: ItemState::Pending,
            started_at: None,
            ready_at: None,
            station: station.into(),
            prep_minutes,
        }
    }

    fn ticket(status: TicketState, closed_at: Option<DateTime<Utc>>) -> QueuedTicket {
        let items = vec![item(0, "grill", 12), item(1, "cold", 5)];
        QueuedTicket {
            order_id: Uuid::from_u128(1),
            placed_at: noon(0),
            status,
            target_minutes: target_minutes(&items),
            items,
            reason: None,
            closed_at,
            version: 1,
            target_at: noon(0),
            elapsed_seconds: 0,
            late: false,
            estimated_ready_at: None,
            allergies: Vec::new(),
            scheduled_for: None,
        }
    }

    #[test]
    fn a_ticket_is_late_once_open_past_its_longest_dish() {
        let open = ticket(TicketState::Open, None);
        assert_eq!(open.target_minutes, 12);
        let on_time = open.clone().timed(noon(12));
        assert_eq!(on_time.target_at, noon(12));
        assert_eq!(on_time.elapsed_seconds, 720);
        assert!(!on_time.late);
        assert!(open.timed(noon(13)).late);
        // Closed: the clock stops at closing.
        let ready = ticket(TicketState::Ready, Some(noon(14))).timed(noon(40));
        assert_eq!(ready.elapsed_seconds, 14 * 60);
        assert!(ready.late);
        assert!(
            !ticket(TicketState::Cancelled, Some(noon(30)))
                .timed(noon(40))
                .late
        );
        assert_eq!(target_minutes(&[]), DEFAULT_PREP_MINUTES);
    }

    #[test]
    fn a_station_sees_only_its_items_and_keeps_their_index() {
        let cold = ticket(TicketState::Open, None)
            .for_station("cold")
            .expect("a cold item");
        assert_eq!(cold.items.len(), 1);
        assert_eq!(cold.items[0].index, 1);
        assert!(ticket(TicketState::Open, None)
            .for_station("pastry")
            .is_none());
    }

    #[test]
    fn items_stored_before_routing_read_as_the_main_station() {
        let stored = serde_json::json!({
            "index": 0, "dishId": Uuid::nil(), "dishName": "Soupe", "quantity": 1,
            "note": null, "status": "pending", "startedAt": null, "readyAt": null
        });
        let item: QueuedItem = serde_json::from_value(stored).expect("an old item reads");
        assert_eq!(item.station, "main");
        assert_eq!(item.prep_minutes, 15);
        assert!(item.options.is_empty());
    }
}
