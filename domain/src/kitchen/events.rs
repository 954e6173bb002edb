//! What happened in the kitchen: the facts published on `kitchen.ticket.*`, and the
//! estimator's quotes on `kitchen.estimate.*`.
//!
//! Externally tagged JSON (`{"ItemStarted": {...}}`), camelCase fields, version "1.0".

use chrono::{DateTime, Utc};
use cqrs_es::DomainEvent;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{ItemStatus, NewTicketItem};
use crate::EVENT_VERSION;

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
