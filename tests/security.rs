//! The security suite (issue 9, with the matrix of issue 3), on the real system: the four
//! services as processes, real PostgreSQL and NATS.
//!
//! - The role × endpoint × object matrix: every endpoint of API.md and of the OpenAPI
//!   documents, called with no token and as customer, other customer, chef, courier, other
//!   courier and manager, on an object of the customer and courier (A) and one of the others
//!   (B). Each cell has an expected status; **no refused cell may answer 2xx**, and a refusal
//!   changes nothing (the event stores are unchanged after all of them).
//! - Token attacks against every service: `alg: none`, HS256 signed with the public key,
//!   wrong audience or issuer, expired, another key, unknown key id, tampered claims, a
//!   disabled account's token; refresh-token reuse ends the session; logout.
//! - Mass assignment: `role`, `status`, `price`, `total`, `customerId`, `accountId` sent by a
//!   customer or a courier are ignored or refused, never applied.
//! - Bad input: oversized bodies (413, also chunked), malformed JSON (400), wrong media type
//!   (415), all problem+json; login rate limit (429 with `Retry-After`).
//! - Live streams refuse other users' orders and deliveries, and the notification stream
//!   carries only the caller's own.
//! - Resource limits: page sizes, the live-stream cap (503 when full, freed on disconnect).
#![allow(clippy::unwrap_used, clippy::too_many_lines)]

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use brigade_platform::auth::{sign_access_token, AccessClaims, Role};
use chrono::Utc;
use ed25519_dalek::SigningKey;
use hmac::{Hmac, Mac};
use reqwest::Method;
use serde_json::{json, Value};
use sha2::Sha256;
use support::{cook, eventually, Options, Session, System};
use uuid::Uuid;

/// Who calls.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Who {
    Anonymous,
    Customer,
    OtherCustomer,
    Chef,
    Courier,
    OtherCourier,
    Manager,
}

const EVERYONE: [Who; 7] = [
    Who::Anonymous,
    Who::Customer,
    Who::OtherCustomer,
    Who::Chef,
    Who::Courier,
    Who::OtherCourier,
    Who::Manager,
];

impl Who {
    fn short(self) -> &'static str {
        match self {
            Who::Anonymous => "none",
            Who::Customer => "cust",
            Who::OtherCustomer => "cust2",
            Who::Chef => "chef",
            Who::Courier => "cour",
            Who::OtherCourier => "cour2",
            Who::Manager => "mgr",
        }
    }
}

/// Which object a cell targets: A belongs to `Customer` (and is assigned to `Courier`), B to
/// `OtherCustomer` (and `OtherCourier`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Obj {
    A,
    B,
}

