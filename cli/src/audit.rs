//! `brigade audit`: the whole story of one order, account or courier across the four services'
//! event stores, in time order, with who did what, and what caused what.
//!
//! Read straight from each service's `events` table (the source of truth), never from a read
//! model: an audit must show what happened, not what a projection made of it.

use brigade_platform::{ServiceName, Settings};
use chrono::{DateTime, Utc};
use clap::{Args, Subcommand};
use serde_json::{json, Value};
use sqlx::PgPool;
use uuid::Uuid;

#[derive(Subcommand)]
pub enum AuditCommand {
    /// Every event of one order's journey: order, ticket, delivery, and what they caused.
    Order {
        id: Uuid,
        #[command(flatten)]
        filter: Filter,
    },
    /// Every event of one account, and every event it caused as an actor.
    Account {
        id: Uuid,
        #[command(flatten)]
        filter: Filter,
    },
    /// Every event of one courier, and the deliveries it carried.
    Courier {
        id: Uuid,
        #[command(flatten)]
        filter: Filter,
    },
}

#[derive(Args)]
pub struct Filter {
    /// Only events at or after this time (RFC 3339).
    #[arg(long)]
    since: Option<DateTime<Utc>>,
    /// Only events before this time (RFC 3339).
    #[arg(long)]
    until: Option<DateTime<Utc>>,
    /// Only events of these types (repeatable): `--type OrderPlaced --type TicketReady`.
    #[arg(long = "type")]
    types: Vec<String>,
    /// One JSON object per line instead of a table.
    #[arg(long)]
    json: bool,
}

/// One event as stored.
#[derive(sqlx::FromRow)]
struct Row {
    recorded_at: DateTime<Utc>,
    aggregate_type: String,
    aggregate_id: String,
    sequence: i64,
    event_type: String,
    payload: Value,
    metadata: Value,
}

/// One event in the audit trail.
struct Entry {
    service: ServiceName,
    recorded_at: DateTime<Utc>,
    aggregate_type: String,
    aggregate_id: String,
    sequence: i64,
    event_type: String,
    payload: Value,
    metadata: Value,
}

/// Runs an audit and prints it.
///
/// # Errors
/// When a database cannot be read.
pub async fn run(command: AuditCommand, settings: &Settings) -> anyhow::Result<()> {
    let (condition, id, filter) = match &command {
        // The order's own aggregates share its id; everything they caused carries it as correlation.
        AuditCommand::Order { id, filter } => (
            "(aggregate_id = $1 OR metadata->>'correlation_id' = $1)",
            id,
            filter,
        ),
        AuditCommand::Account { id, filter } => (
            "(aggregate_id = $1 OR (metadata->>'actor')::json->>'accountId' = $1)",
            id,
            filter,
        ),
        AuditCommand::Courier { id, filter } => (
            "(aggregate_id = $1 OR payload::text LIKE '%' || $1 || '%')",
            id,
            filter,
        ),
    };
    let mut entries = Vec::new();
    for service in ServiceName::ALL {
        let Ok(pool) = PgPool::connect(&settings.database_url_for(service)).await else {
            eprintln!(
                "note: no {} database at {}; skipped",
                service.as_str(),
                settings.database_url
            );
            continue;
        };
        let sql = format!(
            "SELECT recorded_at, aggregate_type, aggregate_id, sequence, event_type, payload, metadata
             FROM events WHERE {condition}
               AND ($2::timestamptz IS NULL OR recorded_at >= $2)
               AND ($3::timestamptz IS NULL OR recorded_at < $3)
               AND (cardinality($4::text[]) = 0 OR event_type = ANY($4))
             ORDER BY recorded_at, sequence"
        );
        let rows: Vec<Row> = sqlx::query_as(&sql)
            .bind(id.to_string())
            .bind(filter.since)
            .bind(filter.until)
            .bind(&filter.types)
            .fetch_all(&pool)
            .await?;
        entries.extend(rows.into_iter().map(|row| Entry {
            service,
            recorded_at: row.recorded_at,
            aggregate_type: row.aggregate_type,
            aggregate_id: row.aggregate_id,
            sequence: row.sequence,
            event_type: row.event_type,
            payload: row.payload,
            metadata: row.metadata,
        }));
        pool.close().await;
    }
    entries.sort_by(|a, b| {
        a.recorded_at
            .cmp(&b.recorded_at)
            .then(a.sequence.cmp(&b.sequence))
    });
    if filter.json {
        for entry in &entries {
            println!("{}", line_json(entry));
        }
    } else {
        print_table(&entries);
    }
    Ok(())
}

fn actor(metadata: &Value) -> (String, String) {
    let actor: Value = metadata["actor"]
        .as_str()
        .and_then(|s| serde_json::from_str(s).ok())
        .unwrap_or(Value::Null);
    match actor["kind"].as_str() {
        Some("user") => (
            actor["role"].as_str().unwrap_or("?").to_owned(),
            actor["accountId"].as_str().unwrap_or("?").to_owned(),
        ),
        Some("system") => ("system".to_owned(), String::new()),
        _ => ("unknown".to_owned(), String::new()),
    }
}

fn line_json(entry: &Entry) -> Value {
    let (role, account) = actor(&entry.metadata);
    json!({
        "at": entry.recorded_at,
        "service": entry.service.as_str(),
        "aggregateType": entry.aggregate_type,
        "aggregateId": entry.aggregate_id,
        "sequence": entry.sequence,
        "event": entry.event_type,
        "actor": {"role": role, "accountId": (!account.is_empty()).then_some(account)},
        "correlationId": entry.metadata["correlation_id"],
        "causationId": entry.metadata["causation_id"],
        "payload": entry.payload,
    })
}

fn print_table(entries: &[Entry]) {
    println!(
        "{:<30} {:<9} {:<24} {:<22} {:<10} {:<36} caused by",
        "at", "service", "aggregate", "event", "actor", "account"
    );
    for entry in entries {
        let (role, account) = actor(&entry.metadata);
        let aggregate = format!("{}#{}", entry.aggregate_type, entry.sequence);
        println!(
            "{:<30} {:<9} {:<24} {:<22} {:<10} {:<36} {}",
            entry.recorded_at.to_rfc3339(),
            entry.service.as_str(),
            aggregate,
            entry.event_type,
            role,
            account,
            entry.metadata["causation_id"].as_str().unwrap_or("-"),
        );
    }
    println!("{} events", entries.len());
}
