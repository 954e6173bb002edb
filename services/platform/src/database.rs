//! Each service owns its database: it creates it if missing and migrates it at start-up.

use std::time::Duration;

use brigade_nats::{migrate, Migration};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, Connection, PgConnection, PgPool};

/// Creates the database if it does not exist, then opens a pool on it and applies the
/// migrations in order.
///
/// # Errors
/// When PostgreSQL cannot be reached or a migration fails; the message says which.
pub async fn open(
    server_url: &str,
    database: &str,
    pool_size: u32,
    migrations: &[&[Migration]],
) -> anyhow::Result<PgPool> {
    let server: PgConnectOptions = server_url.parse().map_err(|e| {
        anyhow::anyhow!("BRIGADE_DATABASE_URL {server_url:?} is not a PostgreSQL URL: {e}")
    })?;
    create_if_missing(&server, database).await?;
    let options = server
        .clone()
        .database(database)
        .log_statements(tracing::log::LevelFilter::Trace);
    let pool = PgPoolOptions::new()
        .max_connections(pool_size)
        .acquire_timeout(Duration::from_secs(5))
        .connect_with(options)
        .await
        .map_err(|e| anyhow::anyhow!("cannot open database {database}: {e}"))?;
    for list in migrations {
        migrate(&pool, list)
            .await
            .map_err(|e| anyhow::anyhow!("migrating database {database}: {e}"))?;
    }
    Ok(pool)
}

async fn create_if_missing(server: &PgConnectOptions, database: &str) -> anyhow::Result<()> {
    let mut conn = PgConnection::connect_with(&server.clone().database("postgres"))
        .await
        .map_err(|e| {
            anyhow::anyhow!(
                "cannot reach PostgreSQL at {}:{} ({e}); start it, or set BRIGADE_DATABASE_URL",
                server.get_host(),
                server.get_port()
            )
        })?;
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
            .bind(database)
            .fetch_one(&mut conn)
            .await?;
    if !exists {
        // Identifiers cannot be bound; the name was checked to be [a-z0-9_] by the settings.
        let created = sqlx::query(&format!("CREATE DATABASE \"{database}\""))
            .execute(&mut conn)
            .await;
        match created {
            Ok(_) => tracing::info!(database, "created database"),
            // Another replica created it at the same moment.
            Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("42P04") => {}
            Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("23505") => {}
            Err(e) => return Err(anyhow::anyhow!("cannot create database {database}: {e}")),
        }
    }
    conn.close().await?;
    Ok(())
}
