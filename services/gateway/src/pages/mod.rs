//! The pages: one module per person who uses them, all rendered here with maud (compiled, and
//! escaping everything it is given) inside one layout. Each page is complete as served (it
//! works before, and without, its script); its script then keeps it live by fetching fragments
//! these modules also render, so each piece of markup and each string exists once.
//!
//! A service that is down does not take a page down: each part of a page comes from one
//! service, and a part whose service is unavailable is replaced by a plain sentence saying so.

// Page helpers answer `Result<_, Response>`: the error is the page to send instead (a sign-in
// redirect, a refusal). It is built once per request, on the way out: boxing buys nothing.
#![allow(clippy::result_large_err)]

pub mod courier;
pub mod customer;
pub mod kitchen;
pub mod manager;

use brigade_domain::Role;
use brigade_platform::ServiceName;
use chrono::{DateTime, Utc};
use maud::{html, Markup, PreEscaped, DOCTYPE};
use poem::http::{header, HeaderValue, StatusCode};
use poem::{IntoResponse, Response};
use serde::Serialize;

use crate::cookies::{self, Cookie};
use crate::session::TokenError;
use crate::upstream::FetchError;
use crate::visitor::Visitor;
use crate::Gateway;

/// The navigation entry a page belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Nav {
    None,
    Menu,
    Cart,
    Orders,
    Kitchen,
    Courier,
    Board,
    MenuEditor,
    Team,
    Notifications,
    DeadLetters,
}

/// Options of the layout beyond title and body.
#[derive(Debug, Default)]
pub struct Extras<'a> {
    /// Page scripts (modules under `/assets/`), after `common.js`.
    pub scripts: &'a [&'static str],
    /// JSON data for the scripts, as `<script type="application/json" id=…>` blocks (data,
    /// never run: allowed by the CSP).
    pub data: Vec<(&'static str, serde_json::Value)>,
    /// A full-width dark screen (the kitchen).
    pub screen: bool,
}

/// A whole page with the default layout.
#[must_use]
pub fn page(
    visitor: &Visitor,
    status: StatusCode,
    title: &str,
    nav: Nav,
    body: Markup,
) -> Response {
    page_with(visitor, status, title, nav, body, Extras::default())
}

/// A whole page.
#[must_use]
pub fn page_with(
    visitor: &Visitor,
    status: StatusCode,
    title: &str,
    nav: Nav,
    body: Markup,
    extras: Extras<'_>,
) -> Response {
    let markup = layout(visitor, title, nav, body, extras);
    let mut response = markup.into_string().with_status(status).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    response
}

/// A piece of a page, for a script to put in place.
#[must_use]
pub fn fragment(markup: Markup) -> Response {
    let mut response = markup.into_string().into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    response
}

/// A page that says one thing (not found, refused, expired).
#[must_use]
pub fn message_page(visitor: &Visitor, status: StatusCode, title: &str, text: &str) -> Response {
    let home = visitor.role().map_or("/", crate::sign_in::home_of);
    let body = html! {
        section.message-card {
            h1 { (title) }
            p { (text) }
            p { a.btn.btn-primary href=(home) { (visitor.t.back_home) } }
        }
    };
    page(visitor, status, title, Nav::None, body)
}

/// 303 See Other.
#[must_use]
pub fn redirect(to: &str) -> Response {
    Response::builder()
        .status(StatusCode::SEE_OTHER)
        .header(header::LOCATION, to)
        .finish()
}

/// The page is for these roles: a visitor not signed in goes to sign in first; a signed-in
/// visitor with another role is told so.
///
/// # Errors
/// The response to send instead of the page.
pub fn require(visitor: &Visitor, roles: &[Role]) -> Result<(), Response> {
    match visitor.role() {
        None => Err(crate::sign_in::to_sign_in(&visitor.here)),
        Some(role) if roles.contains(&role) => Ok(()),
        Some(_) => Err(message_page(
            visitor,
            StatusCode::FORBIDDEN,
            visitor.t.forbidden_title,
            visitor.t.forbidden_text,
        )),
    }
}

