//! The kitchen service, black-box: the real service on a random port, its own database and
//! NATS namespace, orders arriving as `orders.order.*` events on the bus.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use brigade_domain::ordering::{OrderEvent, OrderLine};
use brigade_domain::{Actor, Address, Money, Role};
use brigade_platform::testing::{drop_databases, isolated_settings, wait_ready, TestIssuer};
use brigade_platform::{ServiceName, Settings};
use chrono::Utc;
use futures::StreamExt;
use serde_json::{json, Value};
use uuid::Uuid;

struct Kitchen {
    settings: Settings,
    issuer: TestIssuer,
    base: String,
    http: reqwest::Client,
    chef: String,
}

impl Kitchen {
    async fn start() -> Self {
        let issuer = TestIssuer::start().await;
        let settings = isolated_settings(issuer.url());
        let base = format!("http://127.0.0.1:{}", settings.port(ServiceName::Kitchen));
        tokio::spawn(brigade_kitchen::run(settings.clone()));
        wait_ready(&base).await;
        let chef = issuer.token(Uuid::new_v4(), Role::Chef);
        Self {
            settings,
            issuer,
            base,
            http: reqwest::Client::new(),
            chef,
        }
    }

    /// Publishes an order event as the orders service's relay would.
    async fn publish(&self, order_id: Uuid, sequence: i64, event: &OrderEvent) {
        use cqrs_es::DomainEvent;
        let envelope = json!({
            "eventId": Uuid::new_v4(), "aggregateType": "order", "aggregateId": order_id.to_string(),
            "sequence": sequence, "eventType": event.event_type(), "eventVersion": "1.0",
            "payload": serde_json::to_value(event).unwrap(),
            "metadata": {"correlation_id": order_id.to_string()}, "recordedAt": Utc::now(),
        });
        let client = async_nats::connect(&self.settings.nats_url).await.unwrap();
        let js = async_nats::jetstream::new(client);
        let subject = self
            .settings
            .namespace
            .subject(&format!("orders.order.{}", event.subject_suffix()));
        js.publish(subject, serde_json::to_vec(&envelope).unwrap().into())
            .await
            .unwrap()
            .await
            .unwrap();
    }

    async fn place(&self, lines: usize) -> Uuid {
        let order_id = Uuid::new_v4();
        self.publish(order_id, 1, &placed(order_id, lines)).await;
        self.wait_for_ticket(order_id).await;
        order_id
    }

    async fn wait_for_ticket(&self, order_id: Uuid) {
        for _ in 0..300 {
            if self
                .get(&format!("/tickets/{order_id}"), &self.chef)
                .await
                .0
                == 200
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("no ticket for {order_id}");
    }

    async fn get(&self, path: &str, token: &str) -> (u16, Value) {
        let response = self
            .http
            .get(format!("{}{path}", self.base))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        (
            response.status().as_u16(),
            response.json().await.unwrap_or(Value::Null),
        )
    }

    async fn post(&self, path: &str, token: &str, body: Value) -> (u16, Value) {
        let response = self
            .http
            .post(format!("{}{path}", self.base))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .unwrap();
        (
            response.status().as_u16(),
            response.json().await.unwrap_or(Value::Null),
        )
    }

    async fn events(&self, order_id: Uuid) -> Vec<String> {
        let pool = sqlx::PgPool::connect(&self.settings.database_url_for(ServiceName::Kitchen))
            .await
            .unwrap();
        sqlx::query_scalar(
            "SELECT event_type FROM events WHERE aggregate_id = $1 ORDER BY sequence",
        )
        .bind(order_id.to_string())
        .fetch_all(&pool)
        .await
        .unwrap()
    }
}

fn placed(order_id: Uuid, lines: usize) -> OrderEvent {
    OrderEvent::OrderPlaced {
        order_id,
        customer_id: Uuid::new_v4(),
        lines: (0..lines)
            .map(|i| OrderLine {
                dish_id: Uuid::new_v4(),
                name: format!("Plat {i}"),
                unit_price: Money::eur(1450),
                quantity: 2,
                note: (i == 0).then(|| "sans oignons".to_owned()),
            })
            .collect(),
        delivery_address: Address {
            street: "1 rue du Bac".into(),
            city: "Paris".into(),
            postal_code: "75007".into(),
            lat: None,
            lon: None,
        },
        contact_phone: None,
        total: Money::eur(1450 * 2 * i64::try_from(lines).unwrap()),
        placed_at: Utc::now(),
    }
}

#[tokio::test]
async fn a_placed_order_becomes_a_ticket_with_its_notes_intact() {
    let kitchen = Kitchen::start().await;
    let order_id = kitchen.place(2).await;
    let (status, tickets) = kitchen.get("/tickets", &kitchen.chef).await;
    assert_eq!(status, 200);
    let ticket = tickets
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["orderId"] == order_id.to_string())
        .unwrap();
    assert_eq!(ticket["items"][0]["note"], "sans oignons");
    assert_eq!(ticket["items"][0]["status"], "pending");
    assert_eq!(ticket["items"][1]["quantity"], 2);
    drop_databases(&kitchen.settings).await;
}

