//! `POST /staff`, `POST /accounts/{accountId}/disable`, `PUT /accounts/{accountId}/role`:
//! managers run the restaurant's accounts.

use brigade_domain::Role;
use brigade_platform::auth::BearerAuth;
use brigade_platform::Problem;
use poem_openapi::param::Path;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};
use uuid::Uuid;

use super::sessions::{AccountCreated, Created};
use super::{parse_role, IdentityTags};
use crate::accounts::NewAccount;
use crate::identity::Identity;

pub struct StaffApi {
    pub(crate) identity: Identity,
}

/// A chef, courier or manager account.
#[derive(Object)]
pub struct StaffMember {
    pub email: String,
    /// 8 to 128 characters; the staff member should change it (`POST /me/password`).
    pub password: String,
    pub name: String,
    pub phone: Option<String>,
    /// `chef`, `courier` or `manager`.
    pub role: String,
}

#[derive(Object)]
pub struct Disabling {
    /// Kept in the account's history.
    pub reason: Option<String>,
}

#[derive(Object)]
pub struct RoleChange {
    /// `customer`, `chef`, `courier` or `manager`.
    pub role: String,
}

#[derive(ApiResponse)]
pub enum Done {
    #[oai(status = 204)]
    Done,
}

#[OpenApi(tag = "IdentityTags::Staff")]
impl StaffApi {
    /// Creates a chef, courier or manager account. A courier account also becomes a courier
    /// profile in the delivery service (it consumes `identity.account.registered`).
    #[oai(path = "/staff", method = "post")]
    async fn create_staff(
        &self,
        auth: BearerAuth,
        body: Json<StaffMember>,
    ) -> Result<Created, Problem> {
        auth.0.require(&[Role::Manager])?;
        let StaffMember {
            email,
            password,
            name,
            phone,
            role,
        } = body.0;
        let role = parse_role(&role, "role")?;
        let new = NewAccount {
            email,
            password,
            name,
            phone,
        };
        let account_id = self
            .identity
            .register_staff(new, role, auth.0.actor())
            .await?;
        Ok(Created::Created(Json(AccountCreated { account_id })))
    }

    /// Disables an account: no more sign-ins, every session ends, its access tokens are refused.
    #[oai(path = "/accounts/:account_id/disable", method = "post")]
    async fn disable(
        &self,
        auth: BearerAuth,
        account_id: Path<Uuid>,
        body: Json<Disabling>,
    ) -> Result<Done, Problem> {
        auth.0.require(&[Role::Manager])?;
        self.identity
            .disable(account_id.0, auth.0.actor(), body.0.reason)
            .await?;
        Ok(Done::Done)
    }

    /// Gives an account another role, effective from its next token refresh.
    #[oai(path = "/accounts/:account_id/role", method = "put")]
    async fn grant_role(
        &self,
        auth: BearerAuth,
        account_id: Path<Uuid>,
        body: Json<RoleChange>,
    ) -> Result<Done, Problem> {
        auth.0.require(&[Role::Manager])?;
        let role = parse_role(&body.0.role, "role")?;
        self.identity
            .grant_role(account_id.0, role, auth.0.actor())
            .await?;
        Ok(Done::Done)
    }
}
