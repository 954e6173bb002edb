//! The `Order` aggregate: a customer's order from placement to delivery, cancellation or
//! rejection.
//!
//! The status only moves forward along
//! `placed < accepted < in_preparation < ready < out_for_delivery < delivered`, or ends in
//! `cancelled` / `rejected`. Other services drive it with idempotent commands: a command whose
//! target the order has already reached (or passed, or that arrives after the order ended)
//! succeeds with no events, so a redelivered event is harmless. Forward jumps are allowed because
//! news from two services comes through two consumers: the courier's pickup may be heard
//! before the kitchen's `ready`. The step heard late is still recorded
//! (`OrderStepRecordedLate`), in its place on the path, with its own time, so no step the
//! kitchen or the courier took is ever missing from the order's history.

use chrono::{DateTime, Utc};
use cqrs_es::event_sink::EventSink;
use cqrs_es::Aggregate;
use serde::{Deserialize, Serialize};
use std::fmt;
use uuid::Uuid;

use super::{ChosenOption, OrderCommand, OrderError, OrderEvent};
use crate::shared::{char_len, non_blank};
use crate::{Actor, Address, Allergen, Money, Role};

/// One line of an order: a snapshot of the dish as it was on the menu when the order was placed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OrderLine {
    pub dish_id: Uuid,
    pub name: String,
    /// The price of one: the dish's price plus the deltas of its `options`.
    pub unit_price: Money,
    pub quantity: u32,
    pub note: Option<String>,
    /// The options picked (cooking, supplements…), in menu order. Orders placed before
    /// options existed have none.
    #[serde(default)]
    pub options: Vec<ChosenOption>,
}

impl OrderLine {
    /// `unit_price × quantity`; `None` on overflow.
    pub fn line_total(&self) -> Option<Money> {
        self.unit_price.checked_mul(self.quantity)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrderStatus {
    Placed,
    Accepted,
    InPreparation,
    Ready,
    OutForDelivery,
    Delivered,
    Cancelled,
    Rejected,
}

impl OrderStatus {
    /// The same spelling as serde uses (`"in_preparation"`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            OrderStatus::Placed => "placed",
            OrderStatus::Accepted => "accepted",
            OrderStatus::InPreparation => "in_preparation",
            OrderStatus::Ready => "ready",
            OrderStatus::OutForDelivery => "out_for_delivery",
            OrderStatus::Delivered => "delivered",
            OrderStatus::Cancelled => "cancelled",
            OrderStatus::Rejected => "rejected",
        }
    }

    /// Delivered, cancelled or rejected: nothing more will happen to the order.
    pub fn is_finished(self) -> bool {
        matches!(
            self,
            OrderStatus::Delivered | OrderStatus::Cancelled | OrderStatus::Rejected
        )
    }

    /// Whether the customer may still cancel: the kitchen has not started cooking.
    pub fn customer_may_cancel(self) -> bool {
        matches!(self, OrderStatus::Placed | OrderStatus::Accepted)
    }

    /// Where this step, heard late, goes in `history` (statuses along the forward path):
    /// after the steps before it, before the ones the order went on to. The aggregate and the
    /// tracking read model place a late step by this one rule.
    pub fn place_in(self, history: impl IntoIterator<Item = OrderStatus>) -> usize {
        history
            .into_iter()
            .take_while(|status| status.progress() < self.progress())
            .count()
    }

    /// Position on the forward path; `None` for the two dead ends.
    fn progress(self) -> Option<u8> {
        match self {
            OrderStatus::Placed => Some(0),
            OrderStatus::Accepted => Some(1),
            OrderStatus::InPreparation => Some(2),
            OrderStatus::Ready => Some(3),
            OrderStatus::OutForDelivery => Some(4),
            OrderStatus::Delivered => Some(5),
            OrderStatus::Cancelled | OrderStatus::Rejected => None,
        }
    }

    /// Whether moving forward to `target` would change nothing: the order is already there or
    /// beyond, or it was cancelled or rejected.
    fn has_reached(self, target: OrderStatus) -> bool {
        match (self.progress(), target.progress()) {
            (Some(current), Some(target)) => current >= target,
            _ => true,
        }
    }
}

impl fmt::Display for OrderStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One entry of an order's status history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusChange {
    pub status: OrderStatus,
    pub at: DateTime<Utc>,
}

/// A customer's order. `Order::default()` is an order not placed yet: its getters return `None`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Order {
    placed: Option<PlacedOrder>,
}

/// Everything an order has once placed; kept apart so an unplaced order cannot have a total
/// or a customer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct PlacedOrder {
    order_id: Uuid,
    customer_id: Uuid,
    lines: Vec<OrderLine>,
    delivery_address: Address,
    contact_phone: Option<String>,
    total: Money,
    status: OrderStatus,
    placed_at: DateTime<Utc>,
    history: Vec<StatusChange>,
    #[serde(default)]
    allergies: Vec<Allergen>,
    #[serde(default)]
    scheduled_for: Option<DateTime<Utc>>,
}

impl Order {
    pub const MAX_LINES: usize = 100;
    pub const MAX_QUANTITY: u32 = 50;
    pub const MAX_NOTE_CHARS: usize = 200;
    /// Most options on one line (a dish has at most 10 groups of 20 choices).
    pub const MAX_OPTIONS_PER_LINE: usize = 200;
    pub const MAX_PHONE_CHARS: usize = 30;
    pub const MAX_REASON_CHARS: usize = 500;
    /// How far ahead an order may be scheduled.
    pub const MAX_SCHEDULE_DAYS: i64 = 7;

    pub fn is_placed(&self) -> bool {
        self.placed.is_some()
    }

    pub fn order_id(&self) -> Option<Uuid> {
        self.placed.as_ref().map(|o| o.order_id)
    }

    pub fn status(&self) -> Option<OrderStatus> {
        self.placed.as_ref().map(|o| o.status)
    }

    pub fn customer_id(&self) -> Option<Uuid> {
        self.placed.as_ref().map(|o| o.customer_id)
    }