/// What a page does when a service refused to give it something: sign in again (401),
/// "not found" (404), or a plain sentence that the service is unavailable.
#[must_use]
pub fn failed(visitor: &Visitor, error: &FetchError, service: ServiceName) -> Response {
    match error.status() {
        Some(401) => crate::sign_in::to_sign_in(&visitor.here),
        Some(403) => message_page(
            visitor,
            StatusCode::FORBIDDEN,
            visitor.t.forbidden_title,
            visitor.t.forbidden_text,
        ),
        Some(404) => message_page(
            visitor,
            StatusCode::NOT_FOUND,
            visitor.t.not_found_title,
            visitor.t.not_found_text,
        ),
        _ => message_page(
            visitor,
            StatusCode::SERVICE_UNAVAILABLE,
            visitor.t.error_service,
            unavailable_text(visitor, service),
        ),
    }
}

/// "The delivery service is unavailable", in the visitor's words.
#[must_use]
pub fn unavailable_text(visitor: &Visitor, service: ServiceName) -> &'static str {
    match service {
        ServiceName::Identity => visitor.t.unavailable_identity,
        ServiceName::Orders => visitor.t.unavailable_orders,
        ServiceName::Kitchen => visitor.t.unavailable_kitchen,
        ServiceName::Delivery => visitor.t.unavailable_delivery,
    }
}

/// The box a page shows in place of a part whose service is down.
#[must_use]
pub fn unavailable(visitor: &Visitor, service: ServiceName) -> Markup {
    html! {
        div.notice.notice-warn role="status" data-unavailable=(service.as_str()) {
            strong { (unavailable_text(visitor, service)) }
            " " span { (visitor.t.unavailable_retry) }
        }
    }
}

/// A date and time, localized by the page's script (`<time>` in UTC until then).
#[must_use]
pub fn date_time(visitor: &Visitor, at: DateTime<Utc>) -> Markup {
    html! { time datetime=(at.to_rfc3339()) data-format="datetime" { (visitor.lang.date_time(at)) } }
}

/// A time of day, localized by the page's script.
#[must_use]
pub fn time_of_day(visitor: &Visitor, at: DateTime<Utc>) -> Markup {
    html! { time datetime=(at.to_rfc3339()) data-format="time" { (visitor.lang.time(at)) } }
}

/// A price in the visitor's format.
#[must_use]
pub fn money(visitor: &Visitor, money: &crate::models::Money) -> String {
    visitor.lang.money(money.amount, &money.currency)
}

/// JSON for a `<script type="application/json">` block: `<` is escaped so no text in the data
/// can close the block.
fn json_data(value: &impl Serialize) -> PreEscaped<String> {
    let text = serde_json::to_string(value).unwrap_or_else(|_| "null".to_owned());
    PreEscaped(
        text.replace('<', "\\u003c")
            .replace('>', "\\u003e")
            .replace('&', "\\u0026"),
    )
}

fn layout(visitor: &Visitor, title: &str, nav: Nav, body: Markup, extras: Extras<'_>) -> Markup {
    let t = visitor.t;
    let body_class = if extras.screen { "screen" } else { "" };
    html! {
        (DOCTYPE)
        html lang=(visitor.lang.code()) data-locale=(visitor.lang.locale()) {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="csrf-token" content=(visitor.csrf);
                meta name="color-scheme" content="light";
                title { (title) " · Brigade" }
                link rel="icon" href="/assets/favicon.svg" type="image/svg+xml";
                link rel="stylesheet" href="/assets/app.css";
                script type="application/json" id="strings" { (json_data(t)) }
                @for (id, value) in &extras.data {
                    script type="application/json" id=(id) { (json_data(value)) }
                }
                script type="module" src="/assets/common.js" {}
                @for script in extras.scripts {
                    script type="module" src={ "/assets/" (script) } {}
                }
            }
            body class=(body_class) {
                a.skip-link href="#main" { (t.skip_to_content) }
                (header(visitor, nav))
                main #main tabindex="-1" { (body) }
                @if !extras.screen {
                    footer.site-footer { p { (t.footer) } }
                }
                div #toasts .toasts role="status" aria-live="polite" {}
                dialog #confirm-dialog aria-labelledby="confirm-message" {
                    form method="dialog" {
                        p #confirm-message {}
                        div.dialog-actions {
                            button.btn value="cancel" { (t.dismiss) }
                            button.btn.btn-danger value="ok" { (t.confirm) }
                        }
                    }
                }
            }
        }
    }
}

