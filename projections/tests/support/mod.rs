//! A throw-away database for one test, with the migrations it needs; dropped at the end.
#![allow(clippy::unwrap_used, dead_code)]

use std::collections::HashMap;

use brigade_domain::kitchen::TicketEvent;
use brigade_nats::{migrate, EventEnvelope, Migration, ReceivedEvent};
use chrono::Utc;
use cqrs_es::DomainEvent;
use sqlx::PgPool;
use uuid::Uuid;

const ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

pub struct ScratchDatabase {
    pub pool: PgPool,
    /// A tag unique to this test, for names outside the database (NATS namespaces).
    pub tag: String,
    name: String,
}

impl ScratchDatabase {
    /// Creates `t{tag}_{suffix}` and runs `migrations` in it, in order.
    pub async fn create(suffix: &str, migrations: &[&[Migration]]) -> Self {
        let tag = Uuid::new_v4().simple().to_string()[..10].to_owned();
        let name = format!("t{tag}_{suffix}");
        let admin = PgPool::connect(ADMIN_URL).await.unwrap();
        sqlx::query(&format!("CREATE DATABASE \"{name}\""))
            .execute(&admin)
            .await
            .unwrap();
        admin.close().await;
        let pool = PgPool::connect(&format!("postgres://postgres@127.0.0.1:5432/{name}"))
            .await
            .unwrap();
        for list in migrations {
            migrate(&pool, list).await.unwrap();
        }
        Self { pool, tag, name }
    }

    /// Closes the pool and drops the database.
    pub async fn drop_it(self) {
        self.pool.close().await;
        let admin = PgPool::connect(ADMIN_URL).await.unwrap();
        let _ = sqlx::query(&format!(
            "DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)",
            self.name
        ))
        .execute(&admin)
        .await;
    }
}

/// A ticket event of `order_id` at `sequence`, as a consumer receives it.
pub fn received(order_id: Uuid, sequence: i64, event: &TicketEvent) -> ReceivedEvent {
    ReceivedEvent {
        envelope: EventEnvelope {
            event_id: Uuid::new_v4(),
            aggregate_type: "ticket".into(),
            aggregate_id: order_id.to_string(),
            sequence,
            event_type: event.event_type(),
            event_version: event.event_version(),
            payload: serde_json::to_value(event).unwrap(),
            metadata: HashMap::new(),
            recorded_at: Utc::now(),
        },
        subject: String::new(),
        delivered: 1,
    }
}

/// A scratch database with the kitchen queue's schema and one dish the kitchen knows: a grill
/// dish of 22 minutes, whose id is returned.
pub async fn kitchen_queue_with_grill(suffix: &str) -> (ScratchDatabase, Uuid) {
    use brigade_nats::schema::EVENT_STORE;
    use brigade_projections::{feed, kitchen_queue};
    let database = ScratchDatabase::create(
        suffix,
        &[EVENT_STORE, feed::MIGRATIONS, kitchen_queue::MIGRATIONS],
    )
    .await;
    let grill = Uuid::new_v4();
    sqlx::query(
        "INSERT INTO kitchen_dishes (dish_id, station, prep_minutes) VALUES ($1, 'grill', 22)",
    )
    .bind(grill)
    .execute(&database.pool)
    .await
    .unwrap();
    (database, grill)
}
