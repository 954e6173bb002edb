//! The identity service (port 3001): accounts, sign-in sessions and the keys that sign access
//! tokens for all four services.
//!
//! The map of the service, top to bottom:
//! - commands: the [`Account`](brigade_domain::identity::Account) aggregate, stored by
//!   postgres-es in the `identity` database and published on `identity.account.*`
//!   (delivery turns a registered courier into a courier profile; every service refuses the
//!   tokens of a disabled account);
//! - [`accounts`]: sign-up with a race-free unique e-mail, staff, the first manager, profiles;
//! - [`sessions`]: sign-in (throttled by [`throttle`], passwords by [`passwords`]), refresh
//!   with rotation and reuse detection, sign-out;
//! - [`keys`]: the Ed25519 signing keys, persisted and rotatable, published as a JWKS;
//! - [`schema`]: the tables beside the event store (credentials, e-mail claims, sessions, keys);
//! - [`api`]: the HTTP endpoints; [`errors`]: their problem+json answers.
//!
//! Identity consumes no other service's events.
#![forbid(unsafe_code)]

pub mod accounts;
pub mod api;
pub mod config;
pub mod errors;
pub mod identity;
pub mod keys;
pub mod passwords;
pub mod schema;
pub mod sessions;
pub mod throttle;

use std::time::Duration;

use brigade_nats::schema::EVENT_STORE;
use brigade_platform::{Service, ServiceName, Settings};
use tokio::sync::watch;
use uuid::Uuid;

pub use config::IdentityConfig;
pub use errors::IdentityError;
pub use identity::Identity;
pub use keys::rotate_signing_key;
pub use schema::MIGRATIONS;

/// How often each replica re-reads the signing keys and the disabled accounts, so a rotation
/// or a disabling made by another replica or the CLI takes effect everywhere.
const RELOAD_EVERY: Duration = Duration::from_secs(15);
/// How often expired sessions and login counters are cleaned up.
const PURGE_EVERY: Duration = Duration::from_secs(3600);

/// Starts the identity service and serves until SIGTERM. Creates the first manager from
/// `BRIGADE_MANAGER_EMAIL` / `BRIGADE_MANAGER_PASSWORD` when no account uses that e-mail yet.
///
/// # Errors
/// When PostgreSQL cannot be reached at start-up, the first manager's settings are invalid, or
/// the port is taken.
pub async fn run(settings: Settings) -> anyhow::Result<()> {
    let config = IdentityConfig::from_settings(&settings);
    let mut service = Service::start(ServiceName::Identity, settings, &[MIGRATIONS]).await?;
    let identity = Identity::open(service.pool.clone(), config).await?;
    create_first_manager(&identity).await?;
    service.run_relay();
    let upkeep = identity.clone();
    service.spawn(move |shutdown| keep_up(upkeep, shutdown));
    let verifier = identity.verifier();
    service
        .serve(
            api::api(&identity),
            vec![
                ("/.well-known/jwks.json", "Public keys (JWKS)"),
                ("/me", "Your profile (signed in)"),
            ],
            verifier,
        )
        .await
}

/// The identity service's OpenAPI document (committed as `openapi/identity.json`).
#[must_use]
pub fn openapi_document() -> String {
    brigade_platform::runtime::openapi_document(
        ServiceName::Identity,
        api::api(&Identity::detached()),
    )
}

async fn create_first_manager(identity: &Identity) -> anyhow::Result<()> {
    let Some((email, password)) = identity.config().first_manager.clone() else {
        return Ok(());
    };
    match identity.ensure_manager(&email, &password, "Manager").await {
        Ok(Some(account_id)) => {
            tracing::info!(%account_id, "created the first manager from the settings")
        }
        Ok(None) => tracing::debug!("the configured manager already exists"),
        Err(error) => anyhow::bail!("BRIGADE_MANAGER_EMAIL / BRIGADE_MANAGER_PASSWORD: {error}"),
    }
    Ok(())
}

/// Creates a manager account (for `brigade` on the command line). Opens and migrates the
/// identity database itself; the identity service need not run.
///
/// # Errors
/// An invalid e-mail, name or password, an e-mail already in use
/// ([`IdentityError::EmailTaken`]), or a database error.
pub async fn create_manager(
    settings: &Settings,
    email: &str,
    password: &str,
    name: &str,
) -> Result<Uuid, IdentityError> {
    let pool = brigade_platform::database::open(
        &settings.database_url,
        &settings.database_name(ServiceName::Identity),
        2,
        &[EVENT_STORE, MIGRATIONS],
    )
    .await?;
    let identity = Identity::open(pool.clone(), IdentityConfig::from_settings(settings)).await?;
    let new = accounts::NewAccount {
        email: email.to_owned(),
        password: password.to_owned(),
        name: name.to_owned(),
        phone: None,
    };
    let created = identity
        .register_staff(
            new,
            brigade_domain::Role::Manager,
            brigade_domain::Actor::System,
        )
        .await;
    pool.close().await;
    created
}

/// Background upkeep of one replica: reload keys and revocations, purge stale rows.
async fn keep_up(identity: Identity, mut shutdown: watch::Receiver<bool>) {
    let mut reload = tokio::time::interval(RELOAD_EVERY);
    let mut purge = tokio::time::interval(PURGE_EVERY);
    let lookback = identity.config().access_token_ttl * 2;
    loop {
        tokio::select! {
            _ = shutdown.changed() => return,
            _ = reload.tick() => {
                if let Err(error) = identity.keys().reload().await {
                    tracing::warn!(%error, "reloading the signing keys failed");
                }
                if let Err(error) = identity.load_revocations(lookback).await {
                    tracing::warn!(%error, "reloading disabled accounts failed");
                }
            }
            _ = purge.tick() => {
                if let Err(error) = sessions::purge_old_sessions(&identity.pool).await {
                    tracing::warn!(%error, "purging old sessions failed");
                }
                if let Err(error) = identity.throttle.purge().await {
                    tracing::warn!(%error, "purging login counters failed");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn the_openapi_document_describes_every_endpoint_and_the_bearer_scheme() {
        let document = super::openapi_document();
        for path in [
            "/auth/register",
            "/auth/login",
            "/auth/refresh",
            "/auth/logout",
            "/me",
            "/staff",
            "/.well-known/jwks.json",
            "BearerAuth",
        ] {
            assert!(document.contains(path), "{path} is missing");
        }
    }
}
