//! Dish options: managers set them (and are refused, naming the field, when they make no
//! sense); customers pick them, the server prices them and snapshots them into the order, and
//! refuses picks that do not fit the dish, naming the dish and the group, storing nothing.
//! Also here: an `Idempotency-Key` expires after a day.

use brigade_domain::Role;
use brigade_orders::idempotency;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::helpers::TestApp;

/// An order of one `dish` line with `options` (group id, choice id) picks.
fn order_with(dish: &Value, quantity: i64, options: &[(&Value, &Value)]) -> Value {
    json!({
        "items": [{
            "dishId": dish["id"],
            "quantity": quantity,
            "options": options.iter().map(|(group, choice)| json!({"groupId": group, "choiceId": choice})).collect::<Vec<_>>(),
        }],
        "deliveryAddress": {"street": "12 rue des Martyrs", "city": "Paris", "postalCode": "75009"},
    })
}

/// The group of `dish` named `group`, and its choice named `choice`: their ids.
fn ids<'a>(dish: &'a Value, group: &str, choice: &str) -> (&'a Value, &'a Value) {
    let group = dish["options"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["name"] == group)
        .unwrap_or_else(|| panic!("no group {group}"));
    let choice = group["choices"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == choice)
        .unwrap_or_else(|| panic!("no choice {choice}"));
    (&group["id"], &choice["id"])
}

fn burger() -> Value {
    json!({
        "name": "Burger du chef",
        "category": "Plats",
        "price": {"amount": 1800, "currency": "EUR"},
        "options": [
            {"name": " Cuisson ", "minChoices": 1, "maxChoices": 1, "choices": [
                {"name": "saignant"}, {"name": "à point"}, {"name": "bien cuit"}
            ]},
            {"name": "Supplément", "maxChoices": 3, "choices": [
                {"name": "fromage", "priceDelta": {"amount": 150, "currency": "EUR"}},
                {"name": "bacon", "priceDelta": {"amount": 200, "currency": "EUR"}},
                {"name": "oignons", "priceDelta": {"amount": 50, "currency": "EUR"}}
            ]}
        ]
    })
}

