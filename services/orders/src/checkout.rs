//! A customer's basket turned into order lines, priced from the menu.
//!
//! The client names dishes and quantities; the name and the price of each line come from the
//! menu as it is now, and are snapshotted into the order. Whatever price or name a client sends
//! is never read. A dish that is not on the menu, not available (sold out) or hidden is refused
//! with the line that names it. Everything else about the lines (quantities, notes, count) is
//! the `Order` aggregate's to judge.
//!
//! Dishes come from the menu read model; a dish it does not have (yet) is looked up in the
//! event store, so a dish added a moment ago, or a menu not projected because NATS is down,
//! never stops a customer from ordering.

use std::collections::HashMap;

use brigade_domain::ordering::{Dish, Order, OrderLine};
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
}

impl CheckoutError {
    /// The stable problem code.
    #[must_use]
    pub fn code(&self) -> &'static str {
        match self {
            CheckoutError::UnknownDish { .. } => "order-unknown-dish",
            CheckoutError::DishUnavailable { .. } => "order-dish-unavailable",
            CheckoutError::InvalidQuantity { .. } => "order-invalid-quantity",
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
        }
    }
}

/// Prices `items` from the menu read model.
///
/// # Errors
/// The outer error is a database fault; the inner one a line that cannot be ordered.
pub async fn price(
    pool: &PgPool,
    items: &[BasketItem],
) -> Result<Result<Vec<OrderLine>, CheckoutError>, MenuUnavailable> {
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
    Ok(price_from(&dishes, items))
}

/// The menu could not be read (the database is unavailable); nothing was applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the menu cannot be read: {0}")]
pub struct MenuUnavailable(String);

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
            Ok(OrderLine {
                dish_id: dish.id,
                name: dish.name.clone(),
                unit_price: dish.price.clone().into(),
                quantity,
                note: item.note.clone(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use brigade_domain::Money;
    use brigade_projections::menu::Amount;

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
        }
    }

    fn item(id: u128, quantity: i64) -> BasketItem {
        BasketItem {
            dish_id: Uuid::from_u128(id).to_string(),
            quantity,
            note: Some("sans oignons".into()),
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
}
