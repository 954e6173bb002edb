//! Durable consumers that apply each event exactly once, in order per aggregate.
//!
//! JetStream delivers at least once, and redeliveries interleave with newer messages. So, per
//! message, in one PostgreSQL transaction, the runner advances the checkpoint row of
//! `(consumer, aggregate)` if the message is the next one, which also locks the row:
//! - it is the next one → the checkpoint advances, the handler runs *inside that
//!   transaction*, the transaction commits, and only then is the message acknowledged
//!   (not waiting for the server's confirmation: a lost ack is a redelivery, a duplicate).
//!   The commit does not wait for the WAL flush; the acknowledgement does, and is sent only
//!   if the checkpoint is still there once flushed ([`crate::durable`]);
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
//! A service's subscriptions to the same events of one stream share one JetStream consumer
//! ([`Group`]): each message is pulled and acknowledged once, and applied for every member
//! that reads its aggregate type in one transaction, each member with its own checkpoint, so
//! each still applies it exactly once. When one member fails, the others' work is not held
//! back: each is then applied on its own, and only the one at fault is retried or parked
//! (under its name); the message is acknowledged once no member needs it again.
//!
//! Messages are spread over a few lanes by aggregate id: one aggregate's events are applied
//! one after the other, different aggregates in parallel. Messages that queue up in a lane
//! (under load) are applied together, in one transaction, each exactly as above; one statement
//! claims the checkpoints of the whole run, each row written once. A consumer no screen waits on
//! ([`Pace::Gathered`]) also lingers a few milliseconds after a message for others to join it
//! when its messages come that close together, so that it commits runs at moderate load too;
//! and such consumers take turns, one transaction at a time in a process (each waiting a
//! linger at most), so that they do not take both cores from the work a screen waits on.

use std::collections::hash_map::DefaultHasher;
use std::collections::HashMap;
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

use crate::durable::{self, AckQueue, Checkpoint};
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

/// Subscriptions of one service to the same events of one stream, served by one JetStream
/// consumer: what [`ConsumerRunner`] runs (see [`Group::sharing_events`]). Each member keeps
/// its own name, checkpoints, dead letters and counters, exactly as when it had a consumer of
/// its own; what they share is the delivery.
/// An event that several members read (an order's events, which the delivery service both
/// follows and notifies customers of) is pulled, acknowledged and applied **once**, in one
/// transaction for all of them, where each member used to receive and commit it on its own.
pub struct Group {
    durable: String,
    source: &'static str,
    members: Vec<Subscription>,
}

impl Group {
    /// A subscription on its own: its consumer bears its name.
    #[must_use]
    pub fn single(subscription: Subscription) -> Self {
        Self {
            durable: subscription.name.clone(),
            source: subscription.source,
            members: vec![subscription],
        }
    }

    /// The subscriptions of `service`, grouped where they read the same events: those of one
    /// stream that have an aggregate type in common, directly or through another member, share
    /// a consumer, named `{service}-on-{source}-{their aggregate types}`
    /// (`delivery-on-orders-order`). Subscriptions with nothing in common stay apart, each on
    /// a consumer of its own name: sharing would save them no delivery, and one of them
    /// waiting for another stream (`HandlerError::NotYet`) would hold the other back.
    #[must_use]
    pub fn sharing_events(service: &str, subscriptions: Vec<Subscription>) -> Vec<Self> {
        let mut groups: Vec<Self> = Vec::new();
        for subscription in subscriptions {
            let joined = Self::single(subscription);
            // The groups it has a type in common with merge into the first of them, which it
            // joins last.
            let (mut sharing, apart): (Vec<Self>, Vec<Self>) =
                groups.into_iter().partition(|group| {
                    group.source == joined.source
                        && group
                            .aggregate_types()
                            .any(|t| joined.aggregate_types().any(|u| t == u))
                });
            groups = apart;
            sharing.push(joined);
            let mut merged = sharing.remove(0);
            for mut group in sharing {
                merged.members.append(&mut group.members);
            }
            groups.push(merged);
        }
        for group in &mut groups {
            if group.members.len() > 1 {
                let mut types: Vec<&str> = group.aggregate_types().collect();
                types.sort_unstable();
                types.dedup();
                group.durable = format!("{service}-on-{}-{}", group.source, types.join("-"));
            }
        }
        groups
    }

    fn aggregate_types(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.members
            .iter()
            .flat_map(|m| m.aggregate_types.iter().copied())
    }

    /// The JetStream durable consumer that serves this group.
    #[must_use]
    pub fn durable(&self) -> &str {
        &self.durable
    }

    /// The subscriptions served.
    #[must_use]
    pub fn members(&self) -> &[Subscription] {
        &self.members
    }
}

/// How soon a consumer applies the messages it receives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Pace {
    /// Each at once, in eight lanes: what a screen waits on (a new order on the kitchen's).
    #[default]
    AtOnce,
    /// Under load, what arrives within `linger` of a message, in two lanes, applied in one
    /// transaction with it: for the consumers nobody watches to the millisecond, so that they
    /// commit a few messages at a time at moderate load too, where at once they would commit
    /// each alone (a `BEGIN`, a claim and a `COMMIT` a message; see BENCHMARKS.md). A lane
    /// lingers only when its previous message came less than [`LINGER_WINDOW`] lingers before:
    /// a message alone is applied at once, as with `AtOnce`. And the gathered consumers of a
    /// process take turns, one transaction at a time unless saturated (see [`gathered_turn`]).
    Gathered { linger: Duration },
}

