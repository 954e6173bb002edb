//! Stand-ins for the four services, each on a local port, that answer as API.md says and
//! record what the gateway sent them. Only what the gateway's black-box tests need; a service
//! left out of [`Fakes::start`] is "down" (its port refuses connections).
#![allow(dead_code, clippy::unwrap_used)]

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use brigade_gateway::GatewayConfig;
use brigade_platform::testing::free_port;
use poem::http::StatusCode;
use poem::listener::{Acceptor, Listener, TcpListener};
use poem::web::sse::{Event, SSE};
use poem::web::{Data, Json, Path};
use poem::{get, handler, post, EndpointExt, IntoResponse, Request, Response, Route, Server};
use serde_json::{json, Value};
use uuid::Uuid;

pub const ORDER_ID: &str = "7a1c2e9e-5b1f-4f8e-9d5a-2c6f0e4b8a11";
pub const CUSTOMER_ID: &str = "11111111-2222-4333-8444-555555555555";
pub const DISH_ID: &str = "0b9c4f5e-1d2a-4c3b-8e7f-6a5b4c3d2e1f";
/// The session bucket of the gateway's black-box tests.
pub const SESSIONS_BUCKET: &str = "TESTS_GATEWAY_SESSIONS";

/// One request as a fake service received it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub authorization: Option<String>,
    pub cookie: Option<String>,
    pub idempotency_key: Option<String>,
    pub traceparent: Option<String>,
    pub forwarded_for: Option<String>,
    pub body: String,
}

/// What the fakes saw, and how they behave.
#[derive(Default)]
pub struct Log {
    pub seen: Mutex<Vec<Seen>>,
    /// Lifetime of the access tokens identity hands out.
    pub expires_in: AtomicU32,
    /// Refreshes identity has answered.
    pub refreshes: AtomicU32,
    /// `GET /flaky` answers 503 this many times before 200.
    pub flaky_failures: AtomicU32,
    /// `GET /menu/ready-time` quotes a full kitchen (next free slot at 13:00).
    pub kitchen_full: AtomicBool,
}

impl Log {
    pub fn seen(&self, path: &str) -> Vec<Seen> {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .filter(|s| s.path == path)
            .cloned()
            .collect()
    }
}

pub struct Fakes {
    pub log: Arc<Log>,
    pub urls: [String; 4],
}

async fn serve(app: impl poem::Endpoint + 'static) -> String {
    let acceptor = TcpListener::bind("127.0.0.1:0")
        .into_acceptor()
        .await
        .unwrap();
    let port = acceptor.local_addr()[0].as_socket_addr().unwrap().port();
    tokio::spawn(Server::new_with_acceptor(acceptor).run(app));
    format!("http://127.0.0.1:{port}")
}

fn record(log: &Log, request: &Request, body: &str) {
    let header = |name: &str| {
        request
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(ToOwned::to_owned)
    };
    log.seen.lock().unwrap().push(Seen {
        method: request.method().to_string(),
        path: request.uri().path().to_owned(),
        authorization: header("authorization"),
        cookie: header("cookie"),
        idempotency_key: header("idempotency-key"),
        traceparent: header("traceparent"),
        forwarded_for: header("x-forwarded-for"),
        body: body.to_owned(),
    });
}

fn problem(status: StatusCode, code: &str) -> Response {
    let body = json!({ "type": format!("https://brigade.dev/errors/{code}"), "title": code, "status": status.as_u16(), "detail": code });
    let mut response = Json(body).into_response();
    response.set_status(status);
    response
}

fn bearer_ok(request: &Request) -> bool {
    request
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("Bearer access-"))
}

#[handler]
async fn login(request: &Request, log: Data<&Arc<Log>>, body: Json<Value>) -> Response {
    record(&log, request, &body.0.to_string());
    if body.0["password"] != "right password" {
        return problem(StatusCode::UNAUTHORIZED, "invalid-credentials");
    }
    let email = body.0["email"].as_str().unwrap_or_default().to_owned();
    let role = email
        .split('@')
        .next()
        .filter(|r| ["chef", "courier", "manager"].contains(r))
        .unwrap_or("customer");
    Json(json!({
        "accessToken": "access-0",
        "refreshToken": "refresh-0",
        "expiresIn": log.expires_in.load(Ordering::SeqCst),
        "tokenType": "Bearer",
        "account": { "id": CUSTOMER_ID, "email": email, "name": "Camille", "role": role },
    }))
    .into_response()
}

