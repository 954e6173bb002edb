//! The test harness: the real delivery service, started in-process on a free port against a
//! throw-away database and NATS namespace, with the platform's stand-in for the identity
//! service's JWKS ([`TestIssuer`]) so that tests can sign access tokens for any account and role.
//!
//! Events from the other services are fed the way they arrive in production: as envelopes
//! published on the (namespaced) subjects of their streams.
#![allow(dead_code, clippy::unwrap_used)]

use std::future::Future;
use std::time::Duration;

use brigade_delivery::DeliveryConfig;
use brigade_domain::kitchen::TicketEvent;
use brigade_domain::ordering::OrderEvent;
use brigade_domain::{Address, Money, Role};
use brigade_nats::namespace::event_subject;
use brigade_nats::{Bus, EventEnvelope};
use brigade_platform::testing::{isolated_settings, TestIssuer};
use brigade_platform::{ServiceName, Settings};
use chrono::Utc;
use cqrs_es::DomainEvent;
use reqwest::{Response, StatusCode};
use serde_json::{json, Value};
use sqlx::PgPool;
use uuid::Uuid;

/// Where the tests' restaurant is; couriers are placed around it.
pub const RESTAURANT: (f64, f64) = (48.8566, 2.3522);

/// One running delivery service and the means to talk to it.
pub struct TestApp {
    pub base: String,
    pub client: reqwest::Client,
    /// The service's own database.
    pub pool: PgPool,
    pub bus: Bus,
    pub settings: Settings,
    pub manager: String,
    issuer: TestIssuer,
}

impl TestApp {
    /// The service with automatic dispatch off: every assignment is the test's.
    pub async fn spawn() -> Self {
        Self::spawn_with(DeliveryConfig {
            auto_dispatch: false,
            ..test_config()
        })
        .await
    }

    pub async fn spawn_with(config: DeliveryConfig) -> Self {
        let issuer = TestIssuer::start().await;
        let mut settings = isolated_settings(issuer.url());
        settings.pool_size = 16;
        let port = settings.port(ServiceName::Delivery);
        let service = tokio::spawn({
            let settings = settings.clone();
            async move {
                if let Err(error) = brigade_delivery::run_with(settings, config).await {
                    eprintln!("the delivery service stopped: {error:#}");
                }
            }
        });
        let base = format!("http://127.0.0.1:{port}");
        let client = reqwest::Client::new();
        wait_until_live(&client, &base, &service).await;
        let pool = PgPool::connect(&settings.database_url_for(ServiceName::Delivery))
            .await
            .unwrap();
        let bus = Bus::connect(&settings.nats_url, settings.namespace.clone(), 1)
            .await
            .unwrap();
        let mut app = Self {
            base,
            client,
            pool,
            bus,
            settings,
            manager: String::new(),
            issuer,
        };
        app.manager = app.token(Uuid::new_v4(), Role::Manager);
        app
    }

    /// An access token for `account` in `role`, as identity would sign it.
    pub fn token(&self, account: Uuid, role: Role) -> String {
        self.issuer.token(account, role)
    }

    pub async fn get(&self, path: &str, token: &str) -> Response {
        self.client
            .get(format!("{}{path}", self.base))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
    }

