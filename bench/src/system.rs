//! The system under test: the four services as processes (this binary's `serve`, the same
//! code as `brigade serve`, or the `brigade` binary given with `--brigade`), in throw-away
//! databases (`bench<tag>_orders`, …) and a NATS namespace of their own, so a benchmark never
//! touches anyone else's data and leaves nothing behind. Also the users and the calls the
//! benchmarks make through the public HTTP API.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context as _};
use brigade_platform::testing::free_port;
use serde_json::{json, Value};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::PgPool;
use tokio::process::{Child, Command};
use uuid::Uuid;

pub const SERVICES: [&str; 4] = ["identity", "orders", "kitchen", "delivery"];
pub const MANAGER_EMAIL: &str = "manager@bench.brigade.test";
pub const MANAGER_PASSWORD: &str = "correct horse battery staple";
const PASSWORD: &str = "mot de passe solide";
/// The PostgreSQL server every service and the bench use.
pub const POSTGRES: &str = "postgres://postgres@127.0.0.1:5432";
/// Marks the bench's own connections, so that their CPU is not counted as the system's.
pub const APPLICATION_NAME: &str = "brigade-bench";

/// How to start the system.
#[derive(Debug, Clone)]
pub struct Launch {
    /// The executable run as `<exe> serve <service>`.
    pub executable: PathBuf,
    pub nats_url: String,
    /// Connections per service pool (`BRIGADE_DATABASE_POOL`): PostgreSQL allows 100 in all,
    /// and the machine is shared.
    pub pool_size: u32,
    /// Where the services' logs go.
    pub log_dir: PathBuf,
}

/// A signed-in user.
#[derive(Clone, Debug)]
pub struct Session {
    pub token: String,
    pub account_id: Uuid,
}

/// The four services of one benchmark run.
pub struct System {
    pub prefix: String,
    pub namespace: String,
    pub nats_url: String,
    ports: HashMap<&'static str, u16>,
    children: HashMap<&'static str, Child>,
    /// For the calls the load is made of: no overall timeout (a slow answer is a figure, not
    /// an error), many connections.
    pub http: reqwest::Client,
    /// The bench's own small pools on the services' databases, for counting what was applied.
    pub dbs: HashMap<&'static str, PgPool>,
}

/// A pool on one database, named as the bench's.
pub async fn bench_pool(database: &str, size: u32) -> anyhow::Result<PgPool> {
    let options: PgConnectOptions = POSTGRES.parse()?;
    PgPoolOptions::new()
        .max_connections(size)
        .acquire_timeout(Duration::from_secs(30))
        .connect_with(
            options
                .database(database)
                .application_name(APPLICATION_NAME)
                .ssl_mode(sqlx::postgres::PgSslMode::Disable),
        )
        .await
        .with_context(|| format!("connecting to database {database}"))
}

/// An HTTP client for load: keeps many connections, sends at once (no Nagle delay).
#[must_use]
pub fn load_client() -> reqwest::Client {
    reqwest::Client::builder()
        .pool_max_idle_per_host(4096)
        .tcp_nodelay(true)
        .connect_timeout(Duration::from_secs(10))
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap_or_default()
}

/// An HTTP client for long-lived streams: no overall timeout.
#[must_use]
pub fn stream_client() -> reqwest::Client {
    reqwest::Client::builder()
        .tcp_nodelay(true)
        .connect_timeout(Duration::from_secs(30))
        .pool_max_idle_per_host(0)
        .build()
        .unwrap_or_default()
}

impl System {
    /// Starts the four services and waits until each answers `/health/ready`. PostgreSQL's
    /// connections are shared with whoever else uses the machine: a start that finds none
    /// free is tried again a little later (three times in all).
    ///
    /// # Errors
    /// When a service does not start (its log is named).
    pub async fn start(launch: &Launch) -> anyhow::Result<Self> {
        let mut attempt = 1;
        loop {
            match Self::start_once(launch).await {
                Ok(system) => return Ok(system),
                Err(error) if attempt < 3 => {
                    eprintln!("    the system did not start ({error:#}); trying again");
                    tokio::time::sleep(Duration::from_secs(10)).await;
                    attempt += 1;
                }
                Err(error) => return Err(error),
            }
        }
    }

