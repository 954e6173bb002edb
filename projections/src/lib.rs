//! Read models: one table (or two) per screen or query, each fed by a projector that is a
//! durable consumer of the service's own stream.
//!
//! A projector applies each event inside the consumer's transaction, which also advances its
//! per-aggregate checkpoint (see `brigade_nats::consumer`): a read model is updated exactly once
//! per event, in order, and resumes where it stopped after a crash. cqrs-es's in-process
//! queries are not used for this: they run after the commit and miss an event on a crash in
//! between.
//!
//! Every change a projector makes is also recorded in the [`feed`], which live screens follow
//! over server-sent events (and resume from, with `Last-Event-ID`).
#![forbid(unsafe_code)]

pub mod couriers;
pub mod feed;
pub mod kitchen_queue;
pub mod live_deliveries;
pub mod menu;
pub mod order_tracking;
pub mod rebuild;