#[tokio::test]
async fn the_same_order_placed_event_delivered_twice_opens_one_ticket() {
    let kitchen = Kitchen::start().await;
    let order_id = Uuid::new_v4();
    let event = placed(order_id, 1);
    kitchen.publish(order_id, 1, &event).await;
    kitchen.publish(order_id, 1, &event).await;
    kitchen.wait_for_ticket(order_id).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(kitchen.events(order_id).await, ["TicketOpened"]);
    drop_databases(&kitchen.settings).await;
}

#[tokio::test]
async fn chefs_move_each_item_and_the_last_ready_item_makes_the_ticket_ready() {
    let kitchen = Kitchen::start().await;
    let order_id = kitchen.place(2).await;
    let chef = &kitchen.chef;
    let (status, ticket) = kitchen
        .post(
            &format!("/tickets/{order_id}/items/0/start"),
            chef,
            json!({}),
        )
        .await;
    assert_eq!(status, 200, "{ticket}");
    assert_eq!(ticket["items"][0]["status"], "in_preparation");
    let (status, _) = kitchen
        .post(
            &format!("/tickets/{order_id}/items/0/ready"),
            chef,
            json!({}),
        )
        .await;
    assert_eq!(status, 200);
    // Straight from pending to ready is allowed, and recorded.
    let (status, ticket) = kitchen
        .post(
            &format!("/tickets/{order_id}/items/1/ready"),
            chef,
            json!({}),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(ticket["status"], "ready");
    assert_eq!(
        kitchen.events(order_id).await,
        [
            "TicketOpened",
            "ItemStarted",
            "ItemReady",
            "ItemReady",
            "TicketReady"
        ]
    );
    drop_databases(&kitchen.settings).await;
}

#[tokio::test]
async fn wrong_moves_are_refused_with_a_clear_problem_and_nothing_stored() {
    let kitchen = Kitchen::start().await;
    let order_id = kitchen.place(1).await;
    let chef = &kitchen.chef;
    kitchen
        .post(
            &format!("/tickets/{order_id}/items/0/start"),
            chef,
            json!({}),
        )
        .await;

    let (status, problem) = kitchen
        .post(
            &format!("/tickets/{order_id}/items/0/start"),
            chef,
            json!({}),
        )
        .await;
    assert_eq!(status, 409);
    assert_eq!(
        problem["type"],
        "https://brigade.dev/errors/ticket-item-already-started"
    );
    let (status, problem) = kitchen
        .post(
            &format!("/tickets/{order_id}/items/7/start"),
            chef,
            json!({}),
        )
        .await;
    assert_eq!(status, 404);
    assert_eq!(problem["field"], "index");
    let (status, problem) = kitchen
        .post(
            &format!("/tickets/{}/items/0/start", Uuid::new_v4()),
            chef,
            json!({}),
        )
        .await;
    assert_eq!(status, 404, "{problem}");
    let (status, problem) = kitchen
        .post(
            &format!("/tickets/{order_id}/reject"),
            chef,
            json!({"reason": ""}),
        )
        .await;
    assert_eq!(status, 400, "{problem}");
    let (status, problem) = kitchen
        .post(
            &format!("/tickets/not-a-uuid/items/0/start"),
            chef,
            json!({}),
        )
        .await;
    assert_eq!(status, 400, "{problem}");
    assert_eq!(
        kitchen.events(order_id).await,
        ["TicketOpened", "ItemStarted"]
    );
    drop_databases(&kitchen.settings).await;
}

#[tokio::test]
async fn two_chefs_starting_the_same_item_at_once_make_one_transition_and_one_conflict() {
    let kitchen = Kitchen::start().await;
    let order_id = kitchen.place(1).await;
    let other_chef = kitchen.issuer.token(Uuid::new_v4(), Role::Chef);
    let path = format!("/tickets/{order_id}/items/0/start");
    let (a, b) = tokio::join!(
        kitchen.post(&path, &kitchen.chef, json!({})),
        kitchen.post(&path, &other_chef, json!({}))
    );
    let mut statuses = [a.0, b.0];
    statuses.sort_unstable();
    assert_eq!(statuses, [200, 409], "{a:?} {b:?}");
    assert_eq!(
        kitchen.events(order_id).await,
        ["TicketOpened", "ItemStarted"]
    );
    drop_databases(&kitchen.settings).await;
}

#[tokio::test]
async fn only_kitchen_staff_see_and_move_tickets() {
    let kitchen = Kitchen::start().await;
    let order_id = kitchen.place(1).await;
    let customer = kitchen.issuer.token(Uuid::new_v4(), Role::Customer);
    let manager = kitchen.issuer.token(Uuid::new_v4(), Role::Manager);
    assert_eq!(kitchen.get("/tickets", &customer).await.0, 403);
    assert_eq!(kitchen.get("/tickets", &manager).await.0, 200);
    let response = kitchen
        .http
        .get(format!("{}/tickets", kitchen.base))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
    let (status, _) = kitchen
        .post(
            &format!("/tickets/{order_id}/items/0/start"),
            &customer,
            json!({}),
        )
        .await;
    assert_eq!(status, 403);
    assert_eq!(kitchen.events(order_id).await, ["TicketOpened"]);
    drop_databases(&kitchen.settings).await;
}

#[tokio::test]
async fn a_connected_kitchen_screen_receives_a_new_order_live_and_can_resume() {
    let kitchen = Kitchen::start().await;
    let response = kitchen
        .http
        .get(format!("{}/tickets/stream", kitchen.base))
        .bearer_auth(&kitchen.chef)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let mut body = response.bytes_stream();
    let order_id = Uuid::new_v4();
    kitchen.publish(order_id, 1, &placed(order_id, 1)).await;
    let mut received = String::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !received.contains(&order_id.to_string()) {
        let chunk = tokio::time::timeout_at(deadline, body.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        received.push_str(&String::from_utf8_lossy(&chunk));
    }
    let id_line = received.lines().find(|l| l.starts_with("id:")).unwrap();
    let last_id: i64 = id_line.trim_start_matches("id:").trim().parse().unwrap();

    // A screen that reconnects with Last-Event-ID gets what it missed.
    kitchen
        .post(
            &format!("/tickets/{order_id}/items/0/start"),
            &kitchen.chef,
            json!({}),
        )
        .await;
    let response = kitchen
        .http
        .get(format!("{}/tickets/stream", kitchen.base))
        .bearer_auth(&kitchen.chef)
        .header("Last-Event-ID", last_id.to_string())
        .send()
        .await
        .unwrap();
    let mut body = response.bytes_stream();
    let mut resumed = String::new();
    while !resumed.contains("in_preparation") {
        let chunk = tokio::time::timeout_at(deadline, body.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        resumed.push_str(&String::from_utf8_lossy(&chunk));
    }
    drop(body);
    let _ = Actor::System;
    drop_databases(&kitchen.settings).await;
}
