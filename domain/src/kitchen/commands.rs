//! What the kitchen may be asked to do with a ticket: open it (from `OrderPlaced`), cook its
//! items, undo a step taken by mistake, bump it, reject it, or close it because the order was
//! cancelled; and what the kitchen's estimator may record: when a ticket will be ready.
//!
//! Items are addressed by their 0-based position on the ticket, in the order's line order.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::NewTicketItem;
use crate::{Actor, Allergen};

/// Commands on a [`Ticket`](super::Ticket) (aggregate id = order id).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all_fields = "camelCase")]
pub enum TicketCommand {
    /// Issued by the kitchen service on `OrderPlaced`; idempotent.
    Open {
        order_id: Uuid,
        placed_at: DateTime<Utc>,
        items: Vec<NewTicketItem>,
        /// The customer's declared allergens (the order's allergy flag).
        allergies: Vec<Allergen>,
        /// When a scheduled order is to be ready.
        scheduled_for: Option<DateTime<Utc>>,
        at: DateTime<Utc>,
    },
    /// A chef starts cooking an item.
    StartItem { index: usize, at: DateTime<Utc> },
    /// A chef finishes an item (it may skip "started").
    ReadyItem { index: usize, at: DateTime<Utc> },
    /// A chef takes back the last step of an item (a mis-tap): only while the ticket is open,
    /// and within [`Ticket::UNDO_WINDOW_SECS`](super::Ticket::UNDO_WINDOW_SECS) of that step.
    UndoItemStep { index: usize, at: DateTime<Utc> },
    /// A chef marks everything left as ready at once.
    Bump { at: DateTime<Utc> },
    /// A chef gives up on the order (missing ingredient, ...), before anything is ready.
    Reject { reason: String, at: DateTime<Utc> },
    /// Issued by the kitchen service on `OrderCancelled`; idempotent.
    Cancel { at: DateTime<Utc> },
}

/// Commands on a [`ReadyEstimate`](super::ReadyEstimate) (aggregate id = order id).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all_fields = "camelCase")]
pub enum EstimateCommand {
    /// Issued by the kitchen's estimator from the live load: when the order's ticket should
    /// be ready. Recorded only when it moves the last quote by at least
    /// [`ReadyEstimate::MIN_CHANGE_SECS`](super::ReadyEstimate::MIN_CHANGE_SECS); otherwise it
    /// changes nothing, so replicas may issue it concurrently.
    Quote {
        order_id: Uuid,
        ready_at: DateTime<Utc>,
        at: DateTime<Utc>,
    },
}

/// Commands on a [`DishStock`](super::DishStock) (aggregate id = dish id).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all_fields = "camelCase")]
pub enum DishStockCommand {
    /// A chef (or a manager) says the kitchen has run out of a dish: from the screen's
    /// "Épuisé" button, or when rejecting a ticket for want of it. Recorded every time it is
    /// said, even twice in a row: the menu may have been put back meanwhile on the orders
    /// side, and the chef's word must win again.
    MarkSoldOut {
        dish_id: Uuid,
        dish_name: Option<String>,
        reason: Option<String>,
        by: Actor,
        at: DateTime<Utc>,
    },
    /// The kitchen can make the dish again.
    MarkBackInStock {
        dish_id: Uuid,
        by: Actor,
        at: DateTime<Utc>,
    },
}
