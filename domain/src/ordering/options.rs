//! Dish options: what a customer chooses besides the dish itself (the steak's cooking, a
//! burger's supplements, a drink's size), and what an order keeps of that choice.
//!
//! A [`Dish`](super::Dish) has option groups ("Cuisson": pick exactly one; "Supplément": pick up
//! to three), each with choices that may cost extra (a price delta, never a discount). The rules
//! of a group are set here twice over:
//! - [`valid_option_groups`]: what a manager may put on a dish (unique names, `min ≤ max ≤
//!   choices`, sane deltas in the dish's currency, bounded counts and lengths);
//! - [`choose`]: what a customer may pick from it (every required group, between `min` and `max`
//!   choices per group, only choices the dish offers, each at most once).
//!
//! An order snapshots the picked options ([`ChosenOption`]: names and deltas as they were), like
//! the dish's name and price, so editing the options later never changes an order.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::DishError;
use crate::shared::char_len;
use crate::Money;

/// One choice of a group: "saignant" (+0), "fromage" (+1.50 €).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OptionChoice {
    pub id: Uuid,
    pub name: String,
    /// What it adds to the dish's price (0 or more), in the dish's currency.
    pub price_delta: Money,
}

/// A group of options of a dish: the customer picks between `min_choices` and `max_choices`
/// of its `choices` (`min_choices > 0` makes the group required).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OptionGroup {
    pub id: Uuid,
    pub name: String,
    pub min_choices: u32,
    pub max_choices: u32,
    pub choices: Vec<OptionChoice>,
}

impl OptionGroup {
    /// Most groups on one dish.
    pub const MAX_GROUPS: usize = 10;
    /// Most choices in one group.
    pub const MAX_CHOICES: usize = 20;
    /// Longest group or choice name, in characters.
    pub const MAX_NAME_CHARS: usize = 60;
    /// 1 000.00 in minor units: a supplement dearer than that is a typo.
    pub const MAX_PRICE_DELTA: i64 = 100_000;

    /// Whether the customer must pick at least one choice.
    pub fn is_required(&self) -> bool {
        self.min_choices > 0
    }
}

/// An option as an order line keeps it: the names and the delta when the order was placed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChosenOption {
    pub group_id: Uuid,
    pub group: String,
    pub choice_id: Uuid,
    pub choice: String,
    pub price_delta: Money,
}

impl ChosenOption {
    /// "Cuisson: saignant", as a ticket or a receipt shows it.
    pub fn label(&self) -> String {
        format!("{}: {}", self.group, self.choice)
    }
}

/// A customer's pick: one choice of one group, by id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OptionPick {
    pub group_id: Uuid,
    pub choice_id: Uuid,
}

/// Why a customer's picks do not fit a dish's options. Groups are named, not numbered: the
/// customer sees the menu's names.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OptionPickError {
    #[error("there is no option group {group_id} on this dish")]
    UnknownGroup { group_id: Uuid },
    #[error("\"{group}\" has no choice {choice_id}")]
    UnknownChoice { group: String, choice_id: Uuid },
    #[error("\"{choice}\" is picked more than once in \"{group}\"")]
    DuplicateChoice { group: String, choice: String },
    #[error("\"{group}\" needs at least {min} choice(s)")]
    TooFewChoices { group: String, min: u32 },
    #[error("\"{group}\" allows at most {max} choice(s)")]
    TooManyChoices { group: String, max: u32 },
}

impl OptionPickError {
    /// The stable problem code.
    pub fn code(&self) -> &'static str {
        match self {
            OptionPickError::UnknownGroup { .. } | OptionPickError::UnknownChoice { .. } => {
                "order-option-unknown"
            }
            OptionPickError::DuplicateChoice { .. } => "order-option-duplicate",
            OptionPickError::TooFewChoices { .. } => "order-option-required",
            OptionPickError::TooManyChoices { .. } => "order-option-too-many",
        }
    }
}

