//! Following an order: who may see it, the customer's history in pages, the status driven by
//! the kitchen's and the delivery's events, the live stream, and the manager's board.

use brigade_domain::delivery::DeliveryEvent;
use brigade_domain::kitchen::{NewTicketItem, TicketEvent};
use brigade_domain::{Address, Role};
use chrono::{DateTime, Utc};
use serde_json::Value;
use uuid::Uuid;

use crate::helpers::TestApp;

fn opened(order_id: Uuid) -> TicketEvent {
    let at = Utc::now();
    TicketEvent::TicketOpened {
        order_id,
        placed_at: at,
        items: vec![NewTicketItem {
            dish_id: Uuid::new_v4(),
            dish_name: "Steak frites, sauce au poivre".into(),
            quantity: 1,
            note: Some("saignant".into()),
            options: Vec::new(),
        }],
        at,
        allergies: Vec::new(),
        scheduled_for: None,
    }
}

/// The delivery service's request for the order, to the usual address.
fn requested(order_id: Uuid, customer_id: Uuid, at: DateTime<Utc>) -> DeliveryEvent {
    DeliveryEvent::DeliveryRequested {
        order_id,
        customer_id,
        address: Address {
            street: "12 rue des Martyrs".into(),
            city: "Paris".into(),
            postal_code: "75009".into(),
            lat: None,
            lon: None,
        },
        contact_phone: None,
        at,
    }
}

/// Every step of an order delivered, in order.
const FULL_JOURNEY: [&str; 6] = [
    "placed",
    "accepted",
    "in_preparation",
    "ready",
    "out_for_delivery",
    "delivered",
];

