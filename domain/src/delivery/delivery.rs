//! The `Delivery` aggregate: getting one order from the kitchen's pass to the customer's door.
//!
//! `requested → ready_for_pickup → assigned → picked_up → delivered`, or `failed` (by the
//! courier, once assigned) or `cancelled` (the order was cancelled, before delivery). Dispatch
//! may also send a courier *ahead* of readiness (`requested → assigned`) when the kitchen
//! expects the food ready by the time they arrive; the food is then ready while assigned, and
//! is picked up only once ready. While picked up, the courier's route is sampled into the
//! delivery (`DeliveryRouteRecorded`). Until
//! pickup a delivery may be reassigned: the previous courier is unassigned first, so every
//! courier's workload can be followed from events alone. Commands issued by subscriptions
//! (`Request`, `MarkReadyForPickup`, `Cancel`) are idempotent; a courier's own commands are
//! checked against the courier the delivery is assigned to.

use std::fmt;

use chrono::{DateTime, Utc};
use cqrs_es::event_sink::EventSink;
use cqrs_es::Aggregate;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{DeliveryCommand, DeliveryError, DeliveryEvent, RoutePoint};
use crate::shared::{char_len, non_blank};
use crate::Address;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    Requested,
    ReadyForPickup,
    Assigned,
    PickedUp,
    Delivered,
    Failed,
    Cancelled,
}

impl DeliveryStatus {
    /// The same spelling as serde uses (`"ready_for_pickup"`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Requested => "requested",
            DeliveryStatus::ReadyForPickup => "ready_for_pickup",
            DeliveryStatus::Assigned => "assigned",
            DeliveryStatus::PickedUp => "picked_up",
            DeliveryStatus::Delivered => "delivered",
            DeliveryStatus::Failed => "failed",
            DeliveryStatus::Cancelled => "cancelled",
        }
    }

    /// Delivered, failed or cancelled: nothing more will happen.
    pub fn is_finished(self) -> bool {
        matches!(
            self,
            DeliveryStatus::Delivered | DeliveryStatus::Failed | DeliveryStatus::Cancelled
        )
    }
}

impl fmt::Display for DeliveryStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The delivery of one order. `Delivery::default()` is a delivery not requested yet.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Delivery {
    requested: Option<RequestedDelivery>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RequestedDelivery {
    order_id: Uuid,
    customer_id: Uuid,
    address: Address,
    contact_phone: Option<String>,
    status: DeliveryStatus,
    courier_id: Option<Uuid>,
    requested_at: DateTime<Utc>,
    ready_at: Option<DateTime<Utc>>,
    assigned_at: Option<DateTime<Utc>>,
    picked_up_at: Option<DateTime<Utc>>,
    finished_at: Option<DateTime<Utc>>,
    /// The sampled route, as recorded so far.
    #[serde(default)]
    route: Vec<RoutePoint>,
}

impl Delivery {
    pub const MAX_REASON_CHARS: usize = 500;
    pub const MAX_NOTE_CHARS: usize = 500;
    pub const MAX_RECEIVED_BY_CHARS: usize = 80;

    pub fn is_requested(&self) -> bool {
        self.requested.is_some()
    }

    pub fn order_id(&self) -> Option<Uuid> {
        self.requested.as_ref().map(|d| d.order_id)
    }

    pub fn status(&self) -> Option<DeliveryStatus> {
        self.requested.as_ref().map(|d| d.status)
    }

    /// The courier assigned now (or, once finished, the last one assigned).
    pub fn courier_id(&self) -> Option<Uuid> {
        self.requested.as_ref().and_then(|d| d.courier_id)
    }

    pub fn customer_id(&self) -> Option<Uuid> {
        self.requested.as_ref().map(|d| d.customer_id)
    }

    pub fn address(&self) -> Option<&Address> {
        self.requested.as_ref().map(|d| &d.address)
    }

    pub fn contact_phone(&self) -> Option<&str> {
        self.requested
            .as_ref()
            .and_then(|d| d.contact_phone.as_deref())
    }

    pub fn requested_at(&self) -> Option<DateTime<Utc>> {
        self.requested.as_ref().map(|d| d.requested_at)
    }

    /// When the food became ready for pickup: dispatch serves the oldest first.
    pub fn ready_at(&self) -> Option<DateTime<Utc>> {
        self.requested.as_ref().and_then(|d| d.ready_at)
    }

    /// When the current courier was assigned.
    pub fn assigned_at(&self) -> Option<DateTime<Utc>> {
        self.requested.as_ref().and_then(|d| d.assigned_at)
    }

