//! The outbox relay: moves committed events from the outbox table to JetStream.
//!
//! One relay is active per service database (held with `pg_try_advisory_lock` on a dedicated
//! connection; other replicas wait as standbys). It takes unpublished rows in outbox order,
//! publishes each with `Nats-Msg-Id` = `{aggregate}:{id}:{sequence}`, awaits every publish ack,
//! and only then marks the rows published. A crash anywhere in between leaves the rows
//! unpublished: they are sent again, and JetStream drops the duplicates by message id. It wakes
//! on the trigger's `NOTIFY` and polls as a fallback.
//!
//! One statement a batch: the statement that takes the next rows also marks the rows of the
//! batch before (a data-modifying `WITH`), so under load the relay makes one round trip to
//! PostgreSQL per batch where a transaction (`BEGIN`, take, mark, `COMMIT`) made four. The
//! advisory lock is what keeps a second relay away, so the rows need no row lock. Rows
//! published while nothing else comes are marked on their own after [`MARK_DELAY`].
//!
//! A row written by a transaction that committed without waiting for the WAL flush (a
//! consumer's: see `crate::durable`) is published only after the relay has flushed the WAL
//! past it, so that no event leaves that a crash could still take back.
//!
//! Per-aggregate order holds because two events of one aggregate are never in flight in two
//! transactions at once (postgres-es's primary key on the sequence forbids it), and one relay
//! publishes in outbox order.

use std::time::Duration;

use async_nats::jetstream::message::PublishMessage;
use chrono::Utc;
use futures::future::try_join_all;
use sqlx::postgres::PgListener;
use sqlx::{Connection, PgConnection, PgPool, Row};
use std::future::IntoFuture;
use tokio::sync::watch;

use crate::namespace::event_subject;
use crate::{Bus, EventEnvelope};

const RELAY_LOCK: i64 = 7_163_402_020;
const BATCH: i64 = 256;
const POLL: Duration = Duration::from_millis(500);
/// How long rows published may wait to be marked by the next batch's statement before they are
/// marked on their own: the outbox backlog (`/metrics`, `brigade outbox status`) counts them
/// for that long at most.
const MARK_DELAY: Duration = Duration::from_millis(20);
/// Published rows are kept this long, so an operator can republish them after a NATS disaster
/// (JetStream acknowledges before it fsyncs by default).
const RETENTION: &str = "7 days";

/// The relay's own session settings.
///
/// This session only marks rows published (and deletes old ones): its commits need not wait
/// for the disk. Should PostgreSQL lose a mark in a crash, the rows are published again and
/// JetStream drops them by `Nats-Msg-Id` (its duplicate window is far longer than any
/// recovery), so nothing is lost or doubled, and the relay never waits for a WAL flush between
/// two batches.
///
/// It also reads the outbox through its indexes only: the pending rows in `outbox_pending`'s
/// order, by an index scan that stops after the batch, and the rows to mark by their primary
/// key. Left to itself, the planner (with the generic plan of a prepared statement and the
/// statistics of a young table) took a bitmap of the whole partial index and sorted it, or
/// scanned the table to mark one row. That bitmap holds an entry for every row marked since the
/// last vacuum (a mark moves the row out of the index, but its old entry stays until vacuum),
/// so [`TAKE_BATCH`] visited every such row and grew slower with each event until autovacuum
/// came: 0.5 ms a batch after a minute of load, where it now takes 0.08 ms. An index scan skips
/// them, and flags each as dead as it passes, so that the next scan does not visit its row
/// again. See BENCHMARKS.md.
///
/// With the plan thus settled (the test below checks the generic one), the session keeps it:
/// left to choose, PostgreSQL planned [`TAKE_BATCH`] afresh for every batch's array of ids,
/// 0.04–0.1 ms each time, a third to all of what running it took (`pg_stat_statements`,
/// BENCHMARKS.md).
const SESSION: [&str; 4] = [
    "SET synchronous_commit = off",
    "SET enable_bitmapscan = off",
    "SET enable_seqscan = off",
    "SET plan_cache_mode = force_generic_plan",
];

