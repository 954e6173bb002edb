//! `GET /me`, `PATCH /me`, `POST /me/password`: the signed-in account's own profile.

use brigade_domain::identity::Account;
use brigade_domain::Address;
use brigade_platform::auth::BearerAuth;
use brigade_platform::Problem;
use poem_openapi::payload::Json;
use poem_openapi::types::MaybeUndefined;
use poem_openapi::{ApiResponse, Object, OpenApi};
use uuid::Uuid;

use super::IdentityTags;
use crate::accounts::ProfileChange;
use crate::identity::Identity;

pub struct ProfileApi {
    pub(crate) identity: Identity,
}

/// A saved delivery address.
#[derive(Debug, Clone, Object)]
#[oai(rename_all = "camelCase", skip_serializing_if_is_none)]
pub struct SavedAddressBody {
    /// Absent when adding an address; the id of a saved address to keep (or change) it.
    pub id: Option<Uuid>,
    pub street: String,
    pub city: String,
    pub postal_code: String,
    pub lat: Option<f64>,
    pub lon: Option<f64>,
}

/// The signed-in account's profile.
#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct Profile {
    pub id: Uuid,
    pub email: String,
    pub name: String,
    pub phone: Option<String>,
    /// `customer`, `chef`, `courier` or `manager`.
    pub role: String,
    pub addresses: Vec<SavedAddressBody>,
    /// Declared allergens, among the 14 EU ones (`gluten`, `crustaceans`, `eggs`, `fish`,
    /// `peanuts`, `soybeans`, `milk`, `nuts`, `celery`, `mustard`, `sesame`, `sulphites`,
    /// `lupin`, `molluscs`). An order with a dish containing one needs `allergensConfirmed`.
    pub allergens: Vec<String>,
    /// Declared diets: `vegetarian`, `vegan`, `pescatarian`, `gluten_free`, `dairy_free`,
    /// `halal`, `kosher`.
    pub diets: Vec<String>,
}

/// A profile change: absent fields stay as they are.
#[derive(Debug, Object)]
pub struct ProfilePatch {
    pub name: Option<String>,
    /// `null` removes the phone.
    pub phone: MaybeUndefined<String>,
    /// The complete new list of addresses: entries with the `id` of a saved address keep it,
    /// entries without `id` are added, saved addresses not listed are removed.
    pub addresses: Option<Vec<SavedAddressBody>>,
    /// The complete new list of declared allergens (`[]` declares none); absent: unchanged.
    pub allergens: Option<Vec<String>>,
    /// The complete new list of declared diets (`[]` declares none); absent: unchanged.
    pub diets: Option<Vec<String>>,
}

#[derive(Object)]
#[oai(rename_all = "camelCase")]
pub struct PasswordChangeBody {
    pub current_password: String,
    /// 8 to 128 characters.
    pub new_password: String,
}

#[derive(ApiResponse)]
pub enum PasswordChanged {
    /// The password changed; every session ended, sign in again.
    #[oai(status = 204)]
    Changed,
}

#[OpenApi(tag = "IdentityTags::Profile")]
impl ProfileApi {
    /// The caller's own profile.
    #[oai(path = "/me", method = "get")]
    async fn me(&self, auth: BearerAuth) -> Result<Json<Profile>, Problem> {
        let account = self.identity.account(auth.0.account_id).await?;
        Ok(Json(profile(&account)))
    }

    /// Changes the caller's name, phone, saved addresses, or declared allergens and diets.
    #[oai(path = "/me", method = "patch")]
    async fn update_me(
        &self,
        auth: BearerAuth,
        body: Json<ProfilePatch>,
    ) -> Result<Json<Profile>, Problem> {
        let patch = body.0;
        let change = ProfileChange {
            name: patch.name,
            phone: match patch.phone {
                MaybeUndefined::Undefined => None,
                MaybeUndefined::Null => Some(None),
                MaybeUndefined::Value(phone) => Some(Some(phone)),
            },
            addresses: patch.addresses.map(|list| {
                list.into_iter()
                    .map(|a| {
                        let address = Address {
                            street: a.street,
                            city: a.city,
                            postal_code: a.postal_code,
                            lat: a.lat,
                            lon: a.lon,
                        };
                        (a.id, address)
                    })
                    .collect()
            }),
            allergens: patch.allergens,
            diets: patch.diets,
        };
        let account = self
            .identity
            .update_profile(auth.0.account_id, auth.0.actor(), change)
            .await?;
        Ok(Json(profile(&account)))
    }

    /// Changes the caller's password; every session of the account ends.
    #[oai(path = "/me/password", method = "post")]
    async fn change_password(
        &self,
        auth: BearerAuth,
        body: Json<PasswordChangeBody>,
    ) -> Result<PasswordChanged, Problem> {
        let PasswordChangeBody {
            current_password,
            new_password,
        } = body.0;
        self.identity
            .change_password(
                auth.0.account_id,
                auth.0.actor(),
                current_password,
                new_password,
            )
            .await?;
        Ok(PasswordChanged::Changed)
    }
}

fn profile(account: &Account) -> Profile {
    let dietary = account.dietary();
    Profile {
        id: account.id().unwrap_or_default(),
        email: account.email().map(ToString::to_string).unwrap_or_default(),
        name: account.name().map(ToString::to_string).unwrap_or_default(),
        phone: account.phone().map(ToString::to_string),
        role: account
            .role()
            .map(|r| r.as_str().to_owned())
            .unwrap_or_default(),
        addresses: account
            .addresses()
            .iter()
            .map(|saved| SavedAddressBody {
                id: Some(saved.address_id),
                street: saved.address.street.clone(),
                city: saved.address.city.clone(),
                postal_code: saved.address.postal_code.clone(),
                lat: saved.address.lat,
                lon: saved.address.lon,
            })
            .collect(),
        allergens: dietary
            .allergens()
            .iter()
            .map(|a| a.as_str().to_owned())
            .collect(),
        diets: dietary
            .diets()
            .iter()
            .map(|d| d.as_str().to_owned())
            .collect(),
    }
}