    /// Empty until placed.
    pub fn lines(&self) -> &[OrderLine] {
        self.placed.as_ref().map_or(&[], |o| &o.lines)
    }

    pub fn total(&self) -> Option<&Money> {
        self.placed.as_ref().map(|o| &o.total)
    }

    pub fn delivery_address(&self) -> Option<&Address> {
        self.placed.as_ref().map(|o| &o.delivery_address)
    }

    pub fn contact_phone(&self) -> Option<&str> {
        self.placed
            .as_ref()
            .and_then(|o| o.contact_phone.as_deref())
    }

    pub fn placed_at(&self) -> Option<DateTime<Utc>> {
        self.placed.as_ref().map(|o| o.placed_at)
    }

    /// The allergens the customer had declared when ordering (the kitchen's allergy flag).
    pub fn allergies(&self) -> &[Allergen] {
        self.placed.as_ref().map_or(&[], |o| &o.allergies)
    }

    /// When a scheduled order is to be ready; `None` for "as soon as possible".
    pub fn scheduled_for(&self) -> Option<DateTime<Utc>> {
        self.placed.as_ref().and_then(|o| o.scheduled_for)
    }

    /// Every status the order went through, oldest first, starting with `placed`.
    pub fn history(&self) -> &[StatusChange] {
        self.placed.as_ref().map_or(&[], |o| &o.history)
    }

    /// Checks the command against the current state and returns the events to record.
    fn decide(&self, command: OrderCommand) -> Result<Vec<OrderEvent>, OrderError> {
        match command {
            OrderCommand::Place {
                order_id,
                customer_id,
                lines,
                delivery_address,
                contact_phone,
                allergy,
                scheduled_for,
                at,
            } => {
                if self.is_placed() {
                    return Err(OrderError::OrderAlreadyPlaced);
                }
                let lines = validate_lines(lines)?;
                let total = order_total(&lines)?;
                delivery_address
                    .validate()
                    .map_err(OrderError::InvalidAddress)?;
                let contact_phone = non_blank(contact_phone);
                if contact_phone
                    .as_deref()
                    .is_some_and(|phone| char_len(phone) > Self::MAX_PHONE_CHARS)
                {
                    return Err(OrderError::ContactPhoneTooLong {
                        max: Self::MAX_PHONE_CHARS,
                    });
                }
                if let Some(when) = scheduled_for {
                    if when <= at {
                        return Err(OrderError::ScheduleNotInFuture);
                    }
                    if when > at + chrono::Duration::days(Self::MAX_SCHEDULE_DAYS) {
                        return Err(OrderError::ScheduleTooFar {
                            max_days: Self::MAX_SCHEDULE_DAYS,
                        });
                    }
                }
                // Last, so the customer is asked to confirm only an order that can be placed.
                if allergy.needs_confirmation() {
                    return Err(OrderError::AllergenConfirmationRequired {
                        conflicts: allergy.conflicts,
                    });
                }
                Ok(vec![OrderEvent::OrderPlaced {
                    order_id,
                    customer_id,
                    lines,
                    delivery_address,
                    contact_phone,
                    total,
                    placed_at: at,
                    allergies: allergy.declared,
                    scheduled_for,
                }])
            }
            OrderCommand::Accept { at } => {
                self.advance(OrderStatus::Accepted, OrderEvent::OrderAccepted { at })
            }
            OrderCommand::StartPreparation { at } => self.advance(
                OrderStatus::InPreparation,
                OrderEvent::OrderInPreparation { at },
            ),
            OrderCommand::MarkReady { at } => {
                self.advance(OrderStatus::Ready, OrderEvent::OrderReady { at })
            }
            OrderCommand::MarkOutForDelivery { at } => self.advance(
                OrderStatus::OutForDelivery,
                OrderEvent::OrderOutForDelivery { at },
            ),
            OrderCommand::MarkDelivered { at } => {
                self.advance(OrderStatus::Delivered, OrderEvent::OrderDelivered { at })
            }
            OrderCommand::Reject { reason, at } => {
                // The kitchen may give up on an order until its food is ready; a late
                // rejection (redelivered, or racing with the last dish) changes nothing.
                if self.existing()?.status.has_reached(OrderStatus::Ready) {
                    Ok(Vec::new())
                } else {
                    Ok(vec![OrderEvent::OrderRejected { reason, at }])
                }
            }
            OrderCommand::Cancel { by, reason, at } => {
                self.existing()?.check_cancel(&by)?;
                let reason = non_blank(reason);
                if reason
                    .as_deref()
                    .is_some_and(|r| char_len(r) > Self::MAX_REASON_CHARS)
                {
                    return Err(OrderError::ReasonTooLong {
                        max: Self::MAX_REASON_CHARS,
                    });
                }
                Ok(vec![OrderEvent::OrderCancelled { by, reason, at }])
            }
        }
    }

    fn existing(&self) -> Result<&PlacedOrder, OrderError> {
        self.placed.as_ref().ok_or(OrderError::OrderNotFound)
    }

    /// `event` if it moves the order forward to `target`; the step recorded late if the order
    /// went past `target` without it; nothing if `target` is already in the history, or the
    /// order was cancelled or rejected.
    fn advance(
        &self,
        target: OrderStatus,
        event: OrderEvent,
    ) -> Result<Vec<OrderEvent>, OrderError> {
        let order = self.existing()?;
        if !order.status.has_reached(target) {
            Ok(vec![event])
        } else if order.went_past_without(target) {
            Ok(vec![OrderEvent::OrderStepRecordedLate {
                status: target,
                at: event.occurred_at(),
            }])
        } else {
            Ok(Vec::new())
        }
    }

    fn set_status(&mut self, status: OrderStatus, at: DateTime<Utc>) {
        if let Some(order) = &mut self.placed {
            order.status = status;
            order.history.push(StatusChange { status, at });
        }
    }

    /// A step heard late takes its place on the path: after the steps before it, before the
    /// ones the order went on to.
    fn record_late(&mut self, status: OrderStatus, at: DateTime<Utc>) {
        if let Some(order) = &mut self.placed {
            let place = status.place_in(order.history.iter().map(|change| change.status));
            order.history.insert(place, StatusChange { status, at });
        }
    }
}

