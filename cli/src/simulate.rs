//! `brigade simulate`: a restaurant evening against a running system, through the services'
//! public HTTP APIs only — what a demo, a load check or a smoke test after a deploy needs.
//!
//! It signs in the manager (the same `BRIGADE_MANAGER_*` settings `brigade up` uses), creates a
//! chef, couriers (staff accounts in identity, which the delivery service hires from identity's
//! events) and customers, then for `--duration`:
//! - places orders at `--orders-per-minute`, each for one to three dishes of the menu, to an
//!   address a few kilometres around the restaurant;
//! - the chef starts every dish as it arrives and marks it ready `--cook-seconds` later;
//! - each courier, on shift, picks up what dispatch gives them (waiting at the pass when sent
//!   ahead of the food), rides from the restaurant to the address in `--ride-seconds`, sending
//!   `--positions-per-minute` positions interpolated along the way, and delivers.
//!
//! When the duration is over it places no more orders, lets those in flight finish (up to
//! `--drain`), takes the couriers off shift, asks the orders service how each order ended,
//! and prints a summary. Services are reached directly, at the addresses the settings give
//! (`BRIGADE_HOST`, `BRIGADE_*_PORT`, `BRIGADE_IDENTITY_URL`).

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context as _};
use brigade_platform::{ServiceName, Settings};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use tokio::sync::watch;
use uuid::Uuid;

/// `brigade simulate` options.
#[derive(clap::Args, Debug, Clone)]
pub struct SimulateArgs {
    /// Orders placed per minute, spread evenly.
    #[arg(long, default_value_t = 6.0)]
    pub orders_per_minute: f64,
    /// Couriers on shift.
    #[arg(long, default_value_t = 3)]
    pub couriers: usize,
    /// Customers taking turns to order.
    #[arg(long, default_value_t = 3)]
    pub customers: usize,
    /// How long orders keep coming: `90s`, `5m`, `1h` or seconds.
    #[arg(long, default_value = "2m", value_parser = parse_duration)]
    pub duration: Duration,
    /// Time for the orders still in flight to be delivered once the duration is over.
    #[arg(long, default_value = "2m", value_parser = parse_duration)]
    pub drain: Duration,
    /// How long the chef takes over each dish.
    #[arg(long, default_value_t = 20)]
    pub cook_seconds: u64,
    /// How long a ride from the restaurant to the door takes.
    #[arg(long, default_value_t = 60)]
    pub ride_seconds: u64,
    /// Positions each riding courier sends per minute.
    #[arg(long, default_value_t = 6)]
    pub positions_per_minute: u32,
    /// The manager to sign in as (default: BRIGADE_MANAGER_EMAIL).
    #[arg(long)]
    pub manager_email: Option<String>,
    /// Their password (default: BRIGADE_MANAGER_PASSWORD).
    #[arg(
        long,
        env = "BRIGADE_SIMULATE_MANAGER_PASSWORD",
        hide_env_values = true
    )]
    pub manager_password: Option<String>,
}

/// Reads `90s`, `5m`, `1h`, `250ms` or a number of seconds.
fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("{text:?}: expected a duration such as 90s, 5m or 1h"))?;
    let seconds = match unit.trim() {
        "" | "s" => value,
        "ms" => value / 1000.0,
        "m" | "min" => value * 60.0,
        "h" => value * 3600.0,
        other => return Err(format!("{text:?}: unknown unit {other:?} (ms, s, m, h)")),
    };
    if !seconds.is_finite() || seconds < 0.0 {
        return Err(format!("{text:?}: expected a positive duration"));
    }
    Ok(Duration::from_secs_f64(seconds))
}

/// Where the four services answer.
struct Api {
    http: reqwest::Client,
    identity: String,
    orders: String,
    kitchen: String,
    delivery: String,
}

/// A signed-in account.
#[derive(Clone)]
struct Session {
    token: String,
    name: String,
}

/// A point on the map.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Point {
    lat: f64,
    lon: f64,
}

impl Point {
    /// The point `fraction` of the way from `self` to `to` (straight line: a simulation).
    fn towards(self, to: Point, fraction: f64) -> Point {
        Point {
            lat: self.lat + (to.lat - self.lat) * fraction,
            lon: self.lon + (to.lon - self.lon) * fraction,
        }
    }
}

