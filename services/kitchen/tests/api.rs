//! The kitchen service, black-box: the real service on a random port, its own database and
//! NATS namespace, orders arriving as `orders.order.*` events on the bus.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use brigade_domain::ordering::{ChosenOption, DishEvent, OrderEvent, OrderLine};
use brigade_domain::{Actor, Address, Money, Role};
use brigade_platform::testing::{drop_databases, isolated_settings, wait_ready, TestIssuer};
use brigade_platform::{ServiceName, Settings};
use chrono::{DateTime, Utc};
use futures::StreamExt;
use serde_json::{json, Value};
use uuid::Uuid;

struct Kitchen {
    settings: Settings,
    issuer: TestIssuer,
    base: String,
    http: reqwest::Client,
    chef: String,
    /// Publishes as the orders service's relay would (one connection for the whole test).
    js: async_nats::jetstream::Context,
}

impl Kitchen {
    async fn start() -> Self {
        let issuer = TestIssuer::start().await;
        let settings = isolated_settings(issuer.url());
        let base = format!("http://127.0.0.1:{}", settings.port(ServiceName::Kitchen));
        tokio::spawn(brigade_kitchen::run(settings.clone()));
        wait_ready(&base).await;
        // The service creates the orders stream when its consumers start, which readiness
        // does not wait for: make sure it is there (same settings) before publishing to it.
        brigade_nats::Bus::connect(&settings.nats_url, settings.namespace.clone(), 1)
            .await
            .unwrap()
            .ensure_stream("orders")
            .await
            .unwrap();
        let js = async_nats::jetstream::new(async_nats::connect(&settings.nats_url).await.unwrap());
        let chef = issuer.token(Uuid::new_v4(), Role::Chef);
        Self {
            settings,
            issuer,
            base,
            http: reqwest::Client::new(),
            chef,
            js,
        }
    }

    /// Publishes an order event as the orders service's relay would.
    async fn publish(&self, order_id: Uuid, sequence: i64, event: &OrderEvent) {
        use cqrs_es::DomainEvent;
        let payload = serde_json::to_value(event).unwrap();
        self.publish_envelope(
            "order",
            order_id,
            sequence,
            &event.event_type(),
            event.subject_suffix(),
            payload,
        )
        .await;
    }

    /// Publishes a dish event (`orders.dish.*`) as the orders service's relay would.
    async fn publish_dish(&self, dish_id: Uuid, sequence: i64, event: &DishEvent) {
        use cqrs_es::DomainEvent;
        let payload = serde_json::to_value(event).unwrap();
        self.publish_envelope(
            "dish",
            dish_id,
            sequence,
            &event.event_type(),
            event.subject_suffix(),
            payload,
        )
        .await;
    }

    async fn publish_envelope(
        &self,
        aggregate_type: &str,
        id: Uuid,
        sequence: i64,
        event_type: &str,
        suffix: &str,
        payload: Value,
    ) {
        let envelope = json!({
            "eventId": Uuid::new_v4(), "aggregateType": aggregate_type, "aggregateId": id.to_string(),
            "sequence": sequence, "eventType": event_type, "eventVersion": "1.0",
            "payload": payload,
            "metadata": {"correlation_id": id.to_string()}, "recordedAt": Utc::now(),
        });
        let subject = self
            .settings
            .namespace
            .subject(&format!("orders.{aggregate_type}.{suffix}"));
        self.js
            .publish(subject, serde_json::to_vec(&envelope).unwrap().into())
            .await
            .unwrap()
            .await
            .unwrap();
    }

