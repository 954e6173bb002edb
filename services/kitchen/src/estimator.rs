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
//! tick. A new ticket does not wait for a pass: it is quoted on the lanes the last pass left
//! ([`OpeningQuotes`]) in the transaction that opens it (an order scheduled for later waits
//! for the pass, which places it among the other scheduled tickets).
//! Replicas racing on one order are harmless: the second quote is within the threshold and
//! records nothing, and a concurrency conflict is simply left to the next pass. A replica's
//! lanes hold the tickets it opened itself, not those another replica opened since its last
//! pass; nor do two tickets opened at once on different lanes of the consumer always book in
//! the queue's order. Either makes a first quote a line's time off, until the next pass
//! records it again.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration as StdDuration;

use brigade_domain::kitchen::estimate::{self, KitchenModel, Lanes, LoadItem, LoadTicket};
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
    schedule(open, model, now).0
}

/// [`ready_times`], and the lanes a new ticket would find (see [`estimate::schedule`]).
#[must_use]
pub fn schedule(
    open: &[&QueuedTicket],
    model: &KitchenModel,
    now: DateTime<Utc>,
) -> (Vec<(Uuid, DateTime<Utc>)>, Lanes) {
    let tickets: Vec<LoadTicket<'_>> = open.iter().map(|ticket| load_ticket(ticket)).collect();
    let (times, lanes) = estimate::schedule(&tickets, model, now);
    let times = times
        .into_iter()
        .map(|(order_id, ready_at)| (order_id, whole_second(ready_at)))
        .collect();
    (times, lanes)
}

/// The lanes the estimator's last pass left, shared with the consumer that opens tickets: a
/// new ticket's first quote is booked on them and recorded in the transaction that opens it.
/// A pass quoted it afterwards, in a transaction of its own, which the kitchen queue's
/// consumer then applied in another: two commits an order, the customer told a pass later,
/// and a second frame on every screen. The pass that follows checks the quote like any other
/// (it is recorded again only if it moved by two minutes or more).
#[derive(Debug, Clone, Default)]
pub struct OpeningQuotes(Arc<Mutex<Kept>>);

#[derive(Debug, Default)]
struct Kept {
    /// The lanes of the last pass, as it left them.
    lanes: Option<Lanes>,
    /// Tickets booked since that the pass did not see, in queue order (when placed): each new
    /// one is quoted on the pass's lanes after those placed before it. Orders are placed
    /// concurrently and a ticket may open before one placed a moment earlier; booked in the
    /// order they opened, both would be a line's time off the pass's next quotes.
    unseen: Vec<Booking>,
}

#[derive(Debug)]
struct Booking {
    order_id: Uuid,
    placed_at: DateTime<Utc>,
    lines: Vec<(String, u32)>,
    at: DateTime<Utc>,
    ready_at: DateTime<Utc>,
}

impl Booking {
    fn position(&self) -> (DateTime<Utc>, Uuid) {
        (self.placed_at, self.order_id)
    }
}

impl OpeningQuotes {
    /// Lanes older than this are not booked on: the estimator has stopped passing (it passes
    /// every [`TICK`] at least), and its passes will quote when it comes back.
    const MAX_AGE: StdDuration = StdDuration::from_secs(2 * TICK.as_secs());

    /// A booking no pass has seen after this long is dropped: its transaction rolled back,
    /// or its ticket closed before a pass that read only the open ones. (A pass sees a new
    /// ticket within its debounce of the opening's commit.)
    const UNSEEN_FOR: Duration = Duration::seconds(5);

    /// Keeps the lanes of a pass, and the tickets booked since that it did not see (`seen`
    /// says which it did).
    pub fn keep(&self, lanes: Lanes, seen: impl Fn(Uuid) -> bool) {
        let mut kept = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let since = lanes.at - Self::UNSEEN_FOR;
        kept.unseen
            .retain(|booking| !seen(booking.order_id) && booking.at >= since);
        kept.lanes = Some(lanes);
    }

    /// When the ticket `order_id`, placed at `placed_at`, of these lines (station, dish
    /// minutes) and opened at `now`, should be ready, to the second: on the last pass's lanes,
    /// behind the tickets booked since that were placed before it. Booked again (its
    /// transaction retried), it keeps its quote. `None` before the first pass, or when the
    /// last one is too old.
    pub fn book(
        &self,
        order_id: Uuid,
        placed_at: DateTime<Utc>,
        lines: Vec<(String, u32)>,
        now: DateTime<Utc>,
    ) -> Option<DateTime<Utc>> {
        let mut kept = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let Kept { lanes, unseen } = &mut *kept;
        let mut lanes = lanes.clone()?;
        if (now - lanes.at).to_std().unwrap_or_default() > Self::MAX_AGE {
            return None;
        }
        if let Some(booked) = unseen.iter().find(|booking| booking.order_id == order_id) {
            return Some(booked.ready_at);
        }
        let position = (placed_at, order_id);
        let before = unseen.partition_point(|booking| booking.position() < position);
        for booking in &unseen[..before] {
            lanes.book(Self::lines(&booking.lines), booking.at);
        }
        let ready_at = whole_second(lanes.book(Self::lines(&lines), now));
        unseen.insert(
            before,
            Booking {
                order_id,
                placed_at,
                lines,
                at: now,
                ready_at,
            },
        );
        Some(ready_at)
    }

