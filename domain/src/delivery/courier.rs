//! The `Courier` aggregate: a member of the delivery fleet, whether they work today (active)
//! and whether they are working now (on shift).
//!
//! Dispatch only offers deliveries to couriers who exist, are active and are on shift. A
//! courier always leaves a shift through an explicit `CourierOffShift`, also when deactivated or
//! removed while on shift, so "who is on shift" can be followed from two events. A removed
//! courier stays in the store (its id is never reused) but accepts no further command.

use std::fmt;

use chrono::{DateTime, Utc};
use cqrs_es::event_sink::EventSink;
use cqrs_es::Aggregate;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{CourierCommand, CourierError, CourierEvent};
use crate::shared::{char_len, non_blank};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Vehicle {
    Bike,
    Scooter,
    Car,
}

impl Vehicle {
    /// The same spelling as serde uses.
    pub fn as_str(self) -> &'static str {
        match self {
            Vehicle::Bike => "bike",
            Vehicle::Scooter => "scooter",
            Vehicle::Car => "car",
        }
    }
}

impl fmt::Display for Vehicle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A courier. `Courier::default()` is a courier not hired yet.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Courier {
    hired: Option<HiredCourier>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct HiredCourier {
    courier_id: Uuid,
    account_id: Option<Uuid>,
    name: String,
    phone: Option<String>,
    vehicle: Vehicle,
    active: bool,
    on_shift: bool,
    removed: bool,
    hired_at: DateTime<Utc>,
}

impl Courier {
    pub const MAX_NAME_CHARS: usize = 80;
    pub const MAX_PHONE_CHARS: usize = 30;

    /// Hired and not removed.
    pub fn exists(&self) -> bool {
        self.hired.as_ref().is_some_and(|c| !c.removed)
    }

    pub fn is_removed(&self) -> bool {
        self.hired.as_ref().is_some_and(|c| c.removed)
    }

    pub fn courier_id(&self) -> Option<Uuid> {
        self.hired.as_ref().map(|c| c.courier_id)
    }

    /// The sign-in account of the courier, if linked.
    pub fn account_id(&self) -> Option<Uuid> {
        self.hired.as_ref().and_then(|c| c.account_id)
    }

    pub fn name(&self) -> Option<&str> {
        self.hired.as_ref().map(|c| c.name.as_str())
    }

    pub fn phone(&self) -> Option<&str> {
        self.hired.as_ref().and_then(|c| c.phone.as_deref())
    }

    pub fn vehicle(&self) -> Option<Vehicle> {
        self.hired.as_ref().map(|c| c.vehicle)
    }

    pub fn hired_at(&self) -> Option<DateTime<Utc>> {
        self.hired.as_ref().map(|c| c.hired_at)
    }

    /// Exists and is not deactivated.
    pub fn is_active(&self) -> bool {
        self.exists() && self.hired.as_ref().is_some_and(|c| c.active)
    }

    pub fn is_on_shift(&self) -> bool {
        self.hired.as_ref().is_some_and(|c| c.on_shift)
    }

    /// Whether dispatch may offer this courier a delivery.
    pub fn is_available_for_dispatch(&self) -> bool {
        self.is_active() && self.is_on_shift()
    }

    fn decide(&self, command: CourierCommand) -> Result<Vec<CourierEvent>, CourierError> {
        match command {
            CourierCommand::Hire {
                courier_id,
                account_id,
                name,
                phone,
                vehicle,
                at,
            } => {
                if let Some(courier) = &self.hired {
                    // A redelivered hire is not an error; a different hire under the same id is.
                    return if courier.account_id == account_id {
                        Ok(Vec::new())
                    } else {
                        Err(CourierError::CourierAlreadyExists)
                    };
                }
                Ok(vec![CourierEvent::CourierHired {
                    courier_id,
                    account_id,
                    name: valid_name(&name)?,
                    phone: valid_phone(phone)?,
                    vehicle,
                    at,
                }])
            }
            CourierCommand::Update {
                name,
                phone,
                vehicle,
                active,
                at,
            } => {
                let courier = self.existing()?;
                let name = name
                    .map(|name| valid_name(&name))
                    .transpose()?
                    .filter(|name| *name != courier.name);
                // A blank phone removes it; the removal is recorded as `Some("")`.
                let phone = match phone {
                    None => None,
                    Some(phone) => {
                        let phone = valid_phone(Some(phone))?;
                        (phone != courier.phone).then(|| phone.unwrap_or_default())
                    }
                };
                let vehicle = vehicle.filter(|vehicle| *vehicle != courier.vehicle);
                let active = active.filter(|active| *active != courier.active);
                if name.is_none() && phone.is_none() && vehicle.is_none() && active.is_none() {
                    return Ok(Vec::new());
                }
                let mut events = vec![CourierEvent::CourierUpdated {
                    name,
                    phone,
                    vehicle,
                    active,
                    at,
                }];
                if active == Some(false) && courier.on_shift {
                    events.push(CourierEvent::CourierOffShift { at });
                }
                Ok(events)
            }
            CourierCommand::SetShift { on_shift, at } => {
                let courier = self.hired.as_ref().ok_or(CourierError::CourierNotFound)?;
                if courier.removed || !courier.active {
                    return Err(CourierError::CourierInactive);
                }
                Ok(match (courier.on_shift, on_shift) {
                    (false, true) => vec![CourierEvent::CourierOnShift { at }],
                    (true, false) => vec![CourierEvent::CourierOffShift { at }],
                    _ => Vec::new(),
                })
            }
            CourierCommand::Remove { at } => {
                let courier = self.existing()?;
                let mut events = Vec::with_capacity(2);
                if courier.on_shift {
                    events.push(CourierEvent::CourierOffShift { at });
                }
                events.push(CourierEvent::CourierRemoved { at });
                Ok(events)
            }
        }
    }