    async fn start_once(launch: &Launch) -> anyhow::Result<Self> {
        let id = Uuid::new_v4().simple().to_string();
        let tag = &id[..8];
        let mut ports = HashMap::new();
        for service in SERVICES {
            ports.insert(service, free_port());
        }
        std::fs::create_dir_all(&launch.log_dir)?;
        let mut system = Self {
            prefix: format!("bench{tag}_"),
            namespace: format!("bench{tag}"),
            nats_url: launch.nats_url.clone(),
            ports,
            children: HashMap::new(),
            http: load_client(),
            dbs: HashMap::new(),
        };
        for service in SERVICES {
            system.spawn(launch, service)?;
        }
        for service in SERVICES {
            if let Err(error) = system.wait_ready(launch, service).await {
                system.shutdown().await;
                return Err(error);
            }
        }
        for service in ["orders", "kitchen", "delivery"] {
            match bench_pool(&format!("{}{service}", system.prefix), 2).await {
                Ok(pool) => {
                    system.dbs.insert(service, pool);
                }
                Err(error) => {
                    system.shutdown().await;
                    return Err(error);
                }
            }
        }
        Ok(system)
    }

    fn spawn(&mut self, launch: &Launch, service: &'static str) -> anyhow::Result<()> {
        let log = launch.log_dir.join(format!("{}{service}.log", self.prefix));
        let file = std::fs::File::create(&log)?;
        let mut command = Command::new(&launch.executable);
        command
            .args(["serve", service])
            .env("BRIGADE_DATABASE_PREFIX", &self.prefix)
            .env("BRIGADE_NAMESPACE", &self.namespace)
            .env("BRIGADE_NATS_URL", &self.nats_url)
            .env("BRIGADE_MANAGER_EMAIL", MANAGER_EMAIL)
            .env("BRIGADE_MANAGER_PASSWORD", MANAGER_PASSWORD)
            .env("BRIGADE_DATABASE_POOL", launch.pool_size.to_string())
            // The fan-out holds ten thousand streams and more, each on a connection of its
            // own; the default guards are 256 streams and 4,096 connections per process.
            .env("BRIGADE_MAX_STREAMS", "50000")
            .env("BRIGADE_MAX_CONNECTIONS", "50000")
            .stdout(Stdio::from(file.try_clone()?))
            .stderr(Stdio::from(file))
            .kill_on_drop(true);
        // The production default filter, unless the caller chose one.
        if std::env::var_os("RUST_LOG").is_none() {
            command.env("RUST_LOG", "info,sqlx=warn,async_nats=warn,poem=warn");
        }
        for (name, port) in &self.ports {
            command.env(
                format!("BRIGADE_{}_PORT", name.to_ascii_uppercase()),
                port.to_string(),
            );
        }
        let child = command
            .spawn()
            .with_context(|| format!("starting {}", launch.executable.display()))?;
        self.children.insert(service, child);
        Ok(())
    }

