//! Why the delivery context refused a command. Each error has a stable kebab-case `code()`
//! that the delivery service turns into a problem+json `type`; the message is for people.

use super::DeliveryStatus;
use crate::AddressError;

/// Why a [`DeliveryCommand`](super::DeliveryCommand) was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeliveryError {
    #[error("no delivery has been requested for this order")]
    DeliveryNotFound,
    #[error("invalid delivery address: {0}")]
    InvalidAddress(AddressError),
    #[error("the order is not ready for pickup yet")]
    NotReadyForPickup,
    #[error("cannot {action} a delivery that is {status}")]
    WrongStatus {
        action: &'static str,
        status: DeliveryStatus,
    },
    #[error("this delivery is assigned to another courier")]
    NotYourDelivery,
    #[error("a reason is required")]
    ReasonRequired,
    #[error("the {field} is longer than {max} characters")]
    TooLong { field: &'static str, max: usize },
}

impl DeliveryError {
    pub fn code(&self) -> &'static str {
        match self {
            DeliveryError::DeliveryNotFound => "delivery-not-found",
            DeliveryError::InvalidAddress(_) => "delivery-invalid-address",
            DeliveryError::NotReadyForPickup => "delivery-not-ready-for-pickup",
            DeliveryError::WrongStatus { .. } => "delivery-wrong-status",
            DeliveryError::NotYourDelivery => "delivery-not-yours",
            DeliveryError::ReasonRequired => "delivery-reason-required",
            DeliveryError::TooLong { .. } => "delivery-field-too-long",
        }
    }
}

/// Why a [`CourierCommand`](super::CourierCommand) was refused. `field` is the camelCase name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CourierError {
    #[error("courier not found")]
    CourierNotFound,
    #[error("a courier with this id already exists")]
    CourierAlreadyExists,
    #[error("courier {field} is required")]
    Blank { field: &'static str },
    #[error("courier {field} is longer than {max} characters")]
    TooLong { field: &'static str, max: usize },
    #[error("this courier is inactive or removed and cannot change shift")]
    CourierInactive,
}

impl CourierError {
    pub fn code(&self) -> &'static str {
        match self {
            CourierError::CourierNotFound => "courier-not-found",
            CourierError::CourierAlreadyExists => "courier-already-exists",
            CourierError::Blank { .. } => "courier-field-required",
            CourierError::TooLong { .. } => "courier-field-too-long",
            CourierError::CourierInactive => "courier-inactive",
        }
    }
}
