//! Rebuilding a read model from the event store while the service keeps serving.
//!
//! 1. Build beside: a shadow schema gets fresh copies of the projection's tables (its own
//!    migrations, run with the shadow schema first on the `search_path`), and every event of the
//!    projection's aggregates is replayed into them, in `global_position` order, inside one
//!    REPEATABLE READ transaction — a consistent snapshot, while the live table keeps serving
//!    reads and the live projector keeps applying new events.
//! 2. Swap: one short transaction locks the consumers' checkpoints (the live projector pauses),
//!    applies to the shadow whatever the live projector applied after the snapshot (per
//!    aggregate, from the shadow's sequence up to the live checkpoint), moves each checkpoint to
//!    the furthest of the two (so an event in the snapshot that the live projector has not seen
//!    yet is recognised as a duplicate when it arrives), drops the live tables and moves the
//!    shadow ones in their place.
//!
//! The projector's own code does the replay, so a rebuild applies exactly what live
//! application would. Changes made during the replay go to a shadow feed and notify nobody.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use brigade_nats::{EventEnvelope, EventHandler, Migration, ReceivedEvent};
use sqlx::{Connection, PgConnection, PgPool};

use crate::feed;

/// What it takes to rebuild one projection.
#[derive(Clone)]
pub struct ProjectionSpec {
    /// Also the name of its durable consumer: `kitchen-queue`.
    pub name: &'static str,
    /// The service whose database holds it.
    pub service: &'static str,
    /// The aggregate types it reads (from the service's own event store).
    pub aggregate_types: &'static [&'static str],
    /// The tables it owns, replaced whole by a rebuild.
    pub tables: &'static [&'static str],
    /// The migrations that create those tables, in order.
    pub migrations: &'static [Migration],
    pub handler: Arc<dyn EventHandler>,
}

/// How a rebuild went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RebuildReport {
    pub events: u64,
    pub caught_up: u64,
    pub elapsed: Duration,
}

