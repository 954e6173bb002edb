//! The value types of an account's profile: e-mail address, name, phone, saved addresses.
//!
//! Each is parsed once, at the edge, from what a user typed; a value that exists is valid. They
//! serialize as plain strings, so events stay readable by any consumer.

use std::fmt;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::AccountError;
use crate::shared::char_len;
use crate::{Address, Allergen, Diet};

/// An e-mail address: trimmed, its domain lower-cased (domains are case-insensitive; the local
/// part is kept as typed, because some mail servers honour its case).
///
/// Two addresses that differ only in case belong to the same person: [`Email::lookup_key`] is
/// what uniqueness is checked on.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Email(String);

impl Email {
    /// Longest address accepted (RFC 5321's path limit).
    pub const MAX_CHARS: usize = 254;

    /// A deliberately plain check: one `@`, a non-empty local part of at most 64 characters, a
    /// dotted domain of letters, digits and hyphens, no spaces. Confirmation mails, not regular
    /// expressions, prove an address works.
    ///
    /// # Errors
    /// [`AccountError::InvalidEmail`] when `raw` does not look like an e-mail address.
    pub fn parse(raw: &str) -> Result<Self, AccountError> {
        let trimmed = raw.trim();
        let (local, domain) = trimmed.split_once('@').ok_or(AccountError::InvalidEmail)?;
        let local_ok = !local.is_empty()
            && char_len(local) <= 64
            && local
                .chars()
                .all(|c| !c.is_whitespace() && !c.is_control() && c != '@');
        let domain_ok = domain.contains('.')
            && domain.split('.').all(|label| {
                !label.is_empty()
                    && !label.starts_with('-')
                    && !label.ends_with('-')
                    && label.chars().all(|c| c.is_alphanumeric() || c == '-')
            });
        if !local_ok || !domain_ok || char_len(trimmed) > Self::MAX_CHARS {
            return Err(AccountError::InvalidEmail);
        }
        Ok(Self(format!("{local}@{}", domain.to_lowercase())))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The key uniqueness is enforced on: the whole address in lower case.
    pub fn lookup_key(&self) -> String {
        self.0.to_lowercase()
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The name a person goes by: trimmed, 1 to 100 characters, no control characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct PersonName(String);

impl PersonName {
    pub const MAX_CHARS: usize = 100;

    /// # Errors
    /// [`AccountError::NameRequired`] when blank, [`AccountError::NameTooLong`] past 100
    /// characters, [`AccountError::InvalidName`] with control characters.
    pub fn parse(raw: &str) -> Result<Self, AccountError> {
        let trimmed = raw.trim();
        if trimmed.is_empty() {
            return Err(AccountError::NameRequired);
        }
        if char_len(trimmed) > Self::MAX_CHARS {
            return Err(AccountError::NameTooLong {
                max: Self::MAX_CHARS,
            });
        }
        if trimmed.chars().any(char::is_control) {
            return Err(AccountError::InvalidName);
        }
        Ok(Self(trimmed.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for PersonName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A phone number as people write it (`+33 6 12 34 56 78`, `(555) 010-1234`): digits, spaces and
/// `+ - ( ) .`, with 4 to 20 digits, at most 32 characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Phone(String);

impl Phone {
    pub const MAX_CHARS: usize = 32;

    /// # Errors
    /// [`AccountError::InvalidPhone`] when `raw` is not a plausible phone number.
    pub fn parse(raw: &str) -> Result<Self, AccountError> {
        let trimmed = raw.trim();
        let allowed = trimmed
            .chars()
            .all(|c| c.is_ascii_digit() || " +-().".contains(c));
        let digits = trimmed.chars().filter(char::is_ascii_digit).count();
        if !allowed || !(4..=20).contains(&digits) || char_len(trimmed) > Self::MAX_CHARS {
            return Err(AccountError::InvalidPhone);
        }
        Ok(Self(trimmed.to_owned()))
    }

    /// `None` for a blank value, so "no phone" has one spelling.
    ///
    /// # Errors
    /// As [`Phone::parse`].
    pub fn parse_optional(raw: Option<&str>) -> Result<Option<Self>, AccountError> {
        match raw.map(str::trim) {
            None | Some("") => Ok(None),
            Some(value) => Self::parse(value).map(Some),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Phone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A delivery address saved on a profile, with the id the customer picks it by.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SavedAddress {
    pub address_id: Uuid,
    pub address: Address,
}

/// What a customer declares they cannot or will not eat: allergens (the 14 EU ones) and diets.
/// Kept sorted and without duplicates, so two equal declarations compare equal.
///
/// Allergens matter beyond the profile: the orders service refuses an order whose dishes
/// contain a declared allergen until the customer confirms it, and flags the kitchen ticket.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DietaryProfile {
    #[serde(default)]
    allergens: Vec<Allergen>,
    #[serde(default)]
    diets: Vec<Diet>,
}

impl DietaryProfile {
    /// The declaration, sorted and deduplicated.
    pub fn new(
        allergens: impl IntoIterator<Item = Allergen>,
        diets: impl IntoIterator<Item = Diet>,
    ) -> Self {
        let mut allergens: Vec<Allergen> = allergens.into_iter().collect();
        allergens.sort_unstable();
        allergens.dedup();
        let mut diets: Vec<Diet> = diets.into_iter().collect();
        diets.sort_unstable();
        diets.dedup();
        Self { allergens, diets }
    }

    /// Parses allergen and diet names as a person's client sends them (`"peanuts"`,
    /// `"gluten_free"`; case and surrounding spaces do not matter).
    ///
    /// # Errors
    /// [`AccountError::UnknownAllergen`] or [`AccountError::UnknownDiet`] naming the first
    /// unknown name and its position.
    pub fn parse(allergens: &[String], diets: &[String]) -> Result<Self, AccountError> {
        let allergens = allergens
            .iter()
            .enumerate()
            .map(|(index, raw)| {
                raw.trim().to_lowercase().parse::<Allergen>().map_err(|_| {
                    AccountError::UnknownAllergen {
                        index,
                        value: raw.clone(),
                    }
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let diets = diets
            .iter()
            .enumerate()
            .map(|(index, raw)| {
                raw.trim()
                    .to_lowercase()
                    .parse::<Diet>()
                    .map_err(|_| AccountError::UnknownDiet {
                        index,
                        value: raw.clone(),
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self::new(allergens, diets))
    }

    pub fn allergens(&self) -> &[Allergen] {
        &self.allergens
    }

    pub fn diets(&self) -> &[Diet] {
        &self.diets
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_email_keeps_its_local_part_and_lowers_its_domain() {
        let email = Email::parse("  Ada.Lovelace@Example.COM ").expect("a valid address");
        assert_eq!(email.as_str(), "Ada.Lovelace@example.com");
        assert_eq!(email.lookup_key(), "ada.lovelace@example.com");
    }

    #[test]
    fn malformed_emails_are_refused() {
        for raw in [
            "",
            "ada",
            "ada@",
            "@example.com",
            "ada@example",
            "ada@@example.com",
            "a da@example.com",
            "ada@exa mple.com",
            "ada@.example.com",
            "ada@-example.com",
        ] {
            assert_eq!(
                Email::parse(raw),
                Err(AccountError::InvalidEmail),
                "{raw:?}"
            );
        }
        let long = format!("{}@example.com", "a".repeat(65));
        assert_eq!(Email::parse(&long), Err(AccountError::InvalidEmail));
    }

    #[test]
    fn a_name_is_trimmed_and_bounded() {
        assert_eq!(
            PersonName::parse("  Ada ").map(|n| n.as_str().to_owned()),
            Ok("Ada".to_owned())
        );
        assert_eq!(PersonName::parse("   "), Err(AccountError::NameRequired));
        assert_eq!(
            PersonName::parse(&"x".repeat(101)),
            Err(AccountError::NameTooLong { max: 100 })
        );
        assert_eq!(
            PersonName::parse("Ada\u{0}"),
            Err(AccountError::InvalidName)
        );
    }

    #[test]
    fn a_dietary_profile_is_sorted_without_duplicates() {
        let profile = DietaryProfile::new(
            [Allergen::Milk, Allergen::Gluten, Allergen::Milk],
            [Diet::Vegan, Diet::Vegetarian, Diet::Vegan],
        );
        assert_eq!(profile.allergens(), &[Allergen::Gluten, Allergen::Milk]);
        assert_eq!(profile.diets(), &[Diet::Vegetarian, Diet::Vegan]);
        assert_eq!(
            profile,
            DietaryProfile::new(
                [Allergen::Gluten, Allergen::Milk],
                [Diet::Vegan, Diet::Vegetarian]
            )
        );
    }

    #[test]
    fn an_unknown_allergen_or_diet_is_named_with_its_position() {
        let parsed = DietaryProfile::parse(&[" Peanuts ".into()], &["gluten_free".into()])
            .expect("known names");
        assert_eq!(parsed.allergens(), &[Allergen::Peanuts]);
        let error = DietaryProfile::parse(&["milk".into(), "shellfish".into()], &[])
            .expect_err("unknown allergen");
        assert_eq!(error.field().as_deref(), Some("allergens[1]"));
        assert_eq!(error.code(), "unknown-allergen");
        let error = DietaryProfile::parse(&[], &["paleo".into()]).expect_err("unknown diet");
        assert_eq!(error.field().as_deref(), Some("diets[0]"));
    }

    #[test]
    fn a_phone_is_digits_and_punctuation() {
        assert!(Phone::parse("+33 6 12 34 56 78").is_ok());
        assert!(Phone::parse("(555) 010-1234").is_ok());
        assert_eq!(Phone::parse("call me"), Err(AccountError::InvalidPhone));
        assert_eq!(Phone::parse("12"), Err(AccountError::InvalidPhone));
        assert_eq!(Phone::parse_optional(Some("  ")), Ok(None));
        assert_eq!(Phone::parse_optional(None), Ok(None));
    }
}
