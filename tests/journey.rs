//! The order's whole journey across the four services (ARCHITECTURE.md §3), on real
//! PostgreSQL and NATS, through the public HTTP API as the web app and the staff would use it.
#![allow(clippy::unwrap_used)]

mod support;

use std::time::Duration;

use futures::StreamExt;
use serde_json::{json, Value};
use support::{cook, deliver, eventually, Session, System, FULL_JOURNEY, ORDER_STEPS};
use uuid::Uuid;

async fn order_status(system: &System, customer: &Session, order_id: Uuid) -> Value {
    system
        .get("orders", &format!("/orders/{order_id}"), &customer.token)
        .await
        .1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_hundred_orders_placed_at_once_are_each_delivered_exactly_once() {
    let system = System::start().await;
    let manager = system.manager().await;
    let chef = system.staff(&manager, "chef", "Auguste").await;
    let mut couriers = Vec::new();
    for name in [
        "Lucie", "Malik", "Ines", "Hugo", "Chloé", "Omar", "Léa", "Sacha", "Jade", "Nour",
    ] {
        couriers.push(system.courier_on_shift(&manager, name).await);
    }
    let dishes = system.dishes(3).await;
    let mut customers = Vec::new();
    for i in 0..10 {
        customers.push(system.customer(&format!("Client{i}")).await);
    }

    // 200 orders at once, each with a note that must reach the kitchen intact.
    let placed: Vec<(Uuid, usize)> = futures::stream::iter(0..200)
        .map(|i| {
            let system = &system;
            let customer = &customers[i % customers.len()];
            let items = json!([
                {"dishId": dishes[i % 3], "quantity": 1 + i % 3, "note": format!("sans oignons n°{i}")},
                {"dishId": dishes[(i + 1) % 3], "quantity": 1},
            ]);
            async move { (system.place_order(customer, items).await, i) }
        })
        .buffer_unordered(32)
        .collect()
        .await;
    assert_eq!(placed.len(), 200);

    futures::stream::iter(&placed)
        .for_each_concurrent(24, |(order_id, _)| {
            let (system, chef, manager, couriers) = (&system, &chef, &manager, &couriers);
            async move {
                cook(system, chef, *order_id).await;
                deliver(system, manager, couriers, *order_id).await;
            }
        })
        .await;

    for (order_id, i) in &placed {
        let customer = &customers[i % customers.len()];
        // Delivered, with every step: the kitchen's news may come after the courier's (two
        // consumers), and is then recorded late, in its place.
        eventually(Duration::from_secs(60), || async {
            let order = order_status(&system, customer, *order_id).await;
            order["status"] == "delivered"
                && order["history"].as_array().map(Vec::len) == Some(FULL_JOURNEY.len())
        })
        .await;
        let order = order_status(&system, customer, *order_id).await;
        let statuses: Vec<&str> = order["history"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| h["status"].as_str().unwrap())
            .collect();
        assert_eq!(statuses, FULL_JOURNEY, "history of {order_id}");

        // Each service's own story of the order is complete, in order, and nothing twice.
        // A kitchen step heard after the courier's is stored as `OrderStepRecordedLate`, after
        // the others: six events all the same, the others in their order.
        let orders = system.history("orders", "order", *order_id).await;
        let on_time: Vec<&str> = orders
            .iter()
            .map(String::as_str)
            .filter(|e| *e != "OrderStepRecordedLate")
            .collect();
        let mut rest = ORDER_STEPS.iter();
        assert!(
            orders.len() == ORDER_STEPS.len() && on_time.iter().all(|e| rest.any(|s| s == e)),
            "orders' events of {order_id}: {orders:?}"
        );
        assert_eq!(on_time.first(), Some(&"OrderPlaced"), "{orders:?}");
        assert_eq!(on_time.last(), Some(&"OrderDelivered"), "{orders:?}");
        let kitchen = system.history("kitchen", "ticket", *order_id).await;
        assert_eq!(kitchen.first().map(String::as_str), Some("TicketOpened"));
        assert_eq!(kitchen.last().map(String::as_str), Some("TicketReady"));
        assert_eq!(kitchen.iter().filter(|e| *e == "TicketOpened").count(), 1);
        assert_eq!(
            kitchen.len(),
            2 + 2 * 2,
            "kitchen's events of {order_id}: {kitchen:?}"
        );
        // The courier may be sent before the food is ready (on the kitchen's estimate), so
        // `CourierAssigned` may come before or after `DeliveryReadyForPickup`; the route the
        // courier took is recorded along the way.
        let delivery = system.history("delivery", "delivery", *order_id).await;
        let steps: Vec<&str> = delivery
            .iter()
            .map(String::as_str)
            .filter(|e| *e != "DeliveryRouteRecorded")
            .collect();
        let (ready_then_assigned, assigned_then_ready) = (
            [
                "DeliveryRequested",
                "DeliveryReadyForPickup",
                "CourierAssigned",
                "DeliveryPickedUp",
                "DeliveryDelivered",
            ],
            [
                "DeliveryRequested",
                "CourierAssigned",
                "DeliveryReadyForPickup",
                "DeliveryPickedUp",
                "DeliveryDelivered",
            ],
        );
        assert!(
            steps == ready_then_assigned || steps == assigned_then_ready,
            "delivery's events of {order_id}: {delivery:?}"
        );
    }

    // The note reached the kitchen verbatim.
    let (order_id, i) = placed[7];
    let (_, ticket) = system
        .get("kitchen", &format!("/tickets/{order_id}"), &chef.token)
        .await;
    assert_eq!(ticket["items"][0]["note"], format!("sans oignons n°{i}"));

    for service in support::SERVICES {
        assert_eq!(
            system.dead_letters(service).await,
            vec![],
            "dead letters of {service}"
        );
    }
    system.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_before_cooking_closes_the_ticket_and_the_delivery() {
    let system = System::start().await;
    let manager = system.manager().await;
    let chef = system.staff(&manager, "chef", "Auguste").await;
    let customer = system.customer("Nina").await;
    let dishes = system.dishes(1).await;
    let order_id = system
        .place_order(&customer, json!([{"dishId": dishes[0], "quantity": 2}]))
        .await;

    // The ticket reaches the kitchen, then the customer changes their mind.
    eventually(Duration::from_secs(30), || async {
        system
            .get("kitchen", &format!("/tickets/{order_id}"), &chef.token)
            .await
            .0
            == 200
    })
    .await;
    let (status, body) = system
        .post(
            "orders",
            &format!("/orders/{order_id}/cancel"),
            &customer.token,
            json!({}),
        )
        .await;
    assert_eq!(status, 200, "cancel: {body}");
    assert_eq!(body["status"], "cancelled");

    eventually(Duration::from_secs(30), || async {
        let (_, ticket) = system
            .get("kitchen", &format!("/tickets/{order_id}"), &chef.token)
            .await;
        let (_, delivery) = system
            .get(
                "delivery",
                &format!("/deliveries/{order_id}"),
                &manager.token,
            )
            .await;
        ticket["status"] == "cancelled" && delivery["status"] == "cancelled"
    })
    .await;
    let (_, open) = system.get("kitchen", "/tickets", &chef.token).await;
    assert!(
        open.as_array()
            .unwrap()
            .iter()
            .all(|t| t["orderId"] != order_id.to_string()),
        "a cancelled ticket leaves the queue"
    );
    // Too late now for the chef: the ticket is closed.
    let (status, body) = system
        .post(
            "kitchen",
            &format!("/tickets/{order_id}/items/0/start"),
            &chef.token,
            json!({}),
        )
        .await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["type"], "https://brigade.dev/errors/ticket-closed");
    system.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_customer_cannot_cancel_once_cooking_started() {
    let system = System::start().await;
    let manager = system.manager().await;
    let chef = system.staff(&manager, "chef", "Auguste").await;
    let customer = system.customer("Paul").await;
    let dishes = system.dishes(1).await;
    let order_id = system
        .place_order(&customer, json!([{"dishId": dishes[0], "quantity": 1}]))
        .await;
    eventually(Duration::from_secs(30), || async {
        system
            .get("kitchen", &format!("/tickets/{order_id}"), &chef.token)
            .await
            .0
            == 200
    })
    .await;
    let (status, _) = system
        .post(
            "kitchen",
            &format!("/tickets/{order_id}/items/0/start"),
            &chef.token,
            json!({}),
        )
        .await;
    assert_eq!(status, 200);
    eventually(Duration::from_secs(30), || async {
        order_status(&system, &customer, order_id).await["status"] == "in_preparation"
    })
    .await;
    let (status, body) = system
        .post(
            "orders",
            &format!("/orders/{order_id}/cancel"),
            &customer.token,
            json!({}),
        )
        .await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(
        body["type"],
        "https://brigade.dev/errors/order-too-late-to-cancel"
    );
    system.shutdown().await;
}

/// The id of a dish of the menu, by name, and whether it is available.
async fn menu_dish(system: &System, name: &str) -> (String, bool) {
    let (_, menu) = system
        .call(reqwest::Method::GET, "orders", "/menu", None, None, &[])
        .await;
    let dish = menu["categories"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|c| c["dishes"].as_array().unwrap().iter())
        .find(|d| d["name"] == name)
        .unwrap_or_else(|| panic!("no {name} on the menu"))
        .clone();
    (
        dish["id"].as_str().unwrap().to_owned(),
        dish["available"] == true,
    )
}

async fn try_order(system: &System, customer: &Session, body: Value) -> (u16, Value) {
    let key = Uuid::new_v4().to_string();
    system
        .call(
            reqwest::Method::POST,
            "orders",
            "/orders",
            Some(&customer.token),
            Some(body),
            &[("Idempotency-Key", &key)],
        )
        .await
}

fn order_body(dish_id: &str, allergens_confirmed: bool) -> Value {
    json!({
        "items": [{"dishId": dish_id, "quantity": 1}],
        "deliveryAddress": {"street": "12 rue de la Paix", "city": "Paris", "postalCode": "75002"},
        "allergensConfirmed": allergens_confirmed,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_declared_allergy_is_confirmed_and_flagged_and_a_dish_sold_out_in_the_kitchen_leaves_ordering(
) {
    let system = System::start().await;
    let manager = system.manager().await;
    let chef = system.staff(&manager, "chef", "Auguste").await;
    let customer = system.customer("Camille").await;

    // The customer declares a milk allergy in identity; the orders service learns it.
    let (status, me) = system
        .call(
            reqwest::Method::PATCH,
            "identity",
            "/me",
            Some(&customer.token),
            Some(json!({"allergens": ["milk"]})),
            &[],
        )
        .await;
    assert_eq!(status, 200, "{me}");
    let orders_db = system.db("orders").await;
    eventually(Duration::from_secs(10), || async {
        sqlx::query_scalar::<_, i64>(
            "SELECT count(*) FROM customer_dietary_profiles WHERE customer_id = $1",
        )
        .bind(customer.account_id)
        .fetch_one(&orders_db)
        .await
        .unwrap()
            == 1
    })
    .await;
    orders_db.close().await;

    let (creme, _) = menu_dish(&system, "Crème brûlée").await;
    let (status, problem) = try_order(&system, &customer, order_body(&creme, false)).await;
    assert_eq!(status, 409, "{problem}");
    assert_eq!(
        problem["type"],
        "https://brigade.dev/errors/allergen-confirmation-required"
    );
    assert_eq!(problem["items"][0]["dishName"], "Crème brûlée");
    let (status, placed) = try_order(&system, &customer, order_body(&creme, true)).await;
    assert_eq!(status, 201, "{placed}");
    let order_id = placed["orderId"].as_str().unwrap().to_owned();
    eventually(Duration::from_secs(10), || async {
        let (status, ticket) = system
            .get("kitchen", &format!("/tickets/{order_id}"), &chef.token)
            .await;
        status == 200 && ticket["allergies"] == json!(["milk"])
    })
    .await;

    // The chef says the Tarte Tatin ran out: within a second it cannot be ordered.
    let (tatin, available) = menu_dish(&system, "Tarte Tatin").await;
    assert!(available);
    let (status, stock) = system
        .post(
            "kitchen",
            &format!("/dishes/{tatin}/sold-out"),
            &chef.token,
            json!({"reason": "plus de pommes"}),
        )
        .await;
    assert_eq!(status, 200, "{stock}");
    let said = std::time::Instant::now();
    eventually(Duration::from_secs(10), || async {
        !menu_dish(&system, "Tarte Tatin").await.1
    })
    .await;
    println!("sold out to off the menu: {:?}", said.elapsed());
    assert!(
        said.elapsed() < Duration::from_secs(2),
        "{:?}",
        said.elapsed()
    );
    let (status, problem) = try_order(&system, &customer, order_body(&tatin, true)).await;
    assert_eq!(status, 422, "{problem}");
    assert_eq!(
        problem["type"],
        "https://brigade.dev/errors/order-dish-unavailable"
    );
    assert!(problem["detail"].as_str().unwrap().contains("Tarte Tatin"));
    assert!(system.dead_letters("orders").await.is_empty());
    system.shutdown().await;
}
