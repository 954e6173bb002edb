//! The bus on real PostgreSQL and NATS: the relay publishes what the event store commits, and
//! consumers apply each event once, in order per aggregate, parking what they cannot apply.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::AckKind;
use brigade_nats::consumer::ConsumerStats;
use brigade_nats::durable::{self, AckQueue, Checkpoint};
use brigade_nats::schema::EVENT_STORE;
use brigade_nats::{
    migrate, Bus, ConsumerRunner, EventEnvelope, EventHandler, HandlerError, Migration, Namespace,
    OutboxRelay, Pace, ReceivedEvent, Subscription,
};
use futures::StreamExt;
use sqlx::{PgConnection, PgPool};
use tokio::sync::watch;
use uuid::Uuid;

use common::{placed, recorder};

const APPLIED: Migration = Migration {
    name: "test_applied",
    sql: "CREATE TABLE applied (aggregate_id text, sequence bigint, applied_at timestamptz DEFAULT clock_timestamp(), tx bigint DEFAULT txid_current())",
};

struct Fixture {
    pool: PgPool,
    bus: Bus,
    database: String,
    stop: watch::Sender<bool>,
}

impl Fixture {
    async fn new() -> Self {
        let tag = Uuid::new_v4().simple().to_string()[..10].to_owned();
        let database = format!("t{tag}_bus");
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
        migrate(&pool, &[APPLIED]).await.unwrap();
        let namespace = Namespace::new(Some(&format!("t{tag}"))).unwrap();
        let bus = Bus::connect("nats://127.0.0.1:4222", namespace, 1)
            .await
            .unwrap();
        bus.ensure_stream("orders").await.unwrap();
        Self {
            pool,
            bus,
            database,
            stop: watch::channel(false).0,
        }
    }

    /// Publishes an envelope as the orders relay would (no message id: tests send duplicates on purpose).
    async fn publish(&self, aggregate_id: &str, sequence: i64) {
        self.publish_as("order", aggregate_id, sequence).await;
    }

    /// Publishes an event of another aggregate type of the orders stream.
    async fn publish_as(&self, aggregate_type: &str, aggregate_id: &str, sequence: i64) {
        let envelope = placed(aggregate_type, aggregate_id, sequence);
        let subject = format!("orders.{aggregate_type}.placed");
        self.publish_to(&subject, serde_json::to_vec(&envelope).unwrap())
            .await;
    }

    async fn publish_raw(&self, body: Vec<u8>) {
        self.publish_to("orders.order.placed", body).await;
    }

    async fn publish_to(&self, subject: &str, body: Vec<u8>) {
        let subject = self.bus.namespace.subject(subject);
        self.bus
            .jetstream
            .publish(subject, body.into())
            .await
            .unwrap()
            .await
            .unwrap();
    }

    fn consume(&self, handler: Arc<dyn EventHandler>, max_attempts: i64) {
        let _ = self.consume_at(handler, max_attempts, Pace::AtOnce);
    }

    fn consume_at(
        &self,
        handler: Arc<dyn EventHandler>,
        max_attempts: i64,
        pace: Pace,
    ) -> Arc<ConsumerStats> {
        let subscription = Subscription {
            name: "test-consumer".into(),
            source: "orders",
            aggregate_types: vec!["order"],
            handler,
        };
        let runner = ConsumerRunner::new(self.pool.clone(), self.bus.clone(), subscription)
            .max_attempts(max_attempts)
            .pace(pace);
        let stats = runner.stats();
        tokio::spawn(runner.run(self.stop.subscribe()));
        stats
    }

    /// Starts the relay, and reads what it publishes on a consumer of the test's own.
    async fn relay_to_a_new_consumer(&self) -> async_nats::jetstream::consumer::pull::Stream {
        tokio::spawn(
            OutboxRelay::new(self.pool.clone(), self.bus.clone(), "orders")
                .run(self.stop.subscribe()),
        );
        let stream = self.bus.ensure_stream("orders").await.unwrap();
        let consumer = stream
            .create_consumer(async_nats::jetstream::consumer::pull::Config::default())
            .await
            .unwrap();
        consumer.messages().await.unwrap()
    }

    async fn applied(&self, aggregate_id: &str) -> Vec<i64> {
        sqlx::query_scalar(
            "SELECT sequence FROM applied WHERE aggregate_id = $1 ORDER BY applied_at",
        )
        .bind(aggregate_id)
        .fetch_all(&self.pool)
        .await
        .unwrap()
    }

    /// Stores one event as a command would: the trigger writes its outbox row.
    async fn store_event(&self, aggregate_id: &str, sequence: i64) {
        sqlx::query(
            "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata)
             VALUES ('order', $1, $2, 'OrderAccepted', '1.0', '{}', '{}')",
        )
        .bind(aggregate_id)
        .bind(sequence)
        .execute(&self.pool)
        .await
        .unwrap();
    }

