//! Why the identity context refused a command or a value. Each error has a stable kebab-case
//! `code()` that the identity service turns into a problem+json `type`
//! (`https://brigade.dev/errors/{code}`), and, for invalid input, the `field()` at fault; the
//! message is for people and may change.

use crate::AddressError;

/// Why an [`AccountCommand`](super::AccountCommand) or a profile value was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AccountError {
    #[error("this is not a valid e-mail address")]
    InvalidEmail,
    #[error("a name is required")]
    NameRequired,
    #[error("the name is longer than {max} characters")]
    NameTooLong { max: usize },
    #[error("the name contains control characters")]
    InvalidName,
    #[error("this is not a valid phone number")]
    InvalidPhone,
    #[error("address {index}: {error}")]
    InvalidAddress { index: usize, error: AddressError },
    #[error("a profile may keep at most {max} addresses")]
    TooManyAddresses { max: usize },
    #[error("\"{value}\" is not one of the 14 allergens (gluten, crustaceans, eggs, fish, peanuts, soybeans, milk, nuts, celery, mustard, sesame, sulphites, lupin, molluscs)")]
    UnknownAllergen { index: usize, value: String },
    #[error("\"{value}\" is not a known diet (vegetarian, vegan, pescatarian, gluten_free, dairy_free, halal, kosher)")]
    UnknownDiet { index: usize, value: String },
    #[error("the same address id appears twice")]
    DuplicateAddressId,
    #[error("the reason is longer than {max} characters")]
    ReasonTooLong { max: usize },
    #[error("this account already exists")]
    AlreadyRegistered,
    #[error("no such account")]
    NotFound,
    #[error("staff accounts are chefs, couriers or managers; customers sign up themselves")]
    NotAStaffRole,
    #[error("only a manager may do this")]
    ManagerOnly,
    #[error("this account is disabled")]
    Disabled,
    #[error("a manager cannot disable their own account")]
    CannotDisableSelf,
    #[error("a manager cannot change their own role")]
    CannotChangeOwnRole,
}

impl AccountError {
    pub fn code(&self) -> &'static str {
        match self {
            AccountError::InvalidEmail => "invalid-email",
            AccountError::NameRequired => "name-required",
            AccountError::NameTooLong { .. } => "name-too-long",
            AccountError::InvalidName => "invalid-name",
            AccountError::InvalidPhone => "invalid-phone",
            AccountError::InvalidAddress { error, .. } => error.code(),
            AccountError::TooManyAddresses { .. } => "too-many-addresses",
            AccountError::DuplicateAddressId => "duplicate-address-id",
            AccountError::UnknownAllergen { .. } => "unknown-allergen",
            AccountError::UnknownDiet { .. } => "unknown-diet",
            AccountError::ReasonTooLong { .. } => "reason-too-long",
            AccountError::AlreadyRegistered => "account-already-registered",
            AccountError::NotFound => "account-not-found",
            AccountError::NotAStaffRole => "not-a-staff-role",
            AccountError::ManagerOnly => "manager-only",
            AccountError::Disabled => "account-disabled",
            AccountError::CannotDisableSelf => "cannot-disable-self",
            AccountError::CannotChangeOwnRole => "cannot-change-own-role",
        }
    }

    /// The request field at fault (camelCase, as in the API), for errors about one input value.
    pub fn field(&self) -> Option<String> {
        let field = match self {
            AccountError::InvalidEmail => "email",
            AccountError::NameRequired
            | AccountError::NameTooLong { .. }
            | AccountError::InvalidName => "name",
            AccountError::InvalidPhone => "phone",
            AccountError::InvalidAddress { index, error } => {
                let inner = match error {
                    AddressError::Missing { field } | AddressError::TooLong { field, .. } => field,
                    AddressError::LatitudeOutOfRange | AddressError::IncompleteCoordinates => "lat",
                    AddressError::LongitudeOutOfRange => "lon",
                };
                return Some(format!("addresses[{index}].{inner}"));
            }
            AccountError::TooManyAddresses { .. } | AccountError::DuplicateAddressId => "addresses",
            AccountError::UnknownAllergen { index, .. } => {
                return Some(format!("allergens[{index}]"))
            }
            AccountError::UnknownDiet { index, .. } => return Some(format!("diets[{index}]")),
            AccountError::ReasonTooLong { .. } => "reason",
            AccountError::NotAStaffRole => "role",
            _ => return None,
        };
        Some(field.to_owned())
    }

    /// Whether the error is about the input itself (the service answers 422).
    pub fn is_invalid_input(&self) -> bool {
        self.field().is_some()
    }
}
