//! Customers' declared allergens and diets, as the identity service publishes them
//! (`identity.account.dietary_profile_changed`), kept here so that checkout can warn about a
//! dish containing a declared allergen without calling identity while a customer waits.
//!
//! At checkout, [`allergy_check`] compares each line's dish (its menu allergens) with the
//! customer's declaration; the `Order` aggregate refuses a conflicting order unless the
//! customer confirmed it (`allergensConfirmed`), and a placed order carries the declared
//! allergens to the kitchen ticket. A declaration made a moment ago may not have arrived yet
//! (the bus is asynchronous, usually well under a second): the checkout page reads the profile
//! from identity itself, so it warns even then.

use std::collections::HashMap;

use brigade_domain::ordering::{AllergyCheck, DishAllergens, OrderLine};
use brigade_domain::{Allergen, Diet};
use brigade_nats::Migration;
use brigade_projections::menu::MenuDish;
use chrono::{DateTime, Utc};
use sqlx::types::Json;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

/// Schema of the customers' declarations.
pub const MIGRATIONS: &[Migration] = &[Migration {
    name: "0420_customer_dietary_profiles",
    sql: r"
CREATE TABLE customer_dietary_profiles (
    customer_id uuid        PRIMARY KEY,
    allergens   jsonb       NOT NULL,
    diets       jsonb       NOT NULL,
    changed_at  timestamptz NOT NULL
);
",
}];

/// Records a customer's declaration as identity published it (the whole lists).
///
/// # Errors
/// A database error.
pub async fn record(
    tx: &mut PgConnection,
    customer_id: Uuid,
    allergens: &[Allergen],
    diets: &[Diet],
    at: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO customer_dietary_profiles (customer_id, allergens, diets, changed_at)
         VALUES ($1, $2, $3, $4)
         ON CONFLICT (customer_id) DO UPDATE
            SET allergens = EXCLUDED.allergens, diets = EXCLUDED.diets,
                changed_at = EXCLUDED.changed_at",
    )
    .bind(customer_id)
    .bind(Json(allergens))
    .bind(Json(diets))
    .bind(at)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// The allergens a customer declared (none when they never declared any).
///
/// # Errors
/// A database error.
pub async fn allergens_of(pool: &PgPool, customer_id: Uuid) -> Result<Vec<Allergen>, sqlx::Error> {
    let declared: Option<Json<Vec<Allergen>>> = sqlx::query_scalar(
        "SELECT allergens FROM customer_dietary_profiles WHERE customer_id = $1",
    )
    .bind(customer_id)
    .fetch_optional(pool)
    .await?;
    Ok(declared
        .map(|Json(allergens)| allergens)
        .unwrap_or_default())
}

/// The allergen check of an order's `lines` for a customer who declared `declared`.
#[must_use]
pub fn allergy_check(
    declared: &[Allergen],
    lines: &[OrderLine],
    dishes: &HashMap<Uuid, MenuDish>,
    confirmed: bool,
) -> AllergyCheck {
    let allergens: HashMap<Uuid, Vec<Allergen>> = dishes
        .iter()
        .map(|(id, dish)| (*id, dish.allergens.iter().map(|a| (*a).into()).collect()))
        .collect();
    AllergyCheck::of(
        declared,
        lines.iter().map(|line| DishAllergens {
            dish_id: line.dish_id,
            dish_name: &line.name,
            allergens: allergens.get(&line.dish_id).map_or(&[], Vec::as_slice),
        }),
        confirmed,
    )
}
