//! Crashes: a service killed with SIGKILL while orders flow, then started again. Every order
//! still completes, and none is applied twice (ARCHITECTURE.md §4).
#![allow(clippy::unwrap_used)]

mod support;

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use serde_json::{json, Value};
use support::{cook, deliver, eventually, Session, System, FULL_JOURNEY};
use tokio::sync::RwLock;
use uuid::Uuid;

/// Places an order the way a careful client does: on a failure (the service is down), retry
/// with the same `Idempotency-Key` until it is accepted. The key makes the retries safe.
async fn place_with_retries(system: &System, customer: &Session, dish: &str) -> Uuid {
    let key = Uuid::new_v4().to_string();
    let body = json!({
        "items": [{"dishId": dish, "quantity": 1}],
        "deliveryAddress": {"street": "3 quai des Orfèvres", "city": "Paris", "postalCode": "75001"},
    });
    loop {
        let response = system
            .http
            .post(system.url("orders", "/orders"))
            .bearer_auth(&customer.token)
            .header("Idempotency-Key", &key)
            .json(&body)
            .send()
            .await;
        if let Ok(response) = response {
            if response.status().as_u16() == 201 {
                let body: Value = response.json().await.unwrap();
                return body["orderId"].as_str().unwrap().parse().unwrap();
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn check_each_order_completed_once(system: &System, customer: &Session, orders: &[Uuid]) {
    for order_id in orders {
        // Delivered, with every step: the kitchen's news may come after the courier's (two
        // consumers), and is then recorded late, in its place.
        eventually(Duration::from_secs(90), || async {
            let (_, order) = system
                .get("orders", &format!("/orders/{order_id}"), &customer.token)
                .await;
            order["status"] == "delivered"
                && order["history"].as_array().map(Vec::len) == Some(FULL_JOURNEY.len())
        })
        .await;
        let (_, order) = system
            .get("orders", &format!("/orders/{order_id}"), &customer.token)
            .await;
        let statuses: Vec<&str> = order["history"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| h["status"].as_str().unwrap())
            .collect();
        assert_eq!(statuses, FULL_JOURNEY, "history of {order_id}");
        let kitchen = system.history("kitchen", "ticket", *order_id).await;
        assert_eq!(
            kitchen,
            ["TicketOpened", "ItemStarted", "ItemReady", "TicketReady"],
            "kitchen's events of {order_id}"
        );
        let delivery = system.history("delivery", "delivery", *order_id).await;
        assert_eq!(
            delivery
                .iter()
                .filter(|e| *e == "DeliveryRequested")
                .count(),
            1,
            "{delivery:?}"
        );
    }
    for service in support::SERVICES {
        assert_eq!(
            system.dead_letters(service).await,
            vec![],
            "dead letters of {service}"
        );
    }
}

/// Places `count` orders from a background task while `crash` runs, and returns their ids.
async fn orders_during(
    system: Arc<RwLock<System>>,
    customer: Session,
    dish: String,
    count: usize,
) -> tokio::task::JoinHandle<Vec<Uuid>> {
    tokio::spawn(async move {
        let mut placed = Vec::with_capacity(count);
        for _ in 0..count {
            let guard = system.read().await;
            placed.push(place_with_retries(&guard, &customer, &dish).await);
            drop(guard);
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        placed
    })
}

async fn crash_while_orders_flow(service: &'static str) {
    let system = System::start().await;
    let manager = system.manager().await;
    let chef = system.staff(&manager, "chef", "Auguste").await;
    let mut couriers = Vec::new();
    for name in ["Lucie", "Malik", "Ines"] {
        couriers.push(system.courier_on_shift(&manager, name).await);
    }
    let customer = system.customer("Zoé").await;
    let dish = system.dishes(1).await.remove(0);
    let system = Arc::new(RwLock::new(system));

    let placing = orders_during(system.clone(), customer.clone(), dish, 60).await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    {
        let mut guard = system.write().await;
        guard.kill(service).await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        guard.restart(service).await;
    }
    let orders = placing.await.unwrap();
    assert_eq!(orders.len(), 60);
    let unique: std::collections::HashSet<_> = orders.iter().collect();
    assert_eq!(
        unique.len(),
        60,
        "a retried placement never makes a second order"
    );

    let system = Arc::try_unwrap(system).ok().unwrap().into_inner();
    futures::stream::iter(orders.iter())
        .for_each_concurrent(8, |order_id| {
            let (system, chef, manager, couriers) = (&system, &chef, &manager, &couriers);
            async move {
                cook(system, chef, *order_id).await;
                deliver(system, manager, couriers, *order_id).await;
            }
        })
        .await;
    check_each_order_completed_once(&system, &customer, &orders).await;
    let orders_db = system.db("orders").await;
    let pending: i64 = sqlx::query_scalar("SELECT count(*) FROM outbox WHERE published_at IS NULL")
        .fetch_one(&orders_db)
        .await
        .unwrap();
    assert_eq!(pending, 0, "the orders outbox drained after the restart");
    system.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_kitchen_killed_while_orders_flow_loses_and_repeats_nothing() {
    crash_while_orders_flow("kitchen").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_orders_service_and_its_relay_killed_while_orders_flow_lose_and_repeat_nothing() {
    crash_while_orders_flow("orders").await;
}