impl PlacedOrder {
    /// Whether the order went forward past `target` with no `target` in its history.
    fn went_past_without(&self, target: OrderStatus) -> bool {
        matches!(
            (self.status.progress(), target.progress()),
            (Some(current), Some(step)) if step < current
        ) && !self.history.iter().any(|change| change.status == target)
    }

    /// Who may cancel: the customer until cooking starts; a manager or the system until
    /// delivery; never a chef or a courier (they reject or fail instead).
    fn check_cancel(&self, by: &Actor) -> Result<(), OrderError> {
        let customer = match by {
            Actor::User {
                role: Role::Chef | Role::Courier,
                ..
            } => return Err(OrderError::NotAllowed),
            Actor::User {
                role: Role::Customer,
                account_id,
            } => {
                if *account_id != self.customer_id {
                    return Err(OrderError::NotYourOrder);
                }
                true
            }
            Actor::User {
                role: Role::Manager,
                ..
            }
            | Actor::System => false,
        };
        if self.status.is_finished() {
            return Err(OrderError::AlreadyFinished);
        }
        if customer && !self.status.customer_may_cancel() {
            return Err(OrderError::TooLateToCancel);
        }
        Ok(())
    }
}

/// Checks count, quantities, notes and prices; trims notes (a blank note becomes `None`).
fn validate_lines(lines: Vec<OrderLine>) -> Result<Vec<OrderLine>, OrderError> {
    if lines.is_empty() {
        return Err(OrderError::EmptyOrder);
    }
    if lines.len() > Order::MAX_LINES {
        return Err(OrderError::TooManyLines {
            max: Order::MAX_LINES,
        });
    }
    let currency = lines[0].unit_price.currency.clone();
    lines
        .into_iter()
        .enumerate()
        .map(|(line, mut item)| {
            if !(1..=Order::MAX_QUANTITY).contains(&item.quantity) {
                return Err(OrderError::InvalidQuantity {
                    line,
                    quantity: item.quantity,
                });
            }
            item.note = non_blank(item.note);
            if item
                .note
                .as_deref()
                .is_some_and(|note| char_len(note) > Order::MAX_NOTE_CHARS)
            {
                return Err(OrderError::NoteTooLong { line });
            }
            if item.unit_price.amount < 0 || !item.unit_price.has_valid_currency() {
                return Err(OrderError::InvalidUnitPrice { line });
            }
            if item.unit_price.currency != currency {
                return Err(OrderError::MixedCurrencies { line });
            }
            if !options_fit(&item) {
                return Err(OrderError::InvalidOptions {
                    line,
                    max: Order::MAX_OPTIONS_PER_LINE,
                });
            }
            Ok(item)
        })
        .collect()
}

/// Whether the line's options are few enough, each a non-negative delta in the line's currency,
/// and all of them included in the unit price (which cannot be less than their sum).
fn options_fit(line: &OrderLine) -> bool {
    if line.options.len() > Order::MAX_OPTIONS_PER_LINE {
        return false;
    }
    let deltas = line.options.iter().try_fold(
        Money::zero(line.unit_price.currency.clone()),
        |sum, option| {
            if option.price_delta.amount < 0 {
                return None;
            }
            sum.checked_add(&option.price_delta)
        },
    );
    deltas.is_some_and(|deltas| deltas.amount <= line.unit_price.amount)
}

/// Sum of the line totals, with checked arithmetic: what `Place` stores as the order's total.
/// `lines` is non-empty and single-currency.
///
/// # Errors
/// [`OrderError::TotalOverflow`] when the sum does not fit.
pub fn order_total(lines: &[OrderLine]) -> Result<Money, OrderError> {
    let currency = lines
        .first()
        .map_or_else(String::new, |line| line.unit_price.currency.clone());
    lines.iter().try_fold(Money::zero(currency), |sum, line| {
        line.line_total()
            .and_then(|line_total| sum.checked_add(&line_total))
            .ok_or(OrderError::TotalOverflow)
    })
}

impl Aggregate for Order {
    const TYPE: &'static str = "order";
    type Command = OrderCommand;
    type Event = OrderEvent;
    type Error = OrderError;
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
            OrderEvent::OrderPlaced {
                order_id,
                customer_id,
                lines,
                delivery_address,
                contact_phone,
                total,
                placed_at,
                allergies,
                scheduled_for,
            } => {
                self.placed = Some(PlacedOrder {
                    order_id,
                    customer_id,
                    lines,
                    delivery_address,
                    contact_phone,
                    total,
                    status: OrderStatus::Placed,
                    placed_at,
                    history: vec![StatusChange {
                        status: OrderStatus::Placed,
                        at: placed_at,
                    }],
                    allergies,
                    scheduled_for,
                });
            }
            OrderEvent::OrderAccepted { at } => self.set_status(OrderStatus::Accepted, at),
            OrderEvent::OrderInPreparation { at } => {
                self.set_status(OrderStatus::InPreparation, at);
            }
            OrderEvent::OrderReady { at } => self.set_status(OrderStatus::Ready, at),
            OrderEvent::OrderOutForDelivery { at } => {
                self.set_status(OrderStatus::OutForDelivery, at);
            }
            OrderEvent::OrderDelivered { at } => self.set_status(OrderStatus::Delivered, at),
            OrderEvent::OrderCancelled { at, .. } => self.set_status(OrderStatus::Cancelled, at),
            OrderEvent::OrderRejected { at, .. } => self.set_status(OrderStatus::Rejected, at),
            OrderEvent::OrderStepRecordedLate { status, at } => self.record_late(status, at),
        }
    }
}

#[cfg(test)]
mod tests {
    use cqrs_es::test::TestFramework;
    use cqrs_es::DomainEvent;

    use super::*;
    use crate::ordering::{AllergyCheck, DishAllergens};
    use crate::test_support::{at, handle_then_reload};
    use crate::AddressError;

    type OrderTest = TestFramework<Order>;

