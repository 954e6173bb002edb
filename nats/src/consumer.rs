//! Durable consumers that apply each event exactly once, in order per aggregate.
//!
//! JetStream delivers at least once, and redeliveries interleave with newer messages. So, per
//! message, in one PostgreSQL transaction, the runner advances the checkpoint row of
//! `(consumer, aggregate)` if the message is the next one, which also locks the row:
//! - it is the next one → the checkpoint advances, the handler runs *inside that
//!   transaction*, the transaction commits, and only then is the message acknowledged
//!   (not waiting for the server's confirmation: a lost ack is a redelivery, a duplicate);
//! - the sequence is at or below the checkpoint → a duplicate: acknowledged, nothing applied;
//! - it is beyond the next one → its predecessor has not been applied yet: `nak` with a short
//!   delay, and it comes back after it (the predecessor is always either applied or parked,
//!   and both advance the checkpoint, so the wait ends).
//!
//! A handler that writes read models in the transaction is thereby exactly-once. A handler
//! that issues a command to an aggregate (which cqrs-es commits in its own transaction) relies
//! on the aggregate too: commands issued from events are idempotent by the aggregate's state,
//! so a crash between the two commits redelivers a message whose command then changes nothing.
//!
//! A transient failure (database down, optimistic-concurrency conflict) is `nak`ed with a
//! growing delay; after `max_attempts` deliveries, or at once for a message that can never
//! succeed (a poison message), the message is parked in `dead_letters` with its error and the
//! checkpoint moves past it, so the events behind it keep flowing. A handler waiting for an
//! event of another stream (`HandlerError::NotYet`) is retried like an early event: for as long
//! as it takes, never parked.
//!
//! Messages are spread over a few lanes by aggregate id: one aggregate's events are applied
//! one after the other, different aggregates in parallel. Messages that queue up in a lane
//! (under load) are applied together, in one transaction, each exactly as above; one statement
//! locks the checkpoints of the whole run and one advances them.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use async_nats::jetstream::consumer::{pull, AckPolicy, DeliverPolicy};
use async_nats::jetstream::{AckKind, Message};
use futures::StreamExt;
use sqlx::{PgConnection, PgPool};
use tokio::sync::{mpsc, watch, Semaphore};
use tracing::Instrument as _;

use crate::relay::{delay_for_attempt, Backoff};
use crate::{dead_letters, Bus, EventEnvelope};

/// Most messages one lane applies in one transaction (see `Inner::process_batch`).
const BATCH: usize = 16;

/// Header carrying the aggregate id, so messages are routed to lanes without parsing bodies.
pub const AGGREGATE_ID_HEADER: &str = "Brigade-Aggregate-Id";

/// One event received from the bus.
#[derive(Debug, Clone)]
pub struct ReceivedEvent {
    pub envelope: EventEnvelope,
    pub subject: String,
    /// How many times JetStream has delivered this message, this time included.
    pub delivered: i64,
}

/// Why a handler could not apply an event.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HandlerError {
    /// Worth retrying later: a database or network fault, a concurrency conflict.
    #[error("{0}")]
    Transient(String),
    /// Will never succeed as it is: parked at once for a human to look at.
    #[error("{0}")]
    Permanent(String),
    /// Depends on an event of *another* stream that has not been applied yet (a ticket ready
    /// before the order it belongs to reached this service): waited for like an event that
    /// came before its predecessor, with a short capped delay and no attempt limit, since the
    /// other stream's consumer may lag for as long as an outage lasts. Never parked.
    #[error("{0}")]
    NotYet(String),
}

impl From<sqlx::Error> for HandlerError {
    fn from(error: sqlx::Error) -> Self {
        Self::Transient(format!("database: {error}"))
    }
}

