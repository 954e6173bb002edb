//! The event store of each service: cqrs-es over postgres-es, the pure event store only.
//!
//! cqrs-es 0.5's snapshot and aggregate stores apply events twice on commit (the event sink
//! applies them, then the snapshot update applies them again), so Brigade rebuilds every
//! aggregate from its events. Its in-process queries run after the commit and would miss an
//! event on a crash in between: read models are fed from the bus instead (see `projections`).
//!
//! Requests' commands go through cqrs-es's `execute`, which commits the events on their own.
//! A consumer's commands go through [`execute_in`], in the consumer's transaction, so that they
//! commit with its checkpoint. A new aggregate whose events must commit with other rows is
//! decided with [`decide_new`] and written by the caller's own statement (placing an order).

use std::collections::HashMap;
use std::sync::Arc;

use cqrs_es::event_sink::EventSink;
use cqrs_es::persist::PersistedEventStore;
use cqrs_es::{Aggregate, AggregateError, DomainEvent, EventStore as _};
use postgres_es::{postgres_cqrs, PostgresCqrs, PostgresEventRepository};
use sqlx::{PgConnection, PgPool};

/// The command side of one aggregate type: `execute` loads, decides, and commits.
pub type EventStore<A> = Arc<PostgresCqrs<A>>;

/// An event store for aggregate `A` on the service's pool.
#[must_use]
pub fn event_store<A: Aggregate>(pool: PgPool, services: A::Services) -> EventStore<A> {
    Arc::new(postgres_cqrs(pool, vec![], services))
}

/// One aggregate's current state and the sequence of its last event (0: no events).
#[derive(Debug)]
pub struct Loaded<A> {
    pub aggregate: A,
    pub version: i64,
}

/// The current state of one aggregate, rebuilt from its events (the default state when it has none).
///
/// # Errors
/// A database or deserialization error.
pub async fn load<A: Aggregate>(
    pool: &PgPool,
    id: &str,
) -> Result<Loaded<A>, AggregateError<A::Error>> {
    let store: PersistedEventStore<PostgresEventRepository, A> =
        PersistedEventStore::new_event_store(PostgresEventRepository::new(pool.clone()));
    let context = store.load_aggregate(id).await?;
    Ok(Loaded {
        aggregate: context.aggregate,
        version: i64::try_from(context.current_sequence).unwrap_or(i64::MAX),
    })
}

/// The metadata stored with every event of one command: who did it, and which journey and
/// which cause it belongs to, so an audit can tell the whole story of an order.
#[derive(Debug, Clone, Default)]
pub struct CommandMetadata {
    values: HashMap<String, String>,
}

impl CommandMetadata {
    /// Metadata naming the actor, as JSON (`{"kind":"user","accountId":…,"role":"chef"}`).
    #[must_use]
    pub fn by(actor_json: String) -> Self {
        let mut values = HashMap::new();
        values.insert("actor".to_owned(), actor_json);
        Self { values }
    }

    /// The journey this command belongs to: the order id, for everything an order causes.
    ///
    /// The journey is also the trace: a UUID correlation gives the W3C trace id (its 32 hex
    /// digits), so every event of one order, in every service, carries the same `trace_id`, and
    /// the relay passes it on as the `traceparent` header of the NATS message. Finding an order
    /// in any tracing backend then needs nothing but its id.
    ///
    /// The span issuing the command (an HTTP request, or a consumer applying an event) joins
    /// that trace if it started none of its own, and is recorded as `span_id`: the parent of
    /// whatever the events cause in other services (see [`crate::trace`]).
    #[must_use]
    pub fn correlation(mut self, id: impl Into<String>) -> Self {
        let id = id.into();
        if let Ok(uuid) = uuid::Uuid::parse_str(&id) {
            let trace_id = uuid.simple().to_string();
            crate::trace::join(&trace_id);
            if let Some(span) =
                crate::trace::current().filter(|span| span.trace_id == *uuid.as_bytes())
            {
                self.values.insert("span_id".to_owned(), span.span_id_hex());
            }
            self.values.insert("trace_id".to_owned(), trace_id);
        }
        self.values.insert("correlation_id".to_owned(), id);
        self
    }

    /// What caused this command: the id of an HTTP request or of the event that triggered it.
    #[must_use]
    pub fn causation(mut self, id: impl Into<String>) -> Self {
        self.values.insert("causation_id".to_owned(), id.into());
        self
    }

    /// The map cqrs-es stores beside each event.
    #[must_use]
    pub fn into_map(self) -> HashMap<String, String> {
        self.values
    }
}

