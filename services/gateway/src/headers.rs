//! Security headers on every answer of the gateway.
//!
//! - CSP: scripts and styles only from our own files (no inline script, so an injected
//!   `<script>` does not run), no framing (`frame-ancestors 'none'`), connections only to our own
//!   origin, forms only to our own pages;
//! - `X-Content-Type-Options: nosniff`, `Referrer-Policy`, `Permissions-Policy` (location only
//!   for our own pages: the courier shares theirs), `Cross-Origin-Opener-Policy`;
//! - HSTS when browsers reach us over TLS;
//! - pages are personal (a name, an address): never stored by shared caches.

use poem::http::header::{self, HeaderName, HeaderValue};
use poem::{Endpoint, IntoResponse, Request, Response};

/// The Content-Security-Policy of every answer.
pub const CSP: &str =
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
font-src 'self'; connect-src 'self'; media-src 'self'; object-src 'none'; base-uri 'none'; \
form-action 'self'; frame-ancestors 'none'";

/// Adds the headers to whatever the inner endpoint answered.
pub async fn secure<E: Endpoint>(next: E, request: Request, tls: bool) -> poem::Result<Response> {
    let is_asset = request.uri().path().starts_with("/assets/");
    let mut response = next.call(request).await?.into_response();
    let headers = response.headers_mut();
    let set = |headers: &mut poem::http::HeaderMap, name: HeaderName, value: &'static str| {
        headers.insert(name, HeaderValue::from_static(value));
    };
    set(headers, header::CONTENT_SECURITY_POLICY, CSP);
    set(headers, header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(headers, header::X_FRAME_OPTIONS, "DENY");
    set(headers, header::REFERRER_POLICY, "same-origin");
    set(
        headers,
        HeaderName::from_static("permissions-policy"),
        "geolocation=(self), camera=(), microphone=(), payment=()",
    );
    set(
        headers,
        HeaderName::from_static("cross-origin-opener-policy"),
        "same-origin",
    );
    if tls {
        set(
            headers,
            header::STRICT_TRANSPORT_SECURITY,
            "max-age=63072000; includeSubDomains",
        );
    }
    if !is_asset && !headers.contains_key(header::CACHE_CONTROL) {
        set(headers, header::CACHE_CONTROL, "no-store");
    }
    Ok(response)
}
