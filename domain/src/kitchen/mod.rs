//! Kitchen context (the kitchen service): one [`Ticket`] per order, the chefs' to-do list.
//!
//! The kitchen opens a ticket when it sees `OrderPlaced`, chefs start and finish each item, and
//! the ticket becomes ready with its last item. The ticket's aggregate id is the order id, so a
//! redelivered `OrderPlaced` or `OrderCancelled` finds the same ticket and changes nothing.

mod commands;
mod errors;
mod events;
mod ticket;

pub use commands::TicketCommand;
pub use errors::TicketError;
pub use events::TicketEvent;
pub use ticket::{ItemStatus, NewTicketItem, Ticket, TicketItem, TicketStatus};