impl Pace {
    /// What the services' consumers that no screen waits on use: 10 ms.
    pub const GATHERED: Self = Self::Gathered {
        linger: Duration::from_millis(10),
    };
}

/// A gathered lane lingers when its previous message came within this many lingers: at a
/// steady moderate load (tens of messages a second), where each came within one linger only
/// now and then, and most were committed alone.
pub const LINGER_WINDOW: u32 = 3;

/// The turn a gathered consumer's transaction waits for: one at a time in a process.
///
/// Why: the consumers nobody watches (the orders' ledger, delivery's dispatch, the quotes'
/// readers) used to run side by side with those a screen waits on, and on two cores each
/// of their transactions took a core from a placement or a kitchen-screen frame: the p99s at
/// half load were theirs. Taking turns, they run beside the watched work rather than over
/// it, and what waits for its turn joins the next transaction, so they commit fewer, larger
/// transactions too (see BENCHMARKS.md, 7 December, evening). A lane waits for its turn one
/// linger at most, then goes ahead beside the others: waiting longer means the process is
/// saturated, and there one transaction at a time would cap what its consumers apply (each
/// spends most of its time waiting on round trips, not on a core: strict turns held a machine
/// at 115 orders/s that sustained 150 without them).
fn gathered_turn() -> &'static Semaphore {
    static TURN: OnceLock<Semaphore> = OnceLock::new();
    TURN.get_or_init(|| Semaphore::new(1))
}

/// Runs one group of subscriptions (or one subscription) until shutdown.
pub struct ConsumerRunner {
    inner: Arc<Inner>,
    pace: Pace,
}

struct Inner {
    pool: PgPool,
    bus: Bus,
    /// The JetStream durable consumer's name.
    durable: String,
    source: &'static str,
    members: Vec<Member>,
    max_attempts: i64,
    /// Where applied messages wait for their transaction's flush (see [`durable`]): the
    /// database's queue, taken on first use (it runs a task of the runtime).
    acks: OnceLock<Arc<AckQueue>>,
}

/// One subscription of a group, with its counters.
struct Member {
    subscription: Subscription,
    stats: Arc<ConsumerStats>,
}

impl Member {
    fn name(&self) -> &str {
        &self.subscription.name
    }

    fn reads(&self, aggregate_type: &str) -> bool {
        self.subscription.aggregate_types.contains(&aggregate_type)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Applied,
    Duplicate,
    Early,
}

impl Outcome {
    /// What an event of `sequence` is to a checkpoint at `last` that did not take it: one
    /// applied already, or one that came before its predecessor.
    fn not_next(sequence: i64, last: i64) -> Self {
        if sequence <= last {
            Self::Duplicate
        } else {
            Self::Early
        }
    }
}

/// What a message received is to a group. It lives for one call, on the stack: boxing the
/// large variant would only add an allocation per message.
#[allow(clippy::large_enum_variant)]
enum Received<'a> {
    /// An event some members read.
    Delivery(Delivery<'a>),
    /// An event of an aggregate type no member reads (see `Inner::receive`): acknowledged.
    NotOurs(Message),
    /// No event envelope at all, and why: parked.
    Unreadable(Message, String),
}

/// One message received, with the members of the group that read its aggregate type.
struct Delivery<'a> {
    message: Message,
    event: ReceivedEvent,
    members: Vec<&'a Member>,
}

impl ConsumerRunner {
    /// One subscription, on a consumer of its own name.
    #[must_use]
    pub fn new(pool: PgPool, bus: Bus, subscription: Subscription) -> Self {
        Self::group(pool, bus, Group::single(subscription))
    }

    /// Several subscriptions to one stream, on one consumer (see [`Group`]).
    #[must_use]
    pub fn group(pool: PgPool, bus: Bus, group: Group) -> Self {
        let members = group
            .members
            .into_iter()
            .map(|subscription| {
                let stats = Arc::new(ConsumerStats::default());
                if let Ok(mut registry) = registry().lock() {
                    registry.push((subscription.name.clone(), stats.clone()));
                }
                Member {
                    subscription,
                    stats,
                }
            })
            .collect();
        Self {
            inner: Arc::new(Inner {
                pool,
                bus,
                durable: group.durable,
                source: group.source,
                members,
                max_attempts: 12,
                acks: OnceLock::new(),
            }),
            pace: Pace::AtOnce,
        }
    }

