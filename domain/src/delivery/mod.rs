//! Delivery context (the delivery service): the couriers ([`Courier`]) and one [`Delivery`] per
//! order.
//!
//! A delivery is requested when the order is placed, becomes ready for pickup when the kitchen
//! finishes, is assigned to a courier (by dispatch or a manager), picked up and delivered, or
//! fails. Choosing *which* courier (on shift, active, nearest) is the delivery service's job:
//! it reads couriers and issues `Assign`; the `Delivery` aggregate only guards its own states.

mod commands;
mod courier;
#[allow(clippy::module_inception)] // `delivery::delivery` is the aggregate, named like its context
mod delivery;
mod errors;
mod events;
mod route;

pub use commands::{CourierCommand, DeliveryCommand};
pub use courier::{Courier, Vehicle};
pub use delivery::{Delivery, DeliveryStatus};
pub use errors::{CourierError, DeliveryError};
pub use events::{CourierEvent, DeliveryEvent};
pub use route::RoutePoint;
