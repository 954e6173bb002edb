//! The auth guard: verifies access tokens locally and checks roles per endpoint.
//!
//! The identity service signs short-lived access tokens (JWTs) with an Ed25519 key and publishes
//! the public keys at `/.well-known/jwks.json`. Every service verifies tokens on its own with a
//! [`TokenVerifier`], so no request waits on identity: keys are fetched once, cached, and
//! refetched only when a token names a key id (`kid`) the cache does not know (at most once per
//! [`REFETCH_INTERVAL`], so forged `kid`s cannot turn the guard into a flood of requests).
//!
//! Endpoints take a [`BearerAuth`] parameter, which yields the [`Caller`] (account id and role),
//! then state who may call them with [`Caller::require`]; object-level checks (a customer reads
//! only their own orders) compare `caller.account_id` with the object's owner.
//!
//! What is refused, and why it is safe to refuse it this way:
//! - any algorithm but `EdDSA`: the token header is never trusted to choose how it is checked, so
//!   `alg: none` and "HS256 signed with the public key as secret" fail before any key is touched;
//! - a signature that is not a strict Ed25519 signature from a published key;
//! - a token not meant for Brigade (`aud`), not issued by identity (`iss`), expired (`exp`), or
//!   issued in the future (`iat`), with [`CLOCK_LEEWAY_SECS`] of tolerance for clock skew;
//! - a token of an account disabled after it was issued (see [`TokenVerifier::revoke_before`]).
//!
//! One audience, [`AUDIENCE`] (`"brigade"`), serves all four services: a token is a statement
//! about who the caller is and which role they hold, which every service needs in full, and the
//! gateway forwards the same token to whichever service a page calls. Per-service audiences
//! would only pay off if a service had to hold tokens it must not replay elsewhere; none does.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use chrono::{DateTime, Utc};
use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
use futures::future::BoxFuture;
use poem::http::{header, StatusCode};
use poem::{IntoResponse, Request, RequestBody, Response};
use poem_openapi::registry::{MetaSecurityScheme, Registry};
use poem_openapi::{ApiExtractor, ApiExtractorType, ExtractParamOptions};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use brigade_domain::Actor;
pub use brigade_domain::Role;

use crate::problem::Problem;

/// The audience of every Brigade access token.
pub const AUDIENCE: &str = "brigade";
/// The issuer of every Brigade access token.
pub const ISSUER: &str = "brigade-identity";
/// The only signature algorithm accepted (Ed25519, RFC 8037).
pub const ALGORITHM: &str = "EdDSA";
/// Where the identity service publishes its public keys.
pub const JWKS_PATH: &str = "/.well-known/jwks.json";
/// Tolerated clock difference between the identity service and a verifying service.
pub const CLOCK_LEEWAY_SECS: i64 = 30;
/// Least time between two key fetches prompted by unknown key ids.
pub const REFETCH_INTERVAL: Duration = Duration::from_secs(10);
/// Cached keys are refetched after this long even when every `kid` is known, so a key withdrawn
/// from the JWKS stops being trusted within the hour.
pub const MAX_KEY_CACHE_AGE: Duration = Duration::from_secs(3600);
/// Longest token looked at; real ones are a few hundred bytes.
const MAX_TOKEN_BYTES: usize = 4096;

/// Who is calling: the account behind a verified access token, and its role when it was issued.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub account_id: Uuid,
    pub role: Role,
}

impl Caller {
    /// Succeeds when the caller holds one of `roles`.
    ///
    /// # Errors
    /// [`AuthError::Forbidden`] (403) otherwise.
    pub fn require(&self, roles: &[Role]) -> Result<(), AuthError> {
        if roles.contains(&self.role) {
            Ok(())
        } else {
            Err(AuthError::Forbidden)
        }
    }

    /// Whether the caller holds `role`.
    #[must_use]
    pub fn is(&self, role: Role) -> bool {
        self.role == role
    }

    /// The caller as the actor recorded in event metadata and commands.
    #[must_use]
    pub fn actor(&self) -> Actor {
        Actor::user(self.account_id, self.role)
    }

    /// The metadata of a command this caller issues over HTTP: the caller as its actor,
    /// `correlation` as its journey (the order's id for everything an order causes), this
    /// request as its cause.
    ///
    /// # Errors
    /// 500 should the actor not serialize (it always does).
    pub fn command_metadata(
        &self,
        correlation: impl Into<String>,
    ) -> Result<brigade_nats::CommandMetadata, crate::problem::Problem> {
        let actor = serde_json::to_string(&self.actor())
            .map_err(|e| crate::problem::Problem::internal(&e))?;
        Ok(brigade_nats::CommandMetadata::by(actor)
            .correlation(correlation)
            .causation(format!("http:{}", Uuid::new_v4())))
    }
}