    const ORDER: Uuid = Uuid::from_u128(1);
    const CUSTOMER: Uuid = Uuid::from_u128(2);
    const SOMEONE_ELSE: Uuid = Uuid::from_u128(3);
    const MANAGER: Uuid = Uuid::from_u128(4);

    fn line(price: i64, quantity: u32) -> OrderLine {
        OrderLine {
            dish_id: Uuid::from_u128(100 + u128::from(quantity)),
            name: "Bœuf bourguignon".into(),
            unit_price: Money::eur(price),
            quantity,
            note: None,
            options: Vec::new(),
        }
    }

    fn address() -> Address {
        Address {
            street: "1 Rue de la Paix".into(),
            city: "Paris".into(),
            postal_code: "75002".into(),
            lat: None,
            lon: None,
        }
    }

    fn place_with(lines: Vec<OrderLine>) -> OrderCommand {
        OrderCommand::Place {
            order_id: ORDER,
            customer_id: CUSTOMER,
            lines,
            delivery_address: address(),
            contact_phone: Some(" +33 1 23 45 67 89 ".into()),
            allergy: AllergyCheck::default(),
            scheduled_for: None,
            at: at(0),
        }
    }

    fn placed() -> OrderEvent {
        OrderEvent::OrderPlaced {
            order_id: ORDER,
            customer_id: CUSTOMER,
            lines: vec![line(1250, 2), line(800, 1)],
            delivery_address: address(),
            contact_phone: Some("+33 1 23 45 67 89".into()),
            total: Money::eur(3300),
            placed_at: at(0),
            allergies: Vec::new(),
            scheduled_for: None,
        }
    }

    fn customer(id: Uuid) -> Actor {
        Actor::user(id, Role::Customer)
    }

    fn cancel_by(by: Actor) -> OrderCommand {
        OrderCommand::Cancel {
            by,
            reason: Some("changed my mind".into()),
            at: at(9),
        }
    }

    fn cancelled_by(by: Actor) -> OrderEvent {
        OrderEvent::OrderCancelled {
            by,
            reason: Some("changed my mind".into()),
            at: at(9),
        }
    }

    // --- placing --------------------------------------------------------------------------

    #[test]
    fn a_customer_places_an_order_and_the_total_is_computed() {
        OrderTest::with(())
            .given_no_previous_events()
            .when(place_with(vec![line(1250, 2), line(800, 1)]))
            .then_expect_events(vec![placed()]);
    }

    fn with_option(mut line: OrderLine, delta: Money) -> OrderLine {
        line.options.push(ChosenOption {
            group_id: Uuid::from_u128(50),
            group: "Supplément".into(),
            choice_id: Uuid::from_u128(51),
            choice: "fromage".into(),
            price_delta: delta,
        });
        line
    }

    #[test]
    fn options_are_snapshotted_and_included_in_the_unit_price() {
        let events = OrderTest::with(())
            .given_no_previous_events()
            .when(place_with(vec![with_option(
                line(1400, 2),
                Money::eur(150),
            )]))
            .inspect_result()
            .expect("placed");
        assert!(matches!(
            &events[..],
            [OrderEvent::OrderPlaced { lines, total, .. }]
                if lines[0].options[0].label() == "Supplément: fromage" && *total == Money::eur(2800)
        ));
    }

    #[test]
    fn options_must_be_sane_and_covered_by_the_unit_price() {
        for delta in [Money::eur(-10), Money::new(10, "USD"), Money::eur(1401)] {
            OrderTest::with(())
                .given_no_previous_events()
                .when(place_with(vec![
                    line(800, 1),
                    with_option(line(1400, 1), delta),
                ]))
                .then_expect_error(OrderError::InvalidOptions { line: 1, max: 200 });
        }
    }

    #[test]
    fn an_order_placed_before_options_existed_still_reads() {
        let json = serde_json::json!({
            "dishId": Uuid::nil(), "name": "Soupe", "quantity": 1, "note": null,
            "unitPrice": {"amount": 800, "currency": "EUR"}
        });
        let line: OrderLine = serde_json::from_value(json).expect("an old line reads");
        assert!(line.options.is_empty());
    }

    #[test]
    fn an_order_cannot_be_placed_twice() {
        OrderTest::with(())
            .given(vec![placed()])
            .when(place_with(vec![line(1250, 2)]))
            .then_expect_error(OrderError::OrderAlreadyPlaced);
    }

    fn with_allergy(lines: Vec<OrderLine>, declared: &[Allergen], confirmed: bool) -> OrderCommand {
        let mut command = place_with(lines.clone());
        if let OrderCommand::Place { allergy, .. } = &mut command {
            *allergy = AllergyCheck::of(
                declared,
                lines.iter().map(|line| DishAllergens {
                    dish_id: line.dish_id,
                    dish_name: &line.name,
                    allergens: &[Allergen::Gluten, Allergen::Milk],
                }),
                confirmed,
            );
        }
        command
    }

    #[test]
    fn a_dish_with_a_declared_allergen_needs_the_customers_confirmation() {
        let lines = vec![line(1250, 2)];
        let OrderCommand::Place { allergy, .. } =
            with_allergy(lines.clone(), &[Allergen::Milk, Allergen::Peanuts], false)
        else {
            panic!("a place command");
        };
        OrderTest::with(())
            .given_no_previous_events()
            .when(with_allergy(
                lines.clone(),
                &[Allergen::Milk, Allergen::Peanuts],
                false,
            ))
            .then_expect_error(OrderError::AllergenConfirmationRequired {
                conflicts: allergy.conflicts,
            });
        let events = OrderTest::with(())
            .given_no_previous_events()
            .when(with_allergy(
                lines,
                &[Allergen::Milk, Allergen::Peanuts],
                true,
            ))
            .inspect_result()
            .expect("a confirmed order is placed");
        let [OrderEvent::OrderPlaced { allergies, .. }] = events.as_slice() else {
            panic!("expected OrderPlaced, got {events:?}");
        };
        assert_eq!(allergies, &[Allergen::Peanuts, Allergen::Milk]);
    }

