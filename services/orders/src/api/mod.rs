//! The orders service's HTTP API (API.md, orders table). Handlers are thin: parse, authorize,
//! issue one command or one query, map the result.
//!
//! - [`menu`]: `GET /menu`, `POST /menu/dishes`, `PATCH /menu/dishes/{id}`;
//! - [`ready_time`]: `GET /menu/ready-time`, the ready time quoted from the kitchen's load;
//! - [`orders`]: `POST /orders`, `GET /orders`, `GET /orders/{id}` (and its `/stream`),
//!   `POST /orders/{id}/cancel`, the manager's `GET /orders/board`;
//! - [`problems`]: how the domain's refusals read over HTTP.

mod menu;
mod optional_json;
mod orders;
pub mod problems;
mod ready_time;

use poem_openapi::Tags;

pub use menu::{DishChanges, MenuApi, NewDish};
pub use optional_json::OptionalJson;
pub use orders::{
    CancelOrder, CancelledOrder, OrderItem, OrderPage, OrderUpdate, OrdersApi, PlaceOrder,
    PlacedOrder,
};
pub use ready_time::{ReadyTime, ReadyTimeApi};

#[derive(Tags)]
enum OrdersTags {
    /// The menu: what customers may order, at which price.
    Menu,
    /// Customers' orders, from placement to delivery.
    Orders,
}
