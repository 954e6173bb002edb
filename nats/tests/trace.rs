//! The relay carries an order's trace onto the bus: the `traceparent` header of each NATS
//! message names the journey's trace and the span that issued the command.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use async_nats::jetstream::consumer::pull;
use brigade_nats::schema::EVENT_STORE;
use brigade_nats::{migrate, Bus, Namespace, OutboxRelay};
use futures::StreamExt;
use sqlx::PgPool;
use tokio::sync::watch;
use uuid::Uuid;

#[tokio::test]
async fn the_relay_publishes_the_journeys_traceparent() {
    let tag = Uuid::new_v4().simple().to_string()[..10].to_owned();
    let database = format!("t{tag}_trace");
    let admin = PgPool::connect("postgres://postgres@127.0.0.1:5432/postgres")
        .await
        .unwrap();
    sqlx::query(&format!("CREATE DATABASE \"{database}\""))
        .execute(&admin)
        .await
        .unwrap();
    let pool = PgPool::connect(&format!("postgres://postgres@127.0.0.1:5432/{database}"))
        .await
        .unwrap();
    migrate(&pool, EVENT_STORE).await.unwrap();
    let bus = Bus::connect(
        "nats://127.0.0.1:4222",
        Namespace::new(Some(&format!("t{tag}"))).unwrap(),
        1,
    )
    .await
    .unwrap();

    let order = Uuid::new_v4();
    let metadata = serde_json::json!({
        "correlation_id": order.to_string(),
        "trace_id": order.simple().to_string(),
        "span_id": "00f067aa0ba902b7",
    });
    sqlx::query(
        "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata)
         VALUES ('order', $1, 1, 'OrderPlaced', '1', '{}', $2)",
    )
    .bind(order.to_string())
    .bind(&metadata)
    .execute(&pool)
    .await
    .unwrap();
    let (stop, shutdown) = watch::channel(false);
    let relay = tokio::spawn(OutboxRelay::new(pool.clone(), bus.clone(), "orders").run(shutdown));

    let stream = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            if let Ok(stream) = bus
                .jetstream
                .get_stream(bus.namespace.stream("orders"))
                .await
            {
                return stream;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await
    .unwrap();
    let consumer = stream
        .create_consumer(pull::Config::default())
        .await
        .unwrap();
    let mut messages = consumer.messages().await.unwrap();
    let message = tokio::time::timeout(Duration::from_secs(10), messages.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let traceparent = message
        .headers
        .as_ref()
        .and_then(|h| h.get(brigade_nats::trace::TRACEPARENT))
        .map(|v| v.as_str().to_owned());
    assert_eq!(
        traceparent,
        Some(format!("00-{}-00f067aa0ba902b7-01", order.simple()))
    );

    let _ = stop.send(true);
    let _ = relay.await;
    let _ = bus
        .jetstream
        .delete_stream(bus.namespace.stream("orders"))
        .await;
    pool.close().await;
    sqlx::query(&format!("DROP DATABASE \"{database}\" WITH (FORCE)"))
        .execute(&admin)
        .await
        .unwrap();
}