#[handler]
async fn refresh(request: &Request, log: Data<&Arc<Log>>, body: Json<Value>) -> Response {
    record(&log, request, &body.0.to_string());
    // Slow enough that concurrent requests would each refresh if the gateway did not wait for
    // the one refresh in flight.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let n = log.refreshes.fetch_add(1, Ordering::SeqCst) + 1;
    if body.0["refreshToken"] != format!("refresh-{}", n - 1) {
        return problem(StatusCode::UNAUTHORIZED, "refresh-token-reused");
    }
    Json(json!({
        "accessToken": format!("access-{n}"),
        "refreshToken": format!("refresh-{n}"),
        "expiresIn": 900,
        "tokenType": "Bearer",
        "account": { "id": CUSTOMER_ID, "email": "camille@brigade.test", "name": "Camille", "role": "customer" },
    }))
    .into_response()
}

#[handler]
async fn logout(request: &Request, log: Data<&Arc<Log>>, body: String) -> StatusCode {
    record(&log, request, &body);
    StatusCode::NO_CONTENT
}

#[handler]
async fn register(request: &Request, log: Data<&Arc<Log>>, body: Json<Value>) -> Response {
    record(&log, request, &body.0.to_string());
    if body.0["email"] == "taken@brigade.test" {
        return problem(StatusCode::CONFLICT, "email-already-registered");
    }
    let mut response = Json(json!({ "accountId": Uuid::new_v4() })).into_response();
    response.set_status(StatusCode::CREATED);
    response
}

#[handler]
async fn me(request: &Request, log: Data<&Arc<Log>>) -> Response {
    record(&log, request, "");
    if !bearer_ok(request) {
        return problem(StatusCode::UNAUTHORIZED, "unauthorized");
    }
    Json(json!({ "id": CUSTOMER_ID, "email": "camille@brigade.test", "name": "Camille", "phone": "+33 6 12 34 56 78",
        "role": "customer", "addresses": [{ "id": Uuid::new_v4(), "street": "12 rue de la Paix", "city": "Paris", "postalCode": "75002" }],
        "allergens": ["milk"], "diets": ["vegetarian"] }))
    .into_response()
}

#[handler]
fn menu() -> Json<Value> {
    Json(json!({ "categories": [
        { "name": "Plats", "dishes": [
            { "id": DISH_ID, "name": "Bœuf bourguignon", "description": "Paleron mijoté au vin rouge", "category": "Plats",
              "price": { "amount": 2250, "currency": "EUR" }, "allergens": ["milk", "celery"], "available": true,
              "station": "stove", "prepMinutes": 15 },
        ]},
        { "name": "Desserts", "dishes": [
            { "id": Uuid::new_v4(), "name": "Crème brûlée", "description": "Vanille de Madagascar", "category": "Desserts",
              "price": { "amount": 850, "currency": "EUR" }, "allergens": ["milk", "eggs"], "available": false,
              "station": "pastry", "prepMinutes": 5 },
        ]},
    ]}))
}

#[handler]
async fn ready_time(request: &Request, log: Data<&Arc<Log>>) -> Json<Value> {
    record(&log, request, "");
    let full = log.kitchen_full.load(Ordering::SeqCst);
    Json(json!({
        "readyAt": if full { "2025-03-14T13:00:00Z" } else { "2025-03-14T12:45:00Z" },
        "earliestAt": "2025-03-14T12:45:00Z", "slotStart": "2025-03-14T12:45:00Z", "slotEnd": "2025-03-14T13:00:00Z",
        "booked": if full { 4 } else { 1 }, "ticketsPerSlot": 4, "full": full,
    }))
}

fn order_json(status: &str) -> Value {
    json!({
        "orderId": ORDER_ID, "customerId": CUSTOMER_ID, "status": status,
        "items": [{ "dishId": DISH_ID, "name": "Bœuf bourguignon", "unitPrice": { "amount": 2250, "currency": "EUR" },
                    "quantity": 2, "note": "sans oignons", "lineTotal": { "amount": 4500, "currency": "EUR" } }],
        "total": { "amount": 4500, "currency": "EUR" },
        "deliveryAddress": { "street": "12 rue de la Paix", "city": "Paris", "postalCode": "75002" },
        "placedAt": "2025-03-14T18:05:00Z",
        "scheduledFor": "2025-03-14T19:30:00Z",
        "history": [
            { "status": "placed", "at": "2025-03-14T18:05:00Z" },
            { "status": "accepted", "at": "2025-03-14T18:05:02Z" },
            { "status": "in_preparation", "at": "2025-03-14T18:07:00Z" },
        ],
        "version": 3,
    })
}

#[handler]
async fn place_order(request: &Request, log: Data<&Arc<Log>>, body: String) -> Response {
    record(&log, request, &body);
    if !bearer_ok(request) {
        return problem(StatusCode::UNAUTHORIZED, "unauthorized");
    }
    let mut response = Json(json!({ "orderId": ORDER_ID, "status": "placed", "total": { "amount": 4500, "currency": "EUR" } })).into_response();
    response.set_status(StatusCode::CREATED);
    response
}