/// Why a request was not let through. Rendered as problem+json: 401 for every token problem
/// (with `WWW-Authenticate: Bearer`), 403 for a valid token lacking the role, 503 when no key
/// could be fetched to check a token with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("an access token is required (Authorization: Bearer <token>)")]
    MissingToken,
    /// The token is malformed, forged, signed by an unknown key or with another algorithm, or
    /// meant for someone else. The reason is logged, not shown: it would only help a forger.
    #[error("the access token is not valid")]
    InvalidToken(&'static str),
    #[error("the access token has expired; refresh it")]
    Expired,
    #[error("the access token was revoked")]
    Revoked,
    #[error("this role may not do this")]
    Forbidden,
    #[error("the keys that verify access tokens cannot be fetched right now")]
    KeysUnavailable,
}

impl AuthError {
    /// The stable problem code (`https://brigade.dev/errors/{code}`).
    #[must_use]
    pub fn code(&self) -> &'static str {
        match self {
            AuthError::MissingToken => "unauthorized",
            AuthError::InvalidToken(_) => "invalid-token",
            AuthError::Expired => "token-expired",
            AuthError::Revoked => "token-revoked",
            AuthError::Forbidden => "forbidden",
            AuthError::KeysUnavailable => "auth-keys-unavailable",
        }
    }

    #[must_use]
    pub fn status(&self) -> StatusCode {
        match self {
            AuthError::Forbidden => StatusCode::FORBIDDEN,
            AuthError::KeysUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::UNAUTHORIZED,
        }
    }
}

impl From<AuthError> for Problem {
    fn from(error: AuthError) -> Self {
        Problem::new(error.status(), error.code(), error.to_string())
    }
}

impl poem::error::ResponseError for AuthError {
    fn status(&self) -> StatusCode {
        AuthError::status(self)
    }

    fn as_response(&self) -> Response {
        let mut response = Problem::from(self.clone()).into_response();
        if self.status() == StatusCode::UNAUTHORIZED {
            // RFC 6750 §3: tell the client which scheme to use, and that the token failed.
            let challenge = match self {
                AuthError::MissingToken => "Bearer realm=\"brigade\"",
                _ => "Bearer realm=\"brigade\", error=\"invalid_token\"",
            };
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static(challenge),
            );
        }
        response
    }
}

/// The claims of a Brigade access token. The key id travels in the header (`kid`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessClaims {
    /// The account id.
    pub sub: Uuid,
    pub role: Role,
    pub iss: String,
    pub aud: String,
    /// Issued at, in seconds since the Unix epoch.
    pub iat: i64,
    /// Expires at, in seconds since the Unix epoch.
    pub exp: i64,
}

impl AccessClaims {
    /// Claims for `account_id` in `role`, valid for `ttl` from `now`.
    #[must_use]
    pub fn new(account_id: Uuid, role: Role, now: DateTime<Utc>, ttl: Duration) -> Self {
        let iat = now.timestamp();
        Self {
            sub: account_id,
            role,
            iss: ISSUER.to_owned(),
            aud: AUDIENCE.to_owned(),
            iat,
            exp: iat.saturating_add(i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX)),
        }
    }
}

#[derive(Serialize)]
struct SignedHeader<'a> {
    alg: &'a str,
    typ: &'a str,
    kid: &'a str,
}

/// Signs `claims` as a compact JWS with `key`, naming it `kid`. Used by the identity service,
/// and by other services' tests to mint tokens for a [`Jwks`] they verify against.
#[must_use]
pub fn sign_access_token(key: &SigningKey, kid: &str, claims: &AccessClaims) -> String {
    let header = SignedHeader {
        alg: ALGORITHM,
        typ: "JWT",
        kid,
    };
    let signing_input = format!("{}.{}", encode_json(&header), encode_json(claims));
    let signature = key.sign(signing_input.as_bytes());
    format!(
        "{signing_input}.{}",
        URL_SAFE_NO_PAD.encode(signature.to_bytes())
    )
}

fn encode_json(value: &impl Serialize) -> String {
    let json = serde_json::to_vec(value).expect("plain structs of strings and numbers serialize");
    URL_SAFE_NO_PAD.encode(json)
}

/// A JSON Web Key Set of Ed25519 public keys (RFC 7517, RFC 8037), as served at [`JWKS_PATH`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Jwks {
    pub keys: Vec<Jwk>,
}

