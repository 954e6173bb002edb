//! Errors as RFC 9457 `application/problem+json`, with a stable `type` per kind of problem
//! (`https://brigade.dev/errors/{code}`), the field at fault when there is one, and a human
//! message. Endpoints return [`Problem`]; every other error poem raises (an unknown route, a
//! body that is not JSON, a missing token) is turned into the same shape by [`render_error`].

use poem::http::StatusCode;
use poem::{IntoResponse, Response};
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object};

/// Base of every problem `type`.
pub const TYPE_BASE: &str = "https://brigade.dev/errors/";

/// The problem+json body.
#[derive(Debug, Clone, PartialEq, Eq, Object, serde::Serialize, serde::Deserialize)]
#[oai(rename_all = "camelCase")]
#[serde(rename_all = "camelCase")]
pub struct ProblemDetails {
    /// A URI naming the kind of problem; stable, safe to branch on.
    #[oai(rename = "type")]
    #[serde(rename = "type")]
    pub kind: String,
    /// A short summary of the kind of problem.
    pub title: String,
    /// The HTTP status.
    pub status: u16,
    /// What went wrong this time, for a human.
    pub detail: String,
    /// The request field at fault, as a JSON pointer-like path (`items/0/quantity`).
    #[oai(skip_serializing_if_is_none)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// The extension members some problems add (RFC 9457 §3.2), at the top level. Boxed so
    /// that a `Result<_, Problem>` stays small.
    #[oai(flatten)]
    #[serde(flatten)]
    pub extensions: Box<ProblemExtensions>,
}

/// Extension members of some problems.
#[derive(Debug, Clone, Default, PartialEq, Eq, Object, serde::Serialize, serde::Deserialize)]
#[oai(rename_all = "camelCase", skip_serializing_if_is_none)]
#[serde(rename_all = "camelCase")]
pub struct ProblemExtensions {
    /// The items the problem is about, for a client to show (the dishes and allergens of
    /// `allergen-confirmation-required`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub items: Option<serde_json::Value>,
    /// The earliest time a refused request may succeed (the next kitchen slot with room, for
    /// `kitchen-slot-full`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_available_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// Every error an endpoint may answer with.
#[derive(Debug, ApiResponse)]
pub enum Problem {
    /// The request is malformed.
    #[oai(status = 400, content_type = "application/problem+json")]
    BadRequest(Json<ProblemDetails>),
    /// No valid access token.
    #[oai(status = 401, content_type = "application/problem+json")]
    Unauthorized(Json<ProblemDetails>),
    /// The caller may not do this.
    #[oai(status = 403, content_type = "application/problem+json")]
    Forbidden(Json<ProblemDetails>),
    /// No such resource (or not one the caller may know of).
    #[oai(status = 404, content_type = "application/problem+json")]
    NotFound(Json<ProblemDetails>),
    /// The resource's state forbids this now (too late, already done, changed meanwhile).
    #[oai(status = 409, content_type = "application/problem+json")]
    Conflict(Json<ProblemDetails>),
    /// The body is larger than a service accepts (256 KiB).
    #[oai(status = 413, content_type = "application/problem+json")]
    PayloadTooLarge(Json<ProblemDetails>),
    /// The body is not in a media type the endpoint reads (`application/json`).
    #[oai(status = 415, content_type = "application/problem+json")]
    UnsupportedMediaType(Json<ProblemDetails>),
    /// The request is well-formed but its content is not acceptable.
    #[oai(status = 422, content_type = "application/problem+json")]
    Unprocessable(Json<ProblemDetails>),
    /// Too many attempts; retry after the given number of seconds.
    #[oai(status = 429, content_type = "application/problem+json")]
    TooManyRequests(Json<ProblemDetails>, #[oai(header = "Retry-After")] u64),
    /// Something failed on our side; the request was not applied.
    #[oai(status = 500, content_type = "application/problem+json")]
    Internal(Json<ProblemDetails>),
    /// A dependency is unavailable; retry later.
    #[oai(status = 503, content_type = "application/problem+json")]
    Unavailable(Json<ProblemDetails>),
}

/// The page and page size a list endpoint was asked for (`page`, `pageSize` query
/// parameters): `default_size` when no size is given; pages count from 1 and hold 1 to
/// `max_size` `items`, or the answer is a 400 naming the parameter at fault.
///
/// # Errors
/// Page 0, or a page size of 0 or over `max_size`.
pub fn page_request(
    page: Option<u32>,
    page_size: Option<u32>,
    default_size: u32,
    max_size: u32,
    items: &str,
) -> Result<(u32, u32), Problem> {
    let page = page.unwrap_or(1);
    if page == 0 {
        return Err(Problem::bad_request("invalid-page", "pages count from 1").with_field("page"));
    }
    let page_size = page_size.unwrap_or(default_size);
    if !(1..=max_size).contains(&page_size) {
        return Err(Problem::bad_request(
            "invalid-page-size",
            format!("a page holds 1 to {max_size} {items}"),
        )
        .with_field("pageSize"));
    }
    Ok((page, page_size))
}

impl Problem {
    /// A problem with the given status, stable code and message.
    #[must_use]
    pub fn new(status: StatusCode, code: &str, detail: impl Into<String>) -> Self {
        let details = details(status, code, detail.into(), None);
        match status.as_u16() {
            400 => Self::BadRequest(Json(details)),
            401 => Self::Unauthorized(Json(details)),
            403 => Self::Forbidden(Json(details)),
            404 => Self::NotFound(Json(details)),
            409 => Self::Conflict(Json(details)),
            413 => Self::PayloadTooLarge(Json(details)),
            415 => Self::UnsupportedMediaType(Json(details)),
            422 => Self::Unprocessable(Json(details)),
            429 => Self::TooManyRequests(Json(details), 1),
            503 => Self::Unavailable(Json(details)),
            _ => Self::Internal(Json(details)),
        }
    }