/// What a subscription does with each event it receives.
#[async_trait::async_trait]
pub trait EventHandler: Send + Sync {
    /// Applies one event. `tx` is the transaction that will also advance the checkpoint:
    /// read-model writes made through it are committed exactly once with it.
    async fn handle(
        &self,
        event: &ReceivedEvent,
        tx: &mut PgConnection,
    ) -> Result<(), HandlerError>;

    /// Applies a run of stored events, in order, inside `tx`: what a projection rebuild
    /// replays into its shadow tables, which no live screen watches. It must leave the tables
    /// exactly as `handle` on each event in turn would. This default does just that; a
    /// projector may do it in bulk instead (a handful of statements per page of events rather
    /// than a few per event: what makes a rebuild of millions of events take seconds), and
    /// may skip the feed, whose shadow copy a rebuild throws away.
    async fn handle_many(
        &self,
        events: &[ReceivedEvent],
        tx: &mut PgConnection,
    ) -> Result<(), HandlerError> {
        for event in events {
            self.handle(event, tx).await?;
        }
        Ok(())
    }
}

/// One durable subscription of a service to the aggregates of another service's stream
/// (or its own, for projections). Whole aggregate types only: per-aggregate sequences must
/// arrive without holes for the ordering check to work.
#[derive(Clone)]
pub struct Subscription {
    /// The durable consumer name, unique within the source stream: `kitchen-orders`.
    pub name: String,
    /// The service whose stream is read.
    pub source: &'static str,
    /// The aggregate types read from it: `["order"]`.
    pub aggregate_types: Vec<&'static str>,
    pub handler: Arc<dyn EventHandler>,
}

impl Subscription {
    /// Applies events of this subscription's own service, which the caller has just stored in
    /// `tx`, in that same transaction, as this subscription's consumer would once the relay had
    /// published them: each one whose predecessor is applied is claimed on the consumer's
    /// checkpoint and handled, so that, when it does arrive from the bus, it is a duplicate.
    /// One is left to the consumer when its predecessor has not been applied yet (it is still
    /// on its way through the bus). What a projection that a screen watches does with the
    /// events a consumer's command stores: the screen sees them when that command commits,
    /// not after a further relay, bus and consumer hop. Returns how many it applied.
    ///
    /// # Errors
    /// The handler's or the database's: the caller's transaction is then spoilt, and rolls
    /// back whole, the command's events with it.
    pub async fn apply_in(
        &self,
        tx: &mut PgConnection,
        events: &[EventEnvelope],
    ) -> Result<usize, HandlerError> {
        let mut applied = 0;
        for envelope in events {
            if !self
                .aggregate_types
                .contains(&envelope.aggregate_type.as_str())
                || !claim_next(tx, &self.name, envelope).await?
            {
                continue;
            }
            let event = ReceivedEvent {
                subject: crate::namespace::event_subject(
                    self.source,
                    &envelope.aggregate_type,
                    &envelope.event_type,
                ),
                envelope: envelope.clone(),
                delivered: 1,
            };
            self.handler.handle(&event, tx).await?;
            applied += 1;
        }
        Ok(applied)
    }
}

/// Counters of one consumer, for `/metrics` and for tests that want to see duplicates dropped.
#[derive(Debug, Default)]
pub struct ConsumerStats {
    pub applied: AtomicU64,
    pub duplicates: AtomicU64,
    pub out_of_order: AtomicU64,
    pub retries: AtomicU64,
    pub parked: AtomicU64,
    /// Messages still waiting for this consumer in the stream, as JetStream reported with the
    /// last message delivered: the consumer's lag.
    pub pending: AtomicU64,
}

type StatsRegistry = Mutex<Vec<(String, Arc<ConsumerStats>)>>;

fn registry() -> &'static StatsRegistry {
    static REGISTRY: OnceLock<StatsRegistry> = OnceLock::new();
    REGISTRY.get_or_init(Default::default)
}

/// Every consumer of this process with its counters.
#[must_use]
pub fn all_stats() -> Vec<(String, Arc<ConsumerStats>)> {
    registry().lock().map(|r| r.clone()).unwrap_or_default()
}

