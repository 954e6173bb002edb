//! The `Account` aggregate: one person's sign-in identity, role and profile.
//!
//! `handle` decides (who may register whom, what a profile change amounts to), `apply` evolves.
//! Rules worth knowing:
//! - customers sign up themselves; chef, courier and manager accounts are registered by a manager,
//!   or by the system for the very first manager;
//! - a disabled account accepts no further command, and disabling is idempotent;
//! - a manager can neither disable nor re-role themselves, so the restaurant never locks out the
//!   person acting by accident.

use chrono::{DateTime, Utc};
use cqrs_es::event_sink::EventSink;
use cqrs_es::Aggregate;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{
    AccountCommand, AccountError, AccountEvent, DietaryProfile, Email, PersonName, Phone,
    SavedAddress,
};
use crate::shared::{char_len, non_blank};
use crate::{Actor, Role};

/// An account, rebuilt from its events. `Account::default()` is an account not registered yet.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Account {
    state: Option<Registered>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Registered {
    id: Uuid,
    email: Email,
    name: PersonName,
    phone: Option<Phone>,
    role: Role,
    addresses: Vec<SavedAddress>,
    credential_version: u32,
    disabled_at: Option<DateTime<Utc>>,
    #[serde(default)]
    dietary: DietaryProfile,
}

impl Account {
    /// Most addresses one profile keeps.
    pub const MAX_ADDRESSES: usize = 10;
    /// Longest reason for disabling an account, in characters.
    pub const MAX_REASON_CHARS: usize = 500;

    pub fn is_registered(&self) -> bool {
        self.state.is_some()
    }

    pub fn id(&self) -> Option<Uuid> {
        self.state.as_ref().map(|s| s.id)
    }

    pub fn email(&self) -> Option<&Email> {
        self.state.as_ref().map(|s| &s.email)
    }

    pub fn name(&self) -> Option<&PersonName> {
        self.state.as_ref().map(|s| &s.name)
    }

    pub fn phone(&self) -> Option<&Phone> {
        self.state.as_ref().and_then(|s| s.phone.as_ref())
    }

    pub fn role(&self) -> Option<Role> {
        self.state.as_ref().map(|s| s.role)
    }

    pub fn addresses(&self) -> &[SavedAddress] {
        self.state.as_ref().map_or(&[], |s| &s.addresses)
    }

    /// The declared allergens and diets (empty until declared).
    pub fn dietary(&self) -> DietaryProfile {
        self.state
            .as_ref()
            .map(|s| s.dietary.clone())
            .unwrap_or_default()
    }

    /// The version of the password hash in the credentials table that belongs to this account's
    /// current password (1 at registration).
    pub fn credential_version(&self) -> u32 {
        self.state.as_ref().map_or(0, |s| s.credential_version)
    }

    pub fn disabled_at(&self) -> Option<DateTime<Utc>> {
        self.state.as_ref().and_then(|s| s.disabled_at)
    }

    /// Registered and not disabled: may sign in and hold sessions.
    pub fn is_active(&self) -> bool {
        self.state.as_ref().is_some_and(|s| s.disabled_at.is_none())
    }

    /// The account, registered and not disabled, for commands that change it.
    fn active(&self) -> Result<&Registered, AccountError> {
        let state = self.state.as_ref().ok_or(AccountError::NotFound)?;
        if state.disabled_at.is_some() {
            return Err(AccountError::Disabled);
        }
        Ok(state)
    }

