//! What the identity context may be asked to do with an account.
//!
//! Commands carry `at` because the domain never reads the clock, and already-parsed profile
//! values ([`Email`], [`PersonName`], [`Phone`]) because the service refuses bad input before it
//! claims an e-mail address. Ids of new addresses are chosen by the service (no randomness here).

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{DietaryProfile, Email, PersonName, Phone, SavedAddress};
use crate::{Actor, Role};

/// Commands on an [`Account`](super::Account) (aggregate id = account id).
#[derive(Debug, Clone, PartialEq)]
pub enum AccountCommand {
    /// A customer signs up themselves.
    SignUp {
        account_id: Uuid,
        email: Email,
        name: PersonName,
        phone: Option<Phone>,
        at: DateTime<Utc>,
    },
    /// A manager creates a chef, courier or manager account; the system creates the first manager.
    RegisterStaff {
        account_id: Uuid,
        email: Email,
        name: PersonName,
        phone: Option<Phone>,
        role: Role,
        by: Actor,
        at: DateTime<Utc>,
    },
    /// The account holder changes their profile. `None` leaves a part as it is; `phone:
    /// Some(None)` removes the phone; `addresses: Some(list)` makes `list` the saved addresses
    /// (an existing id keeps that address, a new id adds one, a missing id removes one);
    /// `dietary: Some(profile)` replaces the declared allergens and diets.
    UpdateProfile {
        name: Option<PersonName>,
        phone: Option<Option<Phone>>,
        addresses: Option<Vec<SavedAddress>>,
        dietary: Option<DietaryProfile>,
        at: DateTime<Utc>,
    },
    /// The credentials table now holds a new password hash (the service stores it first).
    ChangePassword { at: DateTime<Utc> },
    /// A manager gives the account another role.
    GrantRole {
        role: Role,
        by: Actor,
        at: DateTime<Utc>,
    },
    /// A manager disables the account: no more sign-ins, every session and token ends.
    Disable {
        by: Actor,
        reason: Option<String>,
        at: DateTime<Utc>,
    },
}
