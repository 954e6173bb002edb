//! The chaos suite (issue 9): a steady stream of orders driven through the kitchen and the
//! delivery by simulated customers, chefs and couriers, while at random moments each service
//! process is SIGKILLed and restarted (at least three times each), NATS is restarted, and the
//! network between the services and PostgreSQL or NATS is disturbed by a TCP fault proxy
//! written here (all connections dropped, latency, connections refused for a few seconds — what
//! a PostgreSQL restart looks like from the services).
//!
//! At the end, from each service's event store and read models: every accepted order reached
//! a final state, none is lost, none was applied twice, each order's events are in order in
//! every service, every read model equals a rebuild from the events, no dead letters, the
//! outboxes are drained. A summary table is printed.
//!
//! CI runs ~150 orders (under three minutes on two cores). The full run:
//! `BRIGADE_CHAOS_ORDERS=10000 cargo test --release -p brigade --test chaos -- --nocapture`
//! (`BRIGADE_CHAOS_RATE`: orders per second; `BRIGADE_CHAOS_SEED`: replay a run's faults).
#![allow(clippy::unwrap_used, clippy::too_many_lines)]

mod support;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use reqwest::Method;
use serde_json::{json, Value};
use sqlx::PgPool;
use support::{
    Options, PrivateNats, System, MANAGER_EMAIL, MANAGER_PASSWORD, ORDER_STEPS, SERVICES,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, RwLock};
use uuid::Uuid;

// --- the fault proxy -------------------------------------------------------------------------

/// What the proxy does to traffic now.
struct ProxyControl {
    /// Added before every chunk forwarded, in milliseconds.
    latency_ms: AtomicU64,
    /// New connections are closed at once.
    refusing: AtomicBool,
    /// Bumped to drop every open connection.
    cut: watch::Sender<u64>,
    connections: AtomicU64,
}

/// A TCP proxy between the services and PostgreSQL or NATS that can drop every connection,
/// add latency, or refuse connections.
struct FaultProxy {
    port: u16,
    control: Arc<ProxyControl>,
}

impl FaultProxy {
    async fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let control = Arc::new(ProxyControl {
            latency_ms: AtomicU64::new(0),
            refusing: AtomicBool::new(false),
            cut: watch::channel(0).0,
            connections: AtomicU64::new(0),
        });
        let shared = control.clone();
        tokio::spawn(async move {
            while let Ok((inbound, _)) = listener.accept().await {
                if shared.refusing.load(Ordering::SeqCst) {
                    drop(inbound);
                    continue;
                }
                shared.connections.fetch_add(1, Ordering::Relaxed);
                let control = shared.clone();
                let mut cut = shared.cut.subscribe();
                tokio::spawn(async move {
                    let Ok(outbound) = TcpStream::connect(upstream).await else {
                        return;
                    };
                    let _ = inbound.set_nodelay(true);
                    let _ = outbound.set_nodelay(true);
                    let (from_client, to_client) = inbound.into_split();
                    let (from_server, to_server) = outbound.into_split();
                    tokio::select! {
                        () = pump(from_client, to_server, &control) => {}
                        () = pump(from_server, to_client, &control) => {}
                        _ = cut.changed() => {}
                    }
                });
            }
        });
        Self { port, control }
    }

    fn cut_all(&self) {
        self.control.cut.send_modify(|generation| *generation += 1);
    }

    fn latency(&self, millis: u64) {
        self.control.latency_ms.store(millis, Ordering::SeqCst);
    }

    fn refuse(&self, refusing: bool) {
        self.control.refusing.store(refusing, Ordering::SeqCst);
        if refusing {
            self.cut_all();
        }
    }
}

async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    control: &ProxyControl,
) {
    let mut buffer = vec![0_u8; 32 * 1024];
    loop {
        let n = match from.read(&mut buffer).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        let latency = control.latency_ms.load(Ordering::Relaxed);
        if latency > 0 {
            tokio::time::sleep(Duration::from_millis(latency)).await;
        }
        if to.write_all(&buffer[..n]).await.is_err() {
            return;
        }
    }
}

// --- the simulated people --------------------------------------------------------------------

/// The services' addresses and an HTTP client, shared by the simulated people (the fault
/// driver alone holds the processes).
#[derive(Clone)]
struct Api {
    http: reqwest::Client,
    base: Arc<HashMap<&'static str, String>>,
}

impl Api {
    async fn call(
        &self,
        method: Method,
        service: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
        headers: &[(&str, &str)],
    ) -> Option<(u16, Value)> {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base[service]));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.ok()?;
        let status = response.status().as_u16();
        let text = response.text().await.ok()?;
        Some((status, serde_json::from_str(&text).unwrap_or(Value::Null)))
    }
}

/// Someone signed in, who signs in again when their token is refused (expired after 15
/// minutes in a long run, or keys not reachable for a moment).
struct Person {
    email: String,
    password: String,
    token: RwLock<String>,
}

impl Person {
    async fn sign_in(api: &Api, email: &str, password: &str) -> Option<String> {
        let body = json!({"email": email, "password": password});
        let (status, body) = api
            .call(
                Method::POST,
                "identity",
                "/auth/login",
                None,
                Some(&body),
                &[],
            )
            .await?;
        (status == 200).then(|| body["accessToken"].as_str().unwrap().to_owned())
    }