    fn decide(&self, command: AccountCommand) -> Result<Vec<AccountEvent>, AccountError> {
        match command {
            AccountCommand::SignUp {
                account_id,
                email,
                name,
                phone,
                at,
            } => {
                if self.state.is_some() {
                    return Err(AccountError::AlreadyRegistered);
                }
                Ok(vec![AccountEvent::AccountRegistered {
                    registered_by: Actor::user(account_id, Role::Customer),
                    account_id,
                    email,
                    name,
                    phone,
                    role: Role::Customer,
                    at,
                }])
            }
            AccountCommand::RegisterStaff {
                account_id,
                email,
                name,
                phone,
                role,
                by,
                at,
            } => {
                if self.state.is_some() {
                    return Err(AccountError::AlreadyRegistered);
                }
                if role == Role::Customer {
                    return Err(AccountError::NotAStaffRole);
                }
                require_manager_or_system(by)?;
                Ok(vec![AccountEvent::AccountRegistered {
                    account_id,
                    email,
                    name,
                    phone,
                    role,
                    registered_by: by,
                    at,
                }])
            }
            AccountCommand::UpdateProfile {
                name,
                phone,
                addresses,
                dietary,
                at,
            } => {
                let state = self.active()?;
                let mut events = Vec::new();
                let new_name = name.unwrap_or_else(|| state.name.clone());
                let new_phone = phone.unwrap_or_else(|| state.phone.clone());
                if new_name != state.name || new_phone != state.phone {
                    events.push(AccountEvent::ProfileUpdated {
                        name: new_name,
                        phone: new_phone,
                        at,
                    });
                }
                if let Some(wanted) = addresses {
                    events.extend(address_changes(&state.addresses, wanted, at)?);
                }
                if let Some(dietary) = dietary.filter(|wanted| *wanted != state.dietary) {
                    events.push(AccountEvent::DietaryProfileChanged {
                        allergens: dietary.allergens().to_vec(),
                        diets: dietary.diets().to_vec(),
                        at,
                    });
                }
                Ok(events)
            }
            AccountCommand::ChangePassword { at } => {
                let state = self.active()?;
                Ok(vec![AccountEvent::PasswordChanged {
                    credential_version: state.credential_version + 1,
                    at,
                }])
            }
            AccountCommand::GrantRole { role, by, at } => {
                let state = self.active()?;
                require_manager_or_system(by)?;
                if by.account_id() == Some(state.id) {
                    return Err(AccountError::CannotChangeOwnRole);
                }
                if role == state.role {
                    return Ok(vec![]);
                }
                Ok(vec![AccountEvent::RoleGranted {
                    role,
                    previous_role: state.role,
                    by,
                    at,
                }])
            }
            AccountCommand::Disable { by, reason, at } => {
                let state = self.state.as_ref().ok_or(AccountError::NotFound)?;
                require_manager_or_system(by)?;
                if by.account_id() == Some(state.id) {
                    return Err(AccountError::CannotDisableSelf);
                }
                let reason = non_blank(reason);
                if reason
                    .as_deref()
                    .is_some_and(|r| char_len(r) > Self::MAX_REASON_CHARS)
                {
                    return Err(AccountError::ReasonTooLong {
                        max: Self::MAX_REASON_CHARS,
                    });
                }
                if state.disabled_at.is_some() {
                    return Ok(vec![]);
                }
                Ok(vec![AccountEvent::AccountDisabled { by, reason, at }])
            }
        }
    }
}

fn require_manager_or_system(by: Actor) -> Result<(), AccountError> {
    match by {
        Actor::System
        | Actor::User {
            role: Role::Manager,
            ..
        } => Ok(()),
        Actor::User { .. } => Err(AccountError::ManagerOnly),
    }
}

/// The events that turn the saved addresses `current` into `wanted`: removals first (in saved
/// order), then additions (in wanted order). An existing id with new content is removed and
/// added again, so consumers only ever learn two kinds of fact.
fn address_changes(
    current: &[SavedAddress],
    wanted: Vec<SavedAddress>,
    at: DateTime<Utc>,
) -> Result<Vec<AccountEvent>, AccountError> {
    if wanted.len() > Account::MAX_ADDRESSES {
        return Err(AccountError::TooManyAddresses {
            max: Account::MAX_ADDRESSES,
        });
    }
    for (index, saved) in wanted.iter().enumerate() {
        saved
            .address
            .validate()
            .map_err(|error| AccountError::InvalidAddress { index, error })?;
        if wanted[..index]
            .iter()
            .any(|earlier| earlier.address_id == saved.address_id)
        {
            return Err(AccountError::DuplicateAddressId);
        }
    }
    let unchanged = |saved: &SavedAddress| wanted.iter().any(|w| w == saved);
    let mut events: Vec<AccountEvent> = current
        .iter()
        .filter(|saved| !unchanged(saved))
        .map(|saved| AccountEvent::AddressRemoved {
            address_id: saved.address_id,
            at,
        })
        .collect();
    for saved in &wanted {
        if !current.contains(saved) {
            events.push(AccountEvent::AddressAdded {
                address_id: saved.address_id,
                address: saved.address.clone(),
                at,
            });
        }
    }
    Ok(events)
}

impl Aggregate for Account {
    const TYPE: &'static str = "account";
    type Command = AccountCommand;
    type Event = AccountEvent;
    type Error = AccountError;
    type Services = ();

    async fn handle(
        &mut self,
        command: Self::Command,
        _services: &Self::Services,
        sink: &EventSink<Self>,
    ) -> Result<(), Self::Error> {
        for event in self.decide(command)? {
            sink.write(event, self).await;
        }
        Ok(())
    }