/// Marks the rows of the batch before (`$1`) and takes up to `$2` pending rows, in outbox
/// order. The `WITH` runs to completion whether or not the query reads it, and the query sees
/// the rows as they were before it: hence `<> ALL`, for the rows it has just marked.
///
/// Rows of transactions that committed without waiting for the disk (`durable` false: a
/// consumer's, see `crate::durable`) leave only once the WAL is flushed past them, and the
/// statement sees to that itself: when the first pending row is one, it writes a logical
/// message and commits synchronously (its commit then waits for the flush of everything before
/// it, and the rows are sent only after the statement has returned); otherwise it takes the
/// rows before the first such row only, which leave at once, and the next batch starts with
/// it. So no statement of its own is spent on a flush, and a request's events are not held
/// back by a consumer's committed just before them. Each row says where the first such row
/// of the batch is (`undurable`), for the relay to tell a batch cut there from the last.
const TAKE_BATCH: &str =
    "WITH marked AS (UPDATE outbox SET published_at = now() WHERE id = ANY($1)),
     taken AS MATERIALIZED (
         SELECT id, event_id, aggregate_type, aggregate_id, sequence, event_type,
                event_version, payload, metadata, recorded_at, durable
         FROM outbox WHERE published_at IS NULL AND id <> ALL($1)
         ORDER BY id LIMIT $2),
     head AS MATERIALIZED (
         SELECT min(id) AS first, min(id) FILTER (WHERE NOT durable) AS undurable FROM taken),
     flushed AS MATERIALIZED (
         SELECT set_config('synchronous_commit', 'on', true),
                pg_logical_emit_message(true, 'brigade', 'outbox')
         FROM head WHERE undurable = first)
     SELECT taken.*, head.undurable
     FROM taken, head
     WHERE head.undurable IS NULL OR taken.id < head.undurable OR EXISTS (SELECT FROM flushed)";

/// Publishes one service's outbox to its stream.
pub struct OutboxRelay {
    pool: PgPool,
    bus: Bus,
    service: &'static str,
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum RelayError {
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("publish: {0}")]
    Publish(String),
}

impl OutboxRelay {
    #[must_use]
    pub fn new(pool: PgPool, bus: Bus, service: &'static str) -> Self {
        Self { pool, bus, service }
    }

