//! Dispatch, black-box where it can be: deliveries that become ready go to the nearest free
//! courier on shift, wait in the queue when nobody is free, and no number of simultaneous
//! dispatchers ever gives one courier two deliveries.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashSet;

use brigade_delivery::dispatch::{book, Booking, Dispatcher, Workload};
use brigade_delivery::geo::GeoPoint;
use brigade_domain::delivery::{Delivery, DeliveryCommand, DeliveryEvent, DeliveryStatus};
use brigade_domain::Address;
use brigade_nats::store::{self, CommandMetadata};
use brigade_nats::{EventEnvelope, EventHandler, ReceivedEvent};
use chrono::Utc;
use common::{eventually, test_config, TestApp, RESTAURANT};
use serde_json::{json, Value};
use uuid::Uuid;

#[tokio::test]
async fn a_ready_delivery_goes_to_the_nearest_free_courier_on_shift() {
    let app = TestApp::spawn_with(test_config()).await;
    let (_far, _) = app.courier_on_shift("Far", 4.0).await;
    let (near, near_token) = app.courier_on_shift("Near", 0.3).await;
    // Off shift: never chosen, however near.
    let (_off, _) = app.hire_courier("Off").await;

    let (order_id, _) = (Uuid::new_v4(), Uuid::new_v4());
    app.place_order(order_id, Uuid::new_v4()).await;
    app.ticket_ready(order_id).await;
    let assigned = app.delivery_in(order_id, "assigned").await;
    assert_eq!(assigned["courier"]["id"], near.to_string());
    let mine: Vec<Value> = app
        .get("/deliveries", &near_token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(mine.len(), 1);
    app.cleanup().await;
}

#[tokio::test]
async fn a_delivery_waits_in_the_queue_until_a_courier_frees_up() {
    let app = TestApp::spawn_with(test_config()).await;
    let (courier, token) = app.courier_on_shift("Only", 1.0).await;

    let (first, second) = (Uuid::new_v4(), Uuid::new_v4());
    app.place_order(first, Uuid::new_v4()).await;
    app.ticket_ready(first).await;
    app.delivery_in(first, "assigned").await;
    app.place_order(second, Uuid::new_v4()).await;
    app.ticket_ready(second).await;
    app.delivery_in(second, "ready_for_pickup").await;

    // Nobody is free: the second waits, visibly.
    tokio::time::sleep(std::time::Duration::from_millis(1200)).await;
    let queue: Vec<Value> = app
        .get("/dispatch/queue", &app.manager)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(queue.len(), 1);
    assert_eq!(queue[0]["orderId"], second.to_string());

    app.post(&format!("/deliveries/{first}/pickup"), &token, json!({}))
        .await;
    app.post(&format!("/deliveries/{first}/deliver"), &token, json!({}))
        .await;
    let assigned = app.delivery_in(second, "assigned").await;
    assert_eq!(assigned["courier"]["id"], courier.to_string());
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_simultaneous_dispatches_over_ten_couriers_never_double_book() {
    let app = TestApp::spawn().await;
    let mut couriers = Vec::new();
    for n in 0..10 {
        couriers.push(
            app.courier_on_shift(&format!("Courier {n}"), 0.2 * f64::from(n))
                .await
                .0,
        );
    }
    // Fifty deliveries ready at once, written straight to the service's event store.
    let deliveries = store::event_store::<Delivery>(app.pool.clone(), ());
    let mut orders = Vec::new();
    for _ in 0..50 {
        let order_id = Uuid::new_v4();
        let id = order_id.to_string();
        for command in [
            DeliveryCommand::Request {
                order_id,
                customer_id: Uuid::new_v4(),
                address: Address {
                    street: "1 Rue de Rivoli".into(),
                    city: "Paris".into(),
                    postal_code: "75004".into(),
                    lat: None,
                    lon: None,
                },
                contact_phone: None,
                at: Utc::now(),
            },
            DeliveryCommand::MarkReadyForPickup { at: Utc::now() },
        ] {
            let metadata =
                CommandMetadata::by(r#"{"kind":"system"}"#.to_owned()).correlation(id.clone());
            deliveries
                .execute_with_metadata(&id, command, metadata.into_map())
                .await
                .unwrap();
        }
        orders.push(order_id);
    }
    eventually("fifty deliveries in the queue", || async {
        let queue: Vec<Value> = app
            .get("/dispatch/queue", &app.manager)
            .await
            .json()
            .await
            .ok()?;
        (queue.len() == 50).then_some(())
    })
    .await;

    let restaurant = GeoPoint {
        lat: RESTAURANT.0,
        lon: RESTAURANT.1,
    };
    let dispatches = orders.iter().map(|&order_id| {
        let dispatcher = Dispatcher::new(app.pool.clone(), deliveries.clone(), restaurant);
        tokio::spawn(async move { dispatcher.dispatch(order_id).await.unwrap() })
    });
    let chosen: Vec<Uuid> = futures::future::join_all(dispatches)
        .await
        .into_iter()
        .filter_map(|outcome| outcome.unwrap())
        .collect();
    assert_eq!(chosen.len(), 10, "every courier got one delivery");
    assert_eq!(
        chosen.iter().collect::<HashSet<_>>().len(),
        10,
        "nobody got two"
    );

    // And whole passes over the queue, all at once, find nobody free.
    let passes = (0..10).map(|_| {
        let dispatcher = Dispatcher::new(app.pool.clone(), deliveries.clone(), restaurant);
        tokio::spawn(async move { dispatcher.dispatch_waiting().await.unwrap() })
    });
    let more: usize = futures::future::join_all(passes)
        .await
        .into_iter()
        .map(Result::unwrap)
        .sum();
    assert_eq!(more, 0);

    // The event store agrees: each courier is assigned exactly one delivery.
    let mut carried = Vec::new();
    for order_id in &orders {
        let delivery = store::load::<Delivery>(&app.pool, &order_id.to_string())
            .await
            .unwrap()
            .aggregate;
        if delivery.status() == Some(DeliveryStatus::Assigned) {
            carried.push(delivery.courier_id().unwrap());
        }
    }
    carried.sort();
    let mut expected = couriers.clone();
    expected.sort();
    assert_eq!(carried, expected);
    app.cleanup().await;
}

#[tokio::test]
async fn a_declined_delivery_goes_to_the_next_courier_and_waits_when_everyone_declined() {
    let app = TestApp::spawn_with(test_config()).await;
    let (near, near_token) = app.courier_on_shift("Near", 0.2).await;
    let (far, far_token) = app.courier_on_shift("Far", 3.0).await;

    let order_id = Uuid::new_v4();
    app.place_order(order_id, Uuid::new_v4()).await;
    app.ticket_ready(order_id).await;
    let first = app.delivery_in(order_id, "assigned").await;
    assert_eq!(first["courier"]["id"], near.to_string());

    let path = format!("/deliveries/{order_id}/decline");
    let response = app.post(&path, &near_token, json!({})).await;
    assert_eq!(response.status(), reqwest::StatusCode::OK);
    let second = eventually("the next courier", || async {
        app.delivery(order_id)
            .await
            .filter(|d| d["status"] == "assigned" && d["courier"]["id"] == far.to_string())
    })
    .await;
    assert_eq!(second["courier"]["name"], "Far");

    // Far declines too: nobody is left who has not declined, so it waits for a manager.
    assert_eq!(
        app.post(&path, &far_token, json!({})).await.status(),
        reqwest::StatusCode::OK
    );
    app.delivery_in(order_id, "ready_for_pickup").await;
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    assert_eq!(
        app.delivery(order_id).await.unwrap()["status"],
        "ready_for_pickup"
    );

    // Waiting longer than the alert threshold tells the managers, once.
    let alerts = eventually("the waiting alert", || async {
        let list: Vec<Value> = app
            .get("/notifications", &app.manager)
            .await
            .json()
            .await
            .ok()?;
        let alerts: Vec<Value> = list
            .into_iter()
            .filter(|n| n["kind"] == "delivery_waiting")
            .collect();
        (!alerts.is_empty()).then_some(alerts)
    })
    .await;
    assert_eq!(alerts[0]["orderId"], order_id.to_string());
    tokio::time::sleep(std::time::Duration::from_millis(1200)).await;
    let list: Vec<Value> = app
        .get("/notifications", &app.manager)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        list.iter()
            .filter(|n| n["kind"] == "delivery_waiting")
            .count(),
        1
    );

    // A courier declines only what is theirs, and only before pickup.
    let response = app.post(&path, &near_token, json!({})).await;
    assert_eq!(response.status(), reqwest::StatusCode::NOT_FOUND);
    app.cleanup().await;
}

/// The kitchen's quote brings the courier in time: a delivery whose food is expected within
/// the dispatch lead gets a courier before it is ready, who picks up only once it is; a
/// courier sent ahead is as booked as any other.
#[tokio::test]
async fn a_courier_is_sent_ahead_when_the_kitchen_expects_the_food_within_the_lead() {
    // The lead is five minutes (test_config).
    let app = TestApp::spawn_with(test_config()).await;
    let (near, near_token) = app.courier_on_shift("Near", 0.2).await;
    let (soon, later) = (Uuid::new_v4(), Uuid::new_v4());
    app.place_order(soon, Uuid::new_v4()).await;
    app.place_order(later, Uuid::new_v4()).await;
    app.delivery_in(soon, "requested").await;
    app.delivery_in(later, "requested").await;
    let minutes = |n: i64| Utc::now() + chrono::Duration::minutes(n);
    app.ticket_estimated(later, 1, minutes(20)).await;
    app.ticket_estimated(soon, 1, minutes(3)).await;

    let ahead = app.delivery_in(soon, "assigned").await;
    assert_eq!(ahead["courier"]["id"], near.to_string());
    assert!(ahead["readyAt"].is_null(), "sent before the food is ready");
    // Food expected in twenty minutes: no courier yet, even a free one.
    let (far, _) = app.courier_on_shift("Far", 2.0).await;
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    assert_eq!(app.delivery(later).await.unwrap()["status"], "requested");

    // The courier waits for the kitchen.
    let pickup = format!("/deliveries/{soon}/pickup");
    let response = app.post(&pickup, &near_token, json!({})).await;
    assert_eq!(response.status(), reqwest::StatusCode::CONFLICT);
    assert_eq!(
        common::problem_code(response).await,
        "delivery-not-ready-for-pickup"
    );

    // The second quote moves `later` within the lead: it goes to the courier who is free,
    // never to the one already sent for `soon`.
    app.ticket_estimated(later, 2, minutes(2)).await;
    let second = app.delivery_in(later, "assigned").await;
    assert_eq!(second["courier"]["id"], far.to_string());

    // The food is ready: the courier sent ahead stays assigned and may now pick it up.
    app.ticket_ready(soon).await;
    let ready = eventually("the food ready for the courier sent ahead", || async {
        app.delivery(soon)
            .await
            .filter(|d| d["status"] == "assigned" && d["readyAt"].is_string())
    })
    .await;
    assert_eq!(ready["courier"]["id"], near.to_string());
    let response = app.post(&pickup, &near_token, json!({})).await;
    assert_eq!(response.status(), reqwest::StatusCode::OK);
    let busy: i64 = sqlx::query_scalar("SELECT count(*) FROM courier_workload")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(busy, 2, "one booking per courier");
    app.cleanup().await;
}

#[tokio::test]
async fn a_courier_assigned_heard_after_a_reassignment_leaves_the_new_booking_alone() {
    let app = TestApp::spawn().await;
    let (order, alice, bob) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
    // Alice is assigned; a manager gives the order to Bob before the workload has heard of it.
    let booked = book(&app.pool, alice, order, false).await.unwrap();
    assert_eq!(booked, Booking::Booked { replaced: None });
    let recorded = Utc::now();
    let reassigned = book(&app.pool, bob, order, true).await.unwrap();
    assert_eq!(
        reassigned,
        Booking::Booked {
            replaced: Some(alice)
        }
    );

    let event = DeliveryEvent::CourierAssigned {
        courier_id: alice,
        at: recorded,
    };
    let heard = ReceivedEvent {
        envelope: EventEnvelope {
            event_id: Uuid::new_v4(),
            aggregate_type: "delivery".into(),
            aggregate_id: order.to_string(),
            sequence: 3,
            event_type: "CourierAssigned".into(),
            event_version: "1.0".into(),
            payload: serde_json::to_value(&event).unwrap(),
            metadata: Default::default(),
            recorded_at: recorded,
        },
        subject: "delivery.delivery.courier_assigned".into(),
        delivered: 1,
    };
    let mut tx = app.pool.begin().await.unwrap();
    Workload.handle(&heard, &mut tx).await.unwrap();
    tx.commit().await.unwrap();

    let workload: Vec<(Uuid, Uuid)> = sqlx::query_as(
        "SELECT courier_id, order_id FROM courier_workload
          WHERE order_id = $1 OR courier_id = ANY($2)",
    )
    .bind(order)
    .bind(vec![alice, bob])
    .fetch_all(&app.pool)
    .await
    .unwrap();
    assert_eq!(workload, [(bob, order)], "Bob keeps it, Alice is free");
    app.cleanup().await;
}