    /// How soon messages are applied (default [`Pace::AtOnce`]).
    #[must_use]
    pub fn pace(mut self, pace: Pace) -> Self {
        self.pace = pace;
        self
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

    /// The counters of this runner's first (or only) subscription.
    #[must_use]
    pub fn stats(&self) -> Arc<ConsumerStats> {
        self.inner.members[0].stats.clone()
    }

    /// The counters of the subscription `name` of this runner's group.
    #[must_use]
    pub fn stats_of(&self, name: &str) -> Option<Arc<ConsumerStats>> {
        self.inner
            .members
            .iter()
            .find(|m| m.name() == name)
            .map(|m| m.stats.clone())
    }

    /// Pulls and applies messages until `shutdown` turns true, reconnecting after faults.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let (count, linger) = match self.pace {
            Pace::AtOnce => (8, Duration::ZERO),
            Pace::Gathered { linger } => (2, linger),
        };
        let gathered = self.pace != Pace::AtOnce;
        let mut lanes = Vec::with_capacity(count);
        let mut workers = Vec::with_capacity(count);
        for _ in 0..count {
            let (tx, mut rx) = mpsc::channel::<Message>(32);
            let inner = self.inner.clone();
            workers.push(tokio::spawn(async move {
                // When the lane last received a message: it lingers only when messages come
                // closer together than `LINGER_WINDOW` lingers (load), so that one alone (a
                // manager's click, a quiet night) is applied at once, and a read right after
                // its command finds it.
                let mut last_received: Option<tokio::time::Instant> = None;
                while let Some(message) = rx.recv().await {
                    let now = tokio::time::Instant::now();
                    let lingers = last_received
                        .is_some_and(|at| now.duration_since(at) < linger * LINGER_WINDOW);
                    last_received = Some(now);
                    // The messages already waiting behind this one, and those that come while
                    // the lane lingers, go in the same transaction.
                    let until = now + linger;
                    let mut batch = vec![message];
                    take_waiting(&mut rx, &mut batch);
                    while lingers && batch.len() < BATCH {
                        match tokio::time::timeout_at(until, rx.recv()).await {
                            Ok(Some(next)) => {
                                last_received = Some(tokio::time::Instant::now());
                                batch.push(next);
                                take_waiting(&mut rx, &mut batch);
                            }
                            Ok(None) | Err(_) => break,
                        }
                    }
                    // Those that come while the lane waits for its turn join it too. A lane
                    // waits one linger at most: see `gathered_turn`.
                    let turn = if gathered {
                        let turn = tokio::time::timeout(linger, gathered_turn().acquire())
                            .await
                            .ok()
                            .and_then(Result::ok);
                        take_waiting(&mut rx, &mut batch);
                        turn
                    } else {
                        None
                    };
                    if batch.len() == 1 {
                        if let Some(message) = batch.pop() {
                            inner.process(message).await;
                        }
                    } else {
                        inner.process_batch(batch).await;
                    }
                    drop(turn);
                }
            }));
            lanes.push(tx);
        }
        let mut backoff = Backoff::default();
        while !*shutdown.borrow() {
            match self.inner.pull(&lanes, &mut shutdown).await {
                Ok(()) => break,
                Err(error) => {
                    tracing::warn!(consumer = %self.inner.durable, %error, "consumer interrupted; reconnecting");
                    tokio::select! {
                        () = tokio::time::sleep(backoff.next()) => {}
                        _ = shutdown.changed() => break,
                    }
                }
            }
        }
        // Let the lanes finish the messages they hold: graceful shutdown applies what it took,
        // and acknowledges it once durable.
        drop(lanes);
        for worker in workers {
            let _ = worker.await;
        }
        if let Some(acks) = self.inner.acks.get() {
            acks.drained().await;
        }
    }
}

