//! Signed-in browsers. The browser holds only an opaque session id (an `HttpOnly` cookie); the
//! access and refresh tokens stay here, out of reach of any script the page runs.
//!
//! The access token lives about 15 minutes. Shortly before it expires (or when a service says
//! it has), the next request exchanges the refresh token for new ones. Only one exchange runs
//! per session at a time: identity treats a refresh token sent twice as stolen and ends the
//! session, and a page with a live stream and a few clicks would otherwise send it twice.
//!
//! Sessions are kept in memory: a restarted gateway signs everyone out, and several gateways
//! need sticky sessions (or a shared store in place of this map).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use brigade_domain::Role;
use brigade_platform::ServiceName;
use reqwest::Method;
use serde::Deserialize;
use uuid::Uuid;

use crate::cookies::random_token;
use crate::upstream::{FetchError, Outgoing, Unavailable, Upstream};

/// Refresh this long before the access token expires, so that a request never arrives at a
/// service with a token that expires on the way.
const REFRESH_MARGIN: Duration = Duration::from_secs(30);

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

#[derive(Debug, Clone, Deserialize)]
pub struct AccountBody {
    pub id: Uuid,
    pub email: String,
    pub name: String,
    pub role: String,
}

#[derive(Debug)]
struct Tokens {
    access: String,
    refresh: String,
    expires_at: Instant,
}

/// One signed-in browser.
#[derive(Debug)]
pub struct Session {
    pub id: String,
    pub account: Account,
    /// An async lock: the refresh happens while holding it, so concurrent requests wait for
    /// the one exchange instead of each making their own.
    tokens: tokio::sync::Mutex<Tokens>,
    last_used: Mutex<Instant>,
}

/// Why a session cannot give a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenError {
    /// Identity refused the refresh: the session ended (signed out elsewhere, disabled,
    /// expired). The browser must sign in again.
    Ended,
    /// The token expired and identity cannot be reached to refresh it.
    Unavailable(Unavailable),
}

impl Session {
    /// A valid access token, refreshed first if it is about to expire. When identity is down
    /// and the token has not quite expired, it is used as it is.
    ///
    /// # Errors
    /// [`TokenError`] when the session has ended or cannot be refreshed.
    pub async fn access_token(&self, upstream: &Upstream) -> Result<String, TokenError> {
        let mut tokens = self.tokens.lock().await;
        let now = Instant::now();
        if now + REFRESH_MARGIN < tokens.expires_at {
            return Ok(tokens.access.clone());
        }
        match refresh(upstream, &tokens.refresh).await {
            Ok(signed_in) => {
                *tokens = tokens_of(&signed_in);
                Ok(tokens.access.clone())
            }
            Err(TokenError::Unavailable(_)) if now < tokens.expires_at => Ok(tokens.access.clone()),
            Err(error) => Err(error),
        }
    }

    /// A new access token after a service refused `rejected` (expired early, keys rotated):
    /// refreshed once, unless another request already did.
    ///
    /// # Errors
    /// [`TokenError`] when the session has ended or cannot be refreshed.
    pub async fn renew(&self, rejected: &str, upstream: &Upstream) -> Result<String, TokenError> {
        let mut tokens = self.tokens.lock().await;
        if tokens.access != rejected {
            return Ok(tokens.access.clone());
        }
        let signed_in = refresh(upstream, &tokens.refresh).await?;
        *tokens = tokens_of(&signed_in);
        Ok(tokens.access.clone())
    }

    /// The refresh token, to end the session at identity.
    pub async fn refresh_token(&self) -> String {
        self.tokens.lock().await.refresh.clone()
    }

    fn touch(&self) -> Instant {
        let mut last = self
            .last_used
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let previous = *last;
        *last = Instant::now();
        previous
    }

