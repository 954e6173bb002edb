//! `/metrics` tells how far behind the event store each read model is.
#![allow(clippy::unwrap_used)]

use brigade_nats::schema::EVENT_STORE;
use brigade_platform::runtime::application;
use brigade_platform::system::{register_subscription, SystemApi};
use brigade_platform::{ServiceName, Settings};
use poem::{Endpoint, IntoResponse as _, Request};
use uuid::Uuid;

/// The value of the metric line starting with `series`.
fn value(metrics: &str, series: &str) -> Option<f64> {
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(series))
        .and_then(|rest| rest.trim().parse().ok())
}

async fn scrape(app: &impl Endpoint) -> String {
    let response = app
        .call(Request::builder().uri("/metrics".parse().unwrap()).finish())
        .await
        .unwrap()
        .into_response();
    response.into_body().into_string().await.unwrap()
}

#[tokio::test]
async fn a_projection_behind_its_event_store_shows_its_lag_in_events_and_seconds() {
    let settings = Settings::default();
    let database = format!("platform_metrics_{}", Uuid::new_v4().simple());
    let pool =
        brigade_platform::database::open(&settings.database_url, &database, 2, &[EVENT_STORE])
            .await
            .unwrap();
    // Two orders: the read model applied the first's two events and nothing of the second's.
    let (first, second) = (Uuid::new_v4().to_string(), Uuid::new_v4().to_string());
    for (order, sequence) in [
        (&first, 1),
        (&first, 2),
        (&second, 1),
        (&second, 2),
        (&second, 3),
    ] {
        sqlx::query(
            "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata, recorded_at)
             VALUES ('order', $1, $2, 'OrderPlaced', '1', '{}', '{}', now() - interval '42 seconds')",
        )
        .bind(order)
        .bind(sequence)
        .execute(&pool)
        .await
        .unwrap();
    }
    sqlx::query(
        "INSERT INTO consumer_checkpoints (consumer, aggregate_type, aggregate_id, last_sequence)
         VALUES ('metrics-tracking', 'order', $1, 2)",
    )
    .bind(&first)
    .execute(&pool)
    .await
    .unwrap();
    register_subscription(
        ServiceName::Orders,
        "metrics-tracking",
        "metrics-tracking",
        "orders",
        &["order"],
    );
    // A subscription to another service's stream is not a read model of this event store.
    register_subscription(
        ServiceName::Orders,
        "metrics-tickets",
        "metrics-tickets",
        "kitchen",
        &["ticket"],
    );

    let system = SystemApi {
        service: ServiceName::Orders,
        pool: pool.clone(),
        bus: None,
        links: Vec::new(),
    };
    let app = application(ServiceName::Orders, (), system, "http://127.0.0.1");
    let labels = r#"{service="orders",projection="metrics-tracking"}"#;

    let behind = scrape(&app).await;
    assert!(behind.contains("# TYPE brigade_projection_lag_events gauge"));
    assert_eq!(
        value(&behind, &format!("brigade_projection_lag_events{labels}")),
        Some(3.0),
        "{behind}"
    );
    let seconds = value(&behind, &format!("brigade_projection_lag_seconds{labels}")).unwrap();
    assert!((42.0..600.0).contains(&seconds), "{seconds}");
    assert!(!behind.contains("metrics-tickets\""), "{behind}");

    // Caught up: no lag at all.
    sqlx::query(
        "INSERT INTO consumer_checkpoints (consumer, aggregate_type, aggregate_id, last_sequence)
         VALUES ('metrics-tracking', 'order', $1, 3)",
    )
    .bind(&second)
    .execute(&pool)
    .await
    .unwrap();
    let caught_up = scrape(&app).await;
    assert_eq!(
        value(
            &caught_up,
            &format!("brigade_projection_lag_events{labels}")
        ),
        Some(0.0)
    );
    assert_eq!(
        value(
            &caught_up,
            &format!("brigade_projection_lag_seconds{labels}")
        ),
        Some(0.0)
    );

    pool.close().await;
    let server = sqlx::PgPool::connect(&format!("{}/postgres", settings.database_url))
        .await
        .unwrap();
    sqlx::query(&format!("DROP DATABASE IF EXISTS {database} WITH (FORCE)"))
        .execute(&server)
        .await
        .unwrap();
}