/// Runs one subscription until shutdown.
pub struct ConsumerRunner {
    inner: Arc<Inner>,
    lanes: usize,
}

struct Inner {
    pool: PgPool,
    bus: Bus,
    subscription: Subscription,
    max_attempts: i64,
    stats: Arc<ConsumerStats>,
}

enum Outcome {
    Applied,
    Duplicate,
    Early,
}

impl ConsumerRunner {
    #[must_use]
    pub fn new(pool: PgPool, bus: Bus, subscription: Subscription) -> Self {
        let stats = Arc::new(ConsumerStats::default());
        if let Ok(mut registry) = registry().lock() {
            registry.push((subscription.name.clone(), stats.clone()));
        }
        Self {
            inner: Arc::new(Inner {
                pool,
                bus,
                subscription,
                max_attempts: 12,
                stats,
            }),
            lanes: 8,
        }
    }

    /// Deliveries after which a failing message is parked (default 12, about two minutes of
    /// retries with the growing delay).
    #[must_use]
    pub fn max_attempts(mut self, attempts: i64) -> Self {
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.max_attempts = attempts.max(1);
        }
        self
    }

    /// This consumer's counters.
    #[must_use]
    pub fn stats(&self) -> Arc<ConsumerStats> {
        self.inner.stats.clone()
    }

    /// Pulls and applies messages until `shutdown` turns true, reconnecting after faults.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let mut lanes = Vec::with_capacity(self.lanes);
        let mut workers = Vec::with_capacity(self.lanes);
        for _ in 0..self.lanes {
            let (tx, mut rx) = mpsc::channel::<Message>(32);
            let inner = self.inner.clone();
            workers.push(tokio::spawn(async move {
                while let Some(message) = rx.recv().await {
                    // The messages already waiting behind this one go in the same transaction.
                    let mut batch = vec![message];
                    while batch.len() < BATCH {
                        match rx.try_recv() {
                            Ok(next) => batch.push(next),
                            Err(_) => break,
                        }
                    }
                    if batch.len() == 1 {
                        if let Some(message) = batch.pop() {
                            inner.process(message).await;
                        }
                    } else {
                        inner.process_batch(batch).await;
                    }
                }
            }));
            lanes.push(tx);
        }
        let mut backoff = Backoff::default();
        while !*shutdown.borrow() {
            match self.inner.pull(&lanes, &mut shutdown).await {
                Ok(()) => break,
                Err(error) => {
                    tracing::warn!(consumer = %self.inner.subscription.name, %error, "consumer interrupted; reconnecting");
                    tokio::select! {
                        () = tokio::time::sleep(backoff.next()) => {}
                        _ = shutdown.changed() => break,
                    }
                }
            }
        }
        // Let the lanes finish the messages they hold: graceful shutdown applies what it took.
        drop(lanes);
        for worker in workers {
            let _ = worker.await;
        }
    }
}