    fn last_used(&self) -> Instant {
        *self
            .last_used
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
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

fn tokens_of(signed_in: &SignedIn) -> Tokens {
    Tokens {
        access: signed_in.access_token.clone(),
        refresh: signed_in.refresh_token.clone(),
        expires_at: Instant::now() + Duration::from_secs(signed_in.expires_in),
    }
}

/// Every signed-in browser of this gateway.
pub struct Sessions {
    map: RwLock<HashMap<String, Arc<Session>>>,
    idle_timeout: Duration,
    max: usize,
}

impl Sessions {
    #[must_use]
    pub fn new(idle_timeout: Duration, max: usize) -> Self {
        Self {
            map: RwLock::new(HashMap::new()),
            idle_timeout,
            max: max.max(1),
        }
    }

    /// Opens a session for a successful sign-in.
    ///
    /// # Errors
    /// When identity answered a role this gateway does not know.
    pub fn open(&self, signed_in: &SignedIn) -> Result<Arc<Session>, String> {
        let role: Role = signed_in
            .account
            .role
            .parse()
            .map_err(|e: brigade_domain::UnknownRole| e.to_string())?;
        let session = Arc::new(Session {
            id: random_token(),
            account: Account {
                id: signed_in.account.id,
                email: signed_in.account.email.clone(),
                name: signed_in.account.name.clone(),
                role,
            },
            tokens: tokio::sync::Mutex::new(tokens_of(signed_in)),
            last_used: Mutex::new(Instant::now()),
        });
        let mut map = self.write();
        if map.len() >= self.max {
            self.evict(&mut map);
        }
        map.insert(session.id.clone(), session.clone());
        Ok(session)
    }

    /// The session with this id, if it exists and has been used recently.
    #[must_use]
    pub fn find(&self, id: &str) -> Option<Arc<Session>> {
        let session = self.read().get(id).cloned()?;
        if session.touch().elapsed() > self.idle_timeout {
            self.write().remove(id);
            return None;
        }
        Some(session)
    }

    /// Forgets a session.
    pub fn end(&self, id: &str) -> Option<Arc<Session>> {
        self.write().remove(id)
    }

    /// How many sessions are open.
    #[must_use]
    pub fn len(&self) -> usize {
        self.read().len()
    }

    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Forgets every session unused for longer than the idle timeout.
    pub fn sweep(&self) {
        let idle = self.idle_timeout;
        self.write()
            .retain(|_, session| session.last_used().elapsed() <= idle);
    }

    /// Makes room: the idle sessions go, and if none is idle, the least recently used one.
    fn evict(&self, map: &mut HashMap<String, Arc<Session>>) {
        let idle = self.idle_timeout;
        map.retain(|_, session| session.last_used().elapsed() <= idle);
        if map.len() >= self.max {
            let oldest = map
                .iter()
                .min_by_key(|(_, session)| session.last_used())
                .map(|(id, _)| id.clone());
            if let Some(id) = oldest {
                map.remove(&id);
            }
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<String, Arc<Session>>> {
        // Each update of the map is a single insert or remove: a poisoned lock is still sound.
        self.map
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<String, Arc<Session>>> {
        self.map
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signed_in(role: &str) -> SignedIn {
        SignedIn {
            access_token: "a".into(),
            refresh_token: "r".into(),
            expires_in: 900,
            account: AccountBody {
                id: Uuid::new_v4(),
                email: "chef@brigade.test".into(),
                name: "Auguste".into(),
                role: role.into(),
            },
        }
    }

    #[test]
    fn a_session_is_found_by_its_id_until_it_ends() {
        let sessions = Sessions::new(Duration::from_secs(60), 10);
        let session = sessions.open(&signed_in("chef")).expect("opened");
        assert_eq!(session.account.role, Role::Chef);
        assert!(sessions.find(&session.id).is_some());
        sessions.end(&session.id);
        assert!(sessions.find(&session.id).is_none());
    }

    #[test]
    fn past_the_limit_the_least_recently_used_session_goes() {
        let sessions = Sessions::new(Duration::from_secs(60), 2);
        let first = sessions.open(&signed_in("customer")).expect("opened");
        std::thread::sleep(Duration::from_millis(5));
        let second = sessions.open(&signed_in("customer")).expect("opened");
        std::thread::sleep(Duration::from_millis(5));
        assert!(sessions.find(&first.id).is_some());
        sessions.open(&signed_in("customer")).expect("opened");
        assert_eq!(sessions.len(), 2);
        assert!(sessions.find(&second.id).is_none());
        assert!(sessions.find(&first.id).is_some());
    }

    #[test]
    fn an_unknown_role_is_refused() {
        let sessions = Sessions::new(Duration::from_secs(60), 2);
        assert!(sessions.open(&signed_in("sommelier")).is_err());
    }
}