impl RebuildReport {
    /// Events replayed per second.
    #[must_use]
    pub fn rate(&self) -> f64 {
        #[allow(clippy::cast_precision_loss)]
        let events = self.events as f64;
        events / self.elapsed.as_secs_f64().max(1e-9)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RebuildError {
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("event {message} cannot be applied: {reason}")]
    Handler { message: String, reason: String },
}

type Positions = HashMap<(String, String), i64>;

/// Events read and applied at a time.
const PAGE: i64 = 5_000;
/// Checkpoints written per statement by the swap.
const CHECKPOINTS_PER_STATEMENT: usize = 5_000;

/// Rebuilds one projection; `progress` is called every few thousand events with the count.
///
/// # Errors
/// A database error, or an event the projector refuses; the live tables are then untouched.
pub async fn rebuild(
    pool: &PgPool,
    spec: &ProjectionSpec,
    mut progress: impl FnMut(u64) + Send,
) -> Result<RebuildReport, RebuildError> {
    let started = Instant::now();
    let shadow = format!("rebuild_{}", spec.name.replace('-', "_"));
    let mut conn = pool.acquire().await?.detach();

    sqlx::query(&format!("DROP SCHEMA IF EXISTS {shadow} CASCADE"))
        .execute(&mut conn)
        .await?;
    sqlx::query(&format!("CREATE SCHEMA {shadow}"))
        .execute(&mut conn)
        .await?;
    let mut tx = conn.begin().await?;
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        .execute(&mut *tx)
        .await?;
    enter_shadow(&mut tx, &shadow, spec).await?;

    let mut positions = Positions::new();
    let mut events = 0_u64;
    let types: Vec<String> = spec
        .aggregate_types
        .iter()
        .map(ToString::to_string)
        .collect();
    let mut after = 0_i64;
    loop {
        // Keyset pages over the snapshot: memory stays flat however long the history is.
        let rows = sqlx::query(
            "SELECT * FROM public.events WHERE aggregate_type = ANY($1) AND global_position > $2
             ORDER BY global_position LIMIT $3",
        )
        .bind(&types)
        .bind(after)
        .bind(PAGE)
        .fetch_all(&mut *tx)
        .await?;
        let Some(last) = rows.last() else { break };
        let first = after;
        after = sqlx::Row::try_get(last, "global_position")?;
        let mut page = Vec::with_capacity(rows.len());
        for row in rows {
            let envelope = EventEnvelope::from_row(&row)?;
            positions.insert(
                (
                    envelope.aggregate_type.clone(),
                    envelope.aggregate_id.clone(),
                ),
                envelope.sequence,
            );
            page.push(ReceivedEvent {
                envelope,
                subject: String::new(),
                delivered: 1,
            });
        }
        // The whole page at once: a projector that applies in bulk does it in a handful of
        // statements (see `EventHandler::handle_many`).
        spec.handler
            .handle_many(&page, &mut tx)
            .await
            .map_err(|e| RebuildError::Handler {
                message: format!("of the events after global position {first}"),
                reason: e.to_string(),
            })?;
        let before = events;
        events += page.len() as u64;
        if events / 5_000 > before / 5_000 {
            progress(events);
        }
    }
    tx.commit().await?;
    progress(events);

    let caught_up = swap(&mut conn, &shadow, spec, &positions).await?;
    sqlx::query(&format!("DROP SCHEMA IF EXISTS {shadow} CASCADE"))
        .execute(&mut conn)
        .await?;
    conn.close().await?;
    Ok(RebuildReport {
        events,
        caught_up,
        elapsed: started.elapsed(),
    })
}

/// Puts the shadow schema first on the path and creates the projection's tables (and a
/// throw-away feed) there.
async fn enter_shadow(
    tx: &mut PgConnection,
    shadow: &str,
    spec: &ProjectionSpec,
) -> Result<(), sqlx::Error> {
    sqlx::query(&format!("SET LOCAL search_path = {shadow}, public"))
        .execute(&mut *tx)
        .await?;
    sqlx::query("SET LOCAL brigade.rebuilding = 'on'")
        .execute(&mut *tx)
        .await?;
    for migration in spec.migrations.iter().chain(feed::MIGRATIONS) {
        sqlx::Executor::execute(&mut *tx, sqlx::raw_sql(migration.sql)).await?;
    }
    Ok(())
}

async fn apply(
    tx: &mut PgConnection,
    spec: &ProjectionSpec,
    envelope: &EventEnvelope,
) -> Result<(), RebuildError> {
    let event = ReceivedEvent {
        envelope: envelope.clone(),
        subject: String::new(),
        delivered: 1,
    };
    spec.handler
        .handle(&event, tx)
        .await
        .map_err(|e| RebuildError::Handler {
            message: envelope.message_id(),
            reason: e.to_string(),
        })
}

/// Catches the shadow up with the live projector, aligns the checkpoints and swaps the tables,
/// in one transaction. Returns how many events the catch-up applied.
async fn swap(
    conn: &mut PgConnection,
    shadow: &str,
    spec: &ProjectionSpec,
    positions: &Positions,
) -> Result<u64, RebuildError> {
    let mut tx = conn.begin().await?;
    // Blocks checkpoint writes (every consumer of this database pauses for the swap's duration).
    sqlx::query("LOCK TABLE public.consumer_checkpoints IN SHARE ROW EXCLUSIVE MODE")
        .execute(&mut *tx)
        .await?;
    sqlx::query(&format!("SET LOCAL search_path = {shadow}, public"))
        .execute(&mut *tx)
        .await?;
    sqlx::query("SET LOCAL brigade.rebuilding = 'on'")
        .execute(&mut *tx)
        .await?;
    let live: Vec<(String, String, i64)> = sqlx::query_as(
        "SELECT aggregate_type, aggregate_id, last_sequence FROM public.consumer_checkpoints WHERE consumer = $1",
    )
    .bind(spec.name)
    .fetch_all(&mut *tx)
    .await?;
    let mut caught_up = 0;
    for (aggregate_type, aggregate_id, live_sequence) in &live {
        let shadow_sequence = positions
            .get(&(aggregate_type.clone(), aggregate_id.clone()))
            .copied()
            .unwrap_or(0);
        if *live_sequence > shadow_sequence {
            let rows = sqlx::query(
                "SELECT * FROM public.events WHERE aggregate_type = $1 AND aggregate_id = $2
                   AND sequence > $3 AND sequence <= $4 ORDER BY sequence",
            )
            .bind(aggregate_type)
            .bind(aggregate_id)
            .bind(shadow_sequence)
            .bind(live_sequence)
            .fetch_all(&mut *tx)
            .await?;
            for row in rows {
                apply(&mut tx, spec, &EventEnvelope::from_row(&row)?).await?;
                caught_up += 1;
            }
        }
    }
    // Whatever the snapshot holds beyond the live checkpoint is now applied: say so, a few
    // thousand aggregates per statement (one statement each made the swap, which pauses
    // every consumer, last seconds for a large history).
    let all: Vec<(&(String, String), &i64)> = positions.iter().collect();
    for chunk in all.chunks(CHECKPOINTS_PER_STATEMENT) {
        sqlx::query(
            "INSERT INTO public.consumer_checkpoints (consumer, aggregate_type, aggregate_id, last_sequence)
             SELECT $1, * FROM UNNEST($2::text[], $3::text[], $4::bigint[])
             ON CONFLICT (consumer, aggregate_type, aggregate_id)
             DO UPDATE SET last_sequence = greatest(consumer_checkpoints.last_sequence, EXCLUDED.last_sequence),
                           updated_at = now()",
        )
        .bind(spec.name)
        .bind(chunk.iter().map(|((t, _), _)| t.as_str()).collect::<Vec<_>>())
        .bind(chunk.iter().map(|((_, id), _)| id.as_str()).collect::<Vec<_>>())
        .bind(chunk.iter().map(|(_, sequence)| **sequence).collect::<Vec<_>>())
        .execute(&mut *tx)
        .await?;
    }
    for table in spec.tables {
        sqlx::query(&format!("DROP TABLE IF EXISTS public.{table}"))
            .execute(&mut *tx)
            .await?;
        sqlx::query(&format!("ALTER TABLE {shadow}.{table} SET SCHEMA public"))
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(caught_up)
}
