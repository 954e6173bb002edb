//! Signed-in browsers. The browser holds only an opaque session id (an `HttpOnly` cookie); the
//! access and refresh tokens stay on the server side, out of reach of any script the page runs.
//!
//! Sessions live in a NATS JetStream key-value bucket shared by every gateway (named after the
//! configured namespace, `GATEWAY_SESSIONS` or `T42_GATEWAY_SESSIONS`), not in one gateway's
//! memory: a restarted gateway keeps everyone signed in, and any number of gateways serve the
//! same browsers without sticky sessions. Each entry expires with the refresh lifetime
//! (the bucket's `max_age` counts from its last write); one unused for longer than the idle
//! timeout is ended when next seen. The key is the SHA-256 of the session id, so whoever can
//! list the bucket still cannot forge a cookie.
//!
//! The access token lives about 15 minutes. Shortly before it expires (or when a service says
//! it has), the next request exchanges the refresh token for new ones. Only one exchange runs
//! per session at a time: identity treats a refresh token sent twice as stolen and ends the
//! session, and a page with a live stream and a few clicks would otherwise send it twice.
//! Within one gateway, requests of a session queue on a local lock; across gateways, the one
//! that writes a short refresh lease into the entry with the revision it read (compare-and-set)
//! exchanges, and the others wait for the new tokens to appear in the entry.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use async_nats::jetstream::{kv, stream};
use brigade_domain::Role;
use brigade_platform::ServiceName;
use chrono::{DateTime, Utc};
use reqwest::Method;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::sync::OnceCell;
use uuid::Uuid;

use crate::cookies::random_token;
use crate::upstream::{FetchError, Outgoing, Unavailable, Upstream};

/// Refresh this long before the access token expires, so that a request never arrives at a
/// service with a token that expires on the way.
const REFRESH_MARGIN: Duration = Duration::from_secs(30);
/// How long a gateway may hold the right to exchange a session's refresh token. Longer than
/// a call to identity may take (10 s), so a lease never runs out under a live exchange; a
/// gateway that died holding one delays that session's next refresh by at most this.
const REFRESH_LEASE: Duration = Duration::from_secs(15);
/// How often a gateway waiting for another's exchange looks at the entry again.
const LEASE_POLL: Duration = Duration::from_millis(100);
/// A session's last use is written back at most this often: not on every request, and well
/// within the idle timeout.
const TOUCH_EVERY: Duration = Duration::from_secs(300);
/// Longest wait for the session store before a request goes on without it.
const STORE_TIMEOUT: Duration = Duration::from_secs(3);

/// The account signed in, as the pages show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub id: Uuid,
    pub email: String,
    pub name: String,
    pub role: Role,
}

/// What identity answers to a sign-in or a refresh (API.md).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SignedIn {
    pub access_token: String,
    pub refresh_token: String,
    pub expires_in: u64,
    pub account: AccountBody,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AccountBody {
    pub id: Uuid,
    pub email: String,
    pub name: String,
    pub role: String,
}

/// One session as stored in the bucket.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Record {
    account: AccountBody,
    access: String,
    refresh: String,
    /// When the access token expires (wall clock: gateways share it).
    expires_at: DateTime<Utc>,
    last_used: DateTime<Utc>,
    /// Set while one gateway exchanges the refresh token; the others wait for the result.
    #[serde(default)]
    refreshing_until: Option<DateTime<Utc>>,
}

impl Record {
    fn new(signed_in: &SignedIn) -> Self {
        let now = Utc::now();
        Self {
            account: signed_in.account.clone(),
            access: signed_in.access_token.clone(),
            refresh: signed_in.refresh_token.clone(),
            expires_at: now + seconds(signed_in.expires_in),
            last_used: now,
            refreshing_until: None,
        }
    }

    fn renewed(mut self, signed_in: &SignedIn) -> Self {
        let now = Utc::now();
        self.access.clone_from(&signed_in.access_token);
        self.refresh.clone_from(&signed_in.refresh_token);
        self.expires_at = now + seconds(signed_in.expires_in);
        self.last_used = now;
        self.refreshing_until = None;
        self
    }
}

