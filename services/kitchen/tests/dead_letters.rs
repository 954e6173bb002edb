//! The kitchen's `/dead-letters` endpoints (every service has them, from the platform),
//! black-box: the real service on a random port, its own database and NATS namespace.
//!
//! A poison message published on the orders stream is parked by the kitchen's own consumer,
//! listed, refused on replay (its handler still fails) and discarded. A well-formed order whose
//! handler ran out of attempts (an outage) is replayed through the consumer that parked it, and
//! its ticket opens.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use brigade_domain::ordering::{OrderEvent, OrderLine};
use brigade_domain::{Address, Money, Role};
use brigade_platform::testing::{drop_databases, isolated_settings, wait_ready, TestIssuer};
use brigade_platform::{ServiceName, Settings};
use chrono::Utc;
use serde_json::{json, Value};
use uuid::Uuid;

struct Kitchen {
    settings: Settings,
    issuer: TestIssuer,
    base: String,
    http: reqwest::Client,
    manager: String,
}

impl Kitchen {
    async fn start() -> Self {
        let issuer = TestIssuer::start().await;
        let settings = isolated_settings(issuer.url());
        let base = format!("http://127.0.0.1:{}", settings.port(ServiceName::Kitchen));
        tokio::spawn(brigade_kitchen::run(settings.clone()));
        wait_ready(&base).await;
        let manager = issuer.token(Uuid::new_v4(), Role::Manager);
        Self {
            settings,
            issuer,
            base,
            http: reqwest::Client::new(),
            manager,
        }
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
    ) -> (u16, String, Value) {
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        let body = response.json().await.unwrap_or(Value::Null);
        (status, content_type, body)
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        let (status, _, body) = self
            .call(reqwest::Method::GET, path, Some(&self.manager))
            .await;
        (status, body)
    }

    async fn post(&self, path: &str) -> (u16, Value) {
        let (status, _, body) = self
            .call(reqwest::Method::POST, path, Some(&self.manager))
            .await;
        (status, body)
    }

    async fn pool(&self) -> sqlx::PgPool {
        sqlx::PgPool::connect(&self.settings.database_url_for(ServiceName::Kitchen))
            .await
            .unwrap()
    }

    /// Publishes an `orders.order.*` message as the orders service's relay would.
    async fn publish(&self, envelope: &Value, suffix: &str) {
        // The orders stream appears when the service's consumers start, after readiness.
        brigade_nats::Bus::connect(&self.settings.nats_url, self.settings.namespace.clone(), 1)
            .await
            .unwrap()
            .ensure_stream("orders")
            .await
            .unwrap();
        let client = async_nats::connect(&self.settings.nats_url).await.unwrap();
        let js = async_nats::jetstream::new(client);
        let subject = self
            .settings
            .namespace
            .subject(&format!("orders.order.{suffix}"));
        js.publish(subject, serde_json::to_vec(envelope).unwrap().into())
            .await
            .unwrap()
            .await
            .unwrap();
    }

