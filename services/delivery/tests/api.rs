//! Black-box tests of the delivery service's HTTP API: the real service, real PostgreSQL and
//! NATS, events from the other services published on their streams.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use brigade_domain::Role;
use common::{eventually, problem_code, TestApp};
use futures::StreamExt;
use reqwest::StatusCode;
use serde_json::{json, Value};
use uuid::Uuid;

#[tokio::test]
async fn an_order_placed_then_cooked_becomes_a_delivery_ready_for_pickup() {
    let app = TestApp::spawn().await;
    let (order_id, customer) = (Uuid::new_v4(), Uuid::new_v4());

    app.place_order(order_id, customer).await;
    let requested = app.delivery_in(order_id, "requested").await;
    assert_eq!(requested["customerId"], customer.to_string());
    assert_eq!(requested["address"]["city"], "Paris");
    assert_eq!(requested["contactPhone"], "+33 1 23 45 67 89");
    assert!(requested["readyAt"].is_null());

    app.ticket_ready(order_id).await;
    let ready = app.delivery_in(order_id, "ready_for_pickup").await;
    assert!(ready["readyAt"].is_string());
    assert!(ready["courier"].is_null());

    // It is in progress, so on the manager's list and in the dispatch queue.
    let list: Vec<Value> = app
        .get("/deliveries", &app.manager)
        .await
        .json()
        .await
        .unwrap();
    assert!(list.iter().any(|d| d["orderId"] == order_id.to_string()));
    let queue: Vec<Value> = app
        .get("/dispatch/queue", &app.manager)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(queue.len(), 1);
    app.cleanup().await;
}