    pub async fn post(&self, path: &str, token: &str, body: Value) -> Response {
        self.client
            .post(format!("{}{path}", self.base))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    pub async fn put(&self, path: &str, token: &str, body: Value) -> Response {
        self.client
            .put(format!("{}{path}", self.base))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    pub async fn delete(&self, path: &str, token: &str) -> Response {
        self.client
            .delete(format!("{}{path}", self.base))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
    }

    /// Publishes one event of another service, as its relay would.
    pub async fn publish(
        &self,
        source: &str,
        aggregate_type: &str,
        aggregate_id: Uuid,
        sequence: i64,
        event_type: &str,
        payload: Value,
    ) {
        self.bus.ensure_stream(source).await.unwrap();
        let envelope = EventEnvelope {
            event_id: Uuid::new_v4(),
            aggregate_type: aggregate_type.to_owned(),
            aggregate_id: aggregate_id.to_string(),
            sequence,
            event_type: event_type.to_owned(),
            event_version: "1.0".to_owned(),
            payload,
            metadata: [("correlation_id".to_owned(), aggregate_id.to_string())].into(),
            recorded_at: Utc::now(),
        };
        let subject =
            self.bus
                .namespace
                .subject(&event_subject(source, aggregate_type, event_type));
        let message = async_nats::jetstream::message::PublishMessage::build()
            .payload(serde_json::to_vec(&envelope).unwrap().into())
            .message_id(envelope.message_id())
            .header(
                brigade_nats::consumer::AGGREGATE_ID_HEADER,
                envelope.aggregate_id.as_str(),
            );
        self.bus
            .jetstream
            .send_publish(subject, message)
            .await
            .unwrap()
            .await
            .unwrap();
    }

    /// The orders service's `OrderPlaced` for a new order of `customer`, to the given door.
    pub async fn place_order(&self, order_id: Uuid, customer: Uuid) {
        let event = OrderEvent::OrderPlaced {
            order_id,
            customer_id: customer,
            lines: Vec::new(),
            delivery_address: Address {
                street: "1 Rue de Rivoli".into(),
                city: "Paris".into(),
                postal_code: "75004".into(),
                lat: Some(RESTAURANT.0 + 0.01),
                lon: Some(RESTAURANT.1),
            },
            contact_phone: Some("+33 1 23 45 67 89".into()),
            total: Money::eur(2450),
            placed_at: Utc::now(),
            allergies: Vec::new(),
            scheduled_for: None,
        };
        let payload = serde_json::to_value(&event).unwrap();
        self.publish("orders", "order", order_id, 1, &event.event_type(), payload)
            .await;
    }

    /// The orders service's `OrderCancelled`, as the order's `sequence`-th event.
    pub async fn cancel_order(&self, order_id: Uuid, sequence: i64) {
        let event = OrderEvent::OrderCancelled {
            by: brigade_domain::Actor::System,
            reason: None,
            at: Utc::now(),
        };
        let payload = serde_json::to_value(&event).unwrap();
        self.publish(
            "orders",
            "order",
            order_id,
            sequence,
            &event.event_type(),
            payload,
        )
        .await;
    }

    /// The kitchen's `TicketReady` for an order.
    pub async fn ticket_ready(&self, order_id: Uuid) {
        let event = TicketEvent::TicketReady { at: Utc::now() };
        let payload = serde_json::to_value(&event).unwrap();
        self.publish(
            "kitchen",
            "ticket",
            order_id,
            1,
            &event.event_type(),
            payload,
        )
        .await;
    }

    /// The kitchen's `TicketEstimated`: the food of `order_id` expected ready at `ready_at`.
    pub async fn ticket_estimated(
        &self,
        order_id: Uuid,
        sequence: i64,
        ready_at: chrono::DateTime<Utc>,
    ) {
        let event = brigade_domain::kitchen::EstimateEvent::TicketEstimated {
            order_id,
            ready_at,
            at: Utc::now(),
        };
        let payload = serde_json::to_value(&event).unwrap();
        self.publish(
            "kitchen",
            "estimate",
            order_id,
            sequence,
            &event.event_type(),
            payload,
        )
        .await;
    }

    /// A delivery as the manager sees it now, if it exists.
    pub async fn delivery(&self, order_id: Uuid) -> Option<Value> {
        let response = self
            .get(&format!("/deliveries/{order_id}"), &self.manager)
            .await;
        (response.status() == StatusCode::OK).then_some(response.json().await.unwrap())
    }

    /// Waits until the delivery's read model says `status`.
    pub async fn delivery_in(&self, order_id: Uuid, status: &str) -> Value {
        eventually(&format!("delivery {order_id} {status}"), || async {
            self.delivery(order_id)
                .await
                .filter(|d| d["status"] == status)
        })
        .await
    }

    /// A new order, placed then cooked: its delivery is ready for pickup. Returns (order, customer).
    pub async fn ready_delivery(&self) -> (Uuid, Uuid) {
        let (order_id, customer) = (Uuid::new_v4(), Uuid::new_v4());
        self.place_order(order_id, customer).await;
        self.delivery_in(order_id, "requested").await;
        self.ticket_ready(order_id).await;
        self.delivery_in(order_id, "ready_for_pickup").await;
        (order_id, customer)
    }

    /// Hires a courier with a sign-in account; returns their id (= account id) and token.
    pub async fn hire_courier(&self, name: &str) -> (Uuid, String) {
        let account = Uuid::new_v4();
        let response = self
            .post(
                "/couriers",
                &self.manager,
                json!({"name": name, "vehicle": "bike", "accountId": account}),
            )
            .await;
        assert_eq!(
            response.status(),
            StatusCode::CREATED,
            "{}",
            response.text().await.unwrap()
        );
        (account, self.token(account, Role::Courier))
    }

    /// A courier on shift at `km_north` kilometres north of the restaurant, as dispatch sees it.
    pub async fn courier_on_shift(&self, name: &str, km_north: f64) -> (Uuid, String) {
        let (courier, token) = self.hire_courier(name).await;
        let response = self
            .post("/couriers/me/shift", &token, json!({"onShift": true}))
            .await;
        assert_eq!(response.status(), StatusCode::OK);
        let response = self
            .post(
                "/couriers/me/position",
                &token,
                json!({"lat": RESTAURANT.0 + km_north / 111.2, "lon": RESTAURANT.1}),
            )
            .await;
        assert_eq!(response.status(), StatusCode::OK);
        eventually("courier on shift in the fleet", || async {
            let fleet: Value = self
                .get(&format!("/couriers/{courier}"), &self.manager)
                .await
                .json()
                .await
                .ok()?;
            (fleet["onShift"] == true).then_some(())
        })
        .await;
        (courier, token)
    }

    /// How many events the delivery of `order_id` has in the event store.
    pub async fn stored_events(&self, order_id: Uuid) -> i64 {
        sqlx::query_scalar(
            "SELECT count(*) FROM events WHERE aggregate_type = 'delivery' AND aggregate_id = $1",
        )
        .bind(order_id.to_string())
        .fetch_one(&self.pool)
        .await
        .unwrap()
    }

    /// Drops the test's database and streams (a failed test leaves them for inspection).
    pub async fn cleanup(self) {
        self.pool.close().await;
        for service in brigade_nats::bus::SERVICES {
            let _ = self
                .bus
                .jetstream
                .delete_stream(self.settings.namespace.stream(service))
                .await;
        }
        if let Ok(admin) =
            PgPool::connect(&format!("{}/postgres", self.settings.database_url)).await
        {
            let name = self.settings.database_name(ServiceName::Delivery);
            let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
                .execute(&admin)
                .await;
        }
    }
}

/// The default configuration at the tests' restaurant, with every delay short.
pub fn test_config() -> DeliveryConfig {
    DeliveryConfig {
        restaurant: brigade_delivery::geo::GeoPoint {
            lat: RESTAURANT.0,
            lon: RESTAURANT.1,
        },
        auto_dispatch: true,
        dispatch_interval: Duration::from_millis(500),
        waiting_alert: Duration::from_secs(1),
        webhook_interval: Duration::from_millis(100),
        webhook_retry_base: Duration::from_millis(200),
        webhook_max_attempts: 3,
        dispatch_lead: Duration::from_secs(5 * 60),
        smtp: None,
        email_interval: Duration::from_millis(100),
        email_retry_base: Duration::from_millis(200),
        email_max_attempts: 3,
        route_batch: 3,
    }
}

/// Polls `probe` until it yields a value (15 s at most).
pub async fn eventually<T, F, Fut>(what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Reads the problem+json `type` code of a response.
pub async fn problem_code(response: Response) -> String {
    let body: Value = response.json().await.unwrap();
    body["type"]
        .as_str()
        .unwrap_or_default()
        .trim_start_matches("https://brigade.dev/errors/")
        .to_owned()
}

/// Waits for the service to answer, failing with its error if it stopped instead. Start-up
/// creates a database and its schema: slow when many tests start at once on two cores.
async fn wait_until_live(
    client: &reqwest::Client,
    base: &str,
    service: &tokio::task::JoinHandle<()>,
) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    loop {
        assert!(
            !service.is_finished(),
            "the service stopped during start-up (its error is printed above)"
        );
        if let Ok(response) = client.get(format!("{base}/health/live")).send().await {
            if response.status().is_success() {
                return;
            }
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the service did not start within 90 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