    #[test]
    fn the_refusal_names_every_dish_and_allergen() {
        let error = OrderError::AllergenConfirmationRequired {
            conflicts: vec![crate::ordering::AllergenConflict {
                line: 0,
                dish_id: Uuid::from_u128(9),
                dish_name: "Croque-monsieur".into(),
                allergens: vec![Allergen::Gluten, Allergen::Milk],
            }],
        };
        assert_eq!(error.code(), "allergen-confirmation-required");
        assert!(error
            .to_string()
            .starts_with("Croque-monsieur contains gluten, milk"));
    }

    #[test]
    fn an_order_is_scheduled_in_the_future_within_a_week() {
        let scheduled = |when| {
            let mut command = place_with(vec![line(1250, 1)]);
            if let OrderCommand::Place { scheduled_for, .. } = &mut command {
                *scheduled_for = Some(when);
            }
            command
        };
        OrderTest::with(())
            .given_no_previous_events()
            .when(scheduled(at(0)))
            .then_expect_error(OrderError::ScheduleNotInFuture);
        OrderTest::with(())
            .given_no_previous_events()
            .when(scheduled(at(0) + chrono::Duration::days(8)))
            .then_expect_error(OrderError::ScheduleTooFar { max_days: 7 });
        let (_, reloaded, _) =
            handle_then_reload::<Order>(vec![], scheduled(at(0) + chrono::Duration::hours(2)));
        assert_eq!(
            reloaded.scheduled_for(),
            Some(at(0) + chrono::Duration::hours(2))
        );
    }

    #[test]
    fn an_order_needs_at_least_one_line() {
        OrderTest::with(())
            .given_no_previous_events()
            .when(place_with(vec![]))
            .then_expect_error(OrderError::EmptyOrder);
    }

    #[test]
    fn an_order_has_at_most_a_hundred_lines() {
        OrderTest::with(())
            .given_no_previous_events()
            .when(place_with(vec![line(100, 1); 101]))
            .then_expect_error(OrderError::TooManyLines { max: 100 });
    }

    #[test]
    fn each_quantity_is_between_one_and_fifty() {
        OrderTest::with(())
            .given_no_previous_events()
            .when(place_with(vec![line(100, 1), line(100, 0)]))
            .then_expect_error(OrderError::InvalidQuantity {
                line: 1,
                quantity: 0,
            });
        OrderTest::with(())
            .given_no_previous_events()
            .when(place_with(vec![line(100, 51)]))
            .then_expect_error_message("line 0: quantity 51 is not between 1 and 50");
    }

    #[test]
    fn a_line_note_is_at_most_two_hundred_characters() {
        let mut long = line(100, 1);
        long.note = Some("é".repeat(201));
        OrderTest::with(())
            .given_no_previous_events()
            .when(place_with(vec![line(100, 1), long]))
            .then_expect_error(OrderError::NoteTooLong { line: 1 });
    }

    #[test]
    fn notes_are_trimmed_and_blank_notes_dropped() {
        let mut noted = line(100, 1);
        noted.note = Some("  no onions ".into());
        let mut blank = line(200, 2);
        blank.note = Some("   ".into());
        let events = OrderTest::with(())
            .given_no_previous_events()
            .when(place_with(vec![noted, blank]))
            .inspect_result()
            .expect("the order is placed");
        let OrderEvent::OrderPlaced { lines, .. } = &events[0] else {
            panic!("expected OrderPlaced, got {events:?}");
        };
        assert_eq!(lines[0].note.as_deref(), Some("no onions"));
        assert_eq!(lines[1].note, None);
    }

    #[test]
    fn all_lines_are_priced_in_one_currency() {
        let mut dollars = line(100, 1);
        dollars.unit_price = Money::new(100, "USD");
        OrderTest::with(())
            .given_no_previous_events()
            .when(place_with(vec![line(100, 1), dollars]))
            .then_expect_error(OrderError::MixedCurrencies { line: 1 });
    }

    #[test]
    fn a_negative_unit_price_is_refused() {
        OrderTest::with(())
            .given_no_previous_events()
            .when(place_with(vec![line(-1, 1)]))
            .then_expect_error(OrderError::InvalidUnitPrice { line: 0 });
    }

    #[test]
    fn an_overflowing_total_is_refused() {
        OrderTest::with(())
            .given_no_previous_events()
            .when(place_with(vec![line(i64::MAX / 10, 50)]))
            .then_expect_error(OrderError::TotalOverflow);
        OrderTest::with(())
            .given_no_previous_events()
            .when(place_with(vec![line(i64::MAX / 2, 1); 3]))
            .then_expect_error(OrderError::TotalOverflow);
    }

    #[test]
    fn the_delivery_address_is_validated() {
        let mut command = place_with(vec![line(100, 1)]);
        if let OrderCommand::Place {
            delivery_address, ..
        } = &mut command
        {
            delivery_address.postal_code = String::new();
        }
        OrderTest::with(())
            .given_no_previous_events()
            .when(command)
            .then_expect_error(OrderError::InvalidAddress(AddressError::Missing {
                field: "postalCode",
            }));
    }

    #[test]
    fn a_contact_phone_is_at_most_thirty_characters() {
        let mut command = place_with(vec![line(100, 1)]);
        if let OrderCommand::Place { contact_phone, .. } = &mut command {
            *contact_phone = Some("1".repeat(31));
        }
        OrderTest::with(())
            .given_no_previous_events()
            .when(command)
            .then_expect_error(OrderError::ContactPhoneTooLong { max: 30 });
    }

    // --- progress from other services -----------------------------------------------------

