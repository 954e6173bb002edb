//! `/api/{service}/…`: the services, for the pages' scripts, on the pages' own origin.
//!
//! The browser sends its session cookie; the gateway sends the service the session's access
//! token (refreshed when due, and once more if the service refuses it), never anything the
//! browser claims (`Authorization` and cookies are dropped). Live streams
//! (`text/event-stream`) are relayed chunk by chunk as they come, and cut when the service
//! goes silent for longer than its keep-alives allow, so the page's `EventSource` reconnects.
//!
//! Identity's `/auth/…` endpoints are not forwarded: tokens must not reach a page. Pages sign
//! in through `/login`, which keeps the tokens here.

use std::sync::Arc;
use std::time::Duration;

use brigade_platform::{Problem, ServiceName};
use bytes::Bytes;
use futures::{Stream, StreamExt};
use poem::http::{header, HeaderMap, HeaderValue, StatusCode};
use poem::web::{Data, Path};
use poem::{handler, Body, IntoResponse, Request, Response};
use reqwest::Method;

use crate::cookies::{self, Cookie};
use crate::session::TokenError;
use crate::upstream::{Outgoing, Unavailable};
use crate::visitor::Visitor;
use crate::Gateway;

/// Largest request body forwarded (the services accept no more either).
const MAX_BODY_BYTES: usize = 256 * 1024;

/// Request headers a service may need; every other one stays here. The W3C trace context
/// (`traceparent`, `tracestate`) goes on, so a trace begun by a client or a proxy in front of
/// the gateway continues in the service.
const FORWARDED_REQUEST_HEADERS: [&str; 7] = [
    "content-type",
    "accept",
    "accept-language",
    "idempotency-key",
    "last-event-id",
    "traceparent",
    "tracestate",
];

/// Answer headers a page may need.
const FORWARDED_RESPONSE_HEADERS: [&str; 6] = [
    "content-type",
    "cache-control",
    "retry-after",
    "etag",
    "last-modified",
    "location",
];

/// Forwards one request to a service.
#[handler]
pub async fn forward(
    request: &Request,
    body: Body,
    Path((service, rest)): Path<(String, String)>,
    gateway: Data<&Arc<Gateway>>,
    visitor: Data<&Visitor>,
) -> Response {
    let Ok(service) = service.parse::<ServiceName>() else {
        return Problem::not_found("not-found", format!("no service {service:?}")).into_response();
    };
    if service == ServiceName::Identity && rest.trim_start_matches('/').starts_with("auth/") {
        return Problem::not_found(
            "not-found",
            "sign in, sign up and sign out through the gateway's /login, /register and /logout",
        )
        .into_response();
    }
    let body = match body.into_bytes_limit(MAX_BODY_BYTES).await {
        Ok(bytes) => bytes,
        Err(_) => {
            return Problem::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload-too-large",
                "the request body is too large",
            )
            .into_response()
        }
    };
    let path = match request.uri().query() {
        Some(query) => format!("/{}?{query}", rest.trim_start_matches('/')),
        None => format!("/{}", rest.trim_start_matches('/')),
    };
    let mut call = Outgoing::new(service, request.method().clone(), path);
    call.headers = forwarded_headers(request);
    call.body = (!body.is_empty() || request.method() != Method::GET).then_some(body);
    call.streaming = wants_stream(request);

    let session = visitor.session.clone();
    if let Some(session) = &session {
        match session.access_token(&gateway.upstream).await {
            Ok(token) => call.token = Some(token),
            Err(error) => return token_problem(error, &gateway, &visitor).await,
        }
    }
    let mut response = match gateway.upstream.send(&call).await {
        Ok(response) => response,
        Err(unavailable) => return unavailable_problem(unavailable),
    };
    // A token refused before its time (keys rotated, clock skew): refresh once and send again.
    // Safe for any method: a 401 means the service did nothing.
    if response.status() == StatusCode::UNAUTHORIZED {
        if let (Some(session), Some(rejected)) = (&session, call.token.clone()) {
            match session.renew(&rejected, &gateway.upstream).await {
                Ok(token) => {
                    call.token = Some(token);
                    response = match gateway.upstream.send(&call).await {
                        Ok(response) => response,
                        Err(unavailable) => return unavailable_problem(unavailable),
                    };
                }
                Err(error) => return token_problem(error, &gateway, &visitor).await,
            }
        }
    }
    if service == ServiceName::Orders
        && call.method != Method::GET
        && call.path.starts_with("/menu")
    {
        gateway.forget_menu().await;
    }
    relay(response, gateway.config.stream_idle_timeout)
}

