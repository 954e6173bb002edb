//! Faults between the services: poison messages and a NATS outage.
#![allow(clippy::unwrap_used)]

mod support;

use std::process::Stdio;
use std::time::Duration;

use serde_json::json;
use support::{eventually, System};
use uuid::Uuid;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poison_message_is_parked_in_dead_letters_and_blocks_nothing_behind_it() {
    let system = System::start().await;
    let manager = system.manager().await;
    let chef = system.staff(&manager, "chef", "Auguste").await;
    let customer = system.customer("Eve").await;
    let dishes = system.dishes(1).await;

    // Two messages no handler can apply: bytes that are no event at all, and an envelope whose
    // event does not match any `OrderEvent`.
    let client = async_nats::connect(&system.nats_url).await.unwrap();
    let js = async_nats::jetstream::new(client);
    let subject = format!("{}.orders.order.placed", system.namespace);
    js.publish(subject.clone(), "not json at all".into())
        .await
        .unwrap()
        .await
        .unwrap();
    let poisoned = Uuid::new_v4();
    let envelope = json!({
        "eventId": Uuid::new_v4(), "aggregateType": "order", "aggregateId": poisoned.to_string(),
        "sequence": 1, "eventType": "OrderPlaced", "eventVersion": "1.0",
        "payload": {"OrderPlaced": {"unexpected": true}}, "metadata": {}, "recordedAt": "2026-11-27T12:00:00Z"
    });
    js.publish(subject, serde_json::to_vec(&envelope).unwrap().into())
        .await
        .unwrap()
        .await
        .unwrap();

    // A real order behind them still reaches the kitchen.
    let order_id = system
        .place_order(&customer, json!([{"dishId": dishes[0], "quantity": 1}]))
        .await;
    eventually(Duration::from_secs(30), || async {
        system
            .get("kitchen", &format!("/tickets/{order_id}"), &chef.token)
            .await
            .0
            == 200
    })
    .await;

    eventually(Duration::from_secs(30), || async {
        system.dead_letters("kitchen").await.len() == 2
    })
    .await;
    let parked = system.dead_letters("kitchen").await;
    assert!(
        parked
            .iter()
            .all(|(consumer, _)| consumer == "kitchen-from-orders"),
        "{parked:?}"
    );
    assert!(
        parked
            .iter()
            .any(|(_, error)| error.contains("not a Brigade event")),
        "{parked:?}"
    );
    assert!(
        parked
            .iter()
            .any(|(_, error)| error.contains("not an order event")),
        "{parked:?}"
    );
    system.shutdown().await;
}

/// A NATS server of this test's own, so it can be stopped without disturbing other tests.
struct PrivateNats {
    port: u16,
    dir: std::path::PathBuf,
    child: Option<tokio::process::Child>,
}

impl PrivateNats {
    fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let dir =
            std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("nats-{port}"));
        let mut nats = Self {
            port,
            dir,
            child: None,
        };
        nats.resume();
        nats
    }

    fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    fn resume(&mut self) {
        let child = tokio::process::Command::new(nats_server())
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
    }

    async fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.start_kill().unwrap();
            child.wait().await.unwrap();
        }
    }
}

fn nats_server() -> &'static str {
    [
        "/usr/sbin/nats-server",
        "/usr/bin/nats-server",
        "/usr/local/bin/nats-server",
    ]
    .into_iter()
    .find(|p| std::path::Path::new(p).exists())
    .unwrap_or("nats-server")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_order_placed_while_nats_is_down_is_accepted_and_flows_once_nats_is_back() {
    let mut nats = PrivateNats::start();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let system = System::start_with_nats(&nats.url()).await;
    let manager = system.manager().await;
    let chef = system.staff(&manager, "chef", "Auguste").await;
    let customer = system.customer("Yann").await;
    let dishes = system.dishes(1).await;

    nats.stop().await;
    let order_id = system
        .place_order(&customer, json!([{"dishId": dishes[0], "quantity": 1}]))
        .await;
    let (status, order) = system
        .get("orders", &format!("/orders/{order_id}"), &customer.token)
        .await;
    assert_eq!(status, 200, "{order}");
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        system
            .get("kitchen", &format!("/tickets/{order_id}"), &chef.token)
            .await
            .0,
        404,
        "nothing can reach the kitchen while NATS is down"
    );

    nats.resume();
    eventually(Duration::from_secs(60), || async {
        system
            .get("kitchen", &format!("/tickets/{order_id}"), &chef.token)
            .await
            .0
            == 200
    })
    .await;
    assert_eq!(
        system.history("kitchen", "ticket", order_id).await,
        ["TicketOpened"]
    );
    system.shutdown().await;
    nats.stop().await;
    let _ = std::fs::remove_dir_all(&nats.dir);
}