    /// Adds the `items` extension member.
    #[must_use]
    pub fn with_items(mut self, items: serde_json::Value) -> Self {
        self.details_mut().extensions.items = Some(items);
        self
    }

    /// Adds the `nextAvailableAt` extension member.
    #[must_use]
    pub fn with_next_available_at(mut self, at: chrono::DateTime<chrono::Utc>) -> Self {
        self.details_mut().extensions.next_available_at = Some(at);
        self
    }

    /// Names the request field at fault.
    #[must_use]
    pub fn with_field(mut self, field: impl Into<String>) -> Self {
        self.details_mut().field = Some(field.into());
        self
    }

    #[must_use]
    pub fn bad_request(code: &str, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, detail)
    }
    #[must_use]
    pub fn unauthorized(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", detail)
    }
    #[must_use]
    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", detail)
    }
    #[must_use]
    pub fn not_found(code: &str, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, code, detail)
    }
    #[must_use]
    pub fn conflict(code: &str, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, code, detail)
    }
    #[must_use]
    pub fn unprocessable(code: &str, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, code, detail)
    }
    /// 429 with `Retry-After`.
    #[must_use]
    pub fn too_many_requests(detail: impl Into<String>, retry_after_secs: u64) -> Self {
        let details = details(
            StatusCode::TOO_MANY_REQUESTS,
            "too-many-requests",
            detail.into(),
            None,
        );
        Self::TooManyRequests(Json(details), retry_after_secs.max(1))
    }
    /// A 503 saying which dependency is missing.
    #[must_use]
    pub fn unavailable(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "service-unavailable",
            detail,
        )
    }
    /// A 500 whose cause is logged, not shown.
    #[must_use]
    pub fn internal(cause: &dyn std::fmt::Display) -> Self {
        tracing::error!(%cause, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "an internal error occurred; nothing was applied",
        )
    }

    /// The body.
    #[must_use]
    pub fn details(&self) -> &ProblemDetails {
        match self {
            Self::BadRequest(Json(d))
            | Self::Unauthorized(Json(d))
            | Self::Forbidden(Json(d))
            | Self::NotFound(Json(d))
            | Self::Conflict(Json(d))
            | Self::PayloadTooLarge(Json(d))
            | Self::UnsupportedMediaType(Json(d))
            | Self::Unprocessable(Json(d))
            | Self::TooManyRequests(Json(d), _)
            | Self::Internal(Json(d))
            | Self::Unavailable(Json(d)) => d,
        }
    }

    fn details_mut(&mut self) -> &mut ProblemDetails {
        match self {
            Self::BadRequest(Json(d))
            | Self::Unauthorized(Json(d))
            | Self::Forbidden(Json(d))
            | Self::NotFound(Json(d))
            | Self::Conflict(Json(d))
            | Self::PayloadTooLarge(Json(d))
            | Self::UnsupportedMediaType(Json(d))
            | Self::Unprocessable(Json(d))
            | Self::TooManyRequests(Json(d), _)
            | Self::Internal(Json(d))
            | Self::Unavailable(Json(d)) => d,
        }
    }
}