impl Inner {
    async fn pull(
        &self,
        lanes: &[mpsc::Sender<Message>],
        shutdown: &mut watch::Receiver<bool>,
    ) -> Result<(), String> {
        let stream = self
            .bus
            .ensure_stream(self.source)
            .await
            .map_err(|e| e.to_string())?;
        let mut filters: Vec<String> = Vec::new();
        for member in &self.members {
            for aggregate in &member.subscription.aggregate_types {
                let filter = self
                    .bus
                    .namespace
                    .subject(&format!("{}.{aggregate}.>", self.source));
                if !filters.contains(&filter) {
                    filters.push(filter);
                }
            }
        }
        // One filter goes in `filter_subject`, which every JetStream server honours; several
        // need `filter_subjects` (NATS 2.10+; older servers deliver everything, see `receive`).
        let (filter_subject, filter_subjects) = if filters.len() == 1 {
            (filters.remove(0), Vec::new())
        } else {
            (String::new(), filters)
        };
        let deliver_policy = self.start(&stream).await;
        let members = i64::try_from(self.members.len()).unwrap_or(1);
        let consumer = stream
            .get_or_create_consumer(
                &self.durable,
                pull::Config {
                    durable_name: Some(self.durable.clone()),
                    filter_subject,
                    filter_subjects,
                    ack_policy: AckPolicy::Explicit,
                    deliver_policy,
                    ack_wait: Duration::from_secs(30),
                    max_deliver: -1,
                    // Each member may hold messages back (waiting for an earlier event or
                    // another stream's): as many as a consumer of its own could.
                    max_ack_pending: 1024 * members,
                    ..Default::default()
                },
            )
            .await
            .map_err(|e| e.to_string())?;
        if self.members.len() > 1 {
            // Before they were grouped, each member had a consumer of its own name: one left
            // on the server would count its messages as unapplied for ever (`Bus::unapplied`,
            // `/metrics`). Deleted at every start, as a replica of the previous version may
            // still have been running while this one started.
            for member in &self.members {
                if stream.delete_consumer(member.name()).await.is_ok() {
                    tracing::info!(consumer = %member.name(), group = %self.durable, "replaced by the group's consumer");
                }
            }
        }
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
                        tracing::debug!(consumer = %self.durable, %error, "pull stream hiccup");
                    }
                    None => return Err("the pull stream ended".to_owned()),
                },
                _ = shutdown.changed() => return Ok(()),
            }
        }
    }

    /// Where a new consumer of this group starts: where its members' own consumers, from
    /// before they were grouped, had acknowledged everything (the earliest of them), so that
    /// the group does not walk the whole history again; the stream's first message when a
    /// member had none (a new subscription reads everything, as it would alone) or the server
    /// cannot say. Only used when the group's consumer does not exist yet.
    async fn start(&self, stream: &async_nats::jetstream::stream::Stream) -> DeliverPolicy {
        if self.members.len() < 2 {
            return DeliverPolicy::All;
        }
        let mut floor = u64::MAX;
        for member in &self.members {
            match stream.consumer_info(member.name()).await {
                Ok(info) => floor = floor.min(info.ack_floor.stream_sequence),
                Err(_) => return DeliverPolicy::All,
            }
        }
        DeliverPolicy::ByStartSequence {
            start_sequence: floor + 1,
        }
    }

    /// Reads a message: its envelope and the members it concerns.
    fn receive(&self, message: Message) -> Received<'_> {
        let (delivered, pending) = message
            .info()
            .map(|info| (info.delivered, info.pending))
            .unwrap_or((1, 0));
        for member in &self.members {
            member.stats.pending.store(pending, Ordering::Relaxed);
        }
        let envelope = match serde_json::from_slice::<EventEnvelope>(&message.payload) {
            Ok(envelope) => envelope,
            Err(error) => {
                return Received::Unreadable(
                    message,
                    format!("not a Brigade event envelope: {error}"),
                )
            }
        };
        // NATS servers before 2.10 ignore `filter_subjects` and deliver the whole stream: an
        // event of an aggregate type no member asked for is none of their business.
        let members: Vec<&Member> = self
            .members
            .iter()
            .filter(|m| m.reads(&envelope.aggregate_type))
            .collect();
        if members.is_empty() {
            return Received::NotOurs(message);
        }
        let event = ReceivedEvent {
            envelope,
            subject: message.subject.to_string(),
            delivered,
        };
        Received::Delivery(Delivery {
            message,
            event,
            members,
        })
    }

    async fn process(&self, message: Message) {
        let delivery = match self.receive(message) {
            Received::Delivery(delivery) => delivery,
            Received::NotOurs(message) => return acknowledge(&message).await,
            Received::Unreadable(message, reason) => {
                return self.park_unreadable(message, &reason).await;
            }
        };
        // At most half of the pool's connections are held by consumer transactions at once,
        // across every consumer of the process: a handler that issues a command needs a second
        // connection while its transaction holds the first, and were every connection held by
        // such a transaction, none would ever come free (each attempt would time out, and
        // after `max_attempts` the message would be parked). Seen in the chaos suite.
        let permit = in_flight(&self.pool).acquire_owned().await;
        let outcomes = match &delivery.members[..] {
            [member] => vec![self.apply(&delivery, member).await],
            // Several members: one transaction for all of them.
            members => match self.apply_members(&delivery).await {
                Ok(outcomes) => outcomes.into_iter().map(Ok).collect(),
                // One member failed and spoilt the others' work: each on its own, so that
                // only the one at fault is retried or parked.
                Err(_) => {
                    let mut outcomes = Vec::with_capacity(members.len());
                    for member in members {
                        outcomes.push(self.apply(&delivery, member).await);
                    }
                    outcomes
                }
            },
        };
        drop(permit);
        self.settle(delivery, outcomes).await;
    }

    /// Several messages of one lane in one transaction: what a lane does when messages queue
    /// up behind each other (under load). Each is claimed, applied and acknowledged exactly as
    /// `process` would, but one BEGIN, one COMMIT and one WAL flush serve them all (the
    /// per-transaction round trips and the flush were most of a consumer's cost; see
    /// BENCHMARKS.md). Should anything fail, the transaction rolls back whole and each message
    /// goes through `process` alone, with its own retries and parking: a command a handler
    /// issued before the failure is idempotent, as after a crash.
    async fn process_batch(&self, messages: Vec<Message>) {
        let mut deliveries = Vec::with_capacity(messages.len());
        for message in messages {
            match self.receive(message) {
                Received::Delivery(delivery) => deliveries.push(delivery),
                Received::NotOurs(message) => acknowledge(&message).await,
                Received::Unreadable(message, reason) => {
                    self.park_unreadable(message, &reason).await;
                }
            }
        }
        if deliveries.is_empty() {
            return;
        }
        let permit = in_flight(&self.pool).acquire_owned().await;
        let outcomes = self.apply_all(&deliveries).await;
        drop(permit);
        match outcomes {
            Ok(outcomes) => {
                for (delivery, outcomes) in deliveries.into_iter().zip(outcomes) {
                    self.settle(delivery, outcomes.into_iter().map(Ok).collect())
                        .await;
                }
            }
            Err(_) => {
                for delivery in deliveries {
                    self.process(delivery.message).await;
                }
            }
        }
    }

    /// Applies one message for one member, in one transaction: its checkpoint is claimed and,
    /// if the message is its next, its handler runs. Any error rolls the transaction back.
    async fn apply(
        &self,
        delivery: &Delivery<'_>,
        member: &Member,
    ) -> Result<Outcome, HandlerError> {
        let envelope = &delivery.event.envelope;
        let mut tx = self.pool.begin_with(durable::BEGIN_WITHOUT_FLUSH).await?;
        if !claim_next(&mut tx, member.name(), envelope).await? {
            return Ok(unclaimed(&mut tx, member, envelope).await?);
        }
        self.handle(member, delivery, &mut tx).await?;
        tx.commit().await?;
        Ok(Outcome::Applied)
    }

    /// Runs `member`'s handler on the delivery's event inside `tx`, in the member's span.
    async fn handle(
        &self,
        member: &Member,
        delivery: &Delivery<'_>,
        tx: &mut PgConnection,
    ) -> Result<(), HandlerError> {
        member
            .subscription
            .handler
            .handle(&delivery.event, tx)
            .instrument(self.span(member, delivery))
            .await
    }

    /// `apply` for every member that reads one message, in one transaction: one statement
    /// claims it on each member's checkpoint where it is the next, then each claiming member's
    /// handler runs. The outcomes follow `delivery.members`; any error rolls it all back.
    async fn apply_members(&self, delivery: &Delivery<'_>) -> Result<Vec<Outcome>, HandlerError> {
        let envelope = &delivery.event.envelope;
        let names: Vec<&str> = delivery.members.iter().map(|m| m.name()).collect();
        let mut tx = self.pool.begin_with(durable::BEGIN_WITHOUT_FLUSH).await?;
        let claimed = claim_next_for(&mut tx, &names, envelope).await?;
        let mut outcomes = Vec::with_capacity(names.len());
        for member in &delivery.members {
            if claimed.iter().any(|name| name == member.name()) {
                self.handle(member, delivery, &mut tx).await?;
                outcomes.push(Outcome::Applied);
            } else {
                outcomes.push(unclaimed(&mut tx, member, envelope).await?);
            }
        }
        if outcomes.contains(&Outcome::Applied) {
            tx.commit().await?;
        }
        Ok(outcomes)
    }

    /// `apply` for a run of messages and every member that reads each, in one transaction; any
    /// error rolls it all back. One statement claims, on every member's checkpoint of every
    /// aggregate in the run, the events of the run that follow it without a gap (each row
    /// written once, where locking then advancing wrote it twice); the handlers then apply
    /// them in the order received. A checkpoint that takes none (duplicates, early events) is
    /// read, not written, to tell which. A run with nothing to apply rolls back: nothing of it
    /// needs a commit.
    async fn apply_all(
        &self,
        deliveries: &[Delivery<'_>],
    ) -> Result<Vec<Vec<Outcome>>, HandlerError> {
        // Per checkpoint, the run it would take: from its first event in the batch on.
        let mut firsts: HashMap<Key<'_>, i64> = HashMap::new();
        for delivery in deliveries {
            let envelope = &delivery.event.envelope;
            for member in &delivery.members {
                firsts
                    .entry(Key::of(member, envelope))
                    .or_insert(envelope.sequence);
            }
        }
        let mut runs: HashMap<Key<'_>, (i64, i64)> = firsts
            .into_iter()
            .map(|(key, first)| (key, (first, run_after(deliveries, &key, first - 1))))
            .collect();
        let mut tx = self.pool.begin_with(durable::BEGIN_WITHOUT_FLUSH).await?;
        let mut claimed = claim_runs(&mut tx, &runs).await?;
        let others: Vec<Key<'_>> = runs
            .keys()
            .filter(|key| !claimed.contains(*key))
            .copied()
            .collect();
        let mut last = last_of(&mut tx, &others).await?;
        // A run that did not start where its checkpoint stands (a redelivery of an event
        // applied already, or an early one, at its head): the events behind it that do follow
        // the checkpoint are claimed by a second statement, rather than sent back as early.
        // (The first statement's conflict locked the row, so the checkpoint read stays true.)
        let mut from_checkpoint: HashMap<Key<'_>, (i64, i64)> = HashMap::new();
        for key in &others {
            let applied = last.get(key).copied().unwrap_or(0);
            let end = run_after(deliveries, key, applied);
            if end > applied {
                from_checkpoint.insert(*key, (applied + 1, end));
            }
        }
        if !from_checkpoint.is_empty() {
            for key in claim_runs(&mut tx, &from_checkpoint).await? {
                runs.insert(key, from_checkpoint[&key]);
                claimed.push(key);
            }
        }
        for key in &claimed {
            // Applied as the handlers go: the sequence before the run's first, at first.
            last.insert(*key, runs[key].0 - 1);
        }
        let mut all = Vec::with_capacity(deliveries.len());
        for delivery in deliveries {
            let envelope = &delivery.event.envelope;
            let mut outcomes = Vec::with_capacity(delivery.members.len());
            for member in &delivery.members {
                let key = Key::of(member, envelope);
                let applied = last.get(&key).copied().unwrap_or(0);
                if claimed.contains(&key) && envelope.sequence == applied + 1 {
                    self.handle(member, delivery, &mut tx).await?;
                    last.insert(key, envelope.sequence);
                    outcomes.push(Outcome::Applied);
                } else {
                    outcomes.push(Outcome::not_next(envelope.sequence, applied));
                }
            }
            all.push(outcomes);
        }
        if !claimed.is_empty() {
            tx.commit().await?;
        }
        Ok(all)
    }

    /// Acknowledges, delays or parks one message after each member's outcome: acknowledged
    /// once every member has applied it, had it already or parked it; otherwise delayed by
    /// the longest wait a member asks for, so that no member's attempts come faster than they
    /// would on a consumer of its own (its attempts are counted by the message's deliveries);
    /// those that applied it will find it a duplicate.
    async fn settle(&self, delivery: Delivery<'_>, outcomes: Vec<Result<Outcome, HandlerError>>) {
        let Delivery {
            message,
            event,
            members,
        } = delivery;
        let delivered = event.delivered;
        let attempt = u32::try_from(delivered).unwrap_or(u32::MAX);
        let mut retry: Option<Duration> = None;
        let mut wait = |delay: Duration| retry = Some(retry.map_or(delay, |d| d.max(delay)));
        let mut parked = false;
        // The checkpoints that have the message (applied now or before): the acknowledgement
        // waits until they are durable (see `durable`).
        let mut reached = Vec::with_capacity(members.len());
        let checkpoint = |consumer: &str| Checkpoint {
            consumer: consumer.to_owned(),
            aggregate_type: event.envelope.aggregate_type.clone(),
            aggregate_id: event.envelope.aggregate_id.clone(),
            sequence: event.envelope.sequence,
        };
        for (member, outcome) in members.iter().zip(outcomes) {
            let stats = &member.stats;
            let consumer = member.name();
            let mut hopeless = None;
            match outcome {
                Ok(Outcome::Applied) => {
                    stats.applied.fetch_add(1, Ordering::Relaxed);
                    reached.push(checkpoint(consumer));
                }
                Ok(Outcome::Duplicate) => {
                    stats.duplicates.fetch_add(1, Ordering::Relaxed);
                    reached.push(checkpoint(consumer));
                }
                Ok(Outcome::Early) => {
                    stats.out_of_order.fetch_add(1, Ordering::Relaxed);
                    if delivered % 50 == 0 {
                        tracing::warn!(%consumer, message = %event.envelope.message_id(), delivered, "still waiting for an earlier event of this aggregate");
                    }
                    wait(delay_for_attempt(
                        attempt,
                        Duration::from_millis(20),
                        Duration::from_secs(2),
                    ));
                }
                Err(HandlerError::NotYet(reason)) => {
                    stats.out_of_order.fetch_add(1, Ordering::Relaxed);
                    if delivered % 50 == 0 {
                        tracing::warn!(%consumer, message = %event.envelope.message_id(), delivered, %reason, "still waiting for another stream's event");
                    }
                    wait(delay_for_attempt(
                        attempt,
                        Duration::from_millis(200),
                        Duration::from_secs(5),
                    ));
                }
                Err(HandlerError::Permanent(reason)) => hopeless = Some(reason),
                Err(HandlerError::Transient(reason)) if delivered >= self.max_attempts => {
                    hopeless = Some(format!("gave up after {delivered} attempts: {reason}"));
                }
                Err(HandlerError::Transient(reason)) => {
                    stats.retries.fetch_add(1, Ordering::Relaxed);
                    tracing::info!(%consumer, message = %event.envelope.message_id(), delivered, %reason, "will retry");
                    wait(delay_for_attempt(
                        attempt,
                        Duration::from_millis(200),
                        Duration::from_secs(30),
                    ));
                }
            }
            if let Some(reason) = hopeless {
                let envelope = Some(&event.envelope);
                if self
                    .park(member, &message, envelope, &reason, delivered)
                    .await
                {
                    parked = true;
                } else {
                    wait(Duration::from_secs(5));
                }
            }
        }
        match retry {
            Some(delay) => {
                let _ = message.ack_with(AckKind::Nak(Some(delay))).await;
            }
            None => {
                // A parked message is never delivered again (a dead letter's commit is
                // durable); the others' work in it must be too.
                let kind = if parked { AckKind::Term } else { AckKind::Ack };
                self.acks().settle(message, kind, reached);
            }
        }
    }

    /// The queue this process's consumers of this database acknowledge through.
    fn acks(&self) -> &AckQueue {
        self.acks.get_or_init(|| AckQueue::of(&self.pool))
    }

    /// The span one member applies an event in, continuing the trace its message names.
    fn span(&self, member: &Member, delivery: &Delivery<'_>) -> tracing::Span {
        let header = delivery
            .message
            .headers
            .as_ref()
            .and_then(|headers| headers.get(crate::trace::TRACEPARENT))
            .map(async_nats::HeaderValue::as_str);
        crate::trace::consuming_span(
            member.name(),
            &delivery.event.subject,
            header,
            &delivery.event.envelope,
        )
    }

    /// Parks a message for one member, moving its checkpoint past it; whether it could (when
    /// the database is down too, it cannot, and the message is retried to be parked later).
    async fn park(
        &self,
        member: &Member,
        message: &Message,
        envelope: Option<&EventEnvelope>,
        reason: &str,
        delivered: i64,
    ) -> bool {
        tracing::error!(consumer = %member.name(), subject = %message.subject, %reason, "parking message in dead letters");
        let parked = dead_letters::park(
            &self.pool,
            member.name(),
            message.subject.as_str(),
            &message.payload,
            envelope,
            reason,
            delivered,
        )
        .await;
        match parked {
            Ok(()) => {
                member.stats.parked.fetch_add(1, Ordering::Relaxed);
                true
            }
            Err(error) => {
                tracing::warn!(%error, "cannot park the message; will retry");
                false
            }
        }
    }

    /// Parks a message that is no event envelope for each member that reads the aggregate
    /// type its subject names (each of them would have had it on a consumer of its own), or
    /// for every member when its subject names no aggregate type of this stream; acknowledges
    /// it when it names a type no member reads (a server before NATS 2.10 delivers those too).
    async fn park_unreadable(&self, message: Message, reason: &str) {
        let delivered = message.info().map_or(1, |info| info.delivered);
        let prefix = self.bus.namespace.subject(&format!("{}.", self.source));
        let named = message
            .subject
            .as_str()
            .strip_prefix(prefix.as_str())
            .and_then(|rest| rest.split('.').next())
            .filter(|aggregate| !aggregate.is_empty());
        let owners: Vec<&Member> = match named {
            Some(aggregate) => self.members.iter().filter(|m| m.reads(aggregate)).collect(),
            None => self.members.iter().collect(),
        };
        if owners.is_empty() {
            return acknowledge(&message).await;
        }
        let mut all_parked = true;
        for member in owners {
            all_parked &= self.park(member, &message, None, reason, delivered).await;
        }
        if all_parked {
            let _ = message.ack_with(AckKind::Term).await;
        } else {
            let _ = message
                .ack_with(AckKind::Nak(Some(Duration::from_secs(5))))
                .await;
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

/// What a message is to a member whose checkpoint did not take it: one it has applied
/// already, or one that came before its predecessor.
async fn unclaimed(
    tx: &mut PgConnection,
    member: &Member,
    envelope: &EventEnvelope,
) -> Result<Outcome, sqlx::Error> {
    let last = last_applied(tx, member.name(), envelope).await?;
    Ok(Outcome::not_next(envelope.sequence, last))
}

/// `claim_next` for several consumers at once, in one statement: the consumers whose
/// checkpoint the envelope was the next of, now advanced to it (and locked until the
/// transaction ends). A consumer with no checkpoint for an aggregate whose first event has not
/// come yet is given one at 0 (as `lock_checkpoint` does for a dead letter's replay).
async fn claim_next_for(
    tx: &mut PgConnection,
    consumers: &[&str],
    envelope: &EventEnvelope,
) -> Result<Vec<String>, sqlx::Error> {
    // Rows locked in the order `claim_runs` locks them: two transactions never wait
    // for each other the other way round.
    let mut consumers = consumers.to_vec();
    consumers.sort_unstable();
    let rows: Vec<(String, i64)> = sqlx::query_as(
        "INSERT INTO consumer_checkpoints AS c (consumer, aggregate_type, aggregate_id, last_sequence)
         SELECT consumer, $2, $3, CASE WHEN $4::bigint = 1 THEN 1 ELSE 0 END
         FROM unnest($1::text[]) AS m(consumer)
         ON CONFLICT (consumer, aggregate_type, aggregate_id)
         DO UPDATE SET last_sequence = $4::bigint, updated_at = now()
         WHERE c.last_sequence = $4::bigint - 1
         RETURNING c.consumer, c.last_sequence",
    )
    .bind(&consumers)
    .bind(&envelope.aggregate_type)
    .bind(&envelope.aggregate_id)
    .bind(envelope.sequence)
    .fetch_all(&mut *tx)
    .await?;
    Ok(rows
        .into_iter()
        .filter(|(_, last)| *last == envelope.sequence)
        .map(|(consumer, _)| consumer)
        .collect())
}

/// The last sequence of the run that follows `after` for one checkpoint: each next sequence
/// of `key` received, in delivery order, after the one before it (`after` itself: none).
fn run_after(deliveries: &[Delivery<'_>], key: &Key<'_>, after: i64) -> i64 {
    let mut end = after;
    for delivery in deliveries {
        let envelope = &delivery.event.envelope;
        if delivery
            .members
            .iter()
            .any(|member| Key::of(member, envelope) == *key)
            && envelope.sequence == end + 1
        {
            end = envelope.sequence;
        }
    }
    end
}

/// One checkpoint: a consumer's of one aggregate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct Key<'a> {
    consumer: &'a str,
    aggregate_type: &'a str,
    aggregate_id: &'a str,
}

impl<'a> Key<'a> {
    fn of(member: &'a Member, envelope: &'a EventEnvelope) -> Self {
        Self {
            consumer: member.name(),
            aggregate_type: &envelope.aggregate_type,
            aggregate_id: &envelope.aggregate_id,
        }
    }

    /// Whether a row's `(consumer, aggregate_type, aggregate_id)` is this checkpoint's.
    fn is(&self, consumer: &str, aggregate_type: &str, aggregate_id: &str) -> bool {
        self.consumer == consumer
            && self.aggregate_type == aggregate_type
            && self.aggregate_id == aggregate_id
    }
}

/// The keys' columns, in key order: what `unnest` takes.
fn columns<'a>(keys: &[Key<'a>]) -> [Vec<&'a str>; 3] {
    let mut keys = keys.to_vec();
    keys.sort_unstable();
    let mut columns = [
        Vec::with_capacity(keys.len()),
        Vec::with_capacity(keys.len()),
        Vec::with_capacity(keys.len()),
    ];
    for key in keys {
        columns[0].push(key.consumer);
        columns[1].push(key.aggregate_type);
        columns[2].push(key.aggregate_id);
    }
    columns
}

/// Advances each checkpoint to the last sequence of its run, `(first, last)`, where its last
/// applied is the one before the run's first (an aggregate's first event creates it), in one
/// statement; returns those it advanced, which stay locked until the transaction ends, as
/// `claim_next` leaves the one it advances. The rows are taken in key order, as
/// `claim_next_for` takes them: two transactions never wait for each other the other way
/// round.
async fn claim_runs<'a>(
    tx: &mut PgConnection,
    runs: &HashMap<Key<'a>, (i64, i64)>,
) -> Result<Vec<Key<'a>>, sqlx::Error> {
    let keys: Vec<Key<'a>> = runs.keys().copied().collect();
    let [consumers, types, ids] = columns(&keys);
    let (firsts, lasts): (Vec<i64>, Vec<i64>) = consumers
        .iter()
        .zip(&types)
        .zip(&ids)
        .map(|((&consumer, &aggregate_type), &aggregate_id)| {
            runs[&Key {
                consumer,
                aggregate_type,
                aggregate_id,
            }]
        })
        .unzip();
    // One INSERT, whose conflicts with existing rows go through the primary key: a missing row
    // is created at the run's last for a run from an aggregate's first event (at 0 for one
    // whose first has not come yet, as `claim_next_for` does), an existing one advanced when
    // the run follows it. (An UPDATE joined with the runs was planned, once for good, while
    // the table was young: a hash join over every checkpoint, 1.7 ms a run once it had grown;
    // see BENCHMARKS.md.)
    let rows: Vec<(String, String, String, i64)> = sqlx::query_as(
        "INSERT INTO consumer_checkpoints AS c (consumer, aggregate_type, aggregate_id, last_sequence)
         SELECT consumer, aggregate_type, aggregate_id, CASE WHEN first = 1 THEN last ELSE 0 END
         FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::bigint[])
             AS r(consumer, aggregate_type, aggregate_id, first, last)
         ON CONFLICT (consumer, aggregate_type, aggregate_id) DO UPDATE
         SET last_sequence = (
                 SELECT r.last FROM unnest($1::text[], $2::text[], $3::text[], $5::bigint[])
                     AS r(consumer, aggregate_type, aggregate_id, last)
                 WHERE r.consumer = c.consumer AND r.aggregate_type = c.aggregate_type
                   AND r.aggregate_id = c.aggregate_id),
             updated_at = now()
         WHERE c.last_sequence = (
                 SELECT r.first - 1 FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[])
                     AS r(consumer, aggregate_type, aggregate_id, first)
                 WHERE r.consumer = c.consumer AND r.aggregate_type = c.aggregate_type
                   AND r.aggregate_id = c.aggregate_id)
         RETURNING c.consumer, c.aggregate_type, c.aggregate_id, c.last_sequence",
    )
    .bind(&consumers)
    .bind(&types)
    .bind(&ids)
    .bind(&firsts)
    .bind(&lasts)
    .fetch_all(&mut *tx)
    .await?;
    Ok(keys
        .into_iter()
        .filter(|key| {
            rows.iter()
                .any(|(consumer, aggregate_type, aggregate_id, last)| {
                    key.is(consumer, aggregate_type, aggregate_id) && *last == runs[key].1
                })
        })
        .collect())
}