fn forwarded_headers(request: &Request) -> reqwest::header::HeaderMap {
    let mut headers = reqwest::header::HeaderMap::new();
    for name in FORWARDED_REQUEST_HEADERS {
        for value in request.headers().get_all(name) {
            headers.append(name, value.clone());
        }
    }
    if let Some(peer) = request.remote_addr().as_socket_addr() {
        if let Ok(value) = HeaderValue::from_str(&peer.ip().to_string()) {
            headers.insert("x-forwarded-for", value);
        }
    }
    headers
}

fn wants_stream(request: &Request) -> bool {
    request.uri().path().ends_with("/stream")
        || request
            .headers()
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.contains("text/event-stream"))
}

/// The service's answer, passed on: status, the headers a page needs, and the body as it comes.
fn relay(response: reqwest::Response, idle_timeout: Duration) -> Response {
    let status = response.status();
    let mut headers = HeaderMap::new();
    for name in FORWARDED_RESPONSE_HEADERS {
        for value in response.headers().get_all(name) {
            headers.append(name, value.clone());
        }
    }
    let is_stream = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/event-stream"));
    let body = if is_stream {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        // Tells any proxy in front not to hold events back.
        headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
        Body::from_bytes_stream(until_silent(response.bytes_stream(), idle_timeout))
    } else {
        Body::from_bytes_stream(
            response
                .bytes_stream()
                .map(|chunk| chunk.map_err(std::io::Error::other)),
        )
    };
    let mut out = Response::builder().status(status).body(body);
    out.headers_mut().extend(headers);
    out
}

/// The stream's chunks until it ends, fails, or stays silent for `idle`.
fn until_silent(
    stream: impl Stream<Item = reqwest::Result<Bytes>> + Send + 'static,
    idle: Duration,
) -> impl Stream<Item = std::io::Result<Bytes>> + Send + 'static {
    futures::stream::unfold(Box::pin(stream), move |mut stream| async move {
        match tokio::time::timeout(idle, stream.next()).await {
            Ok(Some(Ok(chunk))) => Some((Ok(chunk), stream)),
            Ok(Some(Err(error))) => {
                tracing::debug!(%error, "live stream from a service broke");
                None
            }
            Ok(None) => None,
            Err(_) => {
                tracing::info!("live stream from a service went silent: closed");
                None
            }
        }
    })
}

/// 503 (504 for a timeout) naming the service, with `Retry-After`.
#[must_use]
pub fn unavailable_problem(unavailable: Unavailable) -> Response {
    let status = match unavailable {
        Unavailable::TimedOut { .. } => StatusCode::GATEWAY_TIMEOUT,
        _ => StatusCode::SERVICE_UNAVAILABLE,
    };
    let mut response = Problem::new(status, "service-unavailable", unavailable.to_string())
        .with_field(unavailable.service().as_str())
        .into_response();
    response.set_status(status);
    if let Ok(value) = HeaderValue::from_str(&unavailable.retry_after_secs().to_string()) {
        response.headers_mut().insert(header::RETRY_AFTER, value);
    }
    response
}

async fn token_problem(error: TokenError, gateway: &Gateway, visitor: &Visitor) -> Response {
    match error {
        TokenError::Unavailable(unavailable) => unavailable_problem(unavailable),
        TokenError::Ended => {
            if let Some(session) = &visitor.session {
                gateway.sessions.end(&session.id).await;
            }
            let mut response = Problem::new(
                StatusCode::UNAUTHORIZED,
                "session-ended",
                "your session has ended; sign in again",
            )
            .into_response();
            cookies::append(response.headers_mut(), &Cookie::Session.clear(visitor.tls));
            response
        }
    }
}