    #[test]
    fn the_order_follows_the_kitchen_and_the_courier() {
        OrderTest::with(())
            .given(vec![placed()])
            .when(OrderCommand::Accept { at: at(1) })
            .then_expect_events(vec![OrderEvent::OrderAccepted { at: at(1) }]);
        OrderTest::with(())
            .given(vec![placed(), OrderEvent::OrderAccepted { at: at(1) }])
            .when(OrderCommand::StartPreparation { at: at(2) })
            .then_expect_events(vec![OrderEvent::OrderInPreparation { at: at(2) }]);
        OrderTest::with(())
            .given(vec![placed(), OrderEvent::OrderInPreparation { at: at(2) }])
            .when(OrderCommand::MarkReady { at: at(3) })
            .then_expect_events(vec![OrderEvent::OrderReady { at: at(3) }]);
        OrderTest::with(())
            .given(vec![placed(), OrderEvent::OrderReady { at: at(3) }])
            .when(OrderCommand::MarkOutForDelivery { at: at(4) })
            .then_expect_events(vec![OrderEvent::OrderOutForDelivery { at: at(4) }]);
        OrderTest::with(())
            .given(vec![
                placed(),
                OrderEvent::OrderOutForDelivery { at: at(4) },
            ])
            .when(OrderCommand::MarkDelivered { at: at(5) })
            .then_expect_events(vec![OrderEvent::OrderDelivered { at: at(5) }]);
    }

    #[test]
    fn a_progress_command_may_skip_steps() {
        OrderTest::with(())
            .given(vec![placed()])
            .when(OrderCommand::MarkReady { at: at(3) })
            .then_expect_events(vec![OrderEvent::OrderReady { at: at(3) }]);
    }

    #[test]
    fn a_redelivered_progress_command_changes_nothing() {
        OrderTest::with(())
            .given(vec![placed(), OrderEvent::OrderAccepted { at: at(1) }])
            .when(OrderCommand::Accept { at: at(2) })
            .then_expect_events(vec![]);
    }

    #[test]
    fn a_late_progress_command_does_not_move_the_order_back() {
        OrderTest::with(())
            .given(vec![
                placed(),
                OrderEvent::OrderInPreparation { at: at(2) },
                OrderEvent::OrderReady { at: at(3) },
            ])
            .when(OrderCommand::StartPreparation { at: at(4) })
            .then_expect_events(vec![]);
        OrderTest::with(())
            .given(vec![
                placed(),
                OrderEvent::OrderOutForDelivery { at: at(4) },
                OrderEvent::OrderDelivered { at: at(5) },
            ])
            .when(OrderCommand::MarkOutForDelivery { at: at(6) })
            .then_expect_events(vec![]);
    }

    #[test]
    fn a_step_heard_after_the_order_went_past_it_is_recorded_in_its_place() {
        // The courier's pickup and handover were heard before the kitchen's news.
        let given = vec![
            placed(),
            OrderEvent::OrderOutForDelivery { at: at(4) },
            OrderEvent::OrderDelivered { at: at(5) },
        ];
        let (handled, reloaded, emitted) =
            handle_then_reload::<Order>(given.clone(), OrderCommand::MarkReady { at: at(3) });
        assert_eq!(
            emitted,
            vec![OrderEvent::OrderStepRecordedLate {
                status: OrderStatus::Ready,
                at: at(3)
            }]
        );
        assert_eq!(handled, reloaded);
        assert_eq!(reloaded.status(), Some(OrderStatus::Delivered));
        let path: Vec<(OrderStatus, DateTime<Utc>)> = reloaded
            .history()
            .iter()
            .map(|change| (change.status, change.at))
            .collect();
        assert_eq!(
            path,
            [
                (OrderStatus::Placed, at(0)),
                (OrderStatus::Ready, at(3)),
                (OrderStatus::OutForDelivery, at(4)),
                (OrderStatus::Delivered, at(5)),
            ]
        );

        // The same news again, or a second cook's start once the first was heard: nothing.
        let mut given = given;
        given.extend(emitted);
        OrderTest::with(())
            .given(given)
            .when(OrderCommand::MarkReady { at: at(3) })
            .then_expect_events(vec![]);
    }

    #[test]
    fn a_cancelled_order_records_no_late_step() {
        OrderTest::with(())
            .given(vec![placed(), cancelled_by(customer(CUSTOMER))])
            .when(OrderCommand::MarkReady { at: at(3) })
            .then_expect_events(vec![]);
    }

    #[test]
    fn progress_after_cancellation_or_rejection_changes_nothing() {
        OrderTest::with(())
            .given(vec![placed(), cancelled_by(customer(CUSTOMER))])
            .when(OrderCommand::Accept { at: at(10) })
            .then_expect_events(vec![]);
        OrderTest::with(())
            .given(vec![
                placed(),
                OrderEvent::OrderRejected {
                    reason: "no truffles".into(),
                    at: at(2),
                },
            ])
            .when(OrderCommand::MarkDelivered { at: at(10) })
            .then_expect_events(vec![]);
    }

    #[test]
    fn progress_on_an_unknown_order_is_an_error() {
        OrderTest::with(())
            .given_no_previous_events()
            .when(OrderCommand::Accept { at: at(1) })
            .then_expect_error(OrderError::OrderNotFound);
    }

    #[test]
    fn the_kitchen_may_reject_an_order_until_it_is_ready() {
        for before in [
            vec![placed()],
            vec![placed(), OrderEvent::OrderAccepted { at: at(1) }],
            vec![placed(), OrderEvent::OrderInPreparation { at: at(2) }],
        ] {
            OrderTest::with(())
                .given(before)
                .when(OrderCommand::Reject {
                    reason: "out of truffles".into(),
                    at: at(3),
                })
                .then_expect_events(vec![OrderEvent::OrderRejected {
                    reason: "out of truffles".into(),
                    at: at(3),
                }]);
        }
    }

    #[test]
    fn a_rejection_after_the_food_is_ready_changes_nothing() {
        for after in [
            OrderEvent::OrderReady { at: at(3) },
            OrderEvent::OrderDelivered { at: at(5) },
            OrderEvent::OrderRejected {
                reason: "first".into(),
                at: at(3),
            },
            cancelled_by(Actor::System),
        ] {
            OrderTest::with(())
                .given(vec![placed(), after])
                .when(OrderCommand::Reject {
                    reason: "again".into(),
                    at: at(6),
                })
                .then_expect_events(vec![]);
        }
    }

    // --- cancellation ---------------------------------------------------------------------

