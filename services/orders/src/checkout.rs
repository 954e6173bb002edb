//! A customer's basket turned into order lines, priced from the menu.
//!
//! The client names dishes and quantities; the name and the price of each line come from the
//! menu as it is now, and are snapshotted into the order. Whatever price or name a client sends
//! is never read. A dish that is not on the menu, not available (sold out) or hidden is refused
//! with the line that names it. Everything else about the lines (quantities, notes, count) is
//! the `Order` aggregate's to judge.
//!
//! Options (cooking, supplements…) are picked by group and choice id and checked against the
//! dish's option groups (`brigade_domain::ordering::choose`): a required group left out, too
//! many picks, or a choice the dish does not offer refuses the line, naming the dish and the
//! group. The line's unit price is the dish's price plus the picked choices' deltas, and the
//! picked names and deltas are snapshotted with it.
//!
//! Dishes come from the menu read model; a dish it does not have (yet) is looked up in the
//! event store, so a dish added a moment ago, or a menu not projected because NATS is down,
//! never stops a customer from ordering.

use std::collections::HashMap;

use brigade_domain::ordering::{
    choose, Dish, OptionGroup, OptionPick, OptionPickError, Order, OrderLine,
};
use brigade_domain::Money;
use brigade_nats::store;
use brigade_projections::menu::{self, MenuDish};
use sqlx::PgPool;
use uuid::Uuid;

/// One line of a basket, as the customer sent it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BasketItem {
    /// As sent: a string that may not even be a UUID.
    pub dish_id: String,
    /// As sent: may be zero, negative or huge.
    pub quantity: i64,
    pub note: Option<String>,
    /// The options picked, as sent.
    pub options: Vec<BasketOption>,
}

/// One option picked for a basket line, as sent: ids that may not even be UUIDs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BasketOption {
    pub group_id: String,
    pub choice_id: String,
}

/// Why a basket cannot be priced. `line` is 0-based.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckoutError {
    #[error("line {line}: there is no dish {dish_id} on the menu")]
    UnknownDish { line: usize, dish_id: String },
    #[error("line {line}: {name} is not available right now")]
    DishUnavailable { line: usize, name: String },
    #[error("line {line}: quantity {quantity} is not a number of dishes")]
    InvalidQuantity { line: usize, quantity: i64 },
    #[error("line {line}: {dish}: {error}")]
    InvalidOptions {
        line: usize,
        dish: String,
        error: OptionPickError,
    },
    #[error("line {line}: {dish}: option {value:?} is not a group and choice of this dish")]
    MalformedOption {
        line: usize,
        dish: String,
        value: String,
    },
}

impl CheckoutError {
    /// The stable problem code.
    #[must_use]
    pub fn code(&self) -> &'static str {
        match self {
            CheckoutError::UnknownDish { .. } => "order-unknown-dish",
            CheckoutError::DishUnavailable { .. } => "order-dish-unavailable",
            CheckoutError::InvalidQuantity { .. } => "order-invalid-quantity",
            CheckoutError::InvalidOptions { error, .. } => error.code(),
            CheckoutError::MalformedOption { .. } => "order-option-unknown",
        }
    }

    /// The request field at fault.
    #[must_use]
    pub fn field(&self) -> String {
        match self {
            CheckoutError::UnknownDish { line, .. }
            | CheckoutError::DishUnavailable { line, .. } => {
                format!("items/{line}/dishId")
            }
            CheckoutError::InvalidQuantity { line, .. } => format!("items/{line}/quantity"),
            CheckoutError::InvalidOptions { line, .. }
            | CheckoutError::MalformedOption { line, .. } => format!("items/{line}/options"),
        }
    }
}

/// A basket priced from the menu: the order's lines, and the menu's dishes they were priced
/// from (checkout reads their allergens and preparation minutes next, without asking again).
#[derive(Debug)]
pub struct Priced {
    pub lines: Vec<OrderLine>,
    pub dishes: HashMap<Uuid, MenuDish>,
}