fn seconds(secs: u64) -> chrono::Duration {
    chrono::Duration::seconds(i64::try_from(secs).unwrap_or(i64::MAX / 1000))
}

fn chrono(duration: Duration) -> chrono::Duration {
    chrono::Duration::from_std(duration).unwrap_or(chrono::Duration::MAX)
}

/// The session store cannot be reached (NATS down or the bucket unusable).
#[derive(Debug, thiserror::Error)]
#[error("the session store is unavailable: {0}")]
pub struct StoreError(String);

/// Why a session cannot give a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenError {
    /// Identity refused the refresh: the session ended (signed out elsewhere, disabled,
    /// expired). The browser must sign in again.
    Ended,
    /// The token expired and identity (or the session store) cannot be reached to refresh it.
    Unavailable(Unavailable),
}

/// The session store standing in for identity when it is down: the page says sign-in is
/// unavailable, which is what the visitor experiences.
fn store_down() -> TokenError {
    TokenError::Unavailable(Unavailable::Unreachable {
        service: ServiceName::Identity,
    })
}

/// One signed-in browser, as read from the store for one request.
#[derive(Debug)]
pub struct Session {
    pub id: String,
    pub account: Account,
    key: String,
    /// The entry as read when the request began: its access token serves while the store is
    /// briefly unreachable and the token still valid.
    seen: Record,
    store: Arc<Store>,
    /// This gateway's lock for this session: the refresh happens while holding it, so
    /// concurrent requests wait for the one exchange instead of each making their own.
    lock: Arc<tokio::sync::Mutex<()>>,
}

impl Session {
    /// A valid access token, refreshed first if it is about to expire. When identity is down
    /// and the token has not quite expired, it is used as it is.
    ///
    /// # Errors
    /// [`TokenError`] when the session has ended or cannot be refreshed.
    pub async fn access_token(&self, upstream: &Upstream) -> Result<String, TokenError> {
        let now = Utc::now();
        if now + chrono(REFRESH_MARGIN) < self.seen.expires_at {
            return Ok(self.seen.access.clone());
        }
        self.exchange(upstream, |record| {
            Utc::now() + chrono(REFRESH_MARGIN) >= record.expires_at
        })
        .await
    }

    /// A new access token after a service refused `rejected` (expired early, keys rotated):
    /// refreshed once, unless another request (here or at another gateway) already did.
    ///
    /// # Errors
    /// [`TokenError`] when the session has ended or cannot be refreshed.
    pub async fn renew(&self, rejected: &str, upstream: &Upstream) -> Result<String, TokenError> {
        self.exchange(upstream, |record| record.access == rejected)
            .await
    }

    /// Exchanges the refresh token when `due` says the stored access token will not do, with
    /// at most one exchange per session at a time across every gateway.
    async fn exchange(
        &self,
        upstream: &Upstream,
        due: impl Fn(&Record) -> bool,
    ) -> Result<String, TokenError> {
        let _one_here = self.lock.lock().await;
        let waited_since = tokio::time::Instant::now();
        loop {
            let (revision, record) = match self.store.read(&self.key).await {
                Ok(Some(entry)) => entry,
                Ok(None) => return Err(TokenError::Ended),
                Err(error) => {
                    tracing::warn!(%error, "session store unreachable for a refresh");
                    return self.fallback();
                }
            };
            if !due(&record) {
                return Ok(record.access);
            }
            let now = Utc::now();
            if record.refreshing_until.is_some_and(|until| until > now) {
                // Another gateway is exchanging: its result will be in the entry shortly.
                if waited_since.elapsed() > REFRESH_LEASE * 2 {
                    return Err(store_down());
                }
                tokio::time::sleep(LEASE_POLL).await;
                continue;
            }
            let mut leased = record.clone();
            leased.refreshing_until = Some(now + chrono(REFRESH_LEASE));
            let lease = match self.store.update(&self.key, &leased, revision).await {
                Ok(Some(lease)) => lease,
                // Someone wrote the entry since it was read: look again.
                Ok(None) => continue,
                Err(error) => {
                    tracing::warn!(%error, "session store unreachable for a refresh lease");
                    return self.fallback();
                }
            };
            return match refresh(upstream, &record.refresh).await {
                Ok(signed_in) => {
                    let renewed = record.renewed(&signed_in);
                    if let Err(error) = self.store.write_over(&self.key, &renewed, lease).await {
                        // The new tokens serve this request; the next one will find the old
                        // refresh token (spent) and the session ended.
                        tracing::warn!(%error, "refreshed tokens could not be stored");
                    }
                    Ok(renewed.access)
                }
                Err(TokenError::Ended) => {
                    self.store.remove(&self.key).await;
                    Err(TokenError::Ended)
                }
                Err(unavailable) => {
                    // Give the lease back so that the next request (anywhere) tries again.
                    let mut released = leased;
                    released.refreshing_until = None;
                    let _ = self.store.write_over(&self.key, &released, lease).await;
                    if Utc::now() < record.expires_at {
                        Ok(record.access)
                    } else {
                        Err(unavailable)
                    }
                }
            };
        }
    }

