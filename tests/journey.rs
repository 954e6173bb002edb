//! The order's whole journey across the four services (ARCHITECTURE.md §3), on real
//! PostgreSQL and NATS, through the public HTTP API as the web app and the staff would use it.
#![allow(clippy::unwrap_used)]

mod support;

use std::time::Duration;

use futures::StreamExt;
use serde_json::{json, Value};
use support::{cook, deliver, eventually, Session, System, FULL_JOURNEY};
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
        eventually(Duration::from_secs(60), || async {
            order_status(&system, customer, *order_id).await["status"] == "delivered"
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
        let orders = system.history("orders", "order", *order_id).await;
        assert_eq!(
            orders,
            [
                "OrderPlaced",
                "OrderAccepted",
                "OrderInPreparation",
                "OrderReady",
                "OrderOutForDelivery",
                "OrderDelivered"
            ],
            "orders' events of {order_id}"
        );
        let kitchen = system.history("kitchen", "ticket", *order_id).await;
        assert_eq!(kitchen.first().map(String::as_str), Some("TicketOpened"));
        assert_eq!(kitchen.last().map(String::as_str), Some("TicketReady"));
        assert_eq!(kitchen.iter().filter(|e| *e == "TicketOpened").count(), 1);
        assert_eq!(
            kitchen.len(),
            2 + 2 * 2,
            "kitchen's events of {order_id}: {kitchen:?}"
        );
        let delivery = system.history("delivery", "delivery", *order_id).await;
        assert_eq!(
            delivery,
            [
                "DeliveryRequested",
                "DeliveryReadyForPickup",
                "CourierAssigned",
                "DeliveryPickedUp",
                "DeliveryDelivered"
            ],
            "delivery's events of {order_id}"
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