impl Api {
    fn from_settings(settings: &Settings) -> anyhow::Result<Self> {
        let host = if settings.host.is_unspecified() {
            "127.0.0.1".to_owned()
        } else {
            settings.host.to_string()
        };
        let base = |service: ServiceName| format!("http://{host}:{}", settings.port(service));
        Ok(Self {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(20))
                .build()?,
            identity: settings.identity_url.clone(),
            orders: base(ServiceName::Orders),
            kitchen: base(ServiceName::Kitchen),
            delivery: base(ServiceName::Delivery),
        })
    }

    /// One request; the status and the JSON body (`Null` when there is none).
    async fn call(
        &self,
        method: Method,
        url: String,
        token: Option<&str>,
        body: Option<Value>,
    ) -> anyhow::Result<(StatusCode, Value)> {
        let mut request = self.http.request(method.clone(), &url);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if method == Method::POST {
            // Required by `POST /orders`, harmless elsewhere: a retried request is one request.
            request = request.header("Idempotency-Key", Uuid::new_v4().to_string());
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request
            .send()
            .await
            .with_context(|| format!("{method} {url}"))?;
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        Ok((status, serde_json::from_str(&text).unwrap_or(Value::Null)))
    }

    /// A call that must succeed.
    async fn expect(
        &self,
        method: Method,
        url: String,
        token: Option<&str>,
        body: Option<Value>,
    ) -> anyhow::Result<Value> {
        let (status, answer) = self.call(method.clone(), url.clone(), token, body).await?;
        if !status.is_success() {
            bail!("{method} {url}: {status} {answer}");
        }
        Ok(answer)
    }

    async fn login(&self, email: &str, password: &str, name: &str) -> anyhow::Result<Session> {
        let answer = self
            .expect(
                Method::POST,
                format!("{}/auth/login", self.identity),
                None,
                Some(json!({"email": email, "password": password})),
            )
            .await
            .with_context(|| format!("signing in {email}"))?;
        let token = answer["accessToken"]
            .as_str()
            .ok_or_else(|| anyhow!("no access token for {email}"))?;
        Ok(Session {
            token: token.to_owned(),
            name: name.to_owned(),
        })
    }
}

/// What happened so far, for the progress lines.
#[derive(Default)]
struct Progress {
    placed: AtomicUsize,
    cooked: AtomicUsize,
    picked_up: AtomicUsize,
    delivered: AtomicUsize,
    errors: AtomicUsize,
}

impl Progress {
    fn line(&self, started: Instant) -> String {
        let get = |counter: &AtomicUsize| counter.load(Ordering::Relaxed);
        format!(
            "[{:>5}s] placed {} · cooked {} · picked up {} · delivered {} · errors {}",
            started.elapsed().as_secs(),
            get(&self.placed),
            get(&self.cooked),
            get(&self.picked_up),
            get(&self.delivered),
            get(&self.errors),
        )
    }

    fn error(&self, what: &str, error: &anyhow::Error) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        eprintln!("simulate: {what}: {error:#}");
    }
}

/// A small xorshift generator: the simulation needs variety, not cryptography.
struct Dice(u64);

impl Dice {
    fn new() -> Self {
        Self(Uuid::new_v4().as_u64_pair().0 | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// A number in `0..n`.
    fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next() % (n.max(1) as u64)).unwrap_or(0)
    }