fn details(
    status: StatusCode,
    code: &str,
    detail: String,
    field: Option<String>,
) -> ProblemDetails {
    ProblemDetails {
        kind: format!("{TYPE_BASE}{code}"),
        title: status.canonical_reason().unwrap_or("Error").to_owned(),
        status: status.as_u16(),
        detail,
        field,
        extensions: Box::default(),
    }
}

/// Renders any error poem raised outside an endpoint's own answers as problem+json, so that
/// clients meet one error shape everywhere.
pub async fn render_error(error: poem::Error) -> Response {
    let status = error.status();
    let message = error.to_string();
    // A problem an endpoint or the auth guard answered with is already in shape: keep it.
    let response = error.into_response();
    let is_problem = response
        .headers()
        .get(poem::http::header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/problem+json"));
    if is_problem {
        return response;
    }
    let (code, field) = match status.as_u16() {
        400 => ("invalid-request", field_of(&message)),
        401 => ("unauthorized", None),
        404 => ("not-found", None),
        405 => ("method-not-allowed", None),
        408 => ("request-timeout", None),
        413 => ("payload-too-large", None),
        415 => ("unsupported-media-type", None),
        s if s >= 500 => ("internal", None),
        _ => ("invalid-request", None),
    };
    if status.is_server_error() {
        tracing::error!(%message, "unhandled server error");
    }
    let detail = if status.is_server_error() {
        "an internal error occurred; nothing was applied".to_owned()
    } else if status == StatusCode::NOT_FOUND && message.is_empty() {
        "no such resource".to_owned()
    } else {
        message
    };
    let body = details(status, code, detail, field);
    Json(body)
        .with_content_type("application/problem+json")
        .with_status(status)
        .into_response()
}

/// poem-openapi names the field in its parse errors as `failed to parse "name"`; keep it.
fn field_of(message: &str) -> Option<String> {
    let start = message.find("failed to parse \"")? + "failed to parse \"".len();
    let rest = &message[start..];
    let end = rest.find('"')?;
    let field = &rest[..end];
    (!field.is_empty()
        && field
            .chars()
            .all(|c| c.is_alphanumeric() || c == '_' || c == '.'))
    .then(|| field.to_owned())
}

/// Maps a failed command to a problem: the aggregate's own refusal through `refused`, a
/// concurrent change to 409 (the client may retry), an unreachable database to 503.
pub fn command_problem<E: std::error::Error>(
    error: cqrs_es::AggregateError<E>,
    refused: impl FnOnce(E) -> Problem,
) -> Problem {
    match error {
        cqrs_es::AggregateError::UserError(e) => refused(e),
        cqrs_es::AggregateError::AggregateConflict => Problem::conflict(
            "concurrent-modification",
            "someone else changed this at the same moment; nothing was applied, try again",
        ),
        cqrs_es::AggregateError::DatabaseConnectionError(e) => {
            tracing::warn!(error = %e, "database unavailable");
            Problem::unavailable("the database is unavailable; nothing was applied, try again")
        }
        other => Problem::internal(&other),
    }
}

/// Maps a failed read to a problem: the database is unavailable.
#[must_use]
pub fn read_problem(error: &sqlx::Error) -> Problem {
    tracing::warn!(%error, "read failed");
    Problem::unavailable("the database is unavailable; try again")
}