    #[test]
    fn a_customer_can_cancel_before_cooking_starts() {
        for before in [
            vec![placed()],
            vec![placed(), OrderEvent::OrderAccepted { at: at(1) }],
        ] {
            OrderTest::with(())
                .given(before)
                .when(cancel_by(customer(CUSTOMER)))
                .then_expect_events(vec![cancelled_by(customer(CUSTOMER))]);
        }
    }

    #[test]
    fn a_customer_cannot_cancel_after_cooking_started() {
        OrderTest::with(())
            .given(vec![placed(), OrderEvent::OrderInPreparation { at: at(2) }])
            .when(cancel_by(customer(CUSTOMER)))
            .then_expect_error(OrderError::TooLateToCancel);
    }

    #[test]
    fn a_customer_cannot_cancel_someone_elses_order() {
        OrderTest::with(())
            .given(vec![placed()])
            .when(cancel_by(customer(SOMEONE_ELSE)))
            .then_expect_error(OrderError::NotYourOrder);
    }

    #[test]
    fn a_manager_can_cancel_an_order_being_cooked_or_on_its_way() {
        let manager = Actor::user(MANAGER, Role::Manager);
        for status in [
            OrderEvent::OrderInPreparation { at: at(2) },
            OrderEvent::OrderOutForDelivery { at: at(4) },
        ] {
            OrderTest::with(())
                .given(vec![placed(), status])
                .when(cancel_by(manager))
                .then_expect_events(vec![cancelled_by(manager)]);
        }
    }

    #[test]
    fn the_system_cancels_like_a_manager() {
        OrderTest::with(())
            .given(vec![placed(), OrderEvent::OrderReady { at: at(3) }])
            .when(cancel_by(Actor::System))
            .then_expect_events(vec![cancelled_by(Actor::System)]);
    }

    #[test]
    fn nobody_can_cancel_a_delivered_order() {
        OrderTest::with(())
            .given(vec![placed(), OrderEvent::OrderDelivered { at: at(5) }])
            .when(cancel_by(Actor::user(MANAGER, Role::Manager)))
            .then_expect_error(OrderError::AlreadyFinished);
    }

    #[test]
    fn a_cancelled_or_rejected_order_cannot_be_cancelled_again() {
        for finished in [
            cancelled_by(customer(CUSTOMER)),
            OrderEvent::OrderRejected {
                reason: "no truffles".into(),
                at: at(2),
            },
        ] {
            OrderTest::with(())
                .given(vec![placed(), finished])
                .when(cancel_by(customer(CUSTOMER)))
                .then_expect_error(OrderError::AlreadyFinished);
        }
    }

    #[test]
    fn chefs_and_couriers_cannot_cancel_orders() {
        for role in [Role::Chef, Role::Courier] {
            OrderTest::with(())
                .given(vec![placed()])
                .when(cancel_by(Actor::user(MANAGER, role)))
                .then_expect_error(OrderError::NotAllowed);
        }
    }

    #[test]
    fn a_cancellation_reason_is_at_most_five_hundred_characters() {
        OrderTest::with(())
            .given(vec![placed()])
            .when(OrderCommand::Cancel {
                by: customer(CUSTOMER),
                reason: Some("x".repeat(501)),
                at: at(9),
            })
            .then_expect_error(OrderError::ReasonTooLong { max: 500 });
    }

    #[test]
    fn cancelling_an_unknown_order_is_an_error() {
        OrderTest::with(())
            .given_no_previous_events()
            .when(cancel_by(Actor::System))
            .then_expect_error(OrderError::OrderNotFound);
    }

    // --- state, reload, serialization ----------------------------------------------------

    #[test]
    fn the_state_after_handling_equals_the_state_reloaded_from_events() {
        let (handled, reloaded, emitted) =
            handle_then_reload::<Order>(vec![], place_with(vec![line(1250, 2), line(800, 1)]));
        assert_eq!(emitted.len(), 1);
        assert_eq!(handled, reloaded);

        let (handled, reloaded, _) = handle_then_reload::<Order>(
            vec![placed(), OrderEvent::OrderAccepted { at: at(1) }],
            OrderCommand::MarkDelivered { at: at(5) },
        );
        assert_eq!(handled, reloaded);
        assert_eq!(handled.status(), Some(OrderStatus::Delivered));
    }

    #[test]
    fn getters_expose_the_placed_order_and_its_history() {
        let (order, _, _) = handle_then_reload::<Order>(
            vec![placed(), OrderEvent::OrderAccepted { at: at(1) }],
            OrderCommand::StartPreparation { at: at(2) },
        );
        assert_eq!(order.order_id(), Some(ORDER));
        assert_eq!(order.customer_id(), Some(CUSTOMER));
        assert_eq!(order.total(), Some(&Money::eur(3300)));
        assert_eq!(order.lines().len(), 2);
        assert_eq!(order.placed_at(), Some(at(0)));
        assert_eq!(order.contact_phone(), Some("+33 1 23 45 67 89"));
        assert_eq!(order.delivery_address(), Some(&address()));
        assert_eq!(
            order.history(),
            [
                StatusChange {
                    status: OrderStatus::Placed,
                    at: at(0)
                },
                StatusChange {
                    status: OrderStatus::Accepted,
                    at: at(1)
                },
                StatusChange {
                    status: OrderStatus::InPreparation,
                    at: at(2)
                },
            ]
        );
        assert_eq!(Order::default().status(), None);
        assert!(Order::default().lines().is_empty());
    }

    #[test]
    fn events_are_externally_tagged_with_camel_case_fields() {
        let json = serde_json::to_value(placed()).expect("an event serializes");
        assert_eq!(json["OrderPlaced"]["placedAt"], "2025-01-15T12:00:00Z");
        assert_eq!(json["OrderPlaced"]["total"]["amount"], 3300);
        assert_eq!(
            json["OrderPlaced"]["lines"][0]["unitPrice"]["currency"],
            "EUR"
        );
        let back: OrderEvent = serde_json::from_value(json).expect("an event deserializes");
        assert_eq!(back, placed());

        let cancelled =
            serde_json::to_value(cancelled_by(customer(CUSTOMER))).expect("an event serializes");
        assert_eq!(cancelled["OrderCancelled"]["by"]["kind"], "user");
        assert_eq!(
            serde_json::to_value(OrderStatus::InPreparation).expect("a status serializes"),
            "in_preparation"
        );
    }