/// One public key of a [`Jwks`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Jwk {
    /// `"OKP"`.
    pub kty: String,
    /// `"Ed25519"`.
    pub crv: String,
    /// The public key, base64url without padding.
    pub x: String,
    pub kid: String,
    /// `"EdDSA"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alg: Option<String>,
    /// `"sig"`.
    #[serde(rename = "use", default, skip_serializing_if = "Option::is_none")]
    pub key_use: Option<String>,
}

impl Jwk {
    /// The JWK of an Ed25519 public key.
    #[must_use]
    pub fn ed25519(kid: impl Into<String>, key: &VerifyingKey) -> Self {
        Self {
            kty: "OKP".to_owned(),
            crv: "Ed25519".to_owned(),
            x: URL_SAFE_NO_PAD.encode(key.as_bytes()),
            kid: kid.into(),
            alg: Some(ALGORITHM.to_owned()),
            key_use: Some("sig".to_owned()),
        }
    }

    /// The Ed25519 key, or `None` for a key of another type, use or algorithm (such keys are
    /// skipped, never guessed at).
    #[must_use]
    pub fn verifying_key(&self) -> Option<VerifyingKey> {
        let usable = self.kty == "OKP"
            && self.crv == "Ed25519"
            && self.alg.as_deref().is_none_or(|alg| alg == ALGORITHM)
            && self.key_use.as_deref().is_none_or(|u| u == "sig");
        if !usable {
            return None;
        }
        let bytes: [u8; 32] = URL_SAFE_NO_PAD.decode(&self.x).ok()?.try_into().ok()?;
        VerifyingKey::from_bytes(&bytes).ok()
    }
}

impl Jwks {
    /// The usable keys, by key id.
    fn verifying_keys(&self) -> HashMap<String, VerifyingKey> {
        self.keys
            .iter()
            .filter_map(|jwk| Some((jwk.kid.clone(), jwk.verifying_key()?)))
            .collect()
    }
}

/// Where a [`TokenVerifier`] gets the public keys from: the identity service over HTTP
/// ([`TokenVerifier::remote`]), the identity service's own key store, or a fixed set in tests.
pub trait KeySource: Send + Sync + 'static {
    /// The current key set.
    fn fetch(&self) -> BoxFuture<'_, Result<Jwks, String>>;

    /// Keys already in memory, consulted on an unknown `kid` before any (rate-limited) fetch:
    /// an in-process source kept up to date by its owner answers here at no cost.
    fn snapshot(&self) -> Option<Jwks> {
        None
    }
}

impl KeySource for Jwks {
    fn fetch(&self) -> BoxFuture<'_, Result<Jwks, String>> {
        let keys = self.clone();
        Box::pin(async move { Ok(keys) })
    }
}

/// The identity service's JWKS endpoint.
struct RemoteJwks {
    client: reqwest::Client,
    url: String,
}

impl KeySource for RemoteJwks {
    fn fetch(&self) -> BoxFuture<'_, Result<Jwks, String>> {
        Box::pin(async move {
            let response = self
                .client
                .get(&self.url)
                .send()
                .await
                .and_then(reqwest::Response::error_for_status)
                .map_err(|e| format!("fetching {}: {e}", self.url))?;
            response
                .json::<Jwks>()
                .await
                .map_err(|e| format!("reading {}: {e}", self.url))
        })
    }
}

/// Verifies access tokens and remembers which accounts were disabled. Cheap to clone: clones
/// share the key cache and the revocations.
#[derive(Clone)]
pub struct TokenVerifier {
    inner: Arc<Verifier>,
}

struct Verifier {
    audience: String,
    source: Box<dyn KeySource>,
    keys: RwLock<KeyCache>,
    /// Held while fetching, so concurrent requests with a new `kid` fetch once.
    fetching: tokio::sync::Mutex<()>,
    /// Per account, tokens issued at or before this Unix second are refused.
    not_before: RwLock<HashMap<Uuid, i64>>,
}

#[derive(Default)]
struct KeyCache {
    keys: HashMap<String, VerifyingKey>,
    fetched_at: Option<Instant>,
    last_attempt: Option<Instant>,
}

impl KeyCache {
    fn fresh_key(&self, kid: &str) -> Option<VerifyingKey> {
        let fresh = self
            .fetched_at
            .is_some_and(|at| at.elapsed() < MAX_KEY_CACHE_AGE);
        fresh.then(|| self.keys.get(kid).copied()).flatten()
    }

