//! `GET /.well-known/jwks.json` (the public keys every service verifies access tokens with) and
//! `POST /keys/rotate` (a manager starts signing with a new key).

use brigade_domain::Role;
use brigade_platform::auth::{BearerAuth, Jwks};
use brigade_platform::Problem;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};

use super::IdentityTags;
use crate::identity::Identity;

pub struct KeysApi {
    pub(crate) identity: Identity,
}

/// A JSON Web Key Set (RFC 7517) of Ed25519 keys (RFC 8037).
#[derive(Debug, Object)]
pub struct JwkSet {
    pub keys: Vec<PublicKey>,
}

/// One Ed25519 public key.
#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct PublicKey {
    /// `OKP`.
    pub kty: String,
    /// `Ed25519`.
    pub crv: String,
    /// The public key, base64url.
    pub x: String,
    /// The key id, as in the tokens' `kid` header (its RFC 7638 thumbprint).
    pub kid: String,
    /// `EdDSA`.
    pub alg: Option<String>,
    /// `sig`.
    #[oai(rename = "use")]
    pub key_use: Option<String>,
}

#[derive(ApiResponse)]
pub enum JwksResponse {
    #[oai(status = 200)]
    Ok(
        Json<JwkSet>,
        /// Verifiers may cache the keys; they refetch on an unknown `kid` anyway.
        #[oai(header = "Cache-Control")]
        String,
    ),
}

#[derive(Debug, Object)]
pub struct RotatedKey {
    /// The key that signs from now on.
    pub kid: String,
}

#[OpenApi(tag = "IdentityTags::Keys")]
impl KeysApi {
    /// The public keys that verify access tokens: the signing key, and retired keys until the
    /// tokens they signed have expired.
    #[oai(path = "/.well-known/jwks.json", method = "get")]
    async fn jwks(&self) -> Result<JwksResponse, Problem> {
        let jwks = self
            .identity
            .keys()
            .reload()
            .await
            .map_err(|e| Problem::internal(&e))?;
        Ok(JwksResponse::Ok(
            Json(jwk_set(jwks)),
            "public, max-age=300".to_owned(),
        ))
    }

    /// Starts signing access tokens with a new key; tokens signed with the old one stay valid
    /// until they expire.
    #[oai(path = "/keys/rotate", method = "post")]
    async fn rotate(&self, auth: BearerAuth) -> Result<Json<RotatedKey>, Problem> {
        auth.0.require(&[Role::Manager])?;
        let kid = self
            .identity
            .keys()
            .rotate()
            .await
            .map_err(|e| Problem::internal(&e))?;
        Ok(Json(RotatedKey { kid }))
    }
}

fn jwk_set(jwks: Jwks) -> JwkSet {
    JwkSet {
        keys: jwks
            .keys
            .into_iter()
            .map(|jwk| PublicKey {
                kty: jwk.kty,
                crv: jwk.crv,
                x: jwk.x,
                kid: jwk.kid,
                alg: jwk.alg,
                key_use: jwk.key_use,
            })
            .collect(),
    }
}