    pub fn picked_up_at(&self) -> Option<DateTime<Utc>> {
        self.requested.as_ref().and_then(|d| d.picked_up_at)
    }

    /// When it was delivered, failed or cancelled.
    pub fn finished_at(&self) -> Option<DateTime<Utc>> {
        self.requested.as_ref().and_then(|d| d.finished_at)
    }

    /// The courier's sampled route with the food, oldest point first.
    pub fn route(&self) -> &[RoutePoint] {
        self.requested.as_ref().map_or(&[], |d| d.route.as_slice())
    }

    fn decide(&self, command: DeliveryCommand) -> Result<Vec<DeliveryEvent>, DeliveryError> {
        match command {
            DeliveryCommand::Request {
                order_id,
                customer_id,
                address,
                contact_phone,
                at,
            } => {
                if self.is_requested() {
                    return Ok(Vec::new());
                }
                address.validate().map_err(DeliveryError::InvalidAddress)?;
                Ok(vec![DeliveryEvent::DeliveryRequested {
                    order_id,
                    customer_id,
                    address,
                    contact_phone,
                    at,
                }])
            }
            DeliveryCommand::MarkReadyForPickup { at } => {
                let delivery = self.existing()?;
                // A courier sent ahead is waiting for the food: it is ready all the same.
                let waiting = delivery.status == DeliveryStatus::Requested
                    || (delivery.status == DeliveryStatus::Assigned && delivery.ready_at.is_none());
                if waiting {
                    Ok(vec![DeliveryEvent::DeliveryReadyForPickup { at }])
                } else {
                    Ok(Vec::new())
                }
            }
            DeliveryCommand::AssignAhead { courier_id, at } => {
                let delivery = self.existing()?;
                if delivery.status == DeliveryStatus::Requested {
                    return Ok(vec![DeliveryEvent::CourierAssigned { courier_id, at }]);
                }
                self.decide(DeliveryCommand::Assign { courier_id, at })
            }
            DeliveryCommand::RecordRoute {
                courier_id,
                points,
                at,
            } => {
                let delivery = self.existing()?;
                delivery.check_courier(
                    "record the route of",
                    &[DeliveryStatus::PickedUp],
                    courier_id,
                )?;
                let mut after = delivery
                    .route
                    .last()
                    .map(|p| p.at)
                    .or(delivery.picked_up_at)
                    .unwrap_or(delivery.requested_at);
                let mut points: Vec<RoutePoint> =
                    points.into_iter().filter(RoutePoint::is_valid).collect();
                points.sort_by_key(|p| p.at);
                let mut new = Vec::with_capacity(points.len());
                for point in points {
                    if point.at > after {
                        after = point.at;
                        new.push(point);
                    }
                }
                if new.is_empty() {
                    return Ok(Vec::new());
                }
                Ok(vec![DeliveryEvent::DeliveryRouteRecorded {
                    courier_id,
                    points: new,
                    at,
                }])
            }
            DeliveryCommand::Assign { courier_id, at } => {
                let delivery = self.existing()?;
                match (delivery.status, delivery.courier_id) {
                    (DeliveryStatus::Requested, _) => Err(DeliveryError::NotReadyForPickup),
                    (DeliveryStatus::ReadyForPickup, _) => {
                        Ok(vec![DeliveryEvent::CourierAssigned { courier_id, at }])
                    }
                    (DeliveryStatus::Assigned, Some(current)) if current == courier_id => {
                        Ok(Vec::new())
                    }
                    (DeliveryStatus::Assigned, previous) => {
                        // After `CourierUnassigned` the delivery is ready for pickup again,
                        // which is what lets the new `CourierAssigned` follow.
                        let mut events = Vec::with_capacity(2);
                        if let Some(previous) = previous {
                            events.push(DeliveryEvent::CourierUnassigned {
                                courier_id: previous,
                                at,
                            });
                        }
                        events.push(DeliveryEvent::CourierAssigned { courier_id, at });
                        Ok(events)
                    }
                    (status, _) => Err(DeliveryError::WrongStatus {
                        action: "assign",
                        status,
                    }),
                }
            }
            DeliveryCommand::Decline { courier_id, at } => {
                self.existing()?.check_courier(
                    "decline",
                    &[DeliveryStatus::Assigned],
                    courier_id,
                )?;
                Ok(vec![DeliveryEvent::CourierUnassigned { courier_id, at }])
            }
            DeliveryCommand::PickUp { courier_id, at } => {
                let delivery = self.existing()?;
                delivery.check_courier("pick up", &[DeliveryStatus::Assigned], courier_id)?;
                // A courier sent ahead of readiness waits for the kitchen.
                if delivery.ready_at.is_none() {
                    return Err(DeliveryError::NotReadyForPickup);
                }
                Ok(vec![DeliveryEvent::DeliveryPickedUp { courier_id, at }])
            }
            DeliveryCommand::Deliver {
                courier_id,
                received_by,
                note,
                at,
            } => {
                self.existing()?.check_courier(
                    "deliver",
                    &[DeliveryStatus::PickedUp],
                    courier_id,
                )?;
                let received_by = non_blank(received_by);
                check_length(
                    "receivedBy",
                    received_by.as_deref(),
                    Self::MAX_RECEIVED_BY_CHARS,
                )?;
                let note = non_blank(note);
                check_length("note", note.as_deref(), Self::MAX_NOTE_CHARS)?;
                Ok(vec![DeliveryEvent::DeliveryDelivered {
                    courier_id,
                    received_by,
                    note,
                    at,
                }])
            }
            DeliveryCommand::Fail {
                courier_id,
                reason,
                at,
            } => {
                self.existing()?.check_courier(
                    "fail",
                    &[DeliveryStatus::Assigned, DeliveryStatus::PickedUp],
                    courier_id,
                )?;
                let reason = non_blank(Some(reason)).ok_or(DeliveryError::ReasonRequired)?;
                if char_len(&reason) > Self::MAX_REASON_CHARS {
                    return Err(DeliveryError::TooLong {
                        field: "reason",
                        max: Self::MAX_REASON_CHARS,
                    });
                }
                Ok(vec![DeliveryEvent::DeliveryFailed {
                    courier_id,
                    reason,
                    at,
                }])
            }
            DeliveryCommand::Cancel { at } => {
                let delivery = self.existing()?;
                if delivery.status.is_finished() {
                    return Ok(Vec::new());
                }
                Ok(vec![DeliveryEvent::DeliveryCancelled {
                    courier_id: delivery.courier_id,
                    at,
                }])
            }
        }
    }

