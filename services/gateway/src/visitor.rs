//! Who is asking, worked out once per request before any page or proxy sees it: the language
//! (`?lang=` or its cookie, French otherwise), the session (from its cookie), and the CSRF
//! token (the double-submit cookie, created on the first visit).
//!
//! Every state-changing request (anything but GET, HEAD, OPTIONS) must prove it comes from one
//! of our pages: an `Origin`, when the browser sends one, naming this host, and the CSRF token
//! repeated in the `X-CSRF-Token` header (scripts) or the `_csrf` form field (forms). A page of
//! another site can make the browser send our cookies, but it cannot read the token.
//!
//! Errors raised below (an unknown page, a refused request) are answered here too, as an HTML
//! page in the visitor's language, or as problem+json under `/api/`.

use std::sync::Arc;

use brigade_domain::Role;
use brigade_platform::Problem;
use poem::http::header::{CONTENT_TYPE, HOST, ORIGIN};
use poem::http::{Method, StatusCode};
use poem::{Endpoint, IntoResponse, Request, Response};

use crate::cookies::{self, is_token, random_token, Cookie};
use crate::i18n::{Lang, Strings};
use crate::session::{Account, Session};
use crate::Gateway;

/// Longest form body read to find its `_csrf` field (forms here are small).
const MAX_FORM_BYTES: usize = 64 * 1024;

/// The header scripts repeat the CSRF token in.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// The visitor of one request.
#[derive(Clone)]
pub struct Visitor {
    pub lang: Lang,
    pub t: &'static Strings,
    pub session: Option<Arc<Session>>,
    /// The token pages put in their `<meta>` and forms.
    pub csrf: String,
    /// The path and query asked, without `lang=` (for the language switch and `next=`).
    pub here: String,
    pub tls: bool,
}

impl Visitor {
    #[must_use]
    pub fn account(&self) -> Option<&Account> {
        self.session.as_ref().map(|s| &s.account)
    }

    #[must_use]
    pub fn role(&self) -> Option<Role> {
        self.account().map(|a| a.role)
    }

    /// The link to this same page in the other language.
    #[must_use]
    pub fn other_language_link(&self) -> String {
        let separator = if self.here.contains('?') { '&' } else { '?' };
        format!("{}{separator}lang={}", self.here, self.lang.other().code())
    }
}

/// The middleware: builds the [`Visitor`], refuses cross-site state changes, renders errors,
/// and sets the cookies it decided on.
pub async fn visit<E: Endpoint>(next: E, mut request: Request) -> poem::Result<Response> {
    let Some(gateway) = request.data::<Arc<Gateway>>().cloned() else {
        return Ok(StatusCode::INTERNAL_SERVER_ERROR.into_response());
    };
    let tls = gateway.config.tls;
    let headers = request.headers();
    let mut set_cookies: Vec<String> = Vec::new();

    let asked_lang = query_value(request.uri().query(), "lang").and_then(|v| Lang::parse(&v));
    let lang = match asked_lang {
        Some(lang) => {
            set_cookies.push(Cookie::Lang.set(lang.code(), tls));
            lang
        }
        None => Cookie::Lang
            .read(headers, tls)
            .and_then(|v| Lang::parse(&v))
            .unwrap_or_default(),
    };

    let csrf = match Cookie::Csrf.read(headers, tls).filter(|v| is_token(v)) {
        Some(token) => token,
        None => {
            let token = random_token();
            set_cookies.push(Cookie::Csrf.set(&token, tls));
            token
        }
    };

    let session_id = Cookie::Session.read(headers, tls);
    let session = match session_id.as_deref() {
        None => None,
        Some(id) => match gateway.sessions.find(id).await {
            Ok(Some(session)) => Some(session),
            Ok(None) => {
                // Gone (signed out elsewhere, idle, expired): stop sending it.
                set_cookies.push(Cookie::Session.clear(tls));
                None
            }
            Err(error) => {
                // Not known to be gone: the cookie stays for when the store is back.
                tracing::warn!(%error, "session not read");
                None
            }
        },
    };

    let visitor = Visitor {
        lang,
        t: lang.strings(),
        session,
        csrf,
        here: here_without_lang(&request),
        tls,
    };
    let is_api = request.uri().path().starts_with("/api/");

    let mut response = if is_safe(request.method()) {
        None
    } else {
        check_csrf(&mut request, &visitor).await.err()
    }
    .map(|refusal| refused(&visitor, is_api, refusal));

    if response.is_none() {
        request.extensions_mut().insert(visitor.clone());
        response = Some(match next.call(request).await {
            Ok(response) => response.into_response(),
            Err(error) => render_error(&visitor, is_api, &error),
        });
    }
    let mut response =
        response.unwrap_or_else(|| StatusCode::INTERNAL_SERVER_ERROR.into_response());
    for cookie in set_cookies {
        cookies::append(response.headers_mut(), &cookie);
    }
    Ok(response)
}