    /// The courier, unless never hired or removed.
    fn existing(&self) -> Result<&HiredCourier, CourierError> {
        self.hired
            .as_ref()
            .filter(|c| !c.removed)
            .ok_or(CourierError::CourierNotFound)
    }

    fn evolve(&mut self, change: impl FnOnce(&mut HiredCourier)) {
        if let Some(courier) = &mut self.hired {
            change(courier);
        }
    }
}

fn valid_name(name: &str) -> Result<String, CourierError> {
    let name = name.trim();
    if name.is_empty() {
        return Err(CourierError::Blank { field: "name" });
    }
    if char_len(name) > Courier::MAX_NAME_CHARS {
        return Err(CourierError::TooLong {
            field: "name",
            max: Courier::MAX_NAME_CHARS,
        });
    }
    Ok(name.to_owned())
}

/// Trimmed; blank becomes `None`.
fn valid_phone(phone: Option<String>) -> Result<Option<String>, CourierError> {
    let phone = non_blank(phone);
    if phone
        .as_deref()
        .is_some_and(|p| char_len(p) > Courier::MAX_PHONE_CHARS)
    {
        return Err(CourierError::TooLong {
            field: "phone",
            max: Courier::MAX_PHONE_CHARS,
        });
    }
    Ok(phone)
}

impl Aggregate for Courier {
    const TYPE: &'static str = "courier";
    type Command = CourierCommand;
    type Event = CourierEvent;
    type Error = CourierError;
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
            CourierEvent::CourierHired {
                courier_id,
                account_id,
                name,
                phone,
                vehicle,
                at,
            } => {
                self.hired = Some(HiredCourier {
                    courier_id,
                    account_id,
                    name,
                    phone,
                    vehicle,
                    active: true,
                    on_shift: false,
                    removed: false,
                    hired_at: at,
                });
            }
            CourierEvent::CourierUpdated {
                name,
                phone,
                vehicle,
                active,
                at: _,
            } => self.evolve(|c| {
                if let Some(name) = name {
                    c.name = name;
                }
                if let Some(phone) = phone {
                    c.phone = Some(phone).filter(|p| !p.is_empty());
                }
                if let Some(vehicle) = vehicle {
                    c.vehicle = vehicle;
                }
                if let Some(active) = active {
                    c.active = active;
                }
            }),
            CourierEvent::CourierOnShift { .. } => self.evolve(|c| c.on_shift = true),
            CourierEvent::CourierOffShift { .. } => self.evolve(|c| c.on_shift = false),
            CourierEvent::CourierRemoved { .. } => self.evolve(|c| {
                c.removed = true;
                c.on_shift = false;
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use cqrs_es::test::TestFramework;
    use cqrs_es::DomainEvent;

    use super::*;
    use crate::test_support::{at, handle_then_reload};

    type CourierTest = TestFramework<Courier>;

    const COURIER: Uuid = Uuid::from_u128(20);
    const ACCOUNT: Uuid = Uuid::from_u128(30);

    fn hire() -> CourierCommand {
        CourierCommand::Hire {
            courier_id: COURIER,
            account_id: Some(ACCOUNT),
            name: " Alice Martin ".into(),
            phone: Some("+33 6 12 34 56 78".into()),
            vehicle: Vehicle::Bike,
            at: at(0),
        }
    }

    fn hired() -> CourierEvent {
        CourierEvent::CourierHired {
            courier_id: COURIER,
            account_id: Some(ACCOUNT),
            name: "Alice Martin".into(),
            phone: Some("+33 6 12 34 56 78".into()),
            vehicle: Vehicle::Bike,
            at: at(0),
        }
    }

    fn update(
        name: Option<&str>,
        phone: Option<&str>,
        vehicle: Option<Vehicle>,
        active: Option<bool>,
    ) -> CourierCommand {
        CourierCommand::Update {
            name: name.map(Into::into),
            phone: phone.map(Into::into),
            vehicle,
            active,
            at: at(1),
        }
    }

    fn updated(
        name: Option<&str>,
        phone: Option<&str>,
        vehicle: Option<Vehicle>,
        active: Option<bool>,
    ) -> CourierEvent {
        CourierEvent::CourierUpdated {
            name: name.map(Into::into),
            phone: phone.map(Into::into),
            vehicle,
            active,
            at: at(1),
        }
    }

    fn on_shift() -> CourierEvent {
        CourierEvent::CourierOnShift { at: at(2) }
    }

    fn removed() -> CourierEvent {
        CourierEvent::CourierRemoved { at: at(3) }
    }

    fn set_shift(on_shift: bool) -> CourierCommand {
        CourierCommand::SetShift {
            on_shift,
            at: at(2),
        }
    }

    // --- hiring ---------------------------------------------------------------------------

    #[test]
    fn a_manager_hires_a_courier() {
        CourierTest::with(())
            .given_no_previous_events()
            .when(hire())
            .then_expect_events(vec![hired()]);
    }

    #[test]
    fn hiring_the_same_courier_again_changes_nothing() {
        CourierTest::with(())
            .given(vec![hired(), on_shift()])
            .when(hire())
            .then_expect_events(vec![]);
    }

    #[test]
    fn a_different_hire_under_an_existing_id_is_refused() {
        CourierTest::with(())
            .given(vec![hired()])
            .when(CourierCommand::Hire {
                courier_id: COURIER,
                account_id: None,
                name: "Bob".into(),
                phone: None,
                vehicle: Vehicle::Car,
                at: at(1),
            })
            .then_expect_error(CourierError::CourierAlreadyExists);
    }

    #[test]
    fn a_courier_needs_a_name_and_a_short_phone() {
        CourierTest::with(())
            .given_no_previous_events()
            .when(CourierCommand::Hire {
                courier_id: COURIER,
                account_id: None,
                name: "  ".into(),
                phone: None,
                vehicle: Vehicle::Car,
                at: at(0),
            })
            .then_expect_error(CourierError::Blank { field: "name" });
        CourierTest::with(())
            .given_no_previous_events()
            .when(CourierCommand::Hire {
                courier_id: COURIER,
                account_id: None,
                name: "Bob".into(),
                phone: Some("0".repeat(31)),
                vehicle: Vehicle::Car,
                at: at(0),
            })
            .then_expect_error_message("courier phone is longer than 30 characters");
    }

    // --- updating -------------------------------------------------------------------------

    #[test]
    fn an_update_records_only_what_changed() {
        CourierTest::with(())
            .given(vec![hired()])
            .when(update(
                Some("Alice Martin"),
                None,
                Some(Vehicle::Scooter),
                Some(true),
            ))
            .then_expect_events(vec![updated(None, None, Some(Vehicle::Scooter), None)]);
    }

    #[test]
    fn an_update_that_changes_nothing_records_nothing() {
        CourierTest::with(())
            .given(vec![hired()])
            .when(update(
                Some(" Alice Martin"),
                Some("+33 6 12 34 56 78"),
                Some(Vehicle::Bike),
                None,
            ))
            .then_expect_events(vec![]);
    }

    #[test]
    fn a_blank_phone_removes_the_phone() {
        let (courier, reloaded, emitted) =
            handle_then_reload::<Courier>(vec![hired()], update(None, Some(" "), None, None));
        assert_eq!(emitted, vec![updated(None, Some(""), None, None)]);
        assert_eq!(courier.phone(), None);
        assert_eq!(courier, reloaded);
        CourierTest::with(())
            .given(vec![hired(), updated(None, Some(""), None, None)])
            .when(update(None, Some(""), None, None))
            .then_expect_events(vec![]);
    }

    #[test]
    fn deactivating_a_courier_on_shift_takes_them_off_shift() {
        CourierTest::with(())
            .given(vec![hired(), on_shift()])
            .when(update(None, None, None, Some(false)))
            .then_expect_events(vec![
                updated(None, None, None, Some(false)),
                CourierEvent::CourierOffShift { at: at(1) },
            ]);
    }

    #[test]
    fn an_update_is_validated() {
        CourierTest::with(())
            .given(vec![hired()])
            .when(update(Some(""), None, None, None))
            .then_expect_error(CourierError::Blank { field: "name" });
    }

    #[test]
    fn an_unknown_or_removed_courier_cannot_be_updated_or_removed() {
        for given in [vec![], vec![hired(), removed()]] {
            CourierTest::with(())
                .given(given.clone())
                .when(update(Some("Bob"), None, None, None))
                .then_expect_error(CourierError::CourierNotFound);
            CourierTest::with(())
                .given(given)
                .when(CourierCommand::Remove { at: at(4) })
                .then_expect_error(CourierError::CourierNotFound);
        }
    }

    // --- shifts ---------------------------------------------------------------------------

    #[test]
    fn a_courier_starts_and_ends_a_shift() {
        CourierTest::with(())
            .given(vec![hired()])
            .when(set_shift(true))
            .then_expect_events(vec![on_shift()]);
        CourierTest::with(())
            .given(vec![hired(), on_shift()])
            .when(set_shift(false))
            .then_expect_events(vec![CourierEvent::CourierOffShift { at: at(2) }]);
    }

    #[test]
    fn setting_the_same_shift_records_nothing() {
        CourierTest::with(())
            .given(vec![hired(), on_shift()])
            .when(set_shift(true))
            .then_expect_events(vec![]);
        CourierTest::with(())
            .given(vec![hired()])
            .when(set_shift(false))
            .then_expect_events(vec![]);
    }

    #[test]
    fn an_inactive_or_removed_courier_cannot_change_shift() {
        for given in [
            vec![hired(), updated(None, None, None, Some(false))],
            vec![hired(), removed()],
        ] {
            CourierTest::with(())
                .given(given)
                .when(set_shift(true))
                .then_expect_error(CourierError::CourierInactive);
        }
        CourierTest::with(())
            .given_no_previous_events()
            .when(set_shift(true))
            .then_expect_error(CourierError::CourierNotFound);
    }

    // --- removal --------------------------------------------------------------------------

    #[test]
    fn a_manager_removes_a_courier() {
        CourierTest::with(())
            .given(vec![hired()])
            .when(CourierCommand::Remove { at: at(3) })
            .then_expect_events(vec![removed()]);
    }

    #[test]
    fn removing_a_courier_on_shift_ends_the_shift_first() {
        CourierTest::with(())
            .given(vec![hired(), on_shift()])
            .when(CourierCommand::Remove { at: at(3) })
            .then_expect_events(vec![CourierEvent::CourierOffShift { at: at(3) }, removed()]);
    }

    // --- state, reload, serialization ----------------------------------------------------

    #[test]
    fn the_state_after_handling_equals_the_state_reloaded_from_events() {
        let (handled, reloaded, _) = handle_then_reload::<Courier>(vec![], hire());
        assert_eq!(handled, reloaded);
        let (handled, reloaded, emitted) = handle_then_reload::<Courier>(
            vec![hired(), on_shift()],
            update(Some("Alice M."), None, None, Some(false)),
        );
        assert_eq!(emitted.len(), 2);
        assert_eq!(handled, reloaded);
        assert_eq!(handled.name(), Some("Alice M."));
        assert!(!handled.is_active());
        assert!(!handled.is_on_shift());
    }

    #[test]
    fn getters_expose_the_courier() {
        let (courier, _, _) = handle_then_reload::<Courier>(vec![hired()], set_shift(true));
        assert!(courier.exists());
        assert_eq!(courier.courier_id(), Some(COURIER));
        assert_eq!(courier.account_id(), Some(ACCOUNT));
        assert_eq!(courier.vehicle(), Some(Vehicle::Bike));
        assert_eq!(courier.hired_at(), Some(at(0)));
        assert!(courier.is_available_for_dispatch());

        let (gone, _, _) = handle_then_reload::<Courier>(
            vec![hired(), on_shift()],
            CourierCommand::Remove { at: at(3) },
        );
        assert!(!gone.exists());
        assert!(gone.is_removed());
        assert!(!gone.is_available_for_dispatch());
    }

    #[test]
    fn courier_events_name_their_type_and_subject() {
        assert_eq!(hired().event_type(), "CourierHired");
        assert_eq!(hired().subject_suffix(), "hired");
        assert_eq!(on_shift().subject_suffix(), "on_shift");
        assert_eq!(removed().subject_suffix(), "removed");
        let json = serde_json::to_value(hired()).expect("an event serializes");
        assert_eq!(json["CourierHired"]["accountId"], ACCOUNT.to_string());
        assert_eq!(json["CourierHired"]["vehicle"], "bike");
        assert_eq!(CourierError::CourierInactive.code(), "courier-inactive");
    }
}