fn header(visitor: &Visitor, nav: Nav) -> Markup {
    let t = visitor.t;
    let links: Vec<(Nav, &str, &str)> = match visitor.role() {
        None | Some(Role::Customer) => {
            let mut links = vec![
                (Nav::Menu, "/", t.nav_menu),
                (Nav::Cart, "/cart", t.nav_cart),
            ];
            if visitor.role().is_some() {
                links.push((Nav::Orders, "/orders", t.nav_orders));
            }
            links
        }
        Some(Role::Chef) => vec![(Nav::Kitchen, "/kitchen", t.nav_kitchen)],
        Some(Role::Courier) => vec![(Nav::Courier, "/courier", t.nav_courier)],
        Some(Role::Manager) => vec![
            (Nav::Board, "/manager", t.nav_board),
            (Nav::MenuEditor, "/manager/menu", t.nav_menu_editor),
            (Nav::Team, "/manager/team", t.nav_team),
            (
                Nav::Notifications,
                "/manager/notifications",
                t.nav_notifications,
            ),
            (
                Nav::DeadLetters,
                "/manager/dead-letters",
                t.nav_dead_letters,
            ),
            (Nav::Kitchen, "/kitchen", t.nav_kitchen),
        ],
    };
    html! {
        header.site-header {
            a.brand href=(visitor.role().map_or("/", crate::sign_in::home_of)) {
                img src="/assets/favicon.svg" alt="" width="28" height="28";
                span { "Brigade" }
            }
            nav.site-nav aria-label=(t.main_navigation) {
                ul {
                    @for (entry, href, label) in &links {
                        li {
                            a href=(href) aria-current=[(*entry == nav).then_some("page")] {
                                (label)
                                @if *entry == Nav::Cart {
                                    " " span.badge data-cart-count hidden {}
                                }
                            }
                        }
                    }
                }
            }
            div.site-account {
                a.lang-switch href=(visitor.other_language_link()) lang=(t.switch_language_code)
                    hreflang=(t.switch_language_code) aria-label=(t.switch_language) {
                    span.lang-long { (t.switch_language) }
                    span.lang-short aria-hidden="true" { (t.switch_language_code.to_uppercase()) }
                }
                @if let Some(account) = visitor.account() {
                    span.who { span.who-name { (account.name) } " · " span.muted { (t.role(account.role)) } }
                    form.inline method="post" action="/logout" {
                        input type="hidden" name="_csrf" value=(visitor.csrf);
                        button.btn.btn-quiet type="submit" { (t.sign_out) }
                    }
                } @else {
                    a.btn.btn-quiet href=(crate::sign_in::login_link(&visitor.here)) { (t.sign_in) }
                }
            }
        }
    }
}

/// The visitor's access token for calls made on their behalf (`None` when not signed in).
///
/// # Errors
/// The response to send instead: sign in again when the session has ended, or "unavailable"
/// when the token expired and identity cannot renew it.
pub async fn token(gateway: &Gateway, visitor: &Visitor) -> Result<Option<String>, Response> {
    let Some(session) = &visitor.session else {
        return Ok(None);
    };
    match session.access_token(&gateway.upstream).await {
        Ok(token) => Ok(Some(token)),
        Err(TokenError::Ended) => {
            gateway.sessions.end(&session.id).await;
            let mut response = redirect("/login?notice=session-ended");
            cookies::append(response.headers_mut(), &Cookie::Session.clear(visitor.tls));
            Err(response)
        }
        Err(TokenError::Unavailable(_)) => Err(message_page(
            visitor,
            StatusCode::SERVICE_UNAVAILABLE,
            visitor.t.error_service,
            visitor.t.unavailable_identity,
        )),
    }
}

/// A sentence with a date in it: `Passée le {date}`.
#[must_use]
pub fn date_time_sentence(visitor: &Visitor, template: &str, at: DateTime<Utc>) -> Markup {
    let (before, after) = template.split_once("{date}").unwrap_or((template, ""));
    html! { (before) (date_time(visitor, at)) (after) }
}

/// A sentence with a time in it: `Arrivée estimée vers {time}`.
#[must_use]
pub fn time_sentence(visitor: &Visitor, template: &str, at: DateTime<Utc>) -> Markup {
    let (before, after) = template.split_once("{time}").unwrap_or((template, ""));
    html! { (before) (time_of_day(visitor, at)) (after) }
}

/// An empty answer with a status (for a fragment the script could not get).
#[must_use]
pub fn status_only(status: StatusCode) -> Response {
    Response::builder().status(status).finish()
}
