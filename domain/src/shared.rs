//! Value types shared by every bounded context: money, who acted, where to deliver, what a dish
//! contains.
//!
//! They carry no identity and no history; aggregates embed them in their state and events. Each
//! one validates itself so that every context applies the same rules (an address accepted by
//! ordering is an address delivery can use).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// An amount of money in the currency's minor unit (cents), never a float.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Money {
    /// Minor units (cents for EUR).
    pub amount: i64,
    /// ISO 4217 code, e.g. `"EUR"`.
    pub currency: String,
}

impl Money {
    pub fn new(amount: i64, currency: impl Into<String>) -> Self {
        Self {
            amount,
            currency: currency.into(),
        }
    }

    /// `Money::eur(1250)` is 12.50 EUR.
    pub fn eur(cents: i64) -> Self {
        Self::new(cents, "EUR")
    }

    pub fn zero(currency: impl Into<String>) -> Self {
        Self::new(0, currency)
    }

    /// `None` on overflow.
    #[must_use]
    pub fn checked_mul(&self, factor: u32) -> Option<Money> {
        let amount = self.amount.checked_mul(i64::from(factor))?;
        Some(Self::new(amount, self.currency.clone()))
    }

    /// `None` on overflow or when the currencies differ: adding euros to dollars is a bug, not
    /// a number.
    #[must_use]
    pub fn checked_add(&self, other: &Money) -> Option<Money> {
        if self.currency != other.currency {
            return None;
        }
        let amount = self.amount.checked_add(other.amount)?;
        Some(Self::new(amount, self.currency.clone()))
    }

    /// Whether the currency looks like an ISO 4217 code (three upper-case ASCII letters).
    pub fn has_valid_currency(&self) -> bool {
        self.currency.len() == 3 && self.currency.bytes().all(|b| b.is_ascii_uppercase())
    }
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.amount < 0 { "-" } else { "" };
        let cents = self.amount.unsigned_abs();
        write!(
            f,
            "{sign}{}.{:02} {}",
            cents / 100,
            cents % 100,
            self.currency
        )
    }
}

/// What a user account may do. A user has exactly one role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Customer,
    Chef,
    Courier,
    Manager,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Customer, Role::Chef, Role::Courier, Role::Manager];

    /// The same spelling as serde uses (`"customer"`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Customer => "customer",
            Role::Chef => "chef",
            Role::Courier => "courier",
            Role::Manager => "manager",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A role name that is not one of `customer`, `chef`, `courier`, `manager`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown role \"{0}\" (expected customer, chef, courier or manager)")]
pub struct UnknownRole(pub String);

impl FromStr for Role {
    type Err = UnknownRole;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::ALL
            .into_iter()
            .find(|role| role.as_str() == s)
            .ok_or_else(|| UnknownRole(s.to_owned()))
    }
}

/// Who did something: a signed-in user acting in a role, or the system itself (a service
/// reacting to another service's event).
///
/// Serialized as `{"kind":"user","accountId":"…","role":"customer"}` or `{"kind":"system"}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(
    tag = "kind",
    rename_all = "snake_case",
    rename_all_fields = "camelCase"
)]
pub enum Actor {
    User { account_id: Uuid, role: Role },
    System,
}

impl Actor {
    pub fn user(account_id: Uuid, role: Role) -> Self {
        Actor::User { account_id, role }
    }

    /// `None` for the system.
    pub fn role(&self) -> Option<Role> {
        match self {
            Actor::User { role, .. } => Some(*role),
            Actor::System => None,
        }
    }

    /// `None` for the system.
    pub fn account_id(&self) -> Option<Uuid> {
        match self {
            Actor::User { account_id, .. } => Some(*account_id),
            Actor::System => None,
        }
    }
}

/// A delivery address. Coordinates are optional; dispatch uses them when present.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Address {
    pub street: String,
    pub city: String,
    pub postal_code: String,
    pub lat: Option<f64>,
    pub lon: Option<f64>,
}

impl Address {
    /// Longest street, city or postal code accepted, in characters.
    pub const MAX_FIELD_CHARS: usize = 200;

    /// Street, city and postal code must be non-blank and at most 200 characters; coordinates,
    /// when given, must come as a pair and lie on Earth.
    pub fn validate(&self) -> Result<(), AddressError> {
        for (field, value) in [
            ("street", &self.street),
            ("city", &self.city),
            ("postalCode", &self.postal_code),
        ] {
            if value.trim().is_empty() {
                return Err(AddressError::Missing { field });
            }
            if value.chars().count() > Self::MAX_FIELD_CHARS {
                return Err(AddressError::TooLong {
                    field,
                    max: Self::MAX_FIELD_CHARS,
                });
            }
        }
        match (self.lat, self.lon) {
            (None, None) => Ok(()),
            (Some(lat), Some(lon)) => {
                // `contains` is false for NaN, which is what we want.
                if !(-90.0..=90.0).contains(&lat) {
                    Err(AddressError::LatitudeOutOfRange)
                } else if !(-180.0..=180.0).contains(&lon) {
                    Err(AddressError::LongitudeOutOfRange)
                } else {
                    Ok(())
                }
            }
            _ => Err(AddressError::IncompleteCoordinates),
        }
    }
}

