//! Brigade's domain: the aggregates, commands, events and errors of every bounded context.
//!
//! Pure: no I/O, no clock (every command carries its `at`), no randomness. Each context is a
//! module laid out the same way: `commands.rs` (what may be asked), `events.rs` (what happened,
//! the facts published on the bus), `errors.rs` (why a command was refused, with stable codes),
//! and one file per aggregate, where `handle` decides and `apply` evolves.
//!
//! | context | aggregates (cqrs-es `TYPE`) |
//! |---|---|
//! | [`identity`] | [`identity::Account`] (`account`) |
//! | [`ordering`] | [`ordering::Order`] (`order`), [`ordering::Dish`] (`dish`) |
//! | [`kitchen`] | [`kitchen::Ticket`] (`ticket`, one per order), [`kitchen::ReadyEstimate`] (`estimate`), [`kitchen::DishStock`] (`stock`, one per dish) |
//! | [`delivery`] | [`delivery::Delivery`] (`delivery`, one per order), [`delivery::Courier`] (`courier`) |
//!
//! Order, Ticket and Delivery share one aggregate id: the order id.
//!
//! Every command is idempotent where another service issues it in reaction to an event: a
//! redelivered event then succeeds and emits nothing.
#![forbid(unsafe_code)]

pub mod delivery;
pub mod identity;
pub mod kitchen;
pub mod ordering;
pub mod shared;

#[cfg(test)]
mod test_support;

pub use shared::{
    Actor, Address, AddressError, Allergen, Diet, Money, Role, UnknownName, UnknownRole,
};

/// The version every event of this crate reports through `DomainEvent::event_version`.
/// Bump it (and add an upcaster) when an event's payload changes incompatibly.
pub const EVENT_VERSION: &str = "1.0";
