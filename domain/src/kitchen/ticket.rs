//! The `Ticket` aggregate: what the kitchen must cook for one order, item by item.
//!
//! Each item goes `pending → in_preparation → ready` (a chef may skip the middle step). When
//! the last item becomes ready the ticket becomes ready too, in the same command, so
//! `TicketReady` always follows the `ItemReady` that completed it. A ticket may be rejected
//! only while nothing on it is ready: once food is plated the kitchen finishes the order.
//! Cancellation comes from the order and is idempotent; a closed (cancelled or rejected)
//! ticket refuses every chef command.
//!
//! **Undo.** A chef may take back an item's last step (`in_preparation → pending`, or
//! `ready → in_preparation`, or `ready → pending` for an item that skipped the middle step)
//! within [`Ticket::UNDO_WINDOW_SECS`] of that step, measured with the command's `at`, and
//! only while the ticket is open. Never once the ticket is ready: `TicketReady` has already
//! made the order ready and put its delivery up for pickup (a courier may be on the way), and
//! neither has a way back; reopening the ticket would leave the three disagreeing. A bump
//! makes the ticket ready, so it cannot be undone either. Undoing the first start does not
//! give the customer back the right to cancel: the order stays *in preparation*.

use std::fmt;

use chrono::{DateTime, Utc};
use cqrs_es::event_sink::EventSink;
use cqrs_es::Aggregate;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{TicketCommand, TicketError, TicketEvent};
use crate::shared::char_len;
use crate::Allergen;

/// An item as the ticket is opened with it, copied from an order line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NewTicketItem {
    pub dish_id: Uuid,
    pub dish_name: String,
    pub quantity: u32,
    pub note: Option<String>,
    /// The options the customer picked, as labels ("Cuisson: saignant"); none on tickets
    /// opened before options existed.
    #[serde(default)]
    pub options: Vec<String>,
}

/// An item on the ticket with its progress.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TicketItem {
    pub dish_id: Uuid,
    pub dish_name: String,
    pub quantity: u32,
    pub note: Option<String>,
    /// The options the customer picked ("Cuisson: saignant").
    #[serde(default)]
    pub options: Vec<String>,
    pub status: ItemStatus,
    pub started_at: Option<DateTime<Utc>>,
    pub ready_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ItemStatus {
    Pending,
    InPreparation,
    Ready,
}

impl ItemStatus {
    /// The same spelling as serde uses.
    pub fn as_str(self) -> &'static str {
        match self {
            ItemStatus::Pending => "pending",
            ItemStatus::InPreparation => "in_preparation",
            ItemStatus::Ready => "ready",
        }
    }
}

impl fmt::Display for ItemStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TicketStatus {
    /// Being cooked (or waiting to be).
    Open,
    Ready,
    Rejected,
    Cancelled,
}

impl TicketStatus {
    /// The same spelling as serde uses.
    pub fn as_str(self) -> &'static str {
        match self {
            TicketStatus::Open => "open",
            TicketStatus::Ready => "ready",
            TicketStatus::Rejected => "rejected",
            TicketStatus::Cancelled => "cancelled",
        }
    }

    /// Rejected or cancelled: the kitchen no longer works on it.
    pub fn is_closed(self) -> bool {
        matches!(self, TicketStatus::Rejected | TicketStatus::Cancelled)
    }
}

impl fmt::Display for TicketStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The kitchen ticket of one order. `Ticket::default()` is a ticket not opened yet.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Ticket {
    opened: Option<OpenedTicket>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct OpenedTicket {
    order_id: Uuid,
    placed_at: DateTime<Utc>,
    opened_at: DateTime<Utc>,
    items: Vec<TicketItem>,
    status: TicketStatus,
    ready_at: Option<DateTime<Utc>>,
    /// When it became ready, rejected or cancelled.
    closed_at: Option<DateTime<Utc>>,
    rejection_reason: Option<String>,
    #[serde(default)]
    allergies: Vec<Allergen>,
    #[serde(default)]
    scheduled_for: Option<DateTime<Utc>>,
}

impl Ticket {
    pub const MAX_REASON_CHARS: usize = 500;
    /// How long after a step a chef may still undo it.
    pub const UNDO_WINDOW_SECS: i64 = 120;