/// The last sequence applied of each checkpoint (absent: none), without locking: enough to
/// tell a duplicate (at or below it, for good: checkpoints only move forward) from an early
/// event (retried anyway).
async fn last_of<'a>(
    tx: &mut PgConnection,
    keys: &[Key<'a>],
) -> Result<HashMap<Key<'a>, i64>, sqlx::Error> {
    if keys.is_empty() {
        return Ok(HashMap::new());
    }
    let [consumers, types, ids] = columns(keys);
    let rows: Vec<(String, String, String, i64)> = sqlx::query_as(
        "SELECT c.consumer, c.aggregate_type, c.aggregate_id, c.last_sequence
         FROM unnest($1::text[], $2::text[], $3::text[]) AS k(consumer, aggregate_type, aggregate_id)
         JOIN consumer_checkpoints c ON c.consumer = k.consumer
          AND c.aggregate_type = k.aggregate_type AND c.aggregate_id = k.aggregate_id",
    )
    .bind(&consumers)
    .bind(&types)
    .bind(&ids)
    .fetch_all(&mut *tx)
    .await?;
    Ok(keys
        .iter()
        .filter_map(|key| {
            rows.iter()
                .find(|(consumer, aggregate_type, aggregate_id, _)| {
                    key.is(consumer, aggregate_type, aggregate_id)
                })
                .map(|row| (*key, row.3))
        })
        .collect())
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

