//! The ready-time estimator: quotes when each open ticket will be ready, from the live load,
//! and records the quote as a `ReadyEstimate` (published on `kitchen.estimate.ticket_estimated`).
//!
//! Why durable events on their own stream rather than a `kitchen.load` message: a quote is
//! about one order, and its readers (the orders service, to tell the customer; dispatch, to
//! send a courier to arrive as the food does) get it through the same machinery as every
//! other fact: outbox, in order per order, applied once, never lost while a reader is down,
//! and kept in the order's history (what was promised, what happened). Why not on the ticket
//! itself: see `brigade_domain::kitchen::ReadyEstimate`. The rate limit is the aggregate's:
//! a quote is recorded only when it moves by two minutes or more.
//!
//! The estimator runs in every replica, after each change of the queue (debounced) and every
//! [`TICK`] (time alone moves the quote of a late ticket). It keeps the open tickets between
//! passes and reads again only those that changed ([`OpenTickets`]); a pass records its quotes
//! sixteen to a transaction, and the pace it learns from the finished lines is read once per
//! tick.
//! Replicas racing on one order are harmless: the second quote is within the threshold and
//! records nothing, and a concurrency conflict is simply left to the next pass.

use std::time::Duration as StdDuration;

use brigade_domain::kitchen::estimate::{self, KitchenModel, LoadItem, LoadTicket};
use brigade_domain::kitchen::{EstimateCommand, ItemStatus, ReadyEstimate};
use brigade_domain::Actor;
use brigade_nats::store::{self, CommandMetadata};
use brigade_projections::feed::{Change, FeedHub};
use brigade_projections::kitchen_queue::{self, ItemState, OpenTickets, QueuedTicket};
use chrono::{DateTime, Duration, Utc};
use cqrs_es::AggregateError;
use sqlx::PgPool;
use tokio::sync::{broadcast, watch};
use uuid::Uuid;

/// How often the quotes are refreshed when nothing happens in the kitchen.
pub const TICK: StdDuration = StdDuration::from_secs(20);
/// A pass commits its quotes this many at a time: one commit for many, without sending the
/// screens and the quotes' readers hundreds at once when the queue is long.
const QUOTES_PER_COMMIT: usize = 16;
/// Changes arriving within this delay are handled in one pass.
const DEBOUNCE: StdDuration = StdDuration::from_millis(300);
/// How far back finished lines teach the estimator the kitchen's pace.
pub const PACE_HISTORY_HOURS: i64 = 3;

/// The kitchen's load at one instant: open tickets (oldest first) and its model.
#[derive(Debug, Clone)]
pub struct Load {
    pub now: DateTime<Utc>,
    pub open: Vec<QueuedTicket>,
    pub model: KitchenModel,
}

impl Load {
    /// Reads the open tickets and the kitchen's pace from the queue.
    ///
    /// # Errors
    /// A database error.
    pub async fn read(
        pool: &PgPool,
        now: DateTime<Utc>,
        lanes_per_station: u32,
    ) -> Result<Self, sqlx::Error> {
        let model = KitchenModel {
            lanes_per_station,
            pace: read_pace(pool, now).await?,
        };
        let open = kitchen_queue::open_tickets(pool, now).await?;
        Ok(Self { now, open, model })
    }

    fn tickets(&self) -> Vec<LoadTicket<'_>> {
        self.open.iter().map(load_ticket).collect()
    }

    /// How many minutes a new order (one dish of the default station and minutes) would take.
    #[must_use]
    pub fn new_order_minutes(&self) -> i64 {
        let ready_at = estimate::quote(
            &self.tickets(),
            &self.model,
            self.now,
            kitchen_queue::DEFAULT_STATION,
            kitchen_queue::DEFAULT_PREP_MINUTES,
        );
        // Rounded up: a quote that is a little long disappoints less than one that is short.
        (ready_at - self.now).num_seconds().saturating_add(59) / 60
    }
}

/// What the model needs of a ticket.
fn load_ticket(ticket: &QueuedTicket) -> LoadTicket<'_> {
    LoadTicket {
        order_id: ticket.order_id,
        placed_at: ticket.placed_at,
        scheduled_for: ticket.scheduled_for,
        items: ticket
            .items
            .iter()
            .map(|item| LoadItem {
                station: &item.station,
                prep_minutes: item.prep_minutes,
                status: match item.status {
                    ItemState::Pending => ItemStatus::Pending,
                    ItemState::InPreparation => ItemStatus::InPreparation,
                    ItemState::Ready => ItemStatus::Ready,
                },
                started_at: item.started_at,
            })
            .collect(),
    }
}

/// When each of `open` (in queue order) should be ready, to the second.
#[must_use]
pub fn ready_times(
    open: &[&QueuedTicket],
    model: &KitchenModel,
    now: DateTime<Utc>,
) -> Vec<(Uuid, DateTime<Utc>)> {
    let tickets: Vec<LoadTicket<'_>> = open.iter().map(|ticket| load_ticket(ticket)).collect();
    estimate::ready_times(&tickets, model, now)
        .into_iter()
        .map(|(order_id, ready_at)| (order_id, whole_second(ready_at)))
        .collect()
}

fn whole_second(at: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp(at.timestamp(), 0).unwrap_or(at)
}

/// The kitchen's pace (see [`estimate::pace`]), from the lines finished in the last
/// [`PACE_HISTORY_HOURS`].
///
/// # Errors
/// A database error.
pub async fn read_pace(pool: &PgPool, now: DateTime<Utc>) -> Result<f64, sqlx::Error> {
    let since = now - Duration::hours(PACE_HISTORY_HOURS);
    Ok(estimate::pace(
        &kitchen_queue::prep_samples(pool, since).await?,
    ))
}