/// The events a command decided for an aggregate that has none yet, serialized as the event
/// store keeps them (`schema::EVENT_STORE`'s `events`, sequences 1, 2, … in order), for a
/// caller that writes them in one statement with rows that must commit with them: the orders
/// service stores a new order, its `Idempotency-Key` and its kitchen slot in one commit,
/// where `execute` would commit the events on their own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEvents {
    pub aggregate_type: &'static str,
    pub event_types: Vec<String>,
    pub event_versions: Vec<String>,
    /// Each event's payload, as JSON text.
    pub payloads: Vec<String>,
    /// The command's metadata, as JSON text (the same for every event).
    pub metadata: String,
}

/// Decides `command` on an aggregate that has no events yet: the aggregate as the events leave
/// it, and the events to store. Storing them is the caller's (a unique violation on the
/// events' key then means the aggregate existed after all).
///
/// # Errors
/// The aggregate's refusal, or an event that cannot be serialized.
pub async fn decide_new<A: Aggregate>(
    command: A::Command,
    services: &A::Services,
    metadata: CommandMetadata,
) -> Result<(A, NewEvents), AggregateError<A::Error>> {
    decide(A::default(), command, services, metadata).await
}

/// Decides `command` on `aggregate`: the aggregate as the events leave it, and the events.
async fn decide<A: Aggregate>(
    mut aggregate: A,
    command: A::Command,
    services: &A::Services,
    metadata: CommandMetadata,
) -> Result<(A, NewEvents), AggregateError<A::Error>> {
    let sink = EventSink::default();
    aggregate
        .handle(command, services, &sink)
        .await
        .map_err(AggregateError::UserError)?;
    let events = sink.collect().await;
    let unexpected = |e: serde_json::Error| AggregateError::UnexpectedError(Box::new(e));
    let new = NewEvents {
        aggregate_type: A::TYPE,
        event_types: events.iter().map(DomainEvent::event_type).collect(),
        event_versions: events.iter().map(DomainEvent::event_version).collect(),
        payloads: events
            .iter()
            .map(serde_json::to_string)
            .collect::<Result<_, _>>()
            .map_err(unexpected)?,
        metadata: serde_json::to_string(&metadata.into_map()).map_err(unexpected)?,
    };
    Ok((aggregate, new))
}

/// For a consumer: executes `command`, caused by the event `cause`, on the aggregate with that
/// event's id, inside the consumer's transaction `tx`, so that the command's events commit with
/// the consumer's checkpoint — one commit per event applied, where `execute` adds a load and a
/// commit of its own. Same outcome as `execute`: the aggregate's refusal as `UserError`, and
/// another writer's event stored at the same sequence first as `AggregateConflict` (the
/// transaction is then spoilt: the consumer rolls it back and retries the event, as it does a
/// conflict of `execute`). Returns the events stored, as the relay will publish them, for a
/// projection of the same service to apply in the same transaction
/// ([`crate::Subscription::apply_in`]).
///
/// # Errors
/// As `execute`'s.
pub async fn execute_in<A: Aggregate>(
    tx: &mut PgConnection,
    cause: &crate::EventEnvelope,
    command: A::Command,
    services: &A::Services,
) -> Result<Vec<crate::EventEnvelope>, AggregateError<A::Error>> {
    execute_in_with_metadata::<A>(tx, &cause.aggregate_id, command, services, caused_by(cause))
        .await
}

