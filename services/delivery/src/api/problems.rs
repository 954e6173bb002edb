//! How the delivery context's refusals read over HTTP, and the aggregates as answers.

use brigade_domain::delivery::{Courier, CourierError, Delivery, DeliveryError, DeliveryStatus};
use brigade_platform::Problem;
use brigade_projections::couriers::CourierView;
use brigade_projections::live_deliveries::{CourierSummary, DeliveryState, LiveDelivery};
use uuid::Uuid;

/// The problem for a delivery command the aggregate refused.
#[must_use]
pub fn delivery_problem(error: DeliveryError) -> Problem {
    let detail = error.to_string();
    let code = error.code();
    match error {
        DeliveryError::DeliveryNotFound => Problem::not_found(code, detail),
        DeliveryError::InvalidAddress(_) => {
            Problem::unprocessable(code, detail).with_field("address")
        }
        DeliveryError::ReasonRequired => Problem::unprocessable(code, detail).with_field("reason"),
        DeliveryError::TooLong { field, .. } => {
            Problem::unprocessable(code, detail).with_field(field)
        }
        // Only reached when a manager reassigned the delivery between the caller's check and
        // the command: the caller did see it as theirs a moment ago.
        DeliveryError::NotYourDelivery => {
            Problem::new(poem::http::StatusCode::FORBIDDEN, code, detail)
        }
        DeliveryError::NotReadyForPickup | DeliveryError::WrongStatus { .. } => {
            Problem::conflict(code, detail)
        }
    }
}

/// The problem for a courier command the aggregate refused.
#[must_use]
pub fn courier_problem(error: CourierError) -> Problem {
    let detail = error.to_string();
    let code = error.code();
    match error {
        CourierError::CourierNotFound => Problem::not_found(code, detail),
        CourierError::CourierAlreadyExists => {
            Problem::conflict(code, detail).with_field("accountId")
        }
        CourierError::Blank { field } | CourierError::TooLong { field, .. } => {
            Problem::unprocessable(code, detail).with_field(field)
        }
        CourierError::CourierInactive => Problem::conflict(code, detail),
    }
}

/// The status as the read model spells it.
#[must_use]
pub fn state(status: DeliveryStatus) -> DeliveryState {
    match status {
        DeliveryStatus::Requested => DeliveryState::Requested,
        DeliveryStatus::ReadyForPickup => DeliveryState::ReadyForPickup,
        DeliveryStatus::Assigned => DeliveryState::Assigned,
        DeliveryStatus::PickedUp => DeliveryState::PickedUp,
        DeliveryStatus::Delivered => DeliveryState::Delivered,
        DeliveryStatus::Failed => DeliveryState::Failed,
        DeliveryStatus::Cancelled => DeliveryState::Cancelled,
    }
}

/// The delivery as it stands in the aggregate, shaped like the read model (which may lag a
/// few milliseconds behind a command). `courier` comes from the fleet read model; the proof
/// of delivery and the failure reason are the caller's to fill in (the aggregate does not
/// keep them: they are in its events).
#[must_use]
pub fn live(
    delivery: &Delivery,
    order_id: Uuid,
    version: i64,
    courier: Option<CourierSummary>,
) -> Option<LiveDelivery> {
    Some(LiveDelivery {
        order_id,
        status: state(delivery.status()?),
        customer_id: delivery.customer_id()?,
        address: delivery.address()?.clone().into(),
        contact_phone: delivery.contact_phone().map(ToOwned::to_owned),
        courier,
        courier_position: None,
        eta: None,
        requested_at: delivery.requested_at()?,
        ready_at: delivery.ready_at(),
        assigned_at: delivery.assigned_at(),
        picked_up_at: delivery.picked_up_at(),
        finished_at: delivery.finished_at(),
        received_by: None,
        note: None,
        failure_reason: None,
        version,
    })
}

/// The courier as it stands in the aggregate, shaped like the read model.
#[must_use]
pub fn courier_view(courier: &Courier, version: i64) -> Option<CourierView> {
    Some(CourierView {
        id: courier.courier_id()?,
        account_id: courier.account_id(),
        name: courier.name()?.to_owned(),
        phone: courier.phone().map(ToOwned::to_owned),
        vehicle: courier.vehicle()?.into(),
        active: courier.is_active(),
        on_shift: courier.is_on_shift(),
        hired_at: courier.hired_at()?,
        position: None,
        version,
    })
}