    /// Adds a dish to the menu (as the orders service would announce it) and waits until the
    /// kitchen knows its station.
    async fn add_dish(&self, station: &str, prep_minutes: u32) -> Uuid {
        let dish_id = Uuid::new_v4();
        let added = DishEvent::DishAdded {
            dish_id,
            name: format!("Plat {station}"),
            description: String::new(),
            category: "plats".into(),
            price: Money::eur(1450),
            allergens: vec![],
            station: station.into(),
            prep_minutes,
            available: true,
            at: Utc::now(),
        };
        self.publish_dish(dish_id, 1, &added).await;
        let pool = self.pool().await;
        for _ in 0..300 {
            let known: Option<String> =
                sqlx::query_scalar("SELECT station FROM kitchen_dishes WHERE dish_id = $1")
                    .bind(dish_id)
                    .fetch_optional(&pool)
                    .await
                    .unwrap();
            if known.is_some() {
                return dish_id;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the kitchen never learnt dish {dish_id}");
    }

    /// Places an order of the given dishes, placed `minutes_ago`, and waits for its ticket.
    async fn place_dishes(&self, dishes: &[Uuid], minutes_ago: i64) -> Uuid {
        let order_id = Uuid::new_v4();
        let mut event = placed(order_id, dishes.len());
        if let OrderEvent::OrderPlaced {
            lines, placed_at, ..
        } = &mut event
        {
            for (line, dish_id) in lines.iter_mut().zip(dishes) {
                line.dish_id = *dish_id;
            }
            *placed_at = Utc::now() - chrono::Duration::minutes(minutes_ago);
        }
        self.publish(order_id, 1, &event).await;
        self.wait_for_ticket(order_id).await;
        order_id
    }

    /// Waits until the ticket shows a quote, and returns the ticket.
    async fn wait_for_estimate(&self, order_id: Uuid) -> Value {
        for _ in 0..200 {
            let (_, ticket) = self.get(&format!("/tickets/{order_id}"), &self.chef).await;
            if !ticket["estimatedReadyAt"].is_null() {
                return ticket;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("no estimate for {order_id}");
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

    /// The ticket's events.
    async fn events(&self, order_id: Uuid) -> Vec<String> {
        self.history("ticket", order_id).await
    }

    /// The events of one aggregate of the kitchen's store (`ticket`, `estimate`).
    async fn history(&self, aggregate_type: &str, order_id: Uuid) -> Vec<String> {
        let pool = self.pool().await;
        sqlx::query_scalar(
            "SELECT event_type FROM events WHERE aggregate_type = $1 AND aggregate_id = $2 ORDER BY sequence",
        )
        .bind(aggregate_type)
        .bind(order_id.to_string())
        .fetch_all(&pool)
        .await
        .unwrap()
    }

    async fn pool(&self) -> sqlx::PgPool {
        sqlx::PgPool::connect(&self.settings.database_url_for(ServiceName::Kitchen))
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
                options: if i == 0 {
                    vec![
                        option("Cuisson", "saignant", 0),
                        option("Supplément", "frites", 0),
                    ]
                } else {
                    Vec::new()
                },
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
        allergies: Vec::new(),
        scheduled_for: None,
    }
}

fn option(group: &str, choice: &str, cents: i64) -> ChosenOption {
    ChosenOption {
        group_id: Uuid::new_v4(),
        group: group.to_owned(),
        choice_id: Uuid::new_v4(),
        choice: choice.to_owned(),
        price_delta: Money::eur(cents),
    }
}

#[tokio::test]
async fn a_placed_order_becomes_a_ticket_with_its_notes_and_options_intact() {
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
    assert_eq!(
        ticket["items"][0]["options"],
        json!(["Cuisson: saignant", "Supplément: frites"])
    );
    assert_eq!(ticket["items"][1]["options"], json!([]));
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
async fn a_ticket_and_its_checkpoint_commit_together_and_an_existing_ticket_is_left_as_it_is() {
    let kitchen = Kitchen::start().await;
    let order_id = Uuid::new_v4();
    let event = placed(order_id, 1);
    kitchen.publish(order_id, 1, &event).await;
    kitchen.wait_for_ticket(order_id).await;
    let pool = kitchen.pool().await;
    let checkpoint = "SELECT last_sequence FROM consumer_checkpoints
                       WHERE consumer = 'kitchen-from-orders' AND aggregate_id = $1";
    let kept: Option<i64> = sqlx::query_scalar(checkpoint)
        .bind(order_id.to_string())
        .fetch_optional(&pool)
        .await
        .unwrap();
    assert_eq!(kept, Some(1));

    // A ticket stored without its checkpoint (as before they were committed together): the
    // event heard again finds the ticket and changes nothing, and the checkpoint is kept.
    sqlx::query("DELETE FROM consumer_checkpoints WHERE consumer = 'kitchen-from-orders'")
        .execute(&pool)
        .await
        .unwrap();
    kitchen.publish(order_id, 1, &event).await;
    let mut kept: Option<i64> = None;
    for _ in 0..100 {
        kept = sqlx::query_scalar(checkpoint)
            .bind(order_id.to_string())
            .fetch_optional(&pool)
            .await
            .unwrap();
        if kept.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    pool.close().await;
    assert_eq!(kept, Some(1));
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
        .post("/tickets/not-a-uuid/items/0/start", chef, json!({}))
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
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let received = read_until(&mut body, deadline, |received| {
        received.contains(&order_id.to_string())
    })
    .await;
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
    read_until(&mut body, deadline, |resumed| {
        resumed.contains("in_preparation")
    })
    .await;
    drop(body);
    let _ = Actor::System;
    drop_databases(&kitchen.settings).await;
}

/// A screen that comes back after several changes reads what it missed in one go: each
/// ticket once, as it is now, under its latest change (the frames of its earlier changes
/// would only have shown the same ticket again).
#[tokio::test]
async fn a_screen_that_resumes_gets_each_changed_ticket_once_as_it_is_now() {
    let kitchen = Kitchen::start().await;
    let first = kitchen.place(2).await;
    let second = kitchen.place(1).await;
    for path in [
        format!("/tickets/{first}/items/0/start"),
        format!("/tickets/{second}/items/0/start"),
        format!("/tickets/{first}/items/1/start"),
    ] {
        assert_eq!(kitchen.post(&path, &kitchen.chef, json!({})).await.0, 200);
    }
    // The estimator quotes the tickets again after each move (more changes): until it is
    // done, for a second, so that what the screen missed is all there when it comes back.
    let pool = kitchen.pool().await;
    let changes = || async {
        let changes: Vec<(i64, String)> = sqlx::query_as(
            "SELECT id, key FROM projection_changes WHERE feed = 'kitchen' ORDER BY id",
        )
        .fetch_all(&pool)
        .await
        .unwrap();
        changes
    };
    let mut missed = changes().await;
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let now = changes().await;
        if now == missed {
            break;
        }
        missed = now;
    }
    let first_changes = missed.iter().filter(|(_, key)| *key == first.to_string());
    assert!(first_changes.count() >= 3, "{missed:?}");
    let last_missed = missed.last().unwrap().0;

    let response = kitchen
        .http
        .get(format!("{}/tickets/stream", kitchen.base))
        .bearer_auth(&kitchen.chef)
        .header("Last-Event-ID", "0")
        .send()
        .await
        .unwrap();
    let mut body = response.bytes_stream();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let frames = |text: &str| -> Vec<(i64, Value)> {
        text.split("\n\n")
            .filter_map(|frame| {
                let id = frame.lines().find_map(|l| l.strip_prefix("id:"))?;
                let data = frame.lines().find_map(|l| l.strip_prefix("data:"))?;
                Some((
                    id.trim().parse().ok()?,
                    serde_json::from_str(data.trim()).ok()?,
                ))
            })
            .collect()
    };
    let received = read_until(&mut body, deadline, |received| {
        frames(received).iter().any(|(id, _)| *id >= last_missed)
    })
    .await;
    drop(body);
    let caught_up: Vec<(i64, Value)> = frames(&received)
        .into_iter()
        .filter(|(id, _)| *id <= last_missed)
        .collect();
    let shown: Vec<&str> = caught_up
        .iter()
        .map(|(_, change)| change["ticket"]["orderId"].as_str().unwrap())
        .collect();
    let (first, second) = (first.to_string(), second.to_string());
    assert_eq!(
        shown.iter().filter(|id| **id == first).count(),
        1,
        "{shown:?}"
    );
    assert_eq!(
        shown.iter().filter(|id| **id == second).count(),
        1,
        "{shown:?}"
    );
    let ids: Vec<i64> = caught_up.iter().map(|(id, _)| *id).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
    let (_, latest) = caught_up
        .iter()
        .find(|(_, change)| change["ticket"]["orderId"] == first.as_str())
        .unwrap();
    assert_eq!(latest["ticket"]["items"][0]["status"], "in_preparation");
    assert_eq!(latest["ticket"]["items"][1]["status"], "in_preparation");
    drop_databases(&kitchen.settings).await;
}

/// What an SSE response sent, read until `enough` says so (or the deadline fails the test).
async fn read_until<B: AsRef<[u8]>>(
    body: &mut (impl futures::Stream<Item = reqwest::Result<B>> + Unpin),
    deadline: tokio::time::Instant,
    enough: impl Fn(&str) -> bool,
) -> String {
    let mut received = String::new();
    while !enough(&received) {
        let chunk = tokio::time::timeout_at(deadline, body.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        received.push_str(&String::from_utf8_lossy(chunk.as_ref()));
    }
    received
}

fn at(value: &Value) -> DateTime<Utc> {
    value.as_str().unwrap().parse().unwrap()
}

fn order_ids(tickets: &Value) -> Vec<String> {
    tickets
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["orderId"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn a_chef_undoes_a_step_but_not_once_the_ticket_is_ready() {
    let kitchen = Kitchen::start().await;
    let order_id = kitchen.place(2).await;
    let chef = &kitchen.chef;
    let step = |index: u32, action: &str| format!("/tickets/{order_id}/items/{index}/{action}");

    kitchen.post(&step(0, "start"), chef, json!({})).await;
    let (status, ticket) = kitchen.post(&step(0, "undo"), chef, json!({})).await;
    assert_eq!(status, 200, "{ticket}");
    assert_eq!(ticket["items"][0]["status"], "pending");
    assert!(ticket["items"][0]["startedAt"].is_null());
    let (status, problem) = kitchen.post(&step(0, "undo"), chef, json!({})).await;
    assert_eq!(status, 409);
    assert_eq!(
        problem["type"],
        "https://brigade.dev/errors/ticket-nothing-to-undo"
    );

    // Ready, then back to in preparation (it had been started), then ready again.
    kitchen.post(&step(0, "start"), chef, json!({})).await;
    kitchen.post(&step(0, "ready"), chef, json!({})).await;
    let (status, ticket) = kitchen.post(&step(0, "undo"), chef, json!({})).await;
    assert_eq!(status, 200, "{ticket}");
    assert_eq!(ticket["items"][0]["status"], "in_preparation");
    assert!(ticket["items"][0]["readyAt"].is_null());
    kitchen.post(&step(0, "ready"), chef, json!({})).await;

    // Once the ticket is ready the order and its delivery have moved on: no undo.
    let (status, ticket) = kitchen.post(&step(1, "ready"), chef, json!({})).await;
    assert_eq!(status, 200);
    assert_eq!(ticket["status"], "ready");
    let (status, problem) = kitchen.post(&step(1, "undo"), chef, json!({})).await;
    assert_eq!(status, 409);
    assert_eq!(
        problem["type"],
        "https://brigade.dev/errors/ticket-too-late-to-undo"
    );
    let (status, problem) = kitchen.post(&step(9, "undo"), chef, json!({})).await;
    assert_eq!(status, 404);
    assert_eq!(problem["field"], "index");
    let manager = kitchen.issuer.token(Uuid::new_v4(), Role::Manager);
    assert_eq!(
        kitchen.post(&step(0, "undo"), &manager, json!({})).await.0,
        403
    );

    assert_eq!(
        kitchen.events(order_id).await,
        [
            "TicketOpened",
            "ItemStarted",
            "ItemStepUndone",
            "ItemStarted",
            "ItemReady",
            "ItemStepUndone",
            "ItemReady",
            "ItemReady",
            "TicketReady"
        ]
    );
    // The queue follows.
    for _ in 0..100 {
        let (_, ticket) = kitchen.get(&format!("/tickets/{order_id}"), chef).await;
        if ticket["status"] == "ready" {
            assert_eq!(ticket["items"][0]["status"], "ready");
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drop_databases(&kitchen.settings).await;
}

#[tokio::test]
async fn each_station_sees_only_its_items_with_the_dishes_station_and_target() {
    let kitchen = Kitchen::start().await;
    let chef = &kitchen.chef;
    let grill = kitchen.add_dish("grill", 12).await;
    let pastry = kitchen.add_dish("pastry", 25).await;
    let unknown = Uuid::new_v4();
    let order_id = kitchen.place_dishes(&[grill, unknown, pastry], 0).await;
    let cold_only = kitchen
        .place_dishes(&[kitchen.add_dish("cold", 5).await], 0)
        .await;

    let (status, ticket) = kitchen.get(&format!("/tickets/{order_id}"), chef).await;
    assert_eq!(status, 200);
    let stations: Vec<&str> = ticket["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| item["station"].as_str().unwrap())
        .collect();
    assert_eq!(stations, ["grill", "main", "pastry"]);
    assert_eq!(ticket["items"][0]["prepMinutes"], 12);
    assert_eq!(ticket["items"][1]["prepMinutes"], 15);
    // The target is the longest dish.
    assert_eq!(ticket["targetMinutes"], 25);

    let (status, tickets) = kitchen.get("/tickets?station=grill", chef).await;
    assert_eq!(status, 200);
    assert_eq!(order_ids(&tickets), [order_id.to_string()]);
    let items = tickets[0]["items"].as_array().unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["index"], 0);
    let (_, tickets) = kitchen.get("/tickets?station=Pastry", chef).await;
    assert_eq!(tickets[0]["items"][0]["index"], 2);
    let (_, tickets) = kitchen.get("/tickets?station=cold", chef).await;
    assert_eq!(order_ids(&tickets), [cold_only.to_string()]);
    let (_, tickets) = kitchen.get("/tickets", chef).await;
    assert_eq!(tickets.as_array().unwrap().len(), 2);
    let (status, problem) = kitchen.get("/tickets?station=%20", chef).await;
    assert_eq!(status, 400, "{problem}");
    assert_eq!(problem["field"], "station");
    let (status, problem) = kitchen
        .get(&format!("/tickets?station={}", "x".repeat(41)), chef)
        .await;
    assert_eq!(status, 400, "{problem}");
    assert_eq!(problem["field"], "station");

    // The grill screen's stream gets the grill ticket, with its grill item only.
    let response = kitchen
        .http
        .get(format!("{}/tickets/stream?station=grill", kitchen.base))
        .bearer_auth(chef)
        .header("Last-Event-ID", "0")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let mut body = response.bytes_stream();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let received = read_until(&mut body, deadline, |received| {
        received.contains(&order_id.to_string())
    })
    .await;
    assert!(!received.contains(&cold_only.to_string()));
    assert!(!received.contains("\"pastry\""));
    drop(body);
    drop_databases(&kitchen.settings).await;
}

#[tokio::test]
async fn tickets_show_their_target_turn_late_and_stay_visible_a_while_once_done() {
    let kitchen = Kitchen::start().await;
    let chef = &kitchen.chef;
    let late = kitchen.place_dishes(&[Uuid::new_v4()], 20).await;
    let fresh = kitchen.place(1).await;

    let (_, tickets) = kitchen.get("/tickets", chef).await;
    assert_eq!(order_ids(&tickets), [late.to_string(), fresh.to_string()]);
    let (old, new) = (&tickets[0], &tickets[1]);
    assert_eq!(old["targetMinutes"], 15);
    assert_eq!(
        (at(&old["targetAt"]) - at(&old["placedAt"])).num_minutes(),
        15
    );
    assert!(old["elapsedSeconds"].as_i64().unwrap() >= 20 * 60);
    assert_eq!(old["late"], true);
    assert_eq!(new["late"], false);
    assert!(new["elapsedSeconds"].as_i64().unwrap() < 60);

    let (status, _) = kitchen
        .post(&format!("/tickets/{late}/bump"), chef, json!({}))
        .await;
    assert_eq!(status, 200);
    for _ in 0..100 {
        let (_, tickets) = kitchen.get("/tickets", chef).await;
        if order_ids(&tickets) == [fresh.to_string()] {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (_, tickets) = kitchen.get("/tickets", chef).await;
    assert_eq!(order_ids(&tickets), [fresh.to_string()]);
    // With the recently closed ones: open first, then the one just made ready, still late.
    let (status, tickets) = kitchen.get("/tickets?include=recent", chef).await;
    assert_eq!(status, 200);
    assert_eq!(order_ids(&tickets), [fresh.to_string(), late.to_string()]);
    assert_eq!(tickets[1]["status"], "ready");
    assert_eq!(tickets[1]["late"], true);
    let (status, problem) = kitchen.get("/tickets?include=everything", chef).await;
    assert_eq!(status, 400, "{problem}");
    assert_eq!(problem["field"], "include");
    drop_databases(&kitchen.settings).await;
}

/// A rush of new tickets is quoted in passes that commit sixteen quotes at a time: every
/// ticket gets its quote, and no transaction holds more than sixteen.
#[tokio::test]
async fn a_rush_of_tickets_is_quoted_sixteen_to_a_commit() {
    let kitchen = Kitchen::start().await;
    let mut orders = Vec::new();
    for _ in 0..60 {
        let order_id = Uuid::new_v4();
        kitchen.publish(order_id, 1, &placed(order_id, 1)).await;
        orders.push(order_id);
    }
    for order_id in &orders {
        kitchen.wait_for_estimate(*order_id).await;
    }
    let pool = kitchen.pool().await;
    let per_transaction: Vec<i64> = sqlx::query_scalar(
        "SELECT count(*) FROM events WHERE aggregate_type = 'estimate'
          GROUP BY xmin::text ORDER BY count(*) DESC",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(
        per_transaction.iter().sum::<i64>(),
        60,
        "{per_transaction:?}"
    );
    // Sixty tickets arrive faster than the estimator's debounce: its first pass has more than
    // sixteen to quote, and cuts them.
    assert_eq!(per_transaction.first(), Some(&16), "{per_transaction:?}");
    drop_databases(&kitchen.settings).await;
}

#[tokio::test]
async fn every_open_ticket_gets_a_ready_time_quoted_from_the_load() {
    let kitchen = Kitchen::start().await;
    let grill = kitchen.add_dish("grill", 10).await;
    // Two lanes per station: the third grill order waits for the first two.
    let mut orders = Vec::new();
    for _ in 0..3 {
        orders.push(kitchen.place_dishes(&[grill], 0).await);
    }
    let before = Utc::now();
    let mut quotes = Vec::new();
    for order_id in &orders {
        let ticket = kitchen.wait_for_estimate(*order_id).await;
        quotes.push(at(&ticket["estimatedReadyAt"]));
    }
    let minutes = |quote: DateTime<Utc>| (quote - before).num_seconds() as f64 / 60.0;
    for quote in &quotes[..2] {
        assert!((8.5..=10.5).contains(&minutes(*quote)), "{quotes:?}");
    }
    // The third one was quoted once the first two were on the load (within the 2-minute
    // threshold of the final figure: 20 minutes).
    for _ in 0..100 {
        let ticket = kitchen.wait_for_estimate(orders[2]).await;
        if minutes(at(&ticket["estimatedReadyAt"])) > 17.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let third = at(&kitchen.wait_for_estimate(orders[2]).await["estimatedReadyAt"]);
    assert!((17.5..=20.5).contains(&minutes(third)), "{third}");
    // Quotes are the estimate's events, not the ticket's.
    assert_eq!(
        kitchen.history("estimate", orders[0]).await,
        ["TicketEstimated"]
    );
    assert_eq!(kitchen.events(orders[0]).await, ["TicketOpened"]);
    drop_databases(&kitchen.settings).await;
}

#[tokio::test]
async fn kitchen_metrics_count_open_late_and_today_s_preparation_times() {
    let kitchen = Kitchen::start().await;
    let done = kitchen.place_dishes(&[Uuid::new_v4()], 20).await;
    kitchen
        .place_dishes(&[Uuid::new_v4(), Uuid::new_v4()], 30)
        .await;
    kitchen.place(1).await;
    kitchen
        .post(&format!("/tickets/{done}/bump"), &kitchen.chef, json!({}))
        .await;
    let manager = kitchen.issuer.token(Uuid::new_v4(), Role::Manager);
    let mut metrics = Value::Null;
    for _ in 0..100 {
        let (status, body) = kitchen.get("/kitchen/metrics", &manager).await;
        assert_eq!(status, 200, "{body}");
        metrics = body;
        // The two figures are read one after the other: wait for both to show the bump.
        if metrics["readyToday"] == 1 && metrics["ticketsOpen"] == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(metrics["ticketsOpen"], 2, "{metrics}");
    assert_eq!(metrics["ticketsLate"], 1, "{metrics}");
    assert_eq!(metrics["readyToday"], 1, "{metrics}");
    assert_eq!(metrics["lateToday"], 1, "{metrics}");
    let average = metrics["averagePrepSeconds"].as_f64().unwrap();
    assert!((1200.0..1300.0).contains(&average), "{metrics}");
    assert_eq!(metrics["p90PrepSeconds"], metrics["averagePrepSeconds"]);
    assert_eq!(metrics["stations"][0]["station"], "main");
    assert_eq!(metrics["stations"][0]["pending"], 3);
    assert!(
        metrics["newOrderMinutes"].as_i64().unwrap() >= 15,
        "{metrics}"
    );
    let customer = kitchen.issuer.token(Uuid::new_v4(), Role::Customer);
    assert_eq!(kitchen.get("/kitchen/metrics", &customer).await.0, 403);
    drop_databases(&kitchen.settings).await;
}

#[tokio::test]
async fn two_chefs_on_different_items_of_one_ticket_at_once_both_succeed() {
    let kitchen = Kitchen::start().await;
    let order_id = kitchen.place(2).await;
    let pastry_chef = kitchen.issuer.token(Uuid::new_v4(), Role::Chef);
    // The loser of the race for the ticket's next event is decided again, on the fresh state.
    let (grill, pastry) = (
        format!("/tickets/{order_id}/items/0/start"),
        format!("/tickets/{order_id}/items/1/start"),
    );
    let (a, b) = tokio::join!(
        kitchen.post(&grill, &kitchen.chef, json!({})),
        kitchen.post(&pastry, &pastry_chef, json!({}))
    );
    assert_eq!((a.0, b.0), (200, 200), "{a:?} {b:?}");
    assert_eq!(
        kitchen.events(order_id).await,
        ["TicketOpened", "ItemStarted", "ItemStarted"]
    );
    drop_databases(&kitchen.settings).await;
}

#[tokio::test]
async fn a_ticket_for_a_customer_with_allergies_carries_the_allergy_flag() {
    let kitchen = Kitchen::start().await;
    let order_id = Uuid::new_v4();
    let mut event = placed(order_id, 1);
    if let OrderEvent::OrderPlaced { allergies, .. } = &mut event {
        *allergies = vec![
            brigade_domain::Allergen::Peanuts,
            brigade_domain::Allergen::Milk,
        ];
    }
    kitchen.publish(order_id, 1, &event).await;
    kitchen.wait_for_ticket(order_id).await;
    let (_, ticket) = kitchen
        .get(&format!("/tickets/{order_id}"), &kitchen.chef)
        .await;
    assert_eq!(ticket["allergies"], json!(["peanuts", "milk"]));
    // A ticket of a customer without allergies has none.
    let plain = kitchen.place(1).await;
    let (_, ticket) = kitchen
        .get(&format!("/tickets/{plain}"), &kitchen.chef)
        .await;
    assert_eq!(ticket["allergies"], json!([]));
    drop_databases(&kitchen.settings).await;
}

#[tokio::test]
async fn a_scheduled_ticket_queues_by_its_time_and_is_quoted_for_it() {
    let kitchen = Kitchen::start().await;
    let scheduled = Uuid::new_v4();
    let when = DateTime::from_timestamp(Utc::now().timestamp() + 2 * 3600, 0).unwrap();
    let mut event = placed(scheduled, 1);
    if let OrderEvent::OrderPlaced { scheduled_for, .. } = &mut event {
        *scheduled_for = Some(when);
    }
    kitchen.publish(scheduled, 1, &event).await;
    kitchen.wait_for_ticket(scheduled).await;
    let asap = kitchen.place(1).await;
    let (status, tickets) = kitchen.get("/tickets", &kitchen.chef).await;
    assert_eq!(status, 200);
    let ids = order_ids(&tickets);
    let position = |id: Uuid| ids.iter().position(|i| *i == id.to_string()).unwrap();
    assert!(position(asap) < position(scheduled), "{ids:?}");
    // Ready at its time, not as soon as the kitchen could cook it.
    let quoted = at(&kitchen.wait_for_estimate(scheduled).await["estimatedReadyAt"]);
    assert!(
        (quoted - when).num_seconds().abs() <= 60,
        "{quoted} for {when}"
    );
    let asap_quote = at(&kitchen.wait_for_estimate(asap).await["estimatedReadyAt"]);
    assert!(
        asap_quote < Utc::now() + chrono::Duration::minutes(30),
        "{asap_quote}"
    );
    drop_databases(&kitchen.settings).await;
}

#[tokio::test]
async fn a_chef_marks_a_dish_sold_out_and_the_fact_is_published() {
    let kitchen = Kitchen::start().await;
    let order_id = kitchen.place(2).await;
    let (_, ticket) = kitchen
        .get(&format!("/tickets/{order_id}"), &kitchen.chef)
        .await;
    let dish_id: Uuid = ticket["items"][0]["dishId"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();

    let (status, stock) = kitchen
        .post(
            &format!("/dishes/{dish_id}/sold-out"),
            &kitchen.chef,
            json!({"reason": "plus de pommes"}),
        )
        .await;
    assert_eq!(status, 200, "{stock}");
    assert_eq!(stock["soldOut"], true);
    let pool = kitchen.pool().await;
    let published: Vec<Value> = sqlx::query_scalar(
        "SELECT payload FROM outbox WHERE aggregate_type = 'stock' AND aggregate_id = $1",
    )
    .bind(dish_id.to_string())
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(published.len(), 1);
    assert_eq!(published[0]["DishSoldOut"]["dishName"], "Plat 0");
    assert_eq!(published[0]["DishSoldOut"]["reason"], "plus de pommes");

    // Customers and couriers cannot; a reason too long is refused naming it; nothing stored.
    let customer = kitchen.issuer.token(Uuid::new_v4(), Role::Customer);
    let (status, _) = kitchen
        .post(&format!("/dishes/{dish_id}/sold-out"), &customer, json!({}))
        .await;
    assert_eq!(status, 403);
    let (status, problem) = kitchen
        .post(
            &format!("/dishes/{dish_id}/sold-out"),
            &kitchen.chef,
            json!({"reason": "x".repeat(201)}),
        )
        .await;
    assert_eq!(status, 422, "{problem}");
    assert_eq!(problem["field"], "reason");
    assert_eq!(kitchen.history("stock", dish_id).await, ["DishSoldOut"]);

    let (status, stock) = kitchen
        .post(
            &format!("/dishes/{dish_id}/back-in-stock"),
            &kitchen.chef,
            json!({}),
        )
        .await;
    assert_eq!(status, 200, "{stock}");
    assert_eq!(stock["soldOut"], false);
    assert_eq!(
        kitchen.history("stock", dish_id).await,
        ["DishSoldOut", "DishBackInStock"]
    );
    drop_databases(&kitchen.settings).await;
}

#[tokio::test]
async fn rejecting_a_ticket_for_a_missing_dish_marks_the_dish_sold_out() {
    let kitchen = Kitchen::start().await;
    let order_id = kitchen.place(2).await;
    let (_, ticket) = kitchen
        .get(&format!("/tickets/{order_id}"), &kitchen.chef)
        .await;
    let missing: Uuid = ticket["items"][1]["dishId"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();

    let (status, problem) = kitchen
        .post(
            &format!("/tickets/{order_id}/reject"),
            &kitchen.chef,
            json!({"reason": "plus de saumon", "soldOutItems": [5]}),
        )
        .await;
    assert_eq!(status, 404, "{problem}");
    assert_eq!(problem["field"], "soldOutItems");
    assert_eq!(kitchen.events(order_id).await, ["TicketOpened"]);

    let (status, rejected) = kitchen
        .post(
            &format!("/tickets/{order_id}/reject"),
            &kitchen.chef,
            json!({"reason": "plus de saumon", "soldOutItems": [1]}),
        )
        .await;
    assert_eq!(status, 200, "{rejected}");
    assert_eq!(rejected["status"], "rejected");
    assert_eq!(kitchen.history("stock", missing).await, ["DishSoldOut"]);
    assert_eq!(
        kitchen.events(order_id).await,
        ["TicketOpened", "TicketRejected"]
    );
    drop_databases(&kitchen.settings).await;
}
