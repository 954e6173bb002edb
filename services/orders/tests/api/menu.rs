//! The menu: served to anyone, changed by managers, and a dish off the menu cannot be ordered.

use brigade_domain::Role;
use serde_json::json;
use uuid::Uuid;

use crate::helpers::{order_of, TestApp};

#[tokio::test]
async fn anyone_sees_the_starter_menu_by_category() {
    let app = TestApp::spawn().await;

    let menu = app.get("/menu", None).await;

    assert_eq!(menu.status, 200);
    let categories = menu.body["categories"].as_array().unwrap();
    let names: Vec<&str> = categories
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Entrées", "Plats", "Desserts", "Boissons"]);
    let dishes: Vec<_> = categories
        .iter()
        .flat_map(|c| c["dishes"].as_array().unwrap())
        .collect();
    assert!(dishes.len() >= 18, "{} dishes", dishes.len());
    assert!(dishes
        .iter()
        .all(|d| d["price"]["currency"] == "EUR" && d["available"] == true));
    let creme_brulee = app.dish("Crème brûlée").await;
    assert_eq!(
        creme_brulee["price"],
        json!({"amount": 850, "currency": "EUR"})
    );
    assert_eq!(creme_brulee["allergens"], json!(["eggs", "milk"]));
    assert!(creme_brulee["description"]
        .as_str()
        .unwrap()
        .contains("vanille"));
    app.stop().await;
}

#[tokio::test]
async fn a_manager_adds_a_dish_and_changes_its_price() {
    let app = TestApp::spawn().await;
    let manager = app.token(Role::Manager);
    let dish = json!({
        "name": "Tartare de bœuf", "description": "Coupé au couteau, frites maison", "category": "Plats",
        "price": {"amount": 2150, "currency": "EUR"}, "allergens": ["eggs", "mustard"], "station": "cold",
    });

    let added = app.post("/menu/dishes", &manager, Some(dish.clone())).await;
    assert_eq!(added.status, 201, "{}", added.body);
    let id = added.body["id"].as_str().unwrap().to_owned();
    let changed = app
        .patch(
            &format!("/menu/dishes/{id}"),
            &manager,
            json!({"price": {"amount": 2250, "currency": "EUR"}}),
        )
        .await;

    assert_eq!(changed.status, 200, "{}", changed.body);
    assert_eq!(changed.body["price"]["amount"], 2250);
    assert_eq!(changed.body["name"], "Tartare de bœuf");
    let on_the_menu = app
        .eventually("the new price on the menu", || async {
            let dish = app.get(&format!("/menu/dishes/{id}"), None).await;
            (dish.body["price"]["amount"] == 2250).then_some(dish.body)
        })
        .await;
    assert_eq!(on_the_menu["allergens"], json!(["eggs", "mustard"]));
    assert_eq!(app.dish("Tartare de bœuf").await["category"], "Plats");
    app.stop().await;
}

#[tokio::test]
async fn only_managers_change_the_menu() {
    let app = TestApp::spawn().await;
    let dish =
        json!({"name": "Frites", "category": "Plats", "price": {"amount": 450, "currency": "EUR"}});
    let (_, customer) = app.customer();

    assert_eq!(
        app.post("/menu/dishes", &customer, Some(dish.clone()))
            .await
            .status,
        403
    );
    assert_eq!(
        app.post("/menu/dishes", &app.token(Role::Chef), Some(dish))
            .await
            .status,
        403
    );
    let anonymous = app
        .http
        .post(format!("{}/menu/dishes", app.base))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status().as_u16(), 401);
    app.stop().await;
}

#[tokio::test]
async fn a_dish_with_a_bad_price_or_no_name_is_refused_with_its_field() {
    let app = TestApp::spawn().await;
    let manager = app.token(Role::Manager);

    let free = app
        .post(
            "/menu/dishes",
            &manager,
            Some(json!({"name": "Gratuit", "category": "Plats", "price": {"amount": 0, "currency": "EUR"}})),
        )
        .await;
    let nameless = app
        .post(
            "/menu/dishes",
            &manager,
            Some(json!({"name": "  ", "category": "Plats", "price": {"amount": 900, "currency": "EUR"}})),
        )
        .await;
    let unknown = app
        .patch(
            &format!("/menu/dishes/{}", Uuid::new_v4()),
            &manager,
            json!({"name": "Fantôme"}),
        )
        .await;

    assert_eq!((free.status, free.field()), (422, "price/amount"));
    assert_eq!(free.content_type, "application/problem+json");
    assert_eq!((nameless.status, nameless.field()), (422, "name"));
    assert_eq!(
        (unknown.status, unknown.problem_code()),
        (404, "dish-not-found".to_owned())
    );
    app.stop().await;
}

