//! Kitchen context (the kitchen service): one [`Ticket`] per order, the chefs' to-do list.
//!
//! The kitchen opens a ticket when it sees `OrderPlaced`, chefs start and finish each item, and
//! the ticket becomes ready with its last item. The ticket's aggregate id is the order id, so a
//! redelivered `OrderPlaced` or `OrderCancelled` finds the same ticket and changes nothing.
//!
//! The kitchen also quotes when each ticket will be ready: [`estimate`] is the model of its
//! live load, and a [`ReadyEstimate`] (one per order, its own stream) records the quotes.

mod commands;
mod errors;
pub mod estimate;
mod events;
mod ready_estimate;
mod ticket;

pub use commands::{EstimateCommand, TicketCommand};
pub use errors::{EstimateError, TicketError};
pub use events::{EstimateEvent, TicketEvent};
pub use ready_estimate::ReadyEstimate;
pub use ticket::{ItemStatus, NewTicketItem, Ticket, TicketItem, TicketStatus};