    /// A number in `[0, 1)`.
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Runs the simulation.
///
/// # Errors
/// The services cannot be reached, or the manager cannot sign in or create the staff.
pub async fn run(args: SimulateArgs, settings: &Settings) -> anyhow::Result<()> {
    if args.orders_per_minute <= 0.0 || !args.orders_per_minute.is_finite() {
        bail!("--orders-per-minute must be positive");
    }
    if args.couriers == 0 || args.customers == 0 {
        bail!("--couriers and --customers must be at least 1");
    }
    let api = Arc::new(Api::from_settings(settings)?);
    let (email, password) = match (&args.manager_email, &args.manager_password) {
        (Some(email), Some(password)) => (email.clone(), password.clone()),
        _ => settings.first_manager.clone().ok_or_else(|| {
            anyhow!("who is the manager? set BRIGADE_MANAGER_EMAIL and BRIGADE_MANAGER_PASSWORD (or --manager-email and BRIGADE_SIMULATE_MANAGER_PASSWORD)")
        })?,
    };
    let manager = api.login(&email, &password, "manager").await?;
    let run_id = &Uuid::new_v4().simple().to_string()[..8];
    let password = format!("simulation {run_id} password");
    println!(
        "simulation {run_id}: setting up a chef, {} couriers and {} customers",
        args.couriers, args.customers
    );

    let staff = |role: &'static str, name: String| {
        let (api, manager, password) = (api.clone(), manager.clone(), password.clone());
        async move {
            let email = format!(
                "{}.{run_id}@simulation.brigade.test",
                name.to_lowercase().replace(' ', ".")
            );
            api.expect(
                Method::POST,
                format!("{}/staff", api.identity),
                Some(&manager.token),
                Some(json!({"email": email, "password": password, "name": name, "role": role})),
            )
            .await
            .with_context(|| format!("creating {role} {name}"))?;
            api.login(&email, &password, &name).await
        }
    };
    let chef = staff("chef", "Chef Simulation".to_owned()).await?;
    let mut couriers = Vec::new();
    for n in 1..=args.couriers {
        couriers.push(staff("courier", format!("Courier {n}")).await?);
    }
    let mut customers = Vec::new();
    for n in 1..=args.customers {
        let name = format!("Customer {n}");
        let email = format!("customer{n}.{run_id}@simulation.brigade.test");
        api.expect(
            Method::POST,
            format!("{}/auth/register", api.identity),
            None,
            Some(json!({"email": email, "password": password, "name": name, "phone": "+33 6 12 34 56 78"})),
        )
        .await
        .with_context(|| format!("registering {email}"))?;
        customers.push(api.login(&email, &password, &name).await?);
    }
    let restaurant = {
        let point = brigade_delivery::DeliveryConfig::default().restaurant;
        Point {
            lat: point.lat,
            lon: point.lon,
        }
    };
    // The delivery service hires couriers from identity's events: their shift starts once
    // it has.
    for courier in &couriers {
        set_shift(&api, courier, true, Duration::from_secs(60)).await?;
        send_position(&api, courier, restaurant).await?;
    }
    let menu = api
        .expect(Method::GET, format!("{}/menu", api.orders), None, None)
        .await
        .context("reading the menu")?;
    let dishes: Vec<Dish> = menu["categories"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|category| category["dishes"].as_array().into_iter().flatten())
        .filter(|dish| dish["available"].as_bool() == Some(true))
        .filter_map(Dish::from_menu)
        .collect();
    if dishes.is_empty() {
        bail!("the menu has no dish available");
    }

