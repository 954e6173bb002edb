//! The menu a new installation starts with: a French bistro's, so a first visitor sees
//! something to order at once. Managers change it afterwards like any other dish.
//!
//! Seeded at every start through ordinary `Dish` commands (so the dishes are events on the bus
//! like any other). Each dish's id is derived from its slug (UUID v5), so a restart, or two
//! replicas starting together, never add a dish twice: the aggregate refuses the second `Add`,
//! and that refusal is expected. A dish a manager has since changed keeps its changes.
//!
//! A few dishes come with options ([`OPTIONS`]: the steak's cooking, supplements, a glass or a
//! jug), set right after the dish is added; their ids are derived from the slug and the names
//! too. No option adds an allergen its dish does not declare.

use brigade_domain::ordering::{Dish, DishCommand, DishError, OptionChoice, OptionGroup};
use brigade_domain::{Allergen, Money};
use brigade_nats::store::{CommandMetadata, EventStore};
use chrono::Utc;
use cqrs_es::AggregateError;
use uuid::Uuid;

use Allergen::{Celery, Eggs, Fish, Gluten, Milk, Molluscs, Mustard, Nuts, Soybeans, Sulphites};

/// One dish of the starter menu.
#[derive(Debug, Clone, Copy)]
pub struct StarterDish {
    /// Stable name of the dish, from which its id is derived.
    pub slug: &'static str,
    pub name: &'static str,
    pub description: &'static str,
    pub category: &'static str,
    /// EUR cents.
    pub price: i64,
    pub allergens: &'static [Allergen],
    pub station: &'static str,
    pub prep_minutes: u32,
}

impl StarterDish {
    /// The dish's id: the same on every start and every replica.
    #[must_use]
    pub fn id(&self) -> Uuid {
        dish_id(self.slug)
    }
}

/// The id of the starter dish with this slug.
#[must_use]
pub fn dish_id(slug: &str) -> Uuid {
    Uuid::new_v5(
        &Uuid::NAMESPACE_URL,
        format!("https://brigade.dev/starter-menu/{slug}").as_bytes(),
    )
}

#[allow(clippy::too_many_arguments)] // one row of the table below
const fn dish(
    slug: &'static str,
    name: &'static str,
    description: &'static str,
    category: &'static str,
    price: i64,
    allergens: &'static [Allergen],
    station: &'static str,
    prep_minutes: u32,
) -> StarterDish {
    StarterDish {
        slug,
        name,
        description,
        category,
        price,
        allergens,
        station,
        prep_minutes,
    }
}