    pub fn is_opened(&self) -> bool {
        self.opened.is_some()
    }

    pub fn order_id(&self) -> Option<Uuid> {
        self.opened.as_ref().map(|t| t.order_id)
    }

    /// When the order was placed: the kitchen queue is sorted by it.
    pub fn placed_at(&self) -> Option<DateTime<Utc>> {
        self.opened.as_ref().map(|t| t.placed_at)
    }

    pub fn opened_at(&self) -> Option<DateTime<Utc>> {
        self.opened.as_ref().map(|t| t.opened_at)
    }

    pub fn status(&self) -> Option<TicketStatus> {
        self.opened.as_ref().map(|t| t.status)
    }

    /// Empty until opened.
    pub fn items(&self) -> &[TicketItem] {
        self.opened.as_ref().map_or(&[], |t| &t.items)
    }

    /// When the ticket became ready, rejected or cancelled.
    pub fn closed_at(&self) -> Option<DateTime<Utc>> {
        self.opened.as_ref().and_then(|t| t.closed_at)
    }

    /// The customer's declared allergens: the ticket's allergy flag (empty: none).
    pub fn allergies(&self) -> &[Allergen] {
        self.opened.as_ref().map_or(&[], |t| &t.allergies)
    }

    /// When a scheduled order is to be ready.
    pub fn scheduled_for(&self) -> Option<DateTime<Utc>> {
        self.opened.as_ref().and_then(|t| t.scheduled_for)
    }

    /// Why the kitchen rejected it.
    pub fn rejection_reason(&self) -> Option<&str> {
        self.opened
            .as_ref()
            .and_then(|t| t.rejection_reason.as_deref())
    }

    fn item_mut(&mut self, index: usize) -> Option<&mut TicketItem> {
        self.opened.as_mut().and_then(|t| t.items.get_mut(index))
    }

    pub fn ready_at(&self) -> Option<DateTime<Utc>> {
        self.opened.as_ref().and_then(|t| t.ready_at)
    }

    /// Whether any item has left `pending`: from then on a customer may no longer cancel.
    pub fn cooking_started(&self) -> bool {
        self.items()
            .iter()
            .any(|item| item.status != ItemStatus::Pending)
    }

