//! The harness: the real orders service on a free port, with its own database and NATS
//! namespace, tokens signed by a test issuer whose keys the service fetches as it would
//! identity's, and the kitchen's and delivery's events published on the bus as their relays
//! would publish them.

use std::time::Duration;

use brigade_domain::delivery::DeliveryEvent;
use brigade_domain::identity::AccountEvent;
use brigade_domain::kitchen::{DishStockEvent, EstimateEvent, TicketEvent};
use brigade_domain::Role;
use brigade_nats::consumer::AGGREGATE_ID_HEADER;
use brigade_nats::namespace::event_subject;
use brigade_nats::{Bus, EventEnvelope};
use brigade_platform::testing::{drop_databases, isolated_settings, wait_ready, TestIssuer};
use brigade_platform::{ServiceName, Settings};
use chrono::Utc;
use cqrs_es::DomainEvent;
use futures::StreamExt;
use serde_json::{json, Value};
use uuid::Uuid;

/// How long to wait for something that flows through the bus.
const PATIENCE: Duration = Duration::from_secs(20);

/// The orders service under test.
pub struct TestApp {
    pub settings: Settings,
    pub issuer: TestIssuer,
    pub base: String,
    pub http: reqwest::Client,
}

/// A status and a JSON body (or `Null`), as a test looks at an answer.
pub struct Answer {
    pub status: u16,
    pub content_type: String,
    pub body: Value,
}

impl Answer {
    /// The problem's `type`, less the common base.
    pub fn problem_code(&self) -> String {
        self.body["type"]
            .as_str()
            .unwrap_or_default()
            .trim_start_matches("https://brigade.dev/errors/")
            .to_owned()
    }

    pub fn field(&self) -> &str {
        self.body["field"].as_str().unwrap_or_default()
    }
}

impl TestApp {
    /// Starts the service and waits until the starter menu is served.
    pub async fn spawn() -> Self {
        Self::spawn_with(|_| {}).await
    }

    /// Starts the service with settings changed by `configure` (a kitchen capacity, ...).
    pub async fn spawn_with(configure: impl FnOnce(&mut Settings)) -> Self {
        let issuer = TestIssuer::start().await;
        let mut settings = isolated_settings(issuer.url());
        configure(&mut settings);
        let base = format!("http://127.0.0.1:{}", settings.port(ServiceName::Orders));
        let service = settings.clone();
        tokio::spawn(async move {
            if let Err(error) = brigade_orders::run(service).await {
                eprintln!("the orders service stopped: {error:#}");
            }
        });
        wait_ready(&base).await;
        let app = Self {
            settings,
            issuer,
            base,
            http: reqwest::Client::new(),
        };
        app.eventually("the whole starter menu", || async {
            let menu = app.get("/menu", None).await.body;
            let dishes: usize = menu["categories"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|category| category["dishes"].as_array().map_or(0, Vec::len))
                .sum();
            (dishes == brigade_orders::starter_menu::DISHES.len()).then_some(())
        })
        .await;
        app
    }

    /// Checks that no event was parked, then drops the test's databases.
    pub async fn stop(self) {
        let pool = sqlx::PgPool::connect(&self.settings.database_url_for(ServiceName::Orders))
            .await
            .expect("the orders database");
        let parked: Vec<(String, String, String)> = sqlx::query_as(
            "SELECT consumer, coalesce(message_id, subject), error FROM dead_letters",
        )
        .fetch_all(&pool)
        .await
        .expect("dead letters readable");
        pool.close().await;
        drop_databases(&self.settings).await;
        assert!(parked.is_empty(), "parked events: {parked:?}");
    }

    pub fn token(&self, role: Role) -> String {
        self.issuer.token(Uuid::new_v4(), role)
    }

