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
//! [`TICK`] (time alone moves the quote of a late ticket). Replicas racing on one order are
//! harmless: the second quote is within the threshold and records nothing, and a concurrency
//! conflict is simply left to the next pass.

use std::time::Duration as StdDuration;

use brigade_domain::kitchen::estimate::{self, KitchenModel, LoadItem, LoadTicket, PrepSample};
use brigade_domain::kitchen::{EstimateCommand, ItemStatus, ReadyEstimate};
use brigade_domain::Actor;
use brigade_nats::store::{CommandMetadata, EventStore};
use brigade_projections::feed::FeedHub;
use brigade_projections::kitchen_queue::{self, ItemState, QueuedTicket};
use chrono::{DateTime, Duration, Utc};
use cqrs_es::AggregateError;
use sqlx::PgPool;
use tokio::sync::{broadcast, watch};

/// How often the quotes are refreshed when nothing happens in the kitchen.
pub const TICK: StdDuration = StdDuration::from_secs(20);
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
    /// Reads the open tickets and the recent history from the queue.
    ///
    /// # Errors
    /// A database error.
    pub async fn read(
        pool: &PgPool,
        now: DateTime<Utc>,
        lanes_per_station: u32,
    ) -> Result<Self, sqlx::Error> {
        let open = kitchen_queue::open_tickets(pool, now).await?;
        let history_start = now - Duration::hours(PACE_HISTORY_HOURS);
        let recent = kitchen_queue::placed_since(pool, history_start, now).await?;
        let samples: Vec<PrepSample> = recent
            .iter()
            .flat_map(|ticket| &ticket.items)
            .filter_map(|item| {
                let (started, ready) = (item.started_at?, item.ready_at?);
                (ready >= history_start).then(|| PrepSample {
                    actual_secs: (ready - started).num_seconds(),
                    prep_minutes: item.prep_minutes,
                })
            })
            .collect();
        Ok(Self {
            now,
            open,
            model: KitchenModel {
                lanes_per_station,
                pace: estimate::pace(&samples),
            },
        })
    }

    fn tickets(&self) -> Vec<LoadTicket> {
        self.open
            .iter()
            .map(|ticket| LoadTicket {
                order_id: ticket.order_id,
                placed_at: ticket.placed_at,
                scheduled_for: ticket.scheduled_for,
                items: ticket
                    .items
                    .iter()
                    .map(|item| LoadItem {
                        station: item.station.clone(),
                        prep_minutes: item.prep_minutes,
                        status: match item.status {
                            ItemState::Pending => ItemStatus::Pending,
                            ItemState::InPreparation => ItemStatus::InPreparation,
                            ItemState::Ready => ItemStatus::Ready,
                        },
                        started_at: item.started_at,
                    })
                    .collect(),
            })
            .collect()
    }

    /// When each open ticket should be ready, to the second.
    #[must_use]
    pub fn ready_times(&self) -> Vec<(uuid::Uuid, DateTime<Utc>)> {
        estimate::ready_times(&self.tickets(), &self.model, self.now)
            .into_iter()
            .map(|(order_id, ready_at)| (order_id, whole_second(ready_at)))
            .collect()
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

fn whole_second(at: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp(at.timestamp(), 0).unwrap_or(at)
}

/// Quotes every open ticket whose quote has moved enough; returns how many were recorded.
///
/// # Errors
/// A database error while reading the queue (a refused or conflicting quote is skipped).
pub async fn estimate_once(
    pool: &PgPool,
    estimates: &EventStore<ReadyEstimate>,
    lanes_per_station: u32,
    now: DateTime<Utc>,
) -> Result<usize, sqlx::Error> {
    let load = Load::read(pool, now, lanes_per_station).await?;
    let actor = serde_json::to_string(&Actor::System).unwrap_or_default();
    let mut recorded = 0;
    for (ticket, (order_id, ready_at)) in load.open.iter().zip(load.ready_times()) {
        // The aggregate decides too; this only spares loading those whose quote holds.
        let holds = ticket.estimated_ready_at.is_some_and(|last| {
            (ready_at - last).num_seconds().abs() < ReadyEstimate::MIN_CHANGE_SECS
        });
        if holds {
            continue;
        }
        let id = order_id.to_string();
        let metadata = CommandMetadata::by(actor.clone())
            .correlation(id.clone())
            .causation("kitchen-estimator");
        let command = EstimateCommand::Quote {
            order_id,
            ready_at,
            at: now,
        };
        match estimates
            .execute_with_metadata(&id, command, metadata.into_map())
            .await
        {
            Ok(()) => recorded += 1,
            Err(AggregateError::AggregateConflict) => {
                tracing::debug!(%order_id, "quoted by another replica meanwhile; next pass");
            }
            Err(error) => tracing::warn!(%order_id, %error, "cannot record a quote"),
        }
    }
    Ok(recorded)
}

/// Runs the estimator until `shutdown`.
pub async fn run(
    pool: PgPool,
    estimates: EventStore<ReadyEstimate>,
    hub: FeedHub,
    lanes_per_station: u32,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut changes = Some(hub.subscribe());
    // How long the last pass took: a pass reads every open ticket, so with thousands of them
    // the debounce stretches to four times that, and the estimator never takes more than a
    // fifth of the kitchen's time however busy it gets (see BENCHMARKS.md).
    let mut last_pass = StdDuration::ZERO;
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
            _ = tick.tick() => {}
            change = next_change => match change {
                Ok(change) if change.feed != kitchen_queue::FEED => continue,
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {
                    tokio::time::sleep(DEBOUNCE.max(last_pass * 4)).await;
                    if let Some(receiver) = changes.as_mut() {
                        while receiver.try_recv().is_ok() {}
                    }
                }
                // The hub is gone: the tick alone drives the estimator.
                Err(broadcast::error::RecvError::Closed) => {
                    changes = None;
                    continue;
                }
            },
            _ = shutdown.changed() => return,
        }
        let started = std::time::Instant::now();
        if let Err(error) = estimate_once(&pool, &estimates, lanes_per_station, Utc::now()).await {
            tracing::warn!(%error, "cannot read the kitchen's load; next pass");
        }
        last_pass = started.elapsed();
    }
}