    /// Runs until `shutdown` turns true, surviving database and NATS outages.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let mut backoff = Backoff::default();
        while !*shutdown.borrow() {
            match self.hold_lock_and_relay(&mut shutdown).await {
                Ok(()) => return,
                Err(error) => {
                    tracing::warn!(service = self.service, %error, "outbox relay interrupted; retrying");
                    tokio::select! {
                        () = tokio::time::sleep(backoff.next()) => {}
                        _ = shutdown.changed() => return,
                    }
                }
            }
        }
    }

    /// Takes the relay lock (or waits as a standby) and relays until shutdown or an error.
    async fn hold_lock_and_relay(
        &self,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Result<(), RelayError> {
        // A dedicated connection: the advisory lock lives as long as this session, and closing
        // it (even by a crash) releases the lock for a standby replica.
        let mut conn = PgConnection::connect_with(&self.pool.connect_options()).await?;
        for setting in SESSION {
            sqlx::query(setting).execute(&mut conn).await?;
        }
        loop {
            let locked: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
                .bind(RELAY_LOCK)
                .fetch_one(&mut conn)
                .await?;
            if locked {
                break;
            }
            tokio::select! {
                () = tokio::time::sleep(Duration::from_secs(2)) => {}
                _ = shutdown.changed() => return Ok(()),
            }
        }
        tracing::info!(service = self.service, "outbox relay active");
        let mut listener = dedicated_listener(&self.pool).await?;
        listener.listen("brigade_outbox").await?;
        self.bus
            .ensure_stream(self.service)
            .await
            .map_err(|e| RelayError::Publish(e.to_string()))?;
        let mut last_cleanup = tokio::time::Instant::now();
        let mut backoff = Backoff::default();
        // Rows NATS acknowledged, not marked yet: the next batch's statement marks them.
        let mut published = Vec::new();
        loop {
            if *shutdown.borrow() {
                return self.publish_the_rest(&mut conn, &mut published).await;
            }
            match self.publish_batch(&mut conn, &mut published).await {
                Ok((_, more)) => {
                    backoff.reset();
                    if more {
                        continue;
                    }
                }
                Err(RelayError::Publish(error)) => {
                    tracing::warn!(service = self.service, %error, "publishing to NATS failed; will retry");
                    tokio::select! {
                        () = tokio::time::sleep(backoff.next()) => {}
                        _ = shutdown.changed() => return Ok(()),
                    }
                    continue;
                }
                Err(error) => return Err(error),
            }
            if last_cleanup.elapsed() > Duration::from_secs(600) {
                sqlx::query(&format!(
                    "DELETE FROM outbox WHERE published_at < now() - interval '{RETENTION}'"
                ))
                .execute(&mut conn)
                .await?;
                last_cleanup = tokio::time::Instant::now();
            }
            // Waits for the next event, marking what was published if none comes soon.
            loop {
                let wait = if published.is_empty() {
                    POLL
                } else {
                    MARK_DELAY
                };
                tokio::select! {
                    notification = listener.recv() => {
                        notification?;
                        // One batch serves every event committed so far: the notifications of
                        // the others are already answered (one each would be an empty batch each).
                        while listener.next_buffered().is_some() {}
                        break;
                    }
                    () = tokio::time::sleep(wait) => {
                        if published.is_empty() {
                            break;
                        }
                        mark(&mut conn, &mut published).await?;
                    }
                    _ = shutdown.changed() => {
                        return self.publish_the_rest(&mut conn, &mut published).await;
                    }
                }
            }
        }
    }

    /// On the way out, publishes what was committed before the service stopped taking
    /// requests, so the events of its last requests leave with it instead of waiting for its
    /// next start (or a standby's). The runtime bounds how long it may take; a failure leaves
    /// the rows for the next relay, as at any other time.
    async fn publish_the_rest(
        &self,
        conn: &mut PgConnection,
        published: &mut Vec<i64>,
    ) -> Result<(), RelayError> {
        let mut count = 0;
        loop {
            match self.publish_batch(conn, published).await {
                Ok((n, more)) => {
                    count += n;
                    if !more {
                        break;
                    }
                }
                Err(error) => {
                    tracing::warn!(service = self.service, %error, "outbox left for the next relay");
                    break;
                }
            }
        }
        if let Err(error) = mark(conn, published).await {
            tracing::warn!(service = self.service, %error, "published rows left unmarked: the next relay sends them again");
        }
        if count > 0 {
            tracing::info!(
                service = self.service,
                published = count,
                "outbox published before stopping"
            );
        }
        Ok(())
    }

    /// Marks the rows of `published` (the batch before) and takes up to one batch of pending
    /// rows, in one statement; publishes them and, once NATS acknowledged every one, leaves
    /// their ids in `published` for the next call to mark. Returns how many it took, and
    /// whether more are pending already (a full batch, or one cut before a consumer's row).
    async fn publish_batch(
        &self,
        conn: &mut PgConnection,
        published: &mut Vec<i64>,
    ) -> Result<(usize, bool), RelayError> {
        let rows = sqlx::query(TAKE_BATCH)
            .bind(&*published)
            .bind(BATCH)
            .fetch_all(&mut *conn)
            .await?;
        published.clear();
        let Some(first) = rows.first() else {
            return Ok((0, false));
        };
        let undurable: Option<i64> = first.try_get("undurable")?;
        let mut rows = rows
            .into_iter()
            .map(|row| Ok((row.try_get::<i64, _>("id")?, row)))
            .collect::<Result<Vec<_>, sqlx::Error>>()?;
        // The outbox's order, which the query's filter over its materialized rows keeps in
        // practice but does not promise.
        rows.sort_by_key(|(id, _)| *id);
        let ids: Vec<i64> = rows.iter().map(|(id, _)| *id).collect();
        let cut = undurable.is_some_and(|id| !ids.contains(&id));
        let mut acks = Vec::with_capacity(rows.len());
        for (_, row) in &rows {
            let envelope = EventEnvelope::from_row(row)?;
            let subject = self.bus.namespace.subject(&event_subject(
                self.service,
                &envelope.aggregate_type,
                &envelope.event_type,
            ));
            let publish = publication(&envelope)?;
            let ack = self
                .bus
                .jetstream
                .send_publish(subject, publish)
                .await
                .map_err(|e| RelayError::Publish(e.to_string()))?;
            acks.push(ack.into_future());
        }
        // Every ack, or none of the rows is marked: a row marked published is one NATS stored.
        try_join_all(acks)
            .await
            .map_err(|e| RelayError::Publish(e.to_string()))?;
        let taken = ids.len();
        *published = ids;
        Ok((taken, cut || taken == BATCH as usize))
    }
}