/// Why an [`Address`] was refused. `field` uses the serialized (camelCase) field name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddressError {
    #[error("address {field} is required")]
    Missing { field: &'static str },
    #[error("address {field} is longer than {max} characters")]
    TooLong { field: &'static str, max: usize },
    #[error("address latitude must be between -90 and 90")]
    LatitudeOutOfRange,
    #[error("address longitude must be between -180 and 180")]
    LongitudeOutOfRange,
    #[error("address latitude and longitude must be given together")]
    IncompleteCoordinates,
}

impl AddressError {
    pub fn code(&self) -> &'static str {
        match self {
            AddressError::Missing { .. } => "address-field-required",
            AddressError::TooLong { .. } => "address-field-too-long",
            AddressError::LatitudeOutOfRange => "address-latitude-out-of-range",
            AddressError::LongitudeOutOfRange => "address-longitude-out-of-range",
            AddressError::IncompleteCoordinates => "address-incomplete-coordinates",
        }
    }
}

/// The 14 allergens that EU Regulation 1169/2011 requires a menu to declare.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Allergen {
    Gluten,
    Crustaceans,
    Eggs,
    Fish,
    Peanuts,
    Soybeans,
    Milk,
    Nuts,
    Celery,
    Mustard,
    Sesame,
    Sulphites,
    Lupin,
    Molluscs,
}

impl Allergen {
    pub const ALL: [Allergen; 14] = [
        Allergen::Gluten,
        Allergen::Crustaceans,
        Allergen::Eggs,
        Allergen::Fish,
        Allergen::Peanuts,
        Allergen::Soybeans,
        Allergen::Milk,
        Allergen::Nuts,
        Allergen::Celery,
        Allergen::Mustard,
        Allergen::Sesame,
        Allergen::Sulphites,
        Allergen::Lupin,
        Allergen::Molluscs,
    ];

    /// The same spelling as serde uses (`"gluten"`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Allergen::Gluten => "gluten",
            Allergen::Crustaceans => "crustaceans",
            Allergen::Eggs => "eggs",
            Allergen::Fish => "fish",
            Allergen::Peanuts => "peanuts",
            Allergen::Soybeans => "soybeans",
            Allergen::Milk => "milk",
            Allergen::Nuts => "nuts",
            Allergen::Celery => "celery",
            Allergen::Mustard => "mustard",
            Allergen::Sesame => "sesame",
            Allergen::Sulphites => "sulphites",
            Allergen::Lupin => "lupin",
            Allergen::Molluscs => "molluscs",
        }
    }
}

impl fmt::Display for Allergen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A diet a customer declares on their profile. Unlike an [`Allergen`], a diet is a
/// preference the menu helps with (dishes carry dietary tags); it never refuses an order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Diet {
    Vegetarian,
    Vegan,
    Pescatarian,
    GlutenFree,
    DairyFree,
    Halal,
    Kosher,
}

impl Diet {
    pub const ALL: [Diet; 7] = [
        Diet::Vegetarian,
        Diet::Vegan,
        Diet::Pescatarian,
        Diet::GlutenFree,
        Diet::DairyFree,
        Diet::Halal,
        Diet::Kosher,
    ];

    /// The same spelling as serde uses (`"vegetarian"`, `"gluten_free"`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Diet::Vegetarian => "vegetarian",
            Diet::Vegan => "vegan",
            Diet::Pescatarian => "pescatarian",
            Diet::GlutenFree => "gluten_free",
            Diet::DairyFree => "dairy_free",
            Diet::Halal => "halal",
            Diet::Kosher => "kosher",
        }
    }
}

impl fmt::Display for Diet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A name that is not one of the 14 allergens, or not a known diet.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {kind} \"{value}\"")]
pub struct UnknownName {
    pub kind: &'static str,
    pub value: String,
}

impl FromStr for Allergen {
    type Err = UnknownName;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Allergen::ALL
            .into_iter()
            .find(|allergen| allergen.as_str() == s)
            .ok_or_else(|| UnknownName {
                kind: "allergen",
                value: s.to_owned(),
            })
    }
}

impl FromStr for Diet {
    type Err = UnknownName;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Diet::ALL
            .into_iter()
            .find(|diet| diet.as_str() == s)
            .ok_or_else(|| UnknownName {
                kind: "diet",
                value: s.to_owned(),
            })
    }
}