    async fn new(api: &Api, email: &str, password: &str) -> Arc<Self> {
        let token = Self::sign_in(api, email, password).await.unwrap();
        Arc::new(Self {
            email: email.to_owned(),
            password: password.to_owned(),
            token: RwLock::new(token),
        })
    }

    /// Calls as this person; `None` when the service cannot be reached (down, restarting).
    async fn call(
        &self,
        api: &Api,
        method: Method,
        service: &str,
        path: &str,
        body: Option<&Value>,
        headers: &[(&str, &str)],
    ) -> Option<(u16, Value)> {
        let token = self.token.read().await.clone();
        let answer = api
            .call(method, service, path, Some(&token), body, headers)
            .await;
        if matches!(answer, Some((401, _))) {
            if let Some(token) = Self::sign_in(api, &self.email, &self.password).await {
                *self.token.write().await = token;
            }
        }
        answer
    }
}

/// What the simulated people share with the test.
struct World {
    api: Api,
    stop: AtomicBool,
    /// Orders the chefs reject instead of cooking.
    to_reject: Mutex<HashSet<Uuid>>,
    /// Every order a customer was told was placed (201), with when.
    accepted: Mutex<Vec<(Uuid, Instant)>>,
    /// Failed attempts (service down, 5xx) that were retried, by kind.
    retries: Mutex<BTreeMap<&'static str, u64>>,
    /// Requests refused for a reason that is a bug here (4xx on a valid request).
    refused: Mutex<Vec<String>>,
    cancelled_ok: AtomicUsize,
    cancel_too_late: AtomicUsize,
}

impl World {
    fn retried(&self, kind: &'static str) {
        *self.retries.lock().unwrap().entry(kind).or_default() += 1;
    }
}

const ADDRESS: &str = r#"{"street": "10 rue de Rivoli", "city": "Paris", "postalCode": "75004", "lat": 48.8556, "lon": 2.3601}"#;

