//! The kitchen's tickets per 15-minute slot: a quoted ready time, full slots refused with the
//! next possible time, scheduled orders, and the kitchen's live load freeing a slot.

use brigade_domain::kitchen::TicketEvent;
use chrono::{DateTime, Duration, DurationRound, Utc};
use serde_json::json;
use uuid::Uuid;

use crate::helpers::{order_of, TestApp};

/// A time in the middle of a slot about two hours ahead, away from any slot boundary.
fn mid_slot_later() -> DateTime<Utc> {
    (Utc::now() + Duration::hours(2))
        .duration_trunc(Duration::minutes(15))
        .unwrap()
        + Duration::minutes(7)
}

fn scheduled(dish: &str, at: DateTime<Utc>) -> serde_json::Value {
    let mut body = order_of(&[(dish, 1)]);
    body["scheduledFor"] = json!(at);
    body
}

#[tokio::test]
async fn a_full_slot_is_refused_with_the_next_possible_time_and_nothing_is_stored() {
    let app = TestApp::spawn_with(|settings| settings.kitchen_slot_capacity = Some(1)).await;
    let (_, token) = app.customer();
    let dish = app.dish("Ratatouille provençale").await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let at = mid_slot_later();
    let first = app
        .place(&token, &Uuid::new_v4().to_string(), &scheduled(&dish, at))
        .await;
    assert_eq!(first.status, 201, "{}", first.body);
    assert_eq!(
        first.body["scheduledFor"]
            .as_str()
            .unwrap()
            .parse::<DateTime<Utc>>()
            .unwrap(),
        at
    );
    assert_eq!(app.stored_orders().await, (1, 1));

    let key = Uuid::new_v4().to_string();
    let full = app
        .place(&token, &key, &scheduled(&dish, at + Duration::minutes(1)))
        .await;
    assert_eq!(full.status, 409, "{}", full.body);
    assert!(full.content_type.starts_with("application/problem+json"));
    assert_eq!(full.problem_code(), "kitchen-slot-full");
    assert_eq!(full.field(), "scheduledFor");
    let next: DateTime<Utc> = full.body["nextAvailableAt"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(next, at - Duration::minutes(7) + Duration::minutes(15));
    assert_eq!(
        app.stored_orders().await,
        (1, 1),
        "a refusal stores nothing"
    );

    // Before the dish could be ready: refused too, saying when it could.
    let too_soon = app
        .place(
            &token,
            &key,
            &scheduled(&dish, Utc::now() + Duration::minutes(2)),
        )
        .await;
    assert_eq!(too_soon.status, 422, "{}", too_soon.body);
    assert_eq!(too_soon.problem_code(), "order-schedule-too-soon");
    assert!(too_soon.body["nextAvailableAt"].is_string());
    assert_eq!(app.stored_orders().await, (1, 1));

    // At the time given, with the same key: placed as scheduled.
    let later = app.place(&token, &key, &scheduled(&dish, next)).await;
    assert_eq!(later.status, 201, "{}", later.body);
    assert_eq!(app.stored_orders().await, (2, 2));
    app.stop().await;
}

#[tokio::test]
async fn a_scheduled_order_shows_its_time_when_tracked_and_in_the_history() {
    let app = TestApp::spawn().await;
    let (_, token) = app.customer();
    let dish = app.dish("Ratatouille provençale").await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let at = mid_slot_later();
    let placed = app
        .place(&token, &Uuid::new_v4().to_string(), &scheduled(&dish, at))
        .await;
    assert_eq!(placed.status, 201, "{}", placed.body);
    let order_id: Uuid = placed.body["orderId"].as_str().unwrap().parse().unwrap();
    let asap = app.place_one(&token, "Tarte Tatin").await;

    let scheduled_for = |order: &serde_json::Value| {
        order["scheduledFor"]
            .as_str()
            .map(|at| at.parse::<DateTime<Utc>>().unwrap())
    };
    // From the read model (its history names who placed it), not the aggregate's fallback.
    let tracked = app.wait_for_status(order_id, &token, "placed").await;
    assert_eq!(scheduled_for(&tracked), Some(at), "{tracked}");
    let other = app.wait_for_status(asap, &token, "placed").await;
    assert!(other.get("scheduledFor").is_none(), "{other}");

    let history = app.get("/orders", Some(&token)).await.body;
    let listed = |id: Uuid| {
        history["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|o| o["orderId"] == id.to_string())
            .cloned()
            .unwrap_or_else(|| panic!("{id} not in {history}"))
    };
    assert_eq!(scheduled_for(&listed(order_id)), Some(at));
    assert_eq!(scheduled_for(&listed(asap)), None);
    app.stop().await;
}

#[tokio::test]
async fn the_quoted_ready_time_follows_the_kitchens_live_load() {
    let app = TestApp::spawn_with(|settings| settings.kitchen_slot_capacity = Some(1)).await;
    let (_, token) = app.customer();
    let ratatouille = app.dish("Ratatouille provençale").await;
    let dish = ratatouille["id"].as_str().unwrap().to_owned();
    let quote_path = format!("/menu/ready-time?dishIds={dish}");

    let quote = app.get(&quote_path, None).await;
    assert_eq!(quote.status, 200, "{}", quote.body);
    assert_eq!(quote.body["ticketsPerSlot"], 1);
    assert_eq!(quote.body["full"], false);
    assert_eq!(quote.body["readyAt"], quote.body["earliestAt"]);

    // The one place of the slot goes to a first order: the next is told when it could be.
    let order_id = app.place_one(&token, "Ratatouille provençale").await;
    let quote = app.get(&quote_path, None).await;
    assert_eq!(quote.body["full"], true, "{}", quote.body);
    assert_eq!(quote.body["booked"], 1);
    assert_eq!(quote.body["readyAt"], quote.body["slotEnd"]);
    let refused = app
        .place(
            &token,
            &Uuid::new_v4().to_string(),
            &order_of(&[(&dish, 1)]),
        )
        .await;
    assert_eq!(refused.status, 409, "{}", refused.body);
    assert_eq!(refused.problem_code(), "kitchen-slot-full");
    assert_eq!(refused.body["nextAvailableAt"], quote.body["slotEnd"]);

    // The kitchen makes it ready: its place is free again.
    let at = Utc::now();
    app.kitchen_says(
        order_id,
        &[
            TicketEvent::TicketOpened {
                order_id,
                placed_at: at,
                items: Vec::new(),
                at,
                allergies: Vec::new(),
                scheduled_for: None,
            },
            TicketEvent::TicketReady { at },
        ],
    )
    .await;
    app.eventually("the slot to free up", || async {
        (app.get(&quote_path, None).await.body["full"] == false).then_some(())
    })
    .await;
    let placed = app
        .place(
            &token,
            &Uuid::new_v4().to_string(),
            &order_of(&[(&dish, 1)]),
        )
        .await;
    assert_eq!(placed.status, 201, "{}", placed.body);

    let bad = app.get("/menu/ready-time?dishIds=steak", None).await;
    assert_eq!(bad.status, 400);
    assert_eq!(bad.field(), "dishIds");
    app.stop().await;
}

#[tokio::test]
async fn concurrent_orders_never_overfill_a_slot() {
    let app = TestApp::spawn_with(|settings| settings.kitchen_slot_capacity = Some(3)).await;
    let dish = app.dish("Ratatouille provençale").await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let at = mid_slot_later();
    let attempts = (0..10).map(|i| {
        let (app, dish) = (&app, dish.clone());
        async move {
            let (_, token) = app.customer();
            app.place(
                &token,
                &Uuid::new_v4().to_string(),
                &scheduled(&dish, at + Duration::seconds(i)),
            )
            .await
            .status
        }
    });
    let mut statuses = futures::future::join_all(attempts).await;
    statuses.sort_unstable();
    assert_eq!(statuses, [201, 201, 201, 409, 409, 409, 409, 409, 409, 409]);
    assert_eq!(app.stored_orders().await, (3, 3));
    app.stop().await;
}
