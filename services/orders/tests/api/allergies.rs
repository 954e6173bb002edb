//! A customer's declared allergens (from identity) against the dishes of their order.

use brigade_domain::identity::AccountEvent;
use brigade_domain::{Allergen, Diet};
use chrono::Utc;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::helpers::{order_of, TestApp};

/// Identity says `customer` declared `allergens`; waits until the orders service has it.
async fn declares(app: &TestApp, customer: Uuid, sequence: usize, allergens: Vec<Allergen>) {
    let expected = serde_json::to_value(&allergens).unwrap();
    app.identity_says(
        customer,
        sequence,
        &AccountEvent::DietaryProfileChanged {
            allergens,
            diets: vec![Diet::Vegetarian],
            at: Utc::now(),
        },
    )
    .await;
    let pool = app.pool().await;
    app.eventually("the declaration to reach the orders service", || async {
        let stored: Option<Value> = sqlx::query_scalar(
            "SELECT allergens FROM customer_dietary_profiles WHERE customer_id = $1",
        )
        .bind(customer)
        .fetch_optional(&pool)
        .await
        .unwrap();
        (stored.as_ref() == Some(&expected)).then_some(())
    })
    .await;
    pool.close().await;
}

#[tokio::test]
async fn a_dish_with_a_declared_allergen_is_refused_until_confirmed_and_nothing_is_stored() {
    let app = TestApp::spawn().await;
    let (customer, token) = app.customer();
    declares(&app, customer, 1, vec![Allergen::Milk, Allergen::Peanuts]).await;
    let creme = app.dish("Crème brûlée").await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let ratatouille = app.dish("Ratatouille provençale").await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let key = Uuid::new_v4().to_string();
    let body = order_of(&[(&ratatouille, 1), (&creme, 2)]);

    let refused = app.place(&token, &key, &body).await;
    assert_eq!(refused.status, 409, "{}", refused.body);
    assert!(refused.content_type.starts_with("application/problem+json"));
    assert_eq!(refused.problem_code(), "allergen-confirmation-required");
    assert_eq!(refused.field(), "allergensConfirmed");
    assert_eq!(
        refused.body["items"],
        json!([{"line": 1, "dishId": creme, "dishName": "Crème brûlée", "allergens": ["milk"]}])
    );
    assert!(refused.body["detail"]
        .as_str()
        .unwrap()
        .contains("Crème brûlée contains milk"));
    assert_eq!(
        app.stored_orders().await,
        (0, 0),
        "a refusal stores nothing"
    );

    // Confirmed, with the same key (the refusal released it): placed, allergy flag carried.
    let mut confirmed = body.clone();
    confirmed["allergensConfirmed"] = json!(true);
    let placed = app.place(&token, &key, &confirmed).await;
    assert_eq!(placed.status, 201, "{}", placed.body);
    let pool = app.pool().await;
    let event: Value = sqlx::query_scalar(
        "SELECT payload FROM events WHERE aggregate_type = 'order' AND event_type = 'OrderPlaced'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    pool.close().await;
    assert_eq!(
        event["OrderPlaced"]["allergies"],
        json!(["peanuts", "milk"])
    );
    app.stop().await;
}

#[tokio::test]
async fn dishes_without_a_declared_allergen_need_no_confirmation_and_still_flag_the_kitchen() {
    let app = TestApp::spawn().await;
    let (customer, token) = app.customer();
    declares(&app, customer, 1, vec![Allergen::Peanuts]).await;
    let ratatouille = app.dish("Ratatouille provençale").await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let placed = app
        .place(
            &token,
            &Uuid::new_v4().to_string(),
            &order_of(&[(&ratatouille, 1)]),
        )
        .await;
    assert_eq!(placed.status, 201, "{}", placed.body);
    let pool = app.pool().await;
    let allergies: Value = sqlx::query_scalar(
        "SELECT payload->'OrderPlaced'->'allergies' FROM events WHERE event_type = 'OrderPlaced'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    pool.close().await;
    assert_eq!(allergies, json!(["peanuts"]));

    // Another customer, who declared nothing, orders anything.
    let (_, other) = app.customer();
    let creme = app.dish("Crème brûlée").await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let plain = app
        .place(
            &other,
            &Uuid::new_v4().to_string(),
            &order_of(&[(&creme, 1)]),
        )
        .await;
    assert_eq!(plain.status, 201, "{}", plain.body);
    app.stop().await;
}