/// Marks rows published by their primary key.
const MARK: &str = "UPDATE outbox SET published_at = now() WHERE id = ANY($1)";

/// Marks rows published on their own (when no batch comes soon after them to do it).
async fn mark(conn: &mut PgConnection, published: &mut Vec<i64>) -> Result<(), sqlx::Error> {
    if !published.is_empty() {
        sqlx::query(MARK)
            .bind(&*published)
            .execute(&mut *conn)
            .await?;
        published.clear();
    }
    Ok(())
}

/// The JetStream publication of one envelope, with the headers consumers route on.
pub(crate) fn publication(envelope: &EventEnvelope) -> Result<PublishMessage, RelayError> {
    let body = serde_json::to_vec(envelope).map_err(|e| RelayError::Publish(e.to_string()))?;
    let publish = PublishMessage::build()
        .payload(body.into())
        .message_id(envelope.message_id())
        .header(
            crate::consumer::AGGREGATE_ID_HEADER,
            envelope.aggregate_id.as_str(),
        );
    // The journey's trace, so the consumer's span continues it (see `trace`).
    Ok(
        match crate::trace::traceparent_of(&envelope.metadata, envelope.event_id) {
            Some(traceparent) => publish.header(crate::trace::TRACEPARENT, traceparent.as_str()),
            None => publish,
        },
    )
}

/// A growing delay with jitter, capped, for reconnect loops.
#[derive(Debug, Default)]
pub(crate) struct Backoff {
    attempt: u32,
}

impl Backoff {
    pub(crate) fn next(&mut self) -> Duration {
        self.attempt = self.attempt.saturating_add(1);
        delay_for_attempt(
            self.attempt,
            Duration::from_millis(100),
            Duration::from_secs(5),
        )
    }

    fn reset(&mut self) {
        self.attempt = 0;
    }
}

/// `base × 2^(attempt-1)`, capped, with up to 25% jitter so that retries don't march in step.
pub(crate) fn delay_for_attempt(attempt: u32, base: Duration, cap: Duration) -> Duration {
    let exp = base.saturating_mul(1u32 << attempt.saturating_sub(1).min(16));
    let capped = exp.min(cap);
    let nanos = u64::try_from(capped.as_nanos()).unwrap_or(u64::MAX);
    let jitter = nanos / 4 * u64::from(rand_percent()) / 100;
    Duration::from_nanos(nanos.saturating_sub(jitter))
}

fn rand_percent() -> u8 {
    // Sub-second clock noise is jitter enough here and needs no random number generator.
    u8::try_from(Utc::now().timestamp_subsec_nanos() % 100).unwrap_or(0)
}