    fn existing(&self) -> Result<&RequestedDelivery, DeliveryError> {
        self.requested
            .as_ref()
            .ok_or(DeliveryError::DeliveryNotFound)
    }

    fn evolve(&mut self, change: impl FnOnce(&mut RequestedDelivery)) {
        if let Some(delivery) = &mut self.requested {
            change(delivery);
        }
    }
}

impl RequestedDelivery {
    /// A courier's command needs the delivery in one of `statuses` and assigned to them.
    fn check_courier(
        &self,
        action: &'static str,
        statuses: &[DeliveryStatus],
        courier_id: Uuid,
    ) -> Result<(), DeliveryError> {
        if !statuses.contains(&self.status) {
            return Err(DeliveryError::WrongStatus {
                action,
                status: self.status,
            });
        }
        if self.courier_id != Some(courier_id) {
            return Err(DeliveryError::NotYourDelivery);
        }
        Ok(())
    }
}

fn check_length(field: &'static str, value: Option<&str>, max: usize) -> Result<(), DeliveryError> {
    match value {
        Some(text) if char_len(text) > max => Err(DeliveryError::TooLong { field, max }),
        _ => Ok(()),
    }
}

impl Aggregate for Delivery {
    const TYPE: &'static str = "delivery";
    type Command = DeliveryCommand;
    type Event = DeliveryEvent;
    type Error = DeliveryError;
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
            DeliveryEvent::DeliveryRequested {
                order_id,
                customer_id,
                address,
                contact_phone,
                at,
            } => {
                self.requested = Some(RequestedDelivery {
                    order_id,
                    customer_id,
                    address,
                    contact_phone,
                    status: DeliveryStatus::Requested,
                    courier_id: None,
                    requested_at: at,
                    ready_at: None,
                    assigned_at: None,
                    picked_up_at: None,
                    finished_at: None,
                    route: Vec::new(),
                });
            }
            DeliveryEvent::DeliveryReadyForPickup { at } => self.evolve(|d| {
                if d.status == DeliveryStatus::Requested {
                    d.status = DeliveryStatus::ReadyForPickup;
                }
                d.ready_at = Some(at);
            }),
            DeliveryEvent::CourierAssigned { courier_id, at } => self.evolve(|d| {
                d.status = DeliveryStatus::Assigned;
                d.courier_id = Some(courier_id);
                d.assigned_at = Some(at);
            }),
            DeliveryEvent::CourierUnassigned { .. } => self.evolve(|d| {
                // A courier sent ahead and unassigned leaves the food still cooking.
                d.status = if d.ready_at.is_some() {
                    DeliveryStatus::ReadyForPickup
                } else {
                    DeliveryStatus::Requested
                };
                d.courier_id = None;
                d.assigned_at = None;
            }),
            DeliveryEvent::DeliveryPickedUp { courier_id, at } => self.evolve(|d| {
                d.status = DeliveryStatus::PickedUp;
                d.courier_id = Some(courier_id);
                d.picked_up_at = Some(at);
            }),
            DeliveryEvent::DeliveryDelivered { at, .. } => self.evolve(|d| {
                d.status = DeliveryStatus::Delivered;
                d.finished_at = Some(at);
            }),
            DeliveryEvent::DeliveryFailed { at, .. } => self.evolve(|d| {
                d.status = DeliveryStatus::Failed;
                d.finished_at = Some(at);
            }),
            DeliveryEvent::DeliveryCancelled { at, .. } => self.evolve(|d| {
                d.status = DeliveryStatus::Cancelled;
                d.finished_at = Some(at);
            }),
            DeliveryEvent::DeliveryRouteRecorded { points, .. } => {
                self.evolve(|d| d.route.extend(points));
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
    use crate::AddressError;

    type DeliveryTest = TestFramework<Delivery>;

    const ORDER: Uuid = Uuid::from_u128(1);
    const CUSTOMER: Uuid = Uuid::from_u128(2);
    const ALICE: Uuid = Uuid::from_u128(20);
    const BOB: Uuid = Uuid::from_u128(21);

    fn address() -> Address {
        Address {
            street: "1 Rue de la Paix".into(),
            city: "Paris".into(),
            postal_code: "75002".into(),
            lat: Some(48.87),
            lon: Some(2.33),
        }
    }

    fn request() -> DeliveryCommand {
        DeliveryCommand::Request {
            order_id: ORDER,
            customer_id: CUSTOMER,
            address: address(),
            contact_phone: Some("+33 1 23 45 67 89".into()),
            at: at(0),
        }
    }

    fn requested() -> DeliveryEvent {
        DeliveryEvent::DeliveryRequested {
            order_id: ORDER,
            customer_id: CUSTOMER,
            address: address(),
            contact_phone: Some("+33 1 23 45 67 89".into()),
            at: at(0),
        }
    }

    fn ready() -> DeliveryEvent {
        DeliveryEvent::DeliveryReadyForPickup { at: at(10) }
    }

    fn assigned(courier_id: Uuid) -> DeliveryEvent {
        DeliveryEvent::CourierAssigned {
            courier_id,
            at: at(11),
        }
    }

    fn picked_up(courier_id: Uuid) -> DeliveryEvent {
        DeliveryEvent::DeliveryPickedUp {
            courier_id,
            at: at(15),
        }
    }

    fn delivered(courier_id: Uuid) -> DeliveryEvent {
        DeliveryEvent::DeliveryDelivered {
            courier_id,
            received_by: Some("Claire".into()),
            note: None,
            at: at(30),
        }
    }

    fn deliver(courier_id: Uuid) -> DeliveryCommand {
        DeliveryCommand::Deliver {
            courier_id,
            received_by: Some(" Claire ".into()),
            note: Some(" ".into()),
            at: at(30),
        }
    }

    fn fail(courier_id: Uuid, reason: &str) -> DeliveryCommand {
        DeliveryCommand::Fail {
            courier_id,
            reason: reason.into(),
            at: at(25),
        }
    }

    fn failed(courier_id: Uuid) -> DeliveryEvent {
        DeliveryEvent::DeliveryFailed {
            courier_id,
            reason: "nobody home".into(),
            at: at(25),
        }
    }

    fn cancelled(courier_id: Option<Uuid>) -> DeliveryEvent {
        DeliveryEvent::DeliveryCancelled {
            courier_id,
            at: at(12),
        }
    }

    fn assign(courier_id: Uuid) -> DeliveryCommand {
        DeliveryCommand::Assign {
            courier_id,
            at: at(11),
        }
    }

    // --- request and readiness ------------------------------------------------------------

    #[test]
    fn a_placed_order_requests_a_delivery() {
        DeliveryTest::with(())
            .given_no_previous_events()
            .when(request())
            .then_expect_events(vec![requested()]);
    }

    #[test]
    fn requesting_a_delivery_twice_changes_nothing() {
        DeliveryTest::with(())
            .given(vec![requested(), ready()])
            .when(request())
            .then_expect_events(vec![]);
    }

    #[test]
    fn a_delivery_needs_a_valid_address() {
        let DeliveryCommand::Request {
            order_id,
            customer_id,
            contact_phone,
            at,
            ..
        } = request()
        else {
            panic!("request() is a Request");
        };
        DeliveryTest::with(())
            .given_no_previous_events()
            .when(DeliveryCommand::Request {
                order_id,
                customer_id,
                address: Address {
                    street: " ".into(),
                    ..address()
                },
                contact_phone,
                at,
            })
            .then_expect_error(DeliveryError::InvalidAddress(AddressError::Missing {
                field: "street",
            }));
    }

    #[test]
    fn a_finished_ticket_makes_the_delivery_ready_for_pickup() {
        DeliveryTest::with(())
            .given(vec![requested()])
            .when(DeliveryCommand::MarkReadyForPickup { at: at(10) })
            .then_expect_events(vec![ready()]);
    }

    #[test]
    fn a_late_or_repeated_ready_for_pickup_changes_nothing() {
        for later in [
            vec![ready()],
            vec![ready(), assigned(ALICE)],
            vec![ready(), assigned(ALICE), picked_up(ALICE)],
            vec![cancelled(None)],
        ] {
            let mut given = vec![requested()];
            given.extend(later);
            DeliveryTest::with(())
                .given(given)
                .when(DeliveryCommand::MarkReadyForPickup { at: at(20) })
                .then_expect_events(vec![]);
        }
    }

    #[test]
    fn commands_on_an_unrequested_delivery_are_refused() {
        for command in [
            DeliveryCommand::MarkReadyForPickup { at: at(10) },
            assign(ALICE),
            DeliveryCommand::PickUp {
                courier_id: ALICE,
                at: at(15),
            },
            deliver(ALICE),
            fail(ALICE, "nobody home"),
            DeliveryCommand::Cancel { at: at(12) },
        ] {
            DeliveryTest::with(())
                .given_no_previous_events()
                .when(command)
                .then_expect_error(DeliveryError::DeliveryNotFound);
        }
    }

    // --- assignment -----------------------------------------------------------------------

    #[test]
    fn dispatch_assigns_a_courier_to_a_delivery_ready_for_pickup() {
        DeliveryTest::with(())
            .given(vec![requested(), ready()])
            .when(assign(ALICE))
            .then_expect_events(vec![assigned(ALICE)]);
    }

    #[test]
    fn a_delivery_cannot_be_assigned_before_the_food_is_ready() {
        DeliveryTest::with(())
            .given(vec![requested()])
            .when(assign(ALICE))
            .then_expect_error(DeliveryError::NotReadyForPickup);
    }

    #[test]
    fn reassigning_unassigns_the_previous_courier_first() {
        DeliveryTest::with(())
            .given(vec![requested(), ready(), assigned(ALICE)])
            .when(assign(BOB))
            .then_expect_events(vec![
                DeliveryEvent::CourierUnassigned {
                    courier_id: ALICE,
                    at: at(11),
                },
                assigned(BOB),
            ]);
    }

    #[test]
    fn assigning_the_same_courier_again_changes_nothing() {
        DeliveryTest::with(())
            .given(vec![requested(), ready(), assigned(ALICE)])
            .when(assign(ALICE))
            .then_expect_events(vec![]);
    }

    #[test]
    fn a_picked_up_or_finished_delivery_cannot_be_assigned() {
        for (later, status) in [
            (vec![picked_up(ALICE)], DeliveryStatus::PickedUp),
            (
                vec![picked_up(ALICE), delivered(ALICE)],
                DeliveryStatus::Delivered,
            ),
            (vec![failed(ALICE)], DeliveryStatus::Failed),
            (vec![cancelled(Some(ALICE))], DeliveryStatus::Cancelled),
        ] {
            let mut given = vec![requested(), ready(), assigned(ALICE)];
            given.extend(later);
            DeliveryTest::with(())
                .given(given)
                .when(assign(BOB))
                .then_expect_error(DeliveryError::WrongStatus {
                    action: "assign",
                    status,
                });
        }
    }

    // --- the courier's journey ------------------------------------------------------------

    #[test]
    fn the_assigned_courier_picks_up_the_food() {
        DeliveryTest::with(())
            .given(vec![requested(), ready(), assigned(ALICE)])
            .when(DeliveryCommand::PickUp {
                courier_id: ALICE,
                at: at(15),
            })
            .then_expect_events(vec![picked_up(ALICE)]);
    }

    #[test]
    fn another_courier_cannot_pick_up_the_food() {
        DeliveryTest::with(())
            .given(vec![requested(), ready(), assigned(ALICE)])
            .when(DeliveryCommand::PickUp {
                courier_id: BOB,
                at: at(15),
            })
            .then_expect_error(DeliveryError::NotYourDelivery);
    }

    #[test]
    fn food_cannot_be_picked_up_before_assignment_or_twice() {
        DeliveryTest::with(())
            .given(vec![requested(), ready()])
            .when(DeliveryCommand::PickUp {
                courier_id: ALICE,
                at: at(15),
            })
            .then_expect_error_message("cannot pick up a delivery that is ready_for_pickup");
        DeliveryTest::with(())
            .given(vec![
                requested(),
                ready(),
                assigned(ALICE),
                picked_up(ALICE),
            ])
            .when(DeliveryCommand::PickUp {
                courier_id: ALICE,
                at: at(16),
            })
            .then_expect_error(DeliveryError::WrongStatus {
                action: "pick up",
                status: DeliveryStatus::PickedUp,
            });
    }

    #[test]
    fn the_courier_delivers_what_they_picked_up() {
        DeliveryTest::with(())
            .given(vec![
                requested(),
                ready(),
                assigned(ALICE),
                picked_up(ALICE),
            ])
            .when(deliver(ALICE))
            .then_expect_events(vec![delivered(ALICE)]);
    }

    #[test]
    fn only_the_courier_carrying_the_food_can_deliver_it() {
        DeliveryTest::with(())
            .given(vec![
                requested(),
                ready(),
                assigned(ALICE),
                picked_up(ALICE),
            ])
            .when(deliver(BOB))
            .then_expect_error(DeliveryError::NotYourDelivery);
    }

    #[test]
    fn a_delivery_cannot_be_delivered_twice_or_before_pickup() {
        DeliveryTest::with(())
            .given(vec![
                requested(),
                ready(),
                assigned(ALICE),
                picked_up(ALICE),
                delivered(ALICE),
            ])
            .when(deliver(ALICE))
            .then_expect_error(DeliveryError::WrongStatus {
                action: "deliver",
                status: DeliveryStatus::Delivered,
            });
        DeliveryTest::with(())
            .given(vec![requested(), ready(), assigned(ALICE)])
            .when(deliver(ALICE))
            .then_expect_error(DeliveryError::WrongStatus {
                action: "deliver",
                status: DeliveryStatus::Assigned,
            });
    }

    #[test]
    fn a_handover_note_is_at_most_five_hundred_characters() {
        DeliveryTest::with(())
            .given(vec![
                requested(),
                ready(),
                assigned(ALICE),
                picked_up(ALICE),
            ])
            .when(DeliveryCommand::Deliver {
                courier_id: ALICE,
                received_by: None,
                note: Some("n".repeat(501)),
                at: at(30),
            })
            .then_expect_error(DeliveryError::TooLong {
                field: "note",
                max: 500,
            });
    }

    #[test]
    fn the_courier_may_fail_a_delivery_with_a_reason() {
        for before in [vec![], vec![picked_up(ALICE)]] {
            let mut given = vec![requested(), ready(), assigned(ALICE)];
            given.extend(before);
            DeliveryTest::with(())
                .given(given)
                .when(fail(ALICE, " nobody home "))
                .then_expect_events(vec![failed(ALICE)]);
        }
    }

    #[test]
    fn failing_a_delivery_needs_a_reason_and_the_right_courier() {
        DeliveryTest::with(())
            .given(vec![requested(), ready(), assigned(ALICE)])
            .when(fail(ALICE, "  "))
            .then_expect_error(DeliveryError::ReasonRequired);
        DeliveryTest::with(())
            .given(vec![requested(), ready(), assigned(ALICE)])
            .when(fail(BOB, "nobody home"))
            .then_expect_error(DeliveryError::NotYourDelivery);
        DeliveryTest::with(())
            .given(vec![requested(), ready()])
            .when(fail(ALICE, "nobody home"))
            .then_expect_error(DeliveryError::WrongStatus {
                action: "fail",
                status: DeliveryStatus::ReadyForPickup,
            });
    }

    // --- decline --------------------------------------------------------------------------

    #[test]
    fn the_assigned_courier_declines_before_pickup_and_the_delivery_waits_again() {
        let decline = |courier_id| DeliveryCommand::Decline {
            courier_id,
            at: at(12),
        };
        DeliveryTest::with(())
            .given(vec![requested(), ready(), assigned(ALICE)])
            .when(decline(ALICE))
            .then_expect_events(vec![DeliveryEvent::CourierUnassigned {
                courier_id: ALICE,
                at: at(12),
            }]);
        DeliveryTest::with(())
            .given(vec![requested(), ready(), assigned(ALICE)])
            .when(decline(BOB))
            .then_expect_error(DeliveryError::NotYourDelivery);
        DeliveryTest::with(())
            .given(vec![
                requested(),
                ready(),
                assigned(ALICE),
                picked_up(ALICE),
            ])
            .when(decline(ALICE))
            .then_expect_error(DeliveryError::WrongStatus {
                action: "decline",
                status: DeliveryStatus::PickedUp,
            });
        let (declined, reloaded, _) = handle_then_reload::<Delivery>(
            vec![requested(), ready(), assigned(ALICE)],
            decline(ALICE),
        );
        assert_eq!(declined, reloaded);
        assert_eq!(declined.status(), Some(DeliveryStatus::ReadyForPickup));
        assert_eq!(declined.courier_id(), None);
    }

    // --- dispatch ahead of readiness -------------------------------------------------------

    fn assign_ahead(courier_id: Uuid) -> DeliveryCommand {
        DeliveryCommand::AssignAhead {
            courier_id,
            at: at(8),
        }
    }

    #[test]
    fn a_courier_sent_ahead_is_assigned_before_the_food_is_ready() {
        DeliveryTest::with(())
            .given(vec![requested()])
            .when(assign_ahead(ALICE))
            .then_expect_events(vec![DeliveryEvent::CourierAssigned {
                courier_id: ALICE,
                at: at(8),
            }]);
        // Sent ahead when the food is already ready, it is a plain assignment.
        DeliveryTest::with(())
            .given(vec![requested(), ready()])
            .when(assign_ahead(ALICE))
            .then_expect_events(vec![DeliveryEvent::CourierAssigned {
                courier_id: ALICE,
                at: at(8),
            }]);
    }

    #[test]
    fn a_courier_sent_ahead_picks_up_only_once_the_food_is_ready() {
        let ahead = DeliveryEvent::CourierAssigned {
            courier_id: ALICE,
            at: at(8),
        };
        let pick_up = DeliveryCommand::PickUp {
            courier_id: ALICE,
            at: at(15),
        };
        DeliveryTest::with(())
            .given(vec![requested(), ahead.clone()])
            .when(pick_up.clone())
            .then_expect_error(DeliveryError::NotReadyForPickup);
        DeliveryTest::with(())
            .given(vec![requested(), ahead.clone()])
            .when(DeliveryCommand::MarkReadyForPickup { at: at(10) })
            .then_expect_events(vec![ready()]);
        DeliveryTest::with(())
            .given(vec![requested(), ahead.clone(), ready()])
            .when(pick_up)
            .then_expect_events(vec![picked_up(ALICE)]);
        let (delivery, reloaded, _) = handle_then_reload::<Delivery>(
            vec![requested(), ahead],
            DeliveryCommand::MarkReadyForPickup { at: at(10) },
        );
        assert_eq!(delivery, reloaded);
        assert_eq!(delivery.status(), Some(DeliveryStatus::Assigned));
        assert_eq!(delivery.ready_at(), Some(at(10)));
    }

    #[test]
    fn a_courier_sent_ahead_who_declines_leaves_the_food_cooking() {
        let (declined, _, _) = handle_then_reload::<Delivery>(
            vec![
                requested(),
                DeliveryEvent::CourierAssigned {
                    courier_id: ALICE,
                    at: at(8),
                },
            ],
            DeliveryCommand::Decline {
                courier_id: ALICE,
                at: at(9),
            },
        );
        assert_eq!(declined.status(), Some(DeliveryStatus::Requested));
    }

    // --- the route ----------------------------------------------------------------------

    fn point(minute: u32, second: i64) -> RoutePoint {
        RoutePoint {
            lat: 48.86,
            lon: 2.34,
            at: at(minute) + chrono::Duration::seconds(second),
        }
    }

    fn record(points: Vec<RoutePoint>) -> DeliveryCommand {
        DeliveryCommand::RecordRoute {
            courier_id: ALICE,
            points,
            at: at(20),
        }
    }

    #[test]
    fn the_route_of_the_food_is_recorded_while_it_is_carried() {
        let carried = vec![requested(), ready(), assigned(ALICE), picked_up(ALICE)];
        DeliveryTest::with(())
            .given(carried.clone())
            .when(record(vec![point(16, 30), point(16, 0)]))
            .then_expect_events(vec![DeliveryEvent::DeliveryRouteRecorded {
                courier_id: ALICE,
                points: vec![point(16, 0), point(16, 30)],
                at: at(20),
            }]);
        // Points already recorded, or from before pickup, are left out: a batch recorded
        // twice changes nothing.
        let mut recorded = carried.clone();
        recorded.push(DeliveryEvent::DeliveryRouteRecorded {
            courier_id: ALICE,
            points: vec![point(16, 0)],
            at: at(17),
        });
        DeliveryTest::with(())
            .given(recorded.clone())
            .when(record(vec![point(14, 0), point(16, 0)]))
            .then_expect_events(vec![]);
        let (delivery, reloaded, _) =
            handle_then_reload::<Delivery>(recorded, record(vec![point(16, 0), point(17, 0)]));
        assert_eq!(delivery, reloaded);
        assert_eq!(delivery.route(), [point(16, 0), point(17, 0)]);
    }

    #[test]
    fn only_the_courier_carrying_the_food_records_its_route() {
        DeliveryTest::with(())
            .given(vec![requested(), ready(), assigned(ALICE)])
            .when(record(vec![point(16, 0)]))
            .then_expect_error(DeliveryError::WrongStatus {
                action: "record the route of",
                status: DeliveryStatus::Assigned,
            });
        DeliveryTest::with(())
            .given(vec![requested(), ready(), assigned(BOB), picked_up(BOB)])
            .when(record(vec![point(16, 0)]))
            .then_expect_error(DeliveryError::NotYourDelivery);
    }

    // --- cancellation ---------------------------------------------------------------------

    #[test]
    fn a_cancelled_order_cancels_its_delivery_and_frees_the_courier() {
        DeliveryTest::with(())
            .given(vec![requested()])
            .when(DeliveryCommand::Cancel { at: at(12) })
            .then_expect_events(vec![cancelled(None)]);
        DeliveryTest::with(())
            .given(vec![
                requested(),
                ready(),
                assigned(ALICE),
                picked_up(ALICE),
            ])
            .when(DeliveryCommand::Cancel { at: at(12) })
            .then_expect_events(vec![cancelled(Some(ALICE))]);
    }

    #[test]
    fn cancelling_a_finished_delivery_changes_nothing() {
        for finished in [
            vec![assigned(ALICE), picked_up(ALICE), delivered(ALICE)],
            vec![assigned(ALICE), failed(ALICE)],
            vec![cancelled(None)],
        ] {
            let mut given = vec![requested(), ready()];
            given.extend(finished);
            DeliveryTest::with(())
                .given(given)
                .when(DeliveryCommand::Cancel { at: at(40) })
                .then_expect_events(vec![]);
        }
    }

    // --- state, reload, serialization ----------------------------------------------------

    #[test]
    fn the_state_after_handling_equals_the_state_reloaded_from_events() {
        let (handled, reloaded, emitted) = handle_then_reload::<Delivery>(
            vec![requested(), ready(), assigned(ALICE)],
            assign(BOB),
        );
        assert_eq!(emitted.len(), 2);
        assert_eq!(handled, reloaded);
        assert_eq!(handled.courier_id(), Some(BOB));
        assert_eq!(handled.status(), Some(DeliveryStatus::Assigned));
    }

    #[test]
    fn getters_expose_the_delivery() {
        let (delivery, _, _) = handle_then_reload::<Delivery>(
            vec![requested(), ready(), assigned(ALICE)],
            DeliveryCommand::PickUp {
                courier_id: ALICE,
                at: at(15),
            },
        );
        assert_eq!(delivery.order_id(), Some(ORDER));
        assert_eq!(delivery.customer_id(), Some(CUSTOMER));
        assert_eq!(delivery.address(), Some(&address()));
        assert_eq!(delivery.contact_phone(), Some("+33 1 23 45 67 89"));
        assert_eq!(delivery.requested_at(), Some(at(0)));
        assert_eq!(delivery.ready_at(), Some(at(10)));
        assert_eq!(delivery.assigned_at(), Some(at(11)));
        assert_eq!(delivery.picked_up_at(), Some(at(15)));
        assert_eq!(delivery.finished_at(), None);
        assert_eq!(delivery.status(), Some(DeliveryStatus::PickedUp));
        assert_eq!(Delivery::default().status(), None);
    }

    #[test]
    fn delivery_events_name_their_type_and_subject() {
        assert_eq!(requested().event_type(), "DeliveryRequested");
        assert_eq!(requested().subject_suffix(), "requested");
        assert_eq!(assigned(ALICE).event_type(), "CourierAssigned");
        assert_eq!(assigned(ALICE).subject_suffix(), "courier_assigned");
        assert_eq!(ready().subject_suffix(), "ready_for_pickup");
        assert_eq!(picked_up(ALICE).subject_suffix(), "picked_up");
        let json = serde_json::to_value(assigned(ALICE)).expect("an event serializes");
        assert_eq!(json["CourierAssigned"]["courierId"], ALICE.to_string());
        assert_eq!(
            serde_json::to_value(DeliveryStatus::ReadyForPickup).expect("a status serializes"),
            "ready_for_pickup"
        );
        assert_eq!(
            DeliveryError::NotReadyForPickup.code(),
            "delivery-not-ready-for-pickup"
        );
    }
}
