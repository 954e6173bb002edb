//! Operator commands: OpenAPI export, dead letters, outbox.

use std::path::Path;

use brigade_platform::{ServiceName, Settings};
use clap::Subcommand;
use sqlx::PgPool;

#[derive(Subcommand)]
pub enum DeadLetterCommand {
    /// Open dead letters of every service (or one), oldest first.
    List {
        #[arg(long)]
        service: Option<ServiceName>,
        /// Include replayed and discarded ones.
        #[arg(long)]
        all: bool,
    },
    /// One dead letter with its message.
    Show { service: ServiceName, id: i64 },
    /// Apply one again with its consumer's handler, after the cause was fixed.
    Replay { service: ServiceName, id: i64 },
    /// Mark one as handled without applying it.
    Discard { service: ServiceName, id: i64 },
}

#[derive(Subcommand)]
pub enum OutboxCommand {
    /// Events stored but not yet published, per service.
    Status,
    /// Publish again every event recorded since a time (after a NATS disaster); consumers
    /// recognise what they already applied.
    Republish {
        service: ServiceName,
        /// RFC 3339 time, e.g. 2026-11-27T08:00:00Z.
        #[arg(long)]
        since: chrono::DateTime<chrono::Utc>,
    },
}

/// The OpenAPI document of every service, in a stable order.
#[must_use]
pub fn openapi_documents() -> Vec<(ServiceName, String)> {
    vec![
        (ServiceName::Identity, brigade_identity::openapi_document()),
        (ServiceName::Orders, brigade_orders::openapi_document()),
        (ServiceName::Kitchen, brigade_kitchen::openapi_document()),
        (ServiceName::Delivery, brigade_delivery::openapi_document()),
    ]
}

pub async fn write_openapi(out: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(out)?;
    for (service, document) in openapi_documents() {
        let path = out.join(format!("{}.json", service.as_str()));
        std::fs::write(&path, document + "\n")?;
        println!("wrote {}", path.display());
    }
    Ok(())
}

async fn pool(settings: &Settings, service: ServiceName) -> anyhow::Result<PgPool> {
    PgPool::connect(&settings.database_url_for(service))
        .await
        .map_err(|e| anyhow::anyhow!("cannot open the {} database: {e}", service.as_str()))
}

pub async fn dead_letters(command: DeadLetterCommand, settings: &Settings) -> anyhow::Result<()> {
    match command {
        DeadLetterCommand::List { service, all } => {
            let services = service.map_or_else(|| ServiceName::ALL.to_vec(), |s| vec![s]);
            println!(
                "{:<9} {:>5}  {:<20} {:<40} error",
                "service", "id", "consumer", "message"
            );
            for service in services {
                let pool = pool(settings, service).await?;
                for letter in brigade_nats::dead_letters::list(&pool, all).await? {
                    println!(
                        "{:<9} {:>5}  {:<20} {:<40} {}",
                        service.as_str(),
                        letter.id,
                        letter.consumer,
                        letter.message_id.as_deref().unwrap_or(&letter.subject),
                        letter.error
                    );
                }
            }
        }
        DeadLetterCommand::Show { service, id } => {
            let pool = pool(settings, service).await?;
            let letter = brigade_nats::dead_letters::get(&pool, id)
                .await?
                .ok_or_else(|| anyhow::anyhow!("no dead letter #{id} in {}", service.as_str()))?;
            println!("{}", serde_json::to_string_pretty(&letter)?);
            println!("message: {}", letter.payload_text());
        }
        DeadLetterCommand::Replay { service, id } => {
            let pool = pool(settings, service).await?;
            let letter = brigade_nats::dead_letters::get(&pool, id)
                .await?
                .ok_or_else(|| anyhow::anyhow!("no dead letter #{id} in {}", service.as_str()))?;
            let consumers = match service {
                ServiceName::Identity => Vec::new(),
                ServiceName::Orders => brigade_orders::consumers(&pool),
                ServiceName::Kitchen => brigade_kitchen::consumers(),
                ServiceName::Delivery => brigade_delivery::consumers(&pool),
            };
            let subscription = consumers
                .into_iter()
                .find(|s| s.name == letter.consumer)
                .ok_or_else(|| {
                    anyhow::anyhow!("{} has no consumer {:?}", service.as_str(), letter.consumer)
                })?;
            brigade_nats::dead_letters::replay(&pool, id, subscription.handler.as_ref()).await?;
            println!("replayed dead letter #{id} through {}", letter.consumer);
        }
        DeadLetterCommand::Discard { service, id } => {
            let pool = pool(settings, service).await?;
            if brigade_nats::dead_letters::discard(&pool, id).await? {
                println!("discarded dead letter #{id}");
            } else {
                anyhow::bail!("no open dead letter #{id} in {}", service.as_str());
            }
        }
    }
    Ok(())
}

pub async fn outbox(command: OutboxCommand, settings: &Settings) -> anyhow::Result<()> {
    match command {
        OutboxCommand::Republish { service, since } => {
            let pool = pool(settings, service).await?;
            let done = sqlx::query("UPDATE outbox SET published_at = NULL WHERE recorded_at >= $1 AND published_at IS NOT NULL")
                .bind(since)
                .execute(&pool)
                .await?;
            println!(
                "{} events of {} since {since} will be published again by its relay",
                done.rows_affected(),
                service.as_str()
            );
        }
        OutboxCommand::Status => {
            println!(
                "{:<9} {:>10} {:>10}  oldest pending",
                "service", "pending", "published"
            );
            for service in ServiceName::ALL {
                let pool = pool(settings, service).await?;
                let (pending, published, oldest): (
                    i64,
                    i64,
                    Option<chrono::DateTime<chrono::Utc>>,
                ) = sqlx::query_as(
                    "SELECT count(*) FILTER (WHERE published_at IS NULL),
                            count(*) FILTER (WHERE published_at IS NOT NULL),
                            min(recorded_at) FILTER (WHERE published_at IS NULL)
                     FROM outbox",
                )
                .fetch_one(&pool)
                .await?;
                println!(
                    "{:<9} {pending:>10} {published:>10}  {}",
                    service.as_str(),
                    oldest.map_or_else(|| "-".to_owned(), |t| t.to_rfc3339())
                );
            }
        }
    }
    Ok(())
}
