//! What happened in the delivery context: the facts published on `delivery.delivery.*` and
//! `delivery.courier.*`.
//!
//! Externally tagged JSON (`{"CourierAssigned": {...}}`), camelCase fields, version "1.0".

use chrono::{DateTime, Utc};
use cqrs_es::DomainEvent;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{RoutePoint, Vehicle};
use crate::{Address, EVENT_VERSION};

/// Events of a [`Delivery`](super::Delivery).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all_fields = "camelCase")]
pub enum DeliveryEvent {
    DeliveryRequested {
        order_id: Uuid,
        customer_id: Uuid,
        address: Address,
        contact_phone: Option<String>,
        at: DateTime<Utc>,
    },
    DeliveryReadyForPickup {
        at: DateTime<Utc>,
    },
    CourierAssigned {
        courier_id: Uuid,
        at: DateTime<Utc>,
    },
    /// The previous courier, replaced by the `CourierAssigned` that follows.
    CourierUnassigned {
        courier_id: Uuid,
        at: DateTime<Utc>,
    },
    DeliveryPickedUp {
        courier_id: Uuid,
        at: DateTime<Utc>,
    },
    DeliveryDelivered {
        courier_id: Uuid,
        received_by: Option<String>,
        note: Option<String>,
        at: DateTime<Utc>,
    },
    DeliveryFailed {
        courier_id: Uuid,
        reason: String,
        at: DateTime<Utc>,
    },
    /// `courier_id` is the courier who was assigned, if any: they are free again.
    DeliveryCancelled {
        courier_id: Option<Uuid>,
        at: DateTime<Utc>,
    },
    /// Points of the courier's way with the food, sampled from their positions (see
    /// [`RoutePoint`]), in time order, each after the last point recorded before.
    DeliveryRouteRecorded {
        courier_id: Uuid,
        points: Vec<RoutePoint>,
        at: DateTime<Utc>,
    },
}

impl DeliveryEvent {
    /// The last token of the event's subject: `delivery.delivery.{suffix}`.
    pub fn subject_suffix(&self) -> &'static str {
        match self {
            DeliveryEvent::DeliveryRequested { .. } => "requested",
            DeliveryEvent::DeliveryReadyForPickup { .. } => "ready_for_pickup",
            DeliveryEvent::CourierAssigned { .. } => "courier_assigned",
            DeliveryEvent::CourierUnassigned { .. } => "courier_unassigned",
            DeliveryEvent::DeliveryPickedUp { .. } => "picked_up",
            DeliveryEvent::DeliveryDelivered { .. } => "delivered",
            DeliveryEvent::DeliveryFailed { .. } => "failed",
            DeliveryEvent::DeliveryCancelled { .. } => "cancelled",
            DeliveryEvent::DeliveryRouteRecorded { .. } => "route_recorded",
        }
    }

    /// When it happened (the command's `at`).
    pub fn occurred_at(&self) -> DateTime<Utc> {
        match self {
            DeliveryEvent::DeliveryRequested { at, .. }
            | DeliveryEvent::DeliveryReadyForPickup { at }
            | DeliveryEvent::CourierAssigned { at, .. }
            | DeliveryEvent::CourierUnassigned { at, .. }
            | DeliveryEvent::DeliveryPickedUp { at, .. }
            | DeliveryEvent::DeliveryDelivered { at, .. }
            | DeliveryEvent::DeliveryFailed { at, .. }
            | DeliveryEvent::DeliveryCancelled { at, .. }
            | DeliveryEvent::DeliveryRouteRecorded { at, .. } => *at,
        }
    }
}

impl DomainEvent for DeliveryEvent {
    fn event_type(&self) -> String {
        let name = match self {
            DeliveryEvent::DeliveryRequested { .. } => "DeliveryRequested",
            DeliveryEvent::DeliveryReadyForPickup { .. } => "DeliveryReadyForPickup",
            DeliveryEvent::CourierAssigned { .. } => "CourierAssigned",
            DeliveryEvent::CourierUnassigned { .. } => "CourierUnassigned",
            DeliveryEvent::DeliveryPickedUp { .. } => "DeliveryPickedUp",
            DeliveryEvent::DeliveryDelivered { .. } => "DeliveryDelivered",
            DeliveryEvent::DeliveryFailed { .. } => "DeliveryFailed",
            DeliveryEvent::DeliveryCancelled { .. } => "DeliveryCancelled",
            DeliveryEvent::DeliveryRouteRecorded { .. } => "DeliveryRouteRecorded",
        };
        name.to_owned()
    }

    fn event_version(&self) -> String {
        EVENT_VERSION.to_owned()
    }
}

/// Events of a [`Courier`](super::Courier).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all_fields = "camelCase")]
pub enum CourierEvent {
    /// A new courier is active and off shift.
    CourierHired {
        courier_id: Uuid,
        account_id: Option<Uuid>,
        name: String,
        phone: Option<String>,
        vehicle: Vehicle,
        at: DateTime<Utc>,
    },
    /// Only the fields that changed are `Some`; `phone: Some("")` means the phone was removed.
    CourierUpdated {
        name: Option<String>,
        phone: Option<String>,
        vehicle: Option<Vehicle>,
        active: Option<bool>,
        at: DateTime<Utc>,
    },
    CourierOnShift {
        at: DateTime<Utc>,
    },
    /// Also recorded when a courier on shift is deactivated or removed.
    CourierOffShift {
        at: DateTime<Utc>,
    },
    CourierRemoved {
        at: DateTime<Utc>,
    },
}

impl CourierEvent {
    /// The last token of the event's subject: `delivery.courier.{suffix}`.
    pub fn subject_suffix(&self) -> &'static str {
        match self {
            CourierEvent::CourierHired { .. } => "hired",
            CourierEvent::CourierUpdated { .. } => "updated",
            CourierEvent::CourierOnShift { .. } => "on_shift",
            CourierEvent::CourierOffShift { .. } => "off_shift",
            CourierEvent::CourierRemoved { .. } => "removed",
        }
    }

    /// When it happened (the command's `at`).
    pub fn occurred_at(&self) -> DateTime<Utc> {
        match self {
            CourierEvent::CourierHired { at, .. }
            | CourierEvent::CourierUpdated { at, .. }
            | CourierEvent::CourierOnShift { at }
            | CourierEvent::CourierOffShift { at }
            | CourierEvent::CourierRemoved { at } => *at,
        }
    }
}

impl DomainEvent for CourierEvent {
    fn event_type(&self) -> String {
        let name = match self {
            CourierEvent::CourierHired { .. } => "CourierHired",
            CourierEvent::CourierUpdated { .. } => "CourierUpdated",
            CourierEvent::CourierOnShift { .. } => "CourierOnShift",
            CourierEvent::CourierOffShift { .. } => "CourierOffShift",
            CourierEvent::CourierRemoved { .. } => "CourierRemoved",
        };
        name.to_owned()
    }

    fn event_version(&self) -> String {
        EVENT_VERSION.to_owned()
    }
}