    /// Outbox rows not published yet.
    async fn unpublished(&self) -> i64 {
        sqlx::query_scalar("SELECT count(*) FROM outbox WHERE published_at IS NULL")
            .fetch_one(&self.pool)
            .await
            .unwrap()
    }

    async fn wait_for(&self, aggregate_id: &str, expected: &[i64]) {
        // Generous: the poison events wait out their retry delays, and CI's two cores are busy
        // with every other suite at once. Only a failure waits the whole budget.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        while self.applied(aggregate_id).await.len() < expected.len()
            && tokio::time::Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // A little longer, so that a duplicate applied late would show.
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(self.applied(aggregate_id).await, expected);
    }

    async fn cleanup(self) {
        let _ = self.stop.send(true);
        self.pool.close().await;
        let _ = self
            .bus
            .jetstream
            .delete_stream(self.bus.namespace.stream("orders"))
            .await;
        let admin = PgPool::connect("postgres://postgres@127.0.0.1:5432/postgres")
            .await
            .unwrap();
        let _ = sqlx::query(&format!(
            "DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)",
            self.database
        ))
        .execute(&admin)
        .await;
    }
}

#[tokio::test]
async fn duplicates_are_applied_once_and_early_events_wait_for_their_predecessor() {
    let fixture = Fixture::new().await;
    fixture.consume(recorder(0, None), 12);
    let id = Uuid::new_v4().to_string();
    fixture.publish(&id, 3).await;
    fixture.publish(&id, 2).await;
    fixture.publish(&id, 1).await;
    fixture.publish(&id, 2).await;
    fixture.publish(&id, 1).await;
    fixture.wait_for(&id, &[1, 2, 3]).await;
    fixture.cleanup().await;
}

#[tokio::test]
async fn a_transient_failure_is_retried_until_the_event_applies() {
    let fixture = Fixture::new().await;
    fixture.consume(recorder(2, None), 12);
    let id = Uuid::new_v4().to_string();
    fixture.publish(&id, 1).await;
    fixture.publish(&id, 2).await;
    fixture.wait_for(&id, &[1, 2]).await;
    let parked: i64 = sqlx::query_scalar("SELECT count(*) FROM dead_letters")
        .fetch_one(&fixture.pool)
        .await
        .unwrap();
    assert_eq!(parked, 0);
    fixture.cleanup().await;
}

#[tokio::test]
async fn a_poison_message_is_parked_and_the_events_behind_it_still_apply() {
    let fixture = Fixture::new().await;
    fixture.consume(recorder(0, Some(2)), 12);
    let id = Uuid::new_v4().to_string();
    fixture.publish_raw(b"{ not an envelope".to_vec()).await;
    for sequence in 1..=3 {
        fixture.publish(&id, sequence).await;
    }
    fixture.wait_for(&id, &[1, 3]).await;
    let parked: Vec<(String, Option<i64>)> =
        sqlx::query_as("SELECT error, sequence FROM dead_letters ORDER BY id")
            .fetch_all(&fixture.pool)
            .await
            .unwrap();
    assert_eq!(parked.len(), 2, "{parked:?}");
    assert!(parked
        .iter()
        .any(|(error, sequence)| error.contains("never be applied") && *sequence == Some(2)));
    assert!(parked
        .iter()
        .any(|(error, sequence)| error.contains("not a Brigade event") && sequence.is_none()));
    fixture.cleanup().await;
}

#[tokio::test]
async fn failing_too_often_parks_the_message_after_the_last_attempt() {
    let fixture = Fixture::new().await;
    fixture.consume(recorder(100, None), 3);
    let id = Uuid::new_v4().to_string();
    fixture.publish(&id, 1).await;
    fixture.publish(&id, 2).await;
    fixture.wait_for(&id, &[2]).await;
    let (error, attempts): (String, i64) =
        sqlx::query_as("SELECT error, attempts FROM dead_letters")
            .fetch_one(&fixture.pool)
            .await
            .unwrap();
    assert!(error.contains("gave up after 3 attempts"), "{error}");
    assert_eq!(attempts, 3);
    fixture.cleanup().await;
}

/// Messages published before the consumer starts queue up in its lanes, which then apply
/// them several per transaction: still once each, in order, with the failures of each handled
/// as alone (a transient failure or a poison message rolls the batch back and each message
/// goes through on its own).
#[tokio::test]
async fn messages_that_queue_up_are_applied_together_yet_once_each_and_in_order() {
    let fixture = Fixture::new().await;
    let ids: Vec<String> = (0..5).map(|_| Uuid::new_v4().to_string()).collect();
    for sequence in 1..=20 {
        for id in &ids {
            fixture.publish(id, sequence).await;
        }
        // Redeliveries and stragglers among them.
        if sequence % 6 == 0 {
            fixture.publish(&ids[0], sequence - 2).await;
            fixture.publish(&ids[1], sequence + 1).await;
        }
    }
    fixture.consume(recorder(2, Some(7)), 12);
    let expected: Vec<i64> = (1..=20).filter(|s| *s != 7).collect();
    for id in &ids {
        fixture.wait_for(id, &expected).await;
    }
    let parked: i64 = sqlx::query_scalar("SELECT count(*) FROM dead_letters")
        .fetch_one(&fixture.pool)
        .await
        .unwrap();
    assert_eq!(
        parked, 5,
        "the poison event of each aggregate, and nothing else"
    );
    fixture.cleanup().await;
}

