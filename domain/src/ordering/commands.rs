//! What the ordering context may be asked to do: place and follow an order, manage the menu.
//!
//! Commands carry `at` because the domain never reads the clock; the service stamps it.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{AllergyCheck, DietaryTag, OptionGroup, OrderLine};
use crate::{Actor, Address, Allergen, Money};

/// Commands on an [`Order`](super::Order) (aggregate id = order id).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all_fields = "camelCase")]
// `Place` carries the whole order while the other commands carry a time: a command is built
// once and moved a few times, so its size costs nothing, and boxing `Place` would only make
// every match on it harder to read.
#[allow(clippy::large_enum_variant)]
pub enum OrderCommand {
    /// A customer places a new order. Lines are snapshots of the menu taken by the service.
    Place {
        order_id: Uuid,
        customer_id: Uuid,
        lines: Vec<OrderLine>,
        delivery_address: Address,
        contact_phone: Option<String>,
        /// The customer's declared allergens, the lines that contain them, and whether the
        /// customer confirmed ordering them anyway.
        allergy: AllergyCheck,
        /// When the customer wants the order ready, if later than as soon as possible (the
        /// service has checked that the kitchen has room then).
        scheduled_for: Option<DateTime<Utc>>,
        at: DateTime<Utc>,
    },
    /// The kitchen opened a ticket for the order.
    Accept { at: DateTime<Utc> },
    /// The kitchen started the first dish.
    StartPreparation { at: DateTime<Utc> },
    /// Every dish is ready.
    MarkReady { at: DateTime<Utc> },
    /// A courier picked the order up.
    MarkOutForDelivery { at: DateTime<Utc> },
    /// The courier handed the order over.
    MarkDelivered { at: DateTime<Utc> },
    /// The kitchen cannot make the order.
    Reject { reason: String, at: DateTime<Utc> },
    /// A customer, a manager or the system cancels the order.
    Cancel {
        by: Actor,
        reason: Option<String>,
        at: DateTime<Utc>,
    },
}

/// Commands on a [`Dish`](super::Dish) of the menu (aggregate id = dish id).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all_fields = "camelCase")]
pub enum DishCommand {
    Add {
        dish_id: Uuid,
        name: String,
        description: String,
        category: String,
        price: Money,
        allergens: Vec<Allergen>,
        /// Kitchen station that cooks it (`"grill"`, `"cold"`, ...); `None` means `"main"`.
        station: Option<String>,
        prep_minutes: u32,
        available: bool,
        at: DateTime<Utc>,
    },
    /// Changes the given fields; `None` leaves a field as it is.
    Update {
        name: Option<String>,
        description: Option<String>,
        category: Option<String>,
        price: Option<Money>,
        allergens: Option<Vec<Allergen>>,
        station: Option<String>,
        prep_minutes: Option<u32>,
        at: DateTime<Utc>,
    },
    /// Takes the dish off the menu (sold out, ...) or puts it back.
    ChangeAvailability {
        available: bool,
        reason: Option<String>,
        at: DateTime<Utc>,
    },
    /// Sets what the menu shows besides the essentials: dietary tags and a photo (`None`
    /// removes it).
    Present {
        dietary_tags: Vec<DietaryTag>,
        photo_url: Option<String>,
        at: DateTime<Utc>,
    },
    /// Hides the dish from the customers' menu (it stays on the manager's, and cannot be
    /// ordered) or shows it again.
    ChangeVisibility { visible: bool, at: DateTime<Utc> },
    /// Sets the dish's position within its category: dishes are listed by position, then in
    /// the order they were added.
    Move { position: u32, at: DateTime<Utc> },
    /// Sets the dish's option groups (cooking, supplements, size…), replacing the previous
    /// ones; an empty list removes them. Orders already placed keep the options they had.
    SetOptions {
        groups: Vec<OptionGroup>,
        at: DateTime<Utc>,
    },
}
