//! The menu read model (orders service): every dish with its price, allergens and
//! availability, grouped by category for `GET /menu`, and the prices `POST /orders` snapshots
//! into an order. Fed by the orders service's own `orders.dish.*` events.
//!
//! Categories keep the order in which they first appeared (the starter menu adds Entrées, then
//! Plats, Desserts and Boissons), so a menu reads like a menu; within a category, dishes are
//! listed by the position a manager gave them, then in the order they were added. Hidden dishes
//! are left out of the customers' menu but stay on the manager's.

use std::collections::HashMap;
use std::sync::Arc;

use brigade_domain::ordering::{DietaryTag, Dish, DishEvent, OptionChoice, OptionGroup};
use brigade_domain::Allergen;
use brigade_nats::{EventHandler, HandlerError, Migration, ReceivedEvent, Subscription};
use poem_openapi::{Enum, Object};
use serde::{Deserialize, Serialize};
use sqlx::types::Json;
use sqlx::{FromRow, PgConnection, PgPool};
use uuid::Uuid;

use crate::feed;

/// The durable consumer name of this projection.
pub const NAME: &str = "orders-menu";
/// The feed menu screens may follow; keys are dish ids.
pub const FEED: &str = "menu";

/// Schema of the read model.
pub const MIGRATIONS: &[Migration] = &[
    Migration {
        name: "0310_menu_dishes",
        sql: r"
CREATE TABLE menu_dishes (
    dish_id            uuid        PRIMARY KEY,
    name               text        NOT NULL,
    description        text        NOT NULL,
    category           text        NOT NULL,
    price_amount       bigint      NOT NULL,
    currency           text        NOT NULL,
    allergens          jsonb       NOT NULL,
    station            text        NOT NULL,
    prep_minutes       integer     NOT NULL,
    available          boolean     NOT NULL,
    unavailable_reason text,
    added_at           timestamptz NOT NULL,
    updated_at         timestamptz NOT NULL,
    version            bigint      NOT NULL
);
CREATE INDEX menu_dishes_order ON menu_dishes (added_at, dish_id);
",
    },
    Migration {
        name: "0311_menu_dishes_presentation",
        sql: r"
ALTER TABLE menu_dishes
    ADD COLUMN dietary_tags jsonb   NOT NULL DEFAULT '[]',
    ADD COLUMN photo_url    text,
    ADD COLUMN visible      boolean NOT NULL DEFAULT true,
    ADD COLUMN position     integer NOT NULL DEFAULT 0;
",
    },
    Migration {
        name: "0314_menu_dishes_options",
        sql: r"
ALTER TABLE menu_dishes ADD COLUMN options jsonb NOT NULL DEFAULT '[]';
",
    },
];

/// An amount of money as the API shows it: `{"amount": 1250, "currency": "EUR"}` (minor units).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Object)]
#[oai(rename = "Money")]
pub struct Amount {
    /// Minor units (cents for EUR).
    pub amount: i64,
    /// ISO 4217 code.
    pub currency: String,
}

impl From<&brigade_domain::Money> for Amount {
    fn from(money: &brigade_domain::Money) -> Self {
        Self {
            amount: money.amount,
            currency: money.currency.clone(),
        }
    }
}

impl From<Amount> for brigade_domain::Money {
    fn from(amount: Amount) -> Self {
        Self::new(amount.amount, amount.currency)
    }
}

