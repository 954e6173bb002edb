//! What happened in the ordering context: the facts published on `orders.order.*` and
//! `orders.dish.*`.
//!
//! Externally tagged JSON (`{"OrderPlaced": {...}}`), camelCase fields, version "1.0".

use chrono::{DateTime, Utc};
use cqrs_es::DomainEvent;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{DietaryTag, OptionGroup, OrderLine, OrderStatus};
use crate::{Actor, Address, Allergen, Money, EVENT_VERSION};

/// Events of an [`Order`](super::Order). Every event but `OrderPlaced` and
/// `OrderStepRecordedLate` is a status change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all_fields = "camelCase")]
// As for `OrderCommand`: `OrderPlaced` carries the whole order, the others a time; events are
// built once and moved a few times, and a boxed `OrderPlaced` would obscure every match on it.
#[allow(clippy::large_enum_variant)]
pub enum OrderEvent {
    OrderPlaced {
        order_id: Uuid,
        customer_id: Uuid,
        lines: Vec<OrderLine>,
        delivery_address: Address,
        contact_phone: Option<String>,
        total: Money,
        placed_at: DateTime<Utc>,
        /// The customer's declared allergens (empty: none declared): the kitchen flags the
        /// ticket with them. Absent from orders placed before allergies were declared.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        allergies: Vec<Allergen>,
        /// When the order is to be ready, for an order scheduled in a later kitchen slot;
        /// absent for "as soon as possible".
        #[serde(default, skip_serializing_if = "Option::is_none")]
        scheduled_for: Option<DateTime<Utc>>,
    },
    OrderAccepted {
        at: DateTime<Utc>,
    },
    OrderInPreparation {
        at: DateTime<Utc>,
    },
    OrderReady {
        at: DateTime<Utc>,
    },
    OrderOutForDelivery {
        at: DateTime<Utc>,
    },
    OrderDelivered {
        at: DateTime<Utc>,
    },
    OrderCancelled {
        by: Actor,
        reason: Option<String>,
        at: DateTime<Utc>,
    },
    OrderRejected {
        reason: String,
        at: DateTime<Utc>,
    },
    /// A step the order had already gone past when its news came: the kitchen's `ready` after
    /// the courier's pickup (two services, heard through two consumers). It completes the
    /// history, in its place on the path, and leaves the status where it is.
    OrderStepRecordedLate {
        status: OrderStatus,
        at: DateTime<Utc>,
    },
}

impl OrderEvent {
    /// The last token of the event's subject: `orders.order.{suffix}`.
    pub fn subject_suffix(&self) -> &'static str {
        match self {
            OrderEvent::OrderPlaced { .. } => "placed",
            OrderEvent::OrderAccepted { .. } => "accepted",
            OrderEvent::OrderInPreparation { .. } => "in_preparation",
            OrderEvent::OrderReady { .. } => "ready",
            OrderEvent::OrderOutForDelivery { .. } => "out_for_delivery",
            OrderEvent::OrderDelivered { .. } => "delivered",
            OrderEvent::OrderCancelled { .. } => "cancelled",
            OrderEvent::OrderRejected { .. } => "rejected",
            OrderEvent::OrderStepRecordedLate { .. } => "step_recorded_late",
        }
    }

    /// When it happened (the command's `at`).
    pub fn occurred_at(&self) -> DateTime<Utc> {
        match self {
            OrderEvent::OrderPlaced { placed_at, .. } => *placed_at,
            OrderEvent::OrderAccepted { at }
            | OrderEvent::OrderInPreparation { at }
            | OrderEvent::OrderReady { at }
            | OrderEvent::OrderOutForDelivery { at }
            | OrderEvent::OrderDelivered { at }
            | OrderEvent::OrderCancelled { at, .. }
            | OrderEvent::OrderRejected { at, .. }
            | OrderEvent::OrderStepRecordedLate { at, .. } => *at,
        }
    }
}