    fn may_fetch(&self) -> bool {
        self.last_attempt
            .is_none_or(|at| at.elapsed() >= REFETCH_INTERVAL)
    }
}

impl TokenVerifier {
    /// Verifies EdDSA tokens for `audience` with the keys published at
    /// `{identity_url}/.well-known/jwks.json`, fetched on first use and whenever a token names an
    /// unknown key (rate-limited).
    #[must_use]
    pub fn remote(identity_url: &str, audience: &str) -> Self {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
            .unwrap_or_default();
        let url = format!("{}{JWKS_PATH}", identity_url.trim_end_matches('/'));
        Self::with_source(RemoteJwks { client, url }, audience)
    }

    /// Verifies with keys from an in-process source: the identity service's own key store, or
    /// a fixed [`Jwks`] in tests.
    #[must_use]
    pub fn local(keys: impl KeySource, audience: &str) -> Self {
        Self::with_source(keys, audience)
    }

    fn with_source(source: impl KeySource, audience: &str) -> Self {
        Self {
            inner: Arc::new(Verifier {
                audience: audience.to_owned(),
                source: Box::new(source),
                keys: RwLock::default(),
                fetching: tokio::sync::Mutex::new(()),
                not_before: RwLock::default(),
            }),
        }
    }

    /// Refuses from now on every token of `account_id` issued at or before `at` (the account was
    /// disabled at `at`). Repeated calls keep the latest time.
    pub fn revoke_before(&self, account_id: Uuid, at: DateTime<Utc>) {
        let mut not_before = self
            .inner
            .not_before
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let at = at.timestamp();
        let entry = not_before.entry(account_id).or_insert(at);
        *entry = (*entry).max(at);
    }

    /// Verifies `token` and returns who it names.
    ///
    /// # Errors
    /// [`AuthError::InvalidToken`], [`AuthError::Expired`] or [`AuthError::Revoked`] for a token
    /// that must be refused; [`AuthError::KeysUnavailable`] when no key could be fetched to check it.
    pub async fn verify(&self, token: &str) -> Result<Caller, AuthError> {
        self.verify_at(token, Utc::now()).await
    }

    async fn verify_at(&self, token: &str, now: DateTime<Utc>) -> Result<Caller, AuthError> {
        let parsed = ParsedToken::parse(token)?;
        let key = self.key(&parsed.kid).await?;
        key.verify_strict(parsed.signing_input.as_bytes(), &parsed.signature)
            .map_err(|_| AuthError::InvalidToken("bad signature"))?;
        let claims: AccessClaims = serde_json::from_slice(&parsed.claims)
            .map_err(|_| AuthError::InvalidToken("malformed claims"))?;
        self.check_claims(&claims, now.timestamp())?;
        Ok(Caller {
            account_id: claims.sub,
            role: claims.role,
        })
    }

    fn check_claims(&self, claims: &AccessClaims, now: i64) -> Result<(), AuthError> {
        if claims.aud != self.inner.audience {
            return Err(AuthError::InvalidToken("wrong audience"));
        }
        if claims.iss != ISSUER {
            return Err(AuthError::InvalidToken("wrong issuer"));
        }
        if claims.iat > now + CLOCK_LEEWAY_SECS {
            return Err(AuthError::InvalidToken("issued in the future"));
        }
        if claims.exp <= now - CLOCK_LEEWAY_SECS {
            return Err(AuthError::Expired);
        }
        let not_before = self
            .inner
            .not_before
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(&claims.sub)
            .copied();
        if not_before.is_some_and(|nb| claims.iat <= nb) {
            return Err(AuthError::Revoked);
        }
        Ok(())
    }

    /// The key named `kid`: from the cache, or after one (rate-limited) fetch.
    async fn key(&self, kid: &str) -> Result<VerifyingKey, AuthError> {
        if let Some(key) = self.read_cache().fresh_key(kid) {
            return Ok(key);
        }
        if let Some(jwks) = self.inner.source.snapshot() {
            let keys = jwks.verifying_keys();
            if let Some(key) = keys.get(kid).copied() {
                let mut cache = self
                    .inner
                    .keys
                    .write()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                cache.keys = keys;
                cache.fetched_at = Some(Instant::now());
                return Ok(key);
            }
        }
        let _fetching = self.inner.fetching.lock().await;
        // Another request may have fetched while this one waited.
        if let Some(key) = self.read_cache().fresh_key(kid) {
            return Ok(key);
        }
        let stale = self.read_cache().keys.get(kid).copied();
        if !self.read_cache().may_fetch() {
            return stale.ok_or(AuthError::InvalidToken("unknown key id"));
        }
        let fetched = self.inner.source.fetch().await;
        let mut cache = self
            .inner
            .keys
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        cache.last_attempt = Some(Instant::now());
        match fetched {
            Ok(jwks) => {
                cache.keys = jwks.verifying_keys();
                cache.fetched_at = Some(Instant::now());
                cache
                    .keys
                    .get(kid)
                    .copied()
                    .ok_or(AuthError::InvalidToken("unknown key id"))
            }
            Err(error) => {
                tracing::warn!(%error, "could not fetch the access-token keys");
                // A key we knew stays good while identity is unreachable.
                stale.ok_or(AuthError::KeysUnavailable)
            }
        }
    }