/// Quotes each of `open` (in queue order) whose quote has moved enough,
/// [`QUOTES_PER_COMMIT`] to a transaction (a busy kitchen's pass quotes tens of new tickets:
/// a commit for many, not one each); returns how many were recorded.
///
/// # Errors
/// A database error. A refused quote is skipped; a quote another replica recorded meanwhile
/// (a conflict) spoils the transaction: its quotes are rolled back and left to the next pass.
pub async fn estimate_once(
    pool: &PgPool,
    open: &[&QueuedTicket],
    model: &KitchenModel,
    now: DateTime<Utc>,
) -> anyhow::Result<usize> {
    let actor = serde_json::to_string(&Actor::System).unwrap_or_default();
    let mut tx = None;
    // Quotes recorded and committed; recorded in the open transaction.
    let (mut recorded, mut pending) = (0, 0);
    for (ticket, (order_id, ready_at)) in open.iter().zip(ready_times(open, model, now)) {
        // The aggregate decides too; this only spares loading those whose quote holds.
        let holds = ticket.estimated_ready_at.is_some_and(|last| {
            (ready_at - last).num_seconds().abs() < ReadyEstimate::MIN_CHANGE_SECS
        });
        if holds {
            continue;
        }
        let open = match &mut tx {
            Some(open) => open,
            None => tx.insert(pool.begin().await?),
        };
        let id = order_id.to_string();
        let metadata = CommandMetadata::by(actor.clone())
            .correlation(id.clone())
            .causation("kitchen-estimator");
        let command = EstimateCommand::Quote {
            order_id,
            ready_at,
            at: now,
        };
        match store::execute_in_with_metadata::<ReadyEstimate>(open, &id, command, &(), metadata)
            .await
        {
            Ok(events) => pending += usize::from(!events.is_empty()),
            Err(AggregateError::AggregateConflict) => {
                tracing::debug!(%order_id, "quoted by another replica meanwhile; next pass");
                return Ok(recorded);
            }
            Err(AggregateError::UserError(error)) => {
                tracing::warn!(%order_id, %error, "a quote was refused");
            }
            Err(error) => return Err(error.into()),
        }
        if pending == QUOTES_PER_COMMIT {
            if let Some(full) = tx.take() {
                full.commit().await?;
            }
            (recorded, pending) = (recorded + pending, 0);
        }
    }
    if let Some(tx) = tx {
        tx.commit().await?;
    }
    Ok(recorded + pending)
}

/// Runs the estimator until `shutdown`.
pub async fn run(
    pool: PgPool,
    hub: FeedHub,
    lanes_per_station: u32,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut changes = Some(hub.subscribe());
    let mut open = OpenTickets::new();
    // How long the last pass took: with a long queue the debounce stretches to four times
    // that, and the estimator never takes more than a fifth of the kitchen's time however
    // busy it gets (see BENCHMARKS.md).
    let mut last_pass = StdDuration::ZERO;
    // The pace moves slowly (three hours of finished lines): read once per tick, not per pass.
    let mut pace: Option<(f64, std::time::Instant)> = None;
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    while !*shutdown.borrow() {
        let next_change = async {
            match changes.as_mut() {
                Some(receiver) => receiver.recv().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            // Time alone moves quotes; and the whole queue is read again now and then, in
            // case a change was missed while the feed's listener reconnected.
            _ = tick.tick() => open.missed_changes(),
            change = next_change => match change {
                Ok(change) if change.feed != kitchen_queue::FEED => continue,
                Ok(change) => {
                    open.note_change(&change);
                    tokio::time::sleep(DEBOUNCE.max(last_pass * 4)).await;
                    if let Some(receiver) = changes.as_mut() {
                        drain(receiver, &mut open);
                    }
                }
                Err(broadcast::error::RecvError::Lagged(_)) => open.missed_changes(),
                // The hub is gone: the tick alone drives the estimator.
                Err(broadcast::error::RecvError::Closed) => {
                    changes = None;
                    continue;
                }
            },
            _ = shutdown.changed() => return,
        }
        let started = std::time::Instant::now();
        let now = Utc::now();
        if pace.is_none_or(|(_, read)| read.elapsed() >= TICK) {
            match read_pace(&pool, now).await {
                Ok(value) => pace = Some((value, started)),
                Err(error) => tracing::warn!(%error, "cannot read the kitchen's pace"),
            }
        }
        let Some((pace, _)) = pace else { continue };
        let model = KitchenModel {
            lanes_per_station,
            pace,
        };
        if let Err(error) = open.catch_up(&pool, now).await {
            tracing::warn!(%error, "cannot read the open tickets; next pass");
            continue;
        }
        if let Err(error) = estimate_once(&pool, &open.in_order(), &model, now).await {
            tracing::warn!(%error, "cannot quote the open tickets; next pass");
        }
        last_pass = started.elapsed();
    }
}

/// Takes the changes waiting in `receiver` into `open`.
fn drain(receiver: &mut broadcast::Receiver<Change>, open: &mut OpenTickets) {
    loop {
        match receiver.try_recv() {
            Ok(change) if change.feed == kitchen_queue::FEED => open.note_change(&change),
            Ok(_) => {}
            Err(broadcast::error::TryRecvError::Lagged(_)) => open.missed_changes(),
            Err(_) => return,
        }
    }
}
