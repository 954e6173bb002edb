//! `/login`, `/register`, `/logout`: plain HTML forms (they work without scripts) that call
//! identity and keep the tokens it hands back in a server-side session, the browser getting
//! only the session's cookie. A new sign-in also renews the CSRF token, so a token planted
//! before signing in is worth nothing after.

use std::sync::Arc;

use brigade_domain::Role;
use brigade_platform::ServiceName;
use maud::{html, Markup};
use poem::http::{header, HeaderValue, StatusCode};
use poem::web::{Data, Form, Query};
use poem::{handler, Request, Response};
use reqwest::Method;
use serde::Deserialize;
use serde_json::json;

use crate::cookies::{self, random_token, Cookie};
use crate::i18n::fill;
use crate::pages::{self, Nav};
use crate::session::{OpenError, SignedIn};
use crate::upstream::{FetchError, Outgoing, Unavailable};
use crate::visitor::Visitor;
use crate::Gateway;

#[derive(Debug, Default, Deserialize)]
pub struct NextQuery {
    #[serde(default)]
    next: Option<String>,
    #[serde(default)]
    notice: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct LoginForm {
    #[serde(default)]
    email: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    next: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct RegisterForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    email: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    phone: String,
    #[serde(default)]
    next: Option<String>,
}

/// Where each role starts.
#[must_use]
pub fn home_of(role: Role) -> &'static str {
    match role {
        Role::Customer => "/",
        Role::Chef => "/kitchen",
        Role::Courier => "/courier",
        Role::Manager => "/manager",
    }
}

/// `next` if it is a path of this site (never another site: no open redirect).
fn safe_next(next: Option<&str>) -> Option<String> {
    let next = next?.trim();
    let local = next.starts_with('/') && !next.starts_with("//") && !next.contains('\\');
    let loops =
        next.starts_with("/login") || next.starts_with("/logout") || next.starts_with("/register");
    (local && !loops).then(|| next.to_owned())
}

/// `GET /login`.
#[handler]
pub fn login_form(visitor: Data<&Visitor>, Query(query): Query<NextQuery>) -> Response {
    if let Some(account) = visitor.account() {
        return pages::redirect(home_of(account.role));
    }
    let notice = match query.notice.as_deref() {
        Some("signed-out") => Some(visitor.t.signed_out),
        Some("session-ended") => Some(visitor.t.error_session),
        _ => None,
    };
    let form = login_markup(&visitor, "", query.next.as_deref(), None, notice);
    pages::page(
        &visitor,
        StatusCode::OK,
        visitor.t.sign_in_title,
        Nav::None,
        form,
    )
}

/// `POST /login`.
#[handler]
pub async fn login(
    request: &Request,
    gateway: Data<&Arc<Gateway>>,
    visitor: Data<&Visitor>,
    Form(form): Form<LoginForm>,
) -> Response {
    let t = visitor.t;
    match sign_in(
        &gateway,
        &visitor,
        request,
        &form.email,
        &form.password,
        form.next.as_deref(),
    )
    .await
    {
        Ok(response) => response,
        Err(error) => {
            let (status, message) = match &error {
                FetchError::Status { status: 401, .. } => {
                    (StatusCode::UNAUTHORIZED, t.bad_credentials)
                }
                FetchError::Status { status: 429, .. } => {
                    (StatusCode::TOO_MANY_REQUESTS, t.too_many_attempts)
                }
                error if error.is_unavailable() => {
                    (StatusCode::SERVICE_UNAVAILABLE, t.unavailable_identity)
                }
                _ => (StatusCode::UNPROCESSABLE_ENTITY, t.bad_credentials),
            };
            let markup = login_markup(
                &visitor,
                &form.email,
                form.next.as_deref(),
                Some(message),
                None,
            );
            pages::page(&visitor, status, t.sign_in_title, Nav::None, markup)
        }
    }
}

