//! The whole system for one browser test: the four services and the gateway, run in this test's
//! process on free ports, on the machine's PostgreSQL and NATS, in throw-away databases
//! (`t<random>_orders`, …) and a NATS namespace of their own, so tests run in parallel.
//!
//! In-process rather than as `brigade serve` processes (as the top-level journeys do) because
//! the `brigade` binary belongs to another package: a test here cannot ask Cargo to build it.
//! Each service still runs exactly its production `run(settings)`, on a runtime of its own, so
//! that stopping one (its runtime shut down: every task of it, open connections included, gone
//! at once) is as abrupt as killing its process.
#![allow(dead_code, clippy::unwrap_used)]

use std::collections::HashMap;
use std::time::{Duration, Instant};

use brigade_gateway::GatewayConfig;
use brigade_platform::testing::free_port;
use brigade_platform::Settings;
use serde_json::{json, Value};
use tokio::task::JoinHandle;
use uuid::Uuid;

pub const SERVICES: [&str; 4] = ["identity", "orders", "kitchen", "delivery"];
pub const MANAGER_EMAIL: &str = "manager@brigade.test";
pub const MANAGER_PASSWORD: &str = "correct horse battery staple";
pub const STAFF_PASSWORD: &str = "mot de passe solide";

pub struct System {
    pub prefix: String,
    pub namespace: String,
    pub settings: Settings,
    env: HashMap<String, String>,
    runtimes: HashMap<&'static str, tokio::runtime::Runtime>,
    gateway: Option<JoinHandle<anyhow::Result<()>>>,
    pub gateway_url: String,
    pub http: reqwest::Client,
    cleaned: bool,
}

