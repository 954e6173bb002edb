//! Placing an order: prices from the menu, bad input refused with its field and nothing
//! stored, and `Idempotency-Key` making a retried request place one order.

use brigade_domain::Role;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::helpers::{order_of, TestApp};

/// The customer's orders, as `GET /orders` lists them.
async fn orders_of(app: &TestApp, token: &str) -> Value {
    let list = app.get("/orders?pageSize=100", Some(token)).await;
    assert_eq!(list.status, 200, "{}", list.body);
    list.body
}

/// The id of the menu's dish named `name`.
async fn dish_id(app: &TestApp, name: &str) -> String {
    app.dish(name).await["id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn an_order_is_priced_from_the_menu_whatever_the_client_says() {
    let app = TestApp::spawn().await;
    let bourguignon = app.dish("Bœuf bourguignon").await;
    let creme_brulee = app.dish("Crème brûlée").await;
    let (customer_id, customer) = app.customer();
    let body = json!({
        "items": [
            {"dishId": bourguignon["id"], "quantity": 2, "note": "sans oignons", "price": {"amount": 1, "currency": "EUR"}},
            {"dishId": creme_brulee["id"], "quantity": 1, "unitPrice": 1, "name": "Offert"},
        ],
        "deliveryAddress": {"street": "12 rue des Martyrs", "city": "Paris", "postalCode": "75009", "lat": 48.878, "lon": 2.339},
        "contactPhone": "+33 6 12 34 56 78",
        "total": {"amount": 2, "currency": "EUR"},
    });

    let placed = app.place(&customer, "first-order", &body).await;

    assert_eq!(placed.status, 201, "{}", placed.body);
    assert_eq!(placed.body["status"], "placed");
    assert_eq!(
        placed.body["total"],
        json!({"amount": 2 * 2250 + 850, "currency": "EUR"})
    );
    let order_id = placed.body["orderId"].as_str().unwrap();
    // Read at once: answered from the order itself if the read model has not caught up.
    let order = app
        .get(&format!("/orders/{order_id}"), Some(&customer))
        .await;
    assert_eq!(order.status, 200, "{}", order.body);
    assert_eq!(order.body["customerId"], customer_id.to_string());
    assert_eq!(order.body["items"][0]["name"], "Bœuf bourguignon");
    assert_eq!(order.body["items"][0]["unitPrice"]["amount"], 2250);
    assert_eq!(order.body["items"][0]["lineTotal"]["amount"], 4500);
    assert_eq!(order.body["items"][0]["note"], "sans oignons");
    assert_eq!(order.body["items"][1]["name"], "Crème brûlée");
    assert_eq!(order.body["total"]["amount"], 5350);
    assert_eq!(order.body["deliveryAddress"]["postalCode"], "75009");
    assert_eq!(order.body["contactPhone"], "+33 6 12 34 56 78");
    assert_eq!(order.body["history"][0]["status"], "placed");
    let tracked = app
        .wait_for_status(order_id.parse().unwrap(), &customer, "placed")
        .await;
    assert_eq!(
        tracked["history"][0]["by"]["accountId"],
        customer_id.to_string()
    );
    assert_eq!(tracked["history"][0]["by"]["role"], "customer");
    app.stop().await;
}

#[tokio::test]
async fn an_unknown_dish_is_refused_with_its_field_and_nothing_is_stored() {
    let app = TestApp::spawn().await;
    let (_, customer) = app.customer();
    let cafe = dish_id(&app, "Café expresso").await;

    let unknown = Uuid::new_v4().to_string();
    let refused = app
        .place(&customer, "k1", &order_of(&[(&cafe, 1), (&unknown, 1)]))
        .await;
    let not_an_id = app.place(&customer, "k2", &order_of(&[("steak", 1)])).await;

    assert_eq!(refused.status, 422, "{}", refused.body);
    assert_eq!(refused.content_type, "application/problem+json");
    assert_eq!(refused.problem_code(), "order-unknown-dish");
    assert_eq!(refused.field(), "items/1/dishId");
    assert!(refused.body["detail"].as_str().unwrap().contains(&unknown));
    assert_eq!(
        (not_an_id.status, not_an_id.field()),
        (422, "items/0/dishId")
    );
    assert_eq!(orders_of(&app, &customer).await["total"], 0);
    app.stop().await;
}

#[tokio::test]
async fn quantities_outside_one_to_fifty_are_refused() {
    let app = TestApp::spawn().await;
    let (_, customer) = app.customer();
    let cafe = dish_id(&app, "Café expresso").await;

    for quantity in [0, -1, 51, 5_000_000_000] {
        let refused = app
            .place(
                &customer,
                &format!("q{quantity}"),
                &order_of(&[(&cafe, quantity)]),
            )
            .await;
        assert_eq!(refused.status, 422, "quantity {quantity}: {}", refused.body);
        assert_eq!(refused.problem_code(), "order-invalid-quantity");
        assert_eq!(refused.field(), "items/0/quantity");
    }
    let mut fractional = order_of(&[(&cafe, 1)]);
    fractional["items"][0]["quantity"] = json!(1.5);
    let refused = app.place(&customer, "q1.5", &fractional).await;
    assert_eq!(refused.status, 400, "{}", refused.body);
    assert_eq!(refused.content_type, "application/problem+json");
    assert_eq!(orders_of(&app, &customer).await["total"], 0);
    app.stop().await;
}

#[tokio::test]
async fn an_empty_order_a_missing_address_and_a_long_note_are_refused_with_their_field() {
    let app = TestApp::spawn().await;
    let (_, customer) = app.customer();
    let cafe = dish_id(&app, "Café expresso").await;
    let mut no_address = order_of(&[(&cafe, 1)]);
    no_address
        .as_object_mut()
        .unwrap()
        .remove("deliveryAddress");
    let mut blank_city = order_of(&[(&cafe, 1)]);
    blank_city["deliveryAddress"]["city"] = json!(" ");
    let mut long_note = order_of(&[(&cafe, 1)]);
    long_note["items"][0]["note"] = json!("x".repeat(201));
    let too_many: Vec<(&str, i64)> = (0..101).map(|_| (cafe.as_str(), 1)).collect();

    let cases = [
        (order_of(&[]), "items"),
        (
            json!({"deliveryAddress": order_of(&[])["deliveryAddress"]}),
            "items",
        ),
        (no_address, "deliveryAddress"),
        (blank_city, "deliveryAddress/city"),
        (long_note, "items/0/note"),
        (order_of(&too_many), "items"),
    ];
    for (i, (body, field)) in cases.into_iter().enumerate() {
        let refused = app.place(&customer, &format!("bad-{i}"), &body).await;
        assert_eq!(
            (refused.status, refused.field()),
            (422, field),
            "case {i}: {}",
            refused.body
        );
    }
    assert_eq!(orders_of(&app, &customer).await["total"], 0);
    app.stop().await;
}

#[tokio::test]
async fn malformed_json_is_a_400_problem() {
    let app = TestApp::spawn().await;
    let (_, customer) = app.customer();

    let response = app
        .http
        .post(format!("{}/orders", app.base))
        .bearer_auth(&customer)
        .header("Idempotency-Key", "k")
        .header("Content-Type", "application/json")
        .body(r#"{"items": [{"dishId": "#)
        .send()
        .await
        .unwrap();

    assert_eq!(response.status().as_u16(), 400);
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
    let problem: Value = response.json().await.unwrap();
    assert_eq!(problem["status"], 400);
    assert!(problem["type"]
        .as_str()
        .unwrap()
        .starts_with("https://brigade.dev/errors/"));
    app.stop().await;
}

#[tokio::test]
async fn only_a_customer_with_an_idempotency_key_places_an_order() {
    let app = TestApp::spawn().await;
    let (_, customer) = app.customer();
    let cafe = dish_id(&app, "Café expresso").await;
    let body = order_of(&[(&cafe, 1)]);

    let without_key = app.post("/orders", &customer, Some(body.clone())).await;
    let long_key = app.place(&customer, &"k".repeat(201), &body).await;
    let by_a_chef = app.place(&app.token(Role::Chef), "k", &body).await;
    let anonymous = app
        .http
        .post(format!("{}/orders", app.base))
        .json(&body)
        .send()
        .await
        .unwrap();

    assert_eq!(
        (without_key.status, without_key.field()),
        (400, "Idempotency-Key")
    );
    assert_eq!(without_key.problem_code(), "idempotency-key-required");
    assert_eq!(
        (long_key.status, long_key.field()),
        (400, "Idempotency-Key")
    );
    assert_eq!(by_a_chef.status, 403);
    assert_eq!(anonymous.status().as_u16(), 401);
    assert_eq!(orders_of(&app, &customer).await["total"], 0);
    app.stop().await;
}

#[tokio::test]
async fn a_retry_with_the_same_key_answers_with_the_same_order() {
    let app = TestApp::spawn().await;
    let (_, customer) = app.customer();
    let cafe = dish_id(&app, "Café expresso").await;
    let body = order_of(&[(&cafe, 2)]);

    let first = app.place(&customer, "retry-me", &body).await;
    let retry = app.place(&customer, "retry-me", &body).await;
    let other_body = app
        .place(&customer, "retry-me", &order_of(&[(&cafe, 3)]))
        .await;
    let other_customer = app.place(&app.customer().1, "retry-me", &body).await;

    assert_eq!(first.status, 201, "{}", first.body);
    assert_eq!(retry.status, 201, "{}", retry.body);
    assert_eq!(retry.body, first.body);
    assert_eq!(other_body.status, 422, "{}", other_body.body);
    assert_eq!(other_body.problem_code(), "idempotency-key-reused");
    assert_eq!(other_customer.status, 201, "keys are per customer");
    assert_ne!(other_customer.body["orderId"], first.body["orderId"]);
    app.eventually("the order listed", || async {
        (orders_of(&app, &customer).await["total"] == 1).then_some(())
    })
    .await;
    app.stop().await;
}

#[tokio::test]
async fn the_same_key_sent_concurrently_places_one_order() {
    let app = TestApp::spawn().await;
    let (_, customer) = app.customer();
    let cafe = dish_id(&app, "Café expresso").await;
    let body = order_of(&[(&cafe, 1)]);

    let answers =
        futures::future::join_all((0..8).map(|_| app.place(&customer, "double-tap", &body))).await;

    let order_ids: Vec<&Value> = answers.iter().map(|a| &a.body["orderId"]).collect();
    assert!(
        answers.iter().all(|a| a.status == 201),
        "{:?}",
        answers.iter().map(|a| &a.body).collect::<Vec<_>>()
    );
    assert!(order_ids.iter().all(|id| *id == order_ids[0]));
    app.eventually("the order listed", || async {
        (orders_of(&app, &customer).await["total"] == 1).then_some(())
    })
    .await;
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert_eq!(orders_of(&app, &customer).await["total"], 1);
    app.stop().await;
}

#[tokio::test]
async fn a_refused_order_frees_its_key_for_the_corrected_request() {
    let app = TestApp::spawn().await;
    let (_, customer) = app.customer();
    let cafe = dish_id(&app, "Café expresso").await;

    let refused = app
        .place(&customer, "fix-me", &order_of(&[(&cafe, 0)]))
        .await;
    let corrected = app
        .place(&customer, "fix-me", &order_of(&[(&cafe, 1)]))
        .await;

    assert_eq!(refused.status, 422);
    assert_eq!(corrected.status, 201, "{}", corrected.body);
    app.stop().await;
}

#[tokio::test]
async fn a_retry_after_the_dish_sold_out_answers_with_the_order_placed() {
    let app = TestApp::spawn().await;
    let manager = app.token(Role::Manager);
    let (_, customer) = app.customer();
    let cafe = dish_id(&app, "Café expresso").await;
    let body = order_of(&[(&cafe, 1)]);
    let first = app.place(&customer, "sold-out-since", &body).await;
    assert_eq!(first.status, 201, "{}", first.body);

    let sold_out = app
        .patch(
            &format!("/menu/dishes/{cafe}"),
            &manager,
            json!({"available": false}),
        )
        .await;
    assert_eq!(sold_out.status, 200, "{}", sold_out.body);
    app.eventually("the dish unavailable on the menu", || async {
        let dish = app.get(&format!("/menu/dishes/{cafe}"), None).await.body;
        (dish["available"] == false).then_some(())
    })
    .await;
    let retry = app.place(&customer, "sold-out-since", &body).await;
    let new_order = app.place(&customer, "a-new-key", &body).await;

    assert_eq!(retry.status, 201, "{}", retry.body);
    assert_eq!(retry.body, first.body);
    assert_eq!(new_order.status, 422, "{}", new_order.body);
    assert_eq!(new_order.problem_code(), "order-dish-unavailable");
    app.stop().await;
}

#[tokio::test]
async fn the_order_its_key_and_its_kitchen_slot_are_stored_together() {
    let app = TestApp::spawn().await;
    let (customer_id, customer) = app.customer();
    let cafe = dish_id(&app, "Café expresso").await;

    let placed = app
        .place(&customer, "together", &order_of(&[(&cafe, 2)]))
        .await;
    let refused = app
        .place(&customer, "refused", &order_of(&[(&cafe, 0)]))
        .await;

    assert_eq!(placed.status, 201, "{}", placed.body);
    assert_eq!(refused.status, 422, "{}", refused.body);
    let order_id: Uuid = placed.body["orderId"].as_str().unwrap().parse().unwrap();
    let pool = app.pool().await;
    let keys: Vec<(String, Uuid)> = sqlx::query_as(
        "SELECT key, order_id FROM idempotency_keys WHERE customer_id = $1 ORDER BY key",
    )
    .bind(customer_id)
    .fetch_all(&pool)
    .await
    .unwrap();
    let events: Vec<(i64, String, String)> = sqlx::query_as(
        "SELECT e.sequence, e.event_type, o.event_type FROM events e
           JOIN outbox o USING (event_id) WHERE e.aggregate_id = $1",
    )
    .bind(order_id.to_string())
    .fetch_all(&pool)
    .await
    .unwrap();
    let booked: Option<bool> =
        sqlx::query_scalar("SELECT open FROM kitchen_load WHERE order_id = $1")
            .bind(order_id)
            .fetch_optional(&pool)
            .await
            .unwrap();
    pool.close().await;
    assert_eq!(
        keys,
        vec![("together".to_owned(), order_id)],
        "a refused order claims no key"
    );
    assert_eq!(
        events,
        vec![(1, "OrderPlaced".to_owned(), "OrderPlaced".to_owned())],
        "the event, and its outbox row"
    );
    assert_eq!(booked, Some(true));
    app.stop().await;
}

#[tokio::test]
async fn a_key_claimed_without_its_order_places_the_order_under_the_claimed_id() {
    // An earlier version committed the claim on its own before the order: a crash in between
    // left a key standing for an order id with no order. The retry places it under that id.
    let app = TestApp::spawn().await;
    let (customer_id, customer) = app.customer();
    let cafe = dish_id(&app, "Café expresso").await;
    let body = order_of(&[(&cafe, 1)]);
    let first = app.place(&customer, "crashed", &body).await;
    assert_eq!(first.status, 201, "{}", first.body);
    let orphan = Uuid::new_v4();
    let pool = app.pool().await;
    sqlx::query("UPDATE idempotency_keys SET order_id = $1 WHERE customer_id = $2 AND key = $3")
        .bind(orphan)
        .bind(customer_id)
        .bind("crashed")
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;

    let retry = app.place(&customer, "crashed", &body).await;
    let again = app.place(&customer, "crashed", &body).await;

    assert_eq!(retry.status, 201, "{}", retry.body);
    assert_eq!(retry.body["orderId"], orphan.to_string());
    assert_eq!(again.body, retry.body);
    let order = app.get(&format!("/orders/{orphan}"), Some(&customer)).await;
    assert_eq!(order.status, 200, "{}", order.body);
    app.stop().await;
}