    async fn wait_ready(&mut self, launch: &Launch, service: &'static str) -> anyhow::Result<()> {
        let url = self.url(service, "/health/ready");
        let log = launch.log_dir.join(format!("{}{service}.log", self.prefix));
        let started = Instant::now();
        loop {
            if let Some(Ok(Some(status))) = self.children.get_mut(service).map(Child::try_wait) {
                bail!("{service} stopped ({status}); see {}", log.display());
            }
            if let Ok(response) = self.http.get(&url).send().await {
                if response.status().is_success() {
                    return Ok(());
                }
            }
            if started.elapsed() > Duration::from_secs(90) {
                bail!("{service} did not become ready; see {}", log.display());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    #[must_use]
    pub fn url(&self, service: &str, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.ports[service])
    }

    /// The process id of one service.
    #[must_use]
    pub fn pid(&self, service: &str) -> Option<u32> {
        self.children.get(service).and_then(Child::id)
    }

    /// The process ids of the four services.
    #[must_use]
    pub fn pids(&self) -> Vec<u32> {
        self.children.values().filter_map(Child::id).collect()
    }

    /// The PostgreSQL backends serving the services (not the bench's own connections).
    pub async fn backend_pids(&self) -> Vec<u32> {
        let Some(pool) = self.dbs.get("orders") else {
            return Vec::new();
        };
        sqlx::query_scalar::<_, i32>(
            "SELECT pid FROM pg_stat_activity
              WHERE datname LIKE $1 AND coalesce(application_name, '') <> $2",
        )
        .bind(format!("{}%", self.prefix))
        .bind(APPLICATION_NAME)
        .fetch_all(pool)
        .await
        .unwrap_or_default()
        .into_iter()
        .filter_map(|pid| u32::try_from(pid).ok())
        .collect()
    }

    /// Sends a request; returns the status and the JSON body (Null when empty or not JSON).
    ///
    /// # Errors
    /// When the request cannot be sent or its answer read.
    pub async fn call(
        &self,
        method: reqwest::Method,
        service: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> anyhow::Result<(u16, Value)> {
        let mut request = self.http.request(method, self.url(service, path));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await?;
        let status = response.status().as_u16();
        let text = response.text().await.unwrap_or_default();
        Ok((status, serde_json::from_str(&text).unwrap_or(Value::Null)))
    }

    async fn expect(
        &self,
        method: reqwest::Method,
        service: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
        status: u16,
    ) -> anyhow::Result<Value> {
        let (got, answer) = self.call(method, service, path, token, body).await?;
        if got != status {
            bail!("{service} {path}: expected {status}, got {got}: {answer}");
        }
        Ok(answer)
    }

    /// Signs in.
    ///
    /// # Errors
    /// When the credentials are refused.
    pub async fn login(&self, email: &str, password: &str) -> anyhow::Result<Session> {
        let body = self
            .expect(
                reqwest::Method::POST,
                "identity",
                "/auth/login",
                None,
                Some(json!({"email": email, "password": password})),
                200,
            )
            .await?;
        Ok(Session {
            token: body["accessToken"]
                .as_str()
                .ok_or_else(|| anyhow!("no access token in {body}"))?
                .to_owned(),
            account_id: body["account"]["id"]
                .as_str()
                .and_then(|id| id.parse().ok())
                .ok_or_else(|| anyhow!("no account id in {body}"))?,
        })
    }

    /// The first manager, created by identity at start-up.
    ///
    /// # Errors
    /// When the manager cannot sign in.
    pub async fn manager(&self) -> anyhow::Result<Session> {
        self.login(MANAGER_EMAIL, MANAGER_PASSWORD).await
    }

    /// A new customer, signed in.
    ///
    /// # Errors
    /// When registration is refused.
    pub async fn customer(&self, name: &str) -> anyhow::Result<Session> {
        let email = format!(
            "{}.{}@bench.brigade.test",
            name.to_lowercase(),
            Uuid::new_v4().simple()
        );
        self.expect(
            reqwest::Method::POST,
            "identity",
            "/auth/register",
            None,
            Some(json!({"email": email, "password": PASSWORD, "name": name, "phone": "+33 6 12 34 56 78"})),
            201,
        )
        .await?;
        self.login(&email, PASSWORD).await
    }

    /// A staff account (`chef`, `courier`) created by the manager, signed in.
    ///
    /// # Errors
    /// When the manager's request is refused.
    pub async fn staff(
        &self,
        manager: &Session,
        role: &str,
        name: &str,
    ) -> anyhow::Result<Session> {
        let email = format!(
            "{}.{}@bench.brigade.test",
            name.to_lowercase(),
            Uuid::new_v4().simple()
        );
        self.expect(
            reqwest::Method::POST,
            "identity",
            "/staff",
            Some(&manager.token),
            Some(json!({"email": email, "password": PASSWORD, "name": name, "role": role})),
            201,
        )
        .await?;
        self.login(&email, PASSWORD).await
    }

    /// A courier, hired by delivery from identity's event, on shift.
    ///
    /// # Errors
    /// When delivery never hires them.
    pub async fn courier_on_shift(&self, manager: &Session, name: &str) -> anyhow::Result<Session> {
        let courier = self.staff(manager, "courier", name).await?;
        let started = Instant::now();
        loop {
            let (status, _) = self
                .call(
                    reqwest::Method::POST,
                    "delivery",
                    "/couriers/me/shift",
                    Some(&courier.token),
                    Some(json!({"onShift": true})),
                )
                .await?;
            if status == 200 {
                return Ok(courier);
            }
            if started.elapsed() > Duration::from_secs(60) {
                bail!("courier {name} never hired by delivery (last status {status})");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The ids of the first `n` available dishes of the menu.
    ///
    /// # Errors
    /// When the menu has fewer.
    pub async fn dishes(&self, n: usize) -> anyhow::Result<Vec<String>> {
        let menu = self
            .expect(reqwest::Method::GET, "orders", "/menu", None, None, 200)
            .await?;
        let ids: Vec<String> = menu["categories"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|c| c["dishes"].as_array().into_iter().flatten())
            .filter(|d| d["available"].as_bool() == Some(true))
            .filter_map(|d| d["id"].as_str().map(ToOwned::to_owned))
            .take(n)
            .collect();
        if ids.len() < n {
            bail!("the menu has {} available dishes, {n} needed", ids.len());
        }
        Ok(ids)
    }

    /// Cooks every item of an order's ticket (start, then ready), once the ticket exists.
    ///
    /// # Errors
    /// When the ticket never appears or a step is refused.
    pub async fn cook(&self, chef: &Session, order_id: Uuid) -> anyhow::Result<()> {
        let path = format!("/tickets/{order_id}");
        let started = Instant::now();
        let ticket = loop {
            let (status, ticket) = self
                .call(
                    reqwest::Method::GET,
                    "kitchen",
                    &path,
                    Some(&chef.token),
                    None,
                )
                .await?;
            if status == 200 {
                break ticket;
            }
            if started.elapsed() > Duration::from_secs(60) {
                bail!("ticket of {order_id} never reached the kitchen");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        let items = ticket["items"].as_array().map_or(0, Vec::len);
        for index in 0..items {
            for step in ["start", "ready"] {
                self.expect(
                    reqwest::Method::POST,
                    "kitchen",
                    &format!("{path}/items/{index}/{step}"),
                    Some(&chef.token),
                    Some(json!({})),
                    200,
                )
                .await?;
            }
        }
        Ok(())
    }

    /// Waits until dispatch has assigned the order's delivery; returns the courier's id.
    ///
    /// # Errors
    /// When it is not assigned within two minutes.
    pub async fn wait_assigned(&self, manager: &Session, order_id: Uuid) -> anyhow::Result<Uuid> {
        let path = format!("/deliveries/{order_id}");
        let started = Instant::now();
        loop {
            let (status, body) = self
                .call(
                    reqwest::Method::GET,
                    "delivery",
                    &path,
                    Some(&manager.token),
                    None,
                )
                .await?;
            if status == 200 && body["status"] == "assigned" {
                return body["courier"]["id"]
                    .as_str()
                    .and_then(|id| id.parse().ok())
                    .ok_or_else(|| anyhow!("assigned without a courier: {body}"));
            }
            if started.elapsed() > Duration::from_secs(120) {
                bail!("delivery of {order_id} never assigned: {body}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// How many orders each service has applied to its read model: (orders' tracking,
    /// kitchen queue, live deliveries).
    ///
    /// # Errors
    /// A database error.
    pub async fn applied(&self) -> anyhow::Result<Applied> {
        let count = |service: &'static str, table: &'static str| async move {
            let pool = self
                .dbs
                .get(service)
                .ok_or_else(|| anyhow!("no pool for {service}"))?;
            let n: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM {table}"))
                .fetch_one(pool)
                .await?;
            anyhow::Ok(u64::try_from(n).unwrap_or(0))
        };
        let (orders, kitchen, delivery) = tokio::try_join!(
            count("orders", "order_tracking"),
            count("kitchen", "kitchen_queue"),
            count("delivery", "live_deliveries"),
        )?;
        Ok(Applied {
            orders,
            kitchen,
            delivery,
        })
    }

    /// Messages published to the bus but not yet applied, and events not yet published:
    /// every consumer's pending and unacknowledged messages, plus every outbox's backlog.
    pub async fn bus_backlog(&self) -> u64 {
        let mut backlog = 0;
        for service in ["orders", "kitchen", "delivery"] {
            if let Some(pool) = self.dbs.get(service) {
                let n: i64 =
                    sqlx::query_scalar("SELECT count(*) FROM outbox WHERE published_at IS NULL")
                        .fetch_one(pool)
                        .await
                        .unwrap_or(0);
                backlog += u64::try_from(n).unwrap_or(0);
            }
        }
        let Ok(namespace) = brigade_nats::Namespace::new(Some(&self.namespace)) else {
            return backlog;
        };
        let Ok(bus) = brigade_nats::Bus::connect(&self.nats_url, namespace, 1).await else {
            return backlog;
        };
        backlog + bus.unapplied().await.unwrap_or(0)
    }

    /// Counters of the work the system did so far: commits per service database
    /// (`pg_stat_database`) and messages per service stream (JetStream), to say what one
    /// order costs in transactions and events.
    pub async fn work(&self) -> Work {
        let mut work = Work::default();
        if let Some(pool) = self.dbs.get("orders") {
            let rows: Vec<(String, i64)> = sqlx::query_as(
                "SELECT datname::text, xact_commit FROM pg_stat_database WHERE datname LIKE $1",
            )
            .bind(format!("{}%", self.prefix))
            .fetch_all(pool)
            .await
            .unwrap_or_default();
            for (database, commits) in rows {
                let service = database.trim_start_matches(&self.prefix).to_owned();
                work.commits
                    .insert(service, u64::try_from(commits).unwrap_or(0));
            }
        }
        if let Ok(client) = async_nats::connect(&self.nats_url).await {
            let js = async_nats::jetstream::new(client);
            for service in SERVICES {
                let name = format!(
                    "{}_{}",
                    self.namespace.to_uppercase(),
                    service.to_uppercase()
                );
                if let Ok(mut stream) = js.get_stream(&name).await {
                    if let Ok(info) = stream.info().await {
                        work.events.insert(service.to_owned(), info.state.messages);
                    }
                    let mut consumers = stream.consumers();
                    while let Some(Ok(info)) = futures::StreamExt::next(&mut consumers).await {
                        work.deliveries += info.delivered.consumer_sequence;
                    }
                }
            }
        }
        work
    }

    /// Stops every process and drops the run's databases and streams.
    pub async fn shutdown(mut self) {
        for (_, mut child) in self.children.drain() {
            let _ = child.start_kill();
            let _ = child.wait().await;
        }
        for (_, pool) in self.dbs.drain() {
            pool.close().await;
        }
        drop_databases(&self.prefix, &SERVICES).await;
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

/// Work counters at one instant (see [`System::work`]).
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Work {
    /// Committed transactions per service database.
    pub commits: HashMap<String, u64>,
    /// Events stored in each service's stream.
    pub events: HashMap<String, u64>,
    /// Messages handed to consumers, all streams together.
    pub deliveries: u64,
}

impl Work {
    /// What happened between `earlier` and this, per order of `orders`.
    #[must_use]
    pub fn per_order_since(&self, earlier: &Self, orders: u64) -> PerOrder {
        #[allow(clippy::cast_precision_loss)]
        let per = |now: u64, then: u64| {
            crate::stats::round3(now.saturating_sub(then) as f64 / orders.max(1) as f64)
        };
        let commits: HashMap<String, f64> = self
            .commits
            .iter()
            .map(|(k, v)| {
                (
                    k.clone(),
                    per(*v, earlier.commits.get(k).copied().unwrap_or(0)),
                )
            })
            .collect();
        let events: HashMap<String, f64> = self
            .events
            .iter()
            .map(|(k, v)| {
                (
                    k.clone(),
                    per(*v, earlier.events.get(k).copied().unwrap_or(0)),
                )
            })
            .collect();
        PerOrder {
            commits_total: crate::stats::round3(commits.values().sum()),
            events_total: crate::stats::round3(events.values().sum()),
            deliveries: per(self.deliveries, earlier.deliveries),
            commits,
            events,
        }
    }
}

/// Transactions, events and deliveries per order.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct PerOrder {
    pub commits_total: f64,
    pub commits: HashMap<String, f64>,
    pub events_total: f64,
    pub events: HashMap<String, f64>,
    /// Messages consumers received (each applied in a transaction of its own).
    pub deliveries: f64,
}

/// What the three consumers of `OrderPlaced` have applied, in orders.
#[derive(Debug, Clone, Copy, Default)]
pub struct Applied {
    pub orders: u64,
    pub kitchen: u64,
    pub delivery: u64,
}

impl Applied {
    /// Orders applied by all three.
    #[must_use]
    pub fn everywhere(&self) -> u64 {
        self.orders.min(self.kitchen).min(self.delivery)
    }
}

/// Creates a throw-away database (dropped by [`drop_databases`]).
///
/// # Errors
/// A database error.
pub async fn create_database(name: &str) -> anyhow::Result<()> {
    let admin = bench_pool("postgres", 1).await?;
    sqlx::query(&format!("CREATE DATABASE \"{name}\""))
        .execute(&admin)
        .await?;
    admin.close().await;
    Ok(())
}

/// Runs `work` on a throw-away database `bench{tag}_{name}` (a pool of four connections), then
/// drops it, whatever `work` returned.
///
/// # Errors
/// A database error, or `work`'s.
pub async fn in_scratch_database<T>(
    name: &str,
    work: impl AsyncFnOnce(&PgPool) -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    let prefix = format!("bench{}_", &Uuid::new_v4().simple().to_string()[..8]);
    let database = format!("{prefix}{name}");
    create_database(&database).await?;
    let result = async {
        let pool = bench_pool(&database, 4).await?;
        let outcome = work(&pool).await;
        pool.close().await;
        outcome
    }
    .await;
    drop_databases(&prefix, &[name]).await;
    result
}

/// Drops `{prefix}{name}` for each name, forcing out any connection left.
pub async fn drop_databases(prefix: &str, names: &[&str]) {
    if let Ok(admin) = bench_pool("postgres", 1).await {
        for name in names {
            let _ = sqlx::query(&format!(
                "DROP DATABASE IF EXISTS \"{prefix}{name}\" WITH (FORCE)"
            ))
            .execute(&admin)
            .await;
        }
        admin.close().await;
    }
}

/// The body of one order: two lines, a Paris address.
#[must_use]
pub fn order_body(dishes: &[String], i: usize) -> Value {
    json!({
        "items": [
            {"dishId": dishes[i % dishes.len()], "quantity": 1 + i % 2, "note": format!("bench n°{i}")},
            {"dishId": dishes[(i + 1) % dishes.len()], "quantity": 1},
        ],
        "deliveryAddress": {"street": "12 rue de la Paix", "city": "Paris", "postalCode": "75002", "lat": 48.8686, "lon": 2.3314},
        "contactPhone": "+33 6 12 34 56 78"
    })
}

/// Places one order; returns its id when the answer is 201.
///
/// # Errors
/// When the request fails or is refused.
pub async fn place_order(
    http: &reqwest::Client,
    url: &str,
    customer: &Session,
    body: &Value,
) -> anyhow::Result<Uuid> {
    let response = http
        .post(url)
        .bearer_auth(&customer.token)
        .header("Idempotency-Key", Uuid::new_v4().to_string())
        .json(body)
        .send()
        .await?;
    let status = response.status().as_u16();
    let bytes = response.bytes().await?;
    if status != 201 {
        bail!(
            "POST /orders answered {status}: {}",
            String::from_utf8_lossy(&bytes)
        );
    }
    let answer: Value = serde_json::from_slice(&bytes)?;
    answer["orderId"]
        .as_str()
        .and_then(|id| id.parse().ok())
        .ok_or_else(|| anyhow!("no orderId in {answer}"))
}

/// The users and dishes an order load needs.
pub struct Cast {
    pub manager: Session,
    pub chef: Session,
    pub customers: Vec<Session>,
    pub dishes: Vec<String>,
}

impl Cast {
    /// A manager, a chef, `customers` customers and three dishes.
    ///
    /// # Errors
    /// When any of them cannot be created.
    pub async fn hire(system: &System, customers: usize) -> anyhow::Result<Self> {
        let manager = system.manager().await?;
        let chef = system.staff(&manager, "chef", "Auguste").await?;
        let mut all = Vec::with_capacity(customers);
        for i in 0..customers {
            all.push(system.customer(&format!("Client{i}")).await?);
        }
        let dishes = system.dishes(3).await?;
        Ok(Self {
            manager,
            chef,
            customers: all,
            dishes,
        })
    }
}
