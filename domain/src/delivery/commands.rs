//! What the delivery context may be asked to do: follow an order's delivery from request to
//! handover, and manage the couriers.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{RoutePoint, Vehicle};
use crate::Address;

/// Commands on a [`Delivery`](super::Delivery) (aggregate id = order id).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all_fields = "camelCase")]
pub enum DeliveryCommand {
    /// Issued by the delivery service on `OrderPlaced`; idempotent.
    Request {
        order_id: Uuid,
        customer_id: Uuid,
        address: Address,
        contact_phone: Option<String>,
        at: DateTime<Utc>,
    },
    /// Issued on `TicketReady`: the food waits at the pass; idempotent.
    MarkReadyForPickup { at: DateTime<Utc> },
    /// Dispatch or a manager gives the delivery to a courier, replacing any previous one
    /// until pickup.
    Assign { courier_id: Uuid, at: DateTime<Utc> },
    /// Dispatch sends a courier before the food is ready, because the kitchen expects it
    /// ready by the time they arrive: like `Assign`, but also while the delivery is only
    /// requested. The courier still picks up only once the ticket is ready.
    AssignAhead { courier_id: Uuid, at: DateTime<Utc> },
    /// Sampled points of the way of the courier carrying the food; points not after the
    /// last one recorded are left out, so a batch recorded twice changes nothing.
    RecordRoute {
        courier_id: Uuid,
        points: Vec<RoutePoint>,
        at: DateTime<Utc>,
    },
    /// The assigned courier turns the delivery down before pickup: it is ready for pickup
    /// again (`CourierUnassigned`), for dispatch to offer it to someone else.
    Decline { courier_id: Uuid, at: DateTime<Utc> },
    /// The assigned courier collects the food.
    PickUp { courier_id: Uuid, at: DateTime<Utc> },
    /// The courier hands the food over.
    Deliver {
        courier_id: Uuid,
        received_by: Option<String>,
        note: Option<String>,
        at: DateTime<Utc>,
    },
    /// The courier cannot deliver (nobody home, accident, ...).
    Fail {
        courier_id: Uuid,
        reason: String,
        at: DateTime<Utc>,
    },
    /// Issued on `OrderCancelled`; idempotent.
    Cancel { at: DateTime<Utc> },
}

/// Commands on a [`Courier`](super::Courier) (aggregate id = courier id).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all_fields = "camelCase")]
pub enum CourierCommand {
    /// A manager hires a courier, optionally linked to the courier's sign-in account.
    Hire {
        courier_id: Uuid,
        account_id: Option<Uuid>,
        name: String,
        phone: Option<String>,
        vehicle: Vehicle,
        at: DateTime<Utc>,
    },
    /// Changes the given fields; `None` leaves a field as it is. A blank `phone` removes it.
    /// Deactivating a courier on shift also takes them off shift.
    Update {
        name: Option<String>,
        phone: Option<String>,
        vehicle: Option<Vehicle>,
        active: Option<bool>,
        at: DateTime<Utc>,
    },
    /// The courier starts or ends a shift.
    SetShift {
        on_shift: bool,
        at: DateTime<Utc>,
    },
    Remove {
        at: DateTime<Utc>,
    },
}