/// Prices `items` from the menu read model (a dish it does not have yet is read from the
/// event store).
///
/// # Errors
/// The outer error is a database fault; the inner one a line that cannot be ordered.
pub async fn price(
    pool: &PgPool,
    items: &[BasketItem],
) -> Result<Result<Priced, CheckoutError>, MenuUnavailable> {
    let mut ids: Vec<Uuid> = items
        .iter()
        .filter_map(|item| item.dish_id.parse().ok())
        .collect();
    ids.sort_unstable();
    ids.dedup();
    let mut dishes = menu::dishes(pool, &ids)
        .await
        .map_err(|e| MenuUnavailable(e.to_string()))?;
    // Beyond the order's line limit the order is refused anyway: no lookups for it.
    if items.len() <= Order::MAX_LINES {
        let missing: Vec<Uuid> = ids
            .into_iter()
            .filter(|id| !dishes.contains_key(id))
            .collect();
        for id in missing {
            let loaded = store::load::<Dish>(pool, &id.to_string())
                .await
                .map_err(|e| MenuUnavailable(e.to_string()))?;
            if let Some(dish) = MenuDish::from_aggregate(&loaded.aggregate) {
                dishes.insert(id, dish);
            }
        }
    }
    // Options a manager set a moment ago may not be in the read model yet: before refusing a
    // line for its options, check them against the dish itself (once per dish).
    let mut reloaded = Vec::new();
    loop {
        let priced = price_from(&dishes, items);
        let reload = match &priced {
            Err(
                CheckoutError::InvalidOptions { line, .. }
                | CheckoutError::MalformedOption { line, .. },
            ) => items[*line]
                .dish_id
                .parse::<Uuid>()
                .ok()
                .filter(|id| !reloaded.contains(id)),
            _ => None,
        };
        let fresh = match reload {
            Some(id) => {
                reloaded.push(id);
                let loaded = store::load::<Dish>(pool, &id.to_string())
                    .await
                    .map_err(|e| MenuUnavailable(e.to_string()))?;
                MenuDish::from_aggregate(&loaded.aggregate).map(|dish| (id, dish))
            }
            None => None,
        };
        match fresh {
            Some((id, dish)) => {
                dishes.insert(id, dish);
            }
            None => return Ok(priced.map(|lines| Priced { lines, dishes })),
        }
    }
}

/// The menu could not be read (the database is unavailable); nothing was applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the menu cannot be read: {0}")]
pub struct MenuUnavailable(String);

/// The item's picks as ids; `Err` with the first id that is not a UUID.
fn picks(item: &BasketItem) -> Result<Vec<OptionPick>, String> {
    item.options
        .iter()
        .map(|option| {
            let group_id = option
                .group_id
                .parse()
                .map_err(|_| option.group_id.clone())?;
            let choice_id = option
                .choice_id
                .parse()
                .map_err(|_| option.choice_id.clone())?;
            Ok(OptionPick {
                group_id,
                choice_id,
            })
        })
        .collect()
}