impl Inner {
    async fn pull(
        &self,
        lanes: &[mpsc::Sender<Message>],
        shutdown: &mut watch::Receiver<bool>,
    ) -> Result<(), String> {
        let sub = &self.subscription;
        let stream = self
            .bus
            .ensure_stream(sub.source)
            .await
            .map_err(|e| e.to_string())?;
        let mut filters: Vec<String> = sub
            .aggregate_types
            .iter()
            .map(|aggregate| {
                self.bus
                    .namespace
                    .subject(&format!("{}.{aggregate}.>", sub.source))
            })
            .collect();
        // One filter goes in `filter_subject`, which every JetStream server honours; several
        // need `filter_subjects` (NATS 2.10+; older servers deliver everything, see `process`).
        let (filter_subject, filter_subjects) = if filters.len() == 1 {
            (filters.remove(0), Vec::new())
        } else {
            (String::new(), filters)
        };
        let consumer = stream
            .get_or_create_consumer(
                &sub.name,
                pull::Config {
                    durable_name: Some(sub.name.clone()),
                    filter_subject,
                    filter_subjects,
                    ack_policy: AckPolicy::Explicit,
                    deliver_policy: DeliverPolicy::All,
                    ack_wait: Duration::from_secs(30),
                    max_deliver: -1,
                    max_ack_pending: 1024,
                    ..Default::default()
                },
            )
            .await
            .map_err(|e| e.to_string())?;
        let mut messages = consumer.messages().await.map_err(|e| e.to_string())?;
        loop {
            tokio::select! {
                next = messages.next() => match next {
                    Some(Ok(message)) => {
                        let lane = lane_of(&message, lanes.len());
                        if lanes[lane].send(message).await.is_err() {
                            return Ok(());
                        }
                    }
                    Some(Err(error)) => {
                        tracing::debug!(consumer = %sub.name, %error, "pull stream hiccup");
                    }
                    None => return Err("the pull stream ended".to_owned()),
                },
                _ = shutdown.changed() => return Ok(()),
            }
        }
    }

    async fn process(&self, message: Message) {
        let (delivered, pending) = message
            .info()
            .map(|info| (info.delivered, info.pending))
            .unwrap_or((1, 0));
        self.stats.pending.store(pending, Ordering::Relaxed);
        let subject = message.subject.to_string();
        let envelope = match serde_json::from_slice::<EventEnvelope>(&message.payload) {
            Ok(envelope) => envelope,
            Err(error) => {
                let reason = format!("not a Brigade event envelope: {error}");
                self.park(&message, None, &reason, delivered).await;
                return;
            }
        };
        // NATS servers before 2.10 ignore `filter_subjects` and deliver the whole stream: an
        // event of an aggregate type this subscription did not ask for is none of its business.
        if !self
            .subscription
            .aggregate_types
            .contains(&envelope.aggregate_type.as_str())
        {
            acknowledge(&message).await;
            return;
        }
        let event = ReceivedEvent {
            envelope,
            subject,
            delivered,
        };
        // At most half of the pool's connections are held by consumer transactions at once,
        // across every consumer of the process: a handler that issues a command needs a second
        // connection while its transaction holds the first, and were every connection held by
        // such a transaction, none would ever come free (each attempt would time out, and
        // after `max_attempts` the message would be parked). Seen in the chaos suite.
        let permit = in_flight(&self.pool).acquire_owned().await;
        let span = self.span(&message, &event);
        let outcome = self.apply(&event).instrument(span).await;
        drop(permit);
        self.settle(&message, &event, outcome).await;
    }

    /// Several messages of one lane in one transaction: what a lane does when messages queue
    /// up behind each other (under load). Each is claimed, applied and acknowledged exactly as
    /// `process` would, but one BEGIN, one COMMIT and one WAL flush serve them all (the
    /// per-transaction round trips and the flush were most of a consumer's cost; see
    /// BENCHMARKS.md). Should anything fail, the transaction rolls back whole and each message
    /// goes through `process` alone, with its own retries and parking: a command a handler
    /// issued before the failure is idempotent, as after a crash.
    async fn process_batch(&self, messages: Vec<Message>) {
        let mut events = Vec::with_capacity(messages.len());
        for message in messages {
            let (delivered, pending) = message
                .info()
                .map(|info| (info.delivered, info.pending))
                .unwrap_or((1, 0));
            self.stats.pending.store(pending, Ordering::Relaxed);
            match serde_json::from_slice::<EventEnvelope>(&message.payload) {
                Ok(envelope)
                    if self
                        .subscription
                        .aggregate_types
                        .contains(&envelope.aggregate_type.as_str()) =>
                {
                    let subject = message.subject.to_string();
                    let event = ReceivedEvent {
                        envelope,
                        subject,
                        delivered,
                    };
                    events.push((message, event));
                }
                // Not an envelope, or not ours: `process` parks or acknowledges it.
                _ => self.process(message).await,
            }
        }
        if events.is_empty() {
            return;
        }
        let permit = in_flight(&self.pool).acquire_owned().await;
        let outcomes = self.apply_all(&events).await;
        drop(permit);
        match outcomes {
            Ok(outcomes) => {
                for ((message, event), outcome) in events.iter().zip(outcomes) {
                    self.settle(message, event, Ok(outcome)).await;
                }
            }
            Err(_) => {
                for (message, _) in events {
                    self.process(message).await;
                }
            }
        }
    }