    let progress = Arc::new(Progress::default());
    let started = Instant::now();
    let (stop, stopped) = watch::channel(false);
    let mut workers = Vec::new();
    workers.push(tokio::spawn(cook(
        api.clone(),
        chef.clone(),
        Duration::from_secs(args.cook_seconds),
        progress.clone(),
        stopped.clone(),
    )));
    for courier in &couriers {
        workers.push(tokio::spawn(ride(
            api.clone(),
            courier.clone(),
            restaurant,
            Ride {
                duration: Duration::from_secs(args.ride_seconds),
                positions_per_minute: args.positions_per_minute.max(1),
            },
            progress.clone(),
            stopped.clone(),
        )));
    }
    let reporter = {
        let (progress, mut stopped) = (progress.clone(), stopped.clone());
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = stopped.changed() => return,
                    () = tokio::time::sleep(Duration::from_secs(5)) => println!("{}", progress.line(started)),
                }
            }
        })
    };

    // Orders, evenly spread, until the duration is over.
    let every = Duration::from_secs_f64(60.0 / args.orders_per_minute);
    let mut dice = Dice::new();
    let mut placed: Vec<(Uuid, usize)> = Vec::new();
    let mut next = Instant::now();
    while started.elapsed() < args.duration {
        let who = placed.len() % customers.len();
        match place_order(&api, &customers[who], &dishes, restaurant, &mut dice).await {
            Ok(order_id) => {
                progress.placed.fetch_add(1, Ordering::Relaxed);
                println!(
                    "[{:>5}s] {} ordered {order_id}",
                    started.elapsed().as_secs(),
                    customers[who].name
                );
                placed.push((order_id, who));
            }
            Err(error) => progress.error("placing an order", &error),
        }
        next += every;
        let remaining = args.duration.saturating_sub(started.elapsed());
        tokio::time::sleep(
            next.saturating_duration_since(Instant::now())
                .min(remaining),
        )
        .await;
    }

    // The orders in flight finish.
    println!("{}", progress.line(started));
    println!(
        "no more orders; waiting up to {}s for those in flight",
        args.drain.as_secs()
    );
    let drain_until = Instant::now() + args.drain;
    while progress.delivered.load(Ordering::Relaxed) < placed.len() && Instant::now() < drain_until
    {
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let _ = stop.send(true);
    for worker in workers {
        let _ = worker.await;
    }
    let _ = reporter.await;
    for courier in &couriers {
        if let Err(error) = set_shift(&api, courier, false, Duration::from_secs(5)).await {
            progress.error("ending a shift", &error);
        }
    }

    // What the orders service says of each order.
    let mut statuses: HashMap<String, usize> = HashMap::new();
    for (order_id, who) in &placed {
        let status = match api
            .call(
                Method::GET,
                format!("{}/orders/{order_id}", api.orders),
                Some(&customers[*who].token),
                None,
            )
            .await
        {
            Ok((StatusCode::OK, order)) => order["status"].as_str().unwrap_or("unknown").to_owned(),
            Ok((status, _)) => format!("http {}", status.as_u16()),
            Err(_) => "unreachable".to_owned(),
        };
        *statuses.entry(status).or_default() += 1;
    }
    println!("{}", progress.line(started));
    let mut summary: Vec<(String, usize)> = statuses.into_iter().collect();
    summary.sort();
    let summary: Vec<String> = summary.iter().map(|(s, n)| format!("{s}={n}")).collect();
    println!(
        "simulation {run_id} done: placed={} delivered={} errors={} · the orders service says: {}",
        placed.len(),
        progress.delivered.load(Ordering::Relaxed),
        progress.errors.load(Ordering::Relaxed),
        if summary.is_empty() {
            "nothing".to_owned()
        } else {
            summary.join(" ")
        },
    );
    Ok(())
}

/// A dish of the menu, with the options an order of it must pick.
struct Dish {
    id: String,
    /// `{groupId, choiceId}` for the first choices of every required option group.
    required_options: Vec<Value>,
}

impl Dish {
    fn from_menu(dish: &Value) -> Option<Self> {
        let id = dish["id"].as_str()?.to_owned();
        let mut required_options = Vec::new();
        for group in dish["options"].as_array().into_iter().flatten() {
            let needed = usize::try_from(group["minChoices"].as_u64().unwrap_or(0)).ok()?;
            let choices = group["choices"].as_array().into_iter().flatten();
            for choice in choices.take(needed) {
                required_options.push(json!({"groupId": group["id"], "choiceId": choice["id"]}));
            }
        }
        Some(Self {
            id,
            required_options,
        })
    }
}

async fn place_order(
    api: &Api,
    customer: &Session,
    dishes: &[Dish],
    restaurant: Point,
    dice: &mut Dice,
) -> anyhow::Result<Uuid> {
    let count = 1 + dice.below(3);
    let items: Vec<Value> = (0..count)
        .map(|_| {
            let dish = &dishes[dice.below(dishes.len())];
            json!({"dishId": dish.id, "quantity": 1, "options": dish.required_options})
        })
        .collect();
    // Somewhere between half a kilometre and three kilometres away, in any direction.
    let km = 0.5 + dice.unit() * 2.5;
    let angle = dice.unit() * std::f64::consts::TAU;
    let lat = restaurant.lat + km * angle.sin() / 111.2;
    let lon = restaurant.lon + km * angle.cos() / (111.2 * restaurant.lat.to_radians().cos());
    let street = format!("{} rue de Rivoli", 1 + dice.below(200));
    let answer = api
        .expect(
            Method::POST,
            format!("{}/orders", api.orders),
            Some(&customer.token),
            Some(json!({
                "items": items,
                "deliveryAddress": {"street": street, "city": "Paris", "postalCode": "75004", "lat": lat, "lon": lon},
                "contactPhone": "+33 6 12 34 56 78",
            })),
        )
        .await?;
    answer["orderId"]
        .as_str()
        .and_then(|id| id.parse().ok())
        .ok_or_else(|| anyhow!("no orderId in {answer}"))
}

