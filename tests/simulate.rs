//! `brigade simulate` against a running system: customers order, the chef cooks, couriers ride
//! and deliver, all through the public APIs, and the orders end delivered.
#![allow(clippy::unwrap_used)]

mod support;

use std::time::Duration;

use serde_json::Value;
use support::{System, MANAGER_EMAIL, MANAGER_PASSWORD, SERVICES};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_simulation_places_cooks_and_delivers_orders() {
    let system = System::start().await;
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_brigade"));
    command
        .args([
            "simulate",
            "--orders-per-minute",
            "30",
            "--couriers",
            "2",
            "--customers",
            "2",
            "--duration",
            "8s",
            "--drain",
            "60s",
            "--cook-seconds",
            "1",
            "--ride-seconds",
            "3",
            "--positions-per-minute",
            "60",
        ])
        // The same settings the services were started with: where they answer, who manages.
        .env("BRIGADE_MANAGER_EMAIL", MANAGER_EMAIL)
        .env("BRIGADE_MANAGER_PASSWORD", MANAGER_PASSWORD)
        .env("BRIGADE_IDENTITY_URL", system.url("identity", ""));
    for service in SERVICES {
        let port = system
            .url(service, "")
            .rsplit(':')
            .next()
            .unwrap()
            .to_owned();
        command.env(format!("BRIGADE_{}_PORT", service.to_uppercase()), port);
    }
    let output = tokio::time::timeout(Duration::from_secs(180), command.output())
        .await
        .expect("the simulation ends after its duration and drain")
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "brigade simulate failed:\n{stdout}\n{stderr}"
    );
    let summary = stdout
        .lines()
        .find(|line| line.contains(" done: "))
        .unwrap_or_else(|| panic!("no summary in:\n{stdout}"));
    let field = |name: &str| -> usize {
        summary
            .split_whitespace()
            .find_map(|word| word.strip_prefix(&format!("{name}=")))
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no {name}= in {summary:?}"))
    };
    // About four orders in 8 s at 30 a minute; every one of them delivered, the orders
    // service agreeing.
    let placed = field("placed");
    assert!(placed >= 2, "{stdout}\n{stderr}");
    assert_eq!(field("delivered"), placed, "{stdout}\n{stderr}");
    assert_eq!(field("errors"), 0, "{stdout}\n{stderr}");

    // The manager sees them delivered too, each with its courier's sampled route.
    let manager = system.manager().await;
    let (status, page) = system
        .get("orders", "/orders?pageSize=50", &manager.token)
        .await;
    assert_eq!(status, 200, "{page}");
    let orders: Vec<&Value> = page["items"].as_array().unwrap().iter().collect();
    assert_eq!(orders.len(), placed);
    for order in orders {
        assert_eq!(order["status"], "delivered", "{order}");
        let id = order["orderId"].as_str().unwrap();
        let (status, delivery) = system
            .get("delivery", &format!("/deliveries/{id}"), &manager.token)
            .await;
        assert_eq!(status, 200, "{delivery}");
        assert!(
            !delivery["route"].as_array().unwrap().is_empty(),
            "{delivery}"
        );
    }
    system.shutdown().await;
}
