//! The bus: how an event committed in one service's event store reaches every other service,
//! at least once, in per-aggregate order, and is applied exactly once.
//!
//! The path of one event, file by file:
//! - [`schema`]: the event store tables (postgres-es's `events`, plus a global position) and the
//!   `AFTER INSERT` trigger that writes an [`outbox`](schema::EVENT_STORE) row in the very
//!   transaction that stores the event, so no committed event can miss the bus;
//! - [`store`]: the cqrs-es event store wiring and the metadata every command carries;
//! - [`relay`]: publishes outbox rows to JetStream with `Nats-Msg-Id` and marks them only after
//!   the publish ack;
//! - [`namespace`]: stream and subject names (`orders.order.placed`), prefixed in tests;
//! - [`envelope`]: the wire format of one event on the bus;
//! - [`consumer`]: durable pull consumers that apply each event once, in order per aggregate,
//!   retry transient failures with a growing delay and park the hopeless ones; a service's
//!   subscriptions to the same events share one consumer and one transaction per message;
//! - [`durable`]: consumers' commits do not wait for the WAL flush; their acknowledgements, and
//!   the publication of the events they stored, do;
//! - [`dead_letters`]: the parked messages, listed, replayed or discarded by managers;
//! - [`trace`]: the `traceparent` that lets one trace follow an order across services.
#![forbid(unsafe_code)]

pub mod bus;
pub mod consumer;
pub mod dead_letters;
pub mod durable;
pub mod envelope;
pub mod namespace;
pub mod relay;
pub mod schema;
pub mod store;
pub mod trace;

pub use bus::{Bus, BusError};
pub use consumer::{
    ConsumerRunner, EventHandler, Group, HandlerError, Pace, ReceivedEvent, Subscription,
};
pub use envelope::EventEnvelope;
pub use namespace::Namespace;
pub use relay::OutboxRelay;
pub use schema::{migrate, Migration};
pub use store::{CommandMetadata, EventStore};
