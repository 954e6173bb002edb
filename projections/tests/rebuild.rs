//! A rebuilt read model is identical to the live one, even with events arriving during the
//! rebuild (real PostgreSQL and NATS: the live projector runs as in production).
#![allow(clippy::unwrap_used)]

mod support;

use std::time::Duration;

use brigade_domain::kitchen::{NewTicketItem, Ticket, TicketCommand};
use brigade_nats::schema::EVENT_STORE;
use brigade_nats::store::event_store;
use brigade_nats::{Bus, ConsumerRunner, Namespace, OutboxRelay};
use brigade_projections::{feed, kitchen_queue, rebuild};
use chrono::Utc;
use sqlx::PgPool;
use support::ScratchDatabase;
use tokio::sync::watch;
use uuid::Uuid;

async fn snapshot(pool: &PgPool) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT order_id::text || ' ' || status || ' ' || items::text || ' ' || version FROM kitchen_queue ORDER BY order_id",
    )
    .fetch_all(pool)
    .await
    .unwrap()
}

async fn settled(pool: &PgPool) {
    for _ in 0..400 {
        let behind: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM (SELECT aggregate_id, max(sequence) AS s FROM events GROUP BY aggregate_id) e
             LEFT JOIN consumer_checkpoints c ON c.consumer = 'kitchen-queue' AND c.aggregate_id = e.aggregate_id
             WHERE coalesce(c.last_sequence, 0) < e.s",
        )
        .fetch_one(pool)
        .await
        .unwrap();
        if behind == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the live projector never caught up");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rebuilt_kitchen_queue_equals_the_live_one_even_with_events_arriving_meanwhile() {
    let database = ScratchDatabase::create(
        "kitchen",
        &[EVENT_STORE, feed::MIGRATIONS, kitchen_queue::MIGRATIONS],
    )
    .await;
    let (pool, tag) = (database.pool.clone(), database.tag.clone());
    let bus = Bus::connect(
        "nats://127.0.0.1:4222",
        Namespace::new(Some(&format!("t{tag}"))).unwrap(),
        1,
    )
    .await
    .unwrap();
    let (stop, _) = watch::channel(false);
    tokio::spawn(OutboxRelay::new(pool.clone(), bus.clone(), "kitchen").run(stop.subscribe()));
    tokio::spawn(
        ConsumerRunner::new(pool.clone(), bus.clone(), kitchen_queue::subscription())
            .run(stop.subscribe()),
    );

    let tickets = event_store::<Ticket>(pool.clone(), ());
    let open = |order_id: Uuid| TicketCommand::Open {
        order_id,
        placed_at: Utc::now(),
        items: (0..3)
            .map(|i| NewTicketItem {
                dish_id: Uuid::new_v4(),
                dish_name: format!("Plat {i}"),
                quantity: 1,
                note: None,
                options: Vec::new(),
            })
            .collect(),
        allergies: Vec::new(),
        scheduled_for: None,
        at: Utc::now(),
    };
    let mut orders = Vec::new();
    for n in 0..40 {
        let order_id = Uuid::new_v4();
        tickets
            .execute(&order_id.to_string(), open(order_id))
            .await
            .unwrap();
        for index in 0..(n % 4) {
            tickets
                .execute(
                    &order_id.to_string(),
                    TicketCommand::ReadyItem {
                        index,
                        at: Utc::now(),
                    },
                )
                .await
                .unwrap();
        }
        orders.push(order_id);
    }
    settled(&pool).await;

    // Events keep arriving while the rebuild runs.
    let writer = {
        let tickets = tickets.clone();
        let orders = orders.clone();
        tokio::spawn(async move {
            for order_id in orders.iter().take(20) {
                let _ = tickets
                    .execute(
                        &order_id.to_string(),
                        TicketCommand::StartItem {
                            index: 2,
                            at: Utc::now(),
                        },
                    )
                    .await;
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
    };
    let report = rebuild::rebuild(&pool, &kitchen_queue::spec(), |_| {})
        .await
        .unwrap();
    writer.await.unwrap();
    assert!(report.events >= 40, "{report:?}");
    settled(&pool).await;
    let after_rebuild = snapshot(&pool).await;
    assert_eq!(after_rebuild.len(), 40);

    // A second rebuild of the settled store gives exactly the same table.
    rebuild::rebuild(&pool, &kitchen_queue::spec(), |_| {})
        .await
        .unwrap();
    assert_eq!(snapshot(&pool).await, after_rebuild);

    let _ = stop.send(true);
    let _ = bus
        .jetstream
        .delete_stream(bus.namespace.stream("kitchen"))
        .await;
    database.drop_it().await;
}
