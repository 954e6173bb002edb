//! Consumers commit without waiting for the disk; a message is acknowledged once it has.
//!
//! A consumer's transaction (its checkpoint, the read models it writes, the events a command
//! it issues stores) commits with `synchronous_commit = off`: it is visible at once, so a
//! screen that follows it shows the change without waiting for a WAL flush (2–3 ms on a slow
//! disk, the one flush left on the way from a placed order to the kitchen screen). It is not
//! durable yet, and two things must wait until it is:
//!
//! - **the message's acknowledgement.** A crash of PostgreSQL before the flush loses the
//!   transaction; the message, not acknowledged, comes back and is applied again (its
//!   checkpoint was lost with it, so it is the next one again, and the checkpoint still holds
//!   back the events behind it). [`AckQueue`] gathers the messages to acknowledge, and one
//!   statement for all of them reads their checkpoints and commits with a flush: the
//!   checkpoints it read were committed before it, so that flush makes them durable, and a
//!   message is acknowledged only if each of its checkpoints stands at or past it. One lost in
//!   a crash before that statement is not there to be read: its message is sent back instead.
//!   Nothing hangs on a connection surviving, so it holds behind a pooler too.
//! - **the publication of the events it stored.** Published, then lost in a crash, an event
//!   would be one the rest of the system applied and this service never stored, and its
//!   sequence number would go to another event that JetStream then drops as a duplicate. The
//!   outbox trigger records whether the row's transaction commits durably (its
//!   `synchronous_commit`), and the relay flushes the WAL before it publishes a row that does
//!   not (in the statement that takes the row: `crate::relay`). A request's command commits durably as before: its answer promises that,
//!   and its events leave at once.
//!
//! A flush is a synchronous commit that writes WAL: a transactional logical message
//! (`pg_logical_emit_message`, any role may emit one, at any `wal_level`). PostgreSQL writes
//! its WAL in order, so the flush of that commit makes every transaction committed before it
//! durable too. See BENCHMARKS.md for what this took off the kitchen screen's path.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Duration;

use async_nats::jetstream::{AckKind, Message};
use sqlx::{PgConnection, PgPool};
use tokio::sync::{mpsc, oneshot};

/// What a consumer's transaction begins with: its commit does not wait for the WAL flush.
pub const BEGIN_WITHOUT_FLUSH: &str = "BEGIN; SET LOCAL synchronous_commit = off";

/// How long the queue gathers messages before one statement settles them all: an
/// acknowledgement some milliseconds later costs nothing (JetStream waits 30 s for it), and
/// one flush then serves every consumer of the process. At 10 ms the flushes (four databases,
/// a hundred a second each under load) cost more PostgreSQL time than they saved.
const GATHER: Duration = Duration::from_millis(25);

/// How soon a message whose checkpoint could not be confirmed comes back.
const RETRY: Duration = Duration::from_millis(500);

/// Commits with a flush of everything committed before: a logical message in a transaction
/// of its own, committed synchronously whatever the session's setting.
const FLUSH: &str = "SELECT set_config('synchronous_commit', 'on', true),
        pg_logical_emit_message(true, 'brigade', 'flush')::text";

/// Returns once what `reader`'s session has read so far is durable: the WAL flushed past
/// where it was written then. What acts outside the database on rows a consumer wrote (a
/// webhook posted, say) calls it in between: the flush is made on another connection of
/// `pool` (the reader may be in a transaction), and `reader` still being there afterwards
/// proves that no crash came between its reads and the flush.
///
/// # Errors
/// A database error, or the WAL found not flushed that far: nothing may be acted on then.
pub async fn wait_until_durable(
    pool: &PgPool,
    reader: &mut PgConnection,
) -> Result<(), sqlx::Error> {
    let written: String = sqlx::query_scalar("SELECT pg_current_wal_insert_lsn()::text")
        .fetch_one(&mut *reader)
        .await?;
    sqlx::query(FLUSH).execute(pool).await?;
    let flushed: bool = sqlx::query_scalar("SELECT pg_current_wal_flush_lsn() >= $1::pg_lsn")
        .bind(&written)
        .fetch_one(&mut *reader)
        .await?;
    if flushed {
        Ok(())
    } else {
        Err(sqlx::Error::Protocol(
            "the WAL is not flushed past what was read".into(),
        ))
    }
}

/// Commits with a flush of everything committed before (a logical message in its own
/// transaction, committed synchronously whatever the session's setting), reading first (in the
/// same statement's snapshot, so before its commit) which of the given checkpoints stand at or
/// past their sequence: the indexes (`$5`) of those that do. When
/// the WAL is flushed already past where it was written to once the snapshot was taken (past
/// every commit the snapshot sees), there is nothing to flush and no message is written;
/// unless a synchronous standby is configured, which a local flush says nothing of.
const SETTLE: &str = "SELECT set_config('synchronous_commit', 'on', true),
        CASE WHEN pg_current_wal_flush_lsn() < pg_current_wal_insert_lsn()
                  OR current_setting('synchronous_standby_names') <> ''
             THEN pg_logical_emit_message(true, 'brigade', 'acknowledgements')::text END,
        ARRAY(SELECT k.i
              FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::int[])
                   AS k(consumer, aggregate_type, aggregate_id, sequence, i)
              JOIN consumer_checkpoints c USING (consumer, aggregate_type, aggregate_id)
              WHERE c.last_sequence >= k.sequence)";

/// One checkpoint a message must have reached before it is acknowledged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    pub consumer: String,
    pub aggregate_type: String,
    pub aggregate_id: String,
    pub sequence: i64,
}