    fn apply(&mut self, event: Self::Event) {
        match event {
            AccountEvent::AccountRegistered {
                account_id,
                email,
                name,
                phone,
                role,
                ..
            } => {
                self.state = Some(Registered {
                    id: account_id,
                    email,
                    name,
                    phone,
                    role,
                    addresses: Vec::new(),
                    credential_version: 1,
                    disabled_at: None,
                    dietary: DietaryProfile::default(),
                });
            }
            other => {
                // Every other event follows a registration; on a default account it means a
                // corrupt history, which `apply` must survive without panicking.
                let Some(state) = self.state.as_mut() else {
                    return;
                };
                match other {
                    AccountEvent::AccountRegistered { .. } => {}
                    AccountEvent::ProfileUpdated { name, phone, .. } => {
                        state.name = name;
                        state.phone = phone;
                    }
                    AccountEvent::DietaryProfileChanged {
                        allergens, diets, ..
                    } => state.dietary = DietaryProfile::new(allergens, diets),
                    AccountEvent::AddressAdded {
                        address_id,
                        address,
                        ..
                    } => state.addresses.push(SavedAddress {
                        address_id,
                        address,
                    }),
                    AccountEvent::AddressRemoved { address_id, .. } => {
                        state.addresses.retain(|a| a.address_id != address_id);
                    }
                    AccountEvent::RoleGranted { role, .. } => state.role = role,
                    AccountEvent::PasswordChanged {
                        credential_version, ..
                    } => state.credential_version = credential_version,
                    AccountEvent::AccountDisabled { at, .. } => state.disabled_at = Some(at),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use cqrs_es::test::TestFramework;

    use super::*;
    use crate::test_support::{at, handle_then_reload};
    use crate::{Address, AddressError, Allergen, Diet};

    type AccountTest = TestFramework<Account>;

    fn ada_id() -> Uuid {
        Uuid::from_u128(1)
    }

    fn manager() -> Actor {
        Actor::user(Uuid::from_u128(99), Role::Manager)
    }

    fn email(raw: &str) -> Email {
        Email::parse(raw).expect("a valid e-mail")
    }

    fn name(raw: &str) -> PersonName {
        PersonName::parse(raw).expect("a valid name")
    }

    fn registered(role: Role) -> AccountEvent {
        AccountEvent::AccountRegistered {
            account_id: ada_id(),
            email: email("ada@example.com"),
            name: name("Ada"),
            phone: None,
            role,
            registered_by: manager(),
            at: at(0),
        }
    }

    fn home(id: u128) -> SavedAddress {
        SavedAddress {
            address_id: Uuid::from_u128(id),
            address: Address {
                street: format!("{id} Rue de la Paix"),
                city: "Paris".into(),
                postal_code: "75002".into(),
                lat: None,
                lon: None,
            },
        }
    }

    fn added(saved: &SavedAddress) -> AccountEvent {
        AccountEvent::AddressAdded {
            address_id: saved.address_id,
            address: saved.address.clone(),
            at: at(1),
        }
    }

    fn update_addresses(addresses: Vec<SavedAddress>) -> AccountCommand {
        AccountCommand::UpdateProfile {
            name: None,
            phone: None,
            addresses: Some(addresses),
            dietary: None,
            at: at(1),
        }
    }

    #[test]
    fn a_customer_signs_up_as_a_customer() {
        AccountTest::with(())
            .given_no_previous_events()
            .when(AccountCommand::SignUp {
                account_id: ada_id(),
                email: email("ada@example.com"),
                name: name("Ada"),
                phone: None,
                at: at(0),
            })
            .then_expect_events(vec![AccountEvent::AccountRegistered {
                account_id: ada_id(),
                email: email("ada@example.com"),
                name: name("Ada"),
                phone: None,
                role: Role::Customer,
                registered_by: Actor::user(ada_id(), Role::Customer),
                at: at(0),
            }]);
    }

    #[test]
    fn an_account_cannot_be_registered_twice() {
        AccountTest::with(())
            .given(vec![registered(Role::Customer)])
            .when(AccountCommand::SignUp {
                account_id: ada_id(),
                email: email("ada@example.com"),
                name: name("Ada"),
                phone: None,
                at: at(1),
            })
            .then_expect_error(AccountError::AlreadyRegistered);
    }

    #[test]
    fn a_manager_registers_a_courier() {
        AccountTest::with(())
            .given_no_previous_events()
            .when(AccountCommand::RegisterStaff {
                account_id: ada_id(),
                email: email("ada@example.com"),
                name: name("Ada"),
                phone: None,
                role: Role::Courier,
                by: manager(),
                at: at(0),
            })
            .then_expect_events(vec![registered(Role::Courier)]);
    }

    #[test]
    fn the_system_registers_the_first_manager() {
        let events = AccountTest::with(())
            .given_no_previous_events()
            .when(AccountCommand::RegisterStaff {
                account_id: ada_id(),
                email: email("ada@example.com"),
                name: name("Ada"),
                phone: None,
                role: Role::Manager,
                by: Actor::System,
                at: at(0),
            })
            .inspect_result()
            .expect("the system may register a manager");
        assert!(matches!(
            events.as_slice(),
            [AccountEvent::AccountRegistered {
                role: Role::Manager,
                registered_by: Actor::System,
                ..
            }]
        ));
    }

    #[test]
    fn a_chef_cannot_register_staff() {
        AccountTest::with(())
            .given_no_previous_events()
            .when(AccountCommand::RegisterStaff {
                account_id: ada_id(),
                email: email("ada@example.com"),
                name: name("Ada"),
                phone: None,
                role: Role::Chef,
                by: Actor::user(Uuid::from_u128(7), Role::Chef),
                at: at(0),
            })
            .then_expect_error(AccountError::ManagerOnly);
    }

    #[test]
    fn staff_registration_refuses_the_customer_role() {
        AccountTest::with(())
            .given_no_previous_events()
            .when(AccountCommand::RegisterStaff {
                account_id: ada_id(),
                email: email("ada@example.com"),
                name: name("Ada"),
                phone: None,
                role: Role::Customer,
                by: manager(),
                at: at(0),
            })
            .then_expect_error(AccountError::NotAStaffRole);
    }

    #[test]
    fn a_profile_update_reports_only_what_changed() {
        let phone = Phone::parse("+33 6 12 34 56 78").expect("a valid phone");
        AccountTest::with(())
            .given(vec![registered(Role::Customer)])
            .when(AccountCommand::UpdateProfile {
                name: Some(name("Ada")),
                phone: Some(Some(phone.clone())),
                addresses: None,
                dietary: None,
                at: at(1),
            })
            .then_expect_events(vec![AccountEvent::ProfileUpdated {
                name: name("Ada"),
                phone: Some(phone),
                at: at(1),
            }]);
    }

    #[test]
    fn an_unchanged_profile_emits_nothing() {
        AccountTest::with(())
            .given(vec![registered(Role::Customer)])
            .when(AccountCommand::UpdateProfile {
                name: Some(name("Ada")),
                phone: Some(None),
                addresses: None,
                dietary: None,
                at: at(1),
            })
            .then_expect_events(vec![]);
    }

    #[test]
    fn replacing_addresses_removes_the_missing_and_adds_the_new() {
        AccountTest::with(())
            .given(vec![
                registered(Role::Customer),
                added(&home(1)),
                added(&home(2)),
            ])
            .when(update_addresses(vec![home(2), home(3)]))
            .then_expect_events(vec![
                AccountEvent::AddressRemoved {
                    address_id: Uuid::from_u128(1),
                    at: at(1),
                },
                added(&home(3)),
            ]);
    }

    #[test]
    fn an_invalid_address_names_its_position_and_field() {
        let mut bad = home(2);
        bad.address.city = " ".into();
        AccountTest::with(())
            .given(vec![registered(Role::Customer)])
            .when(update_addresses(vec![home(1), bad]))
            .then_expect_error(AccountError::InvalidAddress {
                index: 1,
                error: AddressError::Missing { field: "city" },
            });
        let error = AccountError::InvalidAddress {
            index: 1,
            error: AddressError::Missing { field: "city" },
        };
        assert_eq!(error.field().as_deref(), Some("addresses[1].city"));
    }

    #[test]
    fn a_profile_keeps_at_most_ten_addresses() {
        AccountTest::with(())
            .given(vec![registered(Role::Customer)])
            .when(update_addresses((1..=11).map(home).collect()))
            .then_expect_error(AccountError::TooManyAddresses { max: 10 });
    }

    #[test]
    fn a_customer_declares_allergens_and_diets_once() {
        let declared = DietaryProfile::new([Allergen::Peanuts, Allergen::Milk], [Diet::Vegetarian]);
        let declare = |dietary: DietaryProfile| AccountCommand::UpdateProfile {
            name: None,
            phone: None,
            addresses: None,
            dietary: Some(dietary),
            at: at(1),
        };
        let changed = AccountEvent::DietaryProfileChanged {
            allergens: vec![Allergen::Peanuts, Allergen::Milk],
            diets: vec![Diet::Vegetarian],
            at: at(1),
        };
        AccountTest::with(())
            .given(vec![registered(Role::Customer)])
            .when(declare(declared.clone()))
            .then_expect_events(vec![changed.clone()]);
        AccountTest::with(())
            .given(vec![registered(Role::Customer), changed.clone()])
            .when(declare(declared))
            .then_expect_events(vec![]);
        let (_, reloaded, _) = handle_then_reload::<Account>(
            vec![registered(Role::Customer), changed],
            declare(DietaryProfile::default()),
        );
        assert!(reloaded.dietary().allergens().is_empty());
    }

    #[test]
    fn a_password_change_moves_to_the_next_credential_version() {
        AccountTest::with(())
            .given(vec![
                registered(Role::Customer),
                AccountEvent::PasswordChanged {
                    credential_version: 2,
                    at: at(1),
                },
            ])
            .when(AccountCommand::ChangePassword { at: at(2) })
            .then_expect_events(vec![AccountEvent::PasswordChanged {
                credential_version: 3,
                at: at(2),
            }]);
    }

    #[test]
    fn a_manager_grants_another_role() {
        AccountTest::with(())
            .given(vec![registered(Role::Chef)])
            .when(AccountCommand::GrantRole {
                role: Role::Manager,
                by: manager(),
                at: at(1),
            })
            .then_expect_events(vec![AccountEvent::RoleGranted {
                role: Role::Manager,
                previous_role: Role::Chef,
                by: manager(),
                at: at(1),
            }]);
    }

    #[test]
    fn a_manager_cannot_change_their_own_role() {
        AccountTest::with(())
            .given(vec![registered(Role::Manager)])
            .when(AccountCommand::GrantRole {
                role: Role::Chef,
                by: Actor::user(ada_id(), Role::Manager),
                at: at(1),
            })
            .then_expect_error(AccountError::CannotChangeOwnRole);
    }

    #[test]
    fn a_manager_disables_an_account_once() {
        let disabled = AccountEvent::AccountDisabled {
            by: manager(),
            reason: Some("left the team".into()),
            at: at(1),
        };
        AccountTest::with(())
            .given(vec![registered(Role::Courier)])
            .when(AccountCommand::Disable {
                by: manager(),
                reason: Some("  left the team ".into()),
                at: at(1),
            })
            .then_expect_events(vec![disabled.clone()]);
        AccountTest::with(())
            .given(vec![registered(Role::Courier), disabled])
            .when(AccountCommand::Disable {
                by: manager(),
                reason: None,
                at: at(2),
            })
            .then_expect_events(vec![]);
    }

    #[test]
    fn a_manager_cannot_disable_themselves() {
        AccountTest::with(())
            .given(vec![registered(Role::Manager)])
            .when(AccountCommand::Disable {
                by: Actor::user(ada_id(), Role::Manager),
                reason: None,
                at: at(1),
            })
            .then_expect_error(AccountError::CannotDisableSelf);
    }

    #[test]
    fn a_disabled_account_cannot_change_its_profile() {
        AccountTest::with(())
            .given(vec![
                registered(Role::Customer),
                AccountEvent::AccountDisabled {
                    by: manager(),
                    reason: None,
                    at: at(1),
                },
            ])
            .when(AccountCommand::ChangePassword { at: at(2) })
            .then_expect_error(AccountError::Disabled);
    }

    #[test]
    fn commands_on_an_unknown_account_are_refused() {
        AccountTest::with(())
            .given_no_previous_events()
            .when(AccountCommand::ChangePassword { at: at(0) })
            .then_expect_error(AccountError::NotFound);
    }

    #[test]
    fn an_account_reloads_to_the_state_its_handler_left() {
        let (handled, reloaded, emitted) = handle_then_reload::<Account>(
            vec![registered(Role::Customer), added(&home(1))],
            update_addresses(vec![home(2)]),
        );
        assert_eq!(emitted.len(), 2);
        assert_eq!(handled, reloaded);
        assert_eq!(reloaded.addresses(), &[home(2)]);
        assert!(reloaded.is_active());
        assert_eq!(reloaded.credential_version(), 1);
    }

    #[test]
    fn events_never_carry_a_password() {
        let json = serde_json::to_string(&registered(Role::Customer)).expect("serializes");
        assert!(!json.to_lowercase().contains("password"));
    }
}