    fn lines(lines: &[(String, u32)]) -> impl Iterator<Item = (&str, u32)> {
        lines
            .iter()
            .map(|(station, minutes)| (station.as_str(), *minutes))
    }
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

/// Records the quotes of `open` (`ready_times`, in the same order) that moved enough,
/// [`QUOTES_PER_COMMIT`] to a transaction (a busy kitchen's pass quotes tens of new tickets:
/// a commit for many, not one each); returns how many were recorded.
///
/// # Errors
/// A database error. A refused quote is skipped; a quote another replica recorded meanwhile
/// (a conflict) spoils the transaction: its quotes are rolled back and left to the next pass.
pub async fn estimate_once(
    pool: &PgPool,
    open: &[&QueuedTicket],
    ready_times: Vec<(Uuid, DateTime<Utc>)>,
    now: DateTime<Utc>,
) -> anyhow::Result<usize> {
    let actor = serde_json::to_string(&Actor::System).unwrap_or_default();
    let mut tx = None;
    // Quotes recorded and committed; recorded in the open transaction.
    let (mut recorded, mut pending) = (0, 0);
    for (ticket, (order_id, ready_at)) in open.iter().zip(ready_times) {
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

/// Runs the estimator until `shutdown`, keeping each pass's lanes in `quotes`.
pub async fn run(
    pool: PgPool,
    hub: FeedHub,
    lanes_per_station: u32,
    quotes: OpeningQuotes,
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
        let queue = open.in_order();
        let (times, lanes) = schedule(&queue, &model, now);
        quotes.keep(lanes, |order_id| open.saw(order_id));
        if let Err(error) = estimate_once(&pool, &queue, times, now).await {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + seconds, 0).unwrap_or_default()
    }

    fn grill(minutes: u32) -> Vec<(String, u32)> {
        vec![("grill".to_owned(), minutes)]
    }

    fn one_lane(now: DateTime<Utc>) -> Lanes {
        let model = KitchenModel {
            lanes_per_station: 1,
            pace: 1.0,
        };
        estimate::schedule(&[], &model, now).1
    }

    fn minutes(quote: Option<DateTime<Utc>>) -> Option<i64> {
        quote.map(|ready_at| (ready_at - at(0)).num_minutes())
    }

    #[test]
    fn new_tickets_queue_on_the_last_pass_s_lanes_in_the_order_they_were_placed() {
        let quotes = OpeningQuotes::default();
        let [a, b, c, d, e] = [1, 2, 3, 4, 5].map(Uuid::from_u128);
        // No pass yet: no quote at opening.
        assert_eq!(quotes.book(a, at(0), grill(10), at(0)), None);
        quotes.keep(one_lane(at(0)), |_| false);
        assert_eq!(minutes(quotes.book(a, at(0), grill(10), at(0))), Some(10));
        assert_eq!(minutes(quotes.book(b, at(1), grill(10), at(1))), Some(20));
        // Its transaction retried, `b` keeps its quote rather than taking another place.
        assert_eq!(minutes(quotes.book(b, at(1), grill(10), at(2))), Some(20));
        // Placed before `b`, opened after it: it takes the place the pass will give it.
        assert_eq!(minutes(quotes.book(e, at(0), grill(5), at(2))), Some(15));
        // A pass that read the queue when only `a` and `e` were open (here, empty lanes stand
        // for the pass's view of them done): `b` still comes before the next one.
        quotes.keep(one_lane(at(3)), |order_id| order_id == a || order_id == e);
        assert_eq!(minutes(quotes.book(c, at(3), grill(10), at(3))), Some(20));
        // A pass that saw them all forgets the bookings.
        quotes.keep(one_lane(at(4)), |_| true);
        assert_eq!(minutes(quotes.book(c, at(4), grill(5), at(4))), Some(5));
        // A booking no pass saw for five seconds (rolled back) is dropped.
        assert_eq!(minutes(quotes.book(d, at(5), grill(10), at(5))), Some(15));
        quotes.keep(one_lane(at(11)), |_| false);
        assert_eq!(minutes(quotes.book(a, at(11), grill(10), at(11))), Some(10));
        // Lanes older than two ticks: the estimator has stopped, no quote at opening.
        assert_eq!(quotes.book(e, at(52), grill(5), at(52)), None);
    }
}