#[tokio::test]
async fn a_manager_assigns_and_the_courier_picks_up_and_delivers() {
    let app = TestApp::spawn().await;
    let (order_id, customer) = app.ready_delivery().await;
    let (courier, courier_token) = app.hire_courier("Alice Martin").await;
    let path = format!("/deliveries/{order_id}");

    let response = app
        .post(
            &format!("{path}/assign"),
            &app.manager,
            json!({"courierId": courier}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let assigned: Value = response.json().await.unwrap();
    assert_eq!(assigned["status"], "assigned");
    assert_eq!(assigned["courier"]["id"], courier.to_string());
    assert_eq!(assigned["courier"]["name"], "Alice Martin");

    // The courier sees it among their deliveries.
    let mine = eventually("the courier's list", || async {
        let list: Vec<Value> = app
            .get("/deliveries", &courier_token)
            .await
            .json()
            .await
            .ok()?;
        (list.len() == 1).then_some(list)
    })
    .await;
    assert_eq!(mine[0]["orderId"], order_id.to_string());
    assert_eq!(mine[0]["courier"]["name"], "Alice Martin");

    let response = app
        .post(&format!("{path}/pickup"), &courier_token, json!({}))
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let picked: Value = response.json().await.unwrap();
    assert_eq!(picked["status"], "picked_up");
    assert!(picked["pickedUpAt"].is_string());

    let response = app
        .post(
            &format!("{path}/deliver"),
            &courier_token,
            json!({"receivedBy": "the customer", "note": "left at the door"}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let delivered: Value = response.json().await.unwrap();
    assert_eq!(delivered["status"], "delivered");
    assert_eq!(delivered["receivedBy"], "the customer");

    let seen = app.delivery_in(order_id, "delivered").await;
    assert_eq!(seen["note"], "left at the door");
    assert!(seen["finishedAt"].is_string());
    // The customer sees their delivered order; it is no longer in progress for anyone.
    let customer_token = app.token(customer, Role::Customer);
    assert_eq!(
        app.get(&path, &customer_token).await.status(),
        StatusCode::OK
    );
    let list: Vec<Value> = app
        .get("/deliveries", &app.manager)
        .await
        .json()
        .await
        .unwrap();
    assert!(list.is_empty());
    // The courier is free again: they can be removed.
    eventually("the courier to be free", || async {
        (app.delete(&format!("/couriers/{courier}"), &app.manager)
            .await
            .status()
            == StatusCode::NO_CONTENT)
            .then_some(())
    })
    .await;
    app.cleanup().await;
}

#[tokio::test]
async fn only_couriers_and_managers_list_deliveries_and_a_courier_sees_only_their_own() {
    let app = TestApp::spawn().await;
    let (first, _) = app.ready_delivery().await;
    let (second, _) = app.ready_delivery().await;
    let (alice, alice_token) = app.hire_courier("Alice").await;
    let (bob, bob_token) = app.hire_courier("Bob").await;
    for (order, courier) in [(first, alice), (second, bob)] {
        let response = app
            .post(
                &format!("/deliveries/{order}/assign"),
                &app.manager,
                json!({"courierId": courier}),
            )
            .await;
        assert_eq!(response.status(), StatusCode::OK);
    }
    app.delivery_in(second, "assigned").await;

    let all: Vec<Value> = app
        .get("/deliveries", &app.manager)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(all.len(), 2);
    let alices: Vec<Value> = app
        .get("/deliveries", &alice_token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(alices.len(), 1);
    assert_eq!(alices[0]["orderId"], first.to_string());
    let bobs: Vec<Value> = app
        .get("/deliveries", &bob_token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(bobs[0]["orderId"], second.to_string());

    for role in [Role::Customer, Role::Chef] {
        let response = app
            .get("/deliveries", &app.token(Uuid::new_v4(), role))
            .await;
        assert_eq!(response.status(), StatusCode::FORBIDDEN);
        assert_eq!(problem_code(response).await, "forbidden");
    }
    let anonymous = app
        .client
        .get(format!("{}/deliveries", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    app.cleanup().await;
}

#[tokio::test]
async fn a_delivery_is_seen_by_its_customer_its_courier_and_the_manager_only() {
    let app = TestApp::spawn().await;
    let (order_id, customer) = app.ready_delivery().await;
    let (courier, courier_token) = app.hire_courier("Alice").await;
    let (_, other_courier) = app.hire_courier("Bob").await;
    app.post(
        &format!("/deliveries/{order_id}/assign"),
        &app.manager,
        json!({"courierId": courier}),
    )
    .await;
    app.delivery_in(order_id, "assigned").await;
    let path = format!("/deliveries/{order_id}");

    for token in [
        app.manager.clone(),
        app.token(customer, Role::Customer),
        courier_token,
    ] {
        assert_eq!(app.get(&path, &token).await.status(), StatusCode::OK);
    }
    for token in [
        app.token(Uuid::new_v4(), Role::Customer),
        other_courier,
        app.token(Uuid::new_v4(), Role::Chef),
    ] {
        let response = app.get(&path, &token).await;
        assert_eq!(response.status(), StatusCode::NOT_FOUND);
        assert_eq!(problem_code(response).await, "delivery-not-found");
        assert_eq!(
            app.get(&format!("{path}/stream"), &token).await.status(),
            StatusCode::NOT_FOUND
        );
    }
    assert_eq!(
        app.get(&format!("/deliveries/{}", Uuid::new_v4()), &app.manager)
            .await
            .status(),
        StatusCode::NOT_FOUND
    );
    app.cleanup().await;
}

#[tokio::test]
async fn only_the_assigned_courier_moves_a_delivery_on() {
    let app = TestApp::spawn().await;
    let (order_id, customer) = app.ready_delivery().await;
    let (courier, _) = app.hire_courier("Alice").await;
    let (_, intruder) = app.hire_courier("Bob").await;
    app.post(
        &format!("/deliveries/{order_id}/assign"),
        &app.manager,
        json!({"courierId": courier}),
    )
    .await;
    let before = app.stored_events(order_id).await;
    let path = format!("/deliveries/{order_id}");

    let response = app
        .post(&format!("{path}/pickup"), &intruder, json!({}))
        .await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    let response = app
        .post(
            &format!("{path}/fail"),
            &intruder,
            json!({"reason": "nobody home"}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    for token in [app.manager.clone(), app.token(customer, Role::Customer)] {
        assert_eq!(
            app.post(&format!("{path}/pickup"), &token, json!({}))
                .await
                .status(),
            StatusCode::FORBIDDEN
        );
    }
    // Assigning is the manager's alone.
    let (_, courier_token) = (courier, app.token(courier, Role::Courier));
    let response = app
        .post(
            &format!("{path}/assign"),
            &courier_token,
            json!({"courierId": courier}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert_eq!(app.stored_events(order_id).await, before);
    app.cleanup().await;
}

#[tokio::test]
async fn transitions_out_of_order_are_refused_and_store_nothing() {
    let app = TestApp::spawn().await;
    let (courier, token) = app.hire_courier("Alice").await;

    // Not ready yet: it cannot be assigned.
    let (order_id, customer) = (Uuid::new_v4(), Uuid::new_v4());
    app.place_order(order_id, customer).await;
    app.delivery_in(order_id, "requested").await;
    let path = format!("/deliveries/{order_id}");
    let response = app
        .post(
            &format!("{path}/assign"),
            &app.manager,
            json!({"courierId": courier}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::CONFLICT);
    assert_eq!(
        problem_code(response).await,
        "delivery-not-ready-for-pickup"
    );
    assert_eq!(app.stored_events(order_id).await, 1);

    app.ticket_ready(order_id).await;
    app.delivery_in(order_id, "ready_for_pickup").await;
    let response = app
        .post(
            &format!("{path}/assign"),
            &app.manager,
            json!({"courierId": courier}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let after_assign = app.stored_events(order_id).await;

    // Deliver before pickup.
    let response = app
        .post(&format!("{path}/deliver"), &token, json!({}))
        .await;
    assert_eq!(response.status(), StatusCode::CONFLICT);
    assert_eq!(problem_code(response).await, "delivery-wrong-status");
    assert_eq!(app.stored_events(order_id).await, after_assign);

    assert_eq!(
        app.post(&format!("{path}/pickup"), &token, json!({}))
            .await
            .status(),
        StatusCode::OK
    );
    // Pickup twice; fail without a reason.
    assert_eq!(
        app.post(&format!("{path}/pickup"), &token, json!({}))
            .await
            .status(),
        StatusCode::CONFLICT
    );
    let response = app
        .post(&format!("{path}/fail"), &token, json!({"reason": "  "}))
        .await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let problem: Value = response.json().await.unwrap();
    assert_eq!(problem["field"], "reason");
    // Reassigning after pickup is too late.
    let (bob, _) = app.hire_courier("Bob").await;
    let response = app
        .post(
            &format!("{path}/assign"),
            &app.manager,
            json!({"courierId": bob}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::CONFLICT);

    assert_eq!(
        app.post(&format!("{path}/deliver"), &token, json!({}))
            .await
            .status(),
        StatusCode::OK
    );
    let delivered = app.stored_events(order_id).await;
    // Deliver twice, fail after delivery.
    let response = app
        .post(&format!("{path}/deliver"), &token, json!({}))
        .await;
    assert_eq!(response.status(), StatusCode::CONFLICT);
    assert_eq!(problem_code(response).await, "delivery-wrong-status");
    let response = app
        .post(&format!("{path}/fail"), &token, json!({"reason": "lost"}))
        .await;
    assert_eq!(response.status(), StatusCode::CONFLICT);
    assert_eq!(app.stored_events(order_id).await, delivered);

    // Malformed bodies are 4xx problems, not 500s.
    let response = app
        .post(
            &format!("{path}/assign"),
            &app.manager,
            json!({"courierId": "nope"}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let response = app
        .post(
            &format!("{path}/assign"),
            &app.manager,
            json!({"courierId": Uuid::new_v4()}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(problem_code(response).await, "courier-not-found");
    app.cleanup().await;
}

#[tokio::test]
async fn a_manager_reassigns_before_pickup_and_a_busy_courier_is_refused() {
    let app = TestApp::spawn().await;
    let (first, _) = app.ready_delivery().await;
    let (second, _) = app.ready_delivery().await;
    let (alice, alice_token) = app.hire_courier("Alice").await;
    let (bob, _) = app.hire_courier("Bob").await;

    app.post(
        &format!("/deliveries/{first}/assign"),
        &app.manager,
        json!({"courierId": alice}),
    )
    .await;
    // Alice carries one delivery: she cannot be given another.
    let response = app
        .post(
            &format!("/deliveries/{second}/assign"),
            &app.manager,
            json!({"courierId": alice}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::CONFLICT);
    assert_eq!(problem_code(response).await, "courier-busy");

    // Reassigning the first to Bob frees Alice.
    let response = app
        .post(
            &format!("/deliveries/{first}/assign"),
            &app.manager,
            json!({"courierId": bob}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let reassigned: Value = response.json().await.unwrap();
    assert_eq!(reassigned["courier"]["id"], bob.to_string());
    assert_eq!(
        app.post(
            &format!("/deliveries/{first}/pickup"),
            &alice_token,
            json!({})
        )
        .await
        .status(),
        StatusCode::NOT_FOUND
    );
    let response = app
        .post(
            &format!("/deliveries/{second}/assign"),
            &app.manager,
            json!({"courierId": alice}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    app.cleanup().await;
}

#[tokio::test]
async fn positions_out_of_range_or_off_shift_are_refused() {
    let app = TestApp::spawn().await;
    let (courier, token) = app.hire_courier("Alice").await;

    let response = app
        .post(
            "/couriers/me/position",
            &token,
            json!({"lat": 48.8, "lon": 2.3}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::CONFLICT);
    assert_eq!(problem_code(response).await, "courier-off-shift");

    let response = app
        .post("/couriers/me/shift", &token, json!({"onShift": true}))
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let me: Value = response.json().await.unwrap();
    assert_eq!(me["onShift"], true);
    for (body, field) in [
        (json!({"lat": 90.5, "lon": 2.3}), "lat"),
        (json!({"lat": -91, "lon": 2.3}), "lat"),
        (json!({"lat": 48.8, "lon": 180.01}), "lon"),
        (json!({"lat": 48.8, "lon": -200}), "lon"),
    ] {
        let response = app.post("/couriers/me/position", &token, body).await;
        assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
        let problem: Value = response.json().await.unwrap();
        assert_eq!(problem["field"], field);
        assert_eq!(
            problem["type"],
            "https://brigade.dev/errors/position-out-of-range"
        );
    }
    let response = app
        .post(
            "/couriers/me/position",
            &token,
            json!({"lat": 90, "lon": -180}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    // Only a courier sends positions; a courier not in the fleet is told so.
    let manager = app
        .post(
            "/couriers/me/position",
            &app.manager,
            json!({"lat": 1, "lon": 1}),
        )
        .await;
    assert_eq!(manager.status(), StatusCode::FORBIDDEN);
    let stranger = app.token(Uuid::new_v4(), Role::Courier);
    let response = app
        .post(
            "/couriers/me/position",
            &stranger,
            json!({"lat": 1, "lon": 1}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);

    let fleet = eventually("the position in the fleet", || async {
        let me: Value = app
            .get(&format!("/couriers/{courier}"), &app.manager)
            .await
            .json()
            .await
            .ok()?;
        me["position"].is_object().then_some(me)
    })
    .await;
    assert_eq!(fleet["position"]["lat"], 90.0);
    app.cleanup().await;
}

#[tokio::test]
async fn managers_hire_edit_list_and_remove_couriers() {
    let app = TestApp::spawn().await;
    let response = app
        .post(
            "/couriers",
            &app.manager,
            json!({"name": "  Chloé Dubois ", "phone": "+33 6 00 00 00 01", "vehicle": "scooter"}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let hired: Value = response.json().await.unwrap();
    let id = hired["id"].as_str().unwrap().to_owned();
    assert_eq!(hired["name"], "Chloé Dubois");
    assert_eq!(hired["vehicle"], "scooter");
    assert_eq!(hired["active"], true);
    assert_eq!(hired["onShift"], false);
    assert!(hired["accountId"].is_null());

    let list = eventually("the fleet", || async {
        let list: Vec<Value> = app.get("/couriers", &app.manager).await.json().await.ok()?;
        (list.len() == 1).then_some(list)
    })
    .await;
    assert_eq!(list[0]["id"], id.as_str());

    let response = app
        .put(
            &format!("/couriers/{id}"),
            &app.manager,
            json!({"vehicle": "car", "phone": "", "active": false}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let updated: Value = response.json().await.unwrap();
    assert_eq!(updated["vehicle"], "car");
    assert!(updated["phone"].is_null());
    assert_eq!(updated["active"], false);

    let response = app
        .post(
            "/couriers",
            &app.manager,
            json!({"name": " ", "vehicle": "bike"}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!((response.json::<Value>().await.unwrap())["field"], "name");
    let response = app
        .post(
            "/couriers",
            &app.manager,
            json!({"name": "X", "vehicle": "rocket"}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let account = Uuid::new_v4();
    let body = json!({"name": "Dan", "vehicle": "bike", "accountId": account});
    assert_eq!(
        app.post("/couriers", &app.manager, body.clone())
            .await
            .status(),
        StatusCode::CREATED
    );
    assert_eq!(
        app.post("/couriers", &app.manager, body).await.status(),
        StatusCode::CONFLICT
    );

    for token in [
        app.token(Uuid::new_v4(), Role::Courier),
        app.token(Uuid::new_v4(), Role::Customer),
    ] {
        assert_eq!(
            app.get("/couriers", &token).await.status(),
            StatusCode::FORBIDDEN
        );
        assert_eq!(
            app.delete(&format!("/couriers/{id}"), &token)
                .await
                .status(),
            StatusCode::FORBIDDEN
        );
    }

    assert_eq!(
        app.delete(&format!("/couriers/{id}"), &app.manager)
            .await
            .status(),
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        app.delete(&format!("/couriers/{id}"), &app.manager)
            .await
            .status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.put(
            &format!("/couriers/{id}"),
            &app.manager,
            json!({"name": "Ghost"})
        )
        .await
        .status(),
        StatusCode::NOT_FOUND
    );
    eventually("the removal in the fleet", || async {
        (app.get(&format!("/couriers/{id}"), &app.manager)
            .await
            .status()
            == StatusCode::NOT_FOUND)
            .then_some(())
    })
    .await;
    app.cleanup().await;
}

#[tokio::test]
async fn a_courier_carrying_a_delivery_cannot_be_removed() {
    let app = TestApp::spawn().await;
    let (order_id, _) = app.ready_delivery().await;
    let (courier, token) = app.hire_courier("Alice").await;
    app.post(
        &format!("/deliveries/{order_id}/assign"),
        &app.manager,
        json!({"courierId": courier}),
    )
    .await;
    app.post(&format!("/deliveries/{order_id}/pickup"), &token, json!({}))
        .await;

    let response = app
        .delete(&format!("/couriers/{courier}"), &app.manager)
        .await;
    assert_eq!(response.status(), StatusCode::CONFLICT);
    assert_eq!(problem_code(response).await, "courier-carrying-delivery");
    assert_eq!(
        app.get("/couriers/me", &token).await.status(),
        StatusCode::OK
    );

    let response = app
        .post(
            &format!("/deliveries/{order_id}/fail"),
            &token,
            json!({"reason": "customer absent"}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let failed = app.delivery_in(order_id, "failed").await;
    assert_eq!(failed["failureReason"], "customer absent");
    eventually("the courier to be free", || async {
        (app.delete(&format!("/couriers/{courier}"), &app.manager)
            .await
            .status()
            == StatusCode::NO_CONTENT)
            .then_some(())
    })
    .await;
    app.cleanup().await;
}

#[tokio::test]
async fn a_cancelled_order_cancels_its_delivery_and_frees_its_courier() {
    let app = TestApp::spawn().await;
    let (order_id, _) = app.ready_delivery().await;
    let (courier, _) = app.hire_courier("Alice").await;
    app.post(
        &format!("/deliveries/{order_id}/assign"),
        &app.manager,
        json!({"courierId": courier}),
    )
    .await;

    app.cancel_order(order_id, 2).await;
    let cancelled = app.delivery_in(order_id, "cancelled").await;
    assert!(cancelled["finishedAt"].is_string());
    let (other, _) = app.ready_delivery().await;
    eventually("the courier to be free", || async {
        let response = app
            .post(
                &format!("/deliveries/{other}/assign"),
                &app.manager,
                json!({"courierId": courier}),
            )
            .await;
        (response.status() == StatusCode::OK).then_some(())
    })
    .await;
    app.cleanup().await;
}

#[tokio::test]
async fn a_courier_account_registered_in_identity_becomes_a_courier() {
    let app = TestApp::spawn().await;
    let (courier_account, customer_account) = (Uuid::new_v4(), Uuid::new_v4());
    let registered = |account: Uuid, name: &str, role: &str| {
        json!({"AccountRegistered": {
            "accountId": account, "email": format!("{name}@brigade.test"), "name": name,
            "phone": "+33 6 11 22 33 44", "role": role, "registeredBy": {"kind": "system"},
            "at": chrono::Utc::now(),
        }})
    };
    app.publish(
        "identity",
        "account",
        courier_account,
        1,
        "AccountRegistered",
        registered(courier_account, "Eve", "courier"),
    )
    .await;
    app.publish(
        "identity",
        "account",
        customer_account,
        1,
        "AccountRegistered",
        registered(customer_account, "Carl", "customer"),
    )
    .await;

    let courier = eventually("the courier hired from identity", || async {
        let response = app
            .get(&format!("/couriers/{courier_account}"), &app.manager)
            .await;
        (response.status() == StatusCode::OK)
            .then(|| response.json::<Value>())?
            .await
            .ok()
    })
    .await;
    assert_eq!(courier["name"], "Eve");
    assert_eq!(courier["accountId"], courier_account.to_string());
    assert_eq!(courier["phone"], "+33 6 11 22 33 44");
    // The courier can start working with their own token at once.
    let token = app.token(courier_account, Role::Courier);
    assert_eq!(
        app.post("/couriers/me/shift", &token, json!({"onShift": true}))
            .await
            .status(),
        StatusCode::OK
    );

    // The customer later becomes a courier too, under the name identity gave.
    let granted = json!({"RoleGranted": {
        "role": "courier", "previousRole": "customer", "by": {"kind": "system"}, "at": chrono::Utc::now()
    }});
    app.publish(
        "identity",
        "account",
        customer_account,
        2,
        "RoleGranted",
        granted,
    )
    .await;
    let promoted = eventually("the promoted courier", || async {
        let response = app
            .get(&format!("/couriers/{customer_account}"), &app.manager)
            .await;
        (response.status() == StatusCode::OK)
            .then(|| response.json::<Value>())?
            .await
            .ok()
    })
    .await;
    assert_eq!(promoted["name"], "Carl");
    let fleet: Vec<Value> = app
        .get("/couriers", &app.manager)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(fleet.len(), 2, "nobody hired twice, no customer hired");
    app.cleanup().await;
}

#[tokio::test]
async fn a_position_reaches_the_customer_following_the_delivery() {
    let app = TestApp::spawn().await;
    let (order_id, customer) = app.ready_delivery().await;
    let (courier, token) = app.courier_on_shift("Alice", 1.0).await;
    app.post(
        &format!("/deliveries/{order_id}/assign"),
        &app.manager,
        json!({"courierId": courier}),
    )
    .await;
    app.delivery_in(order_id, "assigned").await;

    let response = app
        .client
        .get(format!("{}/deliveries/{order_id}/stream", app.base))
        .bearer_auth(app.token(customer, Role::Customer))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let mut body = response.bytes_stream();
    // Give the stream a moment to subscribe before the ping it must see.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let response = app
        .post(
            "/couriers/me/position",
            &token,
            json!({"lat": 48.8612, "lon": 2.3500}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);

    let seen = tokio::time::timeout(Duration::from_secs(10), async {
        let mut text = String::new();
        while let Some(chunk) = body.next().await {
            text.push_str(&String::from_utf8_lossy(&chunk.unwrap()));
            if let Some(line) = text
                .lines()
                .find(|l| l.starts_with("data:") && l.contains("48.8612"))
            {
                return serde_json::from_str::<Value>(line.trim_start_matches("data:").trim())
                    .unwrap();
            }
        }
        panic!("the stream ended");
    })
    .await
    .expect("the position reached the stream");
    assert_eq!(seen["delivery"]["courierPosition"]["lat"], 48.8612);
    assert_eq!(seen["delivery"]["status"], "assigned");
    assert!(seen["delivery"]["eta"].is_string(), "{seen}");
    assert!(seen["changeId"].is_i64());

    // The page shows the same position and an ETA.
    let page: Value = app
        .get(
            &format!("/deliveries/{order_id}"),
            &app.token(customer, Role::Customer),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(page["courierPosition"]["lon"], 2.35);
    assert!(page["eta"].is_string());
    app.cleanup().await;
}

#[tokio::test]
async fn the_home_page_links_to_deliveries_and_couriers() {
    let app = TestApp::spawn().await;
    let response = app
        .client
        .get(format!("{}/", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let html = response.text().await.unwrap();
    assert!(html.contains("/deliveries"));
    assert!(html.contains("/couriers"));
    app.cleanup().await;
}

/// The courier's way with the food is sampled from their positions (every 30 s or 100 m),
/// recorded on the delivery in batches and completed at the handover, and shown with it.
#[tokio::test]
async fn the_route_of_the_food_is_sampled_into_the_delivery_and_shown_with_it() {
    // Auto dispatch off; route samples are recorded three at a time (test_config).
    let app = TestApp::spawn().await;
    let (order_id, customer) = app.ready_delivery().await;
    let (courier, token) = app.courier_on_shift("Rider", 0.0).await;
    app.post(
        &format!("/deliveries/{order_id}/assign"),
        &app.manager,
        json!({"courierId": courier}),
    )
    .await;
    app.delivery_in(order_id, "assigned").await;
    // Positions before pickup are not part of the route.
    let north = |metres: f64| json!({"lat": common::RESTAURANT.0 + metres / 111_195.0, "lon": common::RESTAURANT.1});
    app.post("/couriers/me/position", &token, north(-500.0))
        .await;
    let response = app
        .post(&format!("/deliveries/{order_id}/pickup"), &token, json!({}))
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    app.delivery_in(order_id, "picked_up").await;

    // Pings a few metres apart within seconds are not samples; 100 m further is one.
    for metres in [0.0, 30.0, 60.0, 150.0, 300.0] {
        let response = app
            .post("/couriers/me/position", &token, north(metres))
            .await;
        assert_eq!(response.status(), StatusCode::OK);
    }
    let recorded = |app: &TestApp| {
        let pool = app.pool.clone();
        async move {
            let payloads: Vec<Value> = sqlx::query_scalar(
                "SELECT payload FROM events WHERE aggregate_type = 'delivery' AND aggregate_id = $1
                    AND event_type = 'DeliveryRouteRecorded' ORDER BY sequence",
            )
            .bind(order_id.to_string())
            .fetch_all(&pool)
            .await
            .unwrap();
            payloads
        }
    };
    // Three samples make a batch: recorded on the delivery at once.
    let first = recorded(&app).await;
    assert_eq!(first.len(), 1, "{first:?}");
    let points = first[0]["DeliveryRouteRecorded"]["points"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(points.len(), 3);
    assert_eq!(
        first[0]["DeliveryRouteRecorded"]["courierId"],
        courier.to_string()
    );

    // 10 m on: not a sample; 200 m on: one, waiting; 20 m on: not, until the handover.
    for metres in [310.0, 500.0, 520.0] {
        app.post("/couriers/me/position", &token, north(metres))
            .await;
    }
    assert_eq!(recorded(&app).await.len(), 1);
    let response = app
        .post(
            &format!("/deliveries/{order_id}/deliver"),
            &token,
            json!({}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let all = recorded(&app).await;
    assert_eq!(all.len(), 2, "the rest is recorded before the handover");
    assert_eq!(
        all[1]["DeliveryRouteRecorded"]["points"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    let types: Vec<String> = sqlx::query_scalar(
        "SELECT event_type FROM events WHERE aggregate_type = 'delivery' AND aggregate_id = $1
          ORDER BY sequence DESC LIMIT 2",
    )
    .bind(order_id.to_string())
    .fetch_all(&app.pool)
    .await
    .unwrap();
    assert_eq!(types, ["DeliveryDelivered", "DeliveryRouteRecorded"]);

    // The customer sees the whole route, in order, from the pickup to the door.
    let customer_token = app.token(customer, Role::Customer);
    let delivery: Value = eventually("the delivered delivery", || async {
        let response = app
            .get(&format!("/deliveries/{order_id}"), &customer_token)
            .await;
        let body: Value = response.json().await.ok()?;
        (body["status"] == "delivered").then_some(body)
    })
    .await;
    let route = delivery["route"].as_array().unwrap();
    let metres: Vec<i64> = route
        .iter()
        .map(|p| ((p["lat"].as_f64().unwrap() - common::RESTAURANT.0) * 111_195.0).round() as i64)
        .collect();
    assert_eq!(metres, [0, 150, 300, 500, 520]);
    assert!(route
        .windows(2)
        .all(|w| w[0]["at"].as_str() < w[1]["at"].as_str()));
    app.cleanup().await;
}
