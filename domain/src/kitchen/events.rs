//! What happened in the kitchen: the facts published on `kitchen.ticket.*`.
//!
//! Externally tagged JSON (`{"ItemStarted": {...}}`), camelCase fields, version "1.0".

use chrono::{DateTime, Utc};
use cqrs_es::DomainEvent;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::NewTicketItem;
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