fn statuses(order: &Value) -> Vec<&str> {
    order["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["status"].as_str().unwrap())
        .collect()
}

#[tokio::test]
async fn a_customer_sees_only_their_orders_and_staff_see_any() {
    let app = TestApp::spawn().await;
    let (_, customer) = app.customer();
    let (_, stranger) = app.customer();
    let order_id = app.place_one(&customer, "Croque-monsieur").await;
    let path = format!("/orders/{order_id}");

    assert_eq!(app.get(&path, Some(&customer)).await.status, 200);
    let hidden = app.get(&path, Some(&stranger)).await;
    assert_eq!(
        (hidden.status, hidden.problem_code()),
        (404, "order-not-found".to_owned())
    );
    for role in [Role::Chef, Role::Courier, Role::Manager] {
        assert_eq!(
            app.get(&path, Some(&app.token(role))).await.status,
            200,
            "{role}"
        );
    }
    assert_eq!(app.get(&path, None).await.status, 401);
    assert_eq!(
        app.get(&format!("/orders/{}", Uuid::new_v4()), Some(&customer))
            .await
            .status,
        404
    );
    assert_eq!(
        app.get("/orders", Some(&app.token(Role::Chef)))
            .await
            .status,
        403
    );
    assert_eq!(
        app.get("/orders", Some(&app.token(Role::Courier)))
            .await
            .status,
        403
    );
    let strangers_list = app.get("/orders", Some(&stranger)).await;
    assert_eq!(strangers_list.body["total"], 0);
    let everything = app
        .eventually("the order in the manager's list", || async {
            let list = app
                .get("/orders", Some(&app.token(Role::Manager)))
                .await
                .body;
            (list["total"] == 1).then_some(list)
        })
        .await;
    assert_eq!(everything["items"][0]["orderId"], order_id.to_string());
    app.stop().await;
}

#[tokio::test]
async fn a_customers_orders_are_listed_newest_first_in_pages() {
    let app = TestApp::spawn().await;
    let (_, customer) = app.customer();
    let mut placed = Vec::new();
    for dish in ["Café expresso", "Citronnade maison", "Tarte Tatin"] {
        placed.push(app.place_one(&customer, dish).await.to_string());
    }
    app.eventually("three orders listed", || async {
        (app.get("/orders", Some(&customer)).await.body["total"] == 3).then_some(())
    })
    .await;

    let first = app
        .get("/orders?page=1&pageSize=2", Some(&customer))
        .await
        .body;
    let second = app
        .get("/orders?page=2&pageSize=2", Some(&customer))
        .await
        .body;
    let too_big = app.get("/orders?pageSize=101", Some(&customer)).await;

    let ids = |page: &Value| -> Vec<String> {
        page["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o["orderId"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(ids(&first), [placed[2].clone(), placed[1].clone()]);
    assert_eq!(ids(&second), [placed[0].clone()]);
    assert_eq!(
        (
            first["page"].clone(),
            first["pageSize"].clone(),
            first["total"].clone()
        ),
        (1.into(), 2.into(), 3.into())
    );
    assert_eq!((too_big.status, too_big.field()), (400, "pageSize"));
    assert_eq!(first["items"][0]["items"][0]["name"], "Tarte Tatin");
    app.stop().await;
}

#[tokio::test]
async fn the_order_follows_the_kitchen_and_the_courier_to_the_door() {
    let app = TestApp::spawn().await;
    let (customer_id, customer) = app.customer();
    let order_id = app.place_one(&customer, "Confit de canard").await;
    let at = Utc::now();
    let courier_id = Uuid::new_v4();

    app.kitchen_says(
        order_id,
        &[
            opened(order_id),
            TicketEvent::ItemStarted { index: 0, at },
            TicketEvent::ItemReady { index: 0, at },
            TicketEvent::TicketReady { at },
        ],
    )
    .await;
    app.delivery_says(
        order_id,
        &[
            requested(order_id, customer_id, at),
            DeliveryEvent::DeliveryReadyForPickup { at },
            DeliveryEvent::CourierAssigned { courier_id, at },
            DeliveryEvent::DeliveryPickedUp { courier_id, at },
            DeliveryEvent::DeliveryDelivered {
                courier_id,
                received_by: None,
                note: None,
                at,
            },
        ],
    )
    .await;

    let order = app.wait_for_status(order_id, &customer, "delivered").await;
    assert_eq!(statuses(&order), FULL_JOURNEY);
    assert_eq!(order["history"][5]["by"]["kind"], "system");
    app.stop().await;
}

#[tokio::test]
async fn the_kitchens_steps_heard_after_the_courier_are_recorded_in_their_place() {
    let app = TestApp::spawn().await;
    let (customer_id, customer) = app.customer();
    let order_id = app.place_one(&customer, "Confit de canard").await;
    let at = |seconds: i64| Utc::now() + chrono::Duration::seconds(seconds);
    let (ready_at, courier_id) = (at(3), Uuid::new_v4());

    // The courier's news first: the pickup waits a few seconds for the kitchen's `ready`,
    // then the order moves on without it.
    app.delivery_says(
        order_id,
        &[
            requested(order_id, customer_id, at(0)),
            DeliveryEvent::CourierAssigned {
                courier_id,
                at: at(1),
            },
            DeliveryEvent::DeliveryPickedUp {
                courier_id,
                at: at(4),
            },
            DeliveryEvent::DeliveryDelivered {
                courier_id,
                received_by: None,
                note: None,
                at: at(5),
            },
        ],
    )
    .await;
    let order = app.wait_for_status(order_id, &customer, "delivered").await;
    assert_eq!(
        statuses(&order),
        ["placed", "out_for_delivery", "delivered"]
    );

    // The kitchen's news at last: every step in its place, with the kitchen's time.
    app.kitchen_says(
        order_id,
        &[
            opened(order_id),
            TicketEvent::ItemStarted {
                index: 0,
                at: at(2),
            },
            TicketEvent::ItemReady {
                index: 0,
                at: ready_at,
            },
            TicketEvent::TicketReady { at: ready_at },
        ],
    )
    .await;
    let order = app
        .eventually("the kitchen's steps in the history", || async {
            let order = app
                .get(&format!("/orders/{order_id}"), Some(&customer))
                .await
                .body;
            (order["history"].as_array().map(Vec::len) == Some(6)).then_some(order)
        })
        .await;
    assert_eq!(statuses(&order), FULL_JOURNEY);
    assert_eq!(order["status"], "delivered");
    let recorded_ready: chrono::DateTime<Utc> =
        serde_json::from_value(order["history"][3]["at"].clone()).unwrap();
    assert_eq!(
        recorded_ready.timestamp_millis(),
        ready_at.timestamp_millis()
    );
    app.stop().await;
}

#[tokio::test]
async fn a_ticket_rejected_by_the_kitchen_rejects_the_order_with_its_reason() {
    let app = TestApp::spawn().await;
    let (_, customer) = app.customer();
    let order_id = app.place_one(&customer, "Sole meunière").await;

    app.kitchen_says(
        order_id,
        &[
            opened(order_id),
            TicketEvent::TicketRejected {
                reason: "plus de sole".into(),
                at: Utc::now(),
            },
        ],
    )
    .await;

    let order = app.wait_for_status(order_id, &customer, "rejected").await;
    assert_eq!(order["reason"], "plus de sole");
    assert_eq!(order["history"][2]["reason"], "plus de sole");
    app.stop().await;
}

#[tokio::test]
async fn the_tracking_stream_pushes_each_status_change_and_resumes() {
    let app = TestApp::spawn().await;
    let (_, customer) = app.customer();
    let order_id = app.place_one(&customer, "Mousse au chocolat").await;
    app.wait_for_status(order_id, &customer, "placed").await;

    let mut stream = app.follow(order_id, &customer, None).await;
    let current = stream.next().await;
    assert_eq!(current.event, "order");
    assert_eq!(current.data["order"]["status"], "placed");
    app.kitchen_says(order_id, &[opened(order_id)]).await;
    // Every frame is the order as it stands: the placement's own change may still be on its
    // way to the stream when it opens, and says "placed" once more.
    let accepted = loop {
        let frame = stream.next().await;
        if frame.data["order"]["status"] != "placed" {
            break frame;
        }
    };
    assert_eq!(accepted.data["order"]["status"], "accepted");
    assert_eq!(accepted.id, accepted.data["changeId"].to_string());

    // Missed while disconnected, replayed on reconnection.
    drop(stream);
    let cancelled = app
        .post(&format!("/orders/{order_id}/cancel"), &customer, None)
        .await;
    assert_eq!(cancelled.status, 200);
    let mut resumed = app.follow(order_id, &customer, Some(&accepted.id)).await;
    let missed = resumed.next().await;
    assert_eq!(missed.data["order"]["status"], "cancelled");

    let (_, stranger) = app.customer();
    let forbidden = app
        .get(&format!("/orders/{order_id}/stream"), Some(&stranger))
        .await;
    assert_eq!(forbidden.status, 404);
    app.stop().await;
}

#[tokio::test]
async fn the_board_shows_todays_orders_by_status() {
    let app = TestApp::spawn().await;
    let (_, customer) = app.customer();
    let waiting = app.place_one(&customer, "Café expresso").await;
    let accepted = app.place_one(&customer, "Café expresso").await;
    app.kitchen_says(accepted, &[opened(accepted)]).await;
    app.wait_for_status(waiting, &customer, "placed").await;
    app.wait_for_status(accepted, &customer, "accepted").await;

    let board = app
        .get("/orders/board", Some(&app.token(Role::Manager)))
        .await;
    let by_customer = app.get("/orders/board", Some(&customer)).await;

    assert_eq!(board.status, 200, "{}", board.body);
    assert_eq!(board.body["total"], 2);
    let columns = board.body["columns"].as_array().unwrap();
    assert_eq!(columns.len(), 8);
    assert_eq!(columns[0]["status"], "placed");
    assert_eq!(columns[0]["count"], 1);
    assert_eq!(columns[0]["orders"][0]["orderId"], waiting.to_string());
    assert_eq!(columns[1]["status"], "accepted");
    assert_eq!(columns[1]["orders"][0]["orderId"], accepted.to_string());
    assert_eq!(columns[1]["orders"][0]["total"]["amount"], 250);
    assert_eq!(by_customer.status, 403);
    app.stop().await;
}

#[tokio::test]
async fn the_kitchens_estimate_is_shown_until_the_food_is_ready() {
    let app = TestApp::spawn().await;
    let (_, customer) = app.customer();
    let order_id = app.place_one(&customer, "Bœuf bourguignon").await;
    let ready_at = Utc::now() + chrono::Duration::minutes(25);

    app.kitchen_says(order_id, &[opened(order_id)]).await;
    app.kitchen_estimates(order_id, 1, ready_at).await;

    let order = app
        .eventually("the estimate on the order", || async {
            let order = app
                .get(&format!("/orders/{order_id}"), Some(&customer))
                .await
                .body;
            order["estimatedReadyAt"].is_string().then_some(order)
        })
        .await;
    let shown: chrono::DateTime<Utc> = order["estimatedReadyAt"].as_str().unwrap().parse().unwrap();
    assert_eq!(shown.timestamp(), ready_at.timestamp());
    let at = Utc::now();
    app.kitchen_says_more(
        order_id,
        2,
        &[
            TicketEvent::ItemReady { index: 0, at },
            TicketEvent::TicketReady { at },
        ],
    )
    .await;
    let ready = app.wait_for_status(order_id, &customer, "ready").await;
    assert!(ready["estimatedReadyAt"].is_null());
    app.stop().await;
}

#[tokio::test]
async fn the_read_models_rebuild_from_the_event_store_while_serving() {
    let app = TestApp::spawn().await;
    let (_, customer) = app.customer();
    let order_id = app.place_one(&customer, "Île flottante").await;
    let cancelled = app
        .post(&format!("/orders/{order_id}/cancel"), &customer, None)
        .await;
    assert_eq!(cancelled.status, 200);
    let before = app.wait_for_status(order_id, &customer, "cancelled").await;
    let menu_before = app.get("/menu", None).await.body;
    let pool = sqlx::PgPool::connect(
        &app.settings
            .database_url_for(brigade_platform::ServiceName::Orders),
    )
    .await
    .unwrap();

    for spec in brigade_orders::projections() {
        let report = brigade_projections::rebuild::rebuild(&pool, &spec, |_| {})
            .await
            .unwrap();
        assert!(report.events > 0, "{}", spec.name);
    }

    assert_eq!(
        app.get(&format!("/orders/{order_id}"), Some(&customer))
            .await
            .body,
        before
    );
    assert_eq!(app.get("/menu", None).await.body, menu_before);
    pool.close().await;
    app.stop().await;
}