    /// Without the store: the token read with the request, while it is still valid.
    fn fallback(&self) -> Result<String, TokenError> {
        if Utc::now() < self.seen.expires_at {
            Ok(self.seen.access.clone())
        } else {
            Err(store_down())
        }
    }
}

async fn refresh(upstream: &Upstream, refresh_token: &str) -> Result<SignedIn, TokenError> {
    let call = Outgoing::new(ServiceName::Identity, Method::POST, "/auth/refresh")
        .json(&serde_json::json!({ "refreshToken": refresh_token }));
    match upstream.call_json::<SignedIn>(&call).await {
        Ok(signed_in) => Ok(signed_in),
        Err(FetchError::Unavailable(unavailable)) => Err(TokenError::Unavailable(unavailable)),
        Err(error) if error.is_unavailable() => {
            Err(TokenError::Unavailable(Unavailable::Unreachable {
                service: ServiceName::Identity,
            }))
        }
        Err(_) => Err(TokenError::Ended),
    }
}

/// Where the sessions are kept: the bucket, opened on first use (NATS may come up after the
/// gateway), and this gateway's per-session locks.
struct Store {
    jetstream: async_nats::jetstream::Context,
    config: SessionStoreConfig,
    bucket: OnceCell<kv::Store>,
    locks: Mutex<HashMap<String, Weak<tokio::sync::Mutex<()>>>>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("bucket", &self.config.bucket)
            .finish_non_exhaustive()
    }
}

impl Store {
    async fn bucket(&self) -> Result<&kv::Store, StoreError> {
        self.bucket
            .get_or_try_init(|| async {
                if let Ok(bucket) = self.jetstream.get_key_value(&self.config.bucket).await {
                    return Ok(bucket);
                }
                // The bucket's stream, made here rather than by `create_key_value`, which first
                // reads account details in a shape NATS 2.9 does not answer. The same settings
                // a key-value bucket gets: one value per key, rollups, direct reads, and
                // writes refused (not old entries dropped) when full.
                let stream = stream::Config {
                    name: format!("KV_{}", self.config.bucket),
                    description: Some(
                        "Brigade gateway sessions (tokens of signed-in browsers)".to_owned(),
                    ),
                    subjects: vec![format!("$KV.{}.>", self.config.bucket)],
                    max_messages_per_subject: 1,
                    max_age: self.config.lifetime,
                    num_replicas: self.config.replicas.max(1),
                    allow_rollup: true,
                    deny_delete: true,
                    allow_direct: true,
                    discard: stream::DiscardPolicy::New,
                    ..stream::Config::default()
                };
                self.jetstream
                    .get_or_create_stream(stream)
                    .await
                    .map_err(|e| StoreError(e.to_string()))?;
                self.jetstream
                    .get_key_value(&self.config.bucket)
                    .await
                    .map_err(|e| StoreError(e.to_string()))
            })
            .await
    }