/// Prices `items` from `dishes` (the menu's dishes, by id).
///
/// # Errors
/// The first line whose dish is unknown or unavailable, or whose quantity is not even a `u32`.
pub fn price_from(
    dishes: &HashMap<Uuid, MenuDish>,
    items: &[BasketItem],
) -> Result<Vec<OrderLine>, CheckoutError> {
    items
        .iter()
        .enumerate()
        .map(|(line, item)| {
            let dish = item
                .dish_id
                .parse::<Uuid>()
                .ok()
                .and_then(|id| dishes.get(&id))
                .ok_or_else(|| CheckoutError::UnknownDish {
                    line,
                    dish_id: item.dish_id.clone(),
                })?;
            // A hidden dish is off the menu: it cannot be ordered, even by its id.
            if !dish.available || !dish.visible {
                return Err(CheckoutError::DishUnavailable {
                    line,
                    name: dish.name.clone(),
                });
            }
            // The aggregate judges 0 and 51; only what a u32 cannot hold is refused here.
            let quantity =
                u32::try_from(item.quantity).map_err(|_| CheckoutError::InvalidQuantity {
                    line,
                    quantity: item.quantity,
                })?;
            let groups: Vec<OptionGroup> = dish.options.iter().map(OptionGroup::from).collect();
            let picks = picks(item).map_err(|value| CheckoutError::MalformedOption {
                line,
                dish: dish.name.clone(),
                value,
            })?;
            let options =
                choose(&groups, &picks).map_err(|error| CheckoutError::InvalidOptions {
                    line,
                    dish: dish.name.clone(),
                    error,
                })?;
            // Deltas are bounded by the menu (and checked again by the order): no overflow.
            let price: Money = dish.price.clone().into();
            let unit_price = Money::new(
                options.iter().fold(price.amount, |sum, o| {
                    sum.saturating_add(o.price_delta.amount)
                }),
                price.currency,
            );
            Ok(OrderLine {
                dish_id: dish.id,
                name: dish.name.clone(),
                unit_price,
                quantity,
                note: item.note.clone(),
                options,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use brigade_domain::Money;
    use brigade_projections::menu::{Amount, MenuOptionChoice, MenuOptionGroup};

    use super::*;

    fn menu_dish(id: u128, price: i64, available: bool) -> MenuDish {
        MenuDish {
            id: Uuid::from_u128(id),
            name: format!("Dish {id}"),
            description: String::new(),
            category: "Plats".into(),
            price: Amount {
                amount: price,
                currency: "EUR".into(),
            },
            allergens: Vec::new(),
            available,
            unavailable_reason: None,
            station: "main".into(),
            prep_minutes: 10,
            dietary_tags: Vec::new(),
            photo_url: None,
            visible: true,
            position: 0,
            options: Vec::new(),
        }
    }

    fn item(id: u128, quantity: i64) -> BasketItem {
        BasketItem {
            dish_id: Uuid::from_u128(id).to_string(),
            quantity,
            note: Some("sans oignons".into()),
            options: Vec::new(),
        }
    }

    fn menu() -> HashMap<Uuid, MenuDish> {
        [menu_dish(1, 2250, true), menu_dish(2, 850, false)]
            .into_iter()
            .map(|dish| (dish.id, dish))
            .collect()
    }

    #[test]
    fn lines_take_their_name_and_price_from_the_menu() {
        let lines = price_from(&menu(), &[item(1, 2)]).expect("priced");
        assert_eq!(lines.len(), 1);
        assert_eq!(lines[0].name, "Dish 1");
        assert_eq!(lines[0].unit_price, Money::eur(2250));
        assert_eq!(lines[0].quantity, 2);
        assert_eq!(lines[0].note.as_deref(), Some("sans oignons"));
    }

    #[test]
    fn an_unknown_or_malformed_dish_is_named_with_its_line() {
        let error = price_from(&menu(), &[item(1, 1), item(9, 1)]).expect_err("unknown");
        assert_eq!(error.field(), "items/1/dishId");
        assert_eq!(error.code(), "order-unknown-dish");
        let malformed = BasketItem {
            dish_id: "steak".into(),
            quantity: 1,
            note: None,
            options: Vec::new(),
        };
        assert_eq!(
            price_from(&menu(), &[malformed])
                .expect_err("not a uuid")
                .field(),
            "items/0/dishId"
        );
    }

    #[test]
    fn an_unavailable_or_hidden_dish_is_refused() {
        let error = price_from(&menu(), &[item(2, 1)]).expect_err("sold out");
        assert_eq!(error.code(), "order-dish-unavailable");
        assert!(error.to_string().contains("Dish 2"));
        let mut hidden = menu();
        if let Some(dish) = hidden.get_mut(&Uuid::from_u128(1)) {
            dish.visible = false;
        }
        let error = price_from(&hidden, &[item(1, 1)]).expect_err("hidden");
        assert_eq!(error.field(), "items/0/dishId");
    }

    #[test]
    fn a_negative_quantity_is_refused_here_and_zero_is_left_to_the_order() {
        let error = price_from(&menu(), &[item(1, -1)]).expect_err("negative");
        assert_eq!(error.field(), "items/0/quantity");
        assert!(price_from(&menu(), &[item(1, 0)]).is_ok());
    }

    fn steak_with_options() -> HashMap<Uuid, MenuDish> {
        let mut dish = menu_dish(3, 2400, true);
        let choice = |id: u128, name: &str, cents: i64| MenuOptionChoice {
            id: Uuid::from_u128(id),
            name: name.into(),
            price_delta: Amount {
                amount: cents,
                currency: "EUR".into(),
            },
        };
        dish.options = vec![
            MenuOptionGroup {
                id: Uuid::from_u128(30),
                name: "Cuisson".into(),
                min_choices: 1,
                max_choices: 1,
                choices: vec![choice(31, "saignant", 0), choice(32, "à point", 0)],
            },
            MenuOptionGroup {
                id: Uuid::from_u128(40),
                name: "Supplément".into(),
                min_choices: 0,
                max_choices: 2,
                choices: vec![choice(41, "fromage", 150), choice(42, "œuf", 100)],
            },
        ];
        HashMap::from([(dish.id, dish)])
    }

    fn steak(picks: &[(u128, u128)]) -> BasketItem {
        BasketItem {
            options: picks
                .iter()
                .map(|(group, choice)| BasketOption {
                    group_id: Uuid::from_u128(*group).to_string(),
                    choice_id: Uuid::from_u128(*choice).to_string(),
                })
                .collect(),
            ..item(3, 2)
        }
    }

    #[test]
    fn picked_options_are_snapshotted_and_priced_into_the_line() {
        let lines = price_from(
            &steak_with_options(),
            &[steak(&[(40, 42), (30, 31), (40, 41)])],
        )
        .expect("priced");
        assert_eq!(lines[0].unit_price, Money::eur(2400 + 150 + 100));
        assert_eq!(lines[0].line_total(), Some(Money::eur(2 * 2650)));
        let labels: Vec<String> = lines[0].options.iter().map(|o| o.label()).collect();
        assert_eq!(
            labels,
            [
                "Cuisson: saignant",
                "Supplément: fromage",
                "Supplément: œuf"
            ]
        );
    }

    #[test]
    fn options_that_do_not_fit_the_dish_are_refused_naming_dish_and_group() {
        let error =
            price_from(&steak_with_options(), &[steak(&[(40, 41)])]).expect_err("no cooking");
        assert_eq!(error.code(), "order-option-required");
        assert_eq!(error.field(), "items/0/options");
        assert!(error.to_string().contains("Dish 3") && error.to_string().contains("Cuisson"));
        let error = price_from(&steak_with_options(), &[steak(&[(30, 31), (30, 32)])])
            .expect_err("two cookings");
        assert_eq!(error.code(), "order-option-too-many");
        let error = price_from(&steak_with_options(), &[steak(&[(30, 41)])]).expect_err("unknown");
        assert_eq!(error.code(), "order-option-unknown");
        let mut malformed = steak(&[(30, 31)]);
        malformed.options[0].choice_id = "bleu".into();
        let error = price_from(&steak_with_options(), &[malformed]).expect_err("not an id");
        assert_eq!(error.code(), "order-option-unknown");
        // A dish without options takes none.
        let error = price_from(
            &menu(),
            &[BasketItem {
                options: steak(&[(30, 31)]).options,
                ..item(1, 1)
            }],
        )
        .expect_err("no options here");
        assert_eq!(error.code(), "order-option-unknown");
    }
}