    /// The open dead letters, once `count` of them are parked.
    async fn wait_for_dead_letters(&self, count: usize) -> Vec<Value> {
        for _ in 0..300 {
            let (status, page) = self.get("/dead-letters").await;
            assert_eq!(status, 200, "{page}");
            let items = page["items"].as_array().unwrap().clone();
            if items.len() >= count {
                return items;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("{count} dead letters were never parked");
    }
}

fn envelope(order_id: Uuid, event_type: &str, payload: Value) -> Value {
    json!({
        "eventId": Uuid::new_v4(), "aggregateType": "order", "aggregateId": order_id.to_string(),
        "sequence": 1, "eventType": event_type, "eventVersion": "1.0",
        "payload": payload,
        "metadata": {"correlation_id": order_id.to_string()}, "recordedAt": Utc::now(),
    })
}

fn order_placed(order_id: Uuid) -> Value {
    let event = OrderEvent::OrderPlaced {
        order_id,
        customer_id: Uuid::new_v4(),
        lines: vec![OrderLine {
            dish_id: Uuid::new_v4(),
            name: "Blanquette de veau".to_owned(),
            unit_price: Money::eur(1850),
            quantity: 1,
            note: None,
            options: Vec::new(),
        }],
        delivery_address: Address {
            street: "1 rue du Bac".into(),
            city: "Paris".into(),
            postal_code: "75007".into(),
            lat: None,
            lon: None,
        },
        contact_phone: None,
        total: Money::eur(1850),
        placed_at: Utc::now(),
        allergies: Vec::new(),
        scheduled_for: None,
    };
    serde_json::to_value(&event).unwrap()
}

#[tokio::test]
async fn a_poison_message_is_parked_listed_refused_on_replay_and_discarded() {
    let kitchen = Kitchen::start().await;
    let order_id = Uuid::new_v4();
    kitchen
        .publish(
            &envelope(order_id, "OrderPlaced", json!({"nonsense": true})),
            "placed",
        )
        .await;

    let parked = kitchen.wait_for_dead_letters(1).await;
    let letter = &parked[0];
    assert_eq!(letter["service"], "kitchen");
    assert_eq!(letter["consumer"], "kitchen-from-orders");
    assert_eq!(letter["aggregateId"], order_id.to_string());
    assert_eq!(letter["status"], "open");
    assert_eq!(letter["replayable"], true);
    assert!(
        letter["error"]
            .as_str()
            .unwrap()
            .contains("not an order event"),
        "{letter}"
    );
    let id = letter["id"].as_i64().unwrap();

    // One dead letter with its message.
    let (status, detail) = kitchen.get(&format!("/dead-letters/{id}")).await;
    assert_eq!(status, 200);
    assert!(detail["payload"].as_str().unwrap().contains("nonsense"));
    assert_eq!(detail["consumer"], "kitchen-from-orders");

    // Replayed as it is, it still fails: nothing changes.
    let (status, problem) = kitchen.post(&format!("/dead-letters/{id}/replay")).await;
    assert_eq!(status, 409, "{problem}");
    assert!(problem["type"]
        .as_str()
        .unwrap()
        .ends_with("/dead-letter-still-failing"));
    assert_eq!(
        kitchen.get(&format!("/dead-letters/{id}")).await.1["status"],
        "open"
    );

    // Discarded: it leaves the open list, stays in the full one, and cannot be handled twice.
    let (status, discarded) = kitchen.post(&format!("/dead-letters/{id}/discard")).await;
    assert_eq!(status, 200, "{discarded}");
    assert_eq!(discarded["status"], "discarded");
    assert_eq!(discarded["replayable"], false);
    let (_, open) = kitchen.get("/dead-letters").await;
    assert_eq!(open["total"], 0);
    let (_, all) = kitchen.get("/dead-letters?all=true").await;
    assert_eq!(all["total"], 1);
    assert_eq!(all["items"][0]["status"], "discarded");
    let (status, problem) = kitchen.post(&format!("/dead-letters/{id}/discard")).await;
    assert_eq!(status, 409);
    assert!(problem["type"]
        .as_str()
        .unwrap()
        .ends_with("/dead-letter-closed"));
    let (status, _) = kitchen.post(&format!("/dead-letters/{id}/replay")).await;
    assert_eq!(status, 409);

    drop_databases(&kitchen.settings).await;
}

#[tokio::test]
async fn a_parked_order_is_replayed_through_its_consumer_and_its_ticket_opens() {
    let kitchen = Kitchen::start().await;
    let order_id = Uuid::new_v4();
    // An order the kitchen's consumer gave up on after its last attempt (the database was down
    // throughout), parked as the consumer parks it.
    let pool = kitchen.pool().await;
    let message = envelope(order_id, "OrderPlaced", order_placed(order_id));
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO dead_letters (consumer, subject, message_id, aggregate_type, aggregate_id,
                                   sequence, payload, error, attempts)
         VALUES ('kitchen-from-orders', 'orders.order.placed', $1, 'order', $2, 1, $3,
                 'database unavailable', 10)
         RETURNING id",
    )
    .bind(format!("order:{order_id}:1"))
    .bind(order_id.to_string())
    .bind(serde_json::to_vec(&message).unwrap())
    .fetch_one(&pool)
    .await
    .unwrap();
    let listed = kitchen.wait_for_dead_letters(1).await;
    assert_eq!(listed[0]["id"], id);
    assert_eq!(
        kitchen.get(&format!("/tickets/{order_id}")).await.0,
        404,
        "no ticket before the replay"
    );

    let (status, replayed) = kitchen.post(&format!("/dead-letters/{id}/replay")).await;
    assert_eq!(status, 200, "{replayed}");
    assert_eq!(replayed["status"], "replayed");
    assert!(replayed["replayedAt"].is_string());
    let (_, open) = kitchen.get("/dead-letters").await;
    assert_eq!(open["total"], 0);

    // The consumer's handler opened the ticket; the kitchen queue shows it.
    let mut found = false;
    for _ in 0..300 {
        let (status, ticket) = kitchen.get(&format!("/tickets/{order_id}")).await;
        if status == 200 {
            assert_eq!(ticket["items"][0]["dishName"], "Blanquette de veau");
            found = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(found, "the replayed order never became a ticket");
    drop_databases(&kitchen.settings).await;
}

#[tokio::test]
async fn only_managers_see_dead_letters_and_mistakes_are_problems() {
    let kitchen = Kitchen::start().await;
    let (status, content_type, _) = kitchen
        .call(reqwest::Method::GET, "/dead-letters", None)
        .await;
    assert_eq!(status, 401);
    assert!(content_type.starts_with("application/problem+json"));
    let chef = kitchen.issuer.token(Uuid::new_v4(), Role::Chef);
    let (status, content_type, _) = kitchen
        .call(reqwest::Method::GET, "/dead-letters", Some(&chef))
        .await;
    assert_eq!(status, 403);
    assert!(content_type.starts_with("application/problem+json"));
    let (status, _, _) = kitchen
        .call(reqwest::Method::POST, "/dead-letters/1/replay", Some(&chef))
        .await;
    assert_eq!(status, 403);

    let (status, problem) = kitchen.get("/dead-letters/424242").await;
    assert_eq!(status, 404);
    assert!(problem["type"]
        .as_str()
        .unwrap()
        .ends_with("/dead-letter-not-found"));
    assert_eq!(kitchen.post("/dead-letters/424242/replay").await.0, 404);
    assert_eq!(kitchen.post("/dead-letters/424242/discard").await.0, 404);
    let (status, problem) = kitchen.get("/dead-letters?pageSize=0").await;
    assert_eq!(status, 400);
    assert_eq!(problem["field"], "pageSize");
    let (status, _, _) = kitchen
        .call(
            reqwest::Method::GET,
            "/dead-letters/not-a-number",
            Some(&kitchen.manager),
        )
        .await;
    assert_eq!(status, 400);
    drop_databases(&kitchen.settings).await;
}
