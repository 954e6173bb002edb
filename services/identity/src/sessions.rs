//! Sessions: sign-in, refresh, sign-out.
//!
//! A session is one sign-in on one device. It hands out a short-lived access token (a JWT that
//! every service verifies on its own) and an opaque refresh token (32 random bytes), stored
//! only as its SHA-256 digest. Each refresh exchanges the refresh token for a new one and marks
//! the old one used; a used token presented again means two parties hold it, so the whole
//! session ends and both must sign in again (refresh-token reuse detection, OAuth 2.0 Security
//! BCP §4.14). Digests of 256-bit random tokens need no slow hash and no constant-time lookup:
//! there is nothing to guess.

use std::net::IpAddr;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use brigade_domain::identity::{Account, Email};
use brigade_domain::Role;
use brigade_platform::auth::AccessClaims;
use chrono::{DateTime, Utc};
use rand::RngCore as _;
use sha2::{Digest as _, Sha256};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::errors::IdentityError;
use crate::identity::Identity;
use crate::passwords::MAX_CHARS;

/// What a successful sign-in or refresh hands back.
#[derive(Debug, Clone)]
pub struct SignedIn {
    pub access_token: String,
    pub refresh_token: String,
    /// Seconds until the access token expires.
    pub expires_in: u64,
    pub account_id: Uuid,
    pub email: String,
    pub name: String,
    pub role: Role,
}

/// A refresh token as found in the database, with its session.
#[derive(sqlx::FromRow)]
struct PresentedToken {
    session_id: Uuid,
    rotated_at: Option<DateTime<Utc>>,
    account_id: Uuid,
    expires_at: DateTime<Utc>,
    ended_at: Option<DateTime<Utc>>,
}

impl Identity {
    /// Signs in with e-mail and password from `client`.
    ///
    /// # Errors
    /// [`IdentityError::TooManyAttempts`] when throttled; [`IdentityError::InvalidCredentials`]
    /// for an unknown e-mail, a wrong password or a disabled account alike.
    pub async fn login(
        &self,
        email: &str,
        password: String,
        client: IpAddr,
    ) -> Result<SignedIn, IdentityError> {
        // The lookup key of a malformed address is still a key: it is throttled like any other.
        let email_key = Email::parse(email)
            .map(|e| e.lookup_key())
            .unwrap_or_else(|_| email.trim().to_lowercase());
        let attempt = self.throttle.attempt(&email_key, client);
        self.throttle.check(&attempt).await?;

        let stored: Option<(Uuid, String)> = sqlx::query_as(
            "SELECT c.account_id, c.password_hash
               FROM account_emails e JOIN credentials c USING (account_id)
              WHERE e.email_lower = $1",
        )
        .bind(&email_key)
        .fetch_optional(&self.pool)
        .await?;
        let (account_id, hash) = stored.unzip();
        // An absurdly long password cannot match (none longer than MAX_CHARS is ever stored):
        // it still goes through the same work, truncated, so it is not a way to time anything.
        let password: String = password.chars().take(MAX_CHARS + 1).collect();
        let matched = self.passwords.verify(password, hash).await;
        let account = match (matched, account_id) {
            (true, Some(id)) => Some(self.load(id).await?).filter(Account::is_active),
            _ => None,
        };
        let Some(account) = account else {
            self.throttle.record_failure(&attempt).await?;
            return Err(IdentityError::InvalidCredentials);
        };
        self.throttle.clear_account(&attempt).await?;

        let mut tx = self.pool.begin().await?;
        let session_id = Uuid::new_v4();
        let expires_at =
            Utc::now() + chrono::Duration::from_std(self.config.session_ttl).unwrap_or_default();
        sqlx::query(
            "INSERT INTO sessions (session_id, account_id, expires_at) VALUES ($1, $2, $3)",
        )
        .bind(session_id)
        .bind(account.id())
        .bind(expires_at)
        .execute(&mut *tx)
        .await?;
        let refresh_token = issue_refresh_token(&mut tx, session_id).await?;
        tx.commit().await?;
        self.signed_in(&account, refresh_token)
    }

