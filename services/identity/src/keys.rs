//! The Ed25519 key pairs that sign access tokens: kept in the identity database so that every
//! replica signs with the same key and a restart keeps it, and rotatable without logging anyone
//! out.
//!
//! Rotation creates a new key that is published in the JWKS at once but signs only after the
//! activation delay (by default twice the verifiers' refetch interval): a verifier that fetched
//! the keys recently, and may not fetch again yet, already holds the new key when it meets the
//! first token signed with it. The key it replaces stops signing at that moment and stays
//! published for one access-token lifetime (plus the verifiers' clock leeway), so the tokens it
//! signed stay valid until they expire.
//!
//! The private keys are stored as plain 32-byte seeds: the identity database is as sensitive as
//! the password hashes it already holds. Encrypting them under a key from the environment would
//! be the next step for a deployment that backs that database up elsewhere.

use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use brigade_platform::auth::{
    sign_access_token, AccessClaims, Jwk, Jwks, KeySource, CLOCK_LEEWAY_SECS, REFETCH_INTERVAL,
};
use chrono::{DateTime, Utc};
use ed25519_dalek::{SigningKey, VerifyingKey};
use futures::future::BoxFuture;
use rand::RngCore as _;
use sha2::{Digest as _, Sha256};
use sqlx::PgPool;

/// Serializes key creation across replicas (see `pg_advisory_xact_lock`).
const KEY_LOCK: i64 = 3_001_001;

/// How long a rotated-in key is published before it signs.
pub const KEY_ACTIVATION_DELAY: Duration = Duration::from_secs(REFETCH_INTERVAL.as_secs() * 2);

/// The signing key and the published public keys, reloaded from the database. Cheap to clone.
#[derive(Clone)]
pub struct KeyRing {
    pool: PgPool,
    /// How long a retired key stays published: the access-token lifetime plus leeway.
    publish_retired_for: Duration,
    activation_delay: Duration,
    state: Arc<RwLock<RingState>>,
}

struct RingState {
    /// Published keys that sign now or will, newest activation first.
    signers: Vec<Signer>,
    published: Jwks,
}

struct Signer {
    kid: String,
    key: SigningKey,
    activates_at: DateTime<Utc>,
    retired_at: Option<DateTime<Utc>>,
}

impl RingState {
    /// The key that signs at `now`: the most recently activated one not retired yet (or, if a
    /// clock disagrees, the most recently activated one).
    fn signer(&self, now: DateTime<Utc>) -> Option<&Signer> {
        let activated = || self.signers.iter().filter(|s| s.activates_at <= now);
        activated()
            .find(|s| s.retired_at.is_none_or(|retired| retired > now))
            .or_else(|| activated().next())
            .or_else(|| self.signers.last())
    }
}

impl KeyRing {
    /// Loads the keys, creating the first key pair if the database has none.
    ///
    /// # Errors
    /// A database error, or a stored key that is not a valid Ed25519 key.
    pub async fn open(
        pool: PgPool,
        access_token_ttl: Duration,
        activation_delay: Duration,
    ) -> anyhow::Result<Self> {
        ensure_signing_key(&pool).await?;
        let publish_retired_for =
            access_token_ttl + Duration::from_secs(CLOCK_LEEWAY_SECS.unsigned_abs() * 2);
        let state = load(&pool, publish_retired_for).await?;
        Ok(Self {
            pool,
            publish_retired_for,
            activation_delay,
            state: Arc::new(RwLock::new(state)),
        })
    }

    /// A ring with a throwaway in-memory key and a pool that never connects, for describing
    /// the API (`openapi_document`) without a database.
    #[must_use]
    pub fn detached(pool: PgPool) -> Self {
        let mut seed = [0u8; 32];
        rand::rng().fill_bytes(&mut seed);
        let key = SigningKey::from_bytes(&seed);
        let kid = key_id(&key.verifying_key());
        let published = Jwks {
            keys: vec![Jwk::ed25519(kid.clone(), &key.verifying_key())],
        };
        let signer = Signer {
            kid,
            key,
            activates_at: DateTime::<Utc>::MIN_UTC,
            retired_at: None,
        };
        Self {
            pool,
            publish_retired_for: Duration::ZERO,
            activation_delay: Duration::ZERO,
            state: Arc::new(RwLock::new(RingState {
                signers: vec![signer],
                published,
            })),
        }
    }

    /// Re-reads the keys, picking up a rotation made by another replica or the CLI.
    ///
    /// # Errors
    /// A database error, or a stored key that is not a valid Ed25519 key.
    pub async fn reload(&self) -> anyhow::Result<Jwks> {
        let state = load(&self.pool, self.publish_retired_for).await?;
        let published = state.published.clone();
        *self.state.write().unwrap_or_else(PoisonError::into_inner) = state;
        Ok(published)
    }

    /// Signs an access token with the key active now.
    #[must_use]
    pub fn sign(&self, claims: &AccessClaims) -> String {
        let state = self.state.read().unwrap_or_else(PoisonError::into_inner);
        let signer = state
            .signer(Utc::now())
            .expect("a loaded ring holds at least one signing key");
        sign_access_token(&signer.key, &signer.kid, claims)
    }

    /// The id of the key that signs now.
    #[must_use]
    pub fn current_kid(&self) -> String {
        let state = self.state.read().unwrap_or_else(PoisonError::into_inner);
        state
            .signer(Utc::now())
            .map(|s| s.kid.clone())
            .unwrap_or_default()
    }

    /// Publishes a new key that starts signing after the activation delay, when the current
    /// key retires; returns the new key id.
    ///
    /// # Errors
    /// A database error.
    pub async fn rotate(&self) -> anyhow::Result<String> {
        let kid = rotate_signing_key(&self.pool, self.activation_delay).await?;
        self.reload().await?;
        Ok(kid)
    }
}

