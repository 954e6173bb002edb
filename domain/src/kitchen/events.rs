//! What happened in the kitchen: the facts published on `kitchen.ticket.*`, the
//! estimator's quotes on `kitchen.estimate.*`, and dishes running out on `kitchen.stock.*`.
//!
//! Externally tagged JSON (`{"ItemStarted": {...}}`), camelCase fields, version "1.0".

use chrono::{DateTime, Utc};
use cqrs_es::DomainEvent;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{ItemStatus, NewTicketItem};
use crate::{Actor, Allergen, EVENT_VERSION};

/// Events of a [`Ticket`](super::Ticket). `index` is the item's 0-based position.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all_fields = "camelCase")]
pub enum TicketEvent {
    /// Every item starts pending.
    TicketOpened {
        order_id: Uuid,
        placed_at: DateTime<Utc>,
        items: Vec<NewTicketItem>,
        at: DateTime<Utc>,
        /// The customer's declared allergens: the kitchen screen shows them as an allergy
        /// banner on the ticket. Empty (and absent from older tickets): no allergy declared.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        allergies: Vec<Allergen>,
        /// When a scheduled order is to be ready; absent: as soon as possible.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        scheduled_for: Option<DateTime<Utc>>,
    },
    ItemStarted {
        index: usize,
        at: DateTime<Utc>,
    },
    ItemReady {
        index: usize,
        at: DateTime<Utc>,
    },
    /// A chef took back the item's last step: it is `to` again (`pending` or
    /// `in_preparation`). Never after `TicketReady`.
    ItemStepUndone {
        index: usize,
        to: ItemStatus,
        at: DateTime<Utc>,
    },
    /// Follows the `ItemReady` of the last item.
    TicketReady {
        at: DateTime<Utc>,
    },
    TicketRejected {
        reason: String,
        at: DateTime<Utc>,
    },
    TicketCancelled {
        at: DateTime<Utc>,
    },
}

impl TicketEvent {
    /// The last token of the event's subject: `kitchen.ticket.{suffix}`.
    pub fn subject_suffix(&self) -> &'static str {
        match self {
            TicketEvent::TicketOpened { .. } => "opened",
            TicketEvent::ItemStarted { .. } => "item_started",
            TicketEvent::ItemReady { .. } => "item_ready",
            TicketEvent::ItemStepUndone { .. } => "item_step_undone",
            TicketEvent::TicketReady { .. } => "ready",
            TicketEvent::TicketRejected { .. } => "rejected",
            TicketEvent::TicketCancelled { .. } => "cancelled",
        }
    }

    /// When it happened (the command's `at`).
    pub fn occurred_at(&self) -> DateTime<Utc> {
        match self {
            TicketEvent::TicketOpened { at, .. }
            | TicketEvent::ItemStarted { at, .. }
            | TicketEvent::ItemReady { at, .. }
            | TicketEvent::ItemStepUndone { at, .. }
            | TicketEvent::TicketReady { at }
            | TicketEvent::TicketRejected { at, .. }
            | TicketEvent::TicketCancelled { at } => *at,
        }
    }
}

impl DomainEvent for TicketEvent {
    fn event_type(&self) -> String {
        let name = match self {
            TicketEvent::TicketOpened { .. } => "TicketOpened",
            TicketEvent::ItemStarted { .. } => "ItemStarted",
            TicketEvent::ItemReady { .. } => "ItemReady",
            TicketEvent::ItemStepUndone { .. } => "ItemStepUndone",
            TicketEvent::TicketReady { .. } => "TicketReady",
            TicketEvent::TicketRejected { .. } => "TicketRejected",
            TicketEvent::TicketCancelled { .. } => "TicketCancelled",
        };
        name.to_owned()
    }

    fn event_version(&self) -> String {
        EVENT_VERSION.to_owned()
    }
}

/// Events of a [`ReadyEstimate`](super::ReadyEstimate), published on
/// `kitchen.estimate.ticket_estimated`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all_fields = "camelCase")]
pub enum EstimateEvent {
    /// The kitchen's quote of when the order's ticket will be ready, from the live load;
    /// recorded when it moves by two minutes or more. For the orders service (to tell the
    /// customer) and dispatch (to send a courier to arrive as the food is ready). A quote may
    /// trail the ticket's `TicketReady` by a moment: a reader ignores it once the order is ready.
    TicketEstimated {
        order_id: Uuid,
        ready_at: DateTime<Utc>,
        at: DateTime<Utc>,
    },
}

impl EstimateEvent {
    /// The last token of the event's subject: `kitchen.estimate.{suffix}`.
    pub fn subject_suffix(&self) -> &'static str {
        match self {
            EstimateEvent::TicketEstimated { .. } => "ticket_estimated",
        }
    }

    /// When it happened (the command's `at`).
    pub fn occurred_at(&self) -> DateTime<Utc> {
        match self {
            EstimateEvent::TicketEstimated { at, .. } => *at,
        }
    }
}

impl DomainEvent for EstimateEvent {
    fn event_type(&self) -> String {
        match self {
            EstimateEvent::TicketEstimated { .. } => "TicketEstimated".to_owned(),
        }
    }

    fn event_version(&self) -> String {
        EVENT_VERSION.to_owned()
    }
}

/// Events of a [`DishStock`](super::DishStock), published on `kitchen.stock.*`. The orders
/// service takes a sold-out dish off the menu (`DishAvailabilityChanged`) and puts it back.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all_fields = "camelCase")]
pub enum DishStockEvent {
    /// `kitchen.stock.dish_sold_out`.
    DishSoldOut {
        dish_id: Uuid,
        /// The name the kitchen knows it by (for people reading the event).
        dish_name: Option<String>,
        reason: Option<String>,
        by: Actor,
        at: DateTime<Utc>,
    },
    /// `kitchen.stock.dish_back_in_stock`.
    DishBackInStock {
        dish_id: Uuid,
        by: Actor,
        at: DateTime<Utc>,
    },
}

impl DishStockEvent {
    /// The last token of the event's subject: `kitchen.stock.{suffix}`.
    pub fn subject_suffix(&self) -> &'static str {
        match self {
            DishStockEvent::DishSoldOut { .. } => "dish_sold_out",
            DishStockEvent::DishBackInStock { .. } => "dish_back_in_stock",
        }
    }

    /// When it happened (the command's `at`).
    pub fn occurred_at(&self) -> DateTime<Utc> {
        match self {
            DishStockEvent::DishSoldOut { at, .. } | DishStockEvent::DishBackInStock { at, .. } => {
                *at
            }
        }
    }
}

impl DomainEvent for DishStockEvent {
    fn event_type(&self) -> String {
        match self {
            DishStockEvent::DishSoldOut { .. } => "DishSoldOut".to_owned(),
            DishStockEvent::DishBackInStock { .. } => "DishBackInStock".to_owned(),
        }
    }

    fn event_version(&self) -> String {
        EVENT_VERSION.to_owned()
    }
}
