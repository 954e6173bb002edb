//! What happened to an account: the facts published on `identity.account.*`.
//!
//! Externally tagged JSON (`{"AccountRegistered": {...}}`), camelCase fields, version "1.0".
//! No event carries a password or its hash: they are published to every service.

use chrono::{DateTime, Utc};
use cqrs_es::DomainEvent;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{Email, PersonName, Phone};
use crate::{Actor, Address, Allergen, Diet, Role, EVENT_VERSION};

/// Events of an [`Account`](super::Account).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all_fields = "camelCase")]
pub enum AccountEvent {
    /// A customer signed up, or a manager (or the system, for the first manager) created a staff
    /// account. Delivery consumes it with role `courier` to create the courier's profile.
    AccountRegistered {
        account_id: Uuid,
        email: Email,
        name: PersonName,
        phone: Option<Phone>,
        role: Role,
        registered_by: Actor,
        at: DateTime<Utc>,
    },
    /// The name or phone changed; both carry their new values.
    ProfileUpdated {
        name: PersonName,
        phone: Option<Phone>,
        at: DateTime<Utc>,
    },
    /// The customer's declared allergens and diets changed; both carry their new (complete,
    /// sorted) values. The orders service keeps them to check orders against them.
    DietaryProfileChanged {
        allergens: Vec<Allergen>,
        diets: Vec<Diet>,
        at: DateTime<Utc>,
    },
    AddressAdded {
        address_id: Uuid,
        address: Address,
        at: DateTime<Utc>,
    },
    AddressRemoved {
        address_id: Uuid,
        at: DateTime<Utc>,
    },
    /// The account's single role changed (its next access token carries the new role).
    RoleGranted {
        role: Role,
        previous_role: Role,
        by: Actor,
        at: DateTime<Utc>,
    },
    /// The password changed; the hash itself stays in the identity service's credentials table,
    /// at this version. Every session of the account ended with it.
    PasswordChanged {
        credential_version: u32,
        at: DateTime<Utc>,
    },
    /// The account may no longer sign in; access tokens issued up to `at` are refused by every
    /// service that has seen this event.
    AccountDisabled {
        by: Actor,
        reason: Option<String>,
        at: DateTime<Utc>,
    },
}

impl AccountEvent {
    /// The last token of the event's subject: `identity.account.{suffix}`.
    pub fn subject_suffix(&self) -> &'static str {
        match self {
            AccountEvent::AccountRegistered { .. } => "registered",
            AccountEvent::ProfileUpdated { .. } => "profile_updated",
            AccountEvent::DietaryProfileChanged { .. } => "dietary_profile_changed",
            AccountEvent::AddressAdded { .. } => "address_added",
            AccountEvent::AddressRemoved { .. } => "address_removed",
            AccountEvent::RoleGranted { .. } => "role_granted",
            AccountEvent::PasswordChanged { .. } => "password_changed",
            AccountEvent::AccountDisabled { .. } => "disabled",
        }
    }

    /// When it happened (the command's `at`).
    pub fn occurred_at(&self) -> DateTime<Utc> {
        match self {
            AccountEvent::AccountRegistered { at, .. }
            | AccountEvent::ProfileUpdated { at, .. }
            | AccountEvent::DietaryProfileChanged { at, .. }
            | AccountEvent::AddressAdded { at, .. }
            | AccountEvent::AddressRemoved { at, .. }
            | AccountEvent::RoleGranted { at, .. }
            | AccountEvent::PasswordChanged { at, .. }
            | AccountEvent::AccountDisabled { at, .. } => *at,
        }
    }
}

impl DomainEvent for AccountEvent {
    fn event_type(&self) -> String {
        let name = match self {
            AccountEvent::AccountRegistered { .. } => "AccountRegistered",
            AccountEvent::ProfileUpdated { .. } => "ProfileUpdated",
            AccountEvent::DietaryProfileChanged { .. } => "DietaryProfileChanged",
            AccountEvent::AddressAdded { .. } => "AddressAdded",
            AccountEvent::AddressRemoved { .. } => "AddressRemoved",
            AccountEvent::RoleGranted { .. } => "RoleGranted",
            AccountEvent::PasswordChanged { .. } => "PasswordChanged",
            AccountEvent::AccountDisabled { .. } => "AccountDisabled",
        };
        name.to_owned()
    }

    fn event_version(&self) -> String {
        EVENT_VERSION.to_owned()
    }
}
