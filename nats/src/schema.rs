//! Database schema of the bus, and the small migration runner every service uses.
//!
//! postgres-es stores events in `events`; its inserts name their columns, so the extra columns
//! added here (`event_id`, `global_position`, `recorded_at`) fill themselves. The outbox row is
//! written by an `AFTER INSERT` trigger, inside postgres-es's own transaction: an event is
//! committed together with the row that announces it, or not at all. Publishing right after the
//! commit from the process instead would lose the event on a crash in between.

use sqlx::PgPool;

/// One named, append-only schema change. Names are applied once per database, in list order.
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    pub name: &'static str,
    pub sql: &'static str,
}

/// Applies the migrations not yet applied, under a transaction-scoped advisory lock so that
/// replicas starting together never race each other.
///
/// # Errors
/// Any database error; a failing migration rolls back whole.
pub async fn migrate(pool: &PgPool, migrations: &[Migration]) -> Result<(), sqlx::Error> {
    // Owned copies: holding a borrowed slice across the awaits below makes the future
    // not `Send` (a higher-ranked lifetime limitation of async fns with sqlx executors).
    let migrations: Vec<Migration> = migrations.to_vec();
    let mut tx = pool.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock(7163402019)")
        .execute(&mut *tx)
        .await?;
    sqlx::query(
        "CREATE TABLE IF NOT EXISTS brigade_migrations (
            name text PRIMARY KEY,
            applied_at timestamptz NOT NULL DEFAULT now())",
    )
    .execute(&mut *tx)
    .await?;
    for migration in migrations {
        let done: Option<String> =
            sqlx::query_scalar("SELECT name FROM brigade_migrations WHERE name = $1")
                .bind(migration.name)
                .fetch_optional(&mut *tx)
                .await?;
        if done.is_some() {
            continue;
        }
        sqlx::Executor::execute(&mut *tx, sqlx::raw_sql(migration.sql)).await?;
        sqlx::query("INSERT INTO brigade_migrations (name) VALUES ($1)")
            .bind(migration.name)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await
}

/// The event store, its outbox, and the consumers' bookkeeping: every service applies these.
pub const EVENT_STORE: &[Migration] = &[
    Migration {
        name: "0001_event_store",
        sql: r"
CREATE TABLE events (
    aggregate_type  text        NOT NULL,
    aggregate_id    text        NOT NULL,
    sequence        bigint      NOT NULL CHECK (sequence >= 0),
    event_type      text        NOT NULL,
    event_version   text        NOT NULL,
    payload         json        NOT NULL,
    metadata        json        NOT NULL,
    event_id        uuid        NOT NULL DEFAULT gen_random_uuid(),
    global_position bigserial   NOT NULL,
    recorded_at     timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (aggregate_type, aggregate_id, sequence)
);
CREATE UNIQUE INDEX events_global_position ON events (global_position);
CREATE INDEX events_recorded_at ON events (recorded_at);

-- postgres-es reads this table only for snapshot stores, which Brigade does not use
-- (they apply events twice in cqrs-es 0.5); it exists so the repository never meets a missing table.
CREATE TABLE snapshots (
    aggregate_type   text   NOT NULL,
    aggregate_id     text   NOT NULL,
    last_sequence    bigint NOT NULL CHECK (last_sequence >= 0),
    current_snapshot bigint NOT NULL CHECK (current_snapshot >= 0),
    payload          json   NOT NULL,
    PRIMARY KEY (aggregate_type, aggregate_id, last_sequence)
);

CREATE TABLE outbox (
    id             bigserial   PRIMARY KEY,
    event_id       uuid        NOT NULL,
    aggregate_type text        NOT NULL,
    aggregate_id   text        NOT NULL,
    sequence       bigint      NOT NULL,
    event_type     text        NOT NULL,
    event_version  text        NOT NULL,
    payload        json        NOT NULL,
    metadata       json        NOT NULL,
    recorded_at    timestamptz NOT NULL,
    published_at   timestamptz
);
CREATE INDEX outbox_pending ON outbox (id) WHERE published_at IS NULL;
CREATE INDEX outbox_published_at ON outbox (published_at) WHERE published_at IS NOT NULL;

CREATE FUNCTION brigade_capture_outbox() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO outbox (event_id, aggregate_type, aggregate_id, sequence, event_type,
                        event_version, payload, metadata, recorded_at)
    VALUES (NEW.event_id, NEW.aggregate_type, NEW.aggregate_id, NEW.sequence, NEW.event_type,
            NEW.event_version, NEW.payload, NEW.metadata, NEW.recorded_at);
    PERFORM pg_notify('brigade_outbox', '');
    RETURN NULL;
END $$;
CREATE TRIGGER events_to_outbox AFTER INSERT ON events
    FOR EACH ROW EXECUTE FUNCTION brigade_capture_outbox();

-- Per consumer and aggregate, the last sequence applied: a redelivery is recognised and
-- acknowledged without effect, an event arriving before its predecessor waits for it.
CREATE TABLE consumer_checkpoints (
    consumer       text        NOT NULL,
    aggregate_type text        NOT NULL,
    aggregate_id   text        NOT NULL,
    last_sequence  bigint      NOT NULL,
    updated_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, aggregate_type, aggregate_id)
);

-- Messages that can never be applied, or failed too often, parked with their error.
CREATE TABLE dead_letters (
    id             bigserial   PRIMARY KEY,
    consumer       text        NOT NULL,
    subject        text        NOT NULL,
    message_id     text,
    aggregate_type text,
    aggregate_id   text,
    sequence       bigint,
    payload        bytea       NOT NULL,
    error          text        NOT NULL,
    attempts       bigint      NOT NULL,
    parked_at      timestamptz NOT NULL DEFAULT now(),
    replayed_at    timestamptz,
    discarded_at   timestamptz
);
CREATE INDEX dead_letters_open ON dead_letters (parked_at) WHERE replayed_at IS NULL AND discarded_at IS NULL;

-- Side effects that must happen once per message (notifications, webhooks).
CREATE TABLE processed_messages (
    consumer     text        NOT NULL,
    message_id   text        NOT NULL,
    processed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, message_id)
);
",
    },
    Migration {
        // Whether the transaction that wrote a row commits durably: a consumer's does not (its
        // commit does not wait for the WAL flush), and the relay flushes before publishing such a
        // row (`crate::durable`). The setting is read as the row is written; a transaction turns
        // it off, if at all, as it begins.
        name: "0002_outbox_durable",
        sql: r"
ALTER TABLE outbox ADD COLUMN durable boolean NOT NULL DEFAULT true;

CREATE OR REPLACE FUNCTION brigade_capture_outbox() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO outbox (event_id, aggregate_type, aggregate_id, sequence, event_type,
                        event_version, payload, metadata, recorded_at, durable)
    VALUES (NEW.event_id, NEW.aggregate_type, NEW.aggregate_id, NEW.sequence, NEW.event_type,
            NEW.event_version, NEW.payload, NEW.metadata, NEW.recorded_at,
            current_setting('synchronous_commit') <> 'off');
    PERFORM pg_notify('brigade_outbox', '');
    RETURN NULL;
END $$;
",
    },
];