/// A `LISTEN` connection of its own, outside the service's pool.
///
/// A listener keeps its connection for as long as it listens. Taken from the service's pool
/// (what `PgListener::connect_with` does), it would leave the pool one connection short for
/// good: with a small pool and two listeners (the relay's and the live feeds'), the consumers'
/// transactions each waited for a second connection that never came free, and a kitchen of
/// four connections opened a ticket every ten seconds (BENCHMARKS.md). Its own one-connection
/// pool also reconnects it after a database fault, as `PgListener` does with any pool.
///
/// # Errors
/// The database cannot be reached.
pub async fn dedicated_listener(pool: &PgPool) -> Result<PgListener, sqlx::Error> {
    let own = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .min_connections(0)
        .idle_timeout(None)
        .max_lifetime(None)
        .acquire_timeout(Duration::from_secs(5))
        .connect_lazy_with((*pool.connect_options()).clone());
    PgListener::connect_with(&own).await
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use sqlx::{Connection, PgConnection};

    use super::{MARK, SESSION, TAKE_BATCH};
    use crate::schema::{migrate, EVENT_STORE};

    /// On the relay's session, the statement that takes a batch reads the pending rows by an
    /// index scan and marks rows by their primary key, and so does the one that marks rows on
    /// their own: in the generic plan the session keeps, and in a plan made for the values at
    /// hand, on a table not analyzed yet with thousands of rows marked published (what a relay
    /// meets after a minute of load).
    #[tokio::test]
    async fn a_batch_is_taken_by_index_scans_whatever_the_outbox_has_been_through() {
        let server = "postgres://postgres@127.0.0.1:5432";
        let database = format!(
            "t{}_relay",
            &uuid::Uuid::new_v4().simple().to_string()[..10]
        );
        let mut admin = PgConnection::connect(&format!("{server}/postgres"))
            .await
            .unwrap();
        sqlx::query(&format!("CREATE DATABASE \"{database}\""))
            .execute(&mut admin)
            .await
            .unwrap();
        let pool = sqlx::PgPool::connect(&format!("{server}/{database}"))
            .await
            .unwrap();
        migrate(&pool, EVENT_STORE).await.unwrap();
        let fill = |rows: i64| {
            sqlx::query(
                "INSERT INTO outbox (event_id, aggregate_type, aggregate_id, sequence, event_type,
                                     event_version, payload, metadata, recorded_at)
                 SELECT gen_random_uuid(), 'order', n::text, 1, 'OrderPlaced', '1', '{}', '{}', now()
                   FROM generate_series(1, $1) AS n",
            )
            .bind(rows)
        };
        fill(6_010).execute(&pool).await.unwrap();
        sqlx::query("UPDATE outbox SET published_at = now() WHERE id <= 6000")
            .execute(&pool)
            .await
            .unwrap();

        let mut relay = pool.acquire().await.unwrap();
        for setting in SESSION {
            sqlx::query(setting).execute(&mut *relay).await.unwrap();
        }
        let session_mode: String = sqlx::query_scalar("SHOW plan_cache_mode")
            .fetch_one(&mut *relay)
            .await
            .unwrap();
        sqlx::query(&format!("PREPARE take (bigint[], bigint) AS {TAKE_BATCH}"))
            .execute(&mut *relay)
            .await
            .unwrap();
        sqlx::query(&format!("PREPARE mark (bigint[]) AS {MARK}"))
            .execute(&mut *relay)
            .await
            .unwrap();
        // The generic plan the session keeps, then one made for the values at hand (should
        // the session's setting ever go).
        let mut plan = Vec::new();
        let mut mark_plan = Vec::new();
        for mode in [None, Some("force_custom_plan")] {
            if let Some(mode) = mode {
                sqlx::query(&format!("SET plan_cache_mode = {mode}"))
                    .execute(&mut *relay)
                    .await
                    .unwrap();
            }
            let lines: Vec<String> = sqlx::query_scalar("EXPLAIN EXECUTE take ('{6000}', 256)")
                .fetch_all(&mut *relay)
                .await
                .unwrap();
            plan.extend(lines);
            let lines: Vec<String> = sqlx::query_scalar("EXPLAIN EXECUTE mark ('{6005}')")
                .fetch_all(&mut *relay)
                .await
                .unwrap();
            mark_plan.extend(lines);
        }
        let plan = plan.join("\n");
        drop(relay);
        pool.close().await;
        sqlx::query(&format!("DROP DATABASE \"{database}\" WITH (FORCE)"))
            .execute(&mut admin)
            .await
            .unwrap();

        assert!(
            plan.matches("Index Scan using outbox_pending on outbox")
                .count()
                == 2
                && plan
                    .matches("Index Scan using outbox_pkey on outbox")
                    .count()
                    == 2,
            "{plan}"
        );
        assert!(
            !plan.contains("Bitmap") && !plan.contains("Seq Scan") && !plan.contains("Sort"),
            "{plan}"
        );
        let mark_plan = mark_plan.join("\n");
        assert_eq!(
            mark_plan
                .matches("Index Scan using outbox_pkey on outbox")
                .count(),
            2,
            "{mark_plan}"
        );
        assert!(
            !mark_plan.contains("Bitmap") && !mark_plan.contains("Seq Scan"),
            "{mark_plan}"
        );
        assert_eq!(session_mode, "force_generic_plan");
    }
}