    /// The entry and its revision; `None` when there is none.
    async fn read(&self, key: &str) -> Result<Option<(u64, Record)>, StoreError> {
        let bucket = self.bucket().await?;
        let entry = timed(bucket.entry(key)).await?;
        let Some(entry) = entry.filter(|e| e.operation == kv::Operation::Put) else {
            return Ok(None);
        };
        match serde_json::from_slice::<Record>(&entry.value) {
            Ok(record) => Ok(Some((entry.revision, record))),
            Err(error) => {
                // Written by an incompatible gateway: treated as no session.
                tracing::warn!(%error, "unreadable session entry");
                Ok(None)
            }
        }
    }

    async fn create(&self, key: &str, record: &Record) -> Result<(), StoreError> {
        let bucket = self.bucket().await?;
        timed(bucket.create(key, encode(record))).await?;
        Ok(())
    }

    /// Writes `record` if the entry is still at `revision`: the new revision, or `None` when
    /// someone else wrote it first.
    async fn update(
        &self,
        key: &str,
        record: &Record,
        revision: u64,
    ) -> Result<Option<u64>, StoreError> {
        let bucket = self.bucket().await?;
        match tokio::time::timeout(STORE_TIMEOUT, bucket.update(key, encode(record), revision))
            .await
        {
            Ok(Ok(revision)) => Ok(Some(revision)),
            Ok(Err(error)) if error.kind() == kv::UpdateErrorKind::WrongLastRevision => Ok(None),
            Ok(Err(error)) => Err(StoreError(error.to_string())),
            Err(_) => Err(StoreError("timed out".to_owned())),
        }
    }

    /// Writes `record` over the entry this gateway holds the refresh lease of. Compared with
    /// the lease's revision; when that fails the lease had run out and another gateway took
    /// over, and the entry is left as that one wrote it.
    async fn write_over(&self, key: &str, record: &Record, lease: u64) -> Result<(), StoreError> {
        match self.update(key, record, lease).await? {
            Some(_) => Ok(()),
            None => Err(StoreError(
                "the refresh lease ran out before the new tokens were stored".to_owned(),
            )),
        }
    }

    async fn remove(&self, key: &str) {
        match self.bucket().await {
            Ok(bucket) => {
                if let Err(error) = timed(bucket.purge(key)).await {
                    tracing::warn!(%error, "a session could not be removed from the store");
                }
            }
            Err(error) => tracing::warn!(%error, "a session could not be removed from the store"),
        }
    }

    /// This gateway's lock for one session, shared by its concurrent requests.
    fn lock(&self, key: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self
            .locks
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(lock) = locks.get(key).and_then(Weak::upgrade) {
            return lock;
        }
        if locks.len() > 1024 {
            locks.retain(|_, lock| lock.strong_count() > 0);
        }
        let lock = Arc::new(tokio::sync::Mutex::new(()));
        locks.insert(key.to_owned(), Arc::downgrade(&lock));
        lock
    }
}

fn encode(record: &Record) -> bytes::Bytes {
    serde_json::to_vec(record)
        .expect("a session record always serializes")
        .into()
}

async fn timed<T, E: std::fmt::Display>(
    operation: impl std::future::Future<Output = Result<T, E>>,
) -> Result<T, StoreError> {
    match tokio::time::timeout(STORE_TIMEOUT, operation).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(error)) => Err(StoreError(error.to_string())),
        Err(_) => Err(StoreError("timed out".to_owned())),
    }
}

/// The key of a session id in the bucket.
fn key_of(id: &str) -> String {
    use std::fmt::Write as _;
    Sha256::digest(id.as_bytes())
        .iter()
        .fold(String::with_capacity(64), |mut key, byte| {
            let _ = write!(key, "{byte:02x}");
            key
        })
}

/// Every signed-in browser, in the store shared by the gateways.
pub struct Sessions {
    store: Arc<Store>,
    idle_timeout: Duration,
}