/// Checks the groups a manager sets on a dish priced in `currency`, and returns them with
/// trimmed names.
///
/// # Errors
/// The first rule broken, naming the field at fault (`options/1/choices/0/priceDelta`).
pub fn valid_option_groups(
    groups: Vec<OptionGroup>,
    currency: &str,
) -> Result<Vec<OptionGroup>, DishError> {
    if groups.len() > OptionGroup::MAX_GROUPS {
        return Err(DishError::TooManyOptionGroups {
            max: OptionGroup::MAX_GROUPS,
        });
    }
    let mut group_names = HashSet::new();
    let mut ids = HashSet::new();
    groups
        .into_iter()
        .enumerate()
        .map(|(g, mut group)| {
            group.name = option_name(&group.name, format!("options/{g}/name"))?;
            if !group_names.insert(group.name.to_lowercase()) {
                return Err(DishError::OptionNameTaken {
                    field: format!("options/{g}/name"),
                    name: group.name,
                });
            }
            if !ids.insert(group.id) {
                return Err(DishError::OptionIdTaken {
                    field: format!("options/{g}/id"),
                });
            }
            if group.choices.is_empty() || group.choices.len() > OptionGroup::MAX_CHOICES {
                return Err(DishError::InvalidOptionChoices {
                    field: format!("options/{g}/choices"),
                    max: OptionGroup::MAX_CHOICES,
                });
            }
            let offered = u32::try_from(group.choices.len()).unwrap_or(u32::MAX);
            if group.max_choices == 0 || group.max_choices > offered {
                return Err(DishError::InvalidOptionLimits {
                    field: format!("options/{g}/maxChoices"),
                });
            }
            if group.min_choices > group.max_choices {
                return Err(DishError::InvalidOptionLimits {
                    field: format!("options/{g}/minChoices"),
                });
            }
            let mut choice_names = HashSet::new();
            for (c, choice) in group.choices.iter_mut().enumerate() {
                let field = format!("options/{g}/choices/{c}");
                choice.name = option_name(&choice.name, format!("{field}/name"))?;
                if !choice_names.insert(choice.name.to_lowercase()) {
                    return Err(DishError::OptionNameTaken {
                        field: format!("{field}/name"),
                        name: choice.name.clone(),
                    });
                }
                if !ids.insert(choice.id) {
                    return Err(DishError::OptionIdTaken {
                        field: format!("{field}/id"),
                    });
                }
                let delta = &choice.price_delta;
                if delta.currency != currency
                    || !(0..=OptionGroup::MAX_PRICE_DELTA).contains(&delta.amount)
                {
                    return Err(DishError::InvalidOptionPrice {
                        field: format!("{field}/priceDelta"),
                        currency: currency.to_owned(),
                    });
                }
            }
            Ok(group)
        })
        .collect()
}

fn option_name(name: &str, field: String) -> Result<String, DishError> {
    let name = name.trim();
    if name.is_empty() || char_len(name) > OptionGroup::MAX_NAME_CHARS {
        return Err(DishError::InvalidOptionName {
            field,
            max: OptionGroup::MAX_NAME_CHARS,
        });
    }
    Ok(name.to_owned())
}

