//! How the kitchen's refusals read over HTTP, and the ticket as an answer.

use brigade_domain::kitchen::{ItemStatus, Ticket, TicketError, TicketStatus};
use brigade_platform::Problem;
use brigade_projections::kitchen_queue::{ItemState, QueuedItem, QueuedTicket, TicketState};
use uuid::Uuid;

/// The problem for a ticket command the aggregate refused.
#[must_use]
pub fn ticket_problem(error: TicketError) -> Problem {
    let detail = error.to_string();
    let code = error.code();
    match error {
        TicketError::TicketNotFound => Problem::not_found(code, detail),
        TicketError::NoSuchItem { .. } => Problem::not_found(code, detail).with_field("index"),
        TicketError::ReasonRequired | TicketError::ReasonTooLong { .. } => {
            Problem::unprocessable(code, detail).with_field("reason")
        }
        TicketError::EmptyTicket | TicketError::InvalidQuantity { .. } => {
            Problem::unprocessable(code, detail)
        }
        TicketError::ItemAlreadyStarted { .. }
        | TicketError::ItemAlreadyReady { .. }
        | TicketError::TicketAlreadyReady
        | TicketError::TooLateToReject
        | TicketError::TicketClosed => Problem::conflict(code, detail),
    }
}

/// The ticket as the queue shows it, from the aggregate's state.
#[must_use]
pub fn queued(ticket: &Ticket, order_id: Uuid, version: i64) -> QueuedTicket {
    QueuedTicket {
        order_id,
        placed_at: ticket.placed_at().unwrap_or_default(),
        status: match ticket.status() {
            Some(TicketStatus::Ready) => TicketState::Ready,
            Some(TicketStatus::Rejected) => TicketState::Rejected,
            Some(TicketStatus::Cancelled) => TicketState::Cancelled,
            _ => TicketState::Open,
        },
        items: ticket
            .items()
            .iter()
            .enumerate()
            .map(|(index, item)| QueuedItem {
                index: u32::try_from(index).unwrap_or(u32::MAX),
                dish_id: item.dish_id,
                dish_name: item.dish_name.clone(),
                quantity: item.quantity,
                note: item.note.clone(),
                status: match item.status {
                    ItemStatus::Pending => ItemState::Pending,
                    ItemStatus::InPreparation => ItemState::InPreparation,
                    ItemStatus::Ready => ItemState::Ready,
                },
                started_at: item.started_at,
                ready_at: item.ready_at,
            })
            .collect(),
        reason: ticket.rejection_reason().map(ToOwned::to_owned),
        closed_at: ticket.closed_at(),
        version,
    }
}