/// Where [`Sessions`] keep their entries.
#[derive(Debug, Clone)]
pub struct SessionStoreConfig {
    /// The bucket, named after the namespace so that tests and installations stay apart.
    pub bucket: String,
    /// How long an entry lives after its last write: the refresh lifetime.
    pub lifetime: Duration,
    /// Replicas of the bucket (3 on a cluster).
    pub replicas: usize,
}

impl Sessions {
    /// The sessions kept in `config.bucket` through `client`. The bucket is created on first
    /// use if it does not exist.
    #[must_use]
    pub fn new(
        client: async_nats::Client,
        config: &SessionStoreConfig,
        idle_timeout: Duration,
    ) -> Self {
        let jetstream = async_nats::jetstream::ContextBuilder::new()
            .timeout(STORE_TIMEOUT)
            .build(client);
        Self {
            store: Arc::new(Store {
                jetstream,
                config: config.clone(),
                bucket: OnceCell::new(),
                locks: Mutex::new(HashMap::new()),
            }),
            idle_timeout,
        }
    }

    /// Opens a session for a successful sign-in.
    ///
    /// # Errors
    /// When identity answered a role this gateway does not know, or the store is unreachable.
    pub async fn open(&self, signed_in: &SignedIn) -> Result<Arc<Session>, OpenError> {
        let role = parse_role(&signed_in.account)?;
        let id = random_token();
        let key = key_of(&id);
        let record = Record::new(signed_in);
        self.store
            .create(&key, &record)
            .await
            .map_err(OpenError::Store)?;
        Ok(self.session(id, key, record, role))
    }

    /// The session with this id, if it exists and has been used recently.
    ///
    /// # Errors
    /// When the store cannot be reached: the visitor is not known to be signed out.
    pub async fn find(&self, id: &str) -> Result<Option<Arc<Session>>, StoreError> {
        let key = key_of(id);
        let Some((revision, mut record)) = self.store.read(&key).await? else {
            return Ok(None);
        };
        let now = Utc::now();
        if now - record.last_used > chrono(self.idle_timeout) {
            self.store.remove(&key).await;
            return Ok(None);
        }
        let Ok(role) = parse_role(&record.account) else {
            return Ok(None);
        };
        if now - record.last_used > chrono(TOUCH_EVERY) {
            record.last_used = now;
            // Lost to a concurrent write (a refresh, which also sets it): fine either way.
            if let Err(error) = self.store.update(&key, &record, revision).await {
                tracing::debug!(%error, "a session's last use was not recorded");
            }
        }
        Ok(Some(self.session(id.to_owned(), key, record, role)))
    }

    /// Ends a session; gives its refresh token back, to end it at identity too.
    pub async fn end(&self, id: &str) -> Option<String> {
        let key = key_of(id);
        let record = self.store.read(&key).await.ok().flatten();
        self.store.remove(&key).await;
        record.map(|(_, record)| record.refresh)
    }

    fn session(&self, id: String, key: String, record: Record, role: Role) -> Arc<Session> {
        Arc::new(Session {
            id,
            account: Account {
                id: record.account.id,
                email: record.account.email.clone(),
                name: record.account.name.clone(),
                role,
            },
            lock: self.store.lock(&key),
            key,
            seen: record,
            store: self.store.clone(),
        })
    }
}

/// Why a session could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("identity answered an unknown role: {0}")]
    UnknownRole(String),
    #[error(transparent)]
    Store(StoreError),
}