    fn read_cache(&self) -> std::sync::RwLockReadGuard<'_, KeyCache> {
        self.inner
            .keys
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The subject on which identity publishes `AccountDisabled` (without namespace).
pub const ACCOUNT_DISABLED_SUBJECT: &str = "identity.account.disabled";

/// Keeps `verifier` told of every disabled account, from the identity stream, until
/// `shutdown`: run it in every service besides identity (`service.spawn(|stop|
/// follow_disabled_accounts(bus, verifier, stop))`).
///
/// An ordered, ephemeral consumer replays every `identity.account.disabled` event since the
/// stream began (a handful: accounts are rarely disabled) and then follows new ones, so a
/// service that restarts forgets no revocation. It holds no state, so it needs no durable
/// consumer and no checkpoint; on any error it starts over after a pause.
pub async fn follow_disabled_accounts(
    bus: brigade_nats::Bus,
    verifier: TokenVerifier,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            result = follow_once(&bus, &verifier) => {
                if let Err(error) = result {
                    tracing::warn!(%error, "following disabled accounts failed; retrying");
                }
            }
            _ = shutdown.changed() => return,
        }
        tokio::select! {
            () = tokio::time::sleep(Duration::from_secs(5)) => {}
            _ = shutdown.changed() => return,
        }
    }
}

async fn follow_once(bus: &brigade_nats::Bus, verifier: &TokenVerifier) -> anyhow::Result<()> {
    use async_nats::jetstream::consumer::{pull::OrderedConfig, DeliverPolicy};
    use futures::StreamExt as _;

    let stream = bus.ensure_stream("identity").await?;
    let consumer = stream
        .create_consumer(OrderedConfig {
            filter_subject: bus.namespace.subject(ACCOUNT_DISABLED_SUBJECT),
            deliver_policy: DeliverPolicy::All,
            ..Default::default()
        })
        .await?;
    let mut messages = consumer.messages().await?;
    while let Some(message) = messages.next().await {
        let message = message?;
        match disabled_account(&message.payload) {
            Some((account_id, at)) => verifier.revoke_before(account_id, at),
            None => tracing::warn!(subject = %message.subject, "unreadable AccountDisabled event"),
        }
    }
    Ok(())
}

/// The account and time of an `AccountDisabled` event envelope.
fn disabled_account(payload: &[u8]) -> Option<(Uuid, DateTime<Utc>)> {
    let envelope: brigade_nats::EventEnvelope = serde_json::from_slice(payload).ok()?;
    let account_id = envelope.aggregate_id.parse().ok()?;
    match envelope.decode().ok()? {
        brigade_domain::identity::AccountEvent::AccountDisabled { at, .. } => {
            Some((account_id, at))
        }
        _ => None,
    }
}

/// A compact JWS split into its parts, with its header checked.
struct ParsedToken {
    kid: String,
    signing_input: String,
    claims: Vec<u8>,
    signature: Signature,
}

#[derive(Deserialize)]
struct ReceivedHeader {
    alg: String,
    kid: Option<String>,
    typ: Option<String>,
    /// Extensions the issuer says must be understood; Brigade understands none.
    crit: Option<serde_json::Value>,
}