    /// `apply` for a run of messages, in one transaction; any error rolls it all back. The
    /// checkpoints of every aggregate in the run are locked by one statement and advanced by
    /// another, where `claim_next` would take one statement a message.
    async fn apply_all(
        &self,
        events: &[(Message, ReceivedEvent)],
    ) -> Result<Vec<Outcome>, HandlerError> {
        let consumer = &self.subscription.name;
        let mut tx = self.pool.begin().await?;
        let mut last =
            lock_checkpoints(&mut tx, consumer, events.iter().map(|(_, e)| &e.envelope)).await?;
        let mut outcomes = Vec::with_capacity(events.len());
        let mut advanced = false;
        for (message, event) in events {
            let envelope = &event.envelope;
            let key = (
                envelope.aggregate_type.clone(),
                envelope.aggregate_id.clone(),
            );
            let applied = last.get(&key).map_or(0, |(sequence, _)| *sequence);
            if envelope.sequence == applied + 1 {
                self.subscription
                    .handler
                    .handle(event, &mut tx)
                    .instrument(self.span(message, event))
                    .await?;
                last.insert(key, (envelope.sequence, true));
                advanced = true;
                outcomes.push(Outcome::Applied);
            } else if envelope.sequence <= applied {
                outcomes.push(Outcome::Duplicate);
            } else {
                outcomes.push(Outcome::Early);
            }
        }
        if advanced {
            advance_checkpoints(&mut tx, consumer, &last).await?;
        }
        tx.commit().await?;
        Ok(outcomes)
    }

    /// Acknowledges, delays or parks one message after its outcome.
    async fn settle(
        &self,
        message: &Message,
        event: &ReceivedEvent,
        outcome: Result<Outcome, HandlerError>,
    ) {
        let delivered = event.delivered;
        match outcome {
            Ok(Outcome::Applied) => {
                self.stats.applied.fetch_add(1, Ordering::Relaxed);
                acknowledge(message).await;
            }
            Ok(Outcome::Duplicate) => {
                self.stats.duplicates.fetch_add(1, Ordering::Relaxed);
                acknowledge(message).await;
            }
            Ok(Outcome::Early) => {
                self.stats.out_of_order.fetch_add(1, Ordering::Relaxed);
                if delivered % 50 == 0 {
                    tracing::warn!(consumer = %self.subscription.name, message = %event.envelope.message_id(), delivered, "still waiting for an earlier event of this aggregate");
                }
                let delay = delay_for_attempt(
                    u32::try_from(delivered).unwrap_or(u32::MAX),
                    Duration::from_millis(20),
                    Duration::from_secs(2),
                );
                let _ = message.ack_with(AckKind::Nak(Some(delay))).await;
            }
            Err(HandlerError::NotYet(reason)) => {
                self.stats.out_of_order.fetch_add(1, Ordering::Relaxed);
                if delivered % 50 == 0 {
                    tracing::warn!(consumer = %self.subscription.name, message = %event.envelope.message_id(), delivered, %reason, "still waiting for another stream's event");
                }
                let delay = delay_for_attempt(
                    u32::try_from(delivered).unwrap_or(u32::MAX),
                    Duration::from_millis(200),
                    Duration::from_secs(5),
                );
                let _ = message.ack_with(AckKind::Nak(Some(delay))).await;
            }
            Err(HandlerError::Permanent(reason)) => {
                self.park(message, Some(&event.envelope), &reason, delivered)
                    .await;
            }
            Err(HandlerError::Transient(reason)) if delivered >= self.max_attempts => {
                let reason = format!("gave up after {delivered} attempts: {reason}");
                self.park(message, Some(&event.envelope), &reason, delivered)
                    .await;
            }
            Err(HandlerError::Transient(reason)) => {
                self.stats.retries.fetch_add(1, Ordering::Relaxed);
                tracing::info!(consumer = %self.subscription.name, message = %event.envelope.message_id(), delivered, %reason, "will retry");
                let delay = delay_for_attempt(
                    u32::try_from(delivered).unwrap_or(u32::MAX),
                    Duration::from_millis(200),
                    Duration::from_secs(30),
                );
                let _ = message.ack_with(AckKind::Nak(Some(delay))).await;
            }
        }
    }