fn parse_role(account: &AccountBody) -> Result<Role, OpenError> {
    account
        .role
        .parse()
        .map_err(|e: brigade_domain::UnknownRole| OpenError::UnknownRole(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Sessions in a bucket of this test's own on the machine's NATS, dropped afterwards.
    async fn sessions_in_a_fresh_bucket() -> (Sessions, async_nats::jetstream::Context, String) {
        let client = async_nats::connect("nats://127.0.0.1:4222")
            .await
            .expect("NATS on the machine");
        let bucket = format!(
            "T{}_GATEWAY_SESSIONS",
            &Uuid::new_v4().simple().to_string()[..10]
        );
        let config = SessionStoreConfig {
            bucket: bucket.clone(),
            lifetime: Duration::from_secs(600),
            replicas: 1,
        };
        let sessions = Sessions::new(client.clone(), &config, Duration::from_secs(60));
        (sessions, async_nats::jetstream::new(client), bucket)
    }

    fn signed_in(role: &str) -> SignedIn {
        SignedIn {
            access_token: "access-0".into(),
            refresh_token: "refresh-0".into(),
            expires_in: 900,
            account: AccountBody {
                id: Uuid::new_v4(),
                email: "chef@brigade.test".into(),
                name: "Auguste".into(),
                role: role.into(),
            },
        }
    }

    #[tokio::test]
    async fn a_session_is_found_by_its_id_in_the_store_until_it_ends() {
        let (sessions, jetstream, bucket) = sessions_in_a_fresh_bucket().await;
        let opened = sessions.open(&signed_in("chef")).await.expect("opened");
        assert_eq!(opened.account.role, Role::Chef);
        let found = sessions
            .find(&opened.id)
            .await
            .expect("the store answers")
            .expect("the session is there");
        assert_eq!(found.account, opened.account);
        assert_eq!(found.seen.access, "access-0");
        assert!(sessions
            .find("another id")
            .await
            .expect("answers")
            .is_none());
        assert_eq!(sessions.end(&opened.id).await.as_deref(), Some("refresh-0"));
        assert!(sessions.find(&opened.id).await.expect("answers").is_none());
        let _ = jetstream.delete_key_value(&bucket).await;
    }

    #[tokio::test]
    async fn a_session_unused_past_the_idle_timeout_is_ended_when_next_seen() {
        let (sessions, jetstream, bucket) = sessions_in_a_fresh_bucket().await;
        let opened = sessions.open(&signed_in("customer")).await.expect("opened");
        let key = key_of(&opened.id);
        let (revision, mut record) = sessions
            .store
            .read(&key)
            .await
            .expect("the store answers")
            .expect("the session is there");
        record.last_used = Utc::now() - chrono::Duration::seconds(61);
        let written = sessions.store.update(&key, &record, revision).await;
        assert!(matches!(written, Ok(Some(_))), "{written:?}");
        assert!(sessions.find(&opened.id).await.expect("answers").is_none());
        let left = sessions.store.read(&key).await.expect("the store answers");
        assert!(left.is_none(), "removed");
        let _ = jetstream.delete_key_value(&bucket).await;
    }

    #[tokio::test]
    async fn an_unknown_role_opens_no_session() {
        let (sessions, jetstream, bucket) = sessions_in_a_fresh_bucket().await;
        assert!(matches!(
            sessions.open(&signed_in("sommelier")).await,
            Err(OpenError::UnknownRole(_))
        ));
        let _ = jetstream.delete_key_value(&bucket).await;
    }

    #[test]
    fn the_key_is_the_ids_digest_and_never_the_id() {
        let key = key_of("abc");
        assert_eq!(
            key,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_ne!(key_of("abd"), key);
    }

    #[test]
    fn a_renewed_record_has_the_new_tokens_and_no_lease() {
        let signed_in = |access: &str, refresh: &str| SignedIn {
            access_token: access.into(),
            refresh_token: refresh.into(),
            expires_in: 900,
            account: AccountBody {
                id: Uuid::new_v4(),
                email: "chef@brigade.test".into(),
                name: "Auguste".into(),
                role: "chef".into(),
            },
        };
        let mut record = Record::new(&signed_in("a1", "r1"));
        record.refreshing_until = Some(Utc::now());
        let renewed = record.renewed(&signed_in("a2", "r2"));
        assert_eq!(
            (renewed.access.as_str(), renewed.refresh.as_str()),
            ("a2", "r2")
        );
        assert!(renewed.refreshing_until.is_none());
        assert!(renewed.expires_at > Utc::now() + chrono::Duration::seconds(800));
    }
}
