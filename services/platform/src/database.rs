//! Each service owns its database: it creates it if missing and migrates it at start-up.

use std::time::Duration;

use brigade_nats::{migrate, Migration};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions, PgSslMode};
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
    let server = without_tls_on_loopback(server, server_url);
    create_if_missing(&server, database).await?;
    let options = server
        .clone()
        .database(database)
        .log_statements(tracing::log::LevelFilter::Trace);
    let pool = PgPoolOptions::new()
        .max_connections(pool_size)
        .acquire_timeout(Duration::from_secs(5))
        // sqlx pings every connection it hands out by default: one more round trip to
        // PostgreSQL before every query or transaction (12 % of a service's CPU under load,
        // see BENCHMARKS.md). A connection that died meanwhile (a database restart) fails its
        // next statement instead, which every caller already treats as a transient error.
        .test_before_acquire(false)
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

/// Plain TCP to a PostgreSQL on this very machine, unless an `sslmode` is asked for (in the
/// URL or `PGSSLMODE`):
/// sqlx's default (`prefer`) negotiates TLS whenever the server offers it, and encrypting
/// loopback traffic protects nothing while costing both sides a quarter of their CPU per
/// query (BENCHMARKS.md). A remote server keeps `prefer`, or whatever the URL says.
fn without_tls_on_loopback(server: PgConnectOptions, server_url: &str) -> PgConnectOptions {
    let host = server.get_host();
    let loopback = host == "localhost"
        || host.starts_with('/')
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    let chosen = server_url.contains("sslmode") || std::env::var_os("PGSSLMODE").is_some();
    if loopback && !chosen {
        server.ssl_mode(PgSslMode::Disable)
    } else {
        server
    }
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