    #[test]
    fn events_name_their_type_version_and_subject() {
        let event = OrderEvent::OrderInPreparation { at: at(2) };
        assert_eq!(event.event_type(), "OrderInPreparation");
        assert_eq!(event.event_version(), "1.0");
        assert_eq!(event.subject_suffix(), "in_preparation");
        assert_eq!(event.occurred_at(), at(2));
        assert_eq!(placed().subject_suffix(), "placed");
        assert_eq!(placed().event_type(), "OrderPlaced");
    }

    #[test]
    fn error_codes_are_stable() {
        assert_eq!(
            OrderError::TooLateToCancel.code(),
            "order-too-late-to-cancel"
        );
        assert_eq!(OrderError::NotYourOrder.code(), "order-not-yours");
        assert_eq!(
            OrderError::InvalidAddress(AddressError::LatitudeOutOfRange).to_string(),
            "invalid delivery address: address latitude must be between -90 and 90"
        );
    }
}

#[cfg(test)]
mod properties {
    //! Whatever commands arrive, in whatever order, the order stays on its state machine and
    //! its total stays the sum of its lines.

    use cqrs_es::event_sink::EventSink;
    use cqrs_es::Aggregate;
    use proptest::prelude::*;

    use super::*;
    use crate::ordering::AllergyCheck;
    use crate::test_support::at;

    const CUSTOMER: Uuid = Uuid::from_u128(2);

    fn arb_line() -> impl Strategy<Value = OrderLine> {
        (0..=5_000i64, 0..=55u32, prop::bool::weighted(0.1)).prop_map(
            |(price, quantity, foreign)| OrderLine {
                dish_id: Uuid::from_u128(u128::from(quantity)),
                name: "Dish".into(),
                unit_price: Money::new(price, if foreign { "USD" } else { "EUR" }),
                quantity,
                note: None,
                options: Vec::new(),
            },
        )
    }

    fn arb_actor() -> impl Strategy<Value = Actor> {
        prop_oneof![
            Just(Actor::System),
            Just(Actor::user(CUSTOMER, Role::Customer)),
            Just(Actor::user(Uuid::from_u128(9), Role::Customer)),
            Just(Actor::user(Uuid::from_u128(8), Role::Manager)),
            Just(Actor::user(Uuid::from_u128(7), Role::Chef)),
        ]
    }

    fn arb_command() -> impl Strategy<Value = OrderCommand> {
        let when = (0..60u32).prop_map(at);
        prop_oneof![
            (prop::collection::vec(arb_line(), 0..6), when.clone()).prop_map(|(lines, at)| {
                OrderCommand::Place {
                    order_id: Uuid::from_u128(1),
                    customer_id: CUSTOMER,
                    lines,
                    delivery_address: Address {
                        street: "1 Main St".into(),
                        city: "Lyon".into(),
                        postal_code: "69001".into(),
                        lat: None,
                        lon: None,
                    },
                    contact_phone: None,
                    allergy: AllergyCheck::default(),
                    scheduled_for: None,
                    at,
                }
            }),
            when.clone().prop_map(|at| OrderCommand::Accept { at }),
            when.clone()
                .prop_map(|at| OrderCommand::StartPreparation { at }),
            when.clone().prop_map(|at| OrderCommand::MarkReady { at }),
            when.clone()
                .prop_map(|at| OrderCommand::MarkOutForDelivery { at }),
            when.clone()
                .prop_map(|at| OrderCommand::MarkDelivered { at }),
            when.clone().prop_map(|at| OrderCommand::Reject {
                reason: "no".into(),
                at
            }),
            (arb_actor(), when).prop_map(|(by, at)| OrderCommand::Cancel {
                by,
                reason: None,
                at
            }),
        ]
    }

    /// The state machine, written out independently of the aggregate's code.
    fn allowed(from: OrderStatus, to: OrderStatus) -> bool {
        use OrderStatus::*;
        let forward = [
            Placed,
            Accepted,
            InPreparation,
            Ready,
            OutForDelivery,
            Delivered,
        ];
        let rank = |s| forward.iter().position(|f| *f == s);
        match to {
            Cancelled => !matches!(from, Delivered | Cancelled | Rejected),
            Rejected => matches!(from, Placed | Accepted | InPreparation),
            _ => matches!((rank(from), rank(to)), (Some(a), Some(b)) if a < b),
        }
    }

    proptest! {
        #[test]
        fn any_command_sequence_keeps_the_order_consistent(
            commands in prop::collection::vec(arb_command(), 0..25)
        ) {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .build()
                .expect("a current-thread runtime builds");
            let mut order = Order::default();
            let mut recorded = Vec::new();
            for command in commands {
                let sink = EventSink::default();
                if runtime.block_on(order.handle(command, &(), &sink)).is_ok() {
                    recorded.extend(runtime.block_on(sink.collect()));
                }
            }

            let mut reloaded = Order::default();
            for event in recorded {
                reloaded.apply(event);
            }
            prop_assert_eq!(&reloaded, &order);

            let Some(status) = order.status() else {
                prop_assert!(order.history().is_empty());
                return Ok(());
            };
            let history = order.history();
            prop_assert_eq!(history[0].status, OrderStatus::Placed);
            prop_assert_eq!(history.last().map(|h| h.status), Some(status));
            for pair in history.windows(2) {
                prop_assert!(
                    allowed(pair[0].status, pair[1].status),
                    "{} -> {} is not a transition", pair[0].status, pair[1].status
                );
            }

            let sum = order
                .lines()
                .iter()
                .map(|line| line.unit_price.amount * i64::from(line.quantity))
                .sum::<i64>();
            prop_assert_eq!(order.total().map(|t| t.amount), Some(sum));
            prop_assert!(order.lines().iter().all(|l| l.unit_price.currency == "EUR")
                || order.lines().iter().all(|l| l.unit_price.currency == "USD"));
        }
    }
}