    /// A new customer: their account id and token.
    pub fn customer(&self) -> (Uuid, String) {
        let id = Uuid::new_v4();
        (id, self.issuer.token(id, Role::Customer))
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> Answer {
        let mut request = self.http.get(format!("{}{path}", self.base));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        answer(request.send().await.expect("the service answers")).await
    }

    pub async fn post(&self, path: &str, token: &str, body: Option<Value>) -> Answer {
        let mut request = self
            .http
            .post(format!("{}{path}", self.base))
            .bearer_auth(token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        answer(request.send().await.expect("the service answers")).await
    }

    pub async fn patch(&self, path: &str, token: &str, body: Value) -> Answer {
        let request = self
            .http
            .patch(format!("{}{path}", self.base))
            .bearer_auth(token)
            .json(&body);
        answer(request.send().await.expect("the service answers")).await
    }

    /// `POST /orders` with an `Idempotency-Key`.
    pub async fn place(&self, token: &str, key: &str, body: &Value) -> Answer {
        let request = self
            .http
            .post(format!("{}/orders", self.base))
            .bearer_auth(token)
            .header("Idempotency-Key", key)
            .json(body);
        answer(request.send().await.expect("the service answers")).await
    }

    /// Places a valid order of `dish` and returns its id.
    pub async fn place_one(&self, token: &str, dish: &str) -> Uuid {
        let dish_id = self.dish(dish).await["id"]
            .as_str()
            .expect("an id")
            .to_owned();
        let placed = self
            .place(
                token,
                &Uuid::new_v4().to_string(),
                &order_of(&[(&dish_id, 1)]),
            )
            .await;
        assert_eq!(placed.status, 201, "{}", placed.body);
        placed.body["orderId"]
            .as_str()
            .expect("an order id")
            .parse()
            .expect("a uuid")
    }

    /// A dish of the menu, by name.
    pub async fn dish(&self, name: &str) -> Value {
        let menu = self.get("/menu", None).await.body;
        menu["categories"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|category| category["dishes"].as_array().into_iter().flatten())
            .find(|dish| dish["name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("no {name} on the menu"))
    }

    /// Retries `probe` until it yields something.
    pub async fn eventually<T, F, Fut>(&self, what: &str, mut probe: F) -> T
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Option<T>>,
    {
        let started = std::time::Instant::now();
        loop {
            if let Some(found) = probe().await {
                return found;
            }
            assert!(started.elapsed() < PATIENCE, "waited in vain for {what}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until the order, as `token` sees it, has `status` in the read model (not the
    /// aggregate fallback: its history then names who did what).
    pub async fn wait_for_status(&self, order_id: Uuid, token: &str, status: &str) -> Value {
        self.eventually(&format!("order {order_id} to be {status}"), || async {
            let order = self
                .get(&format!("/orders/{order_id}"), Some(token))
                .await
                .body;
            (order["status"] == status && order["history"][0]["by"].is_object()).then_some(order)
        })
        .await
    }

    /// Publishes kitchen events about `order_id` (sequences from 1) as its relay would.
    pub async fn kitchen_says(&self, order_id: Uuid, events: &[TicketEvent]) {
        self.kitchen_says_more(order_id, 1, events).await;
    }

    /// Publishes kitchen events about `order_id`, the first with sequence `first`.
    pub async fn kitchen_says_more(&self, order_id: Uuid, first: usize, events: &[TicketEvent]) {
        let envelopes: Vec<_> = events
            .iter()
            .enumerate()
            .map(|(i, event)| {
                envelope(
                    "ticket",
                    order_id,
                    first - 1 + i,
                    event.event_type(),
                    serde_json::to_value(event),
                )
            })
            .collect();
        self.publish("kitchen", envelopes).await;
    }

    /// Publishes the kitchen's quote for `order_id` (its `sequence`-th) as its relay would.
    pub async fn kitchen_estimates(
        &self,
        order_id: Uuid,
        sequence: usize,
        ready_at: chrono::DateTime<Utc>,
    ) {
        let event = EstimateEvent::TicketEstimated {
            order_id,
            ready_at,
            at: Utc::now(),
        };
        let envelope = envelope(
            "estimate",
            order_id,
            sequence - 1,
            event.event_type(),
            serde_json::to_value(&event),
        );
        self.publish("kitchen", vec![envelope]).await;
    }

    /// Publishes the kitchen's stock event about `dish_id` (its `sequence`-th) as its relay
    /// would.
    pub async fn kitchen_stock_says(&self, dish_id: Uuid, sequence: usize, event: &DishStockEvent) {
        let envelope = envelope(
            "stock",
            dish_id,
            sequence - 1,
            event.event_type(),
            serde_json::to_value(event),
        );
        self.publish("kitchen", vec![envelope]).await;
    }

    /// Publishes identity's account event about `account_id` (its `sequence`-th) as its
    /// relay would.
    pub async fn identity_says(&self, account_id: Uuid, sequence: usize, event: &AccountEvent) {
        let envelope = envelope(
            "account",
            account_id,
            sequence - 1,
            event.event_type(),
            serde_json::to_value(event),
        );
        self.publish("identity", vec![envelope]).await;
    }

    /// The orders database, to check what was (not) stored.
    pub async fn pool(&self) -> sqlx::PgPool {
        sqlx::PgPool::connect(&self.settings.database_url_for(ServiceName::Orders))
            .await
            .expect("the orders database")
    }

    /// What placing orders stored: the order events, and the kitchen slot bookings.
    pub async fn stored_orders(&self) -> (i64, i64) {
        let pool = self.pool().await;
        let events: i64 =
            sqlx::query_scalar("SELECT count(*) FROM events WHERE aggregate_type = 'order'")
                .fetch_one(&pool)
                .await
                .expect("the order events");
        let booked: i64 = sqlx::query_scalar("SELECT count(*) FROM kitchen_load")
            .fetch_one(&pool)
            .await
            .expect("the kitchen bookings");
        pool.close().await;
        (events, booked)
    }

    /// Publishes delivery events about `order_id` (sequences from 1) as its relay would.
    pub async fn delivery_says(&self, order_id: Uuid, events: &[DeliveryEvent]) {
        let envelopes: Vec<_> = events
            .iter()
            .enumerate()
            .map(|(i, event)| {
                envelope(
                    "delivery",
                    order_id,
                    i,
                    event.event_type(),
                    serde_json::to_value(event),
                )
            })
            .collect();
        self.publish("delivery", envelopes).await;
    }

    async fn publish(&self, service: &str, envelopes: Vec<EventEnvelope>) {
        let bus = Bus::connect(&self.settings.nats_url, self.settings.namespace.clone(), 1)
            .await
            .expect("NATS is running");
        bus.ensure_stream(service).await.expect("the stream exists");
        for envelope in envelopes {
            let subject = self.settings.namespace.subject(&event_subject(
                service,
                &envelope.aggregate_type,
                &envelope.event_type,
            ));
            let mut headers = async_nats::HeaderMap::new();
            headers.insert("Nats-Msg-Id", envelope.message_id().as_str());
            headers.insert(AGGREGATE_ID_HEADER, envelope.aggregate_id.as_str());
            let payload = serde_json::to_vec(&envelope).expect("an envelope serializes");
            bus.jetstream
                .publish_with_headers(subject, headers, payload.into())
                .await
                .expect("published")
                .await
                .expect("acknowledged");
        }
    }

    /// Opens the order's live stream.
    pub async fn follow(
        &self,
        order_id: Uuid,
        token: &str,
        last_event_id: Option<&str>,
    ) -> EventReader {
        let mut request = self
            .http
            .get(format!("{}/orders/{order_id}/stream", self.base))
            .bearer_auth(token);
        if let Some(id) = last_event_id {
            request = request.header("Last-Event-ID", id);
        }
        let response = request.send().await.expect("the service answers");
        assert_eq!(response.status().as_u16(), 200);
        EventReader {
            bytes: response.bytes_stream().boxed(),
            buffer: String::new(),
        }
    }
}

fn envelope(
    aggregate_type: &str,
    order_id: Uuid,
    index: usize,
    event_type: String,
    payload: serde_json::Result<Value>,
) -> EventEnvelope {
    EventEnvelope {
        event_id: Uuid::new_v4(),
        aggregate_type: aggregate_type.to_owned(),
        aggregate_id: order_id.to_string(),
        sequence: i64::try_from(index).expect("a few events") + 1,
        event_type,
        event_version: "1.0".to_owned(),
        payload: payload.expect("an event serializes"),
        metadata: [("correlation_id".to_owned(), order_id.to_string())].into(),
        recorded_at: Utc::now(),
    }
}

async fn answer(response: reqwest::Response) -> Answer {
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let body = response.json().await.unwrap_or(Value::Null);
    Answer {
        status,
        content_type,
        body,
    }
}

/// An order body: `(dish id, quantity)` lines, to a Paris address.
pub fn order_of(lines: &[(&str, i64)]) -> Value {
    json!({
        "items": lines.iter().map(|(dish_id, quantity)| json!({"dishId": dish_id, "quantity": quantity})).collect::<Vec<_>>(),
        "deliveryAddress": {"street": "12 rue des Martyrs", "city": "Paris", "postalCode": "75009"},
        "contactPhone": "+33 6 12 34 56 78",
    })
}

/// Server-sent events, one at a time.
pub struct EventReader {
    bytes: futures::stream::BoxStream<'static, reqwest::Result<bytes::Bytes>>,
    buffer: String,
}

/// One server-sent event.
#[derive(Debug)]
pub struct ServerEvent {
    pub id: String,
    pub event: String,
    pub data: Value,
}

impl EventReader {
    /// The next event (keep-alive comments skipped).
    pub async fn next(&mut self) -> ServerEvent {
        tokio::time::timeout(PATIENCE, async {
            loop {
                if let Some(end) = self.buffer.find("\n\n") {
                    let block: String = self.buffer.drain(..end + 2).collect();
                    let mut event = ServerEvent {
                        id: String::new(),
                        event: String::new(),
                        data: Value::Null,
                    };
                    for line in block.lines() {
                        if let Some(id) = line.strip_prefix("id: ") {
                            event.id = id.to_owned();
                        } else if let Some(name) = line.strip_prefix("event: ") {
                            event.event = name.to_owned();
                        } else if let Some(data) = line.strip_prefix("data: ") {
                            event.data = serde_json::from_str(data).expect("JSON data");
                        }
                    }
                    if !event.data.is_null() {
                        return event;
                    }
                    continue;
                }
                let chunk = self
                    .bytes
                    .next()
                    .await
                    .expect("the stream stays open")
                    .expect("bytes");
                self.buffer.push_str(&String::from_utf8_lossy(&chunk));
            }
        })
        .await
        .expect("an event in time")
    }
}