impl System {
    pub async fn start() -> Self {
        // Services' warnings and errors go to the test's output (shown when it fails).
        if std::env::var_os("RUST_LOG").is_none() {
            std::env::set_var("RUST_LOG", "warn,sqlx=error,async_nats=error");
        }
        brigade_platform::telemetry::init_logging();
        let id = Uuid::new_v4().simple().to_string();
        let tag = &id[..10];
        let mut env: HashMap<String, String> = [
            ("BRIGADE_DATABASE_PREFIX", format!("t{tag}_")),
            ("BRIGADE_NAMESPACE", format!("t{tag}")),
            ("BRIGADE_MANAGER_EMAIL", MANAGER_EMAIL.to_owned()),
            ("BRIGADE_MANAGER_PASSWORD", MANAGER_PASSWORD.to_owned()),
            ("BRIGADE_DATABASE_POOL", "8".to_owned()),
            ("BRIGADE_GATEWAY_PORT", free_port().to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        for service in SERVICES {
            env.insert(
                format!("BRIGADE_{}_PORT", service.to_ascii_uppercase()),
                free_port().to_string(),
            );
        }
        let lookup = |key: &str| env.get(key).cloned();
        let settings = Settings::from_lookup(lookup).unwrap();
        let gateway_url = format!("http://127.0.0.1:{}", env["BRIGADE_GATEWAY_PORT"]);
        let mut system = Self {
            prefix: format!("t{tag}_"),
            namespace: format!("t{tag}"),
            settings,
            env,
            runtimes: HashMap::new(),
            gateway: None,
            gateway_url,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap(),
            cleaned: false,
        };
        for service in SERVICES {
            system.spawn(service);
        }
        for service in SERVICES {
            system
                .wait_ready(&system.url(service, "/health/ready"))
                .await;
        }
        system.spawn_gateway().await;
        system
    }

    async fn spawn_gateway(&mut self) {
        let env = self.env.clone();
        let config =
            GatewayConfig::from_lookup(&self.settings, |key| env.get(key).cloned()).unwrap();
        self.gateway = Some(tokio::spawn(brigade_gateway::serve(
            config,
            std::future::pending(),
        )));
        self.wait_ready(&format!("{}/health/ready", self.gateway_url))
            .await;
    }

    /// Stops the gateway at once (as a killed process) and starts a fresh one on its port:
    /// nothing of the first one's memory survives.
    pub async fn restart_gateway(&mut self) {
        if let Some(gateway) = self.gateway.take() {
            gateway.abort();
            let _ = gateway.await;
        }
        let fresh = reqwest::Client::builder()
            .pool_max_idle_per_host(0)
            .build()
            .unwrap();
        let started = Instant::now();
        while fresh
            .get(format!("{}/health/live", self.gateway_url))
            .timeout(Duration::from_millis(300))
            .send()
            .await
            .is_ok()
        {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "the gateway did not stop"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        self.spawn_gateway().await;
    }

    /// Starts one service (its production `run`) on a runtime of its own.
    pub fn spawn(&mut self, service: &'static str) {
        let settings = self.settings.clone();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name(service)
            .enable_all()
            .build()
            .unwrap();
        match service {
            "identity" => drop(runtime.spawn(brigade_identity::run(settings))),
            "orders" => drop(runtime.spawn(brigade_orders::run(settings))),
            "kitchen" => drop(runtime.spawn(brigade_kitchen::run(settings))),
            _ => drop(runtime.spawn(brigade_delivery::run(settings))),
        }
        self.runtimes.insert(service, runtime);
    }

    /// Stops one service at once, as a killed process: nothing finishes, its port closes.
    pub async fn stop(&mut self, service: &'static str) {
        if let Some(runtime) = self.runtimes.remove(service) {
            runtime.shutdown_background();
        }
        let url = self.url(service, "/health/live");
        let fresh = reqwest::Client::builder()
            .pool_max_idle_per_host(0)
            .build()
            .unwrap();
        let started = Instant::now();
        while fresh
            .get(&url)
            .timeout(Duration::from_millis(300))
            .send()
            .await
            .is_ok()
        {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "{service} did not stop"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn wait_ready(&self, url: &str) {
        let started = Instant::now();
        loop {
            if let Ok(response) = self.http.get(url).send().await {
                if response.status().is_success() {
                    return;
                }
            }
            assert!(
                started.elapsed() < Duration::from_secs(90),
                "{url} did not become ready"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub fn url(&self, service: &str, path: &str) -> String {
        format!(
            "http://127.0.0.1:{}{path}",
            self.env[&format!("BRIGADE_{}_PORT", service.to_ascii_uppercase())]
        )
    }

    /// A call straight to a service (test set-up, as an operator's script would do it).
    pub async fn call(
        &self,
        method: reqwest::Method,
        service: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut request = self.http.request(method, self.url(service, path));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap_or_default();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// Signs in straight at identity; returns the access token.
    pub async fn token(&self, email: &str, password: &str) -> String {
        let (status, body) = self
            .call(
                reqwest::Method::POST,
                "identity",
                "/auth/login",
                None,
                Some(json!({"email": email, "password": password})),
            )
            .await;
        assert_eq!(status, 200, "login of {email}: {body}");
        body["accessToken"].as_str().unwrap().to_owned()
    }

    /// Creates a staff account (as the manager); returns its e-mail.
    pub async fn staff(&self, role: &str, name: &str) -> String {
        let manager = self.token(MANAGER_EMAIL, MANAGER_PASSWORD).await;
        let email = format!(
            "{}.{}@brigade.test",
            name.to_lowercase(),
            &Uuid::new_v4().simple().to_string()[..8]
        );
        let (status, body) = self
            .call(
                reqwest::Method::POST,
                "identity",
                "/staff",
                Some(&manager),
                Some(
                    json!({"email": email, "password": STAFF_PASSWORD, "name": name, "role": role}),
                ),
            )
            .await;
        assert_eq!(status, 201, "staff {email}: {body}");
        email
    }

    /// Publishes on the orders stream an `OrderPlaced` the kitchen cannot read (a poison
    /// message): its consumer parks it among the kitchen's dead letters.
    pub async fn publish_poison_order(&self) {
        let order_id = Uuid::new_v4();
        let envelope = json!({
            "eventId": Uuid::new_v4(), "aggregateType": "order", "aggregateId": order_id.to_string(),
            "sequence": 1, "eventType": "OrderPlaced", "eventVersion": "1.0",
            "payload": {"nonsense": true},
            "metadata": {"correlation_id": order_id.to_string()},
            "recordedAt": chrono::Utc::now(),
        });
        let client = async_nats::connect(&self.settings.nats_url).await.unwrap();
        let js = async_nats::jetstream::new(client);
        let subject = self.settings.namespace.subject("orders.order.placed");
        js.publish(subject, serde_json::to_vec(&envelope).unwrap().into())
            .await
            .unwrap()
            .await
            .unwrap();
    }

    /// Stops everything and drops the test's databases and streams.
    pub async fn shutdown(mut self) {
        self.stop_all();
        tokio::time::sleep(Duration::from_millis(200)).await;
        drop_storage(&self.prefix, &self.namespace).await;
        self.cleaned = true;
    }

    fn stop_all(&mut self) {
        if let Some(gateway) = self.gateway.take() {
            gateway.abort();
        }
        for (_, runtime) in self.runtimes.drain() {
            runtime.shutdown_background();
        }
    }
}

async fn drop_storage(prefix: &str, namespace: &str) {
    if let Ok(admin) = sqlx::PgPool::connect("postgres://postgres@127.0.0.1:5432/postgres").await {
        for service in SERVICES {
            let _ = sqlx::query(&format!(
                "DROP DATABASE IF EXISTS \"{prefix}{service}\" WITH (FORCE)"
            ))
            .execute(&admin)
            .await;
        }
        admin.close().await;
    }
    if let Ok(client) = async_nats::connect("nats://127.0.0.1:4222").await {
        let js = async_nats::jetstream::new(client);
        for service in SERVICES {
            let _ = js
                .delete_stream(format!(
                    "{}_{}",
                    namespace.to_uppercase(),
                    service.to_uppercase()
                ))
                .await;
        }
        let _ = js
            .delete_key_value(format!("{}_GATEWAY_SESSIONS", namespace.to_uppercase()))
            .await;
    }
}

impl Drop for System {
    /// A test that fails half-way still stops its services (a runtime may not be dropped
    /// inside another: each is shut down in the background) and drops its databases, on a
    /// thread of its own since the test's runtime is unwinding.
    fn drop(&mut self) {
        self.stop_all();
        if !self.cleaned {
            let (prefix, namespace) = (self.prefix.clone(), self.namespace.clone());
            let cleanup = std::thread::spawn(move || {
                if let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    runtime.block_on(drop_storage(&prefix, &namespace));
                }
            });
            let _ = cleanup.join();
        }
    }
}