/// Adds the messages waiting in a lane to `batch`, up to [`BATCH`].
fn take_waiting(rx: &mut mpsc::Receiver<Message>, batch: &mut Vec<Message>) {
    while batch.len() < BATCH {
        match rx.try_recv() {
            Ok(next) => batch.push(next),
            Err(_) => return,
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    struct Nothing;

    #[async_trait::async_trait]
    impl EventHandler for Nothing {
        async fn handle(
            &self,
            _: &ReceivedEvent,
            _: &mut PgConnection,
        ) -> Result<(), HandlerError> {
            Ok(())
        }
    }

    fn subscription(name: &str, source: &'static str, types: &[&'static str]) -> Subscription {
        Subscription {
            name: name.to_owned(),
            source,
            aggregate_types: types.to_vec(),
            handler: Arc::new(Nothing),
        }
    }

    #[test]
    fn subscriptions_share_a_consumer_only_with_those_that_read_the_same_events() {
        let groups = Group::sharing_events(
            "orders",
            vec![
                subscription("from-kitchen", "kitchen", &["ticket"]),
                subscription("stock", "kitchen", &["stock"]),
                subscription("estimates", "kitchen", &["estimate"]),
                subscription("capacity", "kitchen", &["ticket", "estimate"]),
                subscription("tracking", "orders", &["order"]),
                subscription("menu", "orders", &["dish"]),
                subscription("identity", "identity", &["account"]),
                subscription("from-delivery", "delivery", &["ticket"]),
            ],
        );
        let named: Vec<(&str, Vec<&str>)> = groups
            .iter()
            .map(|g| {
                let members = g.members().iter().map(|m| m.name.as_str()).collect();
                (g.durable(), members)
            })
            .collect();
        assert_eq!(
            named,
            [
                ("stock", vec!["stock"]),
                (
                    "orders-on-kitchen-estimate-ticket",
                    vec!["from-kitchen", "estimates", "capacity"]
                ),
                ("tracking", vec!["tracking"]),
                ("menu", vec!["menu"]),
                ("identity", vec!["identity"]),
                ("from-delivery", vec!["from-delivery"]),
            ]
        );
    }
}