/// Places one order the way a careful client does: the same `Idempotency-Key` on every retry
/// until the service answers 201.
async fn place(world: &World, customer: &Person, dishes: &[String], n: usize) -> Uuid {
    let key = Uuid::new_v4().to_string();
    let mut items = vec![json!({"dishId": dishes[n % dishes.len()], "quantity": 1 + n % 2})];
    if n.is_multiple_of(3) {
        items.push(json!({"dishId": dishes[(n + 1) % dishes.len()], "quantity": 1, "note": format!("commande {n}")}));
    }
    let body =
        json!({"items": items, "deliveryAddress": serde_json::from_str::<Value>(ADDRESS).unwrap()});
    let started = Instant::now();
    loop {
        match customer
            .call(
                &world.api,
                Method::POST,
                "orders",
                "/orders",
                Some(&body),
                &[("Idempotency-Key", &key)],
            )
            .await
        {
            Some((201, placed)) => {
                let id: Uuid = placed["orderId"].as_str().unwrap().parse().unwrap();
                world.accepted.lock().unwrap().push((id, Instant::now()));
                return id;
            }
            Some((status, answer))
                if (400..500).contains(&status) && status != 401 && status != 429 =>
            {
                world
                    .refused
                    .lock()
                    .unwrap()
                    .push(format!("POST /orders {status}: {answer}"));
                world.retried("place order (refused)");
            }
            _ => world.retried("place order"),
        }
        assert!(
            started.elapsed() < Duration::from_secs(180),
            "an order could not be placed for three minutes"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The customer changes their mind at once: cancelled, or too late (cooking started).
async fn cancel(world: &World, customer: &Person, order: Uuid) {
    let path = format!("/orders/{order}/cancel");
    let body = json!({"reason": "changement de programme"});
    for _ in 0..600 {
        match customer
            .call(&world.api, Method::POST, "orders", &path, Some(&body), &[])
            .await
        {
            Some((200, _)) => {
                world.cancelled_ok.fetch_add(1, Ordering::Relaxed);
                return;
            }
            Some((409, _)) => {
                world.cancel_too_late.fetch_add(1, Ordering::Relaxed);
                return;
            }
            _ => world.retried("cancel"),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A chef: takes their share of the open tickets, cooks them (bump, sometimes item by item
/// first), or rejects the ones marked for rejection.
async fn chef(world: Arc<World>, chef: Arc<Person>, index: u128, chefs: u128) {
    while !world.stop.load(Ordering::Relaxed) {
        let Some((200, tickets)) = chef
            .call(&world.api, Method::GET, "kitchen", "/tickets", None, &[])
            .await
        else {
            world.retried("chef: list tickets");
            tokio::time::sleep(Duration::from_millis(300)).await;
            continue;
        };
        for ticket in tickets.as_array().cloned().unwrap_or_default() {
            let Some(order) = ticket["orderId"]
                .as_str()
                .and_then(|s| s.parse::<Uuid>().ok())
            else {
                continue;
            };
            if order.as_u128() % chefs != index || world.stop.load(Ordering::Relaxed) {
                continue;
            }
            let reject = world.to_reject.lock().unwrap().contains(&order);
            let answer = if reject {
                let body = json!({"reason": "plus de saumon"});
                chef.call(
                    &world.api,
                    Method::POST,
                    "kitchen",
                    &format!("/tickets/{order}/reject"),
                    Some(&body),
                    &[],
                )
                .await
            } else {
                if order.as_u128().is_multiple_of(3) && ticket["items"][0]["status"] == "pending" {
                    let _ = chef
                        .call(
                            &world.api,
                            Method::POST,
                            "kitchen",
                            &format!("/tickets/{order}/items/0/start"),
                            Some(&json!({})),
                            &[],
                        )
                        .await;
                }
                chef.call(
                    &world.api,
                    Method::POST,
                    "kitchen",
                    &format!("/tickets/{order}/bump"),
                    Some(&json!({})),
                    &[],
                )
                .await
            };
            if !matches!(answer, Some((200 | 409, _))) {
                world.retried("chef: cook or reject");
            }
        }
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
}

/// A courier: picks up what dispatch assigned them, and delivers it.
async fn courier(world: Arc<World>, courier: Arc<Person>) {
    while !world.stop.load(Ordering::Relaxed) {
        let Some((200, deliveries)) = courier
            .call(
                &world.api,
                Method::GET,
                "delivery",
                "/deliveries",
                None,
                &[],
            )
            .await
        else {
            world.retried("courier: list deliveries");
            tokio::time::sleep(Duration::from_millis(300)).await;
            continue;
        };
        for delivery in deliveries.as_array().cloned().unwrap_or_default() {
            let order = delivery["orderId"].as_str().unwrap_or_default().to_owned();
            let action = match delivery["status"].as_str() {
                Some("assigned") => "pickup",
                Some("picked_up") => "deliver",
                _ => continue,
            };
            let body = if action == "deliver" {
                json!({"receivedBy": "le client"})
            } else {
                json!({})
            };
            let answer = courier
                .call(
                    &world.api,
                    Method::POST,
                    "delivery",
                    &format!("/deliveries/{order}/{action}"),
                    Some(&body),
                    &[],
                )
                .await;
            if !matches!(answer, Some((200 | 409, _))) {
                world.retried("courier: pickup or deliver");
            }
        }
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
}

// --- faults ----------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Fault {
    Kill(&'static str),
    NatsRestart,
    DatabaseCut,
    DatabaseDown,
    DatabaseLatency,
    NatsCut,
    NatsLatency,
}

impl Fault {
    fn name(self) -> String {
        match self {
            Fault::Kill(service) => format!("SIGKILL {service}"),
            Fault::NatsRestart => "NATS restart".to_owned(),
            Fault::DatabaseCut => "PostgreSQL: every connection dropped".to_owned(),
            Fault::DatabaseDown => "PostgreSQL: refused for 2-4 s".to_owned(),
            Fault::DatabaseLatency => "PostgreSQL: latency for 3 s".to_owned(),
            Fault::NatsCut => "NATS: every connection dropped".to_owned(),
            Fault::NatsLatency => "NATS: latency for 3 s".to_owned(),
        }
    }
}

/// One cycle of faults, in random order: every service killed once, and each network fault.
fn cycle(rng: &mut StdRng, with_network: bool) -> Vec<Fault> {
    let mut faults: Vec<Fault> = SERVICES.iter().map(|s| Fault::Kill(s)).collect();
    if with_network {
        faults.extend([
            Fault::NatsRestart,
            Fault::DatabaseCut,
            Fault::DatabaseDown,
            Fault::DatabaseLatency,
            Fault::NatsCut,
            Fault::NatsLatency,
        ]);
    } else {
        faults.push(Fault::NatsRestart);
    }
    faults.shuffle(rng);
    faults
}

/// `brigade_consumer_messages_total` by outcome, summed over a service's consumers.
fn consumer_counts(metrics: &str) -> BTreeMap<String, u64> {
    let mut counts = BTreeMap::new();
    for line in metrics.lines() {
        let Some(rest) = line.strip_prefix("brigade_consumer_messages_total{") else {
            continue;
        };
        let Some((labels, value)) = rest.split_once("} ") else {
            continue;
        };
        let outcome = labels
            .split(',')
            .find_map(|l| l.strip_prefix("outcome=\""))
            .map(|o| o.trim_end_matches('"').to_owned());
        if let (Some(outcome), Ok(value)) = (outcome, value.trim().parse::<u64>()) {
            *counts.entry(outcome).or_default() += value;
        }
    }
    counts
}

async fn scrape(api: &Api, service: &str, into: &mut BTreeMap<String, u64>) {
    if let Ok(response) = api
        .http
        .get(format!("{}/metrics", api.base[service]))
        .timeout(Duration::from_secs(3))
        .send()
        .await
    {
        if let Ok(text) = response.text().await {
            for (outcome, value) in consumer_counts(&text) {
                *into.entry(outcome).or_default() += value;
            }
        }
    }
}

/// Time from the end of a fault until the system works end to end again: every service ready,
/// and a new order placed now reaches the kitchen (orders → outbox → NATS → kitchen).
async fn recovery(
    world: &World,
    system: &System,
    canary: &Person,
    chef: &Person,
    dishes: &[String],
    limit: Duration,
) -> Duration {
    let started = Instant::now();
    for service in SERVICES {
        while !matches!(
            world
                .api
                .call(Method::GET, service, "/health/ready", None, None, &[])
                .await,
            Some((200, _))
        ) {
            assert!(
                started.elapsed() < limit,
                "{service} not ready again; see {}",
                system.log_file(service).display()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let order = place(world, canary, dishes, 1).await;
    let path = format!("/tickets/{order}");
    while !matches!(
        chef.call(&world.api, Method::GET, "kitchen", &path, None, &[])
            .await,
        Some((200, _))
    ) {
        assert!(
            started.elapsed() < limit,
            "no order reached the kitchen within {limit:?} after a fault"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    started.elapsed()
}

// --- verification ----------------------------------------------------------------------------

/// Every event of one aggregate type in one service, by aggregate, in sequence order.
async fn histories(pool: &PgPool, aggregate_type: &str) -> HashMap<Uuid, Vec<(i64, String)>> {
    let rows: Vec<(String, i64, String)> = sqlx::query_as(
        "SELECT aggregate_id, sequence, event_type FROM events WHERE aggregate_type = $1 ORDER BY aggregate_id, sequence",
    )
    .bind(aggregate_type)
    .fetch_all(pool)
    .await
    .unwrap();
    let mut by_id: HashMap<Uuid, Vec<(i64, String)>> = HashMap::new();
    for (id, sequence, kind) in rows {
        if let Ok(id) = id.parse() {
            by_id.entry(id).or_default().push((sequence, kind));
        }
    }
    by_id
}

const ORDER_ENDS: [&str; 3] = ["OrderDelivered", "OrderCancelled", "OrderRejected"];

/// A step the order had gone past when its news came: it completes the history, after the
/// order's other events, possibly after its end.
const LATE_STEP: &str = "OrderStepRecordedLate";

/// The order's last event that moved its status.
fn order_end(events: &[(i64, String)]) -> &str {
    events
        .iter()
        .rev()
        .map(|(_, kind)| kind.as_str())
        .find(|kind| *kind != LATE_STEP)
        .unwrap_or_default()
}

/// What is wrong with one order's story in the orders service, if anything.
fn check_order(events: &[(i64, String)]) -> Option<String> {
    let sequences: Vec<i64> = events.iter().map(|(s, _)| *s).collect();
    if sequences != (1..=i64::try_from(events.len()).unwrap()).collect::<Vec<_>>() {
        return Some(format!("sequences not 1..n: {sequences:?}"));
    }
    let late = events.iter().filter(|(_, k)| k == LATE_STEP).count();
    if late > 3 {
        return Some(format!("{late} late steps, more than the kitchen's three"));
    }
    let kinds: Vec<&str> = events
        .iter()
        .map(|(_, k)| k.as_str())
        .filter(|k| *k != LATE_STEP)
        .collect();
    if kinds.first() != Some(&"OrderPlaced") {
        return Some(format!("does not start with OrderPlaced: {kinds:?}"));
    }
    let mut seen = HashSet::new();
    if let Some(twice) = kinds.iter().find(|k| !seen.insert(**k)) {
        return Some(format!("{twice} applied twice: {kinds:?}"));
    }
    let ends = kinds.iter().filter(|k| ORDER_ENDS.contains(k)).count();
    if ends != 1 || !ORDER_ENDS.contains(kinds.last().unwrap()) {
        return Some(format!("not exactly one final event, last: {kinds:?}"));
    }
    let ranks: Vec<usize> = kinds
        .iter()
        .filter_map(|k| ORDER_STEPS.iter().position(|s| s == k))
        .collect();
    if ranks.windows(2).any(|w| w[0] >= w[1]) {
        return Some(format!("steps out of order: {kinds:?}"));
    }
    None
}

/// What is wrong with one order's ticket in the kitchen, if anything. A ticket may be ready
/// and then cancelled: the customer cancelled before the orders service heard that cooking had
/// started (the kitchen's news was still on its way), and the cancellation wins.
fn check_ticket(events: &[(i64, String)], order_end: &str) -> Option<String> {
    let kinds: Vec<&str> = events.iter().map(|(_, k)| k.as_str()).collect();
    let count = |kind: &str| kinds.iter().filter(|k| **k == kind).count();
    if kinds.first() != Some(&"TicketOpened") || count("TicketOpened") != 1 {
        return Some(format!("opened twice or not first: {kinds:?}"));
    }
    for once in ["TicketReady", "TicketRejected", "TicketCancelled"] {
        if count(once) > 1 {
            return Some(format!("{once} applied twice: {kinds:?}"));
        }
    }
    let consistent = match order_end {
        "OrderDelivered" => count("TicketReady") == 1 && count("TicketCancelled") == 0,
        "OrderRejected" => count("TicketRejected") == 1 && count("TicketReady") == 0,
        _ => count("TicketCancelled") == 1 && count("TicketRejected") == 0,
    };
    if !consistent {
        return Some(format!("order ended {order_end}, ticket: {kinds:?}"));
    }
    None
}

/// What is wrong with one order's delivery, if anything.
fn check_delivery(events: &[(i64, String)], order_end: &str) -> Option<String> {
    let kinds: Vec<&str> = events.iter().map(|(_, k)| k.as_str()).collect();
    let count = |kind: &str| kinds.iter().filter(|k| **k == kind).count();
    if kinds.first() != Some(&"DeliveryRequested") || count("DeliveryRequested") != 1 {
        return Some(format!("requested twice or not first: {kinds:?}"));
    }
    for once in [
        "DeliveryReadyForPickup",
        "DeliveryPickedUp",
        "DeliveryDelivered",
        "DeliveryCancelled",
        "DeliveryFailed",
    ] {
        if count(once) > 1 {
            return Some(format!("{once} applied twice: {kinds:?}"));
        }
    }
    let position = |kind: &str| kinds.iter().position(|k| *k == kind);
    if order_end == "OrderDelivered" {
        let (Some(ready), Some(picked), Some(delivered)) = (
            position("DeliveryReadyForPickup"),
            position("DeliveryPickedUp"),
            position("DeliveryDelivered"),
        ) else {
            return Some(format!("order delivered, delivery: {kinds:?}"));
        };
        if !(ready < picked && picked < delivered) {
            return Some(format!("out of order: {kinds:?}"));
        }
    } else if count("DeliveryDelivered") != 0 {
        return Some(format!(
            "order ended {order_end} but the food was delivered: {kinds:?}"
        ));
    }
    None
}

/// The rows of a read model's tables, as text, in a stable order.
async fn snapshot(pool: &PgPool, tables: &[&str]) -> Vec<String> {
    let mut rows = Vec::new();
    for table in tables {
        let mut table_rows: Vec<String> =
            sqlx::query_scalar(&format!("SELECT to_jsonb(t)::text FROM {table} t"))
                .fetch_all(pool)
                .await
                .unwrap();
        table_rows.sort();
        rows.extend(table_rows.into_iter().map(|r| format!("{table} {r}")));
    }
    rows
}

async fn settled(system: &System) {
    let mut last = Vec::new();
    let mut stable_since = Instant::now();
    let started = Instant::now();
    loop {
        let mut now = Vec::new();
        let mut backlog = 0_i64;
        for service in SERVICES {
            let pool = system.db(service).await;
            let (events, pending): (i64, i64) = sqlx::query_as(
                "SELECT (SELECT count(*) FROM events), (SELECT count(*) FROM outbox WHERE published_at IS NULL)",
            )
            .fetch_one(&pool)
            .await
            .unwrap();
            pool.close().await;
            now.push(events);
            backlog += pending;
        }
        // The read models are compared with rebuilds next: every consumer must have applied
        // every event first (one waiting out a retry delay is not done yet).
        backlog += system
            .consumer_backlog()
            .await
            .map_or(1, |messages| i64::try_from(messages).unwrap_or(i64::MAX));
        if now != last || backlog > 0 {
            last = now;
            stable_since = Instant::now();
        } else if stable_since.elapsed() > Duration::from_secs(3) {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(300),
            "the system never settled"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

// --- the run ---------------------------------------------------------------------------------

fn env_number<T: std::str::FromStr>(name: &str) -> Option<T> {
    std::env::var(name).ok().and_then(|v| v.trim().parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn orders_survive_killed_services_nats_restarts_and_network_faults_none_lost_none_twice() {
    let planned: usize = env_number("BRIGADE_CHAOS_ORDERS").unwrap_or(150);
    let rate: f64 =
        env_number("BRIGADE_CHAOS_RATE").unwrap_or(if planned > 1000 { 8.0 } else { 3.0 });
    let seed: u64 = env_number("BRIGADE_CHAOS_SEED").unwrap_or_else(rand::random);
    let mut rng = StdRng::seed_from_u64(seed);
    println!("chaos: {planned} orders at {rate}/s, seed {seed} (BRIGADE_CHAOS_SEED={seed} replays the faults)");
    let run_started = Instant::now();

    let mut nats = PrivateNats::start().await;
    let nats_proxy = FaultProxy::start(([127, 0, 0, 1], nats.port).into()).await;
    let pg_proxy = FaultProxy::start(([127, 0, 0, 1], 5432).into()).await;
    let mut system = System::start_with(Options {
        nats_url: Some(format!("nats://127.0.0.1:{}", nats_proxy.port)),
        database_url: Some(format!("postgres://postgres@127.0.0.1:{}", pg_proxy.port)),
        env: Vec::new(),
    })
    .await;
    let api = Api {
        http: reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap(),
        base: Arc::new(SERVICES.iter().map(|s| (*s, system.url(s, ""))).collect()),
    };

    // The cast: customers, chefs, couriers on shift (more for a bigger run).
    let manager_session = system.manager().await;
    let couriers_wanted = (planned / 50).clamp(6, 30);
    let mut couriers = Vec::new();
    for n in 0..couriers_wanted {
        let session = system
            .courier_on_shift(&manager_session, &format!("Coursier{n}"))
            .await;
        couriers.push(Person::new(&api, &session.email, "mot de passe solide").await);
    }
    let mut chefs = Vec::new();
    for n in 0..3 {
        let session = system
            .staff(&manager_session, "chef", &format!("Chef{n}"))
            .await;
        chefs.push(Person::new(&api, &session.email, "mot de passe solide").await);
    }
    let mut customers = Vec::new();
    for n in 0..8 {
        let session = system.customer(&format!("Client{n}")).await;
        customers.push(Person::new(&api, &session.email, "mot de passe solide").await);
    }
    let canary = Person::new(
        &api,
        &system.customer("Canari").await.email,
        "mot de passe solide",
    )
    .await;
    let _manager = Person::new(&api, MANAGER_EMAIL, MANAGER_PASSWORD).await;
    let dishes = system.dishes(4).await;

    let world = Arc::new(World {
        api: api.clone(),
        stop: AtomicBool::new(false),
        to_reject: Mutex::new(HashSet::new()),
        accepted: Mutex::new(Vec::new()),
        retries: Mutex::new(BTreeMap::new()),
        refused: Mutex::new(Vec::new()),
        cancelled_ok: AtomicUsize::new(0),
        cancel_too_late: AtomicUsize::new(0),
    });
    let mut staff = Vec::new();
    for (index, person) in chefs.iter().enumerate() {
        staff.push(tokio::spawn(chef(
            world.clone(),
            person.clone(),
            index as u128,
            chefs.len() as u128,
        )));
    }
    for person in &couriers {
        staff.push(tokio::spawn(courier(world.clone(), person.clone())));
    }

    // The customers: order n at start + n / rate, on eight lanes; every tenth is cancelled at
    // once, every fifteenth rejected by the kitchen.
    let placing_started = Instant::now();
    let placed_count = Arc::new(AtomicUsize::new(0));
    let mut lanes = Vec::new();
    for lane in 0..8 {
        let (world, customers, dishes, placed_count) = (
            world.clone(),
            customers.clone(),
            dishes.clone(),
            placed_count.clone(),
        );
        lanes.push(tokio::spawn(async move {
            let mut n = lane;
            while n < planned {
                let due = placing_started + Duration::from_secs_f64(n as f64 / rate);
                tokio::time::sleep_until(due.into()).await;
                let customer = &customers[n % customers.len()];
                let order = place(&world, customer, &dishes, n).await;
                if n % 15 == 7 {
                    world.to_reject.lock().unwrap().insert(order);
                } else if n % 10 == 3 {
                    cancel(&world, customer, order).await;
                }
                let done = placed_count.fetch_add(1, Ordering::Relaxed) + 1;
                if planned >= 1000 && done.is_multiple_of(500) {
                    println!(
                        "chaos: {done}/{planned} orders placed ({:.0?})",
                        placing_started.elapsed()
                    );
                }
                n += 8;
            }
        }));
    }

    // The faults, one after another with random pauses, while orders flow: at least three
    // cycles (each service killed three times), and on until every order is placed.
    let mut metrics: BTreeMap<String, u64> = BTreeMap::new();
    let mut injected: BTreeMap<String, usize> = BTreeMap::new();
    let mut recoveries: Vec<(String, Duration)> = Vec::new();
    let mut cycles = 0;
    while cycles < 3 || placed_count.load(Ordering::Relaxed) < planned {
        // In CI the network faults come once (cycle 0); kills and NATS restarts every cycle.
        let network = cycles == 0 || planned >= 1000;
        for fault in cycle(&mut rng, network) {
            tokio::time::sleep(Duration::from_millis(rng.random_range(300..1200))).await;
            match fault {
                Fault::Kill(service) => {
                    scrape(&api, service, &mut metrics).await;
                    system.kill(service).await;
                    tokio::time::sleep(Duration::from_millis(rng.random_range(0..800))).await;
                    system.restart(service).await;
                }
                Fault::NatsRestart => {
                    nats.stop().await;
                    tokio::time::sleep(Duration::from_millis(rng.random_range(1000..3000))).await;
                    nats.resume().await;
                }
                Fault::DatabaseCut => pg_proxy.cut_all(),
                Fault::DatabaseDown => {
                    pg_proxy.refuse(true);
                    tokio::time::sleep(Duration::from_millis(rng.random_range(2000..4000))).await;
                    pg_proxy.refuse(false);
                }
                Fault::DatabaseLatency => {
                    pg_proxy.latency(rng.random_range(20..80));
                    tokio::time::sleep(Duration::from_secs(3)).await;
                    pg_proxy.latency(0);
                }
                Fault::NatsCut => nats_proxy.cut_all(),
                Fault::NatsLatency => {
                    nats_proxy.latency(rng.random_range(20..80));
                    tokio::time::sleep(Duration::from_secs(3)).await;
                    nats_proxy.latency(0);
                }
            }
            *injected.entry(fault.name()).or_default() += 1;
            // A big run recovers with a backlog to work through: allow it more time.
            let limit = Duration::from_secs(if planned >= 1000 { 300 } else { 120 });
            let took = recovery(&world, &system, &canary, &chefs[0], &dishes, limit).await;
            if planned >= 1000 {
                println!(
                    "chaos: {:>6.0?} {:<40} recovered in {took:.2?}",
                    run_started.elapsed(),
                    fault.name()
                );
            }
            recoveries.push((fault.name(), took));
        }
        cycles += 1;
    }
    for lane in lanes {
        lane.await.unwrap();
    }
    let faults_done = run_started.elapsed();

    // Drain: every accepted order reaches a final state in the orders service.
    let accepted: Vec<Uuid> = world
        .accepted
        .lock()
        .unwrap()
        .iter()
        .map(|(id, _)| *id)
        .collect();
    let orders_db = system.db("orders").await;
    let drain_started = Instant::now();
    let drain_limit = Duration::from_secs(if planned >= 1000 { 1200 } else { 240 });
    loop {
        let finished: i64 = sqlx::query_scalar(
            "SELECT count(DISTINCT aggregate_id) FROM events WHERE aggregate_type = 'order'
             AND event_type IN ('OrderDelivered', 'OrderCancelled', 'OrderRejected')",
        )
        .fetch_one(&orders_db)
        .await
        .unwrap();
        if finished as usize >= accepted.len() {
            break;
        }
        if drain_started.elapsed() > drain_limit {
            let all = histories(&orders_db, "order").await;
            let stuck: Vec<String> = accepted
                .iter()
                .filter(|id| {
                    all.get(id)
                        .is_none_or(|h| !ORDER_ENDS.contains(&order_end(h)))
                })
                .take(10)
                .map(|id| format!("{id}: {:?}", all.get(id)))
                .collect();
            panic!(
                "{} of {} orders never finished; e.g. {stuck:#?}",
                accepted.len() - finished as usize,
                accepted.len()
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let drained_in = drain_started.elapsed();
    world.stop.store(true, Ordering::Relaxed);
    for task in staff {
        task.await.unwrap();
    }
    settled(&system).await;
    for service in SERVICES {
        scrape(&api, service, &mut metrics).await;
    }

    // --- the verdict, from the event stores ---
    let mut problems: Vec<String> = Vec::new();
    let refused = world.refused.lock().unwrap().clone();
    problems.extend(
        refused
            .iter()
            .map(|r| format!("a valid request was refused: {r}")),
    );
    let unique: HashSet<Uuid> = accepted.iter().copied().collect();
    if unique.len() != accepted.len() {
        problems.push(format!(
            "{} placements answered with an order id given before",
            accepted.len() - unique.len()
        ));
    }
    let orders = histories(&orders_db, "order").await;
    let stored: HashSet<Uuid> = orders.keys().copied().collect();
    let lost: Vec<&Uuid> = unique.difference(&stored).collect();
    let extra: Vec<&Uuid> = stored.difference(&unique).collect();
    if !lost.is_empty() {
        problems.push(format!(
            "{} accepted orders are not in the event store: {lost:?}",
            lost.len()
        ));
    }
    if !extra.is_empty() {
        problems.push(format!(
            "{} orders in the event store that no customer was given: {extra:?}",
            extra.len()
        ));
    }
    let kitchen_db = system.db("kitchen").await;
    let delivery_db = system.db("delivery").await;
    let tickets = histories(&kitchen_db, "ticket").await;
    let deliveries = histories(&delivery_db, "delivery").await;
    let mut ends: BTreeMap<String, usize> = BTreeMap::new();
    let mut applied_twice = 0;
    for id in &unique {
        let Some(events) = orders.get(id) else {
            continue;
        };
        if let Some(problem) = check_order(events) {
            if problem.contains("twice") {
                applied_twice += 1;
            }
            problems.push(format!("order {id}: {problem}"));
            continue;
        }
        let end = order_end(events).to_owned();
        match tickets.get(id) {
            Some(ticket) => {
                if let Some(problem) = check_ticket(ticket, &end) {
                    applied_twice += usize::from(problem.contains("twice"));
                    problems.push(format!("ticket {id}: {problem}"));
                }
            }
            None => problems.push(format!("order {id} never reached the kitchen")),
        }
        match deliveries.get(id) {
            Some(delivery) => {
                if let Some(problem) = check_delivery(delivery, &end) {
                    applied_twice += usize::from(problem.contains("twice"));
                    problems.push(format!("delivery {id}: {problem}"));
                }
            }
            None => problems.push(format!("order {id} never reached the delivery service")),
        }
        *ends.entry(end).or_default() += 1;
    }
    // Read models: as the live projectors left them, and as the order's events say.
    let tracking: Vec<(Uuid, String)> =
        sqlx::query_as("SELECT order_id, status FROM order_tracking")
            .fetch_all(&orders_db)
            .await
            .unwrap();
    let status_of = |end: &str| match end {
        "OrderDelivered" => "delivered",
        "OrderCancelled" => "cancelled",
        _ => "rejected",
    };
    for (id, status) in &tracking {
        if let Some(events) = orders.get(id) {
            let end = order_end(events);
            if unique.contains(id) && status != status_of(end) {
                problems.push(format!(
                    "order_tracking says {id} is {status}, its events end with {end}"
                ));
            }
        }
    }
    // Dead letters and outboxes.
    let mut dead_letters = 0;
    let mut backlog = 0_i64;
    for service in SERVICES {
        let parked = system.dead_letters(service).await;
        dead_letters += parked.len();
        for (consumer, error) in parked.iter().take(5) {
            problems.push(format!("dead letter in {service}/{consumer}: {error}"));
        }
        let pool = system.db(service).await;
        let pending: i64 =
            sqlx::query_scalar("SELECT count(*) FROM outbox WHERE published_at IS NULL")
                .fetch_one(&pool)
                .await
                .unwrap();
        backlog += pending;
        pool.close().await;
    }
    if backlog > 0 {
        problems.push(format!("{backlog} events stored but never published"));
    }

    // Every read model equals a rebuild from the events (services stopped: nothing moves).
    for service in SERVICES {
        system.kill(service).await;
    }
    let mut specs = vec![brigade_projections::kitchen_queue::spec()];
    specs.extend(brigade_orders::projections());
    specs.extend(brigade_delivery::projections());
    let mut rebuilt = Vec::new();
    for spec in &specs {
        let pool = system.db(spec.service).await;
        let live = snapshot(&pool, spec.tables).await;
        let report = brigade_projections::rebuild::rebuild(&pool, spec, |_| {})
            .await
            .unwrap();
        let fresh = snapshot(&pool, spec.tables).await;
        pool.close().await;
        let differing: Vec<(&String, &String)> = live
            .iter()
            .zip(&fresh)
            .filter(|(a, b)| a != b)
            .take(3)
            .collect();
        let same = live == fresh;
        if !same {
            problems.push(format!(
                "read model {} differs from its rebuild ({} rows live, {} rebuilt): {differing:#?}",
                spec.name,
                live.len(),
                fresh.len()
            ));
        }
        rebuilt.push((spec.name, live.len(), report.events, same));
    }

    // --- the summary ---
    let max_recovery = recoveries
        .iter()
        .max_by_key(|(_, d)| *d)
        .cloned()
        .unwrap_or_default();
    let mean_recovery = recoveries.iter().map(|(_, d)| d.as_secs_f64()).sum::<f64>()
        / recoveries.len().max(1) as f64;
    let retries = world.retries.lock().unwrap().clone();
    println!("\n================ chaos summary (seed {seed}) ================");
    println!("{:<58} {:>12}", "orders planned", planned);
    println!(
        "{:<58} {:>12}",
        "orders accepted (with one canary per fault)",
        unique.len()
    );
    for (end, count) in &ends {
        println!("{:<58} {:>12}", format!("  final: {end}"), count);
    }
    println!(
        "{:<58} {:>12}",
        "  cancelled at once / too late to cancel",
        format!(
            "{}/{}",
            world.cancelled_ok.load(Ordering::Relaxed),
            world.cancel_too_late.load(Ordering::Relaxed)
        )
    );
    println!(
        "{:<58} {:>12}",
        "lost (accepted, not stored or not final)",
        lost.len()
            + accepted
                .len()
                .saturating_sub(ends.values().sum::<usize>() + lost.len())
    );
    println!("{:<58} {:>12}", "applied twice", applied_twice);
    println!(
        "{:<58} {:>12}",
        "faults injected",
        injected.values().sum::<usize>()
    );
    for (name, count) in &injected {
        println!("{:<58} {:>12}", format!("  {name}"), count);
    }
    println!(
        "{:<58} {:>12}",
        "consumer messages applied",
        metrics.get("applied").copied().unwrap_or(0)
    );
    println!(
        "{:<58} {:>12}",
        "redeliveries: duplicates suppressed",
        metrics.get("duplicate").copied().unwrap_or(0)
    );
    println!(
        "{:<58} {:>12}",
        "redeliveries: early, waited for predecessor",
        metrics.get("out_of_order").copied().unwrap_or(0)
    );
    println!(
        "{:<58} {:>12}",
        "redeliveries: transient failure, retried",
        metrics.get("retried").copied().unwrap_or(0)
    );
    println!(
        "{:<58} {:>12}",
        "parked in dead letters",
        metrics.get("parked").copied().unwrap_or(0)
    );
    println!(
        "{:<58} {:>12}",
        "open dead letters at the end", dead_letters
    );
    println!(
        "{:<58} {:>12}",
        "client retries (service down, 5xx)",
        retries.values().sum::<u64>()
    );
    for (kind, count) in &retries {
        println!("{:<58} {:>12}", format!("  {kind}"), count);
    }
    println!(
        "{:<58} {:>12}",
        "max recovery time",
        format!("{:.2?}", max_recovery.1)
    );
    println!("{:<58} {:>12}", "  after", max_recovery.0);
    println!(
        "{:<58} {:>12}",
        "mean recovery time",
        format!("{mean_recovery:.2}s")
    );
    for (name, rows, events, same) in &rebuilt {
        println!(
            "{:<58} {:>12}",
            format!("read model {name} == rebuild ({rows} rows, {events} events)"),
            if *same { "yes" } else { "NO" }
        );
    }
    println!(
        "{:<58} {:>12}",
        "faults phase / drain after it",
        format!("{:.0?} / {:.0?}", faults_done, drained_in)
    );
    println!(
        "{:<58} {:>12}",
        "proxy connections (PostgreSQL / NATS)",
        format!(
            "{} / {}",
            pg_proxy.control.connections.load(Ordering::Relaxed),
            nats_proxy.control.connections.load(Ordering::Relaxed)
        )
    );
    println!("================================================================");

    orders_db.close().await;
    kitchen_db.close().await;
    delivery_db.close().await;
    system.shutdown().await;
    nats.remove().await;
    assert!(
        problems.is_empty(),
        "{} problems:\n{}",
        problems.len(),
        problems.join("\n")
    );
}
