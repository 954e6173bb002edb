//! Why the ordering context refused a command. Each error has a stable kebab-case `code()` that
//! the services turn into a problem+json `type` (`https://brigade.dev/errors/{code}`); the
//! message is for people and may change. Line indexes are 0-based.

use super::{AllergenConflict, Order};
use crate::AddressError;

/// Why an [`OrderCommand`](super::OrderCommand) was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OrderError {
    #[error("order not found")]
    OrderNotFound,
    #[error("this order has already been placed")]
    OrderAlreadyPlaced,
    #[error("an order needs at least one line")]
    EmptyOrder,
    #[error("an order may have at most {max} lines")]
    TooManyLines { max: usize },
    #[error(
        "line {line}: quantity {quantity} is not between 1 and {}",
        Order::MAX_QUANTITY
    )]
    InvalidQuantity { line: usize, quantity: u32 },
    #[error(
        "line {line}: the note is longer than {} characters",
        Order::MAX_NOTE_CHARS
    )]
    NoteTooLong { line: usize },
    #[error("line {line}: the unit price must be a non-negative amount in an ISO currency")]
    InvalidUnitPrice { line: usize },
    #[error("line {line}: options must be at most {max}, each with a non-negative delta in the line's currency that the unit price includes")]
    InvalidOptions { line: usize, max: usize },
    #[error("line {line}: every line of an order must be priced in the same currency")]
    MixedCurrencies { line: usize },
    #[error("the order total is too large")]
    TotalOverflow,
    #[error("invalid delivery address: {0}")]
    InvalidAddress(AddressError),
    #[error("the contact phone is longer than {max} characters")]
    ContactPhoneTooLong { max: usize },
    #[error("the reason is longer than {max} characters")]
    ReasonTooLong { max: usize },
    #[error("{}", allergen_message(conflicts))]
    AllergenConfirmationRequired { conflicts: Vec<AllergenConflict> },
    #[error("the time the order is scheduled for must be later than now")]
    ScheduleNotInFuture,
    #[error("an order may be scheduled at most {max_days} days ahead")]
    ScheduleTooFar { max_days: i64 },
    #[error("this order belongs to another customer")]
    NotYourOrder,
    #[error("too late to cancel: the kitchen has started cooking this order")]
    TooLateToCancel,
    #[error("this order is already delivered, cancelled or rejected")]
    AlreadyFinished,
    #[error("only the customer who placed the order or a manager may cancel it")]
    NotAllowed,
}

impl OrderError {
    pub fn code(&self) -> &'static str {
        match self {
            OrderError::OrderNotFound => "order-not-found",
            OrderError::OrderAlreadyPlaced => "order-already-placed",
            OrderError::EmptyOrder => "order-empty",
            OrderError::TooManyLines { .. } => "order-too-many-lines",
            OrderError::InvalidQuantity { .. } => "order-invalid-quantity",
            OrderError::NoteTooLong { .. } => "order-note-too-long",
            OrderError::InvalidUnitPrice { .. } => "order-invalid-unit-price",
            OrderError::InvalidOptions { .. } => "order-invalid-options",
            OrderError::MixedCurrencies { .. } => "order-mixed-currencies",
            OrderError::TotalOverflow => "order-total-overflow",
            OrderError::InvalidAddress(_) => "order-invalid-address",
            OrderError::ContactPhoneTooLong { .. } => "order-contact-phone-too-long",
            OrderError::ReasonTooLong { .. } => "order-reason-too-long",
            OrderError::AllergenConfirmationRequired { .. } => "allergen-confirmation-required",
            OrderError::ScheduleNotInFuture => "order-schedule-not-in-future",
            OrderError::ScheduleTooFar { .. } => "order-schedule-too-far",
            OrderError::NotYourOrder => "order-not-yours",
            OrderError::TooLateToCancel => "order-too-late-to-cancel",
            OrderError::AlreadyFinished => "order-already-finished",
            OrderError::NotAllowed => "order-cancel-not-allowed",
        }
    }
}

/// "Satay contains peanuts; Crème brûlée contains milk, eggs: confirm …".
fn allergen_message(conflicts: &[AllergenConflict]) -> String {
    let dishes: Vec<String> = conflicts
        .iter()
        .map(|conflict| {
            let allergens: Vec<&str> = conflict.allergens.iter().map(|a| a.as_str()).collect();
            format!("{} contains {}", conflict.dish_name, allergens.join(", "))
        })
        .collect();
    format!(
        "{}: these are allergens you declared; send allergensConfirmed: true to order anyway",
        dishes.join("; ")
    )
}

/// Why a [`DishCommand`](super::DishCommand) was refused. `field` is the camelCase field name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DishError {
    #[error("dish not found")]
    DishNotFound,
    #[error("a dish with this id already exists")]
    DishAlreadyExists,
    #[error("dish {field} is required")]
    Blank { field: &'static str },
    #[error("dish {field} is longer than {max} characters")]
    TooLong { field: &'static str, max: usize },
    #[error("dish price {amount} is not between 1 and 10000000 minor units")]
    InvalidPrice { amount: i64 },
    #[error("dish price currency \"{currency}\" is not an ISO 4217 code")]
    InvalidCurrency { currency: String },
    #[error("dish preparation time {minutes} min is not between 1 and 240")]
    InvalidPrepMinutes { minutes: u32 },
    #[error("dish photo URL must be an http(s) URL without spaces, at most {max} characters")]
    InvalidPhotoUrl { max: usize },
    #[error("a dish may have at most {max} option groups")]
    TooManyOptionGroups { max: usize },
    #[error("{field}: an option name is required, at most {max} characters")]
    InvalidOptionName { field: String, max: usize },
    #[error("{field}: \"{name}\" is already the name of another option here")]
    OptionNameTaken { field: String, name: String },
    #[error("{field}: this id is already used by another option of the dish")]
    OptionIdTaken { field: String },
    #[error("{field}: an option group offers 1 to {max} choices")]
    InvalidOptionChoices { field: String, max: usize },
    #[error("{field}: an option group needs minChoices <= maxChoices <= its number of choices, and maxChoices >= 1")]
    InvalidOptionLimits { field: String },
    #[error("{field}: an option's price delta is 0 to 100000 minor units in the dish's currency ({currency})")]
    InvalidOptionPrice { field: String, currency: String },
}

impl DishError {
    pub fn code(&self) -> &'static str {
        match self {
            DishError::DishNotFound => "dish-not-found",
            DishError::DishAlreadyExists => "dish-already-exists",
            DishError::Blank { .. } => "dish-field-required",
            DishError::TooLong { .. } => "dish-field-too-long",
            DishError::InvalidPrice { .. } => "dish-invalid-price",
            DishError::InvalidCurrency { .. } => "dish-invalid-currency",
            DishError::InvalidPrepMinutes { .. } => "dish-invalid-prep-minutes",
            DishError::InvalidPhotoUrl { .. } => "dish-invalid-photo-url",
            DishError::TooManyOptionGroups { .. } => "dish-too-many-option-groups",
            DishError::InvalidOptionName { .. } => "dish-option-name-invalid",
            DishError::OptionNameTaken { .. } => "dish-option-name-taken",
            DishError::OptionIdTaken { .. } => "dish-option-id-taken",
            DishError::InvalidOptionChoices { .. } => "dish-option-choices-invalid",
            DishError::InvalidOptionLimits { .. } => "dish-option-limits-invalid",
            DishError::InvalidOptionPrice { .. } => "dish-option-price-invalid",
        }
    }
}
