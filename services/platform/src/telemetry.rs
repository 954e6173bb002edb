//! Structured logs with `tracing`: readable on a terminal, JSON lines otherwise (for log
//! collectors). `RUST_LOG` filters as usual.
//!
//! Traces: every HTTP request runs in a span that continues the caller's `traceparent`, every
//! event a consumer applies in a span that continues its NATS message's (see
//! `brigade_nats::trace`); with `BRIGADE_OTLP_ENDPOINT` set they are exported over OTLP
//! ([`crate::otlp`]), so one order can be followed from `POST /orders` to its delivery.

use std::io::IsTerminal;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use brigade_nats::trace::{TraceContext, TRACEPARENT};
use poem::{Endpoint, IntoResponse, Request, Response};
use tracing::Instrument as _;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{EnvFilter, Layer as _};

use crate::otlp::{ExportHandle, TraceLayer};

/// How logs are written (`BRIGADE_LOG_FORMAT`: `auto`, `text` or `json`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum LogFormat {
    /// Text on a terminal, JSON lines otherwise.
    #[default]
    Auto,
    Text,
    Json,
}

/// Installs the global subscriber once, in the automatic format; later calls do nothing.
pub fn init_logging() {
    init_logging_as(LogFormat::Auto);
}

/// Installs the global subscriber once, in the given format; later calls do nothing.
pub fn init_logging_as(format: LogFormat) {
    init(format, None);
}

/// Installs the global subscriber once: logs in `settings.log_format`, and spans exported to
/// `settings.otlp_endpoint` (when set) as the OpenTelemetry service `brigade-{process}`.
pub fn init_telemetry(settings: &crate::Settings, process: &str) {
    let export = settings
        .otlp_endpoint
        .as_deref()
        .map(|endpoint| (endpoint, format!("brigade-{process}")));
    init(
        settings.log_format,
        export.as_ref().map(|(e, s)| (*e, s.as_str())),
    );
}

fn init(format: LogFormat, export: Option<(&str, &str)>) {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,async_nats=warn,poem=warn"));
    let text = match format {
        LogFormat::Auto => std::io::stderr().is_terminal(),
        LogFormat::Text => true,
        LogFormat::Json => false,
    };
    let logs = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let logs = if text {
        logs.boxed()
    } else {
        logs.json().boxed()
    };
    let traces = match export {
        Some((endpoint, service)) => {
            let (layer, handle) = TraceLayer::exporting(endpoint, service);
            let _ = EXPORT.set(handle);
            layer
        }
        None => TraceLayer::propagating(),
    };
    // One filter for logs and spans alike: a span `RUST_LOG` turns off is not traced either.
    let _ = tracing_subscriber::registry()
        .with(filter)
        .with(logs)
        .with(traces)
        .try_init();
}

static EXPORT: OnceLock<ExportHandle> = OnceLock::new();

/// Exports the spans still queued (at shutdown); does nothing when export is off.
pub async fn flush_traces() {
    if let Some(export) = EXPORT.get() {
        export.flush(Duration::from_secs(3)).await;
    }
}

/// The `traceparent` header for a call made from the current span (a request to another
/// service): the same trace, with the current span as the callee's parent. `None` outside a
/// traced span (no subscriber installed, as in some tests).
#[must_use]
pub fn outgoing_traceparent() -> Option<String> {
    brigade_nats::trace::current().map(|context| context.traceparent())
}

/// Middleware: runs each request in a span (`otel.kind = server`) that continues the trace
/// of the request's `traceparent` header, if it has a valid one, and logs its outcome.
pub async fn trace_requests<E: Endpoint>(next: E, request: Request) -> poem::Result<Response> {
    let traceparent = request
        .headers()
        .get(TRACEPARENT)
        .and_then(|value| value.to_str().ok())
        .filter(|value| TraceContext::parse(value).is_some())
        .unwrap_or_default()
        .to_owned();
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let span = tracing::info_span!(
        "request",
        otel.name = %format!("{method} {path}"),
        otel.kind = "server",
        http.request.method = %method,
        url.path = %path,
        http.response.status_code = tracing::field::Empty,
        otel.status_code = tracing::field::Empty,
        traceparent = %traceparent,
        trace_id = tracing::field::Empty,
    );
    let started = Instant::now();
    async move {
        let result = next.call(request).await.map(IntoResponse::into_response);
        let status = match &result {
            Ok(response) => response.status(),
            Err(error) => error.status(),
        };
        let span = tracing::Span::current();
        span.record("http.response.status_code", status.as_u16());
        if status.is_server_error() {
            span.record("otel.status_code", "error");
        }
        tracing::debug!(status = status.as_u16(), elapsed = ?started.elapsed(), "response");
        result
    }
    .instrument(span)
    .await
}
