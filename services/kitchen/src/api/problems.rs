//! How the kitchen's refusals read over HTTP, and the ticket as an answer.

use brigade_domain::kitchen::{DishStockError, Ticket, TicketError, TicketStatus};
use brigade_platform::Problem;
use brigade_projections::kitchen_queue::{self, QueuedItem, QueuedTicket, TicketState};
use chrono::{DateTime, Utc};
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
        | TicketError::TicketClosed
        | TicketError::NothingToUndo { .. }
        | TicketError::UndoWindowPassed { .. }
        | TicketError::TooLateToUndo => Problem::conflict(code, detail),
    }
}

/// The problem for a stock command the aggregate refused.
#[must_use]
pub fn stock_problem(error: DishStockError) -> Problem {
    let detail = error.to_string();
    let code = error.code();
    match error {
        DishStockError::ReasonTooLong { .. } => {
            Problem::unprocessable(code, detail).with_field("reason")
        }
        DishStockError::KitchenStaffOnly => {
            Problem::new(poem::http::StatusCode::FORBIDDEN, code, detail)
        }
    }
}

/// The ticket as the queue shows it, from the aggregate's state; each item's station and
/// minutes, the ticket's target and its quote from the queue's copy (`routed`) when it has
/// one yet (otherwise the defaults, as for a dish the kitchen does not know).
#[must_use]
pub fn queued(
    ticket: &Ticket,
    order_id: Uuid,
    version: i64,
    routed: Option<&QueuedTicket>,
    now: DateTime<Utc>,
) -> QueuedTicket {
    let items: Vec<QueuedItem> = ticket
        .items()
        .iter()
        .enumerate()
        .map(|(index, item)| {
            let route = routed.and_then(|r| r.items.get(index));
            QueuedItem {
                index: u32::try_from(index).unwrap_or(u32::MAX),
                dish_id: item.dish_id,
                dish_name: item.dish_name.clone(),
                quantity: item.quantity,
                note: item.note.clone(),
                options: item.options.clone(),
                status: item.status.into(),
                started_at: item.started_at,
                ready_at: item.ready_at,
                station: route.map_or_else(
                    || kitchen_queue::DEFAULT_STATION.to_owned(),
                    |r| r.station.clone(),
                ),
                prep_minutes: route.map_or(kitchen_queue::DEFAULT_PREP_MINUTES, |r| r.prep_minutes),
            }
        })
        .collect();
    let placed_at = ticket.placed_at().unwrap_or_default();
    QueuedTicket {
        order_id,
        placed_at,
        status: match ticket.status() {
            Some(TicketStatus::Ready) => TicketState::Ready,
            Some(TicketStatus::Rejected) => TicketState::Rejected,
            Some(TicketStatus::Cancelled) => TicketState::Cancelled,
            _ => TicketState::Open,
        },
        target_minutes: routed.map_or_else(
            || kitchen_queue::target_minutes(&items),
            |r| r.target_minutes,
        ),
        items,
        reason: ticket.rejection_reason().map(ToOwned::to_owned),
        closed_at: ticket.closed_at(),
        version,
        target_at: placed_at,
        elapsed_seconds: 0,
        late: false,
        estimated_ready_at: routed.and_then(|r| r.estimated_ready_at),
        allergies: ticket.allergies().iter().copied().map(Into::into).collect(),
        scheduled_for: ticket.scheduled_for(),
    }
    .timed(now)
}