/// Signs in at identity, opens a session, and redirects to `next` or the role's start page.
async fn sign_in(
    gateway: &Gateway,
    visitor: &Visitor,
    request: &Request,
    email: &str,
    password: &str,
    next: Option<&str>,
) -> Result<Response, FetchError> {
    let mut call = Outgoing::new(ServiceName::Identity, Method::POST, "/auth/login")
        .json(&json!({ "email": email.trim(), "password": password }));
    // Identity limits failed sign-ins per client address; it believes this header from the
    // gateway once the gateway is among its trusted proxies.
    if let Some(peer) = request.remote_addr().as_socket_addr() {
        if let Ok(value) = HeaderValue::from_str(&peer.ip().to_string()) {
            call.headers.insert("x-forwarded-for", value);
        }
    }
    let signed_in: SignedIn = gateway.upstream.call_json(&call).await?;
    let session = gateway
        .sessions
        .open(&signed_in)
        .await
        .map_err(|error| match error {
            OpenError::UnknownRole(_) => {
                tracing::warn!(%error, "sign-in with a role the gateway does not know");
                FetchError::Invalid {
                    service: ServiceName::Identity,
                }
            }
            OpenError::Store(_) => {
                tracing::warn!(%error, "no session could be opened");
                FetchError::Unavailable(Unavailable::Unreachable {
                    service: ServiceName::Identity,
                })
            }
        })?;
    if let Some(previous) = &visitor.session {
        end_session(gateway, previous.id.as_str()).await;
    }
    let target = safe_next(next).unwrap_or_else(|| home_of(session.account.role).to_owned());
    let mut response = pages::redirect(&target);
    cookies::append(
        response.headers_mut(),
        &Cookie::Session.set(&session.id, visitor.tls),
    );
    cookies::append(
        response.headers_mut(),
        &Cookie::Csrf.set(&random_token(), visitor.tls),
    );
    Ok(response)
}

/// `POST /logout`: ends the session here and at identity.
#[handler]
pub async fn logout(gateway: Data<&Arc<Gateway>>, visitor: Data<&Visitor>) -> Response {
    if let Some(session) = &visitor.session {
        end_session(&gateway, &session.id).await;
    }
    let mut response = pages::redirect("/login?notice=signed-out");
    cookies::append(response.headers_mut(), &Cookie::Session.clear(visitor.tls));
    cookies::append(
        response.headers_mut(),
        &Cookie::Csrf.set(&random_token(), visitor.tls),
    );
    response
}

async fn end_session(gateway: &Gateway, id: &str) {
    if let Some(refresh_token) = gateway.sessions.end(id).await {
        let call = Outgoing::new(ServiceName::Identity, Method::POST, "/auth/logout")
            .json(&json!({ "refreshToken": refresh_token }));
        // Best effort: the session is gone from here either way, and its refresh token with it.
        if let Err(error) = gateway.upstream.send(&call).await {
            tracing::info!(%error, "identity not told of a sign-out");
        }
    }
}

/// `GET /register`.
#[handler]
pub fn register_form(visitor: Data<&Visitor>, Query(query): Query<NextQuery>) -> Response {
    let empty = RegisterForm {
        name: String::new(),
        email: String::new(),
        password: String::new(),
        phone: String::new(),
        next: query.next,
    };
    let markup = register_markup(&visitor, &empty, None, None);
    pages::page(
        &visitor,
        StatusCode::OK,
        visitor.t.sign_up_title,
        Nav::None,
        markup,
    )
}

/// `POST /register`: creates a customer account, then signs it in.
#[handler]
pub async fn register(
    request: &Request,
    gateway: Data<&Arc<Gateway>>,
    visitor: Data<&Visitor>,
    Form(form): Form<RegisterForm>,
) -> Response {
    let t = visitor.t;
    let phone = Some(form.phone.trim()).filter(|p| !p.is_empty());
    let call = Outgoing::new(ServiceName::Identity, Method::POST, "/auth/register").json(&json!({
        "name": form.name.trim(),
        "email": form.email.trim(),
        "password": form.password,
        "phone": phone,
    }));
    let created = gateway.upstream.call_json::<serde_json::Value>(&call).await;
    let error = match created {
        Ok(_) => match sign_in(
            &gateway,
            &visitor,
            request,
            &form.email,
            &form.password,
            form.next.as_deref(),
        )
        .await
        {
            Ok(response) => return response,
            Err(error) => error,
        },
        Err(error) => error,
    };
    let (status, message, field) = match &error {
        FetchError::Status { status: 409, .. } => (
            StatusCode::CONFLICT,
            t.email_taken.to_owned(),
            Some("email"),
        ),
        FetchError::Status { status: 429, .. } => (
            StatusCode::TOO_MANY_REQUESTS,
            t.too_many_attempts.to_owned(),
            None,
        ),
        FetchError::Status { status, problem } if *status < 500 => {
            let field = problem.as_ref().and_then(|p| p.field.clone());
            let label = match field.as_deref() {
                Some("email") => t.email,
                Some("password") => t.password,
                Some("name") => t.name,
                Some("phone") => t.phone,
                _ => "",
            };
            let message = if label.is_empty() {
                t.error_generic.to_owned()
            } else {
                fill(t.check_fields, &[("detail", label)])
            };
            let field = match field.as_deref() {
                Some("email") => Some("email"),
                Some("password") => Some("password"),
                Some("name") => Some("name"),
                Some("phone") => Some("phone"),
                _ => None,
            };
            (StatusCode::UNPROCESSABLE_ENTITY, message, field)
        }
        _ => (
            StatusCode::SERVICE_UNAVAILABLE,
            t.unavailable_identity.to_owned(),
            None,
        ),
    };
    let markup = register_markup(&visitor, &form, Some(&message), field);
    pages::page(&visitor, status, t.sign_up_title, Nav::None, markup)
}

