//! Notifications: who is told what, exactly once, listed, live, and relayed to webhooks that
//! are signed and retried.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use brigade_delivery::webhooks::{signature, DELIVERY_ID_HEADER, SIGNATURE_HEADER};
use brigade_domain::ordering::OrderEvent;
use brigade_domain::Role;
use chrono::Utc;
use common::{eventually, test_config, TestApp, RESTAURANT};
use cqrs_es::DomainEvent;
use futures::StreamExt;
use poem::listener::{Acceptor, Listener};
use reqwest::StatusCode;
use serde_json::{json, Value};
use uuid::Uuid;

async fn order_event(app: &TestApp, order_id: Uuid, sequence: i64, event: OrderEvent) {
    let payload = serde_json::to_value(&event).unwrap();
    app.publish(
        "orders",
        "order",
        order_id,
        sequence,
        &event.event_type(),
        payload,
    )
    .await;
}

async fn kinds(app: &TestApp, token: &str) -> Vec<String> {
    let list: Vec<Value> = app.get("/notifications", token).await.json().await.unwrap();
    list.iter()
        .map(|n| n["kind"].as_str().unwrap().to_owned())
        .collect()
}

/// Waits until `token`'s notifications are exactly `expected` (newest first).
async fn wait_for_kinds(app: &TestApp, token: &str, expected: &[&str]) {
    eventually(&format!("notifications {expected:?}"), || async {
        (kinds(app, token).await == expected).then_some(())
    })
    .await;
}

#[tokio::test]
async fn every_status_change_notifies_the_people_concerned_once() {
    let app = TestApp::spawn().await;
    let (order_id, customer) = (Uuid::new_v4(), Uuid::new_v4());
    let customer_token = app.token(customer, Role::Customer);
    app.place_order(order_id, customer).await;
    order_event(
        &app,
        order_id,
        2,
        OrderEvent::OrderAccepted { at: Utc::now() },
    )
    .await;
    order_event(
        &app,
        order_id,
        3,
        OrderEvent::OrderInPreparation { at: Utc::now() },
    )
    .await;
    order_event(&app, order_id, 4, OrderEvent::OrderReady { at: Utc::now() }).await;
    wait_for_kinds(
        &app,
        &customer_token,
        &["order_ready", "order_in_preparation", "order_accepted"],
    )
    .await;

    app.ticket_ready(order_id).await;
    app.delivery_in(order_id, "ready_for_pickup").await;
    let (courier, courier_token) = app.courier_on_shift("Alice", 1.0).await;
    app.post(
        &format!("/deliveries/{order_id}/assign"),
        &app.manager,
        json!({"courierId": courier}),
    )
    .await;
    wait_for_kinds(&app, &courier_token, &["delivery_assigned"]).await;
    app.post(
        &format!("/deliveries/{order_id}/pickup"),
        &courier_token,
        json!({}),
    )
    .await;
    app.delivery_in(order_id, "picked_up").await;
    // Two positions near the door: "arriving" is said once.
    for _ in 0..2 {
        let near_door = json!({"lat": RESTAURANT.0 + 0.0095, "lon": RESTAURANT.1});
        assert_eq!(
            app.post("/couriers/me/position", &courier_token, near_door)
                .await
                .status(),
            StatusCode::OK
        );
    }
    app.post(
        &format!("/deliveries/{order_id}/deliver"),
        &courier_token,
        json!({}),
    )
    .await;
    let customer_sees = eventually("the delivered notification", || async {
        let kinds = kinds(&app, &customer_token).await;
        kinds
            .contains(&"delivery_delivered".to_owned())
            .then_some(kinds)
    })
    .await;
    assert_eq!(
        customer_sees,
        [
            "delivery_delivered",
            "delivery_arriving",
            "delivery_picked_up",
            "order_ready",
            "order_in_preparation",
            "order_accepted"
        ]
    );
    // A fact published again (another message id, same event) tells nobody twice: the
    // consumer's checkpoint drops it, and the notification's key would too.
    order_event(&app, order_id, 4, OrderEvent::OrderReady { at: Utc::now() }).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(kinds(&app, &customer_token).await.len(), 6);
    assert_eq!(kinds(&app, &courier_token).await, ["delivery_assigned"]);
    // Nobody else hears of it; the managers hear of failures.
    assert!(kinds(&app, &app.token(Uuid::new_v4(), Role::Customer))
        .await
        .is_empty());
    assert!(kinds(&app, &app.manager).await.is_empty());

    let (failing, _) = app.ready_delivery().await;
    app.post(
        &format!("/deliveries/{failing}/assign"),
        &app.manager,
        json!({"courierId": courier}),
    )
    .await;
    app.post(
        &format!("/deliveries/{failing}/fail"),
        &courier_token,
        json!({"reason": "address wrong"}),
    )
    .await;
    wait_for_kinds(&app, &app.manager, &["delivery_failed"]).await;
    let other_manager = app.token(Uuid::new_v4(), Role::Manager);
    let list: Vec<Value> = app
        .get("/notifications", &other_manager)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(list[0]["orderId"], failing.to_string());
    assert!(list[0]["message"]
        .as_str()
        .unwrap()
        .contains("address wrong"));
    app.cleanup().await;
}

