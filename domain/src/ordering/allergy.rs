//! Allergens at checkout: which lines of an order contain an allergen the customer declared.
//!
//! The customer's declaration lives in identity (`identity.account.dietary_profile_changed`);
//! the orders service keeps a copy, and the dishes' allergens come from the menu. The rule
//! itself is the [`Order`](super::Order)'s: an order with a conflict is refused
//! ([`OrderError::AllergenConfirmationRequired`](super::OrderError::AllergenConfirmationRequired),
//! naming every dish and allergen) unless the customer confirmed it, knowingly; a placed
//! order with declared allergens carries them to the kitchen, which shows them on the ticket.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::Allergen;

/// One line whose dish contains allergens the customer declared.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AllergenConflict {
    /// 0-based line of the order.
    pub line: usize,
    pub dish_id: Uuid,
    pub dish_name: String,
    /// The declared allergens the dish contains, sorted.
    pub allergens: Vec<Allergen>,
}

/// What the `Place` command knows about allergies: the customer's declaration, the lines that
/// conflict with it, and whether the customer confirmed them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AllergyCheck {
    /// The customer's declared allergens when ordering, sorted, without duplicates.
    pub declared: Vec<Allergen>,
    pub conflicts: Vec<AllergenConflict>,
    /// The customer said they know the dishes contain their allergens.
    pub confirmed: bool,
}

/// One dish of a basket as the allergen check sees it.
#[derive(Debug, Clone, Copy)]
pub struct DishAllergens<'a> {
    pub dish_id: Uuid,
    pub dish_name: &'a str,
    pub allergens: &'a [Allergen],
}

impl AllergyCheck {
    /// Compares each line's dish (in line order) with the declared allergens.
    pub fn of<'a>(
        declared: &[Allergen],
        lines: impl IntoIterator<Item = DishAllergens<'a>>,
        confirmed: bool,
    ) -> Self {
        let mut declared = declared.to_vec();
        declared.sort_unstable();
        declared.dedup();
        let conflicts = lines
            .into_iter()
            .enumerate()
            .filter_map(|(line, dish)| {
                let mut found: Vec<Allergen> = dish
                    .allergens
                    .iter()
                    .copied()
                    .filter(|allergen| declared.contains(allergen))
                    .collect();
                found.sort_unstable();
                found.dedup();
                (!found.is_empty()).then(|| AllergenConflict {
                    line,
                    dish_id: dish.dish_id,
                    dish_name: dish.dish_name.to_owned(),
                    allergens: found,
                })
            })
            .collect();
        Self {
            declared,
            conflicts,
            confirmed,
        }
    }

    /// Whether the order must be refused until the customer confirms.
    pub fn needs_confirmation(&self) -> bool {
        !self.conflicts.is_empty() && !self.confirmed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dish<'a>(id: u128, name: &'a str, allergens: &'a [Allergen]) -> DishAllergens<'a> {
        DishAllergens {
            dish_id: Uuid::from_u128(id),
            dish_name: name,
            allergens,
        }
    }

    #[test]
    fn only_lines_with_a_declared_allergen_conflict() {
        let check = AllergyCheck::of(
            &[Allergen::Peanuts, Allergen::Milk],
            [
                dish(1, "Salade", &[Allergen::Mustard]),
                dish(2, "Satay", &[Allergen::Peanuts, Allergen::Soybeans]),
                dish(3, "Crème brûlée", &[Allergen::Milk, Allergen::Eggs]),
            ],
            false,
        );
        assert_eq!(check.conflicts.len(), 2);
        assert_eq!(check.conflicts[0].line, 1);
        assert_eq!(check.conflicts[0].allergens, vec![Allergen::Peanuts]);
        assert_eq!(check.conflicts[1].dish_name, "Crème brûlée");
        assert!(check.needs_confirmation());
    }

    #[test]
    fn a_confirmation_or_no_declaration_lets_the_order_through() {
        let confirmed = AllergyCheck::of(
            &[Allergen::Gluten],
            [dish(1, "Baguette", &[Allergen::Gluten])],
            true,
        );
        assert!(!confirmed.needs_confirmation());
        let undeclared = AllergyCheck::of(&[], [dish(1, "Baguette", &[Allergen::Gluten])], false);
        assert!(undeclared.conflicts.is_empty());
        assert!(!undeclared.needs_confirmation());
    }
}
