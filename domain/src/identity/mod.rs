//! Identity context (the identity service): user accounts ([`Account`]), their profile and role.
//!
//! An account is event-sourced like every other aggregate, and its events are published on
//! `identity.account.*` (delivery turns an `AccountRegistered` with role `courier` into a courier
//! profile; every service learns from `AccountDisabled` to refuse that account's access tokens).
//! Credentials never enter this module: password hashes live in the identity service's own
//! table, and events only say *that* a password changed ([`AccountEvent::PasswordChanged`]
//! carries the new credential version), so publishing events can never leak a hash.
//!
//! Input is parsed at the edge into the value types of [`profile`] ([`Email`], [`PersonName`],
//! [`Phone`]): the service can refuse a bad field (422 naming it) before it claims the e-mail
//! address or stores anything, and commands can only carry valid values.

mod account;
mod commands;
mod errors;
mod events;
mod profile;

pub use account::Account;
pub use commands::AccountCommand;
pub use errors::AccountError;
pub use events::AccountEvent;
pub use profile::{DietaryProfile, Email, PersonName, Phone, SavedAddress};