/// One of the 14 allergens EU Regulation 1169/2011 requires a menu to declare.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Enum)]
#[serde(rename_all = "snake_case")]
#[oai(rename = "Allergen", rename_all = "snake_case")]
pub enum AllergenName {
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

impl From<Allergen> for AllergenName {
    fn from(allergen: Allergen) -> Self {
        match allergen {
            Allergen::Gluten => Self::Gluten,
            Allergen::Crustaceans => Self::Crustaceans,
            Allergen::Eggs => Self::Eggs,
            Allergen::Fish => Self::Fish,
            Allergen::Peanuts => Self::Peanuts,
            Allergen::Soybeans => Self::Soybeans,
            Allergen::Milk => Self::Milk,
            Allergen::Nuts => Self::Nuts,
            Allergen::Celery => Self::Celery,
            Allergen::Mustard => Self::Mustard,
            Allergen::Sesame => Self::Sesame,
            Allergen::Sulphites => Self::Sulphites,
            Allergen::Lupin => Self::Lupin,
            Allergen::Molluscs => Self::Molluscs,
        }
    }
}

impl From<AllergenName> for Allergen {
    fn from(allergen: AllergenName) -> Self {
        match allergen {
            AllergenName::Gluten => Self::Gluten,
            AllergenName::Crustaceans => Self::Crustaceans,
            AllergenName::Eggs => Self::Eggs,
            AllergenName::Fish => Self::Fish,
            AllergenName::Peanuts => Self::Peanuts,
            AllergenName::Soybeans => Self::Soybeans,
            AllergenName::Milk => Self::Milk,
            AllergenName::Nuts => Self::Nuts,
            AllergenName::Celery => Self::Celery,
            AllergenName::Mustard => Self::Mustard,
            AllergenName::Sesame => Self::Sesame,
            AllergenName::Sulphites => Self::Sulphites,
            AllergenName::Lupin => Self::Lupin,
            AllergenName::Molluscs => Self::Molluscs,
        }
    }
}

/// What a diet-conscious customer looks for on a menu, besides the allergens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Enum)]
#[serde(rename_all = "snake_case")]
#[oai(rename = "DietaryTag", rename_all = "snake_case")]
pub enum DietaryTagName {
    Vegetarian,
    Vegan,
    GlutenFree,
    DairyFree,
    Spicy,
    Halal,
}

impl From<DietaryTag> for DietaryTagName {
    fn from(tag: DietaryTag) -> Self {
        match tag {
            DietaryTag::Vegetarian => Self::Vegetarian,
            DietaryTag::Vegan => Self::Vegan,
            DietaryTag::GlutenFree => Self::GlutenFree,
            DietaryTag::DairyFree => Self::DairyFree,
            DietaryTag::Spicy => Self::Spicy,
            DietaryTag::Halal => Self::Halal,
        }
    }
}

impl From<DietaryTagName> for DietaryTag {
    fn from(tag: DietaryTagName) -> Self {
        match tag {
            DietaryTagName::Vegetarian => Self::Vegetarian,
            DietaryTagName::Vegan => Self::Vegan,
            DietaryTagName::GlutenFree => Self::GlutenFree,
            DietaryTagName::DairyFree => Self::DairyFree,
            DietaryTagName::Spicy => Self::Spicy,
            DietaryTagName::Halal => Self::Halal,
        }
    }
}

/// One choice of an option group: "saignant", "fromage" (+1.50).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Object)]
#[serde(rename_all = "camelCase")]
#[oai(rename_all = "camelCase")]
pub struct MenuOptionChoice {
    /// What an order line sends as `choiceId`.
    pub id: Uuid,
    pub name: String,
    /// Added to the dish's price when picked (0 or more, in the dish's currency).
    pub price_delta: Amount,
}

/// A group of options of a dish ("Cuisson", "Supplément"): pick between `minChoices` and
/// `maxChoices` of its choices.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Object)]
#[serde(rename_all = "camelCase")]
#[oai(rename_all = "camelCase")]
pub struct MenuOptionGroup {
    /// What an order line sends as `groupId`.
    pub id: Uuid,
    pub name: String,
    /// 1 or more makes the group required.
    pub min_choices: u32,
    pub max_choices: u32,
    pub choices: Vec<MenuOptionChoice>,
}

impl From<&OptionGroup> for MenuOptionGroup {
    fn from(group: &OptionGroup) -> Self {
        Self {
            id: group.id,
            name: group.name.clone(),
            min_choices: group.min_choices,
            max_choices: group.max_choices,
            choices: group
                .choices
                .iter()
                .map(|choice| MenuOptionChoice {
                    id: choice.id,
                    name: choice.name.clone(),
                    price_delta: Amount::from(&choice.price_delta),
                })
                .collect(),
        }
    }
}

impl From<&MenuOptionGroup> for OptionGroup {
    fn from(group: &MenuOptionGroup) -> Self {
        Self {
            id: group.id,
            name: group.name.clone(),
            min_choices: group.min_choices,
            max_choices: group.max_choices,
            choices: group
                .choices
                .iter()
                .map(|choice| OptionChoice {
                    id: choice.id,
                    name: choice.name.clone(),
                    price_delta: choice.price_delta.clone().into(),
                })
                .collect(),
        }
    }
}

/// One dish as the menu shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Object)]
#[serde(rename_all = "camelCase")]
#[oai(rename_all = "camelCase", skip_serializing_if_is_none)]
pub struct MenuDish {
    pub id: Uuid,
    pub name: String,
    pub description: String,
    pub category: String,
    pub price: Amount,
    pub allergens: Vec<AllergenName>,
    /// False when sold out or taken off the menu: shown, but cannot be ordered.
    pub available: bool,
    /// Why it is unavailable ("sold out"), when it is.
    #[oai(skip_serializing_if_is_none)]
    pub unavailable_reason: Option<String>,
    /// The kitchen station that cooks it (`grill`, `cold`, `pastry`, `bar`, ...).
    pub station: String,
    pub prep_minutes: u32,
    pub dietary_tags: Vec<DietaryTagName>,
    #[oai(skip_serializing_if_is_none)]
    pub photo_url: Option<String>,
    /// False for a dish hidden from customers (only managers see it; it cannot be ordered).
    pub visible: bool,
    /// Position within its category; ties are listed in the order the dishes were added.
    pub position: u32,
    /// Its option groups (cooking, supplements, size…), in menu order; empty for most dishes.
    #[serde(default)]
    pub options: Vec<MenuOptionGroup>,
}

impl MenuDish {
    /// The dish as it stands in the aggregate (for answers that must not wait for the read
    /// model); `None` for a dish never added.
    #[must_use]
    pub fn from_aggregate(dish: &Dish) -> Option<Self> {
        Some(Self {
            id: dish.dish_id()?,
            name: dish.name()?.to_owned(),
            description: dish.description()?.to_owned(),
            category: dish.category()?.to_owned(),
            price: Amount::from(dish.price()?),
            allergens: dish
                .allergens()
                .iter()
                .copied()
                .map(AllergenName::from)
                .collect(),
            available: dish.is_available(),
            unavailable_reason: None,
            station: dish.station()?.to_owned(),
            prep_minutes: dish.prep_minutes()?,
            dietary_tags: dish
                .dietary_tags()
                .iter()
                .copied()
                .map(DietaryTagName::from)
                .collect(),
            photo_url: dish.photo_url().map(ToOwned::to_owned),
            visible: dish.is_visible(),
            position: dish.position()?,
            options: dish.options().iter().map(MenuOptionGroup::from).collect(),
        })
    }
}

/// One category of the menu, its dishes in menu order.
#[derive(Debug, Clone, PartialEq, Object)]
pub struct MenuCategory {
    pub name: String,
    pub dishes: Vec<MenuDish>,
}

/// The whole menu, categories in menu order.
#[derive(Debug, Clone, PartialEq, Object)]
pub struct Menu {
    pub categories: Vec<MenuCategory>,
}

#[derive(FromRow)]
struct Row {
    dish_id: Uuid,
    name: String,
    description: String,
    category: String,
    price_amount: i64,
    currency: String,
    allergens: Json<Vec<AllergenName>>,
    station: String,
    prep_minutes: i32,
    available: bool,
    unavailable_reason: Option<String>,
    dietary_tags: Json<Vec<DietaryTagName>>,
    photo_url: Option<String>,
    visible: bool,
    position: i32,
    options: Json<Vec<MenuOptionGroup>>,
}

impl From<Row> for MenuDish {
    fn from(row: Row) -> Self {
        Self {
            id: row.dish_id,
            name: row.name,
            description: row.description,
            category: row.category,
            price: Amount {
                amount: row.price_amount,
                currency: row.currency,
            },
            allergens: row.allergens.0,
            available: row.available,
            unavailable_reason: row.unavailable_reason,
            station: row.station,
            prep_minutes: u32::try_from(row.prep_minutes).unwrap_or_default(),
            dietary_tags: row.dietary_tags.0,
            photo_url: row.photo_url,
            visible: row.visible,
            position: u32::try_from(row.position).unwrap_or_default(),
            options: row.options.0,
        }
    }
}

const SELECT: &str =
    "SELECT dish_id, name, description, category, price_amount, currency, allergens, station,
        prep_minutes, available, unavailable_reason, dietary_tags, photo_url, visible, position,
        options
     FROM menu_dishes";

/// The menu grouped by category: every dish, available or not; hidden ones only when
/// `with_hidden` (the manager's menu).
///
/// # Errors
/// A database error.
pub async fn menu(pool: &PgPool, with_hidden: bool) -> Result<Menu, sqlx::Error> {
    let rows: Vec<Row> = sqlx::query_as(&format!(
        "{SELECT} WHERE visible OR $1
         ORDER BY min(added_at) OVER (PARTITION BY category), category, position, added_at, dish_id"
    ))
    .bind(with_hidden)
    .fetch_all(pool)
    .await?;
    let mut categories: Vec<MenuCategory> = Vec::new();
    for dish in rows.into_iter().map(MenuDish::from) {
        match categories.iter_mut().find(|c| c.name == dish.category) {
            Some(category) => category.dishes.push(dish),
            None => categories.push(MenuCategory {
                name: dish.category.clone(),
                dishes: vec![dish],
            }),
        }
    }
    Ok(Menu { categories })
}

/// One dish.
///
/// # Errors
/// A database error.
pub async fn dish(pool: &PgPool, dish_id: Uuid) -> Result<Option<MenuDish>, sqlx::Error> {
    let row: Option<Row> = sqlx::query_as(&format!("{SELECT} WHERE dish_id = $1"))
        .bind(dish_id)
        .fetch_optional(pool)
        .await?;
    Ok(row.map(MenuDish::from))
}

/// The dishes among `ids` that are on the menu, by id (missing ids are unknown dishes).
///
/// # Errors
/// A database error.
pub async fn dishes(pool: &PgPool, ids: &[Uuid]) -> Result<HashMap<Uuid, MenuDish>, sqlx::Error> {
    let rows: Vec<Row> = sqlx::query_as(&format!("{SELECT} WHERE dish_id = ANY($1)"))
        .bind(ids)
        .fetch_all(pool)
        .await?;
    Ok(rows
        .into_iter()
        .map(|row| (row.dish_id, MenuDish::from(row)))
        .collect())
}

/// The subscription that keeps the menu up to date.
#[must_use]
pub fn subscription() -> Subscription {
    Subscription {
        name: NAME.to_owned(),
        source: "orders",
        aggregate_types: vec!["dish"],
        handler: Arc::new(MenuProjector),
    }
}

/// The projector.
pub struct MenuProjector;

#[async_trait::async_trait]
impl EventHandler for MenuProjector {
    async fn handle(
        &self,
        event: &ReceivedEvent,
        tx: &mut PgConnection,
    ) -> Result<(), HandlerError> {
        let envelope = &event.envelope;
        let dish_id: Uuid = envelope.aggregate_uuid("dish")?;
        let dish_event: DishEvent = envelope
            .decode()
            .map_err(|e| HandlerError::Permanent(format!("not a dish event: {e}")))?;
        let version = envelope.sequence;
        match dish_event {
            DishEvent::DishAdded {
                name,
                description,
                category,
                price,
                allergens,
                station,
                prep_minutes,
                available,
                at,
                ..
            } => {
                let allergens: Vec<AllergenName> =
                    allergens.into_iter().map(AllergenName::from).collect();
                sqlx::query(
                    "INSERT INTO menu_dishes (dish_id, name, description, category, price_amount, currency,
                        allergens, station, prep_minutes, available, added_at, updated_at, version)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $11, $12)
                     ON CONFLICT (dish_id) DO NOTHING",
                )
                .bind(dish_id)
                .bind(name)
                .bind(description)
                .bind(category)
                .bind(price.amount)
                .bind(price.currency)
                .bind(Json(allergens))
                .bind(station)
                .bind(minutes(prep_minutes))
                .bind(available)
                .bind(at)
                .bind(version)
                .execute(&mut *tx)
                .await?;
            }
            DishEvent::DishUpdated {
                name,
                description,
                category,
                price,
                allergens,
                station,
                prep_minutes,
                at,
            } => {
                let allergens = allergens
                    .map(|a| Json(a.into_iter().map(AllergenName::from).collect::<Vec<_>>()));
                let (amount, currency) = price.map(|p| (p.amount, p.currency)).unzip();
                sqlx::query(
                    "UPDATE menu_dishes SET
                        name = coalesce($2, name),
                        description = coalesce($3, description),
                        category = coalesce($4, category),
                        price_amount = coalesce($5, price_amount),
                        currency = coalesce($6, currency),
                        allergens = coalesce($7, allergens),
                        station = coalesce($8, station),
                        prep_minutes = coalesce($9, prep_minutes),
                        updated_at = $10,
                        version = $11
                     WHERE dish_id = $1",
                )
                .bind(dish_id)
                .bind(name)
                .bind(description)
                .bind(category)
                .bind(amount)
                .bind(currency)
                .bind(allergens)
                .bind(station)
                .bind(prep_minutes.map(minutes))
                .bind(at)
                .bind(version)
                .execute(&mut *tx)
                .await?;
            }
            DishEvent::DishAvailabilityChanged {
                available,
                reason,
                at,
            } => {
                sqlx::query(
                    "UPDATE menu_dishes SET available = $2, unavailable_reason = $3, updated_at = $4, version = $5
                     WHERE dish_id = $1",
                )
                .bind(dish_id)
                .bind(available)
                .bind(if available { None } else { reason })
                .bind(at)
                .bind(version)
                .execute(&mut *tx)
                .await?;
            }
            DishEvent::DishPresentationChanged {
                dietary_tags,
                photo_url,
                at,
            } => {
                let dietary_tags: Vec<DietaryTagName> =
                    dietary_tags.into_iter().map(DietaryTagName::from).collect();
                sqlx::query(
                    "UPDATE menu_dishes SET dietary_tags = $2, photo_url = $3, updated_at = $4, version = $5
                     WHERE dish_id = $1",
                )
                .bind(dish_id)
                .bind(Json(dietary_tags))
                .bind(photo_url)
                .bind(at)
                .bind(version)
                .execute(&mut *tx)
                .await?;
            }
            DishEvent::DishVisibilityChanged { visible, at } => {
                sqlx::query(
                    "UPDATE menu_dishes SET visible = $2, updated_at = $3, version = $4 WHERE dish_id = $1",
                )
                .bind(dish_id)
                .bind(visible)
                .bind(at)
                .bind(version)
                .execute(&mut *tx)
                .await?;
            }
            DishEvent::DishOptionsChanged { groups, at } => {
                let options: Vec<MenuOptionGroup> =
                    groups.iter().map(MenuOptionGroup::from).collect();
                sqlx::query(
                    "UPDATE menu_dishes SET options = $2, updated_at = $3, version = $4 WHERE dish_id = $1",
                )
                .bind(dish_id)
                .bind(Json(options))
                .bind(at)
                .bind(version)
                .execute(&mut *tx)
                .await?;
            }
            DishEvent::DishMoved { position, at } => {
                sqlx::query(
                    "UPDATE menu_dishes SET position = $2, updated_at = $3, version = $4 WHERE dish_id = $1",
                )
                .bind(dish_id)
                .bind(i32::try_from(position).unwrap_or(i32::MAX))
                .bind(at)
                .bind(version)
                .execute(&mut *tx)
                .await?;
            }
        }
        feed::record(tx, FEED, &dish_id.to_string()).await?;
        Ok(())
    }
}

/// How to rebuild the menu from the orders service's event store.
#[must_use]
pub fn spec() -> crate::rebuild::ProjectionSpec {
    crate::rebuild::ProjectionSpec {
        name: NAME,
        service: "orders",
        aggregate_types: &["dish"],
        tables: &["menu_dishes"],
        migrations: MIGRATIONS,
        handler: Arc::new(MenuProjector),
    }
}

/// Preparation minutes as stored (the domain caps them at 240).
fn minutes(value: u32) -> i32 {
    i32::try_from(value).unwrap_or(i32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dietary_tags_keep_the_domain_spelling() {
        for tag in DietaryTag::ALL {
            let name = DietaryTagName::from(tag);
            assert_eq!(DietaryTag::from(name), tag);
            assert_eq!(
                serde_json::to_value(name).expect("serializes"),
                serde_json::to_value(tag).expect("serializes")
            );
        }
    }

    #[test]
    fn allergens_keep_the_domain_spelling() {
        for allergen in Allergen::ALL {
            let name = AllergenName::from(allergen);
            assert_eq!(Allergen::from(name), allergen);
            assert_eq!(
                serde_json::to_value(name).expect("serializes"),
                serde_json::to_value(allergen).expect("serializes")
            );
        }
    }
}