#[tokio::test]
async fn picked_options_are_priced_snapshotted_and_shown_with_the_order() {
    let app = TestApp::spawn().await;
    let manager = app.token(Role::Manager);
    let created = app.post("/menu/dishes", &manager, Some(burger())).await;
    assert_eq!(created.status, 201, "{}", created.body);
    let dish = created.body;
    assert_eq!(dish["options"][0]["name"], "Cuisson");
    assert_eq!(dish["options"][1]["minChoices"], 0);
    assert_eq!(
        dish["options"][0]["choices"][0]["priceDelta"],
        json!({"amount": 0, "currency": "EUR"})
    );
    let (_, customer) = app.customer();
    let (cuisson, saignant) = ids(&dish, "Cuisson", "saignant");
    let (supplement, fromage) = ids(&dish, "Supplément", "fromage");
    let (_, bacon) = ids(&dish, "Supplément", "bacon");

    let placed = app
        .place(
            &customer,
            "burger",
            &order_with(
                &dish,
                2,
                &[
                    (supplement, bacon),
                    (cuisson, saignant),
                    (supplement, fromage),
                ],
            ),
        )
        .await;

    assert_eq!(placed.status, 201, "{}", placed.body);
    assert_eq!(placed.body["total"]["amount"], (1800 + 150 + 200) * 2);
    let order_id: Uuid = placed.body["orderId"].as_str().unwrap().parse().unwrap();
    let order = app
        .get(&format!("/orders/{order_id}"), Some(&customer))
        .await;
    let line = &order.body["items"][0];
    assert_eq!(line["unitPrice"]["amount"], 2150);
    assert_eq!(line["lineTotal"]["amount"], 4300);
    let picked: Vec<(String, String, i64)> = line["options"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| {
            (
                o["group"].as_str().unwrap().to_owned(),
                o["choice"].as_str().unwrap().to_owned(),
                o["priceDelta"]["amount"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        picked,
        [
            ("Cuisson".into(), "saignant".into(), 0),
            ("Supplément".into(), "fromage".into(), 150),
            ("Supplément".into(), "bacon".into(), 200)
        ]
    );
    // The read model (GET /orders) has them too.
    let tracked = app.wait_for_status(order_id, &customer, "placed").await;
    assert_eq!(tracked["items"][0]["options"], line["options"]);

    // Changing the options later leaves the order as it was placed.
    let changed = app
        .patch(
            &format!("/menu/dishes/{}", dish["id"].as_str().unwrap()),
            &manager,
            json!({"options": []}),
        )
        .await;
    assert_eq!(changed.status, 200, "{}", changed.body);
    assert_eq!(changed.body["options"], json!([]));
    let order = app
        .get(&format!("/orders/{order_id}"), Some(&customer))
        .await;
    assert_eq!(order.body["items"][0]["options"], line["options"]);
    app.stop().await;
}

#[tokio::test]
async fn picks_that_do_not_fit_the_dish_are_refused_naming_it_and_nothing_is_stored() {
    let app = TestApp::spawn().await;
    let (_, customer) = app.customer();
    let steak = app.dish("Steak frites, sauce au poivre").await;
    let (cuisson, bleu) = ids(&steak, "Cuisson", "bleu");
    let (_, saignant) = ids(&steak, "Cuisson", "saignant");
    let (supplement, frites) = ids(&steak, "Supplément", "frites en plus");
    let unknown = json!(Uuid::new_v4());

    let cases = [
        (
            "no-cooking",
            vec![(supplement, frites)],
            "order-option-required",
        ),
        (
            "two-cookings",
            vec![(cuisson, bleu), (cuisson, saignant)],
            "order-option-too-many",
        ),
        (
            "wrong-group",
            vec![(cuisson, frites)],
            "order-option-unknown",
        ),
        (
            "unknown-choice",
            vec![(cuisson, &unknown)],
            "order-option-unknown",
        ),
        (
            "twice",
            vec![(cuisson, bleu), (supplement, frites), (supplement, frites)],
            "order-option-duplicate",
        ),
    ];
    for (key, picks, code) in cases {
        let refused = app
            .place(&customer, key, &order_with(&steak, 1, &picks))
            .await;
        assert_eq!(refused.status, 422, "{key}: {}", refused.body);
        assert_eq!(refused.content_type, "application/problem+json");
        assert_eq!(refused.problem_code(), code, "{key}");
        assert_eq!(refused.field(), "items/0/options", "{key}");
        let detail = refused.body["detail"].as_str().unwrap();
        assert!(detail.contains("Steak frites"), "{key}: {detail}");
    }
    let missing = app
        .place(&customer, "again", &order_with(&steak, 1, &[]))
        .await;
    assert!(missing.body["detail"].as_str().unwrap().contains("Cuisson"));
    let orders = app.get("/orders", Some(&customer)).await;
    assert_eq!(orders.body["total"], 0, "{}", orders.body);

    // The refused key is free again: the fixed request goes through.
    let fixed = app
        .place(
            &customer,
            "no-cooking",
            &order_with(&steak, 1, &[(cuisson, bleu), (supplement, frites)]),
        )
        .await;
    assert_eq!(fixed.status, 201, "{}", fixed.body);
    assert_eq!(fixed.body["total"]["amount"], 2450 + 250);
    app.stop().await;
}

/// A change to a new dish's body.
type Change = fn(&mut Value);

#[tokio::test]
async fn a_manager_is_told_which_option_makes_no_sense_and_nothing_is_applied() {
    let app = TestApp::spawn().await;
    let manager = app.token(Role::Manager);
    let before = app.get("/menu/dishes", Some(&manager)).await.body;
    let cases: [(&str, Change, &str); 5] = [
        (
            "same group name",
            |b| b["options"][1]["name"] = json!("cuisson"),
            "options/1/name",
        ),
        (
            "min above max",
            |b| b["options"][1]["minChoices"] = json!(4),
            "options/1/minChoices",
        ),
        (
            "max above choices",
            |b| b["options"][1]["maxChoices"] = json!(4),
            "options/1/maxChoices",
        ),
        (
            "negative delta",
            |b| {
                b["options"][1]["choices"][2]["priceDelta"] =
                    json!({"amount": -50, "currency": "EUR"})
            },
            "options/1/choices/2/priceDelta",
        ),
        (
            "blank choice",
            |b| b["options"][0]["choices"][1]["name"] = json!(" "),
            "options/0/choices/1/name",
        ),
    ];
    for (case, change, field) in cases {
        let mut body = burger();
        change(&mut body);
        let refused = app.post("/menu/dishes", &manager, Some(body)).await;
        assert_eq!(refused.status, 422, "{case}: {}", refused.body);
        assert_eq!(refused.content_type, "application/problem+json");
        assert_eq!(refused.field(), field, "{case}");
    }
    assert_eq!(app.get("/menu/dishes", Some(&manager)).await.body, before);

    // A change with bad options changes nothing else either.
    let steak = app.dish("Steak frites, sauce au poivre").await;
    let path = format!("/menu/dishes/{}", steak["id"].as_str().unwrap());
    let refused = app
        .patch(
            &path,
            &manager,
            json!({"name": "Steak", "options": [{"name": "Cuisson", "maxChoices": 0, "choices": [{"name": "bleu"}]}]}),
        )
        .await;
    assert_eq!(refused.status, 422, "{}", refused.body);
    assert_eq!(refused.problem_code(), "dish-option-limits-invalid");
    assert_eq!(refused.field(), "options/0/maxChoices");
    let now = app
        .get(
            &format!("/menu/dishes/{}", steak["id"].as_str().unwrap()),
            None,
        )
        .await;
    assert_eq!(now.body["name"], "Steak frites, sauce au poivre");
    assert_eq!(now.body["options"], steak["options"]);
    app.stop().await;
}

#[tokio::test]
async fn an_idempotency_key_expires_after_a_day() {
    let app = TestApp::spawn().await;
    let (customer_id, customer) = app.customer();
    let cafe = app.dish("Café expresso").await;
    let first = app
        .place(&customer, "daily", &order_with(&cafe, 1, &[]))
        .await;
    assert_eq!(first.status, 201, "{}", first.body);
    let pool = sqlx::PgPool::connect(
        &app.settings
            .database_url_for(brigade_platform::ServiceName::Orders),
    )
    .await
    .unwrap();
    let age_key = |hours: i32| {
        sqlx::query(
            "UPDATE idempotency_keys SET created_at = now() - make_interval(hours => $1)
             WHERE customer_id = $2 AND key = 'daily'",
        )
        .bind(hours)
        .bind(customer_id)
        .execute(&pool)
    };

    // Within the day, the key still stands for the first order.
    age_key(23).await.unwrap();
    let retry = app
        .place(&customer, "daily", &order_with(&cafe, 1, &[]))
        .await;
    assert_eq!(retry.body["orderId"], first.body["orderId"]);

    // A day later, it is a fresh key: a new order, even for another request.
    age_key(25).await.unwrap();
    let later = app
        .place(&customer, "daily", &order_with(&cafe, 2, &[]))
        .await;
    assert_eq!(later.status, 201, "{}", later.body);
    assert_ne!(later.body["orderId"], first.body["orderId"]);

    // And the purge deletes expired keys, only those.
    age_key(25).await.unwrap();
    let second = app
        .place(&customer, "fresh", &order_with(&cafe, 1, &[]))
        .await;
    assert_eq!(second.status, 201, "{}", second.body);
    let purged = idempotency::purge_expired(&pool, idempotency::KEY_TTL)
        .await
        .unwrap();
    assert!(purged >= 1);
    let keys: Vec<String> =
        sqlx::query_scalar("SELECT key FROM idempotency_keys WHERE customer_id = $1")
            .bind(customer_id)
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(keys, ["fresh"]);
    pool.close().await;
    app.stop().await;
}