/// The starter menu, in menu order.
#[rustfmt::skip] // a table reads best as a table
pub const DISHES: &[StarterDish] = &[
    // Entrées
    dish("soupe-a-l-oignon", "Soupe à l'oignon gratinée", "Oignons confits au bouillon de bœuf, croûton et comté gratiné", "Entrées", 950, &[Gluten, Milk, Celery, Sulphites], "stove", 12),
    dish("oeufs-mayonnaise", "Œufs mayonnaise", "Œufs fermiers, mayonnaise maison à la moutarde de Dijon", "Entrées", 750, &[Eggs, Mustard], "cold", 5),
    dish("escargots", "Escargots de Bourgogne (6)", "Beurre persillé à l'ail, pain de campagne", "Entrées", 1250, &[Molluscs, Milk, Gluten], "stove", 10),
    dish("terrine-de-campagne", "Terrine de campagne", "Terrine de porc maison, cornichons, pain grillé", "Entrées", 950, &[Gluten, Mustard, Sulphites], "cold", 5),
    dish("salade-de-chevre-chaud", "Salade de chèvre chaud", "Crottin sur toast, noix, miel, vinaigrette à la moutarde", "Entrées", 1150, &[Milk, Gluten, Nuts, Mustard], "cold", 8),
    // Plats
    dish("boeuf-bourguignon", "Bœuf bourguignon", "Paleron mijoté au vin rouge, lardons, champignons, purée maison", "Plats", 2250, &[Milk, Celery, Sulphites], "stove", 15),
    dish("steak-frites", "Steak frites, sauce au poivre", "Faux-filet de bœuf (250 g), frites maison, sauce au poivre", "Plats", 2450, &[Milk, Sulphites], "grill", 18),
    dish("confit-de-canard", "Confit de canard", "Cuisse de canard confite, pommes sarladaises, salade verte", "Plats", 2350, &[Mustard], "stove", 15),
    dish("moules-frites", "Moules marinières, frites", "Moules de bouchot au vin blanc, échalotes et persil, frites maison", "Plats", 1950, &[Molluscs, Milk, Celery, Sulphites], "stove", 12),
    dish("blanquette-de-veau", "Blanquette de veau", "Veau à la crème, carottes, champignons, riz pilaf", "Plats", 2150, &[Milk, Eggs, Gluten, Celery], "stove", 15),
    dish("sole-meuniere", "Sole meunière", "Sole entière au beurre noisette, citron, pommes vapeur", "Plats", 3400, &[Fish, Milk, Gluten], "stove", 15),
    dish("croque-monsieur", "Croque-monsieur", "Pain de mie, jambon blanc, béchamel et comté gratinés, salade verte", "Plats", 1450, &[Gluten, Milk, Mustard], "grill", 10),
    dish("ratatouille", "Ratatouille provençale", "Légumes du soleil mijotés à l'huile d'olive, riz (végétalien)", "Plats", 1650, &[], "stove", 10),
    // Desserts
    dish("creme-brulee", "Crème brûlée", "Crème à la vanille de Madagascar, sucre caramélisé", "Desserts", 850, &[Milk, Eggs], "pastry", 5),
    dish("mousse-au-chocolat", "Mousse au chocolat", "Chocolat noir 70 %, fleur de sel", "Desserts", 800, &[Milk, Eggs, Soybeans], "pastry", 3),
    dish("tarte-tatin", "Tarte Tatin", "Pommes caramélisées, pâte brisée, crème fraîche d'Isigny", "Desserts", 900, &[Gluten, Milk, Eggs], "pastry", 6),
    dish("profiteroles", "Profiteroles", "Choux, glace vanille, sauce chocolat chaud, amandes effilées", "Desserts", 950, &[Gluten, Milk, Eggs, Nuts, Soybeans], "pastry", 6),
    dish("ile-flottante", "Île flottante", "Blancs en neige, crème anglaise, caramel, pralin", "Desserts", 800, &[Milk, Eggs, Nuts], "pastry", 4),
    // Boissons
    dish("eau-minerale", "Eau minérale (50 cl)", "Plate ou gazeuse", "Boissons", 400, &[], "bar", 1),
    dish("citronnade", "Citronnade maison", "Citrons pressés, sucre de canne, menthe fraîche", "Boissons", 550, &[], "bar", 2),
    dish("vin-rouge", "Verre de Côtes du Rhône", "Vin rouge, AOC Côtes du Rhône (12 cl)", "Boissons", 650, &[Sulphites], "bar", 1),
    dish("biere-pression", "Bière pression (25 cl)", "Blonde d'Alsace", "Boissons", 500, &[Gluten], "bar", 1),
    dish("cafe", "Café expresso", "Arabica torréfié à Paris", "Boissons", 250, &[], "bar", 2),
];

/// An option group of a starter dish: `(choice, EUR cents)` pairs.
#[derive(Debug, Clone, Copy)]
pub struct StarterOptionGroup {
    pub name: &'static str,
    pub min_choices: u32,
    pub max_choices: u32,
    pub choices: &'static [(&'static str, i64)],
}

const fn group(
    name: &'static str,
    min_choices: u32,
    max_choices: u32,
    choices: &'static [(&'static str, i64)],
) -> StarterOptionGroup {
    StarterOptionGroup {
        name,
        min_choices,
        max_choices,
        choices,
    }
}

/// The starter dishes that have options, by slug.
#[rustfmt::skip] // a table reads best as a table
pub const OPTIONS: &[(&str, &[StarterOptionGroup])] = &[
    ("steak-frites", &[
        group("Cuisson", 1, 1, &[("bleu", 0), ("saignant", 0), ("à point", 0), ("bien cuit", 0)]),
        group("Supplément", 0, 3, &[("sauce au poivre en plus", 150), ("frites en plus", 250), ("salade verte", 200)]),
    ]),
    ("croque-monsieur", &[
        group("Supplément", 0, 2, &[("jambon en plus", 150), ("comté en plus", 100)]),
    ]),
    ("tarte-tatin", &[
        group("Accompagnement", 0, 1, &[("boule de glace vanille", 200)]),
    ]),
    ("eau-minerale", &[
        group("Eau", 1, 1, &[("plate", 0), ("gazeuse", 0)]),
    ]),
    ("vin-rouge", &[
        group("Contenance", 1, 1, &[("verre (12 cl)", 0), ("pichet (25 cl)", 550)]),
    ]),
];