async fn set_shift(
    api: &Api,
    courier: &Session,
    on_shift: bool,
    patience: Duration,
) -> anyhow::Result<()> {
    let until = Instant::now() + patience;
    loop {
        let (status, answer) = api
            .call(
                Method::POST,
                format!("{}/couriers/me/shift", api.delivery),
                Some(&courier.token),
                Some(json!({"onShift": on_shift})),
            )
            .await?;
        if status.is_success() {
            return Ok(());
        }
        if Instant::now() >= until {
            bail!("{} cannot change shift: {status} {answer}", courier.name);
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

async fn send_position(api: &Api, courier: &Session, at: Point) -> anyhow::Result<()> {
    api.expect(
        Method::POST,
        format!("{}/couriers/me/position", api.delivery),
        Some(&courier.token),
        Some(json!({"lat": at.lat, "lon": at.lon})),
    )
    .await
    .map(|_| ())
}

/// The chef: starts each dish as it arrives, marks it ready `cook_time` later.
async fn cook(
    api: Arc<Api>,
    chef: Session,
    cook_time: Duration,
    progress: Arc<Progress>,
    mut stopped: watch::Receiver<bool>,
) {
    let mut started: HashMap<(String, u64), Instant> = HashMap::new();
    while !*stopped.borrow() {
        match api
            .expect(
                Method::GET,
                format!("{}/tickets", api.kitchen),
                Some(&chef.token),
                None,
            )
            .await
        {
            Ok(tickets) => {
                for ticket in tickets.as_array().into_iter().flatten() {
                    if let Err(error) =
                        cook_ticket(&api, &chef, ticket, cook_time, &mut started, &progress).await
                    {
                        progress.error("cooking", &error);
                    }
                }
            }
            Err(error) => progress.error("reading the kitchen queue", &error),
        }
        tokio::select! {
            _ = stopped.changed() => {}
            () = tokio::time::sleep(Duration::from_millis(500)) => {}
        }
    }
}

async fn cook_ticket(
    api: &Api,
    chef: &Session,
    ticket: &Value,
    cook_time: Duration,
    started: &mut HashMap<(String, u64), Instant>,
    progress: &Progress,
) -> anyhow::Result<()> {
    let Some(order_id) = ticket["orderId"].as_str() else {
        return Ok(());
    };
    let items = ticket["items"].as_array().cloned().unwrap_or_default();
    let mut ready = 0;
    for item in &items {
        let Some(index) = item["index"].as_u64() else {
            continue;
        };
        let key = (order_id.to_owned(), index);
        let step = match item["status"].as_str() {
            Some("pending") => "start",
            Some("in_preparation") => {
                let since = *started.entry(key.clone()).or_insert_with(Instant::now);
                if since.elapsed() < cook_time {
                    continue;
                }
                "ready"
            }
            Some("ready") => {
                ready += 1;
                continue;
            }
            _ => continue,
        };
        let path = format!("{}/tickets/{order_id}/items/{index}/{step}", api.kitchen);
        let (status, answer) = api
            .call(Method::POST, path, Some(&chef.token), Some(json!({})))
            .await?;
        match (step, status) {
            ("start", status) if status.is_success() => {
                started.insert(key, Instant::now());
            }
            ("ready", status) if status.is_success() => {
                started.remove(&key);
                ready += 1;
            }
            // The queue moved on meanwhile (cancelled, another chef): nothing to do.
            (_, StatusCode::CONFLICT | StatusCode::NOT_FOUND) => {}
            (_, status) => bail!("{step} item {index} of {order_id}: {status} {answer}"),
        }
    }
    if !items.is_empty() && ready == items.len() {
        progress.cooked.fetch_add(1, Ordering::Relaxed);
    }
    Ok(())
}

/// How couriers ride.
#[derive(Clone, Copy)]
struct Ride {
    duration: Duration,
    positions_per_minute: u32,
}

/// One courier: picks up what dispatch gives them, rides to the door, delivers.
async fn ride(
    api: Arc<Api>,
    courier: Session,
    restaurant: Point,
    ride: Ride,
    progress: Arc<Progress>,
    mut stopped: watch::Receiver<bool>,
) {
    let mut waiting_for_food: Option<String> = None;
    while !*stopped.borrow() {
        if let Err(error) = ride_once(
            &api,
            &courier,
            restaurant,
            ride,
            &progress,
            &mut waiting_for_food,
            &stopped,
        )
        .await
        {
            progress.error(&format!("{}'s round", courier.name), &error);
        }
        tokio::select! {
            _ = stopped.changed() => {}
            () = tokio::time::sleep(Duration::from_millis(400)) => {}
        }
    }
}

async fn ride_once(
    api: &Api,
    courier: &Session,
    restaurant: Point,
    ride: Ride,
    progress: &Progress,
    waiting_for_food: &mut Option<String>,
    stopped: &watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let mine = api
        .expect(
            Method::GET,
            format!("{}/deliveries", api.delivery),
            Some(&courier.token),
            None,
        )
        .await?;
    let Some(delivery) = mine
        .as_array()
        .into_iter()
        .flatten()
        .find(|d| matches!(d["status"].as_str(), Some("assigned" | "picked_up")))
    else {
        return Ok(());
    };
    let order_id = delivery["orderId"].as_str().unwrap_or_default().to_owned();
    let door = Point {
        lat: delivery["address"]["lat"]
            .as_f64()
            .unwrap_or(restaurant.lat),
        lon: delivery["address"]["lon"]
            .as_f64()
            .unwrap_or(restaurant.lon),
    };
    if delivery["status"] == "assigned" {
        send_position(api, courier, restaurant).await?;
        let (status, answer) = api
            .call(
                Method::POST,
                format!("{}/deliveries/{order_id}/pickup", api.delivery),
                Some(&courier.token),
                Some(json!({})),
            )
            .await?;
        if status == StatusCode::CONFLICT {
            // Sent ahead of the food: wait at the pass.
            if waiting_for_food.as_deref() != Some(&order_id) {
                println!("        {} waits at the pass for {order_id}", courier.name);
                *waiting_for_food = Some(order_id);
            }
            return Ok(());
        }
        if !status.is_success() {
            bail!("pickup of {order_id}: {status} {answer}");
        }
        progress.picked_up.fetch_add(1, Ordering::Relaxed);
    }
    // Ride along the straight line, a position every so often.
    let steps = (u64::from(ride.positions_per_minute) * ride.duration.as_secs() / 60).max(1);
    let pause = ride.duration / u32::try_from(steps).unwrap_or(u32::MAX);
    for step in 1..=steps {
        if *stopped.borrow() {
            return Ok(());
        }
        tokio::time::sleep(pause).await;
        let fraction = step as f64 / steps as f64;
        send_position(api, courier, restaurant.towards(door, fraction)).await?;
    }
    let (status, answer) = api
        .call(
            Method::POST,
            format!("{}/deliveries/{order_id}/deliver", api.delivery),
            Some(&courier.token),
            Some(json!({"receivedBy": "the customer"})),
        )
        .await?;
    if !status.is_success() {
        bail!("delivery of {order_id}: {status} {answer}");
    }
    progress.delivered.fetch_add(1, Ordering::Relaxed);
    println!("        {} delivered {order_id}", courier.name);
    // Back to the restaurant for the next one.
    send_position(api, courier, restaurant).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_people_write_them() {
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("15"), Ok(Duration::from_secs(15)));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("3 weeks").is_err());
    }

    #[test]
    fn a_ride_goes_in_a_straight_line_from_the_restaurant_to_the_door() {
        let (from, to) = (
            Point {
                lat: 48.0,
                lon: 2.0,
            },
            Point {
                lat: 49.0,
                lon: 3.0,
            },
        );
        assert_eq!(from.towards(to, 0.0), from);
        assert_eq!(from.towards(to, 1.0), to);
        assert_eq!(
            from.towards(to, 0.5),
            Point {
                lat: 48.5,
                lon: 2.5
            }
        );
    }
}