/// A queue of messages with nothing failing: the lanes apply it in runs, one transaction and
/// one checkpoint statement a run, and still each message once, in order, duplicates and
/// early ones recognised inside a run as between runs.
#[tokio::test]
async fn a_queue_is_applied_in_runs_with_every_checkpoint_where_it_belongs() {
    let fixture = Fixture::new().await;
    let ids: Vec<String> = (0..6).map(|_| Uuid::new_v4().to_string()).collect();
    let mut messages = 0;
    for sequence in 1..=15 {
        for id in &ids {
            fixture.publish(id, sequence).await;
            messages += 1;
        }
        // A redelivery right behind its original, and an event ahead of its predecessor.
        fixture.publish(&ids[0], sequence).await;
        messages += 1;
        if sequence + 2 <= 15 {
            fixture.publish(&ids[1], sequence + 2).await;
            messages += 1;
        }
    }
    fixture.consume(recorder(0, None), 12);
    let expected: Vec<i64> = (1..=15).collect();
    for id in &ids {
        fixture.wait_for(id, &expected).await;
    }
    let checkpoints: Vec<i64> = sqlx::query_scalar(
        "SELECT last_sequence FROM consumer_checkpoints WHERE consumer = 'test-consumer'",
    )
    .fetch_all(&fixture.pool)
    .await
    .unwrap();
    assert_eq!(checkpoints, vec![15; ids.len()]);
    // The transactions that applied events, from the ids they left on the rows they wrote.
    let (applied, transactions): (i64, i64) =
        sqlx::query_as("SELECT count(*), count(DISTINCT tx) FROM applied")
            .fetch_one(&fixture.pool)
            .await
            .unwrap();
    assert_eq!(applied, 90);
    assert!(
        transactions * 2 <= applied,
        "{messages} messages, {applied} applied in {transactions} transactions: too few runs"
    );
    fixture.cleanup().await;
}

/// A consumer no screen waits on (`Pace::Gathered`) applies a message that comes alone at
/// once; when messages come closer together than its linger, it waits for them and applies
/// them in one transaction, even one by one too far apart to queue up behind a transaction,
/// once each and in order.
#[tokio::test]
async fn a_gathering_consumer_applies_messages_that_come_one_by_one_together() {
    let fixture = Fixture::new().await;
    let _ = fixture.consume_at(
        recorder(0, None),
        12,
        Pace::Gathered {
            linger: Duration::from_secs(3),
        },
    );
    let id = Uuid::new_v4().to_string();
    // Alone: applied at once, well before the linger would have ended.
    let published = tokio::time::Instant::now();
    fixture.publish(&id, 1).await;
    while fixture.applied(&id).await.is_empty() {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        published.elapsed() < Duration::from_secs(3),
        "a message alone waited for the linger"
    );
    for sequence in 2..=6 {
        fixture.publish(&id, sequence).await;
        // Far longer than applying one takes: at once, each would be committed alone.
        tokio::time::sleep(Duration::from_millis(40)).await;
    }
    // A duplicate and an early event among them are told apart inside the run too.
    fixture.publish(&id, 3).await;
    fixture.publish(&id, 8).await;
    fixture.publish(&id, 7).await;
    fixture.wait_for(&id, &[1, 2, 3, 4, 5, 6, 7, 8]).await;
    let transactions: Vec<i64> = sqlx::query_scalar(
        "SELECT DISTINCT tx FROM applied WHERE aggregate_id = $1 AND sequence BETWEEN 2 AND 7",
    )
    .bind(&id)
    .fetch_all(&fixture.pool)
    .await
    .unwrap();
    assert_eq!(
        transactions.len(),
        1,
        "events 2 to 7, published over a quarter of a second, in one transaction"
    );
    let checkpoint: i64 = sqlx::query_scalar(
        "SELECT last_sequence FROM consumer_checkpoints WHERE consumer = 'test-consumer'",
    )
    .fetch_one(&fixture.pool)
    .await
    .unwrap();
    assert_eq!(checkpoint, 8);
    fixture.cleanup().await;
}