    fn decide(&self, command: TicketCommand) -> Result<Vec<TicketEvent>, TicketError> {
        match command {
            TicketCommand::Open {
                order_id,
                placed_at,
                items,
                allergies,
                scheduled_for,
                at,
            } => {
                if self.is_opened() {
                    return Ok(Vec::new());
                }
                if items.is_empty() {
                    return Err(TicketError::EmptyTicket);
                }
                if let Some(index) = items.iter().position(|item| item.quantity == 0) {
                    return Err(TicketError::InvalidQuantity { index });
                }
                Ok(vec![TicketEvent::TicketOpened {
                    order_id,
                    placed_at,
                    items,
                    at,
                    allergies,
                    scheduled_for,
                }])
            }
            TicketCommand::StartItem { index, at } => match self.workable()?.item(index)?.status {
                ItemStatus::Pending => Ok(vec![TicketEvent::ItemStarted { index, at }]),
                ItemStatus::InPreparation => Err(TicketError::ItemAlreadyStarted { index }),
                ItemStatus::Ready => Err(TicketError::ItemAlreadyReady { index }),
            },
            TicketCommand::ReadyItem { index, at } => {
                let ticket = self.workable()?;
                if ticket.item(index)?.status == ItemStatus::Ready {
                    return Err(TicketError::ItemAlreadyReady { index });
                }
                let mut events = vec![TicketEvent::ItemReady { index, at }];
                // Decided from the state after `ItemReady`: this item is ready then, so the
                // ticket is ready when every other item already is.
                let rest_ready = ticket
                    .items
                    .iter()
                    .enumerate()
                    .all(|(i, item)| i == index || item.status == ItemStatus::Ready);
                if rest_ready {
                    events.push(TicketEvent::TicketReady { at });
                }
                Ok(events)
            }
            TicketCommand::UndoItemStep { index, at } => {
                let ticket = self.workable()?;
                let item = ticket.item(index)?;
                if ticket.status == TicketStatus::Ready {
                    return Err(TicketError::TooLateToUndo);
                }
                let (to, stepped_at) = match item.status {
                    ItemStatus::Pending => return Err(TicketError::NothingToUndo { index }),
                    ItemStatus::InPreparation => (ItemStatus::Pending, item.started_at),
                    ItemStatus::Ready if item.started_at.is_some() => {
                        (ItemStatus::InPreparation, item.ready_at)
                    }
                    ItemStatus::Ready => (ItemStatus::Pending, item.ready_at),
                };
                // A step without a time cannot be placed in the window: refuse rather than guess.
                let within = stepped_at
                    .is_some_and(|stepped| (at - stepped).num_seconds() <= Self::UNDO_WINDOW_SECS);
                if !within {
                    return Err(TicketError::UndoWindowPassed {
                        index,
                        window_secs: Self::UNDO_WINDOW_SECS,
                    });
                }
                Ok(vec![TicketEvent::ItemStepUndone { index, to, at }])
            }
            TicketCommand::Bump { at } => {
                let ticket = self.workable()?;
                let mut events: Vec<_> = ticket
                    .items
                    .iter()
                    .enumerate()
                    .filter(|(_, item)| item.status != ItemStatus::Ready)
                    .map(|(index, _)| TicketEvent::ItemReady { index, at })
                    .collect();
                if events.is_empty() {
                    return Err(TicketError::TicketAlreadyReady);
                }
                events.push(TicketEvent::TicketReady { at });
                Ok(events)
            }
            TicketCommand::Reject { reason, at } => {
                let ticket = self.workable()?;
                let plated = ticket.status == TicketStatus::Ready
                    || ticket
                        .items
                        .iter()
                        .any(|item| item.status == ItemStatus::Ready);
                if plated {
                    return Err(TicketError::TooLateToReject);
                }
                let reason = reason.trim();
                if reason.is_empty() {
                    return Err(TicketError::ReasonRequired);
                }
                if char_len(reason) > Self::MAX_REASON_CHARS {
                    return Err(TicketError::ReasonTooLong {
                        max: Self::MAX_REASON_CHARS,
                    });
                }
                Ok(vec![TicketEvent::TicketRejected {
                    reason: reason.to_owned(),
                    at,
                }])
            }
            TicketCommand::Cancel { at } => {
                let ticket = self.opened.as_ref().ok_or(TicketError::TicketNotFound)?;
                if ticket.status.is_closed() {
                    Ok(Vec::new())
                } else {
                    Ok(vec![TicketEvent::TicketCancelled { at }])
                }
            }
        }
    }

    /// The ticket, if a chef may still work on it.
    fn workable(&self) -> Result<&OpenedTicket, TicketError> {
        let ticket = self.opened.as_ref().ok_or(TicketError::TicketNotFound)?;
        if ticket.status.is_closed() {
            return Err(TicketError::TicketClosed);
        }
        Ok(ticket)
    }

    fn set_item_status(&mut self, index: usize, status: ItemStatus) {
        if let Some(item) = self
            .opened
            .as_mut()
            .and_then(|ticket| ticket.items.get_mut(index))
        {
            item.status = status;
        }
    }
}

impl OpenedTicket {
    fn item(&self, index: usize) -> Result<&TicketItem, TicketError> {
        self.items.get(index).ok_or(TicketError::NoSuchItem {
            index,
            count: self.items.len(),
        })
    }
}

impl Aggregate for Ticket {
    const TYPE: &'static str = "ticket";
    type Command = TicketCommand;
    type Event = TicketEvent;
    type Error = TicketError;
    type Services = ();

    async fn handle(
        &mut self,
        command: Self::Command,
        _services: &Self::Services,
        sink: &EventSink<Self>,
    ) -> Result<(), Self::Error> {
        for event in self.decide(command)? {
            sink.write(event, self).await;
        }
        Ok(())
    }