    /// Exchanges a refresh token for a new access token and a new refresh token.
    ///
    /// # Errors
    /// [`IdentityError::InvalidRefreshToken`] for an unknown token or an ended, expired session
    /// or disabled account; [`IdentityError::RefreshTokenReused`] for a token already exchanged
    /// (the session ends).
    pub async fn refresh(&self, refresh_token: &str) -> Result<SignedIn, IdentityError> {
        let mut tx = self.pool.begin().await?;
        // Locking the token row serializes two refreshes racing with the same token: the second
        // one sees it rotated, which is exactly the reuse this must catch.
        let found: Option<PresentedToken> = sqlx::query_as(
            "SELECT t.session_id, t.rotated_at, s.account_id, s.expires_at, s.ended_at
                   FROM refresh_tokens t JOIN sessions s USING (session_id)
                  WHERE t.token_hash = $1
                  FOR UPDATE OF t, s",
        )
        .bind(digest(refresh_token))
        .fetch_optional(&mut *tx)
        .await?;
        let Some(PresentedToken {
            session_id,
            rotated_at,
            account_id,
            expires_at,
            ended_at,
        }) = found
        else {
            return Err(IdentityError::InvalidRefreshToken);
        };
        if ended_at.is_some() || expires_at <= Utc::now() {
            return Err(IdentityError::InvalidRefreshToken);
        }
        if rotated_at.is_some() {
            end_session(&mut tx, session_id, "refresh-token-reused").await?;
            tx.commit().await?;
            tracing::warn!(%account_id, %session_id, "refresh token reused: session ended");
            return Err(IdentityError::RefreshTokenReused);
        }
        let account = self.load(account_id).await?;
        if !account.is_active() {
            end_session(&mut tx, session_id, "account-disabled").await?;
            tx.commit().await?;
            return Err(IdentityError::InvalidRefreshToken);
        }
        sqlx::query("UPDATE refresh_tokens SET rotated_at = now() WHERE token_hash = $1")
            .bind(digest(refresh_token))
            .execute(&mut *tx)
            .await?;
        let next = issue_refresh_token(&mut tx, session_id).await?;
        tx.commit().await?;
        self.signed_in(&account, next)
    }

    /// Ends the session a refresh token belongs to (any token of it, used or not). Unknown
    /// tokens are ignored: signing out is idempotent and tells nothing.
    ///
    /// # Errors
    /// A storage error.
    pub async fn logout(&self, refresh_token: &str) -> Result<(), IdentityError> {
        sqlx::query(
            "UPDATE sessions SET ended_at = now(), end_reason = 'logout'
              WHERE ended_at IS NULL
                AND session_id = (SELECT session_id FROM refresh_tokens WHERE token_hash = $1)",
        )
        .bind(digest(refresh_token))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Ends every open session of an account.
    pub(crate) async fn end_all_sessions(
        &self,
        account_id: Uuid,
        reason: &str,
    ) -> Result<(), IdentityError> {
        sqlx::query(
            "UPDATE sessions SET ended_at = now(), end_reason = $2
              WHERE account_id = $1 AND ended_at IS NULL",
        )
        .bind(account_id)
        .bind(reason)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    fn signed_in(
        &self,
        account: &Account,
        refresh_token: String,
    ) -> Result<SignedIn, IdentityError> {
        let (Some(account_id), Some(role), Some(email), Some(name)) = (
            account.id(),
            account.role(),
            account.email(),
            account.name(),
        ) else {
            return Err(anyhow::anyhow!("signing in an unregistered account").into());
        };
        let claims = AccessClaims::new(account_id, role, Utc::now(), self.config.access_token_ttl);
        Ok(SignedIn {
            access_token: self.keys.sign(&claims),
            refresh_token,
            expires_in: self.config.access_token_ttl.as_secs(),
            account_id,
            email: email.to_string(),
            name: name.to_string(),
            role,
        })
    }
}

/// Deletes sessions (and their tokens) that ended or expired more than a week ago.
///
/// # Errors
/// A database error.
pub async fn purge_old_sessions(pool: &PgPool) -> Result<(), sqlx::Error> {
    sqlx::query(
        "DELETE FROM sessions
          WHERE coalesce(ended_at, expires_at) < now() - interval '7 days'",
    )
    .execute(pool)
    .await?;
    Ok(())
}

async fn issue_refresh_token(
    tx: &mut PgConnection,
    session_id: Uuid,
) -> Result<String, IdentityError> {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let token = URL_SAFE_NO_PAD.encode(bytes);
    sqlx::query("INSERT INTO refresh_tokens (token_hash, session_id) VALUES ($1, $2)")
        .bind(digest(&token))
        .bind(session_id)
        .execute(tx)
        .await?;
    Ok(token)
}

async fn end_session(
    tx: &mut PgConnection,
    session_id: Uuid,
    reason: &str,
) -> Result<(), IdentityError> {
    sqlx::query(
        "UPDATE sessions SET ended_at = now(), end_reason = $2
          WHERE session_id = $1 AND ended_at IS NULL",
    )
    .bind(session_id)
    .bind(reason)
    .execute(tx)
    .await?;
    Ok(())
}

fn digest(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}