/// Executes `command` on the aggregate `id` inside the transaction `tx`, with the given
/// metadata: [`execute_in`] for a caller whose commands are not caused by one event, and
/// that records several in one commit (the kitchen's estimator, a pass's quotes). Same
/// outcomes; after `AggregateConflict` the transaction is spoilt and must be rolled back.
///
/// # Errors
/// As `execute`'s.
pub async fn execute_in_with_metadata<A: Aggregate>(
    tx: &mut PgConnection,
    id: &str,
    command: A::Command,
    services: &A::Services,
    metadata: CommandMetadata,
) -> Result<Vec<crate::EventEnvelope>, AggregateError<A::Error>> {
    let stored: Vec<(serde_json::Value,)> = sqlx::query_as(
        "SELECT payload FROM events WHERE aggregate_type = $1 AND aggregate_id = $2
          ORDER BY sequence",
    )
    .bind(A::TYPE)
    .bind(id)
    .fetch_all(&mut *tx)
    .await
    .map_err(database_error)?;
    let current = i64::try_from(stored.len()).unwrap_or(i64::MAX);
    let mut aggregate = A::default();
    for (payload,) in stored {
        let event: A::Event = serde_json::from_value(payload)
            .map_err(|e| AggregateError::DeserializationError(Box::new(e)))?;
        aggregate.apply(event);
    }
    let events = decide(aggregate, command, services, metadata).await?.1;
    if events.event_types.is_empty() {
        return Ok(Vec::new());
    }
    let stored = sqlx::query(
        "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version,
                             payload, metadata)
         SELECT $1, $2, $3 + event.n, event.event_type, event.event_version,
                event.payload::json, $7::json
           FROM unnest($4::text[], $5::text[], $6::text[])
                    WITH ORDINALITY AS event (event_type, event_version, payload, n)
         RETURNING *",
    )
    .bind(events.aggregate_type)
    .bind(id)
    .bind(current)
    .bind(&events.event_types)
    .bind(&events.event_versions)
    .bind(&events.payloads)
    .bind(&events.metadata)
    .fetch_all(&mut *tx)
    .await
    .map_err(|error| {
        if sequence_taken(&error) {
            AggregateError::AggregateConflict
        } else {
            database_error(error)
        }
    })?;
    let mut envelopes = stored
        .iter()
        .map(crate::EventEnvelope::from_row)
        .collect::<Result<Vec<_>, _>>()
        .map_err(database_error)?;
    envelopes.sort_by_key(|envelope| envelope.sequence);
    Ok(envelopes)
}

/// Whether `error` is an insert of events at a sequence another writer stored first (the
/// events' primary key).
#[must_use]
pub fn sequence_taken(error: &sqlx::Error) -> bool {
    error
        .as_database_error()
        .is_some_and(|e| e.constraint() == Some("events_pkey"))
}

fn database_error<E: std::error::Error>(error: sqlx::Error) -> AggregateError<E> {
    AggregateError::DatabaseConnectionError(Box::new(error))
}

/// How many times a command that lost a race to another writer is decided again.
pub const CONFLICT_RETRIES: usize = 3;

/// Executes a command; when another writer appended to the aggregate between the load and the
/// commit (a conflict: nothing of this command was stored), decides it again on the fresh
/// state, up to [`CONFLICT_RETRIES`] times.
///
/// Right for commands that say what the outcome must be (cancel the order, mark the item ready,
/// go on shift): deciding again is what would have happened had the request come a moment
/// later, and the aggregate refuses it then if it no longer holds. Not for commands relative to
/// what the caller saw (an undo could take back someone else's step): issue those once.
///
/// # Errors
/// The aggregate's refusal, a conflict that outlasted the retries, or a database error.
pub async fn execute_deciding_again<A>(
    store: &PostgresCqrs<A>,
    id: &str,
    command: &A::Command,
    metadata: &CommandMetadata,
) -> Result<(), AggregateError<A::Error>>
where
    A: Aggregate,
    A::Command: Clone,
{
    let mut attempt = 0;
    loop {
        match store
            .execute_with_metadata(id, command.clone(), metadata.clone().into_map())
            .await
        {
            Err(AggregateError::AggregateConflict) if attempt < CONFLICT_RETRIES => attempt += 1,
            result => return result,
        }
    }
}

/// How a subscription reports a failed command: a refused command will be refused again
/// (park it), a conflict or a database fault may pass next time (retry).
pub fn handler_error<E: std::fmt::Display + std::error::Error>(
    error: AggregateError<E>,
) -> crate::HandlerError {
    match error {
        AggregateError::UserError(e) => crate::HandlerError::Permanent(format!("refused: {e}")),
        AggregateError::AggregateConflict => {
            crate::HandlerError::Transient("concurrent change to the aggregate".to_owned())
        }
        AggregateError::DatabaseConnectionError(e) => {
            crate::HandlerError::Transient(format!("database: {e}"))
        }
        AggregateError::DeserializationError(e) => {
            crate::HandlerError::Permanent(format!("stored events cannot be read: {e}"))
        }
        AggregateError::UnexpectedError(e) => {
            crate::HandlerError::Transient(format!("unexpected: {e}"))
        }
    }
}

/// Metadata of a command issued by the system in reaction to an event: same journey, caused by
/// that event.
#[must_use]
pub fn caused_by(envelope: &crate::EventEnvelope) -> CommandMetadata {
    let correlation = envelope
        .correlation_id()
        .map_or_else(|| envelope.aggregate_id.clone(), ToOwned::to_owned);
    CommandMetadata::by(r#"{"kind":"system"}"#.to_owned())
        .correlation(correlation)
        .causation(envelope.message_id())
}