    fn apply(&mut self, event: Self::Event) {
        match event {
            TicketEvent::TicketOpened {
                order_id,
                placed_at,
                items,
                at,
                allergies,
                scheduled_for,
            } => {
                let items = items
                    .into_iter()
                    .map(|item| TicketItem {
                        dish_id: item.dish_id,
                        dish_name: item.dish_name,
                        quantity: item.quantity,
                        note: item.note,
                        options: item.options,
                        status: ItemStatus::Pending,
                        started_at: None,
                        ready_at: None,
                    })
                    .collect();
                self.opened = Some(OpenedTicket {
                    order_id,
                    placed_at,
                    opened_at: at,
                    items,
                    status: TicketStatus::Open,
                    ready_at: None,
                    closed_at: None,
                    rejection_reason: None,
                    allergies,
                    scheduled_for,
                });
            }
            TicketEvent::ItemStarted { index, at } => {
                self.set_item_status(index, ItemStatus::InPreparation);
                if let Some(item) = self.item_mut(index) {
                    item.started_at = Some(at);
                }
            }
            TicketEvent::ItemReady { index, at } => {
                self.set_item_status(index, ItemStatus::Ready);
                if let Some(item) = self.item_mut(index) {
                    item.ready_at = Some(at);
                }
            }
            TicketEvent::ItemStepUndone { index, to, .. } => {
                self.set_item_status(index, to);
                if let Some(item) = self.item_mut(index) {
                    if to != ItemStatus::Ready {
                        item.ready_at = None;
                    }
                    if to == ItemStatus::Pending {
                        item.started_at = None;
                    }
                }
            }
            TicketEvent::TicketReady { at } => {
                if let Some(ticket) = &mut self.opened {
                    ticket.status = TicketStatus::Ready;
                    ticket.ready_at = Some(at);
                    ticket.closed_at = Some(at);
                }
            }
            TicketEvent::TicketRejected { reason, at } => {
                if let Some(ticket) = &mut self.opened {
                    ticket.status = TicketStatus::Rejected;
                    ticket.rejection_reason = Some(reason);
                    ticket.closed_at = Some(at);
                }
            }
            TicketEvent::TicketCancelled { at } => {
                if let Some(ticket) = &mut self.opened {
                    ticket.status = TicketStatus::Cancelled;
                    ticket.closed_at = Some(at);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use cqrs_es::test::TestFramework;
    use cqrs_es::DomainEvent;

    use super::*;
    use crate::test_support::{at, handle_then_reload};

    type TicketTest = TestFramework<Ticket>;

    const ORDER: Uuid = Uuid::from_u128(1);

    fn items() -> Vec<NewTicketItem> {
        vec![
            NewTicketItem {
                dish_id: Uuid::from_u128(10),
                dish_name: "Steak frites".into(),
                quantity: 2,
                note: Some("medium rare".into()),
                options: vec!["Cuisson: saignant".into()],
            },
            NewTicketItem {
                dish_id: Uuid::from_u128(11),
                dish_name: "Crème brûlée".into(),
                quantity: 1,
                note: None,
                options: Vec::new(),
            },
        ]
    }

    fn open() -> TicketCommand {
        TicketCommand::Open {
            order_id: ORDER,
            placed_at: at(0),
            items: items(),
            at: at(1),
            allergies: vec![Allergen::Peanuts],
            scheduled_for: None,
        }
    }

    fn opened() -> TicketEvent {
        TicketEvent::TicketOpened {
            order_id: ORDER,
            placed_at: at(0),
            items: items(),
            at: at(1),
            allergies: vec![Allergen::Peanuts],
            scheduled_for: None,
        }
    }

    fn started(index: usize) -> TicketEvent {
        TicketEvent::ItemStarted { index, at: at(2) }
    }

    fn item_ready(index: usize) -> TicketEvent {
        TicketEvent::ItemReady { index, at: at(3) }
    }

    fn ticket_ready() -> TicketEvent {
        TicketEvent::TicketReady { at: at(3) }
    }

    fn rejected() -> TicketEvent {
        TicketEvent::TicketRejected {
            reason: "out of beef".into(),
            at: at(2),
        }
    }

    fn cancelled() -> TicketEvent {
        TicketEvent::TicketCancelled { at: at(2) }
    }

    fn reject(reason: &str) -> TicketCommand {
        TicketCommand::Reject {
            reason: reason.into(),
            at: at(2),
        }
    }

    // --- opening --------------------------------------------------------------------------

    #[test]
    fn the_kitchen_opens_a_ticket_for_a_placed_order() {
        TicketTest::with(())
            .given_no_previous_events()
            .when(open())
            .then_expect_events(vec![opened()]);
    }

    #[test]
    fn opening_a_ticket_twice_changes_nothing() {
        TicketTest::with(())
            .given(vec![opened(), started(0)])
            .when(open())
            .then_expect_events(vec![]);
    }

    #[test]
    fn a_ticket_opened_without_allergies_reads_from_older_events() {
        let json = serde_json::json!({"TicketOpened": {
            "orderId": ORDER, "placedAt": at(0), "items": [], "at": at(1)
        }});
        let event: TicketEvent = serde_json::from_value(json).expect("an older event reads");
        let TicketEvent::TicketOpened {
            allergies,
            scheduled_for,
            ..
        } = event
        else {
            panic!("a TicketOpened");
        };
        assert!(allergies.is_empty());
        assert_eq!(scheduled_for, None);
    }

    #[test]
    fn a_ticket_needs_items() {
        TicketTest::with(())
            .given_no_previous_events()
            .when(TicketCommand::Open {
                order_id: ORDER,
                placed_at: at(0),
                items: vec![],
                allergies: Vec::new(),
                scheduled_for: None,
                at: at(1),
            })
            .then_expect_error(TicketError::EmptyTicket);
    }

    #[test]
    fn a_ticket_item_needs_a_quantity() {
        let mut items = items();
        items[1].quantity = 0;
        TicketTest::with(())
            .given_no_previous_events()
            .when(TicketCommand::Open {
                order_id: ORDER,
                placed_at: at(0),
                items,
                allergies: Vec::new(),
                scheduled_for: None,
                at: at(1),
            })
            .then_expect_error(TicketError::InvalidQuantity { index: 1 });
    }

    #[test]
    fn chef_commands_need_an_opened_ticket() {
        for command in [
            TicketCommand::StartItem {
                index: 0,
                at: at(2),
            },
            TicketCommand::ReadyItem {
                index: 0,
                at: at(2),
            },
            TicketCommand::Bump { at: at(2) },
            reject("out of beef"),
            TicketCommand::Cancel { at: at(2) },
        ] {
            TicketTest::with(())
                .given_no_previous_events()
                .when(command)
                .then_expect_error(TicketError::TicketNotFound);
        }
    }

    // --- cooking --------------------------------------------------------------------------

    #[test]
    fn a_chef_starts_a_pending_item() {
        TicketTest::with(())
            .given(vec![opened()])
            .when(TicketCommand::StartItem {
                index: 1,
                at: at(2),
            })
            .then_expect_events(vec![started(1)]);
    }

    #[test]
    fn an_item_cannot_be_started_twice() {
        TicketTest::with(())
            .given(vec![opened(), started(1)])
            .when(TicketCommand::StartItem {
                index: 1,
                at: at(2),
            })
            .then_expect_error(TicketError::ItemAlreadyStarted { index: 1 });
    }

    #[test]
    fn a_ready_item_cannot_be_started() {
        TicketTest::with(())
            .given(vec![opened(), item_ready(0)])
            .when(TicketCommand::StartItem {
                index: 0,
                at: at(4),
            })
            .then_expect_error(TicketError::ItemAlreadyReady { index: 0 });
    }

    #[test]
    fn an_item_outside_the_ticket_is_refused() {
        TicketTest::with(())
            .given(vec![opened()])
            .when(TicketCommand::StartItem {
                index: 2,
                at: at(2),
            })
            .then_expect_error_message("item 2 does not exist: the ticket has 2 items");
        TicketTest::with(())
            .given(vec![opened()])
            .when(TicketCommand::ReadyItem {
                index: 7,
                at: at(2),
            })
            .then_expect_error(TicketError::NoSuchItem { index: 7, count: 2 });
    }

    #[test]
    fn a_chef_finishes_an_item_being_prepared() {
        TicketTest::with(())
            .given(vec![opened(), started(0)])
            .when(TicketCommand::ReadyItem {
                index: 0,
                at: at(3),
            })
            .then_expect_events(vec![item_ready(0)]);
    }

    #[test]
    fn a_pending_item_may_go_straight_to_ready() {
        TicketTest::with(())
            .given(vec![opened()])
            .when(TicketCommand::ReadyItem {
                index: 1,
                at: at(3),
            })
            .then_expect_events(vec![item_ready(1)]);
    }

    #[test]
    fn the_last_ready_item_makes_the_ticket_ready() {
        TicketTest::with(())
            .given(vec![opened(), started(0), item_ready(1)])
            .when(TicketCommand::ReadyItem {
                index: 0,
                at: at(3),
            })
            .then_expect_events(vec![item_ready(0), ticket_ready()]);
    }

    #[test]
    fn an_item_cannot_be_made_ready_twice() {
        TicketTest::with(())
            .given(vec![opened(), item_ready(1)])
            .when(TicketCommand::ReadyItem {
                index: 1,
                at: at(4),
            })
            .then_expect_error(TicketError::ItemAlreadyReady { index: 1 });
    }

    #[test]
    fn items_of_a_ready_ticket_are_already_ready() {
        let ready = vec![opened(), item_ready(0), item_ready(1), ticket_ready()];
        TicketTest::with(())
            .given(ready.clone())
            .when(TicketCommand::StartItem {
                index: 0,
                at: at(4),
            })
            .then_expect_error(TicketError::ItemAlreadyReady { index: 0 });
        TicketTest::with(())
            .given(ready)
            .when(TicketCommand::ReadyItem {
                index: 1,
                at: at(4),
            })
            .then_expect_error(TicketError::ItemAlreadyReady { index: 1 });
    }

    #[test]
    fn a_bump_makes_every_remaining_item_and_the_ticket_ready() {
        TicketTest::with(())
            .given(vec![opened(), item_ready(1)])
            .when(TicketCommand::Bump { at: at(3) })
            .then_expect_events(vec![item_ready(0), ticket_ready()]);
        TicketTest::with(())
            .given(vec![opened(), started(1)])
            .when(TicketCommand::Bump { at: at(3) })
            .then_expect_events(vec![item_ready(0), item_ready(1), ticket_ready()]);
    }

    #[test]
    fn a_ready_ticket_cannot_be_bumped() {
        TicketTest::with(())
            .given(vec![opened(), item_ready(0), item_ready(1), ticket_ready()])
            .when(TicketCommand::Bump { at: at(4) })
            .then_expect_error(TicketError::TicketAlreadyReady);
    }

    // --- rejection and cancellation -------------------------------------------------------

    #[test]
    fn a_chef_rejects_a_ticket_with_a_reason() {
        TicketTest::with(())
            .given(vec![opened(), started(0)])
            .when(reject("  out of beef "))
            .then_expect_events(vec![rejected()]);
    }

    #[test]
    fn a_rejection_needs_a_reason_of_at_most_five_hundred_characters() {
        TicketTest::with(())
            .given(vec![opened()])
            .when(reject("   "))
            .then_expect_error(TicketError::ReasonRequired);
        TicketTest::with(())
            .given(vec![opened()])
            .when(reject(&"x".repeat(501)))
            .then_expect_error(TicketError::ReasonTooLong { max: 500 });
    }

    #[test]
    fn a_chef_cannot_reject_once_an_item_is_ready() {
        TicketTest::with(())
            .given(vec![opened(), item_ready(1)])
            .when(reject("out of beef"))
            .then_expect_error(TicketError::TooLateToReject);
        TicketTest::with(())
            .given(vec![opened(), item_ready(0), item_ready(1), ticket_ready()])
            .when(reject("out of beef"))
            .then_expect_error(TicketError::TooLateToReject);
    }

    #[test]
    fn a_cancelled_order_closes_its_ticket() {
        TicketTest::with(())
            .given(vec![opened(), started(0)])
            .when(TicketCommand::Cancel { at: at(2) })
            .then_expect_events(vec![cancelled()]);
        TicketTest::with(())
            .given(vec![opened(), item_ready(0), item_ready(1), ticket_ready()])
            .when(TicketCommand::Cancel { at: at(2) })
            .then_expect_events(vec![cancelled()]);
    }

    #[test]
    fn cancelling_a_closed_ticket_changes_nothing() {
        for closed in [cancelled(), rejected()] {
            TicketTest::with(())
                .given(vec![opened(), closed])
                .when(TicketCommand::Cancel { at: at(5) })
                .then_expect_events(vec![]);
        }
    }

    #[test]
    fn chefs_cannot_work_on_a_closed_ticket() {
        for closed in [cancelled(), rejected()] {
            for command in [
                TicketCommand::StartItem {
                    index: 0,
                    at: at(5),
                },
                TicketCommand::ReadyItem {
                    index: 0,
                    at: at(5),
                },
                TicketCommand::Bump { at: at(5) },
                reject("again"),
            ] {
                TicketTest::with(())
                    .given(vec![opened(), closed.clone()])
                    .when(command)
                    .then_expect_error(TicketError::TicketClosed);
            }
        }
    }

    // --- undo -------------------------------------------------------------------------------

    fn undo(index: usize, minute: u32) -> TicketCommand {
        TicketCommand::UndoItemStep {
            index,
            at: at(minute),
        }
    }

    fn undone(index: usize, to: ItemStatus, minute: u32) -> TicketEvent {
        TicketEvent::ItemStepUndone {
            index,
            to,
            at: at(minute),
        }
    }

    #[test]
    fn a_chef_undoes_a_start_and_the_item_is_pending_again() {
        TicketTest::with(())
            .given(vec![opened(), started(0)])
            .when(undo(0, 3))
            .then_expect_events(vec![undone(0, ItemStatus::Pending, 3)]);
    }

    #[test]
    fn undoing_a_ready_item_goes_back_one_step() {
        // Started first: back to in preparation.
        TicketTest::with(())
            .given(vec![opened(), started(0), item_ready(0)])
            .when(undo(0, 4))
            .then_expect_events(vec![undone(0, ItemStatus::InPreparation, 4)]);
        // Went straight to ready: back to pending.
        TicketTest::with(())
            .given(vec![opened(), item_ready(1)])
            .when(undo(1, 5))
            .then_expect_events(vec![undone(1, ItemStatus::Pending, 5)]);
    }

    #[test]
    fn a_step_can_be_undone_for_two_minutes_only() {
        // ItemStarted at minute 2: minute 4 is exactly the window's end, minute 5 is past it.
        TicketTest::with(())
            .given(vec![opened(), started(0)])
            .when(undo(0, 4))
            .then_expect_events(vec![undone(0, ItemStatus::Pending, 4)]);
        TicketTest::with(())
            .given(vec![opened(), started(0)])
            .when(undo(0, 5))
            .then_expect_error(TicketError::UndoWindowPassed {
                index: 0,
                window_secs: 120,
            });
        // After undoing ready (minute 3), the item's last step is the start (minute 2).
        TicketTest::with(())
            .given(vec![
                opened(),
                started(0),
                item_ready(0),
                undone(0, ItemStatus::InPreparation, 3),
            ])
            .when(undo(0, 5))
            .then_expect_error(TicketError::UndoWindowPassed {
                index: 0,
                window_secs: 120,
            });
    }

    #[test]
    fn a_pending_item_has_nothing_to_undo() {
        TicketTest::with(())
            .given(vec![
                opened(),
                started(0),
                undone(0, ItemStatus::Pending, 3),
            ])
            .when(undo(0, 3))
            .then_expect_error(TicketError::NothingToUndo { index: 0 });
        TicketTest::with(())
            .given(vec![opened()])
            .when(undo(5, 3))
            .then_expect_error(TicketError::NoSuchItem { index: 5, count: 2 });
    }

    #[test]
    fn nothing_can_be_undone_once_the_ticket_is_ready_or_closed() {
        TicketTest::with(())
            .given(vec![opened(), item_ready(0), item_ready(1), ticket_ready()])
            .when(undo(1, 3))
            .then_expect_error(TicketError::TooLateToUndo);
        for closed in [cancelled(), rejected()] {
            TicketTest::with(())
                .given(vec![opened(), started(0), closed])
                .when(undo(0, 2))
                .then_expect_error(TicketError::TicketClosed);
        }
        TicketTest::with(())
            .given_no_previous_events()
            .when(undo(0, 2))
            .then_expect_error(TicketError::TicketNotFound);
    }

    #[test]
    fn an_undone_item_is_as_if_the_step_never_happened() {
        let (handled, reloaded, _) =
            handle_then_reload::<Ticket>(vec![opened(), started(0), item_ready(0)], undo(0, 4));
        assert_eq!(handled, reloaded);
        let item = &handled.items()[0];
        assert_eq!(item.status, ItemStatus::InPreparation);
        assert_eq!(item.started_at, Some(at(2)));
        assert_eq!(item.ready_at, None);

        let (handled, _, _) = handle_then_reload::<Ticket>(vec![opened(), started(0)], undo(0, 3));
        assert_eq!(handled.items()[0].status, ItemStatus::Pending);
        assert_eq!(handled.items()[0].started_at, None);
        // The item can then be started again.
        TicketTest::with(())
            .given(vec![
                opened(),
                started(0),
                undone(0, ItemStatus::Pending, 3),
            ])
            .when(TicketCommand::StartItem {
                index: 0,
                at: at(4),
            })
            .then_expect_events(vec![TicketEvent::ItemStarted {
                index: 0,
                at: at(4),
            }]);
    }

    // --- state, reload, serialization ----------------------------------------------------

    #[test]
    fn the_state_after_handling_equals_the_state_reloaded_from_events() {
        let (handled, reloaded, emitted) = handle_then_reload::<Ticket>(
            vec![opened(), started(0), item_ready(1)],
            TicketCommand::ReadyItem {
                index: 0,
                at: at(3),
            },
        );
        assert_eq!(emitted, vec![item_ready(0), ticket_ready()]);
        assert_eq!(handled, reloaded);
        assert_eq!(handled.status(), Some(TicketStatus::Ready));
        assert_eq!(handled.ready_at(), Some(at(3)));

        let (handled, reloaded, _) =
            handle_then_reload::<Ticket>(vec![opened()], TicketCommand::Bump { at: at(3) });
        assert_eq!(handled, reloaded);
        assert!(handled
            .items()
            .iter()
            .all(|item| item.status == ItemStatus::Ready));
    }

    #[test]
    fn getters_expose_the_ticket() {
        let (ticket, _, _) = handle_then_reload::<Ticket>(
            vec![opened()],
            TicketCommand::StartItem {
                index: 1,
                at: at(2),
            },
        );
        assert_eq!(ticket.order_id(), Some(ORDER));
        assert_eq!(ticket.placed_at(), Some(at(0)));
        assert_eq!(ticket.opened_at(), Some(at(1)));
        assert_eq!(ticket.status(), Some(TicketStatus::Open));
        assert_eq!(ticket.allergies(), &[Allergen::Peanuts]);
        assert_eq!(ticket.scheduled_for(), None);
        assert_eq!(ticket.items()[0].status, ItemStatus::Pending);
        assert_eq!(ticket.items()[1].status, ItemStatus::InPreparation);
        assert_eq!(ticket.items()[0].note.as_deref(), Some("medium rare"));
        assert_eq!(ticket.items()[0].options, ["Cuisson: saignant"]);
        assert!(ticket.cooking_started());
        assert!(!Ticket::default().cooking_started());
        assert_eq!(Ticket::default().status(), None);
    }

    #[test]
    fn ticket_events_name_their_type_and_subject() {
        assert_eq!(started(0).event_type(), "ItemStarted");
        assert_eq!(started(0).subject_suffix(), "item_started");
        assert_eq!(opened().subject_suffix(), "opened");
        assert_eq!(ticket_ready().subject_suffix(), "ready");
        assert_eq!(opened().event_version(), "1.0");
        let json = serde_json::to_value(opened()).expect("an event serializes");
        assert_eq!(json["TicketOpened"]["items"][0]["dishName"], "Steak frites");
        assert_eq!(json["TicketOpened"]["placedAt"], "2025-01-15T12:00:00Z");
        assert_eq!(TicketError::TicketClosed.code(), "ticket-closed");
        let undone = undone(0, ItemStatus::InPreparation, 3);
        assert_eq!(undone.subject_suffix(), "item_step_undone");
        let json = serde_json::to_value(&undone).expect("an event serializes");
        assert_eq!(json["ItemStepUndone"]["to"], "in_preparation");
        assert_eq!(TicketError::TooLateToUndo.code(), "ticket-too-late-to-undo");
    }
}
