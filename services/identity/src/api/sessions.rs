//! `POST /auth/register`, `/auth/login`, `/auth/refresh`, `/auth/logout`.

use std::net::IpAddr;

use brigade_platform::Problem;
use poem::Request;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};
use uuid::Uuid;

use super::IdentityTags;
use crate::accounts::NewAccount;
use crate::identity::Identity;
use crate::sessions::SignedIn;

pub struct SessionsApi {
    pub(crate) identity: Identity,
}

/// A customer's sign-up.
#[derive(Object)]
#[oai(rename_all = "camelCase")]
pub struct Registration {
    pub email: String,
    /// 8 to 128 characters.
    pub password: String,
    pub name: String,
    pub phone: Option<String>,
}

#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct AccountCreated {
    pub account_id: Uuid,
}

#[derive(ApiResponse)]
pub enum Created {
    /// The account exists; sign in with it.
    #[oai(status = 201)]
    Created(Json<AccountCreated>),
}

#[derive(Object)]
pub struct Credentials {
    pub email: String,
    pub password: String,
}

#[derive(Object)]
#[oai(rename_all = "camelCase")]
pub struct RefreshTokenBody {
    pub refresh_token: String,
}

/// The signed-in account, as the client shows it.
#[derive(Debug, Object)]
pub struct AccountSummary {
    pub id: Uuid,
    pub email: String,
    pub name: String,
    /// `customer`, `chef`, `courier` or `manager`.
    pub role: String,
}

#[derive(Object)]
#[oai(rename_all = "camelCase")]
pub struct Tokens {
    /// Send as `Authorization: Bearer <accessToken>` to every service.
    pub access_token: String,
    /// Opaque, single-use: exchange it at `POST /auth/refresh` before `expiresIn` runs out.
    pub refresh_token: String,
    /// Seconds until the access token expires.
    pub expires_in: u64,
    /// Always `Bearer`.
    pub token_type: String,
    pub account: AccountSummary,
}

#[derive(ApiResponse)]
pub enum TokensResponse {
    #[oai(status = 200)]
    Ok(
        Json<Tokens>,
        /// Tokens must not be cached (RFC 6749 §5.1).
        #[oai(header = "Cache-Control")]
        String,
    ),
}

#[derive(ApiResponse)]
pub enum Ended {
    /// The session has ended (or there was none).
    #[oai(status = 204)]
    Ended,
}

impl From<SignedIn> for TokensResponse {
    fn from(signed_in: SignedIn) -> Self {
        let tokens = Tokens {
            access_token: signed_in.access_token,
            refresh_token: signed_in.refresh_token,
            expires_in: signed_in.expires_in,
            token_type: "Bearer".to_owned(),
            account: AccountSummary {
                id: signed_in.account_id,
                email: signed_in.email,
                name: signed_in.name,
                role: signed_in.role.as_str().to_owned(),
            },
        };
        TokensResponse::Ok(Json(tokens), "no-store".to_owned())
    }
}

#[OpenApi(tag = "IdentityTags::Auth")]
impl SessionsApi {
    /// Signs a customer up. Staff accounts are created by a manager (`POST /staff`).
    #[oai(path = "/auth/register", method = "post")]
    async fn register(&self, body: Json<Registration>) -> Result<Created, Problem> {
        let Registration {
            email,
            password,
            name,
            phone,
        } = body.0;
        let account_id = self
            .identity
            .sign_up(NewAccount {
                email,
                password,
                name,
                phone,
            })
            .await?;
        Ok(Created::Created(Json(AccountCreated { account_id })))
    }

    /// Signs in: an access token (about 15 minutes) and a refresh token. Failed attempts are
    /// limited per account and per client address (429 with `Retry-After`).
    #[oai(path = "/auth/login", method = "post")]
    async fn login(
        &self,
        request: &Request,
        body: Json<Credentials>,
    ) -> Result<TokensResponse, Problem> {
        let client = client_address(request, &self.identity.config().trusted_proxies);
        let Credentials { email, password } = body.0;
        Ok(self.identity.login(&email, password, client).await?.into())
    }

    /// Exchanges a refresh token for new tokens; the one sent stops working. Sending a refresh
    /// token a second time ends its session.
    #[oai(path = "/auth/refresh", method = "post")]
    async fn refresh(&self, body: Json<RefreshTokenBody>) -> Result<TokensResponse, Problem> {
        Ok(self.identity.refresh(&body.0.refresh_token).await?.into())
    }

    /// Signs out: the session of this refresh token ends.
    #[oai(path = "/auth/logout", method = "post")]
    async fn logout(&self, body: Json<RefreshTokenBody>) -> Result<Ended, Problem> {
        self.identity.logout(&body.0.refresh_token).await?;
        Ok(Ended::Ended)
    }
}

/// The client's address: the TCP peer, or, when the peer is a trusted proxy, the last address
/// in `X-Forwarded-For` that is not one of the trusted proxies.
fn client_address(request: &Request, trusted_proxies: &[IpAddr]) -> IpAddr {
    let peer = request
        .remote_addr()
        .as_socket_addr()
        .map_or(IpAddr::from([0, 0, 0, 0]), std::net::SocketAddr::ip);
    if !trusted_proxies.contains(&peer) {
        return peer;
    }
    request
        .headers()
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .filter_map(|hop| hop.trim().parse::<IpAddr>().ok())
        .rev()
        .find(|hop| !trusted_proxies.contains(hop))
        .unwrap_or(peer)
}