/// The options a customer picked from `groups`, in the menu's order (groups, then choices),
/// whatever order they were sent in.
///
/// # Errors
/// A pick the dish does not offer or offers only once, or a group with too few or too many
/// picks (a required group without any).
pub fn choose(
    groups: &[OptionGroup],
    picks: &[OptionPick],
) -> Result<Vec<ChosenOption>, OptionPickError> {
    if let Some(pick) = picks
        .iter()
        .find(|pick| !groups.iter().any(|g| g.id == pick.group_id))
    {
        return Err(OptionPickError::UnknownGroup {
            group_id: pick.group_id,
        });
    }
    let mut chosen = Vec::new();
    for group in groups {
        let in_group: Vec<&OptionPick> = picks.iter().filter(|p| p.group_id == group.id).collect();
        let mut seen = HashSet::new();
        for pick in &in_group {
            let Some(choice) = group.choices.iter().find(|c| c.id == pick.choice_id) else {
                return Err(OptionPickError::UnknownChoice {
                    group: group.name.clone(),
                    choice_id: pick.choice_id,
                });
            };
            if !seen.insert(choice.id) {
                return Err(OptionPickError::DuplicateChoice {
                    group: group.name.clone(),
                    choice: choice.name.clone(),
                });
            }
        }
        let count = u32::try_from(in_group.len()).unwrap_or(u32::MAX);
        if count < group.min_choices {
            return Err(OptionPickError::TooFewChoices {
                group: group.name.clone(),
                min: group.min_choices,
            });
        }
        if count > group.max_choices {
            return Err(OptionPickError::TooManyChoices {
                group: group.name.clone(),
                max: group.max_choices,
            });
        }
        chosen.extend(
            group
                .choices
                .iter()
                .filter(|c| seen.contains(&c.id))
                .map(|c| ChosenOption {
                    group_id: group.id,
                    group: group.name.clone(),
                    choice_id: c.id,
                    choice: c.name.clone(),
                    price_delta: c.price_delta.clone(),
                }),
        );
    }
    Ok(chosen)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CUISSON: Uuid = Uuid::from_u128(100);
    const SUPPLEMENT: Uuid = Uuid::from_u128(200);

    fn choice(id: u128, name: &str, cents: i64) -> OptionChoice {
        OptionChoice {
            id: Uuid::from_u128(id),
            name: name.into(),
            price_delta: Money::eur(cents),
        }
    }

    fn groups() -> Vec<OptionGroup> {
        vec![
            OptionGroup {
                id: CUISSON,
                name: " Cuisson ".into(),
                min_choices: 1,
                max_choices: 1,
                choices: vec![
                    choice(101, "bleu", 0),
                    choice(102, "saignant", 0),
                    choice(103, "à point", 0),
                    choice(104, "bien cuit", 0),
                ],
            },
            OptionGroup {
                id: SUPPLEMENT,
                name: "Supplément".into(),
                min_choices: 0,
                max_choices: 2,
                choices: vec![
                    choice(201, "fromage", 150),
                    choice(202, "bacon", 200),
                    choice(203, "oignons", 50),
                ],
            },
        ]
    }

    fn valid() -> Vec<OptionGroup> {
        valid_option_groups(groups(), "EUR").expect("valid groups")
    }

    fn pick(group: Uuid, choice: u128) -> OptionPick {
        OptionPick {
            group_id: group,
            choice_id: Uuid::from_u128(choice),
        }
    }

    fn field_of(error: DishError) -> String {
        match error {
            DishError::OptionNameTaken { field, .. }
            | DishError::OptionIdTaken { field }
            | DishError::InvalidOptionChoices { field, .. }
            | DishError::InvalidOptionLimits { field }
            | DishError::InvalidOptionPrice { field, .. }
            | DishError::InvalidOptionName { field, .. } => field,
            other => panic!("not an option error: {other:?}"),
        }
    }

    fn refused(change: impl FnOnce(&mut Vec<OptionGroup>)) -> String {
        let mut groups = groups();
        change(&mut groups);
        field_of(valid_option_groups(groups, "EUR").expect_err("refused"))
    }

    #[test]
    fn a_manager_sets_groups_with_trimmed_names() {
        assert_eq!(valid()[0].name, "Cuisson");
        assert!(valid()[0].is_required());
        assert!(!valid()[1].is_required());
        assert_eq!(valid_option_groups(Vec::new(), "EUR"), Ok(Vec::new()));
    }

    #[test]
    fn group_names_are_unique_whatever_their_case() {
        assert_eq!(refused(|g| g[1].name = "cuisson".into()), "options/1/name");
        assert_eq!(
            refused(|g| g[1].choices[2].name = "Bacon ".into()),
            "options/1/choices/2/name"
        );
    }

    #[test]
    fn a_group_picks_at_least_min_and_at_most_max_of_its_choices() {
        assert_eq!(refused(|g| g[1].min_choices = 3), "options/1/minChoices");
        assert_eq!(refused(|g| g[1].max_choices = 4), "options/1/maxChoices");
        assert_eq!(refused(|g| g[0].max_choices = 0), "options/0/maxChoices");
        assert_eq!(refused(|g| g[0].choices.clear()), "options/0/choices");
    }

    #[test]
    fn a_price_delta_is_a_sane_supplement_in_the_dishs_currency() {
        for delta in [Money::eur(-1), Money::eur(100_001), Money::new(100, "USD")] {
            assert_eq!(
                refused(|g| g[1].choices[0].price_delta = delta),
                "options/1/choices/0/priceDelta"
            );
        }
    }

    #[test]
    fn counts_lengths_and_ids_are_bounded() {
        assert_eq!(refused(|g| g[0].name = " ".into()), "options/0/name");
        assert_eq!(
            refused(|g| g[0].choices[1].name = "x".repeat(61)),
            "options/0/choices/1/name"
        );
        assert_eq!(
            refused(|g| g[1].choices[1].id = Uuid::from_u128(101)),
            "options/1/choices/1/id"
        );
        let many: Vec<OptionGroup> = (0..11)
            .map(|i| OptionGroup {
                id: Uuid::from_u128(i),
                name: format!("G{i}"),
                ..groups()[1].clone()
            })
            .collect();
        assert_eq!(
            valid_option_groups(many, "EUR"),
            Err(DishError::TooManyOptionGroups { max: 10 })
        );
    }

    #[test]
    fn picks_are_kept_in_menu_order_with_their_names_and_deltas() {
        let chosen = choose(
            &valid(),
            &[
                pick(SUPPLEMENT, 203),
                pick(CUISSON, 102),
                pick(SUPPLEMENT, 201),
            ],
        )
        .expect("valid picks");
        let labels: Vec<String> = chosen.iter().map(ChosenOption::label).collect();
        assert_eq!(
            labels,
            [
                "Cuisson: saignant",
                "Supplément: fromage",
                "Supplément: oignons"
            ]
        );
        assert_eq!(chosen[1].price_delta, Money::eur(150));
    }

    #[test]
    fn a_required_group_must_be_picked() {
        assert_eq!(
            choose(&valid(), &[pick(SUPPLEMENT, 201)]),
            Err(OptionPickError::TooFewChoices {
                group: "Cuisson".into(),
                min: 1
            })
        );
    }

    #[test]
    fn a_group_allows_at_most_its_max_and_each_choice_once() {
        let error = choose(
            &valid(),
            &[
                pick(CUISSON, 101),
                pick(SUPPLEMENT, 201),
                pick(SUPPLEMENT, 202),
                pick(SUPPLEMENT, 203),
            ],
        )
        .expect_err("three supplements");
        assert_eq!(error.code(), "order-option-too-many");
        let error = choose(&valid(), &[pick(CUISSON, 101), pick(CUISSON, 101)]).expect_err("twice");
        assert_eq!(error.code(), "order-option-duplicate");
    }

    #[test]
    fn a_choice_the_dish_does_not_offer_is_refused() {
        let error = choose(&valid(), &[pick(CUISSON, 201)]).expect_err("wrong group");
        assert_eq!(
            error,
            OptionPickError::UnknownChoice {
                group: "Cuisson".into(),
                choice_id: Uuid::from_u128(201)
            }
        );
        let error = choose(&valid(), &[pick(Uuid::from_u128(9), 101)]).expect_err("no group");
        assert_eq!(error.code(), "order-option-unknown");
        assert!(choose(&[], &[]).expect("no options").is_empty());
    }
}