#[tokio::test]
async fn a_notification_reaches_its_recipient_live() {
    let app = TestApp::spawn().await;
    let (order_id, customer) = (Uuid::new_v4(), Uuid::new_v4());
    app.place_order(order_id, customer).await;
    app.delivery_in(order_id, "requested").await;

    let response = app
        .client
        .get(format!("{}/notifications/stream", app.base))
        .bearer_auth(app.token(customer, Role::Customer))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let mut body = response.bytes_stream();
    tokio::time::sleep(Duration::from_millis(200)).await;
    order_event(
        &app,
        order_id,
        2,
        OrderEvent::OrderAccepted { at: Utc::now() },
    )
    .await;

    let seen = tokio::time::timeout(Duration::from_secs(10), async {
        let mut text = String::new();
        while let Some(chunk) = body.next().await {
            text.push_str(&String::from_utf8_lossy(&chunk.unwrap()));
            if let Some(line) = text.lines().find(|l| l.starts_with("data:")) {
                return serde_json::from_str::<Value>(line.trim_start_matches("data:").trim())
                    .unwrap();
            }
        }
        panic!("the stream ended");
    })
    .await
    .expect("the notification reached the stream");
    assert_eq!(seen["notification"]["kind"], "order_accepted");
    assert_eq!(seen["notification"]["orderId"], order_id.to_string());
    app.cleanup().await;
}

/// A webhook receiver that answers 500 to its first `failures` requests, then 200, and
/// keeps every request it got.
#[derive(Clone, Default)]
struct Receiver {
    failures: usize,
    received: Arc<Mutex<Vec<(String, String, String)>>>,
}

impl Receiver {
    async fn serve(self) -> String {
        let receiver = self.clone();
        let app = poem::Route::new().at(
            "/hook",
            poem::post(poem::endpoint::make(move |request: poem::Request| {
                let receiver = receiver.clone();
                async move {
                    let signature = request
                        .header(SIGNATURE_HEADER)
                        .unwrap_or_default()
                        .to_owned();
                    let delivery = request
                        .header(DELIVERY_ID_HEADER)
                        .unwrap_or_default()
                        .to_owned();
                    let body = request.into_body().into_string().await.unwrap_or_default();
                    let mut received = receiver.received.lock().unwrap();
                    received.push((signature, delivery, body));
                    if received.len() <= receiver.failures {
                        poem::http::StatusCode::INTERNAL_SERVER_ERROR
                    } else {
                        poem::http::StatusCode::OK
                    }
                }
            })),
        );
        let acceptor = poem::listener::TcpListener::bind("127.0.0.1:0")
            .into_acceptor()
            .await
            .unwrap();
        let address = acceptor.local_addr()[0].as_socket_addr().copied().unwrap();
        tokio::spawn(poem::Server::new_with_acceptor(acceptor).run(app));
        format!("http://{address}/hook")
    }

    fn received(&self) -> Vec<(String, String, String)> {
        self.received.lock().unwrap().clone()
    }
}