impl ParsedToken {
    fn parse(token: &str) -> Result<Self, AuthError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(AuthError::InvalidToken("too long"));
        }
        let mut parts = token.split('.');
        let (Some(header), Some(claims), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(AuthError::InvalidToken("not a compact JWS"));
        };
        let decode = |part: &str| {
            URL_SAFE_NO_PAD
                .decode(part)
                .map_err(|_| AuthError::InvalidToken("not base64url"))
        };
        let received: ReceivedHeader = serde_json::from_slice(&decode(header)?)
            .map_err(|_| AuthError::InvalidToken("malformed header"))?;
        // The allow-list: the header names the algorithm, but never gets to choose it.
        if received.alg != ALGORITHM {
            return Err(AuthError::InvalidToken("algorithm not allowed"));
        }
        if received.crit.is_some() {
            return Err(AuthError::InvalidToken("critical header extensions"));
        }
        if received.typ.as_deref().is_some_and(|typ| typ != "JWT") {
            return Err(AuthError::InvalidToken("not a JWT"));
        }
        let kid = received.kid.ok_or(AuthError::InvalidToken("no key id"))?;
        let signature = Signature::from_slice(&decode(signature)?)
            .map_err(|_| AuthError::InvalidToken("malformed signature"))?;
        Ok(Self {
            kid,
            signing_input: format!("{header}.{claims}"),
            claims: decode(claims)?,
            signature,
        })
    }
}

/// The `Authorization: Bearer <access token>` security scheme. Taking it as an endpoint
/// parameter makes the endpoint authenticated: the token is verified with the
/// [`TokenVerifier`] found in the request data (`Route::data(verifier)`), and the endpoint gets
/// the [`Caller`].
///
/// Implemented by hand rather than with `#[derive(SecurityScheme)]`: the derived extractor
/// answers a *missing* header with poem-openapi's own plain-text 401 before any checker runs
/// (poem #777), and every 401 here must be problem+json.
pub struct BearerAuth(pub Caller);

impl<'a> ApiExtractor<'a> for BearerAuth {
    const TYPES: &'static [ApiExtractorType] = &[ApiExtractorType::SecurityScheme];

    type ParamType = ();
    type ParamRawType = ();

    fn register(registry: &mut Registry) {
        registry.create_security_scheme(
            "BearerAuth",
            MetaSecurityScheme {
                ty: "http",
                description: Some(
                    "An access token from the identity service's `POST /auth/login`.",
                ),
                name: None,
                key_in: None,
                scheme: Some("bearer"),
                bearer_format: Some("JWT"),
                flows: None,
                openid_connect_url: None,
            },
        );
    }

    fn security_schemes() -> Vec<&'static str> {
        vec!["BearerAuth"]
    }

    async fn from_request(
        request: &'a Request,
        _body: &mut RequestBody,
        _param_opts: ExtractParamOptions<Self::ParamType>,
    ) -> poem::Result<Self> {
        let Some(verifier) = request.data::<TokenVerifier>() else {
            tracing::error!("no TokenVerifier in the request data: the route is miswired");
            let problem = Problem::internal(&"no token verifier configured");
            return Err(poem::Error::from_response(problem.into_response()));
        };
        let token = bearer_token(request).ok_or(AuthError::MissingToken)?;
        match verifier.verify(token).await {
            Ok(caller) => Ok(Self(caller)),
            Err(error) => {
                if let AuthError::InvalidToken(reason) = &error {
                    tracing::debug!(reason, "access token refused");
                }
                Err(error.into())
            }
        }
    }
}