    /// The span one event is applied in, continuing the trace its message names.
    fn span(&self, message: &Message, event: &ReceivedEvent) -> tracing::Span {
        let header = message
            .headers
            .as_ref()
            .and_then(|headers| headers.get(crate::trace::TRACEPARENT))
            .map(async_nats::HeaderValue::as_str);
        crate::trace::consuming_span(
            &self.subscription.name,
            &event.subject,
            header,
            &event.envelope,
        )
    }

    async fn apply(&self, event: &ReceivedEvent) -> Result<Outcome, HandlerError> {
        let envelope = &event.envelope;
        let mut tx = self.pool.begin().await?;
        if !claim_next(&mut tx, &self.subscription.name, envelope).await? {
            // Not the next event of its aggregate: a duplicate, or one that came early.
            let last = last_applied(&mut tx, &self.subscription.name, envelope).await?;
            drop(tx);
            return Ok(if envelope.sequence <= last {
                Outcome::Duplicate
            } else {
                Outcome::Early
            });
        }
        self.subscription.handler.handle(event, &mut tx).await?;
        tx.commit().await?;
        Ok(Outcome::Applied)
    }

    /// Parks a message and acknowledges it for good; if the database is down too, `nak`s it
    /// so that it is parked (or applied) later.
    async fn park(
        &self,
        message: &Message,
        envelope: Option<&EventEnvelope>,
        reason: &str,
        delivered: i64,
    ) {
        tracing::error!(consumer = %self.subscription.name, subject = %message.subject, %reason, "parking message in dead letters");
        let parked = dead_letters::park(
            &self.pool,
            &self.subscription.name,
            message.subject.as_str(),
            &message.payload,
            envelope,
            reason,
            delivered,
        )
        .await;
        match parked {
            Ok(()) => {
                self.stats.parked.fetch_add(1, Ordering::Relaxed);
                let _ = message.ack_with(AckKind::Term).await;
            }
            Err(error) => {
                tracing::warn!(%error, "cannot park the message; will retry");
                let _ = message
                    .ack_with(AckKind::Nak(Some(Duration::from_secs(5))))
                    .await;
            }
        }
    }
}

/// The consumer transactions this process may hold at once: half its pool (see `process`).
fn in_flight(pool: &PgPool) -> Arc<Semaphore> {
    static IN_FLIGHT: OnceLock<Arc<Semaphore>> = OnceLock::new();
    IN_FLIGHT
        .get_or_init(|| {
            let connections = usize::try_from(pool.options().get_max_connections()).unwrap_or(2);
            Arc::new(Semaphore::new((connections / 2).max(1)))
        })
        .clone()
}

