//! Operating the system: the audit trail of an order, one trace across services, a projection
//! rebuilt from the CLI while serving, and readiness following the database.
#![allow(clippy::unwrap_used)]

mod support;

use std::time::Duration;

use serde_json::{json, Value};
use support::{cook, deliver, eventually, System};

fn brigade(system: &System, args: &[&str]) -> String {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_brigade"))
        .args(args)
        .env("BRIGADE_DATABASE_PREFIX", &system.prefix)
        .env("BRIGADE_NAMESPACE", &system.namespace)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "brigade {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_order_audit_tells_the_whole_story_in_time_order_under_one_trace() {
    let system = System::start().await;
    let manager = system.manager().await;
    let chef = system.staff(&manager, "chef", "Auguste").await;
    let couriers = vec![system.courier_on_shift(&manager, "Lucie").await];
    let customer = system.customer("Agnès").await;
    let dishes = system.dishes(1).await;
    let order_id = system
        .place_order(&customer, json!([{"dishId": dishes[0], "quantity": 1}]))
        .await;
    cook(&system, &chef, order_id).await;
    deliver(&system, &manager, &couriers, order_id).await;
    eventually(Duration::from_secs(30), || async {
        system
            .get("orders", &format!("/orders/{order_id}"), &customer.token)
            .await
            .1["status"]
            == "delivered"
    })
    .await;

    let lines: Vec<Value> = brigade(
        &system,
        &["audit", "order", &order_id.to_string(), "--json"],
    )
    .lines()
    .map(|l| serde_json::from_str(l).unwrap())
    .collect();
    let story: Vec<(&str, &str)> = lines
        .iter()
        .map(|l| (l["service"].as_str().unwrap(), l["event"].as_str().unwrap()))
        .collect();
    for expected in [
        ("orders", "OrderPlaced"),
        ("kitchen", "TicketOpened"),
        ("delivery", "DeliveryRequested"),
        ("kitchen", "TicketReady"),
        ("delivery", "CourierAssigned"),
        ("delivery", "DeliveryDelivered"),
        ("orders", "OrderDelivered"),
    ] {
        assert!(
            story.contains(&expected),
            "{expected:?} missing from {story:?}"
        );
    }
    let position = |event: &str| story.iter().position(|(_, e)| *e == event).unwrap();
    assert!(position("OrderPlaced") < position("TicketOpened"));
    assert!(position("TicketReady") < position("DeliveryReadyForPickup"));
    assert!(position("DeliveryDelivered") < position("OrderDelivered"));
    let times: Vec<&str> = lines.iter().map(|l| l["at"].as_str().unwrap()).collect();
    let mut sorted = times.clone();
    sorted.sort_unstable();
    assert_eq!(times, sorted, "in time order");
    let placed = &lines[position("OrderPlaced")];
    assert_eq!(placed["actor"]["role"], "customer");
    assert_eq!(
        placed["actor"]["accountId"],
        customer.account_id.to_string()
    );
    assert_eq!(lines[position("TicketOpened")]["actor"]["role"], "system");
    assert_eq!(
        lines[position("TicketOpened")]["causationId"],
        format!("order:{order_id}:1")
    );

    // One trace for the whole journey, in every service's store and on the bus.
    let trace = order_id.simple().to_string();
    for service in ["orders", "kitchen", "delivery"] {
        let pool = system.db(service).await;
        let traces: Vec<Option<String>> = sqlx::query_scalar(
            "SELECT metadata->>'trace_id' FROM events WHERE metadata->>'correlation_id' = $1",
        )
        .bind(order_id.to_string())
        .fetch_all(&pool)
        .await
        .unwrap();
        assert!(!traces.is_empty());
        assert!(
            traces.iter().all(|t| t.as_deref() == Some(trace.as_str())),
            "{service}: {traces:?}"
        );
    }
    // And one tree: an event names the span that issued its command (the request that placed
    // the order, the consumer that opened the ticket), the parent of what it causes elsewhere.
    for (service, event) in [("orders", "OrderPlaced"), ("kitchen", "TicketOpened")] {
        let span: Option<String> = sqlx::query_scalar(
            "SELECT metadata->>'span_id' FROM events
             WHERE metadata->>'correlation_id' = $1 AND event_type = $2",
        )
        .bind(order_id.to_string())
        .bind(event)
        .fetch_one(&system.db(service).await)
        .await
        .unwrap();
        assert!(
            span.as_ref()
                .is_some_and(|s| s.len() == 16 && s != "0000000000000000"),
            "{event}: {span:?}"
        );
    }
    system.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_projection_rebuilt_from_the_cli_while_serving_equals_the_live_one() {
    let system = System::start().await;
    let customer = system.customer("Marius").await;
    let dishes = system.dishes(2).await;
    let mut orders = Vec::new();
    for i in 0..5 {
        let items = json!([{"dishId": dishes[i % 2], "quantity": 1 + i, "note": "bien cuit"}]);
        orders.push(system.place_order(&customer, items).await);
    }
    let manager = system.manager().await;
    let chef = system.staff(&manager, "chef", "Auguste").await;
    eventually(Duration::from_secs(30), || async {
        system
            .get("kitchen", "/tickets", &chef.token)
            .await
            .1
            .as_array()
            .map(Vec::len)
            == Some(5)
    })
    .await;
    let before: Vec<Value> = {
        let (system, customer) = (&system, &customer);
        futures::future::join_all(orders.iter().map(|id| async move {
            system
                .get("orders", &format!("/orders/{id}"), &customer.token)
                .await
                .1
        }))
        .await
    };
    let queue_before = system.get("kitchen", "/tickets", &chef.token).await.1;

    let out = brigade(&system, &["projections", "rebuild", "orders-tracking"]);
    assert!(out.contains("rebuilt orders-tracking"), "{out}");
    brigade(&system, &["projections", "rebuild", "kitchen-queue"]);

    let after: Vec<Value> = {
        let (system, customer) = (&system, &customer);
        futures::future::join_all(orders.iter().map(|id| async move {
            system
                .get("orders", &format!("/orders/{id}"), &customer.token)
                .await
                .1
        }))
        .await
    };
    assert_eq!(before, after);
    let queue_after = system.get("kitchen", "/tickets", &chef.token).await.1;
    let strip = |queue: &Value| -> Vec<(Value, Value)> {
        queue
            .as_array()
            .unwrap()
            .iter()
            .map(|t| (t["orderId"].clone(), t["items"].clone()))
            .collect()
    };
    assert_eq!(strip(&queue_before), strip(&queue_after));
    let status = brigade(&system, &["projections", "status"]);
    assert!(status.contains("orders-tracking"), "{status}");
    system.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_turns_unready_when_the_database_is_unreachable_and_back_when_it_returns() {
    let system = System::start().await;
    let ready = || async {
        system
            .http
            .get(system.url("kitchen", "/health/ready"))
            .send()
            .await
            .map(|r| r.status().as_u16())
            .unwrap_or(0)
    };
    assert_eq!(ready().await, 200);
    let admin = sqlx::PgPool::connect("postgres://postgres@127.0.0.1:5432/postgres")
        .await
        .unwrap();
    let database = format!("{}kitchen", system.prefix);
    sqlx::query(&format!(
        "ALTER DATABASE \"{database}\" WITH ALLOW_CONNECTIONS false"
    ))
    .execute(&admin)
    .await
    .unwrap();
    sqlx::query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1")
        .bind(&database)
        .execute(&admin)
        .await
        .unwrap();
    eventually(Duration::from_secs(30), || async { ready().await == 503 }).await;
    let (status, body) = system
        .call(
            reqwest::Method::GET,
            "kitchen",
            "/health/ready",
            None,
            None,
            &[],
        )
        .await;
    assert_eq!(status, 503);
    assert_eq!(body["checks"][0]["ok"], false, "{body}");
    assert_eq!(
        system
            .http
            .get(system.url("kitchen", "/health/live"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );

    sqlx::query(&format!(
        "ALTER DATABASE \"{database}\" WITH ALLOW_CONNECTIONS true"
    ))
    .execute(&admin)
    .await
    .unwrap();
    eventually(Duration::from_secs(30), || async { ready().await == 200 }).await;
    system.shutdown().await;
}
