//! Kitchen context (the kitchen service): one [`Ticket`] per order, the chefs' to-do list.
//!
//! The kitchen opens a ticket when it sees `OrderPlaced`, chefs start and finish each item, and
//! the ticket becomes ready with its last item. The ticket's aggregate id is the order id, so a
//! redelivered `OrderPlaced` or `OrderCancelled` finds the same ticket and changes nothing.
//!
//! The kitchen also quotes when each ticket will be ready: [`estimate`] is the model of its
//! live load, and a [`ReadyEstimate`] (one per order, its own stream) records the quotes.
//!
//! When a dish runs out, a chef says so on a [`DishStock`] (one per dish, `kitchen.stock.*`),
//! and the orders service takes it off the menu.

mod commands;
mod dish_stock;
mod errors;
pub mod estimate;
mod events;
mod ready_estimate;
mod ticket;

pub use commands::{DishStockCommand, EstimateCommand, TicketCommand};
pub use dish_stock::DishStock;
pub use errors::{DishStockError, EstimateError, TicketError};
pub use events::{DishStockEvent, EstimateEvent, TicketEvent};
pub use ready_estimate::ReadyEstimate;
pub use ticket::{ItemStatus, NewTicketItem, Ticket, TicketItem, TicketStatus};