#[tokio::test]
async fn webhooks_receive_signed_notifications_retried_after_failures_then_parked() {
    let app = TestApp::spawn_with(brigade_delivery::DeliveryConfig {
        auto_dispatch: false,
        ..test_config()
    })
    .await;
    let flaky = Receiver {
        failures: 2,
        ..Receiver::default()
    };
    let flaky_url = flaky.clone().serve().await;
    let secret = "a-very-secret-signing-key";
    let response = app
        .post(
            "/webhooks",
            &app.manager,
            json!({"url": flaky_url, "secret": secret}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let webhook: Value = response.json().await.unwrap();
    assert_eq!(webhook["secret"], secret);
    let down = Receiver {
        failures: usize::MAX,
        ..Receiver::default()
    };
    let down_url = down.clone().serve().await;
    let response = app
        .post("/webhooks", &app.manager, json!({"url": down_url}))
        .await;
    let down_hook: Value = response.json().await.unwrap();
    assert_eq!(
        down_hook["secret"].as_str().unwrap().len(),
        64,
        "a secret is generated"
    );
    // Bad registrations and other roles are refused.
    let response = app
        .post(
            "/webhooks",
            &app.manager,
            json!({"url": "ftp://example.com"}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let response = app
        .post(
            "/webhooks",
            &app.manager,
            json!({"url": "http://example.com", "secret": "short"}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let courier = app.token(Uuid::new_v4(), Role::Courier);
    assert_eq!(
        app.get("/webhooks", &courier).await.status(),
        StatusCode::FORBIDDEN
    );

    let (order_id, customer) = (Uuid::new_v4(), Uuid::new_v4());
    app.place_order(order_id, customer).await;
    order_event(
        &app,
        order_id,
        2,
        OrderEvent::OrderAccepted { at: Utc::now() },
    )
    .await;

    // The flaky endpoint fails twice, then gets it on the third attempt.
    let id = webhook["id"].as_str().unwrap();
    let log = eventually("the delivery to succeed", || async {
        let log: Vec<Value> = app
            .get(&format!("/webhooks/{id}/deliveries"), &app.manager)
            .await
            .json()
            .await
            .ok()?;
        (log.len() == 1 && log[0]["status"] == "delivered").then_some(log)
    })
    .await;
    assert_eq!(log[0]["attempts"], 3);
    assert_eq!(log[0]["kind"], "order_accepted");
    let received = flaky.received();
    assert_eq!(received.len(), 3);
    let (header, delivery_id, body) = &received[2];
    assert_eq!(
        *delivery_id,
        log[0]["id"].to_string(),
        "the same delivery id on every attempt"
    );
    assert!(received.iter().all(|(_, id, _)| id == delivery_id));
    // The signature checks out with the shared secret, and only with it.
    let timestamp: i64 = header
        .split(',')
        .next()
        .unwrap()
        .trim_start_matches("t=")
        .parse()
        .unwrap();
    assert_eq!(*header, signature(secret, timestamp, body.as_bytes()));
    assert_ne!(
        *header,
        signature("another-secret-key!", timestamp, body.as_bytes())
    );
    assert!((Utc::now().timestamp() - timestamp).abs() < 60);
    let payload: Value = serde_json::from_str(body).unwrap();
    assert_eq!(payload["notification"]["kind"], "order_accepted");
    assert_eq!(payload["recipient"], format!("account:{customer}"));

    // The endpoint that is down is parked after three attempts, visibly.
    let down_id = down_hook["id"].as_str().unwrap();
    let parked = eventually("the delivery to be parked", || async {
        let log: Vec<Value> = app
            .get(&format!("/webhooks/{down_id}/deliveries"), &app.manager)
            .await
            .json()
            .await
            .ok()?;
        (log.len() == 1 && log[0]["status"] == "parked").then_some(log)
    })
    .await;
    assert_eq!(parked[0]["attempts"], 3);
    assert_eq!(parked[0]["lastStatus"], 500);
    assert_eq!(down.received().len(), 3);
    // A manager sends it again once the endpoint is fixed.
    let response = app
        .post(
            &format!("/webhooks/{down_id}/retry"),
            &app.manager,
            json!({}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    eventually("another attempt", || async {
        (down.received().len() > 3).then_some(())
    })
    .await;

    // Deactivated, a webhook gets nothing new.
    assert_eq!(
        app.delete(&format!("/webhooks/{id}"), &app.manager)
            .await
            .status(),
        StatusCode::NO_CONTENT
    );
    order_event(
        &app,
        order_id,
        3,
        OrderEvent::OrderInPreparation { at: Utc::now() },
    )
    .await;
    wait_for_kinds(
        &app,
        &app.token(customer, Role::Customer),
        &["order_in_preparation", "order_accepted"],
    )
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(flaky.received().len(), 3);
    app.cleanup().await;
}

/// A tiny SMTP server, enough for the delivery service's client: it greets, answers EHLO,
/// MAIL, RCPT, DATA and QUIT, refuses the first `refusals` recipients with a 451 (try later),
/// and keeps each accepted message with its recipient.
#[derive(Clone, Default)]
struct SmtpReceiver {
    refusals: Arc<Mutex<usize>>,
    accepted: Arc<Mutex<Vec<(String, String)>>>,
}

impl SmtpReceiver {
    async fn serve(&self) -> u16 {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let receiver = self.clone();
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                let receiver = receiver.clone();
                tokio::spawn(async move { receiver.session(socket).await });
            }
        });
        port
    }

    async fn session(&self, socket: tokio::net::TcpStream) {
        use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
        let (read, mut write) = socket.into_split();
        let mut lines = BufReader::new(read).lines();
        write.write_all(b"220 test.local ESMTP\r\n").await.unwrap();
        let mut recipient = String::new();
        while let Ok(Some(line)) = lines.next_line().await {
            let upper = line.to_ascii_uppercase();
            let reply: &[u8] = if upper.starts_with("EHLO") {
                b"250-test.local\r\n250 8BITMIME\r\n"
            } else if upper.starts_with("MAIL FROM:") {
                b"250 sender ok\r\n"
            } else if upper.starts_with("RCPT TO:") {
                let mut refusals = self.refusals.lock().unwrap();
                if *refusals > 0 {
                    *refusals -= 1;
                    b"451 4.3.0 try again later\r\n"
                } else {
                    recipient = line[8..].trim().trim_matches(['<', '>']).to_owned();
                    b"250 recipient ok\r\n"
                }
            } else if upper == "DATA" {
                write.write_all(b"354 go ahead\r\n").await.unwrap();
                let mut message = String::new();
                while let Ok(Some(line)) = lines.next_line().await {
                    if line == "." {
                        break;
                    }
                    // Undo the dot-stuffing.
                    message.push_str(line.strip_prefix('.').unwrap_or(&line));
                    message.push('\n');
                }
                self.accepted
                    .lock()
                    .unwrap()
                    .push((recipient.clone(), message));
                b"250 queued\r\n"
            } else if upper == "QUIT" {
                write.write_all(b"221 bye\r\n").await.unwrap();
                return;
            } else {
                b"500 what?\r\n"
            };
            write.write_all(reply).await.unwrap();
        }
    }

    fn accepted(&self) -> Vec<(String, String)> {
        self.accepted.lock().unwrap().clone()
    }
}

#[tokio::test]
async fn notifications_are_emailed_through_smtp_retried_and_never_twice() {
    let smtp = SmtpReceiver {
        refusals: Arc::new(Mutex::new(1)),
        ..SmtpReceiver::default()
    };
    let port = smtp.serve().await;
    let app = TestApp::spawn_with(brigade_delivery::DeliveryConfig {
        auto_dispatch: false,
        smtp: Some(
            brigade_delivery::smtp::SmtpConfig::from_url(
                &format!("smtp://127.0.0.1:{port}"),
                Some("bistro@brigade.test"),
            )
            .unwrap(),
        ),
        ..test_config()
    })
    .await;
    // Identity tells the service the customer's address.
    let (order_id, customer) = (Uuid::new_v4(), Uuid::new_v4());
    app.publish(
        "identity",
        "account",
        customer,
        1,
        "AccountRegistered",
        json!({"AccountRegistered": {
            "accountId": customer, "email": "claire@brigade.test", "name": "Claire",
            "phone": null, "role": "customer", "registeredBy": {"kind": "system"},
            "at": Utc::now(),
        }}),
    )
    .await;
    eventually("the customer's address", || async {
        let email: Option<String> =
            sqlx::query_scalar("SELECT email FROM identity_accounts WHERE account_id = $1")
                .bind(customer)
                .fetch_optional(&app.pool)
                .await
                .unwrap()
                .flatten();
        email
    })
    .await;
    app.place_order(order_id, customer).await;
    order_event(
        &app,
        order_id,
        2,
        OrderEvent::OrderAccepted { at: Utc::now() },
    )
    .await;

    // Refused once (451), retried, then accepted: one message, as the notification says.
    let accepted = eventually("the e-mail", || async {
        let accepted = smtp.accepted();
        (!accepted.is_empty()).then_some(accepted)
    })
    .await;
    let (recipient, message) = &accepted[0];
    assert_eq!(recipient, "claire@brigade.test");
    assert!(message.contains("Subject: Order accepted\n"), "{message}");
    assert!(message.contains("To: <claire@brigade.test>\n"), "{message}");
    assert!(message.contains("From: Brigade <bistro@brigade.test>\n"));
    assert!(message.contains("The kitchen has accepted your order."));
    assert!(message.contains(&format!("Order {order_id}")));
    assert!(message.contains("Message-ID: <notification-"));

    order_event(
        &app,
        order_id,
        3,
        OrderEvent::OrderInPreparation { at: Utc::now() },
    )
    .await;
    eventually("the second e-mail", || async {
        (smtp.accepted().len() == 2).then_some(())
    })
    .await;
    // The accepted event again (a redelivery), and time for any repeat: none comes.
    order_event(
        &app,
        order_id,
        2,
        OrderEvent::OrderAccepted { at: Utc::now() },
    )
    .await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    let accepted = smtp.accepted();
    assert_eq!(accepted.len(), 2);
    assert!(accepted[1].1.contains("Subject: In preparation\n"));
    let log: Vec<(String, i32)> =
        sqlx::query_as("SELECT status, attempts FROM email_deliveries ORDER BY notification_id")
            .fetch_all(&app.pool)
            .await
            .unwrap();
    assert_eq!(log, [("sent".to_owned(), 2), ("sent".to_owned(), 1)]);
    app.cleanup().await;
}