#[tokio::test]
async fn a_dish_taken_off_the_menu_cannot_be_ordered() {
    let app = TestApp::spawn().await;
    let manager = app.token(Role::Manager);
    let added = app
        .post(
            "/menu/dishes",
            &manager,
            Some(json!({"name": "Pot-au-feu", "category": "Plats", "price": {"amount": 1950, "currency": "EUR"}})),
        )
        .await;
    let id = added.body["id"].as_str().unwrap().to_owned();
    let sold_out = app
        .patch(
            &format!("/menu/dishes/{id}"),
            &manager,
            json!({"available": false, "unavailableReason": "épuisé"}),
        )
        .await;
    assert_eq!(sold_out.status, 200, "{}", sold_out.body);
    assert_eq!(sold_out.body["available"], false);
    app.eventually("the dish unavailable on the menu", || async {
        let dish = app.get(&format!("/menu/dishes/{id}"), None).await.body;
        (dish["available"] == false).then_some(())
    })
    .await;
    let (_, customer) = app.customer();

    let refused = app.place(&customer, "k1", &order_of(&[(&id, 1)])).await;

    assert_eq!(refused.status, 422, "{}", refused.body);
    assert_eq!(refused.problem_code(), "order-dish-unavailable");
    assert_eq!(refused.field(), "items/0/dishId");
    assert!(refused.body["detail"]
        .as_str()
        .unwrap()
        .contains("Pot-au-feu"));
    app.stop().await;
}

#[tokio::test]
async fn a_manager_tags_photographs_reorders_and_hides_dishes() {
    let app = TestApp::spawn().await;
    let manager = app.token(Role::Manager);
    let add = |name: &str| {
        json!({"name": name, "category": "Fromages", "price": {"amount": 900, "currency": "EUR"},
               "allergens": ["milk"], "dietaryTags": ["vegetarian", "gluten_free"],
               "photoUrl": "https://img.brigade.dev/fromage.jpg"})
    };
    let comte = app
        .post("/menu/dishes", &manager, Some(add("Comté 24 mois")))
        .await;
    let brie = app
        .post("/menu/dishes", &manager, Some(add("Brie de Meaux")))
        .await;
    assert_eq!(comte.status, 201, "{}", comte.body);
    assert_eq!(
        comte.body["dietaryTags"],
        json!(["vegetarian", "gluten_free"])
    );
    assert_eq!(
        comte.body["photoUrl"],
        "https://img.brigade.dev/fromage.jpg"
    );
    let (comte_id, brie_id) = (
        comte.body["id"].as_str().unwrap(),
        brie.body["id"].as_str().unwrap(),
    );
    let fromages = || async {
        let menu = app.get("/menu", None).await.body;
        let category = menu["categories"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == "Fromages")
            .cloned();
        category.map(|c| {
            c["dishes"]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| d["name"].as_str().unwrap().to_owned())
                .collect::<Vec<_>>()
        })
    };
    app.eventually("both cheeses on the menu", || async {
        (fromages().await == Some(vec!["Comté 24 mois".to_owned(), "Brie de Meaux".to_owned()]))
            .then_some(())
    })
    .await;

    let moved = app
        .patch(
            &format!("/menu/dishes/{comte_id}"),
            &manager,
            json!({"position": 5, "photoUrl": null}),
        )
        .await;
    assert_eq!(moved.status, 200, "{}", moved.body);
    assert_eq!(moved.body["position"], 5);
    assert!(moved.body.get("photoUrl").is_none());
    assert_eq!(
        moved.body["dietaryTags"],
        json!(["vegetarian", "gluten_free"]),
        "tags kept"
    );
    app.eventually("the comté moved after the brie", || async {
        (fromages().await == Some(vec!["Brie de Meaux".to_owned(), "Comté 24 mois".to_owned()]))
            .then_some(())
    })
    .await;

    let bad_photo = app
        .patch(
            &format!("/menu/dishes/{brie_id}"),
            &manager,
            json!({"photoUrl": "javascript:alert(1)", "visible": false}),
        )
        .await;
    assert_eq!(bad_photo.status, 400, "{}", bad_photo.body);
    let hidden = app
        .patch(
            &format!("/menu/dishes/{brie_id}"),
            &manager,
            json!({"visible": false}),
        )
        .await;
    assert_eq!(hidden.body["visible"], false);
    app.eventually("the brie off the customers' menu", || async {
        (fromages().await == Some(vec!["Comté 24 mois".to_owned()])).then_some(())
    })
    .await;
    let managers_menu = app.get("/menu/dishes", Some(&manager)).await;
    assert_eq!(managers_menu.status, 200);
    assert!(managers_menu.body.to_string().contains("Brie de Meaux"));
    assert_eq!(
        app.get("/menu/dishes", Some(&app.customer().1))
            .await
            .status,
        403
    );
    let (_, customer) = app.customer();
    let refused = app
        .place(&customer, "brie", &order_of(&[(brie_id, 1)]))
        .await;
    assert_eq!((refused.status, refused.field()), (422, "items/0/dishId"));
    app.stop().await;
}

#[tokio::test]
async fn a_dish_just_added_can_be_ordered_at_once() {
    let app = TestApp::spawn().await;
    let manager = app.token(Role::Manager);
    let added = app
        .post(
            "/menu/dishes",
            &manager,
            Some(json!({"name": "Plat du jour", "category": "Plats", "price": {"amount": 1700, "currency": "EUR"}})),
        )
        .await;
    let id = added.body["id"].as_str().unwrap().to_owned();
    let (_, customer) = app.customer();

    let placed = app
        .place(&customer, "du-jour", &order_of(&[(&id, 2)]))
        .await;

    assert_eq!(placed.status, 201, "{}", placed.body);
    assert_eq!(placed.body["total"]["amount"], 3400);
    app.stop().await;
}