/// A run whose first message is one applied already (a redelivery that came ahead of the
/// events behind it) still applies those that follow the checkpoint, in the same transaction,
/// none of them sent back as early.
#[tokio::test]
async fn a_run_headed_by_a_duplicate_applies_the_events_behind_it() {
    let fixture = Fixture::new().await;
    let stats = fixture.consume_at(
        recorder(0, None),
        12,
        Pace::Gathered {
            linger: Duration::from_secs(3),
        },
    );
    let id = Uuid::new_v4().to_string();
    for sequence in 1..=3 {
        fixture.publish(&id, sequence).await;
    }
    fixture.wait_for(&id, &[1, 2, 3]).await;
    for sequence in [3, 4, 5] {
        fixture.publish(&id, sequence).await;
    }
    fixture.wait_for(&id, &[1, 2, 3, 4, 5]).await;
    let transactions: i64 = sqlx::query_scalar(
        "SELECT count(DISTINCT tx) FROM applied WHERE aggregate_id = $1 AND sequence >= 4",
    )
    .bind(&id)
    .fetch_one(&fixture.pool)
    .await
    .unwrap();
    assert_eq!(transactions, 1, "4 and 5 in the duplicate's run");
    assert_eq!(stats.out_of_order.load(Ordering::Relaxed), 0);
    assert_eq!(stats.duplicates.load(Ordering::Relaxed), 1);
    fixture.cleanup().await;
}

/// Stores events of one order in `tx` as `store::execute_in` does: the envelopes stored.
async fn store_returning(
    tx: &mut PgConnection,
    id: String,
    sequences: Vec<i64>,
) -> Vec<EventEnvelope> {
    sqlx::query(
        "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata)
         SELECT 'order', $1, s, 'OrderAccepted', '1.0', '{\"OrderAccepted\": {}}', '{}'
           FROM unnest($2::bigint[]) AS s
         RETURNING *",
    )
    .bind(id)
    .bind(sequences)
    .fetch_all(tx)
    .await
    .unwrap()
    .iter()
    .map(|row| EventEnvelope::from_row(row).unwrap())
    .collect()
}

#[tokio::test]
async fn events_applied_in_the_transaction_that_stores_them_come_from_the_bus_as_duplicates() {
    let fixture = Fixture::new().await;
    let subscription = Subscription {
        name: "test-consumer".into(),
        source: "orders",
        aggregate_types: vec!["order"],
        handler: recorder(0, None),
    };
    // `here`: both events applied where they are stored.
    let here = Uuid::new_v4().to_string();
    let mut tx = fixture.pool.begin().await.unwrap();
    let events = store_returning(&mut tx, here.clone(), vec![1, 2]).await;
    assert_eq!(subscription.apply_in(&mut tx, &events).await.unwrap(), 2);
    tx.commit().await.unwrap();
    // `later`: its first event goes the usual way, so its second cannot be applied before it.
    let later = Uuid::new_v4().to_string();
    fixture.store_event(&later, 1).await;
    let mut tx = fixture.pool.begin().await.unwrap();
    let events = store_returning(&mut tx, later.clone(), vec![2]).await;
    assert_eq!(subscription.apply_in(&mut tx, &events).await.unwrap(), 0);
    tx.commit().await.unwrap();
    // `undone`: applied, then rolled back with the events: nothing of it remains.
    let undone = Uuid::new_v4().to_string();
    let mut tx = fixture.pool.begin().await.unwrap();
    let events = store_returning(&mut tx, undone.clone(), vec![1]).await;
    assert_eq!(subscription.apply_in(&mut tx, &events).await.unwrap(), 1);
    tx.rollback().await.unwrap();
    assert!(fixture.applied(&here).await == [1, 2] && fixture.applied(&undone).await.is_empty());

    tokio::spawn(
        OutboxRelay::new(fixture.pool.clone(), fixture.bus.clone(), "orders")
            .run(fixture.stop.subscribe()),
    );
    let runner = ConsumerRunner::new(fixture.pool.clone(), fixture.bus.clone(), subscription);
    let stats = runner.stats();
    tokio::spawn(runner.run(fixture.stop.subscribe()));
    fixture.wait_for(&later, &[1, 2]).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while stats.duplicates.load(Ordering::SeqCst) < 2 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        stats.duplicates.load(Ordering::SeqCst),
        2,
        "`here` came again"
    );
    fixture.wait_for(&here, &[1, 2]).await;
    assert!(fixture.applied(&undone).await.is_empty());
    fixture.cleanup().await;
}

