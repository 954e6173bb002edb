//! The whole system for one test: the four services as real processes of the `brigade`
//! binary, on real PostgreSQL and NATS, in throw-away databases (`t<random>_orders`, …) and a
//! NATS namespace of their own, so tests run in parallel without seeing each other.
#![allow(dead_code, clippy::unwrap_used)]

use std::collections::HashMap;
use std::future::Future;
use std::process::Stdio;
use std::time::{Duration, Instant};

use brigade_platform::testing::free_port;
use serde_json::{json, Value};
use sqlx::PgPool;
use tokio::process::{Child, Command};
use uuid::Uuid;

pub const SERVICES: [&str; 4] = ["identity", "orders", "kitchen", "delivery"];
pub const MANAGER_EMAIL: &str = "manager@brigade.test";
pub const MANAGER_PASSWORD: &str = "correct horse battery staple";

pub struct System {
    pub prefix: String,
    pub namespace: String,
    pub nats_url: String,
    /// The PostgreSQL server the services use (a fault proxy in the chaos test); `None`: the
    /// machine's, 127.0.0.1:5432.
    pub database_url: Option<String>,
    /// More environment for every service process (`BRIGADE_MAX_STREAMS`, …).
    pub extra_env: Vec<(String, String)>,
    ports: HashMap<&'static str, u16>,
    children: HashMap<&'static str, Child>,
    pub http: reqwest::Client,
    log_dir: std::path::PathBuf,
}

/// A signed-in user.
#[derive(Clone, Debug)]
pub struct Session {
    pub token: String,
    pub account_id: Uuid,
    pub email: String,
}

/// How to start a [`System`] other than the default way.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// NATS for the services; the machine's when `None`.
    pub nats_url: Option<String>,
    /// PostgreSQL server (no database name) for the services; the machine's when `None`.
    pub database_url: Option<String>,
    /// More environment for every service process.
    pub env: Vec<(String, String)>,
}

impl System {
    /// Starts the four services against the machine's NATS.
    pub async fn start() -> Self {
        Self::start_with_nats("nats://127.0.0.1:4222").await
    }

    pub async fn start_with_nats(nats_url: &str) -> Self {
        Self::start_with(Options {
            nats_url: Some(nats_url.to_owned()),
            ..Options::default()
        })
        .await
    }

    /// Starts the four services as `options` say.
    pub async fn start_with(options: Options) -> Self {
        let nats_url = options
            .nats_url
            .unwrap_or_else(|| "nats://127.0.0.1:4222".to_owned());
        let id = Uuid::new_v4().simple().to_string();
        let tag = &id[..10];
        let mut ports = HashMap::new();
        for service in SERVICES {
            ports.insert(service, free_port());
        }
        let log_dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("service-logs");
        std::fs::create_dir_all(&log_dir).unwrap();
        let mut system = Self {
            prefix: format!("t{tag}_"),
            namespace: format!("t{tag}"),
            nats_url,
            database_url: options.database_url,
            extra_env: options.env,
            ports,
            children: HashMap::new(),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap(),
            log_dir,
        };
        for service in SERVICES {
            system.spawn(service);
        }
        for service in SERVICES {
            system.wait_ready(service).await;
        }
        system
    }

    fn env(&self) -> Vec<(String, String)> {
        let mut env = vec![
            ("BRIGADE_DATABASE_PREFIX".to_owned(), self.prefix.clone()),
            ("BRIGADE_NAMESPACE".to_owned(), self.namespace.clone()),
            ("BRIGADE_NATS_URL".to_owned(), self.nats_url.clone()),
            ("BRIGADE_MANAGER_EMAIL".to_owned(), MANAGER_EMAIL.to_owned()),
            (
                "BRIGADE_MANAGER_PASSWORD".to_owned(),
                MANAGER_PASSWORD.to_owned(),
            ),
            ("BRIGADE_DATABASE_POOL".to_owned(), "6".to_owned()),
            (
                "RUST_LOG".to_owned(),
                "info,sqlx=warn,async_nats=warn,poem=warn".to_owned(),
            ),
        ];
        if let Some(url) = &self.database_url {
            env.push(("BRIGADE_DATABASE_URL".to_owned(), url.clone()));
        }
        env.extend(self.extra_env.iter().cloned());
        for (service, port) in &self.ports {
            env.push((
                format!("BRIGADE_{}_PORT", service.to_ascii_uppercase()),
                port.to_string(),
            ));
        }
        env
    }