// Nearly every request is a `Settle`: the rare `Drained` costing as much room is no waste.
#[allow(clippy::large_enum_variant)]
enum Request {
    /// Send `kind` for `message` once every checkpoint is durable at or past its sequence.
    Settle {
        message: Message,
        kind: AckKind,
        checkpoints: Vec<Checkpoint>,
    },
    /// Answered once everything queued before it is settled.
    Drained(oneshot::Sender<()>),
}

/// The acknowledgements of one database's consumers, waiting for their transactions' flush.
pub struct AckQueue {
    requests: mpsc::UnboundedSender<Request>,
}

impl AckQueue {
    /// The queue of `pool`'s database, shared by every consumer of the process that uses it;
    /// started on first use, stopped when the last consumer holding it is gone.
    #[must_use]
    pub fn of(pool: &PgPool) -> Arc<Self> {
        static QUEUES: OnceLock<Mutex<HashMap<String, Weak<AckQueue>>>> = OnceLock::new();
        let options = pool.connect_options();
        let key = format!(
            "{}:{}/{}",
            options.get_host(),
            options.get_port(),
            options.get_database().unwrap_or_default()
        );
        let mut queues = QUEUES
            .get_or_init(Mutex::default)
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // A queue whose task is gone (its runtime stopped: one per test, say) is replaced.
        if let Some(queue) = queues.get(&key).and_then(Weak::upgrade) {
            if !queue.requests.is_closed() {
                return queue;
            }
        }
        queues.retain(|_, queue| queue.strong_count() > 0);
        let (requests, received) = mpsc::unbounded_channel();
        tokio::spawn(settle_all(pool.clone(), received));
        let queue = Arc::new(Self { requests });
        queues.insert(key, Arc::downgrade(&queue));
        queue
    }

    /// Sends `kind` for `message` once its transaction is durable and each checkpoint stands
    /// at or past its sequence; sends it back soon otherwise.
    pub fn settle(&self, message: Message, kind: AckKind, checkpoints: Vec<Checkpoint>) {
        let request = Request::Settle {
            message,
            kind,
            checkpoints,
        };
        if let Err(mpsc::error::SendError(Request::Settle { message, .. })) =
            self.requests.send(request)
        {
            // The queue's task is gone (the runtime is stopping): not acknowledged, the message
            // comes back after JetStream's wait and its checkpoint tells what it is.
            tracing::debug!(subject = %message.subject, "acknowledgement dropped");
        }
    }

    /// Waits until everything queued so far is settled (a consumer stopping).
    pub async fn drained(&self) {
        let (done, wait) = oneshot::channel();
        if self.requests.send(Request::Drained(done)).is_ok() {
            let _ = wait.await;
        }
    }
}

/// The queue's task: gathers requests for [`GATHER`], settles them with one statement, again.
async fn settle_all(pool: PgPool, mut received: mpsc::UnboundedReceiver<Request>) {
    while let Some(first) = received.recv().await {
        tokio::time::sleep(GATHER).await;
        let mut batch = vec![first];
        while let Ok(next) = received.try_recv() {
            batch.push(next);
        }
        settle_batch(&pool, batch).await;
    }
}

/// The checkpoints of a batch, column by column, as `SETTLE` takes them (`request`: the
/// index of the request each belongs to).
#[derive(Default)]
struct Columns<'a> {
    consumer: Vec<&'a str>,
    aggregate_type: Vec<&'a str>,
    aggregate_id: Vec<&'a str>,
    sequence: Vec<i64>,
    request: Vec<i32>,
}

async fn settle_batch(pool: &PgPool, batch: Vec<Request>) {
    let reached = reached(pool, &batch).await;
    for (i, request) in batch.into_iter().enumerate() {
        match request {
            Request::Settle {
                message,
                kind,
                checkpoints,
            } => {
                let i = i32::try_from(i).unwrap_or(i32::MAX);
                let confirmed = reached.as_ref().is_some_and(|reached| {
                    reached.iter().filter(|at| **at == i).count() == checkpoints.len()
                });
                let kind = if confirmed {
                    kind
                } else {
                    AckKind::Nak(Some(RETRY))
                };
                if let Err(error) = message.ack_with(kind).await {
                    tracing::debug!(%error, "ack not sent; the message will be redelivered");
                }
            }
            Request::Drained(done) => {
                let _ = done.send(());
            }
        }
    }
}

/// The indexes of the requests of `batch` whose checkpoints all stood at or past their
/// sequence, read and flushed by one `SETTLE` (once per checkpoint); `None` when it failed.
/// A batch of `Drained` only needs no statement: what came before it is settled already.
async fn reached(pool: &PgPool, batch: &[Request]) -> Option<Vec<i32>> {
    if !batch
        .iter()
        .any(|request| matches!(request, Request::Settle { .. }))
    {
        return Some(Vec::new());
    }
    let mut columns = Columns::default();
    for (i, request) in batch.iter().enumerate() {
        if let Request::Settle { checkpoints, .. } = request {
            let i = i32::try_from(i).unwrap_or(i32::MAX);
            for checkpoint in checkpoints {
                columns.consumer.push(&checkpoint.consumer);
                columns.aggregate_type.push(&checkpoint.aggregate_type);
                columns.aggregate_id.push(&checkpoint.aggregate_id);
                columns.sequence.push(checkpoint.sequence);
                columns.request.push(i);
            }
        }
    }
    let settled: Result<(String, Option<String>, Vec<i32>), sqlx::Error> = sqlx::query_as(SETTLE)
        .bind(&columns.consumer)
        .bind(&columns.aggregate_type)
        .bind(&columns.aggregate_id)
        .bind(&columns.sequence)
        .bind(&columns.request)
        .fetch_one(pool)
        .await;
    match settled {
        Ok((_, _, reached)) => Some(reached),
        Err(error) => {
            tracing::warn!(%error, "cannot confirm that consumers' transactions are durable; their messages come back");
            None
        }
    }
}