impl DomainEvent for OrderEvent {
    fn event_type(&self) -> String {
        let name = match self {
            OrderEvent::OrderPlaced { .. } => "OrderPlaced",
            OrderEvent::OrderAccepted { .. } => "OrderAccepted",
            OrderEvent::OrderInPreparation { .. } => "OrderInPreparation",
            OrderEvent::OrderReady { .. } => "OrderReady",
            OrderEvent::OrderOutForDelivery { .. } => "OrderOutForDelivery",
            OrderEvent::OrderDelivered { .. } => "OrderDelivered",
            OrderEvent::OrderCancelled { .. } => "OrderCancelled",
            OrderEvent::OrderRejected { .. } => "OrderRejected",
            OrderEvent::OrderStepRecordedLate { .. } => "OrderStepRecordedLate",
        };
        name.to_owned()
    }

    fn event_version(&self) -> String {
        EVENT_VERSION.to_owned()
    }
}

/// Events of a [`Dish`](super::Dish).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all_fields = "camelCase")]
pub enum DishEvent {
    DishAdded {
        dish_id: Uuid,
        name: String,
        description: String,
        category: String,
        price: Money,
        allergens: Vec<Allergen>,
        station: String,
        prep_minutes: u32,
        available: bool,
        at: DateTime<Utc>,
    },
    /// Only the fields that changed are `Some`.
    DishUpdated {
        name: Option<String>,
        description: Option<String>,
        category: Option<String>,
        price: Option<Money>,
        allergens: Option<Vec<Allergen>>,
        station: Option<String>,
        prep_minutes: Option<u32>,
        at: DateTime<Utc>,
    },
    DishAvailabilityChanged {
        available: bool,
        reason: Option<String>,
        at: DateTime<Utc>,
    },
    /// The dish's tags and photo as they now are (both, even if one did not change).
    DishPresentationChanged {
        dietary_tags: Vec<DietaryTag>,
        photo_url: Option<String>,
        at: DateTime<Utc>,
    },
    DishVisibilityChanged {
        visible: bool,
        at: DateTime<Utc>,
    },
    DishMoved {
        position: u32,
        at: DateTime<Utc>,
    },
    /// The dish's option groups as they now are (all of them; empty: no options).
    DishOptionsChanged {
        groups: Vec<OptionGroup>,
        at: DateTime<Utc>,
    },
}

impl DishEvent {
    /// The last token of the event's subject: `orders.dish.{suffix}`.
    pub fn subject_suffix(&self) -> &'static str {
        match self {
            DishEvent::DishAdded { .. } => "added",
            DishEvent::DishUpdated { .. } => "updated",
            DishEvent::DishAvailabilityChanged { .. } => "availability_changed",
            DishEvent::DishPresentationChanged { .. } => "presentation_changed",
            DishEvent::DishVisibilityChanged { .. } => "visibility_changed",
            DishEvent::DishMoved { .. } => "moved",
            DishEvent::DishOptionsChanged { .. } => "options_changed",
        }
    }

    /// When it happened (the command's `at`).
    pub fn occurred_at(&self) -> DateTime<Utc> {
        match self {
            DishEvent::DishAdded { at, .. }
            | DishEvent::DishUpdated { at, .. }
            | DishEvent::DishAvailabilityChanged { at, .. }
            | DishEvent::DishPresentationChanged { at, .. }
            | DishEvent::DishVisibilityChanged { at, .. }
            | DishEvent::DishMoved { at, .. }
            | DishEvent::DishOptionsChanged { at, .. } => *at,
        }
    }
}

impl DomainEvent for DishEvent {
    fn event_type(&self) -> String {
        let name = match self {
            DishEvent::DishAdded { .. } => "DishAdded",
            DishEvent::DishUpdated { .. } => "DishUpdated",
            DishEvent::DishAvailabilityChanged { .. } => "DishAvailabilityChanged",
            DishEvent::DishPresentationChanged { .. } => "DishPresentationChanged",
            DishEvent::DishVisibilityChanged { .. } => "DishVisibilityChanged",
            DishEvent::DishMoved { .. } => "DishMoved",
            DishEvent::DishOptionsChanged { .. } => "DishOptionsChanged",
        };
        name.to_owned()
    }

    fn event_version(&self) -> String {
        EVENT_VERSION.to_owned()
    }
}