#[tokio::test]
async fn the_relay_publishes_committed_events_in_order_with_their_message_ids() {
    let fixture = Fixture::new().await;
    let id = Uuid::new_v4().to_string();
    for sequence in 1..=5_i64 {
        sqlx::query(
            "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata)
             VALUES ('order', $1, $2, 'OrderAccepted', '1.0', '{\"OrderAccepted\": {}}', '{}')",
        )
        .bind(&id)
        .bind(sequence)
        .execute(&fixture.pool)
        .await
        .unwrap();
    }
    assert_eq!(
        fixture.unpublished().await,
        5,
        "the trigger wrote one outbox row per event"
    );

    let mut messages = fixture.relay_to_a_new_consumer().await;
    let mut ids = Vec::new();
    while ids.len() < 5 {
        let message = tokio::time::timeout(Duration::from_secs(10), messages.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(
            message.subject.as_str(),
            fixture.bus.namespace.subject("orders.order.accepted")
        );
        ids.push(
            message
                .headers
                .as_ref()
                .unwrap()
                .get("Nats-Msg-Id")
                .unwrap()
                .as_str()
                .to_owned(),
        );
        message.ack().await.unwrap();
    }
    let expected: Vec<String> = (1..=5).map(|s| format!("order:{id}:{s}")).collect();
    assert_eq!(ids, expected);
    for _ in 0..100 {
        if fixture.unpublished().await == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        fixture.unpublished().await,
        0,
        "rows are marked after the publish acks"
    );
    fixture.cleanup().await;
}

#[tokio::test]
async fn a_consumers_events_are_published_only_once_the_wal_is_flushed_past_them() {
    let fixture = Fixture::new().await;
    let id = Uuid::new_v4().to_string();
    // A request's commit, then a consumer's (which does not wait for the disk).
    fixture.store_event(&id, 1).await;
    let mut tx = fixture
        .pool
        .begin_with(durable::BEGIN_WITHOUT_FLUSH)
        .await
        .unwrap();
    store_returning(&mut tx, id.clone(), vec![2]).await;
    tx.commit().await.unwrap();
    let committed: String = sqlx::query_scalar("SELECT pg_current_wal_insert_lsn()::text")
        .fetch_one(&fixture.pool)
        .await
        .unwrap();
    let durable: Vec<bool> = sqlx::query_scalar("SELECT durable FROM outbox ORDER BY id")
        .fetch_all(&fixture.pool)
        .await
        .unwrap();
    assert_eq!(
        durable,
        [true, false],
        "the outbox tells which commit waited"
    );

    let mut messages = fixture.relay_to_a_new_consumer().await;
    for sequence in 1..=2_i64 {
        let message = tokio::time::timeout(Duration::from_secs(10), messages.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        let envelope: EventEnvelope = serde_json::from_slice(&message.payload).unwrap();
        assert_eq!(envelope.sequence, sequence);
        message.ack().await.unwrap();
    }
    // By the time the consumer's event is out, what it committed is on disk: PostgreSQL's WAL
    // writer alone would have taken up to 200 ms (three times that at worst).
    let flushed: bool = sqlx::query_scalar("SELECT pg_current_wal_flush_lsn() >= $1::pg_lsn")
        .bind(&committed)
        .fetch_one(&fixture.pool)
        .await
        .unwrap();
    assert!(flushed, "published before the WAL was flushed past it");
    fixture.cleanup().await;
}

#[tokio::test]
async fn a_message_is_acknowledged_once_its_checkpoint_is_durable_and_sent_back_if_it_is_gone() {
    let fixture = Fixture::new().await;
    fixture.publish("kept", 1).await;
    fixture.publish("lost", 1).await;
    // `kept` was applied; `lost` was too, in a transaction a crash took back before its flush.
    sqlx::query(
        "INSERT INTO consumer_checkpoints (consumer, aggregate_type, aggregate_id, last_sequence)
         VALUES ('acks', 'order', 'kept', 1)",
    )
    .execute(&fixture.pool)
    .await
    .unwrap();
    let stream = fixture.bus.ensure_stream("orders").await.unwrap();
    let consumer = stream
        .create_consumer(async_nats::jetstream::consumer::pull::Config {
            durable_name: Some("acks".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    let mut messages = consumer.messages().await.unwrap();
    let acks = AckQueue::of(&fixture.pool);
    for _ in 0..2 {
        let message = messages.next().await.unwrap().unwrap();
        let envelope: EventEnvelope = serde_json::from_slice(&message.payload).unwrap();
        let checkpoint = Checkpoint {
            consumer: "acks".into(),
            aggregate_type: envelope.aggregate_type,
            aggregate_id: envelope.aggregate_id,
            sequence: envelope.sequence,
        };
        acks.settle(message, AckKind::Ack, vec![checkpoint]);
    }
    acks.drained().await;

    let again = tokio::time::timeout(Duration::from_secs(10), messages.next())
        .await
        .expect("the message whose checkpoint is gone comes back")
        .unwrap()
        .unwrap();
    let envelope: EventEnvelope = serde_json::from_slice(&again.payload).unwrap();
    assert_eq!(envelope.aggregate_id, "lost");
    assert_eq!(again.info().unwrap().delivered, 2);
    again.ack().await.unwrap();
    let mut consumer = consumer;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let info = consumer.info().await.unwrap();
        if info.num_ack_pending == 0 && info.num_pending == 0 {
            assert_eq!(
                info.ack_floor.stream_sequence, 2,
                "both acknowledged, `kept` once"
            );
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{info:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    fixture.cleanup().await;
}

#[tokio::test]
async fn a_relay_told_to_stop_publishes_what_was_committed_before_it_goes() {
    let fixture = Fixture::new().await;
    let relay = tokio::spawn(
        OutboxRelay::new(fixture.pool.clone(), fixture.bus.clone(), "orders")
            .run(fixture.stop.subscribe()),
    );
    // A first event shows the relay active and idle, waiting for the next notification.
    fixture.store_event("o-1", 1).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while fixture.unpublished().await > 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(fixture.unpublished().await, 0);

    // Rows committed with no notification (the relay would only see them at its next poll),
    // then the stop at once: they leave before the relay does.
    sqlx::query(
        "INSERT INTO outbox (event_id, aggregate_type, aggregate_id, sequence, event_type,
                             event_version, payload, metadata, recorded_at)
         SELECT gen_random_uuid(), 'order', 'o-2', s, 'OrderAccepted', '1.0', '{}', '{}', now()
         FROM generate_series(1, 300) AS s",
    )
    .execute(&fixture.pool)
    .await
    .unwrap();
    let _ = fixture.stop.send(true);
    tokio::time::timeout(Duration::from_secs(30), relay)
        .await
        .expect("the relay stops")
        .unwrap();
    assert_eq!(
        fixture.unpublished().await,
        0,
        "every committed row published on the way out"
    );
    let mut stream = fixture.bus.ensure_stream("orders").await.unwrap();
    assert_eq!(stream.info().await.unwrap().state.messages, 301);
    fixture.cleanup().await;
}

#[tokio::test]
async fn while_nats_is_unreachable_the_outbox_keeps_its_rows() {
    let fixture = Fixture::new().await;
    fixture.store_event("o-1", 1).await;
    let unreachable = Bus::connect("nats://127.0.0.1:1", fixture.bus.namespace.clone(), 1)
        .await
        .unwrap();
    tokio::spawn(
        OutboxRelay::new(fixture.pool.clone(), unreachable, "orders").run(fixture.stop.subscribe()),
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(fixture.unpublished().await, 1);
    fixture.cleanup().await;
}

/// Refuses everything until `fixed` is set.
struct Broken {
    fixed: std::sync::atomic::AtomicBool,
}

#[async_trait::async_trait]
impl EventHandler for Broken {
    async fn handle(
        &self,
        event: &ReceivedEvent,
        tx: &mut PgConnection,
    ) -> Result<(), HandlerError> {
        if !self.fixed.load(Ordering::SeqCst) {
            return Err(HandlerError::Permanent("a bug refuses this event".into()));
        }
        sqlx::query("INSERT INTO applied (aggregate_id, sequence) VALUES ($1, $2)")
            .bind(&event.envelope.aggregate_id)
            .bind(event.envelope.sequence)
            .execute(&mut *tx)
            .await?;
        Ok(())
    }
}

#[tokio::test]
async fn a_dead_letter_replayed_after_the_fix_is_applied_once_and_closed() {
    let fixture = Fixture::new().await;
    let handler = Arc::new(Broken {
        fixed: std::sync::atomic::AtomicBool::new(false),
    });
    fixture.consume(handler.clone(), 12);
    let id = Uuid::new_v4().to_string();
    fixture.publish(&id, 1).await;
    let mut parked = Vec::new();
    for _ in 0..200 {
        parked = brigade_nats::dead_letters::list(&fixture.pool, false)
            .await
            .unwrap();
        if !parked.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(parked.len(), 1);
    let letter = parked.remove(0);
    let refused =
        brigade_nats::dead_letters::replay(&fixture.pool, letter.id, handler.as_ref()).await;
    assert!(refused.is_err(), "still broken: the replay changes nothing");
    assert_eq!(fixture.applied(&id).await, Vec::<i64>::new());

    handler.fixed.store(true, Ordering::SeqCst);
    brigade_nats::dead_letters::replay(&fixture.pool, letter.id, handler.as_ref())
        .await
        .unwrap();
    assert_eq!(fixture.applied(&id).await, [1]);
    assert!(brigade_nats::dead_letters::list(&fixture.pool, false)
        .await
        .unwrap()
        .is_empty());
    let again =
        brigade_nats::dead_letters::replay(&fixture.pool, letter.id, handler.as_ref()).await;
    assert!(again.is_err(), "a replayed letter is closed");
    fixture.cleanup().await;
}

/// A member of a consumer group in the tests below: records what it applies under its own
/// name; when `flaky`, fails every attempt of the first delivery of a sequence 1 (so that
/// only a redelivery applies it); can never apply `poison`.
struct Member {
    name: &'static str,
    flaky: bool,
    poison: Option<i64>,
}

#[async_trait::async_trait]
impl EventHandler for Member {
    async fn handle(
        &self,
        event: &ReceivedEvent,
        tx: &mut PgConnection,
    ) -> Result<(), HandlerError> {
        let envelope = &event.envelope;
        if Some(envelope.sequence) == self.poison {
            return Err(HandlerError::Permanent(format!(
                "{} can never apply this",
                self.name
            )));
        }
        if self.flaky && envelope.sequence == 1 && event.delivered == 1 {
            return Err(HandlerError::Transient("the database blinked".into()));
        }
        sqlx::query("INSERT INTO applied_by (member, aggregate_id, sequence) VALUES ($1, $2, $3)")
            .bind(self.name)
            .bind(&envelope.aggregate_id)
            .bind(envelope.sequence)
            .execute(&mut *tx)
            .await?;
        Ok(())
    }
}

fn member(
    name: &'static str,
    aggregate_types: Vec<&'static str>,
    flaky: bool,
    poison: Option<i64>,
) -> Subscription {
    Subscription {
        name: name.into(),
        source: "orders",
        aggregate_types,
        handler: Arc::new(Member {
            name,
            flaky,
            poison,
        }),
    }
}

impl Fixture {
    async fn with_members() -> Self {
        let fixture = Self::new().await;
        sqlx::query("CREATE TABLE applied_by (member text, aggregate_id text, sequence bigint)")
            .execute(&fixture.pool)
            .await
            .unwrap();
        fixture
    }

    /// Waits until `member` has applied `expected` of `aggregate_id`, then checks it applied
    /// exactly that, in that order.
    async fn wait_for_member(&self, member: &str, aggregate_id: &str, expected: &[i64]) {
        let applied = || async {
            sqlx::query_scalar::<_, i64>(
                "SELECT sequence FROM applied_by WHERE member = $1 AND aggregate_id = $2 ORDER BY ctid",
            )
            .bind(member)
            .bind(aggregate_id)
            .fetch_all(&self.pool)
            .await
            .unwrap()
        };
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        while applied().await.len() < expected.len() && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(applied().await, expected, "{member} of {aggregate_id}");
    }

    /// The durable consumers of the orders stream, by name.
    async fn consumer_names(&self) -> Vec<String> {
        let stream = self.bus.ensure_stream("orders").await.unwrap();
        let mut names: Vec<String> = stream
            .consumers()
            .map(|info| info.unwrap().name)
            .collect()
            .await;
        names.sort();
        names
    }
}

/// Three subscriptions to one stream, linked by the aggregate types they have in common, on
/// one JetStream consumer: every member applies each of its events once and in order, whether
/// the messages come one by one or queue up, and a member is given only its aggregate types
/// (also a message that is no event: parked for those that read its subject's type). Every
/// message is settled: none waits out its acknowledgement deadline.
#[tokio::test]
async fn a_group_applies_each_event_once_for_each_member_that_reads_it() {
    let fixture = Fixture::with_members().await;
    let early = Uuid::new_v4().to_string();
    // Queued before the group starts, so that its lanes take them in runs.
    for sequence in [2, 1, 3, 2] {
        fixture.publish(&early, sequence).await;
    }
    let groups = brigade_nats::Group::sharing_events(
        "svc",
        vec![
            member("tracking", vec!["order"], false, None),
            member("menu", vec!["dish"], false, None),
            member("notify", vec!["order", "dish"], false, None),
        ],
    );
    assert_eq!(groups.len(), 1);
    assert_eq!(groups[0].durable(), "svc-on-orders-dish-order");
    let runner = ConsumerRunner::group(
        fixture.pool.clone(),
        fixture.bus.clone(),
        groups.into_iter().next().unwrap(),
    );
    let notify = runner.stats_of("notify").unwrap();
    tokio::spawn(runner.run(fixture.stop.subscribe()));
    // One by one, with a duplicate and an event ahead of its predecessor.
    let late = Uuid::new_v4().to_string();
    for sequence in [1, 3, 2, 1] {
        fixture.publish(&late, sequence).await;
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    // The second event of an aggregate nobody has a checkpoint of yet, then its first.
    let fresh = Uuid::new_v4().to_string();
    fixture.publish(&fresh, 2).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    fixture.publish(&fresh, 1).await;
    let dish = Uuid::new_v4().to_string();
    fixture.publish_as("dish", &dish, 1).await;
    // No event at all, on an order's subject: parked for the members that read orders.
    fixture.publish_raw(b"{ not an envelope".to_vec()).await;
    // An aggregate type no member reads (a server before NATS 2.10 delivers it all the same).
    fixture.publish_as("stock", &dish, 1).await;
    for id in [&early, &late] {
        fixture.wait_for_member("tracking", id, &[1, 2, 3]).await;
        fixture.wait_for_member("notify", id, &[1, 2, 3]).await;
        fixture.wait_for_member("menu", id, &[]).await;
    }
    fixture.wait_for_member("tracking", &fresh, &[1, 2]).await;
    fixture.wait_for_member("notify", &fresh, &[1, 2]).await;
    fixture.wait_for_member("menu", &dish, &[1]).await;
    fixture.wait_for_member("notify", &dish, &[1]).await;
    fixture.wait_for_member("tracking", &dish, &[]).await;
    assert_eq!(notify.applied.load(Ordering::SeqCst), 9);
    assert_eq!(fixture.consumer_names().await, ["svc-on-orders-dish-order"]);
    let checkpoints: Vec<(String, i64)> = sqlx::query_as(
        "SELECT consumer, last_sequence FROM consumer_checkpoints WHERE aggregate_id = $1 ORDER BY consumer",
    )
    .bind(&late)
    .fetch_all(&fixture.pool)
    .await
    .unwrap();
    assert_eq!(
        checkpoints,
        [("notify".to_owned(), 3), ("tracking".to_owned(), 3)]
    );
    let parked: Vec<String> =
        sqlx::query_scalar("SELECT consumer FROM dead_letters ORDER BY consumer")
            .fetch_all(&fixture.pool)
            .await
            .unwrap();
    assert_eq!(parked, ["notify", "tracking"]);
    let stream = fixture.bus.ensure_stream("orders").await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let mut info = stream
        .consumer_info("svc-on-orders-dish-order")
        .await
        .unwrap();
    while (info.num_pending, info.num_ack_pending) != (0, 0)
        && tokio::time::Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(100)).await;
        info = stream
            .consumer_info("svc-on-orders-dish-order")
            .await
            .unwrap();
    }
    assert_eq!((info.num_pending, info.num_ack_pending), (0, 0));
    fixture.cleanup().await;
}

/// A member that cannot apply an event is retried or parked on its own: the other members of
/// its group apply the event once, and the dead letter names the member at fault. Both when
/// messages come one by one and when they queue up (a run's failure rolls the run back).
#[tokio::test]
async fn in_a_group_a_member_that_fails_is_retried_or_parked_alone() {
    let fixture = Fixture::with_members().await;
    let queued = Uuid::new_v4().to_string();
    for sequence in 1..=3 {
        fixture.publish(&queued, sequence).await;
    }
    let group = brigade_nats::Group::sharing_events(
        "svc",
        vec![
            member("picky", vec!["order"], false, Some(2)),
            member("flaky", vec!["order"], true, None),
            member("steady", vec!["order"], false, None),
        ],
    )
    .remove(0);
    let runner = ConsumerRunner::group(fixture.pool.clone(), fixture.bus.clone(), group);
    let (flaky, steady) = (
        runner.stats_of("flaky").unwrap(),
        runner.stats_of("steady").unwrap(),
    );
    tokio::spawn(runner.run(fixture.stop.subscribe()));
    fixture.wait_for_member("flaky", &queued, &[1, 2, 3]).await;
    let single = Uuid::new_v4().to_string();
    for sequence in 1..=3 {
        fixture.publish(&single, sequence).await;
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    for id in [&queued, &single] {
        fixture.wait_for_member("picky", id, &[1, 3]).await;
        fixture.wait_for_member("flaky", id, &[1, 2, 3]).await;
        fixture.wait_for_member("steady", id, &[1, 2, 3]).await;
    }
    let parked: Vec<(String, String, Option<i64>)> = sqlx::query_as(
        "SELECT consumer, aggregate_id, sequence FROM dead_letters ORDER BY aggregate_id",
    )
    .fetch_all(&fixture.pool)
    .await
    .unwrap();
    let mut expected = vec![
        ("picky".to_owned(), queued.clone(), Some(2)),
        ("picky".to_owned(), single.clone(), Some(2)),
    ];
    expected.sort_by(|a, b| a.1.cmp(&b.1));
    assert_eq!(parked, expected);
    // Each first event came again for `flaky`, which then applied it: the others had it
    // already (and so had they the events that waited behind it for `flaky`).
    assert_eq!(flaky.retries.load(Ordering::SeqCst), 2);
    assert_eq!(steady.applied.load(Ordering::SeqCst), 6);
    assert!(steady.duplicates.load(Ordering::SeqCst) >= 2);
    fixture.cleanup().await;
}

/// A service upgraded to groups finds its subscriptions' own consumers on the server: the
/// group's consumer replaces them, and what they had applied is not applied again.
#[tokio::test]
async fn a_group_replaces_its_members_own_consumers_and_applies_nothing_twice() {
    let fixture = Fixture::with_members().await;
    let id = Uuid::new_v4().to_string();
    let (stop_alone, stopped) = watch::channel(false);
    let alone = tokio::spawn(
        ConsumerRunner::new(
            fixture.pool.clone(),
            fixture.bus.clone(),
            member("tracking", vec!["order"], false, None),
        )
        .run(stopped),
    );
    fixture.publish(&id, 1).await;
    fixture.wait_for_member("tracking", &id, &[1]).await;
    stop_alone.send(true).unwrap();
    alone.await.unwrap();
    assert_eq!(fixture.consumer_names().await, ["tracking"]);

    let group = brigade_nats::Group::sharing_events(
        "svc",
        vec![
            member("tracking", vec!["order"], false, None),
            member("notify", vec!["order"], false, None),
        ],
    )
    .remove(0);
    tokio::spawn(
        ConsumerRunner::group(fixture.pool.clone(), fixture.bus.clone(), group)
            .run(fixture.stop.subscribe()),
    );
    fixture.publish(&id, 2).await;
    fixture.wait_for_member("tracking", &id, &[1, 2]).await;
    fixture.wait_for_member("notify", &id, &[1, 2]).await;
    assert_eq!(fixture.consumer_names().await, ["svc-on-orders-order"]);
    fixture.cleanup().await;
}