/// Who may call an endpoint: API.md's "who" column as a rule.
#[derive(Clone, Copy, Debug)]
enum Rule {
    Anyone,
    /// Any signed-in caller; `Some(status)`: the call is refused anyway with that status
    /// (a wrong current password), but never with 401/403.
    SignedIn(Option<u16>),
    /// Only these; other signed-in callers get 403.
    Only(&'static [Who]),
    /// An order: its customer or staff; another customer is told it does not exist (404).
    OrderOwnerOrStaff,
    /// Cancelling an order: its customer or a manager; another customer 404; chef, courier 403.
    OrderOwnerOrManager,
    /// A delivery: its customer, its courier, the manager; anyone else 404 (existence is private).
    DeliveryParties,
    /// A courier's command on a delivery: the assigned courier; another courier 404; others 403.
    AssignedCourier,
    /// Nobody gets through: this status for every caller (a refresh without a valid token).
    Nobody(u16),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Expect {
    Allow,
    Deny(u16),
}

fn owner(obj: Obj) -> (Who, Who) {
    match obj {
        Obj::A => (Who::Customer, Who::Courier),
        Obj::B => (Who::OtherCustomer, Who::OtherCourier),
    }
}

fn expect(rule: Rule, who: Who, obj: Obj) -> Expect {
    if let Rule::Nobody(status) = rule {
        return Expect::Deny(status);
    }
    if matches!(rule, Rule::Anyone) {
        return Expect::Allow;
    }
    if who == Who::Anonymous {
        return Expect::Deny(401);
    }
    let (customer, courier) = owner(obj);
    let is_customer = matches!(who, Who::Customer | Who::OtherCustomer);
    let is_courier = matches!(who, Who::Courier | Who::OtherCourier);
    match rule {
        Rule::Anyone | Rule::Nobody(_) => unreachable!(),
        Rule::SignedIn(None) => Expect::Allow,
        Rule::SignedIn(Some(status)) => Expect::Deny(status),
        Rule::Only(whos) => {
            if whos.contains(&who) {
                Expect::Allow
            } else {
                Expect::Deny(403)
            }
        }
        Rule::OrderOwnerOrStaff => match who {
            _ if who == customer => Expect::Allow,
            _ if is_customer => Expect::Deny(404),
            _ => Expect::Allow,
        },
        Rule::OrderOwnerOrManager => match who {
            _ if who == customer => Expect::Allow,
            _ if is_customer => Expect::Deny(404),
            Who::Manager => Expect::Allow,
            _ => Expect::Deny(403),
        },
        Rule::DeliveryParties => match who {
            Who::Manager => Expect::Allow,
            _ if who == customer || who == courier => Expect::Allow,
            _ => Expect::Deny(404),
        },
        Rule::AssignedCourier => match who {
            _ if who == courier => Expect::Allow,
            _ if is_courier => Expect::Deny(404),
            _ => Expect::Deny(403),
        },
    }
}

/// One endpoint of the matrix. `path` and `body` may name the objects: `{order}` (an order
/// on its way, assigned to a courier), `{cancel}` (an order to cancel), `{ticket}` (an open
/// ticket), `{dish}`, `{courier}` (the courier of the object), `{hired}` (a courier without an
/// account), `{webhook}`, `{account}` (a throw-away customer account); `{unique}` is fresh
/// for every call.
struct Row {
    service: &'static str,
    method: Method,
    path: &'static str,
    body: Option<Value>,
    headers: &'static [(&'static str, &'static str)],
    rule: Rule,
    /// A success changes state: run after every refusal and every read.
    mutates: bool,
    /// A live stream (server-sent events): only the status is read.
    stream: bool,
}

fn row(service: &'static str, method: Method, path: &'static str, rule: Rule) -> Row {
    let mutates = method != Method::GET;
    Row {
        service,
        method,
        path,
        body: None,
        headers: &[],
        rule,
        mutates,
        stream: path.ends_with("/stream"),
    }
}

impl Row {
    fn body(mut self, body: Value) -> Self {
        self.body = Some(body);
        self
    }

    fn headers(mut self, headers: &'static [(&'static str, &'static str)]) -> Self {
        self.headers = headers;
        self
    }

    fn reads(mut self) -> Self {
        self.mutates = false;
        self
    }
}

/// Systems of this suite running at once: each holds some 30 PostgreSQL connections, and the
/// server's `max_connections` (100 by default) is shared with every other test.
static SYSTEMS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(2);

const CUSTOMERS: &[Who] = &[Who::Customer, Who::OtherCustomer];
const COURIERS: &[Who] = &[Who::Courier, Who::OtherCourier];
const MANAGER: &[Who] = &[Who::Manager];
const KITCHEN: &[Who] = &[Who::Chef, Who::Manager];
const CHEF: &[Who] = &[Who::Chef];
const COURIERS_AND_MANAGER: &[Who] = &[Who::Courier, Who::OtherCourier, Who::Manager];
const CUSTOMERS_AND_MANAGER: &[Who] = &[Who::Customer, Who::OtherCustomer, Who::Manager];

/// Every endpoint of the four services (API.md and the extra ones in `openapi/*.json`).
fn matrix() -> Vec<Row> {
    use Method as M;
    let mut rows = Vec::new();
    for service in support::SERVICES {
        for path in [
            "/",
            "/health/live",
            "/health/ready",
            "/metrics",
            "/openapi.json",
            "/docs",
        ] {
            rows.push(row(service, M::GET, path, Rule::Anyone));
        }
    }
    rows.extend([
        // identity
        row("identity", M::POST, "/auth/register", Rule::Anyone).body(json!({
            "email": "new.{unique}@brigade.test", "password": "mot de passe solide", "name": "Nouveau"
        })),
        row("identity", M::POST, "/auth/login", Rule::Anyone)
            .body(json!({"email": "{login}", "password": "mot de passe solide"}))
            .reads(),
        row("identity", M::POST, "/auth/refresh", Rule::Nobody(401))
            .body(json!({"refreshToken": "not-a-refresh-token"})),
        row("identity", M::POST, "/auth/logout", Rule::Anyone)
            .body(json!({"refreshToken": "not-a-refresh-token"})),
        row("identity", M::GET, "/me", Rule::SignedIn(None)),
        row("identity", M::PATCH, "/me", Rule::SignedIn(None))
            .body(json!({"phone": "+33 6 00 00 00 00"})),
        row("identity", M::POST, "/me/password", Rule::SignedIn(Some(422)))
            .body(json!({"currentPassword": "not my password", "newPassword": "a new long password"})),
        row("identity", M::POST, "/staff", Rule::Only(MANAGER)).body(json!({
            "email": "staff.{unique}@brigade.test", "password": "mot de passe solide", "name": "Renfort", "role": "chef"
        })),
        row("identity", M::PUT, "/accounts/{account}/role", Rule::Only(MANAGER))
            .body(json!({"role": "manager"})),
        row("identity", M::POST, "/accounts/{account}/disable", Rule::Only(MANAGER))
            .body(json!({"reason": "matrix"})),
        row("identity", M::GET, "/.well-known/jwks.json", Rule::Anyone),
        row("identity", M::POST, "/keys/rotate", Rule::Only(MANAGER)),
        // orders
        row("orders", M::GET, "/menu", Rule::Anyone),
        row("orders", M::GET, "/menu/dishes", Rule::Only(MANAGER)),
        row("orders", M::GET, "/menu/dishes/{dish}", Rule::Anyone),
        row("orders", M::POST, "/menu/dishes", Rule::Only(MANAGER)).body(json!({
            "name": "Plat {unique}", "category": "Plats", "price": {"amount": 1500, "currency": "EUR"}
        })),
        row("orders", M::PATCH, "/menu/dishes/{dish}", Rule::Only(MANAGER))
            .body(json!({"description": "Recette de la maison"})),
        row("orders", M::POST, "/orders", Rule::Only(CUSTOMERS))
            .headers(&[("Idempotency-Key", "{unique}")])
            .body(json!({
                "items": [{"dishId": "{dish}", "quantity": 1}],
                "deliveryAddress": {"street": "1 rue du Bac", "city": "Paris", "postalCode": "75007"}
            })),
        row("orders", M::GET, "/orders", Rule::Only(CUSTOMERS_AND_MANAGER)),
        row("orders", M::GET, "/orders/board", Rule::Only(MANAGER)),
        row("orders", M::GET, "/orders/{order}", Rule::OrderOwnerOrStaff),
        row("orders", M::GET, "/orders/{order}/stream", Rule::OrderOwnerOrStaff),
        row("orders", M::POST, "/orders/{cancel}/cancel", Rule::OrderOwnerOrManager)
            .body(json!({"reason": "matrix"})),
        // kitchen
        row("kitchen", M::GET, "/tickets", Rule::Only(KITCHEN)),
        row("kitchen", M::GET, "/tickets/{order}", Rule::Only(KITCHEN)),
        row("kitchen", M::GET, "/tickets/stream", Rule::Only(KITCHEN)),
        row("kitchen", M::GET, "/kitchen/metrics", Rule::Only(KITCHEN)),
        row("kitchen", M::POST, "/tickets/{ticket}/items/0/start", Rule::Only(CHEF)),
        row("kitchen", M::POST, "/tickets/{ticket}/items/0/undo", Rule::Only(CHEF)),
        row("kitchen", M::POST, "/tickets/{ticket}/items/0/ready", Rule::Only(CHEF)),
        row("kitchen", M::POST, "/tickets/{ticket}/bump", Rule::Only(CHEF)),
        row("kitchen", M::POST, "/tickets/{ticket}/reject", Rule::Only(KITCHEN))
            .body(json!({"reason": "plus de saumon"})),
        // delivery
        row("delivery", M::GET, "/deliveries", Rule::Only(COURIERS_AND_MANAGER)),
        row("delivery", M::GET, "/dispatch/queue", Rule::Only(MANAGER)),
        row("delivery", M::GET, "/deliveries/{order}", Rule::DeliveryParties),
        row("delivery", M::GET, "/deliveries/{order}/stream", Rule::DeliveryParties),
        row("delivery", M::GET, "/couriers", Rule::Only(MANAGER)),
        row("delivery", M::GET, "/couriers/me", Rule::Only(COURIERS)),
        row("delivery", M::GET, "/couriers/{courier}", Rule::Only(MANAGER)),
        row("delivery", M::GET, "/notifications", Rule::SignedIn(None)),
        row("delivery", M::GET, "/notifications/stream", Rule::SignedIn(None)),
        row("delivery", M::GET, "/webhooks", Rule::Only(MANAGER)),
        row("delivery", M::GET, "/webhooks/{webhook}/deliveries", Rule::Only(MANAGER)),
        row("delivery", M::POST, "/deliveries/{order}/assign", Rule::Only(MANAGER))
            .body(json!({"courierId": "{courier}"})),
        row("delivery", M::POST, "/deliveries/{order}/pickup", Rule::AssignedCourier),
        row("delivery", M::POST, "/deliveries/{order}/deliver", Rule::AssignedCourier)
            .body(json!({"receivedBy": "Camille"})),
        row("delivery", M::POST, "/deliveries/{order}/fail", Rule::AssignedCourier)
            .body(json!({"reason": "absent"})),
        row("delivery", M::POST, "/deliveries/{order}/decline", Rule::AssignedCourier),
        row("delivery", M::POST, "/couriers", Rule::Only(MANAGER))
            .body(json!({"name": "Renfort {unique}", "vehicle": "bike"})),
        row("delivery", M::PUT, "/couriers/{courier}", Rule::Only(MANAGER))
            .body(json!({"phone": "+33 6 11 22 33 44"})),
        row("delivery", M::DELETE, "/couriers/{hired}", Rule::Only(MANAGER)),
        row("delivery", M::POST, "/couriers/me/shift", Rule::Only(COURIERS))
            .body(json!({"onShift": true})),
        row("delivery", M::POST, "/couriers/me/position", Rule::Only(COURIERS))
            .body(json!({"lat": 48.86, "lon": 2.35})),
        row("delivery", M::POST, "/webhooks", Rule::Only(MANAGER))
            .body(json!({"url": "http://127.0.0.1:9/hook"})),
        row("delivery", M::POST, "/webhooks/{webhook}/retry", Rule::Only(MANAGER)),
        row("delivery", M::DELETE, "/webhooks/{webhook}", Rule::Only(MANAGER)),
    ]);
    rows
}

/// The objects of the matrix, A and B, and the callers.
struct Fixture {
    sessions: BTreeMap<Who, Session>,
    /// Placeholder → (value for A, value for B).
    objects: BTreeMap<&'static str, (String, String)>,
}

impl Fixture {
    fn token(&self, who: Who) -> Option<&str> {
        self.sessions.get(&who).map(|s| s.token.as_str())
    }

    fn fill(&self, text: &str, obj: Obj) -> String {
        let mut text = text.to_owned();
        for (name, (a, b)) in &self.objects {
            let value = if obj == Obj::A { a } else { b };
            text = text.replace(&format!("{{{name}}}"), value);
        }
        text.replace("{unique}", &Uuid::new_v4().simple().to_string())
    }

    fn fill_json(&self, value: &Value, obj: Obj) -> Value {
        serde_json::from_str(&self.fill(&value.to_string(), obj)).unwrap()
    }

    fn uses_objects(&self, row: &Row) -> bool {
        let text = format!(
            "{}{}",
            row.path,
            row.body.as_ref().map(Value::to_string).unwrap_or_default()
        );
        self.objects
            .keys()
            .any(|name| text.contains(&format!("{{{name}}}")))
    }
}

async fn send(system: &System, fixture: &Fixture, row: &Row, who: Who, obj: Obj) -> u16 {
    let path = fixture.fill(row.path, obj);
    let mut request = system
        .http
        .request(row.method.clone(), system.url(row.service, &path));
    if let Some(token) = fixture.token(who) {
        request = request.bearer_auth(token);
    }
    for (name, value) in row.headers {
        request = request.header(*name, fixture.fill(value, obj));
    }
    if let Some(body) = &row.body {
        request = request.json(&fixture.fill_json(body, obj));
    }
    if row.stream {
        // Headers only: the stream would never end.
        let response = request.send().await.unwrap();
        return response.status().as_u16();
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let _ = response.bytes().await;
    status
}

/// An order placed, cooked, and assigned to a courier by dispatch.
async fn order_on_its_way(system: &System, customer: &Session, chef: &Session, dish: &str) -> Uuid {
    let order = system
        .place_order(customer, json!([{"dishId": dish, "quantity": 1}]))
        .await;
    cook(system, chef, order).await;
    order
}

async fn assigned_courier(system: &System, manager: &Session, order: Uuid) -> String {
    let path = format!("/deliveries/{order}");
    let started = std::time::Instant::now();
    loop {
        let (status, body) = system.get("delivery", &path, &manager.token).await;
        if status == 200 && body["status"] == "assigned" {
            return body["courier"]["id"].as_str().unwrap().to_owned();
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "{order} never assigned: {body}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn total_events(system: &System) -> Vec<i64> {
    let mut counts = Vec::new();
    for service in support::SERVICES {
        let pool = system.db(service).await;
        counts.push(
            sqlx::query_scalar("SELECT count(*) FROM events")
                .fetch_one(&pool)
                .await
                .unwrap(),
        );
        pool.close().await;
    }
    counts
}

/// Waits until no service stores events any more (the automation after the set-up is done).
async fn quiet(system: &System) -> Vec<i64> {
    let mut last = total_events(system).await;
    loop {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let now = total_events(system).await;
        if now == last {
            return now;
        }
        last = now;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_endpoint_refuses_every_caller_it_should_and_no_refused_call_changes_anything() {
    let _turn = SYSTEMS.acquire().await.unwrap();
    let system = System::start().await;
    let manager = system.manager().await;
    let chef = system.staff(&manager, "chef", "Auguste").await;
    let courier_1 = system.courier_on_shift(&manager, "Lucie").await;
    let courier_2 = system.courier_on_shift(&manager, "Malik").await;
    let customer = system.customer("Alice").await;
    let other_customer = system.customer("Bruno").await;
    let login = system.customer("Login").await;
    let dish = system.dishes(1).await.remove(0);

    // A: Alice's order, on its way with one courier; B: Bruno's, with the other.
    let order_a = order_on_its_way(&system, &customer, &chef, &dish).await;
    let courier_a = assigned_courier(&system, &manager, order_a).await;
    let order_b = order_on_its_way(&system, &other_customer, &chef, &dish).await;
    let courier_b = assigned_courier(&system, &manager, order_b).await;
    assert_ne!(
        courier_a, courier_b,
        "a courier carries one delivery at a time"
    );
    let (courier, other_courier) = if courier_1.account_id.to_string() == courier_a {
        (courier_1, courier_2)
    } else {
        (courier_2, courier_1)
    };
    let item = json!([{"dishId": dish, "quantity": 1}, {"dishId": dish, "quantity": 2}]);
    let cancel_a = system.place_order(&customer, item.clone()).await;
    let cancel_b = system.place_order(&other_customer, item.clone()).await;
    let ticket_a = system.place_order(&customer, item.clone()).await;
    let ticket_b = system.place_order(&other_customer, item).await;
    for order in [cancel_a, cancel_b, ticket_a, ticket_b] {
        eventually(Duration::from_secs(30), || async {
            system
                .get("kitchen", &format!("/tickets/{order}"), &chef.token)
                .await
                .0
                == 200
        })
        .await;
    }
    let mut hired = Vec::new();
    let mut webhooks = Vec::new();
    let mut accounts = Vec::new();
    for n in 0..2 {
        let (status, body) = system
            .post(
                "delivery",
                "/couriers",
                &manager.token,
                json!({"name": format!("Sans compte {n}"), "vehicle": "car"}),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        hired.push(body["id"].as_str().unwrap().to_owned());
        let (status, body) = system
            .post(
                "delivery",
                "/webhooks",
                &manager.token,
                json!({"url": format!("http://127.0.0.1:9/hook{n}")}),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        webhooks.push(body["id"].as_str().unwrap().to_owned());
        accounts.push(
            system
                .customer(&format!("Jetable{n}"))
                .await
                .account_id
                .to_string(),
        );
    }

    let pair = |a: Uuid, b: Uuid| (a.to_string(), b.to_string());
    let fixture = Fixture {
        sessions: BTreeMap::from([
            (Who::Customer, customer.clone()),
            (Who::OtherCustomer, other_customer.clone()),
            (Who::Chef, chef.clone()),
            (Who::Courier, courier.clone()),
            (Who::OtherCourier, other_courier.clone()),
            (Who::Manager, manager.clone()),
        ]),
        objects: BTreeMap::from([
            ("order", pair(order_a, order_b)),
            ("cancel", pair(cancel_a, cancel_b)),
            ("ticket", pair(ticket_a, ticket_b)),
            ("dish", (dish.clone(), dish.clone())),
            (
                "courier",
                pair(courier.account_id, other_courier.account_id),
            ),
            ("hired", (hired[0].clone(), hired[1].clone())),
            ("webhook", (webhooks[0].clone(), webhooks[1].clone())),
            ("account", (accounts[0].clone(), accounts[1].clone())),
            ("login", (login.email.clone(), login.email.clone())),
        ]),
    };

    let rows = matrix();
    // Every cell: (row, who, object, expected).
    let mut cells = Vec::new();
    for (index, row) in rows.iter().enumerate() {
        let objects: &[Obj] = if fixture.uses_objects(row) {
            &[Obj::A, Obj::B]
        } else {
            &[Obj::A]
        };
        for who in EVERYONE {
            for obj in objects {
                cells.push((index, who, *obj, expect(row.rule, who, *obj)));
            }
        }
    }

    // 1. Every refusal, on a quiet system: nothing may answer 2xx, and nothing may change.
    let before = quiet(&system).await;
    let mut results: BTreeMap<(usize, Who, Obj), u16> = BTreeMap::new();
    for (index, who, obj, expected) in &cells {
        if let Expect::Deny(_) = expected {
            let status = send(&system, &fixture, &rows[*index], *who, *obj).await;
            results.insert((*index, *who, *obj), status);
        }
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after = total_events(&system).await;
    assert_eq!(
        before, after,
        "refused calls stored events (identity, orders, kitchen, delivery)"
    );

    // 2. Allowed reads; 3. allowed commands, in the table's order (pickup before deliver…).
    for mutating in [false, true] {
        for (index, who, obj, expected) in &cells {
            let row = &rows[*index];
            if *expected == Expect::Allow && row.mutates == mutating {
                let status = send(&system, &fixture, row, *who, *obj).await;
                results.insert((*index, *who, *obj), status);
            }
        }
    }

    // The verdict of every cell.
    let mut mismatches = Vec::new();
    let mut unauthorized_2xx = 0;
    let (mut allowed, mut denied) = (0, 0);
    for (index, who, obj, expected) in &cells {
        let row = &rows[*index];
        let status = results[&(*index, *who, *obj)];
        let ok = match expected {
            Expect::Deny(wanted) => {
                denied += 1;
                if (200..300).contains(&status) {
                    unauthorized_2xx += 1;
                }
                status == *wanted
            }
            Expect::Allow => {
                allowed += 1;
                if row.mutates {
                    // A command may find the object already moved on by an earlier allowed
                    // cell (cancelled, delivered): 409/422, never an authorization refusal.
                    (200..300).contains(&status) || status == 409 || status == 422
                } else {
                    (200..300).contains(&status)
                }
            }
        };
        if !ok {
            mismatches.push(format!(
                "{} {} {} as {:?} on {:?}: expected {:?}, got {status}",
                row.service, row.method, row.path, who, obj, expected
            ));
        }
    }

    // The matrix, as RELIABILITY.md shows it: status for A/B per caller.
    println!("\nrole x endpoint x object matrix ({} cells: {allowed} allowed, {denied} refused; unauthorized 2xx: {unauthorized_2xx})", cells.len());
    print!("{:<9} {:<7} {:<34}", "service", "method", "path");
    for who in EVERYONE {
        print!(" {:>7}", who.short());
    }
    println!();
    for (index, row) in rows.iter().enumerate() {
        print!(
            "{:<9} {:<7} {:<34}",
            row.service,
            row.method.as_str(),
            row.path
        );
        for who in EVERYONE {
            let a = results.get(&(index, who, Obj::A));
            let b = results.get(&(index, who, Obj::B));
            let cell = match (a, b) {
                (Some(a), Some(b)) => format!("{a}/{b}"),
                (Some(a), None) => a.to_string(),
                _ => "-".to_owned(),
            };
            print!(" {cell:>7}");
        }
        println!();
    }
    assert_eq!(
        unauthorized_2xx, 0,
        "refused callers got 2xx: {mismatches:#?}"
    );
    assert!(
        mismatches.is_empty(),
        "{} cells differ:\n{}",
        mismatches.len(),
        mismatches.join("\n")
    );

    // A customer's list holds only their orders.
    let (_, page) = system
        .get("orders", "/orders?pageSize=100", &other_customer.token)
        .await;
    let items = page["items"].as_array().unwrap();
    assert!(!items.is_empty());
    assert!(
        items
            .iter()
            .all(|o| o["customerId"] == other_customer.account_id.to_string()),
        "{page}"
    );
    // A courier's list holds only their deliveries.
    let (_, list) = system
        .get("delivery", "/deliveries", &other_courier.token)
        .await;
    assert!(
        list.as_array()
            .unwrap()
            .iter()
            .all(|d| d["courier"]["id"] == other_courier.account_id.to_string()),
        "{list}"
    );
    // Notifications: none about someone else's order.
    let (_, notes) = system
        .get(
            "delivery",
            "/notifications?limit=200",
            &other_customer.token,
        )
        .await;
    assert!(
        notes
            .as_array()
            .unwrap()
            .iter()
            .all(|n| n["orderId"] != order_a.to_string() && n["orderId"] != cancel_a.to_string()),
        "{notes}"
    );
    system.shutdown().await;
}

// --- tokens ----------------------------------------------------------------------------------

/// One authenticated endpoint per service, each answering 200 to a valid token of any role.
const GUARDED: [(&str, &str); 4] = [
    ("identity", "/me"),
    ("orders", "/menu/dishes"),
    ("kitchen", "/tickets"),
    ("delivery", "/couriers"),
];

fn b64_json(value: &Value) -> String {
    URL_SAFE_NO_PAD.encode(value.to_string())
}

/// The identity service's current signing key, read from its database (what a thief of that
/// database would have; here it signs tokens that are valid but for one claim).
async fn signing_key(system: &System) -> (String, SigningKey) {
    let pool = system.db("identity").await;
    let (kid, secret): (String, Vec<u8>) = sqlx::query_as(
        "SELECT kid, secret_key FROM signing_keys WHERE activates_at <= now() AND retired_at IS NULL
         ORDER BY activates_at DESC LIMIT 1",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    pool.close().await;
    let secret: [u8; 32] = secret.try_into().unwrap();
    (kid, SigningKey::from_bytes(&secret))
}

async fn status_with(
    system: &System,
    service: &str,
    path: &str,
    authorization: &str,
) -> (u16, Option<String>, Value) {
    let response = system
        .http
        .get(system.url(service, path))
        .header("Authorization", authorization)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let challenge = response
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_owned());
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    if status >= 400 {
        assert!(
            content_type.starts_with("application/problem+json"),
            "{service}{path}: {content_type}"
        );
    }
    (status, challenge, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_expired_and_revoked_tokens_are_refused_by_every_service_and_sessions_end() {
    let _turn = SYSTEMS.acquire().await.unwrap();
    let system = System::start().await;
    let manager = system.manager().await;
    let customer = system.customer("Eve").await;
    let (kid, key) = signing_key(&system).await;

    // The manager's real token opens every guarded endpoint: the attacks below fail for their
    // forgery alone.
    for (service, path) in GUARDED {
        let (status, _, body) =
            status_with(&system, service, path, &format!("Bearer {}", manager.token)).await;
        assert_eq!(status, 200, "{service}{path}: {body}");
    }

    let now = Utc::now();
    let claims =
        |role: Role| AccessClaims::new(manager.account_id, role, now, Duration::from_secs(900));
    let manager_claims = claims(Role::Manager);
    let jwks: Value = system
        .call(
            Method::GET,
            "identity",
            "/.well-known/jwks.json",
            None,
            None,
            &[],
        )
        .await
        .1;
    let public_x = jwks["keys"][0]["x"].as_str().unwrap().to_owned();
    let public_bytes = URL_SAFE_NO_PAD.decode(&public_x).unwrap();

    let mut attacks: Vec<(&str, String)> = Vec::new();
    let body = b64_json(&serde_json::to_value(&manager_claims).unwrap());
    let none_header = b64_json(&json!({"alg": "none", "typ": "JWT", "kid": kid}));
    attacks.push(("alg none, no signature", format!("{none_header}.{body}.")));
    attacks.push(("alg none, two parts", format!("{none_header}.{body}")));
    let none_upper = b64_json(&json!({"alg": "NONE", "typ": "JWT", "kid": kid}));
    attacks.push(("alg NONE", format!("{none_upper}.{body}.")));
    for (label, secret) in [
        ("HS256 with the public key (raw)", public_bytes.clone()),
        (
            "HS256 with the public key (base64url)",
            public_x.clone().into_bytes(),
        ),
        (
            "HS256 with the JWKS document",
            jwks.to_string().into_bytes(),
        ),
    ] {
        let header = b64_json(&json!({"alg": "HS256", "typ": "JWT", "kid": kid}));
        let mut mac = Hmac::<Sha256>::new_from_slice(&secret).unwrap();
        mac.update(format!("{header}.{body}").as_bytes());
        let signature = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
        attacks.push((label, format!("{header}.{body}.{signature}")));
    }
    let mut wrong_audience = manager_claims.clone();
    wrong_audience.aud = "another-system".into();
    attacks.push((
        "wrong audience",
        sign_access_token(&key, &kid, &wrong_audience),
    ));
    let mut wrong_issuer = manager_claims.clone();
    wrong_issuer.iss = "someone-else".into();
    attacks.push(("wrong issuer", sign_access_token(&key, &kid, &wrong_issuer)));
    let expired = AccessClaims::new(
        manager.account_id,
        Role::Manager,
        now - chrono::Duration::hours(2),
        Duration::from_secs(900),
    );
    attacks.push(("expired", sign_access_token(&key, &kid, &expired)));
    let future = AccessClaims::new(
        manager.account_id,
        Role::Manager,
        now + chrono::Duration::hours(2),
        Duration::from_secs(900),
    );
    attacks.push((
        "issued in the future",
        sign_access_token(&key, &kid, &future),
    ));
    let other_key = SigningKey::from_bytes(&rand::random::<[u8; 32]>());
    attacks.push((
        "signed by another key, real kid",
        sign_access_token(&other_key, &kid, &manager_claims),
    ));
    attacks.push((
        "signed by another key, unknown kid",
        sign_access_token(&other_key, "made-up-kid", &manager_claims),
    ));
    // Tampered: the customer's real token with its role raised, signature kept.
    let parts: Vec<&str> = customer.token.split('.').collect();
    let mut promoted: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
    promoted["role"] = json!("manager");
    attacks.push((
        "tampered role",
        format!("{}.{}.{}", parts[0], b64_json(&promoted), parts[2]),
    ));
    let mut other_sub = promoted.clone();
    other_sub["role"] = json!("customer");
    other_sub["sub"] = json!(manager.account_id);
    attacks.push((
        "tampered subject",
        format!("{}.{}.{}", parts[0], b64_json(&other_sub), parts[2]),
    ));
    attacks.push(("signature stripped", format!("{}.{}.", parts[0], parts[1])));
    attacks.push(("garbage", "not.a.token".to_owned()));
    attacks.push(("oversized", "a".repeat(10_000)));

    let mut refused = 0;
    for (label, token) in &attacks {
        for (service, path) in GUARDED {
            let (status, challenge, body) =
                status_with(&system, service, path, &format!("Bearer {token}")).await;
            assert_eq!(status, 401, "{label} at {service}{path}: {body}");
            assert!(
                challenge.is_some_and(|c| c.starts_with("Bearer")),
                "{label} at {service}{path}: WWW-Authenticate"
            );
            refused += 1;
        }
    }
    // Not a bearer token at all, or none.
    for authorization in [
        "Basic bWFuYWdlcjpwYXNzd29yZA==",
        "Bearer",
        "",
        &manager.token,
    ] {
        for (service, path) in GUARDED {
            let (status, _, _) = status_with(&system, service, path, authorization).await;
            assert_eq!(
                status, 401,
                "Authorization: {authorization:?} at {service}{path}"
            );
        }
    }
    println!(
        "token attacks: {} forgeries x 4 services = {refused} refusals, 0 accepted",
        attacks.len()
    );

    // A disabled account's tokens stop working everywhere (identity's event reaches each).
    let chef = system.staff(&manager, "chef", "Gaston").await;
    for (service, path) in [("identity", "/me"), ("kitchen", "/tickets")] {
        assert_eq!(
            status_with(&system, service, path, &format!("Bearer {}", chef.token))
                .await
                .0,
            200
        );
    }
    let (status, body) = system
        .post(
            "identity",
            &format!("/accounts/{}/disable", chef.account_id),
            &manager.token,
            json!({"reason": "left"}),
        )
        .await;
    assert_eq!(status, 204, "{body}");
    for (service, path) in [
        ("identity", "/me"),
        ("orders", "/orders/board"),
        ("kitchen", "/tickets"),
        ("delivery", "/notifications"),
    ] {
        eventually(Duration::from_secs(20), || async {
            status_with(&system, service, path, &format!("Bearer {}", chef.token))
                .await
                .0
                == 401
        })
        .await;
    }
    system.shutdown().await;
}

async fn login_full(system: &System, email: &str, password: &str) -> (u16, Value, Option<String>) {
    let response = system
        .http
        .post(system.url("identity", "/auth/login"))
        .json(&json!({"email": email, "password": password}))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_owned());
    (
        status,
        response.json().await.unwrap_or(Value::Null),
        retry_after,
    )
}

async fn refresh(system: &System, token: &str) -> (u16, Value) {
    system
        .call(
            Method::POST,
            "identity",
            "/auth/refresh",
            None,
            Some(json!({"refreshToken": token})),
            &[],
        )
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_rate_limits_mass_assignment_and_bad_input() {
    let _turn = SYSTEMS.acquire().await.unwrap();
    let system = System::start().await;
    let manager = system.manager().await;
    let customer = system.customer("Iris").await;
    let other = system.customer("Jules").await;

    // --- refresh-token reuse ends the session; logout ends one session ---
    let (status, first, _) = login_full(&system, &customer.email, "mot de passe solide").await;
    assert_eq!(status, 200);
    let (status, second_login, _) =
        login_full(&system, &customer.email, "mot de passe solide").await;
    assert_eq!(status, 200);
    assert_ne!(
        first["refreshToken"], second_login["refreshToken"],
        "each sign-in is a new session"
    );
    let r1 = first["refreshToken"].as_str().unwrap().to_owned();
    let (status, rotated) = refresh(&system, &r1).await;
    assert_eq!(status, 200, "{rotated}");
    let r2 = rotated["refreshToken"].as_str().unwrap().to_owned();
    assert_ne!(r1, r2, "refresh tokens rotate on every use");
    let (status, body) = refresh(&system, &r1).await;
    assert_eq!(status, 401, "reusing a rotated token: {body}");
    assert_eq!(
        body["type"],
        "https://brigade.dev/errors/refresh-token-reused"
    );
    let (status, body) = refresh(&system, &r2).await;
    assert_eq!(status, 401, "the session of a reused token is over: {body}");
    // The other session of the same account is untouched; logout ends it.
    let other_session = second_login["refreshToken"].as_str().unwrap().to_owned();
    let (status, again) = refresh(&system, &other_session).await;
    assert_eq!(status, 200, "{again}");
    let r3 = again["refreshToken"].as_str().unwrap().to_owned();
    let (status, _) = system
        .call(
            Method::POST,
            "identity",
            "/auth/logout",
            None,
            Some(json!({"refreshToken": r3})),
            &[],
        )
        .await;
    assert_eq!(status, 204);
    assert_eq!(
        refresh(&system, &r3).await.0,
        401,
        "a logged-out session cannot refresh"
    );
    // The response of a sign-in is not cached anywhere.
    let response = system
        .http
        .post(system.url("identity", "/auth/login"))
        .json(&json!({"email": customer.email, "password": "mot de passe solide"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["cache-control"], "no-store");

    // --- login rate limit: the 6th failure in a row is 429 with Retry-After, even with the
    // right password, and an unknown address is limited the same way ---
    let victim = system.customer("Victime").await;
    for attempt in 1..=5 {
        let (status, body, _) = login_full(&system, &victim.email, "wrong password!").await;
        assert_eq!(status, 401, "failure {attempt}: {body}");
        assert_eq!(
            body["type"],
            "https://brigade.dev/errors/invalid-credentials"
        );
    }
    let (status, body, retry_after) = login_full(&system, &victim.email, "wrong password!").await;
    assert_eq!(status, 429, "{body}");
    let retry_after: u64 = retry_after.expect("Retry-After").parse().unwrap();
    assert!(retry_after > 0 && retry_after <= 15 * 60, "{retry_after}");
    let (status, _, _) = login_full(&system, &victim.email, "mot de passe solide").await;
    assert_eq!(
        status, 429,
        "a blocked account is blocked for the right password too"
    );
    for _ in 1..=5 {
        assert_eq!(
            login_full(&system, "nobody@brigade.test", "wrong password!")
                .await
                .0,
            401
        );
    }
    assert_eq!(
        login_full(&system, "nobody@brigade.test", "wrong password!")
            .await
            .0,
        429
    );
    // Others are not affected.
    assert_eq!(
        login_full(&system, &other.email, "mot de passe solide")
            .await
            .0,
        200
    );

    // --- mass assignment ---
    // Sign-up with a role, an id, a status: a customer, with a fresh id.
    let email = format!("sneaky.{}@brigade.test", Uuid::new_v4().simple());
    let planted = Uuid::new_v4();
    let (status, body) = system
        .call(Method::POST, "identity", "/auth/register", None, Some(json!({
            "email": email, "password": "mot de passe solide", "name": "Sneaky",
            "role": "manager", "accountId": planted, "id": planted, "disabled": false, "status": "active"
        })), &[])
        .await;
    assert_eq!(status, 201, "{body}");
    assert_ne!(body["accountId"], json!(planted));
    let sneaky = system.login(&email, "mot de passe solide").await;
    let (_, me) = system.get("identity", "/me", &sneaky.token).await;
    assert_eq!(me["role"], "customer", "{me}");
    // PATCH /me with a role, an e-mail, an id: only the profile fields change.
    let (status, me) = system
        .call(
            Method::PATCH,
            "identity",
            "/me",
            Some(&sneaky.token),
            Some(json!({
                "name": "Sneaky II", "role": "manager", "email": "boss@brigade.test", "id": planted
            })),
            &[],
        )
        .await;
    assert_eq!(status, 200, "{me}");
    assert_eq!(me["role"], "customer");
    assert_eq!(me["email"], email);
    assert_eq!(me["id"], json!(sneaky.account_id));
    assert_eq!(me["name"], "Sneaky II");
    // A new token still says customer; manager endpoints still refuse it.
    let sneaky = system.login(&email, "mot de passe solide").await;
    assert_eq!(
        system.get("orders", "/menu/dishes", &sneaky.token).await.0,
        403
    );
    // Promoting oneself: refused.
    let (status, _) = system
        .call(
            Method::PUT,
            "identity",
            &format!("/accounts/{}/role", sneaky.account_id),
            Some(&sneaky.token),
            Some(json!({"role": "manager"})),
            &[],
        )
        .await;
    assert_eq!(status, 403);

    // An order with a status, a price, a total, another customer, a planted id: the menu's
    // prices, the caller as customer, status placed.
    let (_, menu) = system
        .call(Method::GET, "orders", "/menu", None, None, &[])
        .await;
    let dish = &menu["categories"][0]["dishes"][0];
    let price = dish["price"]["amount"].as_i64().unwrap();
    let (status, placed) = system
        .call(Method::POST, "orders", "/orders", Some(&customer.token), Some(json!({
            "items": [{"dishId": dish["id"], "quantity": 2, "price": {"amount": 1, "currency": "EUR"},
                       "unitPrice": {"amount": 1, "currency": "EUR"}, "name": "Free lunch"}],
            "deliveryAddress": {"street": "5 rue Oberkampf", "city": "Paris", "postalCode": "75011"},
            "status": "delivered", "total": {"amount": 1, "currency": "EUR"},
            "customerId": other.account_id, "orderId": planted
        })), &[("Idempotency-Key", &Uuid::new_v4().to_string())])
        .await;
    assert_eq!(status, 201, "{placed}");
    assert_eq!(placed["status"], "placed");
    assert_eq!(placed["total"]["amount"], price * 2, "{placed}");
    assert_ne!(placed["orderId"], json!(planted));
    let order_id = placed["orderId"].as_str().unwrap().to_owned();
    let (status, order) = system
        .get("orders", &format!("/orders/{order_id}"), &customer.token)
        .await;
    assert_eq!(status, 200);
    assert_eq!(order["customerId"], json!(customer.account_id), "{order}");
    assert_eq!(order["items"][0]["unitPrice"]["amount"], price, "{order}");
    assert_eq!(order["items"][0]["name"], dish["name"], "{order}");
    assert_eq!(
        system
            .get("orders", &format!("/orders/{order_id}"), &other.token)
            .await
            .0,
        404
    );
    // A cancellation with a status: it cancels, nothing else.
    let (status, body) = system
        .post(
            "orders",
            &format!("/orders/{order_id}/cancel"),
            &customer.token,
            json!({"status": "delivered", "refund": 100000}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "cancelled");
    // A courier setting their own activity, account or id: only the shift changes.
    let courier = system.courier_on_shift(&manager, "Paco").await;
    let (status, view) = system
        .post("delivery", "/couriers/me/shift", &courier.token, json!({
            "onShift": true, "active": false, "accountId": other.account_id, "id": planted, "name": "Boss"
        }))
        .await;
    assert_eq!(status, 200, "{view}");
    assert_eq!(view["id"], json!(courier.account_id), "{view}");
    assert_eq!(view["active"], true, "{view}");
    assert_ne!(view["name"], "Boss");
    // A staff account with a role that does not exist: refused, nothing created.
    let (status, body) = system
        .post("identity", "/staff", &manager.token, json!({
            "email": format!("root.{}@brigade.test", Uuid::new_v4().simple()), "password": "mot de passe solide",
            "name": "Root", "role": "admin"
        }))
        .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["field"], "role");

    // --- bad input: sizes, JSON, media types; always problem+json, nothing stored ---
    let before = total_events(&system).await;
    let oversized = format!("{{\"name\": \"{}\"}}", "x".repeat(300 * 1024));
    let posts = [
        ("identity", "/auth/login"),
        ("orders", "/orders"),
        ("kitchen", &*format!("/tickets/{order_id}/reject")),
        ("delivery", "/couriers/me/position"),
    ];
    // Oversized requests on connections of their own: the service answers 413 before reading
    // the rest and drops the connection, which must not spoil the next request's.
    let unpooled = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    for (service, path) in posts {
        let token = match service {
            "kitchen" => manager.token.clone(),
            "delivery" => courier.token.clone(),
            _ => customer.token.clone(),
        };
        // Announced by Content-Length.
        let response = unpooled
            .post(system.url(service, path))
            .bearer_auth(&token)
            .header("Content-Type", "application/json")
            .header("Idempotency-Key", Uuid::new_v4().to_string())
            .body(oversized.clone())
            .send()
            .await;
        match response {
            Ok(response) => {
                assert_eq!(response.status().as_u16(), 413, "{service}{path}");
                assert_eq!(
                    response.headers()["content-type"],
                    "application/problem+json",
                    "{service}{path}"
                );
                let body: Value = response.json().await.unwrap();
                assert_eq!(body["type"], "https://brigade.dev/errors/payload-too-large");
            }
            // The service may close the connection while the client is still sending.
            Err(error) => assert!(
                error.is_request() || error.is_body(),
                "{service}{path}: {error}"
            ),
        }
        // Streamed in chunks, no Content-Length.
        let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
            (0..40).map(|_| Ok(vec![b' '; 8 * 1024])).collect();
        let response = unpooled
            .post(system.url(service, path))
            .bearer_auth(&token)
            .header("Content-Type", "application/json")
            .header("Idempotency-Key", Uuid::new_v4().to_string())
            .body(reqwest::Body::wrap_stream(futures::stream::iter(chunks)))
            .send()
            .await;
        if let Ok(response) = response {
            assert_eq!(response.status().as_u16(), 413, "chunked {service}{path}");
        }
        // Malformed JSON.
        let response = system
            .http
            .post(system.url(service, path))
            .bearer_auth(&token)
            .header("Content-Type", "application/json")
            .header("Idempotency-Key", Uuid::new_v4().to_string())
            .body("{\"items\": [")
            .send()
            .await
            .unwrap();
        assert_eq!(
            response.status().as_u16(),
            400,
            "malformed JSON at {service}{path}"
        );
        assert_eq!(
            response.headers()["content-type"],
            "application/problem+json"
        );
        // Not JSON at all.
        let response = system
            .http
            .post(system.url(service, path))
            .bearer_auth(&token)
            .header("Content-Type", "text/plain")
            .header("Idempotency-Key", Uuid::new_v4().to_string())
            .body("hello")
            .send()
            .await
            .unwrap();
        assert_eq!(
            response.status().as_u16(),
            415,
            "text/plain at {service}{path}"
        );
        assert_eq!(
            response.headers()["content-type"],
            "application/problem+json"
        );
        // Wrong types for numbers, deep nesting.
        let response = system
            .http
            .post(system.url(service, path))
            .bearer_auth(&token)
            .header("Idempotency-Key", Uuid::new_v4().to_string())
            .json(&json!({"items": [{"dishId": "x", "quantity": "lots"}], "lat": "north", "lon": [1], "email": {"$ne": ""}, "password": ["x"], "reason": {"a": 1}}))
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        assert!(
            status == 400 || status == 422,
            "wrong types at {service}{path}: {status}"
        );
        let nested = format!("{}{}", "[".repeat(5000), "]".repeat(5000));
        let response = system
            .http
            .post(system.url(service, path))
            .bearer_auth(&token)
            .header("Content-Type", "application/json")
            .header("Idempotency-Key", Uuid::new_v4().to_string())
            .body(nested)
            .send()
            .await
            .unwrap();
        assert_eq!(
            response.status().as_u16(),
            400,
            "deeply nested JSON at {service}{path}"
        );
    }
    // U+0000 in any text (found by the fuzzer: PostgreSQL's jsonb cannot store it, so it used
    // to pass every check and fail as a 500 when the event was written): 400 at the door.
    let (status, body) = system
        .call(
            Method::POST,
            "orders",
            "/orders",
            Some(&customer.token),
            Some(json!({
                "items": [{"dishId": dish["id"], "quantity": 1, "note": "sans\u{0}oignons"}],
                "deliveryAddress": {"street": "5 rue Oberkampf", "city": "Paris", "postalCode": "75011"}
            })),
            &[("Idempotency-Key", &Uuid::new_v4().to_string())],
        )
        .await;
    assert_eq!(status, 400, "{body}");
    let (status, _) = system
        .call(
            Method::PATCH,
            "identity",
            "/me",
            Some(&customer.token),
            Some(json!({"name": "Iris\u{0}"})),
            &[],
        )
        .await;
    assert_eq!(status, 400);
    // An unknown method on a known path: 405 naming the allowed ones.
    let response = system
        .http
        .request(Method::DELETE, system.url("orders", "/menu"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 405);
    assert_eq!(response.headers()["allow"], "GET, HEAD");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        total_events(&system).await,
        before,
        "refused input stored events"
    );

    // --- page sizes are capped ---
    for (path, status) in [
        ("/orders?pageSize=100", 200),
        ("/orders?pageSize=101", 400),
        ("/orders?pageSize=1000000", 400),
        ("/orders?pageSize=0", 400),
        ("/orders?page=0", 400),
        ("/orders?page=99999999999", 400),
    ] {
        assert_eq!(
            system.get("orders", path, &customer.token).await.0,
            status,
            "{path}"
        );
    }
    let (status, notes) = system
        .get("delivery", "/notifications?limit=100000", &customer.token)
        .await;
    assert_eq!(status, 200);
    assert!(notes.as_array().unwrap().len() <= 200);
    system.shutdown().await;
}

// --- live streams ----------------------------------------------------------------------------

async fn open_stream(system: &System, service: &str, path: &str, token: &str) -> reqwest::Response {
    system
        .http
        .get(system.url(service, path))
        .bearer_auth(token)
        .header("Accept", "text/event-stream")
        .send()
        .await
        .unwrap()
}

/// Reads server-sent events for `window`, returning the `data:` lines.
async fn read_events(response: reqwest::Response, window: Duration) -> Vec<String> {
    use futures::StreamExt;
    let mut lines = Vec::new();
    let mut buffer = String::new();
    let mut body = response.bytes_stream();
    let deadline = tokio::time::Instant::now() + window;
    while let Ok(Some(Ok(chunk))) = tokio::time::timeout_at(deadline, body.next()).await {
        buffer.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = buffer.find('\n') {
            let line = buffer[..end].to_owned();
            buffer.drain(..=end);
            if let Some(data) = line.strip_prefix("data:") {
                lines.push(data.trim().to_owned());
            }
        }
    }
    lines
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_streams_refuse_other_users_and_are_capped_per_service() {
    let _turn = SYSTEMS.acquire().await.unwrap();
    const CAP: usize = 4;
    let system = System::start_with(Options {
        env: vec![("BRIGADE_MAX_STREAMS".to_owned(), CAP.to_string())],
        ..Options::default()
    })
    .await;
    let manager = system.manager().await;
    let chef = system.staff(&manager, "chef", "Auguste").await;
    let courier = system.courier_on_shift(&manager, "Lucie").await;
    let other_courier = system.staff(&manager, "courier", "Malik").await;
    let customer = system.customer("Alice").await;
    let other = system.customer("Bruno").await;
    let dish = system.dishes(1).await.remove(0);
    let order = system
        .place_order(&customer, json!([{"dishId": dish, "quantity": 1}]))
        .await;
    cook(&system, &chef, order).await;
    eventually(Duration::from_secs(30), || async {
        system
            .get("delivery", &format!("/deliveries/{order}"), &courier.token)
            .await
            .1["status"]
            == "assigned"
    })
    .await;

    // Someone else's order or delivery: refused before any event is sent.
    for (service, path, token, status) in [
        (
            "orders",
            format!("/orders/{order}/stream"),
            &other.token,
            404,
        ),
        (
            "delivery",
            format!("/deliveries/{order}/stream"),
            &other.token,
            404,
        ),
        (
            "delivery",
            format!("/deliveries/{order}/stream"),
            &other_courier.token,
            404,
        ),
        (
            "delivery",
            format!("/deliveries/{order}/stream"),
            &chef.token,
            404,
        ),
        (
            "kitchen",
            "/tickets/stream".to_owned(),
            &customer.token,
            403,
        ),
        ("kitchen", "/tickets/stream".to_owned(), &courier.token, 403),
    ] {
        let response = open_stream(&system, service, &path, token).await;
        assert_eq!(response.status().as_u16(), status, "{service}{path}");
        assert_eq!(
            response.headers()["content-type"],
            "application/problem+json"
        );
    }
    let response = system
        .http
        .get(system.url("orders", &format!("/orders/{order}/stream")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 401);

    // The notification stream carries the caller's own notifications only: Alice's order moves
    // on while Bruno and Alice listen.
    let mine = open_stream(
        &system,
        "delivery",
        "/notifications/stream",
        &customer.token,
    )
    .await;
    let theirs = open_stream(&system, "delivery", "/notifications/stream", &other.token).await;
    assert_eq!(mine.status().as_u16(), 200);
    assert_eq!(theirs.status().as_u16(), 200);
    let (status, body) = system
        .post(
            "delivery",
            &format!("/deliveries/{order}/pickup"),
            &courier.token,
            json!({}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (mine, theirs) = tokio::join!(
        read_events(mine, Duration::from_secs(4)),
        read_events(theirs, Duration::from_secs(4))
    );
    assert!(
        mine.iter().any(|e| e.contains(&order.to_string())),
        "Alice hears of her order: {mine:?}"
    );
    assert!(
        theirs.iter().all(|e| !e.contains(&order.to_string())),
        "Bruno hears nothing of it: {theirs:?}"
    );

    // The cap: CAP streams at once per service; the next gets 503 with Retry-After; closing
    // one frees its place.
    let mut open = Vec::new();
    for _ in 0..CAP {
        let response = open_stream(&system, "kitchen", "/tickets/stream", &chef.token).await;
        assert_eq!(response.status().as_u16(), 200);
        open.push(response);
    }
    let refused = open_stream(&system, "kitchen", "/tickets/stream", &chef.token).await;
    assert_eq!(refused.status().as_u16(), 503);
    assert_eq!(refused.headers()["retry-after"], "5");
    let problem: Value = refused.json().await.unwrap();
    assert_eq!(
        problem["type"],
        "https://brigade.dev/errors/too-many-streams"
    );
    // Other services have their own cap; plain requests are never limited by it.
    assert_eq!(
        open_stream(
            &system,
            "orders",
            &format!("/orders/{order}/stream"),
            &customer.token
        )
        .await
        .status()
        .as_u16(),
        200
    );
    assert_eq!(system.get("kitchen", "/tickets", &chef.token).await.0, 200);
    // A client hammering the full service gets 503s that hold nothing.
    for _ in 0..100 {
        let response = open_stream(&system, "kitchen", "/tickets/stream", &chef.token).await;
        assert_eq!(response.status().as_u16(), 503);
    }
    // Clients that leave free their places. The server learns that a client left when a write
    // to it fails: at the latest with the second keep-alive comment (one every 15 s).
    drop(open);
    tokio::time::sleep(Duration::from_secs(32)).await;
    let mut all = Vec::new();
    for _ in 0..CAP {
        all.push(open_stream(&system, "kitchen", "/tickets/stream", &chef.token).await);
    }
    assert!(
        all.iter().all(|r| r.status().as_u16() == 200),
        "the places of departed clients were not freed"
    );
    drop(all);
    system.shutdown().await;
}