/// The option groups of the starter dish with this slug (none for most), with stable ids.
#[must_use]
pub fn option_groups(slug: &str) -> Vec<OptionGroup> {
    let groups = OPTIONS
        .iter()
        .find(|(dish, _)| *dish == slug)
        .map_or(&[][..], |(_, groups)| *groups);
    groups
        .iter()
        .map(|group| OptionGroup {
            id: dish_id(&format!("{slug}/{}", group.name)),
            name: group.name.to_owned(),
            min_choices: group.min_choices,
            max_choices: group.max_choices,
            choices: group
                .choices
                .iter()
                .map(|(name, cents)| OptionChoice {
                    id: dish_id(&format!("{slug}/{}/{name}", group.name)),
                    name: (*name).to_owned(),
                    price_delta: Money::eur(*cents),
                })
                .collect(),
        })
        .collect()
}

/// Adds every starter dish the menu does not have yet.
///
/// # Errors
/// A database fault, or a starter dish the aggregate refuses (a bug in [`DISHES`]).
pub async fn seed(dishes: &EventStore<Dish>) -> anyhow::Result<()> {
    let metadata = CommandMetadata::by(r#"{"kind":"system"}"#.to_owned()).causation("starter-menu");
    let mut added = 0_usize;
    for starter in DISHES {
        let id = starter.id();
        let command = DishCommand::Add {
            dish_id: id,
            name: starter.name.to_owned(),
            description: starter.description.to_owned(),
            category: starter.category.to_owned(),
            price: Money::eur(starter.price),
            allergens: starter.allergens.to_vec(),
            station: Some(starter.station.to_owned()),
            prep_minutes: starter.prep_minutes,
            available: true,
            // Each dish a little later than the previous one: the menu keeps this order.
            at: Utc::now(),
        };
        match dishes
            .execute_with_metadata(&id.to_string(), command, metadata.clone().into_map())
            .await
        {
            Ok(()) => {
                added += 1;
                let groups = option_groups(starter.slug);
                if !groups.is_empty() {
                    let command = DishCommand::SetOptions {
                        groups,
                        at: Utc::now(),
                    };
                    dishes
                        .execute_with_metadata(
                            &id.to_string(),
                            command,
                            metadata.clone().into_map(),
                        )
                        .await
                        .map_err(|error| {
                            anyhow::anyhow!("cannot set the options of {}: {error}", starter.name)
                        })?;
                }
            }
            // Already on the menu (a restart), or being added by another replica right now.
            Err(
                AggregateError::UserError(DishError::DishAlreadyExists)
                | AggregateError::AggregateConflict,
            ) => {}
            Err(error) => anyhow::bail!("cannot add {} to the starter menu: {error}", starter.name),
        }
    }
    if added > 0 {
        tracing::info!(added, "starter menu loaded");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn the_starter_menu_is_a_bistro_menu_in_four_categories() {
        let categories: Vec<&str> = DISHES.iter().fold(Vec::new(), |mut seen, dish| {
            if !seen.contains(&dish.category) {
                seen.push(dish.category);
            }
            seen
        });
        assert_eq!(categories, ["Entrées", "Plats", "Desserts", "Boissons"]);
        assert!((18..=25).contains(&DISHES.len()));
    }

    #[test]
    fn starter_dishes_have_distinct_stable_ids() {
        let ids: HashSet<Uuid> = DISHES.iter().map(StarterDish::id).collect();
        assert_eq!(ids.len(), DISHES.len());
        assert_eq!(dish_id("creme-brulee"), dish_id("creme-brulee"));
        assert_ne!(dish_id("creme-brulee"), dish_id("tarte-tatin"));
    }

    #[test]
    fn starter_options_are_valid_options_of_starter_dishes() {
        for (slug, _) in OPTIONS {
            assert!(DISHES.iter().any(|d| d.slug == *slug), "{slug}");
            let groups = option_groups(slug);
            assert_eq!(
                brigade_domain::ordering::valid_option_groups(groups.clone(), "EUR"),
                Ok(groups),
                "{slug}"
            );
        }
        assert_eq!(option_groups("steak-frites")[0].choices.len(), 4);
        assert!(option_groups("boeuf-bourguignon").is_empty());
    }

    #[test]
    fn starter_dishes_are_valid_dishes() {
        for dish in DISHES {
            assert!(
                dish.price > 0 && dish.price < Dish::MAX_PRICE,
                "{}",
                dish.name
            );
            assert!(
                dish.name.chars().count() <= Dish::MAX_NAME_CHARS,
                "{}",
                dish.name
            );
            assert!(
                dish.description.chars().count() <= Dish::MAX_DESCRIPTION_CHARS,
                "{}",
                dish.name
            );
            assert!(
                (1..=Dish::MAX_PREP_MINUTES).contains(&dish.prep_minutes),
                "{}",
                dish.name
            );
        }
    }
}