/// Advances the checkpoint of one consumer and aggregate to the envelope's sequence if, and
/// only if, it is the next one (the row is created for an aggregate's first event); returns
/// whether it did. One statement does what lock, compare and advance did in three: the
/// advanced row stays locked until the transaction ends, so a concurrent redelivery of the
/// same message waits, then finds it applied; a rolled-back handler rolls the advance back
/// with it. (Two round trips to PostgreSQL fewer per message; see BENCHMARKS.md.)
pub(crate) async fn claim_next(
    tx: &mut PgConnection,
    consumer: &str,
    envelope: &EventEnvelope,
) -> Result<bool, sqlx::Error> {
    let claimed = if envelope.sequence == 1 {
        // A row at 0 is one that `lock_checkpoint` created without applying anything.
        sqlx::query(
            "INSERT INTO consumer_checkpoints (consumer, aggregate_type, aggregate_id, last_sequence)
             VALUES ($1, $2, $3, 1)
             ON CONFLICT (consumer, aggregate_type, aggregate_id)
             DO UPDATE SET last_sequence = 1, updated_at = now()
             WHERE consumer_checkpoints.last_sequence = 0",
        )
        .bind(consumer)
        .bind(&envelope.aggregate_type)
        .bind(&envelope.aggregate_id)
        .execute(&mut *tx)
        .await?
    } else {
        sqlx::query(
            "UPDATE consumer_checkpoints SET last_sequence = $4, updated_at = now()
             WHERE consumer = $1 AND aggregate_type = $2 AND aggregate_id = $3
               AND last_sequence = $4 - 1",
        )
        .bind(consumer)
        .bind(&envelope.aggregate_type)
        .bind(&envelope.aggregate_id)
        .bind(envelope.sequence)
        .execute(&mut *tx)
        .await?
    };
    Ok(claimed.rows_affected() == 1)
}

/// The last sequence applied of each aggregate a batch names, by `(type, id)`, each with
/// `false` (not advanced yet); the rows are created at 0 where missing and stay locked until
/// the transaction ends, as `claim_next` leaves the one it advances. One statement for the
/// whole batch (a conflict's no-op update is what locks an existing row and returns it).
async fn lock_checkpoints<'a>(
    tx: &mut PgConnection,
    consumer: &str,
    envelopes: impl Iterator<Item = &'a EventEnvelope>,
) -> Result<Checkpoints, sqlx::Error> {
    let mut keys: Vec<(&str, &str)> = envelopes
        .map(|e| (e.aggregate_type.as_str(), e.aggregate_id.as_str()))
        .collect();
    // One row each (a statement may not update a row twice), in a fixed order.
    keys.sort_unstable();
    keys.dedup();
    let (types, ids): (Vec<&str>, Vec<&str>) = keys.into_iter().unzip();
    let rows: Vec<(String, String, i64)> = sqlx::query_as(
        "INSERT INTO consumer_checkpoints AS c (consumer, aggregate_type, aggregate_id, last_sequence)
         SELECT $1, aggregate_type, aggregate_id, 0
         FROM unnest($2::text[], $3::text[]) AS b(aggregate_type, aggregate_id)
         ON CONFLICT (consumer, aggregate_type, aggregate_id)
         DO UPDATE SET last_sequence = c.last_sequence
         RETURNING c.aggregate_type, c.aggregate_id, c.last_sequence",
    )
    .bind(consumer)
    .bind(&types)
    .bind(&ids)
    .fetch_all(&mut *tx)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(aggregate_type, aggregate_id, last)| ((aggregate_type, aggregate_id), (last, false)))
        .collect())
}

/// Per `(aggregate type, aggregate id)`: the last sequence applied, and whether this batch
/// advanced it.
type Checkpoints = std::collections::HashMap<(String, String), (i64, bool)>;

