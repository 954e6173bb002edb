//! `brigade projections`: list the read models, see how far behind each is, rebuild one from
//! the event store while its service keeps serving.

use std::time::Duration;

use brigade_platform::{ServiceName, Settings};
use brigade_projections::rebuild::{self, ProjectionSpec};
use clap::Subcommand;
use indicatif::{ProgressBar, ProgressStyle};
use sqlx::PgPool;

#[derive(Subcommand)]
pub enum ProjectionCommand {
    /// Every read model, with its service and tables.
    List,
    /// For each read model: aggregates it has not caught up with, and its last update.
    Status,
    /// Rebuild one read model from its service's event store (build beside, then swap).
    Rebuild {
        /// The projection's name, as `list` shows it.
        name: String,
    },
}

/// Every projection of the system.
#[must_use]
pub fn all() -> Vec<ProjectionSpec> {
    let mut specs = vec![brigade_projections::kitchen_queue::spec()];
    specs.extend(brigade_orders::projections());
    specs.extend(brigade_delivery::projections());
    specs
}

async fn pool(settings: &Settings, service: &str) -> anyhow::Result<PgPool> {
    let service: ServiceName = service.parse().map_err(anyhow::Error::msg)?;
    PgPool::connect(&settings.database_url_for(service))
        .await
        .map_err(|e| anyhow::anyhow!("cannot open the {} database: {e}", service.as_str()))
}

/// Runs a projections command.
///
/// # Errors
/// An unknown projection, an unreachable database, a failed rebuild.
pub async fn run(command: ProjectionCommand, settings: &Settings) -> anyhow::Result<()> {
    match command {
        ProjectionCommand::List => {
            println!("{:<20} {:<9} tables", "projection", "service");
            for spec in all() {
                println!(
                    "{:<20} {:<9} {}",
                    spec.name,
                    spec.service,
                    spec.tables.join(", ")
                );
            }
        }
        ProjectionCommand::Status => {
            println!(
                "{:<20} {:<9} {:>8}  last applied",
                "projection", "service", "behind"
            );
            for spec in all() {
                let pool = pool(settings, spec.service).await?;
                let types: Vec<String> = spec
                    .aggregate_types
                    .iter()
                    .map(ToString::to_string)
                    .collect();
                let (behind, last): (i64, Option<chrono::DateTime<chrono::Utc>>) = sqlx::query_as(
                    "SELECT count(*) FILTER (WHERE coalesce(c.last_sequence, 0) < e.last),
                            max(c.updated_at)
                     FROM (SELECT aggregate_type, aggregate_id, max(sequence) AS last FROM events
                           WHERE aggregate_type = ANY($2) GROUP BY 1, 2) e
                     LEFT JOIN consumer_checkpoints c ON c.consumer = $1
                          AND c.aggregate_type = e.aggregate_type AND c.aggregate_id = e.aggregate_id",
                )
                .bind(spec.name)
                .bind(&types)
                .fetch_one(&pool)
                .await?;
                println!(
                    "{:<20} {:<9} {behind:>8}  {}",
                    spec.name,
                    spec.service,
                    last.map_or_else(|| "-".to_owned(), |t| t.to_rfc3339())
                );
            }
        }
        ProjectionCommand::Rebuild { name } => {
            let spec = all().into_iter().find(|s| s.name == name).ok_or_else(|| {
                anyhow::anyhow!("no projection {name:?}; see `brigade projections list`")
            })?;
            let pool = pool(settings, spec.service).await?;
            let total: i64 =
                sqlx::query_scalar("SELECT count(*) FROM events WHERE aggregate_type = ANY($1)")
                    .bind(
                        spec.aggregate_types
                            .iter()
                            .map(ToString::to_string)
                            .collect::<Vec<_>>(),
                    )
                    .fetch_one(&pool)
                    .await?;
            let bar = ProgressBar::new(u64::try_from(total).unwrap_or(0));
            bar.set_style(
                ProgressStyle::with_template(
                    "{msg} [{bar:40}] {pos}/{len} events ({per_sec}, {eta})",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
            );
            bar.set_message(format!("rebuilding {}", spec.name));
            bar.enable_steady_tick(Duration::from_millis(200));
            let report = rebuild::rebuild(&pool, &spec, |n| bar.set_position(n)).await?;
            bar.finish_and_clear();
            println!(
                "rebuilt {} from {} events in {:.2?} ({:.0} events/s); {} applied during the swap",
                spec.name,
                report.events,
                report.elapsed,
                report.rate(),
                report.caught_up
            );
        }
    }
    Ok(())
}