fn login_markup(
    visitor: &Visitor,
    email: &str,
    next: Option<&str>,
    error: Option<&str>,
    notice: Option<&str>,
) -> Markup {
    let t = visitor.t;
    let next = safe_next(next);
    let register_link = match &next {
        Some(next) => format!("/register?next={}", encode(next)),
        None => "/register".to_owned(),
    };
    html! {
        section.auth-card {
            h1 { (t.sign_in_title) }
            p.lead { (t.sign_in_intro) }
            @if let Some(notice) = notice {
                div.notice.notice-info role="status" { (notice) }
            }
            @if let Some(error) = error {
                div.notice.notice-error role="alert" id="login-error" { (error) }
            }
            form.form-stack method="post" action="/login" {
                input type="hidden" name="_csrf" value=(visitor.csrf);
                @if let Some(next) = &next { input type="hidden" name="next" value=(next); }
                label for="email" { (t.email) }
                input #email name="email" type="email" autocomplete="username" required
                    value=(email) aria-describedby=[error.map(|_| "login-error")];
                label for="password" { (t.password) }
                input #password name="password" type="password" autocomplete="current-password" required;
                button.btn.btn-primary.btn-block type="submit" { (t.sign_in) }
            }
            p.auth-switch { (t.no_account) " " a href=(register_link) { (t.sign_up) } }
        }
    }
}

fn register_markup(
    visitor: &Visitor,
    form: &RegisterForm,
    error: Option<&str>,
    field: Option<&str>,
) -> Markup {
    let t = visitor.t;
    let next = safe_next(form.next.as_deref());
    let login_link = match &next {
        Some(next) => format!("/login?next={}", encode(next)),
        None => "/login".to_owned(),
    };
    let invalid = |name: &str| {
        if field == Some(name) {
            Some("true")
        } else {
            None
        }
    };
    html! {
        section.auth-card {
            h1 { (t.sign_up_title) }
            p.lead { (t.sign_up_intro) }
            @if let Some(error) = error {
                div.notice.notice-error role="alert" id="register-error" { (error) }
            }
            form.form-stack method="post" action="/register" {
                input type="hidden" name="_csrf" value=(visitor.csrf);
                @if let Some(next) = &next { input type="hidden" name="next" value=(next); }
                label for="name" { (t.name) }
                input #name name="name" autocomplete="name" required value=(form.name) aria-invalid=[invalid("name")];
                label for="email" { (t.email) }
                input #email name="email" type="email" autocomplete="email" required value=(form.email) aria-invalid=[invalid("email")];
                label for="password" { (t.password) }
                input #password name="password" type="password" autocomplete="new-password" required minlength="8"
                    aria-describedby="password-hint" aria-invalid=[invalid("password")];
                p.hint #password-hint { (t.password_hint) }
                label for="phone" { (t.phone) " " span.muted { "(" (t.optional) ")" } }
                input #phone name="phone" type="tel" autocomplete="tel" value=(form.phone) aria-invalid=[invalid("phone")];
                button.btn.btn-primary.btn-block type="submit" { (t.sign_up) }
            }
            p.auth-switch { (t.have_account) " " a href=(login_link) { (t.sign_in) } }
        }
    }
}

fn encode(path: &str) -> String {
    path.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => {
                (b as char).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect()
}

/// The sign-in link of a page: back to `here` afterwards.
#[must_use]
pub fn login_link(here: &str) -> String {
    match safe_next(Some(here)) {
        Some(next) if next != "/" => format!("/login?next={}", encode(&next)),
        _ => "/login".to_owned(),
    }
}

/// Redirects to the sign-in page, coming back to `here` afterwards.
#[must_use]
pub fn to_sign_in(here: &str) -> Response {
    let mut response = pages::redirect(&login_link(here));
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_local_paths_are_followed_after_sign_in() {
        assert_eq!(safe_next(Some("/cart")).as_deref(), Some("/cart"));
        assert_eq!(safe_next(Some("//evil.example")), None);
        assert_eq!(safe_next(Some("https://evil.example")), None);
        assert_eq!(safe_next(Some("/\\evil.example")), None);
        assert_eq!(safe_next(Some("/logout")), None);
    }
}
