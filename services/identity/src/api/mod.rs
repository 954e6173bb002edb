//! The identity service's HTTP API (API.md, identity table, plus a few manager endpoints).
//! Handlers are thin: parse, authorize, call one [`Identity`] method, map the result.
//!
//! | endpoint | who | file |
//! |---|---|---|
//! | `POST /auth/register` · `/auth/login` · `/auth/refresh` · `/auth/logout` | anyone / token holder | [`sessions`] |
//! | `GET /me` · `PATCH /me` · `POST /me/password` | any role | [`profile`] |
//! | `POST /staff` · `POST /accounts/{id}/disable` · `PUT /accounts/{id}/role` | manager | [`staff`] |
//! | `GET /.well-known/jwks.json` · `POST /keys/rotate` | anyone · manager | [`keys`] |

mod keys;
mod profile;
mod sessions;
mod staff;

use brigade_domain::Role;
use brigade_platform::Problem;
use poem_openapi::Tags;

use crate::identity::Identity;

pub use keys::KeysApi;
pub use profile::ProfileApi;
pub use sessions::SessionsApi;
pub use staff::StaffApi;

/// Every endpoint of the identity service, as one `OpenApi` value for `Service::serve`.
pub type IdentityApi = (SessionsApi, ProfileApi, StaffApi, KeysApi);

/// The API over `identity`.
#[must_use]
pub fn api(identity: &Identity) -> IdentityApi {
    (
        SessionsApi {
            identity: identity.clone(),
        },
        ProfileApi {
            identity: identity.clone(),
        },
        StaffApi {
            identity: identity.clone(),
        },
        KeysApi {
            identity: identity.clone(),
        },
    )
}

#[derive(Tags)]
enum IdentityTags {
    /// Sign-up, sign-in, token refresh and sign-out.
    Auth,
    /// The signed-in account's own profile.
    Profile,
    /// Staff accounts, managed by managers.
    Staff,
    /// The public keys that verify access tokens.
    Keys,
}

/// A role named in a request body, refused with 422 naming `field` when unknown.
fn parse_role(raw: &str, field: &str) -> Result<Role, Problem> {
    raw.trim()
        .parse()
        .map_err(|e: brigade_domain::UnknownRole| {
            Problem::unprocessable("invalid-role", e.to_string()).with_field(field)
        })
}