    /// Starts one service process (its output goes to a log file named after the test's prefix).
    pub fn spawn(&mut self, service: &'static str) {
        let log = self.log_dir.join(format!("{}{service}.log", self.prefix));
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_brigade"))
            .args(["serve", service])
            .envs(self.env())
            .stdout(Stdio::from(file.try_clone().unwrap()))
            .stderr(Stdio::from(file))
            .kill_on_drop(true)
            .spawn()
            .expect("the brigade binary starts");
        self.children.insert(service, child);
    }

    /// Kills one service abruptly (SIGKILL): no graceful shutdown, nothing flushed.
    pub async fn kill(&mut self, service: &'static str) {
        if let Some(mut child) = self.children.remove(service) {
            child.start_kill().unwrap();
            child.wait().await.unwrap();
        }
    }

    /// Starts a killed service again and waits until it is ready.
    pub async fn restart(&mut self, service: &'static str) {
        self.spawn(service);
        self.wait_ready(service).await;
    }

    pub async fn wait_ready(&self, service: &'static str) {
        let url = self.url(service, "/health/ready");
        let started = Instant::now();
        loop {
            if let Ok(response) = self.http.get(&url).send().await {
                if response.status().is_success() {
                    return;
                }
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "{service} did not become ready; see {}",
                self.log_dir
                    .join(format!("{}{service}.log", self.prefix))
                    .display()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Whether the process of `service` is running (not killed).
    pub fn is_running(&self, service: &str) -> bool {
        self.children.contains_key(service)
    }

    /// The log file of one service.
    pub fn log_file(&self, service: &str) -> std::path::PathBuf {
        self.log_dir.join(format!("{}{service}.log", self.prefix))
    }

    pub fn url(&self, service: &str, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.ports[service])
    }

    /// Messages the services' JetStream consumers have not yet applied (see
    /// `Bus::unapplied`); `None` when NATS cannot be asked. Zero means every read model has
    /// had every event.
    pub async fn consumer_backlog(&self) -> Option<u64> {
        let namespace = brigade_nats::Namespace::new(Some(&self.namespace)).ok()?;
        let bus = brigade_nats::Bus::connect(&self.nats_url, namespace, 1)
            .await
            .ok()?;
        bus.unapplied().await.ok()
    }

    /// A pool on one service's database, for checking its event store directly.
    pub async fn db(&self, service: &str) -> PgPool {
        PgPool::connect(&format!(
            "postgres://postgres@127.0.0.1:5432/{}{service}",
            self.prefix
        ))
        .await
        .unwrap()
    }

    /// Sends a request; returns the status and the JSON body (Null when empty or not JSON).
    pub async fn call(
        &self,
        method: reqwest::Method,
        service: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> (u16, Value) {
        let mut request = self.http.request(method, self.url(service, path));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap_or_default();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    pub async fn get(&self, service: &str, path: &str, token: &str) -> (u16, Value) {
        self.call(reqwest::Method::GET, service, path, Some(token), None, &[])
            .await
    }

    pub async fn post(&self, service: &str, path: &str, token: &str, body: Value) -> (u16, Value) {
        self.call(
            reqwest::Method::POST,
            service,
            path,
            Some(token),
            Some(body),
            &[],
        )
        .await
    }

    pub async fn login(&self, email: &str, password: &str) -> Session {
        let (status, body) = self
            .call(
                reqwest::Method::POST,
                "identity",
                "/auth/login",
                None,
                Some(json!({"email": email, "password": password})),
                &[],
            )
            .await;
        assert_eq!(status, 200, "login of {email}: {body}");
        Session {
            token: body["accessToken"].as_str().unwrap().to_owned(),
            account_id: body["account"]["id"].as_str().unwrap().parse().unwrap(),
            email: email.to_owned(),
        }
    }

    pub async fn manager(&self) -> Session {
        self.login(MANAGER_EMAIL, MANAGER_PASSWORD).await
    }

    /// Signs up a new customer and signs them in.
    pub async fn customer(&self, name: &str) -> Session {
        let email = format!(
            "{}.{}@brigade.test",
            name.to_lowercase(),
            Uuid::new_v4().simple()
        );
        let (status, body) = self
            .call(
                reqwest::Method::POST,
                "identity",
                "/auth/register",
                None,
                Some(json!({"email": email, "password": "mot de passe solide", "name": name, "phone": "+33 6 12 34 56 78"})),
                &[],
            )
            .await;
        assert_eq!(status, 201, "register {email}: {body}");
        self.login(&email, "mot de passe solide").await
    }

    /// A staff account created by the manager, signed in.
    pub async fn staff(&self, manager: &Session, role: &str, name: &str) -> Session {
        let email = format!(
            "{}.{}@brigade.test",
            name.to_lowercase(),
            Uuid::new_v4().simple()
        );
        let (status, body) = self
            .post(
                "identity",
                "/staff",
                &manager.token,
                json!({"email": email, "password": "mot de passe solide", "name": name, "role": role}),
            )
            .await;
        assert_eq!(status, 201, "staff {email}: {body}");
        self.login(&email, "mot de passe solide").await
    }

    /// A courier hired in the delivery service (from identity's event) and on shift.
    pub async fn courier_on_shift(&self, manager: &Session, name: &str) -> Session {
        let courier = self.staff(manager, "courier", name).await;
        eventually(Duration::from_secs(20), || async {
            let (status, _) = self
                .post(
                    "delivery",
                    "/couriers/me/shift",
                    &courier.token,
                    json!({"onShift": true}),
                )
                .await;
            status == 200
        })
        .await;
        courier
    }

    /// Places an order; returns its id.
    pub async fn place_order(&self, customer: &Session, items: Value) -> Uuid {
        let key = Uuid::new_v4().to_string();
        let (status, body) = self
            .call(
                reqwest::Method::POST,
                "orders",
                "/orders",
                Some(&customer.token),
                Some(json!({
                    "items": items,
                    "deliveryAddress": {"street": "12 rue de la Paix", "city": "Paris", "postalCode": "75002", "lat": 48.8686, "lon": 2.3314},
                    "contactPhone": "+33 6 12 34 56 78"
                })),
                &[("Idempotency-Key", &key)],
            )
            .await;
        assert_eq!(status, 201, "place order: {body}");
        body["orderId"].as_str().unwrap().parse().unwrap()
    }

    /// The ids of the first `n` available dishes of the menu.
    pub async fn dishes(&self, n: usize) -> Vec<String> {
        let (status, menu) = self
            .call(reqwest::Method::GET, "orders", "/menu", None, None, &[])
            .await;
        assert_eq!(status, 200, "menu: {menu}");
        let ids: Vec<String> = menu["categories"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|c| c["dishes"].as_array().unwrap().iter())
            .filter(|d| d["available"].as_bool() == Some(true))
            .map(|d| d["id"].as_str().unwrap().to_owned())
            .take(n)
            .collect();
        assert_eq!(ids.len(), n, "the starter menu has at least {n} dishes");
        ids
    }

    /// The event types stored for one aggregate, in sequence order.
    pub async fn history(&self, service: &str, aggregate_type: &str, id: Uuid) -> Vec<String> {
        let pool = self.db(service).await;
        let types: Vec<String> = sqlx::query_scalar(
            "SELECT event_type FROM events WHERE aggregate_type = $1 AND aggregate_id = $2 ORDER BY sequence",
        )
        .bind(aggregate_type)
        .bind(id.to_string())
        .fetch_all(&pool)
        .await
        .unwrap();
        pool.close().await;
        types
    }

    /// Open dead letters of one service.
    pub async fn dead_letters(&self, service: &str) -> Vec<(String, String)> {
        let pool = self.db(service).await;
        let rows = sqlx::query_as(
            "SELECT consumer, error FROM dead_letters WHERE replayed_at IS NULL AND discarded_at IS NULL",
        )
        .fetch_all(&pool)
        .await
        .unwrap();
        pool.close().await;
        rows
    }

    /// Stops every process and drops the test's databases and streams.
    pub async fn shutdown(mut self) {
        for service in SERVICES {
            self.kill(service).await;
        }
        if let Ok(admin) = PgPool::connect("postgres://postgres@127.0.0.1:5432/postgres").await {
            for service in SERVICES {
                let _ = sqlx::query(&format!(
                    "DROP DATABASE IF EXISTS \"{}{service}\" WITH (FORCE)",
                    self.prefix
                ))
                .execute(&admin)
                .await;
            }
        }
        if let Ok(client) = async_nats::connect(&self.nats_url).await {
            let js = async_nats::jetstream::new(client);
            for service in SERVICES {
                let _ = js
                    .delete_stream(format!(
                        "{}_{}",
                        self.namespace.to_uppercase(),
                        service.to_uppercase()
                    ))
                    .await;
            }
        }
    }
}

/// Polls `condition` until it holds, failing the test after `timeout`.
pub async fn eventually<F, Fut>(timeout: Duration, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let started = Instant::now();
    while !condition().await {
        assert!(
            started.elapsed() < timeout,
            "condition not reached within {timeout:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The orders service's events of an order delivered, in order.
pub const ORDER_STEPS: [&str; 6] = [
    "OrderPlaced",
    "OrderAccepted",
    "OrderInPreparation",
    "OrderReady",
    "OrderOutForDelivery",
    "OrderDelivered",
];

pub const FULL_JOURNEY: [&str; 6] = [
    "placed",
    "accepted",
    "in_preparation",
    "ready",
    "out_for_delivery",
    "delivered",
];

/// The chef cooks every item of the order's ticket: start, then ready.
pub async fn cook(system: &System, chef: &Session, order_id: Uuid) {
    let path = format!("/tickets/{order_id}");
    eventually(Duration::from_secs(60), || async {
        system.get("kitchen", &path, &chef.token).await.0 == 200
    })
    .await;
    let (_, ticket) = system.get("kitchen", &path, &chef.token).await;
    let items = ticket["items"].as_array().unwrap().len();
    for index in 0..items {
        let (status, body) = system
            .post(
                "kitchen",
                &format!("/tickets/{order_id}/items/{index}/start"),
                &chef.token,
                json!({}),
            )
            .await;
        assert_eq!(status, 200, "start item {index} of {order_id}: {body}");
        let (status, body) = system
            .post(
                "kitchen",
                &format!("/tickets/{order_id}/items/{index}/ready"),
                &chef.token,
                json!({}),
            )
            .await;
        assert_eq!(status, 200, "ready item {index} of {order_id}: {body}");
    }
}

/// The delivery of the order once the food is ready: dispatch assigns the nearest free
/// courier on shift (one delivery at a time each), who picks it up and delivers it.
pub async fn deliver(system: &System, manager: &Session, couriers: &[Session], order_id: Uuid) {
    let path = format!("/deliveries/{order_id}");
    let started = Instant::now();
    let delivery = loop {
        let (status, body) = system.get("delivery", &path, &manager.token).await;
        // A courier sent ahead of readiness picks up once the food is ready.
        if status == 200 && body["status"] == "assigned" && body["readyAt"].is_string() {
            break body;
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "delivery of {order_id} never assigned: {body}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let id = delivery["courier"]["id"].as_str().unwrap();
    let courier = couriers
        .iter()
        .find(|c| c.account_id.to_string() == id)
        .expect("dispatch picked one of our couriers");
    let (status, body) = system
        .post(
            "delivery",
            &format!("{path}/pickup"),
            &courier.token,
            json!({}),
        )
        .await;
    assert_eq!(status, 200, "pickup {order_id}: {body}");
    let (status, body) = system
        .post(
            "delivery",
            &format!("{path}/deliver"),
            &courier.token,
            json!({"receivedBy": "Camille", "note": "remis en main propre"}),
        )
        .await;
    assert_eq!(status, 200, "deliver {order_id}: {body}");
}

/// A NATS server of one test's own (JetStream on, its own port and storage directory), so it
/// can be stopped and restarted without disturbing other tests.
pub struct PrivateNats {
    pub port: u16,
    pub dir: std::path::PathBuf,
    child: Option<Child>,
}

impl PrivateNats {
    pub async fn start() -> Self {
        let port = free_port();
        let dir =
            std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("nats-{port}"));
        let mut nats = Self {
            port,
            dir,
            child: None,
        };
        nats.resume().await;
        nats
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Starts the server (again) on the same port and storage, and waits until it accepts
    /// connections.
    pub async fn resume(&mut self) {
        let server = [
            "/usr/sbin/nats-server",
            "/usr/bin/nats-server",
            "/usr/local/bin/nats-server",
        ]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
        .unwrap_or("nats-server");
        let child = Command::new(server)
            .args([
                "-a",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-js",
                "-sd",
            ])
            .arg(&self.dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("nats-server is installed (.ci/run installs it)");
        self.child = Some(child);
        let started = Instant::now();
        while tokio::net::TcpStream::connect(("127.0.0.1", self.port))
            .await
            .is_err()
        {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "nats-server did not start"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Kills the server abruptly (SIGKILL).
    pub async fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.start_kill().unwrap();
            child.wait().await.unwrap();
        }
    }

    /// Stops the server and removes its storage.
    pub async fn remove(mut self) {
        self.stop().await;
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