/// Characters (not bytes) in `text`: limits are stated to users in characters.
pub(crate) fn char_len(text: &str) -> usize {
    text.chars().count()
}

/// Trims `text` and turns a blank value into `None`, so "no note" has one spelling.
pub(crate) fn non_blank(text: Option<String>) -> Option<String> {
    text.map(|t| t.trim().to_owned()).filter(|t| !t.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn address() -> Address {
        Address {
            street: "1 Rue de la Paix".into(),
            city: "Paris".into(),
            postal_code: "75002".into(),
            lat: Some(48.87),
            lon: Some(2.33),
        }
    }

    #[test]
    fn money_adds_only_within_one_currency() {
        assert_eq!(
            Money::eur(150).checked_add(&Money::eur(250)),
            Some(Money::eur(400))
        );
        assert_eq!(Money::eur(1).checked_add(&Money::new(1, "USD")), None);
        assert_eq!(Money::eur(i64::MAX).checked_add(&Money::eur(1)), None);
    }

    #[test]
    fn money_multiplication_reports_overflow() {
        assert_eq!(Money::eur(250).checked_mul(3), Some(Money::eur(750)));
        assert_eq!(Money::eur(i64::MAX).checked_mul(2), None);
    }

    #[test]
    fn money_displays_as_units_and_cents() {
        assert_eq!(Money::eur(1250).to_string(), "12.50 EUR");
        assert_eq!(Money::eur(-5).to_string(), "-0.05 EUR");
        assert!(Money::eur(1).has_valid_currency());
        assert!(!Money::new(1, "eur").has_valid_currency());
    }

    #[test]
    fn roles_parse_from_their_serialized_names() {
        for role in Role::ALL {
            assert_eq!(role.as_str().parse::<Role>(), Ok(role));
            assert_eq!(
                serde_json::to_value(role).expect("a role serializes"),
                serde_json::json!(role.as_str())
            );
        }
        assert_eq!("admin".parse::<Role>(), Err(UnknownRole("admin".into())));
    }

    #[test]
    fn actors_serialize_with_a_kind_tag() {
        let id = Uuid::nil();
        let user = Actor::user(id, Role::Manager);
        assert_eq!(
            serde_json::to_value(user).expect("an actor serializes"),
            serde_json::json!({"kind": "user", "accountId": id, "role": "manager"})
        );
        assert_eq!(
            serde_json::to_value(Actor::System).expect("an actor serializes"),
            serde_json::json!({"kind": "system"})
        );
        let back: Actor = serde_json::from_value(serde_json::json!({"kind": "system"}))
            .expect("the system actor deserializes");
        assert_eq!(back, Actor::System);
    }

    #[test]
    fn a_complete_address_is_valid() {
        assert_eq!(address().validate(), Ok(()));
        let without_coordinates = Address {
            lat: None,
            lon: None,
            ..address()
        };
        assert_eq!(without_coordinates.validate(), Ok(()));
    }

    #[test]
    fn an_address_needs_street_city_and_postal_code() {
        let blank_city = Address {
            city: "  ".into(),
            ..address()
        };
        assert_eq!(
            blank_city.validate(),
            Err(AddressError::Missing { field: "city" })
        );
        let long_street = Address {
            street: "x".repeat(201),
            ..address()
        };
        assert_eq!(
            long_street.validate(),
            Err(AddressError::TooLong {
                field: "street",
                max: 200
            })
        );
    }

    #[test]
    fn an_address_rejects_coordinates_off_the_planet() {
        let bad_lat = Address {
            lat: Some(91.0),
            ..address()
        };
        assert_eq!(bad_lat.validate(), Err(AddressError::LatitudeOutOfRange));
        let bad_lon = Address {
            lon: Some(f64::NAN),
            ..address()
        };
        assert_eq!(bad_lon.validate(), Err(AddressError::LongitudeOutOfRange));
        let half = Address {
            lon: None,
            ..address()
        };
        assert_eq!(half.validate(), Err(AddressError::IncompleteCoordinates));
    }

    #[test]
    fn allergens_and_diets_parse_from_their_serialized_names() {
        for allergen in Allergen::ALL {
            assert_eq!(allergen.as_str().parse::<Allergen>(), Ok(allergen));
        }
        for diet in Diet::ALL {
            assert_eq!(diet.as_str().parse::<Diet>(), Ok(diet));
            assert_eq!(
                serde_json::to_value(diet).expect("a diet serializes"),
                serde_json::json!(diet.as_str())
            );
        }
        assert!("shellfish".parse::<Allergen>().is_err());
        assert!("carnivore".parse::<Diet>().is_err());
    }

    #[test]
    fn allergens_serialize_in_snake_case() {
        for allergen in Allergen::ALL {
            assert_eq!(
                serde_json::to_value(allergen).expect("an allergen serializes"),
                serde_json::json!(allergen.as_str())
            );
        }
    }
}
