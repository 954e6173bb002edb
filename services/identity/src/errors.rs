//! Everything the identity service may answer instead of success, each with a stable
//! problem+json code (`https://brigade.dev/errors/{code}`), mapped to HTTP once, here.

use brigade_domain::identity::AccountError;
use brigade_platform::auth::AuthError;
use brigade_platform::Problem;
use cqrs_es::AggregateError;
use poem::http::StatusCode;

use crate::passwords::PasswordError;

#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error(transparent)]
    Account(#[from] AccountError),
    #[error(transparent)]
    Password(#[from] PasswordError),
    #[error("an account with this e-mail address already exists")]
    EmailTaken,
    /// Unknown e-mail, wrong password or disabled account: one answer for all three, so the
    /// answer tells an attacker nothing.
    #[error("wrong e-mail address or password")]
    InvalidCredentials,
    #[error("the current password is wrong")]
    WrongCurrentPassword,
    #[error("too many failed sign-ins; try again in {retry_after_secs} seconds")]
    TooManyAttempts { retry_after_secs: u64 },
    /// Unknown, expired or ended: the client must sign in again.
    #[error("this refresh token is not valid; sign in again")]
    InvalidRefreshToken,
    /// A refresh token that was already exchanged came back: someone holds a copy.
    #[error("this refresh token was already used; the session has been ended, sign in again")]
    RefreshTokenReused,
    #[error("the account was changed at the same time; retry")]
    Conflict,
    #[error(transparent)]
    Auth(#[from] AuthError),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl From<sqlx::Error> for IdentityError {
    fn from(error: sqlx::Error) -> Self {
        Self::Internal(error.into())
    }
}

impl From<AggregateError<AccountError>> for IdentityError {
    fn from(error: AggregateError<AccountError>) -> Self {
        match error {
            AggregateError::UserError(error) => Self::Account(error),
            AggregateError::AggregateConflict => Self::Conflict,
            other => Self::Internal(anyhow::anyhow!("account event store: {other}")),
        }
    }
}

impl From<IdentityError> for Problem {
    fn from(error: IdentityError) -> Self {
        let detail = error.to_string();
        match error {
            IdentityError::Account(error) => account_problem(&error),
            IdentityError::Password(error) => {
                Problem::unprocessable(error.code(), detail).with_field("password")
            }
            IdentityError::EmailTaken => {
                Problem::conflict("email-already-registered", detail).with_field("email")
            }
            IdentityError::InvalidCredentials => {
                Problem::new(StatusCode::UNAUTHORIZED, "invalid-credentials", detail)
            }
            IdentityError::WrongCurrentPassword => {
                Problem::unprocessable("wrong-current-password", detail)
                    .with_field("currentPassword")
            }
            IdentityError::TooManyAttempts { retry_after_secs } => {
                Problem::too_many_requests(detail, retry_after_secs)
            }
            IdentityError::InvalidRefreshToken => {
                Problem::new(StatusCode::UNAUTHORIZED, "invalid-refresh-token", detail)
            }
            IdentityError::RefreshTokenReused => {
                Problem::new(StatusCode::UNAUTHORIZED, "refresh-token-reused", detail)
            }
            IdentityError::Conflict => Problem::conflict("concurrent-update", detail),
            IdentityError::Auth(error) => error.into(),
            IdentityError::Internal(error) => Problem::internal(&format!("{error:#}")),
        }
    }
}

fn account_problem(error: &AccountError) -> Problem {
    let detail = error.to_string();
    if let Some(field) = error.field() {
        return Problem::unprocessable(error.code(), detail).with_field(field);
    }
    match error {
        AccountError::NotFound => Problem::not_found(error.code(), detail),
        AccountError::ManagerOnly => Problem::new(StatusCode::FORBIDDEN, error.code(), detail),
        _ => Problem::conflict(error.code(), detail),
    }
}
