//! Cancellation: the customer until the kitchen starts cooking, a manager afterwards, nobody
//! once it is over; chefs and couriers never (they reject or fail instead).

use std::time::Duration;

use brigade_domain::kitchen::{NewTicketItem, TicketEvent};
use brigade_domain::ordering::OrderEvent;
use brigade_domain::{Role, EVENT_VERSION};
use chrono::Utc;
use serde_json::json;
use uuid::Uuid;

use crate::helpers::TestApp;

/// The kitchen opens the order's ticket and starts its first dish.
async fn kitchen_starts_cooking(app: &TestApp, order_id: Uuid) {
    let at = Utc::now();
    let item = NewTicketItem {
        dish_id: Uuid::new_v4(),
        dish_name: "Bœuf bourguignon".into(),
        quantity: 1,
        note: None,
        options: Vec::new(),
    };
    app.kitchen_says(
        order_id,
        &[
            TicketEvent::TicketOpened {
                order_id,
                placed_at: at,
                items: vec![item],
                at,
                allergies: Vec::new(),
                scheduled_for: None,
            },
            TicketEvent::ItemStarted { index: 0, at },
        ],
    )
    .await;
}

/// The kitchen's news of an order is being stored at the very moment the customer cancels: the
/// cancellation loses the race for the order's next event, and is decided again on the fresh
/// order (accepted by the kitchen, still cancellable) instead of answering "try again" (409).
#[tokio::test]
async fn a_cancellation_that_loses_a_race_to_the_kitchens_news_is_decided_again() {
    let app = TestApp::spawn().await;
    let (_, customer) = app.customer();
    let order_id = app.place_one(&customer, "Bœuf bourguignon").await;
    let pool = app.pool().await;
    // Another writer stores the order's second event and holds it uncommitted…
    let accepted = OrderEvent::OrderAccepted { at: Utc::now() };
    let mut other_writer = pool.begin().await.unwrap();
    sqlx::query(
        "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata)
         VALUES ('order', $1, 2, 'OrderAccepted', $2, $3, '{}')",
    )
    .bind(order_id.to_string())
    .bind(EVENT_VERSION)
    .bind(serde_json::to_value(&accepted).unwrap())
    .execute(&mut *other_writer)
    .await
    .unwrap();
    // …while the customer cancels: the cancellation's own second event waits on it, then
    // finds the place taken.
    let path = format!("/orders/{order_id}/cancel");
    let (cancelled, ()) = tokio::join!(app.post(&path, &customer, None), async {
        tokio::time::sleep(Duration::from_millis(500)).await;
        other_writer.commit().await.unwrap();
    });

    assert_eq!(cancelled.status, 200, "{}", cancelled.body);
    assert_eq!(cancelled.body["status"], "cancelled");
    let order = app.wait_for_status(order_id, &customer, "cancelled").await;
    let statuses: Vec<&str> = order["history"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|step| step["status"].as_str())
        .collect();
    assert_eq!(statuses, ["placed", "accepted", "cancelled"], "{order}");
    pool.close().await;
    app.stop().await;
}

#[tokio::test]
async fn a_customer_cancels_before_cooking_starts() {
    let app = TestApp::spawn().await;
    let (customer_id, customer) = app.customer();
    let order_id = app.place_one(&customer, "Bœuf bourguignon").await;

    let cancelled = app
        .post(&format!("/orders/{order_id}/cancel"), &customer, None)
        .await;
    let again = app
        .post(&format!("/orders/{order_id}/cancel"), &customer, None)
        .await;

    assert_eq!(cancelled.status, 200, "{}", cancelled.body);
    assert_eq!(cancelled.body["status"], "cancelled");
    assert_eq!(again.status, 409);
    assert_eq!(again.problem_code(), "order-already-finished");
    let order = app.wait_for_status(order_id, &customer, "cancelled").await;
    let last = &order["history"][1];
    assert_eq!(last["status"], "cancelled");
    assert_eq!(last["by"]["accountId"], customer_id.to_string());
    app.stop().await;
}

#[tokio::test]
async fn a_customer_cannot_cancel_once_cooking_started_but_a_manager_can() {
    let app = TestApp::spawn().await;
    let (_, customer) = app.customer();
    let order_id = app.place_one(&customer, "Bœuf bourguignon").await;
    kitchen_starts_cooking(&app, order_id).await;
    app.wait_for_status(order_id, &customer, "in_preparation")
        .await;

    let too_late = app
        .post(
            &format!("/orders/{order_id}/cancel"),
            &customer,
            Some(json!({"reason": "trop long"})),
        )
        .await;
    let by_manager = app
        .post(
            &format!("/orders/{order_id}/cancel"),
            &app.token(Role::Manager),
            Some(json!({"reason": "client injoignable"})),
        )
        .await;

    assert_eq!(too_late.status, 409, "{}", too_late.body);
    assert_eq!(too_late.problem_code(), "order-too-late-to-cancel");
    assert_eq!(too_late.content_type, "application/problem+json");
    assert_eq!(by_manager.status, 200, "{}", by_manager.body);
    let order = app.wait_for_status(order_id, &customer, "cancelled").await;
    assert_eq!(order["reason"], "client injoignable");
    let statuses: Vec<&str> = order["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["status"].as_str().unwrap())
        .collect();
    assert_eq!(
        statuses,
        ["placed", "accepted", "in_preparation", "cancelled"]
    );
    assert_eq!(order["history"][3]["by"]["role"], "manager");
    app.stop().await;
}

#[tokio::test]
async fn nobody_cancels_someone_elses_order_and_staff_other_than_managers_never_do() {
    let app = TestApp::spawn().await;
    let (_, customer) = app.customer();
    let (_, stranger) = app.customer();
    let order_id = app.place_one(&customer, "Café expresso").await;
    let path = format!("/orders/{order_id}/cancel");

    let by_stranger = app.post(&path, &stranger, None).await;
    let by_chef = app.post(&path, &app.token(Role::Chef), None).await;
    let by_courier = app.post(&path, &app.token(Role::Courier), None).await;
    let unknown = app
        .post(
            &format!("/orders/{}/cancel", Uuid::new_v4()),
            &customer,
            None,
        )
        .await;

    assert_eq!(
        (by_stranger.status, by_stranger.problem_code()),
        (404, "order-not-found".to_owned())
    );
    assert_eq!(by_chef.status, 403);
    assert_eq!(by_courier.status, 403);
    assert_eq!(unknown.status, 404);
    let order = app
        .get(&format!("/orders/{order_id}"), Some(&customer))
        .await;
    assert_eq!(order.body["status"], "placed");
    app.stop().await;
}