impl KeySource for KeyRing {
    /// The identity service's own verifier asks here when it meets an unknown key id: another
    /// replica may have rotated.
    fn fetch(&self) -> BoxFuture<'_, Result<Jwks, String>> {
        Box::pin(async move { self.reload().await.map_err(|e| e.to_string()) })
    }

    /// The keys as last loaded (at start-up, every reload, and right after a rotation here).
    fn snapshot(&self) -> Option<Jwks> {
        let state = self.state.read().unwrap_or_else(PoisonError::into_inner);
        Some(state.published.clone())
    }
}

/// Publishes a new signing key that takes over after `activation_delay` (for `brigade` and
/// `POST /keys/rotate`; [`KEY_ACTIVATION_DELAY`] unless verifiers are known to have the keys).
/// Running replicas pick the new key up at their next reload, well within the delay.
///
/// # Errors
/// A database error.
pub async fn rotate_signing_key(
    pool: &PgPool,
    activation_delay: Duration,
) -> anyhow::Result<String> {
    let mut tx = pool.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(KEY_LOCK)
        .execute(&mut *tx)
        .await?;
    let activates_at: DateTime<Utc> =
        sqlx::query_scalar("SELECT now() + make_interval(secs => $1)")
            .bind(activation_delay.as_secs_f64())
            .fetch_one(&mut *tx)
            .await?;
    sqlx::query("UPDATE signing_keys SET retired_at = $1 WHERE retired_at IS NULL")
        .bind(activates_at)
        .execute(&mut *tx)
        .await?;
    let kid = insert_new_key(&mut tx, activates_at).await?;
    tx.commit().await?;
    tracing::info!(kid, %activates_at, "rotated the access-token signing key");
    Ok(kid)
}

async fn ensure_signing_key(pool: &PgPool) -> anyhow::Result<()> {
    let mut tx = pool.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(KEY_LOCK)
        .execute(&mut *tx)
        .await?;
    let active: i64 =
        sqlx::query_scalar("SELECT count(*) FROM signing_keys WHERE retired_at IS NULL")
            .fetch_one(&mut *tx)
            .await?;
    if active == 0 {
        let now: DateTime<Utc> = sqlx::query_scalar("SELECT now()")
            .fetch_one(&mut *tx)
            .await?;
        let kid = insert_new_key(&mut tx, now).await?;
        tracing::info!(kid, "created the first access-token signing key");
    }
    tx.commit().await?;
    Ok(())
}

async fn insert_new_key(
    tx: &mut sqlx::PgConnection,
    activates_at: DateTime<Utc>,
) -> anyhow::Result<String> {
    let mut seed = [0u8; 32];
    rand::rng().fill_bytes(&mut seed);
    let signing = SigningKey::from_bytes(&seed);
    let public = signing.verifying_key();
    let kid = key_id(&public);
    sqlx::query(
        "INSERT INTO signing_keys (kid, secret_key, public_key, activates_at) VALUES ($1, $2, $3, $4)",
    )
    .bind(&kid)
    .bind(seed.as_slice())
    .bind(public.as_bytes().as_slice())
    .bind(activates_at)
        .execute(tx)
        .await?;
    Ok(kid)
}

#[derive(sqlx::FromRow)]
struct StoredKey {
    kid: String,
    secret_key: Vec<u8>,
    public_key: Vec<u8>,
    activates_at: DateTime<Utc>,
    retired_at: Option<DateTime<Utc>>,
}

async fn load(pool: &PgPool, publish_retired_for: Duration) -> anyhow::Result<RingState> {
    let rows: Vec<StoredKey> = sqlx::query_as(
        "SELECT kid, secret_key, public_key, activates_at, retired_at
           FROM signing_keys
          WHERE retired_at IS NULL OR retired_at > now() - make_interval(secs => $1)
          ORDER BY activates_at DESC, kid",
    )
    .bind(publish_retired_for.as_secs_f64())
    .fetch_all(pool)
    .await?;
    let mut signers = Vec::new();
    let mut published = Jwks::default();
    for row in rows {
        let kid = row.kid;
        let public: [u8; 32] = row
            .public_key
            .try_into()
            .map_err(|_| anyhow::anyhow!("signing key {kid}: public key is not 32 bytes"))?;
        let public = VerifyingKey::from_bytes(&public)
            .map_err(|e| anyhow::anyhow!("signing key {kid}: {e}"))?;
        let seed: [u8; 32] = row
            .secret_key
            .try_into()
            .map_err(|_| anyhow::anyhow!("signing key {kid}: secret is not 32 bytes"))?;
        published.keys.push(Jwk::ed25519(kid.clone(), &public));
        signers.push(Signer {
            kid,
            key: SigningKey::from_bytes(&seed),
            activates_at: row.activates_at,
            retired_at: row.retired_at,
        });
    }
    anyhow::ensure!(!signers.is_empty(), "no signing key");
    Ok(RingState { signers, published })
}

/// The RFC 7638 thumbprint of an Ed25519 public key: a key id that names the key itself.
#[must_use]
pub fn key_id(public: &VerifyingKey) -> String {
    let x = URL_SAFE_NO_PAD.encode(public.as_bytes());
    let canonical = format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{x}"}}"#);
    URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_id_is_the_rfc_7638_thumbprint() {
        // RFC 8037 appendix A.3: the thumbprint of the example Ed25519 key.
        let x = URL_SAFE_NO_PAD
            .decode("11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo")
            .expect("base64url");
        let public = VerifyingKey::from_bytes(&x.try_into().expect("32 bytes")).expect("a key");
        assert_eq!(
            key_id(&public),
            "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"
        );
    }
}
