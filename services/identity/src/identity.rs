//! [`Identity`]: the identity service's use cases over its event store and tables. The HTTP
//! handlers in [`crate::api`] parse, authorize and call one method here; the CLI calls
//! [`crate::create_manager`], which goes through the same path.
//!
//! The methods live beside the data they touch: sign-up, profile and staff in
//! [`crate::accounts`]; sign-in, refresh and sign-out in [`crate::sessions`].

use std::collections::HashMap;
use std::time::Duration;

use brigade_domain::identity::{Account, AccountEvent};
use brigade_domain::Actor;
use brigade_nats::store::{event_store, CommandMetadata, EventStore};
use brigade_platform::auth::TokenVerifier;
use sqlx::PgPool;
use uuid::Uuid;

use crate::config::IdentityConfig;
use crate::errors::IdentityError;
use crate::keys::KeyRing;
use crate::passwords::Passwords;
use crate::throttle::LoginThrottle;

/// How far back start-up looks for disabled accounts whose tokens must be refused: longer than
/// any access token lives.
const REVOCATION_LOOKBACK: Duration = Duration::from_secs(24 * 3600);

/// The identity service's state. Cheap to clone.
#[derive(Clone)]
pub struct Identity {
    pub(crate) pool: PgPool,
    pub(crate) accounts: EventStore<Account>,
    pub(crate) keys: KeyRing,
    pub(crate) verifier: TokenVerifier,
    pub(crate) passwords: Passwords,
    pub(crate) throttle: LoginThrottle,
    pub(crate) config: IdentityConfig,
}

impl Identity {
    /// Opens the identity service on a migrated database: loads (or creates) the signing keys
    /// and the revocations of recently disabled accounts.
    ///
    /// # Errors
    /// A database error, or a stored key that is not valid.
    pub async fn open(pool: PgPool, config: IdentityConfig) -> anyhow::Result<Self> {
        let keys = KeyRing::open(
            pool.clone(),
            config.access_token_ttl,
            config.key_activation_delay,
        )
        .await?;
        let verifier = TokenVerifier::local(keys.clone(), &config.audience);
        let identity = Self {
            accounts: event_store::<Account>(pool.clone(), ()),
            keys,
            verifier,
            passwords: Passwords::new().await?,
            throttle: LoginThrottle::new(pool.clone(), config.login_limits),
            pool,
            config,
        };
        identity.load_revocations(REVOCATION_LOOKBACK).await?;
        Ok(identity)
    }

    /// An identity service that touches no database, for describing the API
    /// ([`crate::openapi_document`]).
    #[must_use]
    pub fn detached() -> Self {
        let pool = brigade_platform::system::lazy_pool();
        let config = IdentityConfig::default();
        let keys = KeyRing::detached(pool.clone());
        Self {
            accounts: event_store::<Account>(pool.clone(), ()),
            verifier: TokenVerifier::local(keys.clone(), &config.audience),
            keys,
            passwords: Passwords::detached(),
            throttle: LoginThrottle::new(pool.clone(), config.login_limits),
            pool,
            config,
        }
    }

    /// The verifier of this service's own endpoints (`GET /me`, `POST /staff`, ...).
    #[must_use]
    pub fn verifier(&self) -> TokenVerifier {
        self.verifier.clone()
    }

    #[must_use]
    pub fn keys(&self) -> &KeyRing {
        &self.keys
    }

    #[must_use]
    pub fn config(&self) -> &IdentityConfig {
        &self.config
    }

    /// Teaches the verifier every account disabled in the last `lookback`, from the event store
    /// itself: identity replicas need no bus to agree on revocations.
    ///
    /// # Errors
    /// A database error.
    pub async fn load_revocations(&self, lookback: Duration) -> anyhow::Result<()> {
        let rows: Vec<(String, serde_json::Value)> = sqlx::query_as(
            "SELECT aggregate_id, payload::jsonb FROM events
              WHERE aggregate_type = 'account' AND event_type = 'AccountDisabled'
                AND recorded_at > now() - make_interval(secs => $1)",
        )
        .bind(lookback.as_secs_f64())
        .fetch_all(&self.pool)
        .await?;
        for (aggregate_id, payload) in rows {
            let (Ok(account_id), Ok(AccountEvent::AccountDisabled { at, .. })) = (
                aggregate_id.parse::<Uuid>(),
                serde_json::from_value::<AccountEvent>(payload),
            ) else {
                continue;
            };
            self.verifier.revoke_before(account_id, at);
        }
        Ok(())
    }

    /// Runs one command on an account, recording who asked.
    pub(crate) async fn execute(
        &self,
        account_id: Uuid,
        command: brigade_domain::identity::AccountCommand,
        by: Actor,
    ) -> Result<(), IdentityError> {
        self.accounts
            .execute_with_metadata(&account_id.to_string(), command, metadata(by, account_id))
            .await?;
        Ok(())
    }

    /// The account as its events left it (the default, unregistered account if it has none).
    pub(crate) async fn load(&self, account_id: Uuid) -> Result<Account, IdentityError> {
        let loaded =
            brigade_nats::store::load::<Account>(&self.pool, &account_id.to_string()).await?;
        Ok(loaded.aggregate)
    }
}

/// Event metadata: the actor, and the account as the correlation id (an account's events form
/// one story, as an order's do).
fn metadata(by: Actor, account_id: Uuid) -> HashMap<String, String> {
    let actor = serde_json::to_string(&by).unwrap_or_else(|_| r#"{"kind":"system"}"#.to_owned());
    CommandMetadata::by(actor)
        .correlation(account_id.to_string())
        .into_map()
}
