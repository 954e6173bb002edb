//! Ordering context (the orders service): the menu ([`Dish`]) and customers' orders ([`Order`]).
//!
//! An order keeps a snapshot of each dish's name and price when placed, so later menu changes
//! never alter what a customer agreed to pay. The order's status follows the kitchen and the
//! delivery through system commands (`Accept`, `StartPreparation`, ...) that are idempotent, so
//! a redelivered event from another service changes nothing.

mod allergy;
mod commands;
mod dish;
mod errors;
mod events;
mod options;
mod order;

pub use allergy::{AllergenConflict, AllergyCheck, DishAllergens};
pub use commands::{DishCommand, OrderCommand};
pub use dish::{DietaryTag, Dish};
pub use errors::{DishError, OrderError};
pub use events::{DishEvent, OrderEvent};
pub use options::{
    choose, valid_option_groups, ChosenOption, OptionChoice, OptionGroup, OptionPick,
    OptionPickError,
};
pub use order::{order_total, Order, OrderLine, OrderStatus, StatusChange};