fn is_safe(method: &Method) -> bool {
    matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// Why a state-changing request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refusal {
    ForeignOrigin,
    MissingToken,
}

async fn check_csrf(request: &mut Request, visitor: &Visitor) -> Result<(), Refusal> {
    if let Some(origin) = request.headers().get(ORIGIN) {
        let host = request
            .headers()
            .get(HOST)
            .and_then(|h| h.to_str().ok())
            .unwrap_or("");
        let origin_host = origin
            .to_str()
            .ok()
            .and_then(|o| o.split_once("://"))
            .map(|(_, host)| host);
        if origin_host != Some(host) {
            return Err(Refusal::ForeignOrigin);
        }
    }
    let from_header = request
        .headers()
        .get(CSRF_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(ToOwned::to_owned);
    let sent = match from_header {
        Some(token) => Some(token),
        None if is_form(request) => {
            let body = request
                .take_body()
                .into_bytes_limit(MAX_FORM_BYTES)
                .await
                .map_err(|_| Refusal::MissingToken)?;
            let token = std::str::from_utf8(&body)
                .ok()
                .and_then(|text| query_value(Some(text), "_csrf"));
            request.set_body(body);
            token
        }
        None => None,
    };
    match sent {
        Some(token) if same(&token, &visitor.csrf) => Ok(()),
        _ => Err(Refusal::MissingToken),
    }
}

fn is_form(request: &Request) -> bool {
    request
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"))
}

/// Compares two tokens in time independent of where they differ.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0_u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

fn refused(visitor: &Visitor, is_api: bool, refusal: Refusal) -> Response {
    tracing::info!(?refusal, "state-changing request refused");
    if is_api {
        let detail = match refusal {
            Refusal::ForeignOrigin => "this request comes from another site",
            Refusal::MissingToken => "send the page's CSRF token in the X-CSRF-Token header",
        };
        return Problem::forbidden(detail)
            .with_field(CSRF_HEADER)
            .into_response();
    }
    crate::pages::message_page(
        visitor,
        StatusCode::FORBIDDEN,
        visitor.t.forbidden_title,
        visitor.t.error_csrf,
    )
}

fn render_error(visitor: &Visitor, is_api: bool, error: &poem::Error) -> Response {
    let status = error.status();
    if is_api {
        let problem = if status == StatusCode::NOT_FOUND {
            Problem::not_found("not-found", "no such endpoint")
        } else {
            Problem::new(status, "bad-request", error.to_string())
        };
        return problem.into_response();
    }
    let t = visitor.t;
    match status {
        StatusCode::NOT_FOUND | StatusCode::METHOD_NOT_ALLOWED => crate::pages::message_page(
            visitor,
            StatusCode::NOT_FOUND,
            t.not_found_title,
            t.not_found_text,
        ),
        status if status.is_client_error() => {
            crate::pages::message_page(visitor, status, t.not_found_title, t.error_generic)
        }
        status => crate::pages::message_page(visitor, status, t.error_service, t.error_generic),
    }
}

/// A `key=value` of a query string or form body (values here are plain tokens and codes, so
/// only `+` and `%XX` need undoing).
#[must_use]
pub fn query_value(query: Option<&str>, key: &str) -> Option<String> {
    query?
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(k, _)| *k == key)
        .map(|(_, v)| percent_decode(v))
}

/// Undoes `application/x-www-form-urlencoded` escaping.
#[must_use]
pub fn percent_decode(value: &str) -> String {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(byte) => {
                        out.push(byte);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            other => out.push(other),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn here_without_lang(request: &Request) -> String {
    let path = request.uri().path();
    let rest: Vec<&str> = request
        .uri()
        .query()
        .unwrap_or("")
        .split('&')
        .filter(|pair| !pair.is_empty() && !pair.starts_with("lang="))
        .collect();
    if rest.is_empty() {
        path.to_owned()
    } else {
        format!("{path}?{}", rest.join("&"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_values_are_decoded() {
        assert_eq!(
            query_value(Some("a=1&next=%2Fcart&x=a+b"), "next").as_deref(),
            Some("/cart")
        );
        assert_eq!(query_value(Some("x=a+b%21"), "x").as_deref(), Some("a b!"));
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%C3%A9t%C3%A9"), "été");
    }

    #[test]
    fn tokens_are_compared_whole() {
        assert!(same("abc", "abc"));
        assert!(!same("abc", "abd"));
        assert!(!same("abc", "ab"));
    }
}