/// The token of an `Authorization: Bearer …` header (the scheme is case-insensitive).
fn bearer_token(request: &Request) -> Option<&str> {
    let value = request
        .headers()
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

#[cfg(test)]
mod tests {
    use hmac::{Hmac, Mac};
    use sha2::Sha256;

    use super::*;

    const KID: &str = "key-1";

    fn signing_key(seed: u8) -> SigningKey {
        SigningKey::from_bytes(&[seed; 32])
    }

    fn jwks_of(key: &SigningKey, kid: &str) -> Jwks {
        Jwks {
            keys: vec![Jwk::ed25519(kid, &key.verifying_key())],
        }
    }

    fn verifier() -> TokenVerifier {
        TokenVerifier::local(jwks_of(&signing_key(1), KID), AUDIENCE)
    }

    fn claims(role: Role) -> AccessClaims {
        AccessClaims::new(
            Uuid::from_u128(42),
            role,
            Utc::now(),
            Duration::from_secs(900),
        )
    }

    fn b64(json: &serde_json::Value) -> String {
        URL_SAFE_NO_PAD.encode(json.to_string())
    }

    #[tokio::test]
    async fn a_token_signed_by_identity_names_its_caller() {
        let token = sign_access_token(&signing_key(1), KID, &claims(Role::Chef));
        let caller = verifier().verify(&token).await.expect("a valid token");
        assert_eq!(
            caller,
            Caller {
                account_id: Uuid::from_u128(42),
                role: Role::Chef
            }
        );
        assert_eq!(caller.require(&[Role::Chef, Role::Manager]), Ok(()));
        assert_eq!(caller.require(&[Role::Manager]), Err(AuthError::Forbidden));
    }

    #[tokio::test]
    async fn alg_none_is_refused() {
        let header = b64(&serde_json::json!({"alg": "none", "typ": "JWT", "kid": KID}));
        let body =
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims(Role::Manager)).expect("json"));
        for token in [format!("{header}.{body}."), format!("{header}.{body}")] {
            assert!(matches!(
                verifier().verify(&token).await,
                Err(AuthError::InvalidToken(_))
            ));
        }
    }

    #[tokio::test]
    async fn hs256_signed_with_the_public_key_is_refused() {
        let public = signing_key(1).verifying_key();
        let header = b64(&serde_json::json!({"alg": "HS256", "typ": "JWT", "kid": KID}));
        let body =
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims(Role::Manager)).expect("json"));
        for secret in [
            public.as_bytes().to_vec(),
            URL_SAFE_NO_PAD.encode(public.as_bytes()).into_bytes(),
        ] {
            let mut mac = Hmac::<Sha256>::new_from_slice(&secret).expect("any key length");
            mac.update(format!("{header}.{body}").as_bytes());
            let signature = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
            let token = format!("{header}.{body}.{signature}");
            assert_eq!(
                verifier().verify(&token).await,
                Err(AuthError::InvalidToken("algorithm not allowed"))
            );
        }
    }

    #[tokio::test]
    async fn a_token_for_another_audience_is_refused() {
        let mut other = claims(Role::Customer);
        other.aud = "someone-else".into();
        let token = sign_access_token(&signing_key(1), KID, &other);
        assert_eq!(
            verifier().verify(&token).await,
            Err(AuthError::InvalidToken("wrong audience"))
        );
    }

    #[tokio::test]
    async fn an_expired_token_is_refused() {
        let an_hour_ago = Utc::now() - chrono::Duration::hours(1);
        let old = AccessClaims::new(
            Uuid::from_u128(42),
            Role::Customer,
            an_hour_ago,
            Duration::from_secs(900),
        );
        let token = sign_access_token(&signing_key(1), KID, &old);
        assert_eq!(verifier().verify(&token).await, Err(AuthError::Expired));
    }

    #[tokio::test]
    async fn a_token_from_the_future_is_refused() {
        let later = AccessClaims::new(
            Uuid::from_u128(42),
            Role::Customer,
            Utc::now() + chrono::Duration::hours(1),
            Duration::from_secs(900),
        );
        let token = sign_access_token(&signing_key(1), KID, &later);
        assert!(matches!(
            verifier().verify(&token).await,
            Err(AuthError::InvalidToken(_))
        ));
    }

    #[tokio::test]
    async fn a_signature_from_another_key_is_refused() {
        let forged = sign_access_token(&signing_key(2), KID, &claims(Role::Manager));
        assert_eq!(
            verifier().verify(&forged).await,
            Err(AuthError::InvalidToken("bad signature"))
        );
    }

    #[tokio::test]
    async fn tampered_claims_are_refused() {
        let token = sign_access_token(&signing_key(1), KID, &claims(Role::Customer));
        let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
        let mut promoted = claims(Role::Customer);
        promoted.role = Role::Manager;
        parts[1] = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&promoted).expect("json"));
        assert_eq!(
            verifier().verify(&parts.join(".")).await,
            Err(AuthError::InvalidToken("bad signature"))
        );
    }

    #[tokio::test]
    async fn garbage_is_refused() {
        for token in ["", "abc", "a.b", "a.b.c.d", "....", "eyJ.eyJ.sig"] {
            assert!(matches!(
                verifier().verify(token).await,
                Err(AuthError::InvalidToken(_))
            ));
        }
    }

    #[tokio::test]
    async fn a_token_of_a_disabled_account_is_revoked() {
        let issued = Utc::now() - chrono::Duration::minutes(1);
        let token = sign_access_token(
            &signing_key(1),
            KID,
            &AccessClaims::new(
                Uuid::from_u128(42),
                Role::Courier,
                issued,
                Duration::from_secs(900),
            ),
        );
        let verifier = verifier();
        assert!(verifier.verify(&token).await.is_ok());
        verifier.revoke_before(Uuid::from_u128(42), Utc::now());
        assert_eq!(verifier.verify(&token).await, Err(AuthError::Revoked));
        // Tokens issued later (after a re-enable) and other accounts' tokens are not affected.
        let later = AccessClaims::new(
            Uuid::from_u128(42),
            Role::Courier,
            Utc::now() + chrono::Duration::seconds(2),
            Duration::from_secs(900),
        );
        let later = sign_access_token(&signing_key(1), KID, &later);
        assert!(verifier.verify(&later).await.is_ok());
        let stranger = AccessClaims::new(
            Uuid::from_u128(8),
            Role::Chef,
            issued,
            Duration::from_secs(900),
        );
        let stranger = sign_access_token(&signing_key(1), KID, &stranger);
        assert!(verifier.verify(&stranger).await.is_ok());
    }

    /// A key source that counts its fetches and serves whatever keys it holds now.
    struct CountingSource {
        jwks: Arc<RwLock<Jwks>>,
        fetches: Arc<std::sync::atomic::AtomicUsize>,
    }

    impl KeySource for CountingSource {
        fn fetch(&self) -> BoxFuture<'_, Result<Jwks, String>> {
            self.fetches
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let jwks = self.jwks.read().expect("not poisoned").clone();
            Box::pin(async move { Ok(jwks) })
        }
    }

    #[tokio::test]
    async fn an_unknown_key_id_refetches_the_keys_at_most_once_per_interval() {
        let jwks = Arc::new(RwLock::new(jwks_of(&signing_key(1), "old")));
        let fetches = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let verifier = TokenVerifier::local(
            CountingSource {
                jwks: jwks.clone(),
                fetches: fetches.clone(),
            },
            AUDIENCE,
        );
        let count = || fetches.load(std::sync::atomic::Ordering::SeqCst);

        let old = sign_access_token(&signing_key(1), "old", &claims(Role::Chef));
        assert!(verifier.verify(&old).await.is_ok());
        assert!(verifier.verify(&old).await.is_ok());
        assert_eq!(count(), 1, "known keys come from the cache");

        let forged = sign_access_token(&signing_key(9), "made-up", &claims(Role::Chef));
        for _ in 0..5 {
            assert!(verifier.verify(&forged).await.is_err());
        }
        assert_eq!(count(), 1, "unknown kids refetch once per interval");

        // A rotation: the new key is found by the next allowed refetch.
        jwks.write()
            .expect("not poisoned")
            .keys
            .push(Jwk::ed25519("new", &signing_key(3).verifying_key()));
        verifier
            .inner
            .keys
            .write()
            .expect("not poisoned")
            .last_attempt = None;
        let rotated = sign_access_token(&signing_key(3), "new", &claims(Role::Chef));
        assert!(verifier.verify(&rotated).await.is_ok());
        assert!(verifier.verify(&old).await.is_ok(), "old tokens stay valid");
        assert_eq!(count(), 2);
    }

    #[test]
    fn jwks_skip_keys_of_other_types() {
        let mut rsa = Jwk::ed25519("rsa", &signing_key(1).verifying_key());
        rsa.kty = "RSA".into();
        let mut hmac = Jwk::ed25519("hmac", &signing_key(1).verifying_key());
        hmac.alg = Some("HS256".into());
        let jwks = Jwks {
            keys: vec![
                rsa,
                hmac,
                Jwk::ed25519("ok", &signing_key(1).verifying_key()),
            ],
        };
        let keys = jwks.verifying_keys();
        assert_eq!(keys.len(), 1);
        assert!(keys.contains_key("ok"));
    }

    #[test]
    fn an_account_disabled_envelope_names_the_account_and_the_time() {
        let at = Utc::now();
        let account_id = Uuid::from_u128(42);
        let envelope = serde_json::json!({
            "eventId": Uuid::from_u128(1),
            "aggregateType": "account",
            "aggregateId": account_id.to_string(),
            "sequence": 2,
            "eventType": "AccountDisabled",
            "eventVersion": "1.0",
            "payload": {"AccountDisabled": {"by": {"kind": "system"}, "reason": null, "at": at}},
            "metadata": {},
            "recordedAt": at,
        });
        let bytes = serde_json::to_vec(&envelope).expect("json");
        assert_eq!(disabled_account(&bytes), Some((account_id, at)));
        assert_eq!(disabled_account(b"{}"), None);
    }

    #[test]
    fn the_bearer_scheme_is_case_insensitive() {
        let request = Request::builder()
            .header(header::AUTHORIZATION, "bearer abc.def.ghi")
            .finish();
        assert_eq!(bearer_token(&request), Some("abc.def.ghi"));
        let basic = Request::builder()
            .header(header::AUTHORIZATION, "Basic dXNlcg==")
            .finish();
        assert_eq!(bearer_token(&basic), None);
    }
}