#[handler]
async fn order(request: &Request, log: Data<&Arc<Log>>, Path(id): Path<String>) -> Response {
    record(&log, request, "");
    if !bearer_ok(request) {
        return problem(StatusCode::UNAUTHORIZED, "unauthorized");
    }
    if id != ORDER_ID {
        return problem(StatusCode::NOT_FOUND, "order-not-found");
    }
    Json(order_json("in_preparation")).into_response()
}

#[handler]
async fn order_stream(request: &Request, log: Data<&Arc<Log>>) -> Response {
    record(&log, request, "");
    if !bearer_ok(request) {
        return problem(StatusCode::UNAUTHORIZED, "unauthorized");
    }
    // One event at once, the next much later: a relay that buffered would show neither.
    let first = futures::stream::once(async {
        Event::message(order_json("in_preparation").to_string())
            .event_type("order")
            .id("1")
    });
    let later = futures::stream::once(async {
        tokio::time::sleep(Duration::from_secs(30)).await;
        Event::message(order_json("ready").to_string())
            .event_type("order")
            .id("2")
    });
    SSE::new(futures::StreamExt::chain(first, later)).into_response()
}

#[handler]
async fn flaky(request: &Request, log: Data<&Arc<Log>>) -> Response {
    record(&log, request, "");
    let left = log.flaky_failures.load(Ordering::SeqCst);
    if left > 0 {
        log.flaky_failures.store(left - 1, Ordering::SeqCst);
        return problem(StatusCode::SERVICE_UNAVAILABLE, "service-unavailable");
    }
    Json(json!({ "ok": true })).into_response()
}

#[handler]
async fn echo(request: &Request, log: Data<&Arc<Log>>, body: String) -> Response {
    record(&log, request, &body);
    Json(json!({ "ok": true })).into_response()
}

#[handler]
async fn tickets(request: &Request, log: Data<&Arc<Log>>) -> Response {
    record(&log, request, "");
    if !bearer_ok(request) {
        return problem(StatusCode::UNAUTHORIZED, "unauthorized");
    }
    Json(json!([{ "orderId": ORDER_ID, "placedAt": "2025-03-14T18:05:00Z", "status": "open", "version": 2,
        "allergies": ["peanuts", "milk"],
        "items": [{ "index": 0, "dishId": DISH_ID, "dishName": "Bœuf bourguignon", "quantity": 2, "note": "sans oignons", "status": "pending" }] }]))
    .into_response()
}

impl Fakes {
    /// Starts identity, orders and kitchen; delivery is down unless `with_delivery`.
    pub async fn start(with_delivery: bool) -> Self {
        let log = Arc::new(Log::default());
        log.expires_in.store(900, Ordering::SeqCst);
        let identity = Route::new()
            .at("/auth/login", post(login))
            .at("/auth/refresh", post(refresh))
            .at("/auth/logout", post(logout))
            .at("/auth/register", post(register))
            .at("/me", get(me).patch(echo))
            .data(log.clone());
        let orders = Route::new()
            .at("/menu", get(menu))
            .at("/menu/ready-time", get(ready_time))
            .at("/orders", post(place_order))
            .at("/orders/:id", get(order))
            .at("/orders/:id/stream", get(order_stream))
            .at("/orders/:id/cancel", post(echo))
            .at("/flaky", get(flaky).post(flaky))
            .data(log.clone());
        let kitchen = Route::new().at("/tickets", get(tickets)).data(log.clone());
        let delivery = Route::new()
            .at("/deliveries/:id", get(echo))
            .data(log.clone());
        let identity = serve(identity).await;
        let orders = serve(orders).await;
        let kitchen = serve(kitchen).await;
        let delivery = if with_delivery {
            serve(delivery).await
        } else {
            format!("http://127.0.0.1:{}", free_port())
        };
        Self {
            log,
            urls: [identity, orders, kitchen, delivery],
        }
    }

    /// A gateway configuration pointing at these fakes, with short timeouts.
    pub fn config(&self, tls: bool) -> GatewayConfig {
        let mut config = GatewayConfig::local(([127, 0, 0, 1], free_port()).into());
        config.services = self.urls.clone();
        config.tls = tls;
        config.connect_timeout = Duration::from_millis(300);
        config.call_timeout = Duration::from_secs(3);
        config.retry_base_delay = Duration::from_millis(10);
        config.breaker_failures = 3;
        config.breaker_cool_down = Duration::from_secs(60);
        // Sessions in the machine's NATS, in a bucket of the tests' own whose entries (random
        // keys, so tests never meet) go away within the hour.
        config.sessions.bucket = SESSIONS_BUCKET.to_owned();
        config.sessions.lifetime = Duration::from_secs(3600);
        config
    }
}
