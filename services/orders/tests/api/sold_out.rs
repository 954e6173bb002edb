//! A dish the kitchen ran out of leaves the menu, and ordering it is refused naming it.

use brigade_domain::kitchen::DishStockEvent;
use brigade_domain::{Actor, Role};
use chrono::Utc;
use uuid::Uuid;

use crate::helpers::{order_of, TestApp};

#[tokio::test]
async fn a_dish_sold_out_in_the_kitchen_cannot_be_ordered_until_it_is_back() {
    let app = TestApp::spawn().await;
    let (_, token) = app.customer();
    let tatin = app.dish("Tarte Tatin").await;
    let dish_id: Uuid = tatin["id"].as_str().unwrap().parse().unwrap();
    let chef = Actor::user(Uuid::new_v4(), Role::Chef);

    let said_at = std::time::Instant::now();
    app.kitchen_stock_says(
        dish_id,
        1,
        &DishStockEvent::DishSoldOut {
            dish_id,
            dish_name: Some("Tarte Tatin".into()),
            reason: Some("plus de pommes".into()),
            by: chef,
            at: Utc::now(),
        },
    )
    .await;
    let menu_dish = app
        .eventually("the dish to leave the menu", || async {
            let dish = app.dish("Tarte Tatin").await;
            (dish["available"] == false).then_some(dish)
        })
        .await;
    assert!(
        said_at.elapsed() < std::time::Duration::from_secs(2),
        "took {:?}",
        said_at.elapsed()
    );
    assert_eq!(menu_dish["unavailableReason"], "plus de pommes");

    let pool = app.pool().await;
    let orders = || async {
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM events WHERE aggregate_type = 'order'")
            .fetch_one(&pool)
            .await
            .unwrap()
    };
    let refused = app
        .place(
            &token,
            &Uuid::new_v4().to_string(),
            &order_of(&[(&dish_id.to_string(), 1)]),
        )
        .await;
    assert_eq!(refused.status, 422, "{}", refused.body);
    assert_eq!(refused.problem_code(), "order-dish-unavailable");
    assert_eq!(refused.field(), "items/0/dishId");
    assert!(refused.body["detail"]
        .as_str()
        .unwrap()
        .contains("Tarte Tatin"));
    assert_eq!(orders().await, 0, "a refusal stores nothing");

    app.kitchen_stock_says(
        dish_id,
        2,
        &DishStockEvent::DishBackInStock {
            dish_id,
            by: chef,
            at: Utc::now(),
        },
    )
    .await;
    app.eventually("the dish to come back", || async {
        (app.dish("Tarte Tatin").await["available"] == true).then_some(())
    })
    .await;
    let placed = app
        .place(
            &token,
            &Uuid::new_v4().to_string(),
            &order_of(&[(&dish_id.to_string(), 1)]),
        )
        .await;
    assert_eq!(placed.status, 201, "{}", placed.body);
    pool.close().await;
    app.stop().await;
}

#[tokio::test]
async fn a_dish_the_menu_does_not_have_is_ignored() {
    let app = TestApp::spawn().await;
    let unknown = Uuid::new_v4();
    app.kitchen_stock_says(
        unknown,
        1,
        &DishStockEvent::DishSoldOut {
            dish_id: unknown,
            dish_name: None,
            reason: None,
            by: Actor::System,
            at: Utc::now(),
        },
    )
    .await;
    let pool = app.pool().await;
    app.eventually("the event to be applied", || async {
        let applied: Option<i64> = sqlx::query_scalar(
            "SELECT last_sequence FROM consumer_checkpoints
              WHERE consumer = 'orders-from-kitchen-stock' AND aggregate_id = $1",
        )
        .bind(unknown.to_string())
        .fetch_optional(&pool)
        .await
        .unwrap();
        (applied == Some(1)).then_some(())
    })
    .await;
    pool.close().await;
    // `stop` checks that nothing was parked.
    app.stop().await;
}