/// Writes the checkpoints a batch advanced, in one statement.
async fn advance_checkpoints(
    tx: &mut PgConnection,
    consumer: &str,
    checkpoints: &Checkpoints,
) -> Result<(), sqlx::Error> {
    let mut types = Vec::new();
    let mut ids = Vec::new();
    let mut sequences = Vec::new();
    for ((aggregate_type, aggregate_id), (sequence, advanced)) in checkpoints {
        if *advanced {
            types.push(aggregate_type.as_str());
            ids.push(aggregate_id.as_str());
            sequences.push(*sequence);
        }
    }
    sqlx::query(
        "UPDATE consumer_checkpoints c SET last_sequence = b.last_sequence, updated_at = now()
         FROM unnest($2::text[], $3::text[], $4::bigint[]) AS b(aggregate_type, aggregate_id, last_sequence)
         WHERE c.consumer = $1 AND c.aggregate_type = b.aggregate_type
           AND c.aggregate_id = b.aggregate_id",
    )
    .bind(consumer)
    .bind(&types)
    .bind(&ids)
    .bind(&sequences)
    .execute(&mut *tx)
    .await
    .map(|_| ())
}

/// The last sequence applied by one consumer to one aggregate (0: none), without locking.
async fn last_applied(
    tx: &mut PgConnection,
    consumer: &str,
    envelope: &EventEnvelope,
) -> Result<i64, sqlx::Error> {
    let last: Option<i64> = sqlx::query_scalar(
        "SELECT last_sequence FROM consumer_checkpoints
         WHERE consumer = $1 AND aggregate_type = $2 AND aggregate_id = $3",
    )
    .bind(consumer)
    .bind(&envelope.aggregate_type)
    .bind(&envelope.aggregate_id)
    .fetch_optional(&mut *tx)
    .await?;
    Ok(last.unwrap_or(0))
}

/// Locks (creating if needed) the checkpoint row of one consumer and aggregate; returns the
/// last sequence applied.
pub(crate) async fn lock_checkpoint(
    tx: &mut PgConnection,
    consumer: &str,
    envelope: &EventEnvelope,
) -> Result<i64, sqlx::Error> {
    sqlx::query(
        "INSERT INTO consumer_checkpoints (consumer, aggregate_type, aggregate_id, last_sequence)
         VALUES ($1, $2, $3, 0) ON CONFLICT DO NOTHING",
    )
    .bind(consumer)
    .bind(&envelope.aggregate_type)
    .bind(&envelope.aggregate_id)
    .execute(&mut *tx)
    .await?;
    sqlx::query_scalar(
        "SELECT last_sequence FROM consumer_checkpoints
         WHERE consumer = $1 AND aggregate_type = $2 AND aggregate_id = $3 FOR UPDATE",
    )
    .bind(consumer)
    .bind(&envelope.aggregate_type)
    .bind(&envelope.aggregate_id)
    .fetch_one(&mut *tx)
    .await
}

pub(crate) async fn advance_checkpoint(
    tx: &mut PgConnection,
    consumer: &str,
    envelope: &EventEnvelope,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE consumer_checkpoints SET last_sequence = $4, updated_at = now()
         WHERE consumer = $1 AND aggregate_type = $2 AND aggregate_id = $3",
    )
    .bind(consumer)
    .bind(&envelope.aggregate_type)
    .bind(&envelope.aggregate_id)
    .bind(envelope.sequence)
    .execute(&mut *tx)
    .await
    .map(|_| ())
}

/// Acknowledges without waiting for the server's confirmation: a lost ack only causes a
/// redelivery, which the checkpoint recognises, so a confirmation would buy nothing but a
/// round trip per message before the lane takes its next one.
async fn acknowledge(message: &Message) {
    if let Err(error) = message.ack().await {
        tracing::debug!(%error, "ack not sent; the message will be redelivered");
    }
}

fn lane_of(message: &Message, lanes: usize) -> usize {
    let key = message
        .headers
        .as_ref()
        .and_then(|headers| headers.get(AGGREGATE_ID_HEADER))
        .map_or_else(
            || message.subject.to_string(),
            |value| value.as_str().to_owned(),
        );
    let mut hasher = DefaultHasher::new();
    key.hash(&mut hasher);
    usize::try_from(hasher.finish() % lanes as u64).unwrap_or(0)
}
