//! Spans to OpenTelemetry: a `tracing` layer that gives every Brigade span a W3C trace context
//! and, when an endpoint is configured, exports the finished spans over OTLP/HTTP as JSON
//! (`POST {endpoint}/v1/traces`), which every OpenTelemetry collector and most tracing
//! backends accept.
//!
//! Why not the `opentelemetry` crates: their OTLP exporter brings protobuf code generation,
//! gRPC types and a second HTTP stack into every service's build, for a job this file does in a
//! few hundred lines with what the services already link (`reqwest`, `serde_json`).
//!
//! A span's trace follows, in order of precedence: its `traceparent` field (set from the
//! `traceparent` header of an HTTP request or of a NATS message: a remote parent), its parent
//! span, or else a new trace. A new root may still join a journey's trace while it runs (see
//! [`brigade_nats::trace::join`]). Only spans of Brigade's own crates are traced, so the
//! exporter's own HTTP calls never feed themselves. (The layer picks them itself rather than
//! through a per-layer filter: in the service binaries, per-layer filters beside the `log`
//! bridge left these spans disabled altogether.)
//!
//! The export never blocks the service: finished spans go into a bounded queue (dropped, and
//! counted, when the collector cannot keep up) and a background thread posts them in batches.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use brigade_nats::trace::{new_span_id, new_trace_id, parse_trace_id, TraceContext};
use serde_json::{json, Value};
use tokio::sync::{mpsc, oneshot};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::Subscriber;
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::Layer;

/// Spans waiting for export at most; beyond, new ones are dropped rather than held.
const QUEUE: usize = 8192;
/// Spans sent in one request at most.
const BATCH: usize = 512;
/// How long a finished span may wait for a batch to fill.
const LINGER: Duration = Duration::from_millis(500);
/// One export request may take this long before it is given up.
const EXPORT_TIMEOUT: Duration = Duration::from_secs(5);

/// The tracing layer: trace context for every span, OTLP export when configured.
pub struct TraceLayer {
    exporter: Option<Exporter>,
}

impl TraceLayer {
    /// Trace context only: `traceparent` headers are read and written, nothing is exported.
    #[must_use]
    pub fn propagating() -> Self {
        Self { exporter: None }
    }

    /// Trace context, and spans exported to `endpoint` (an `http://` base URL such as
    /// `http://collector:4318`; `/v1/traces` is appended unless already there) as the
    /// OpenTelemetry service `service_name`.
    #[must_use]
    pub fn exporting(endpoint: &str, service_name: &str) -> (Self, ExportHandle) {
        let exporter = Exporter::start(traces_url(endpoint), service_name.to_owned());
        let handle = ExportHandle {
            sender: exporter.sender.clone(),
            dropped: exporter.dropped.clone(),
        };
        (
            Self {
                exporter: Some(exporter),
            },
            handle,
        )
    }
}

/// The URL spans are posted to.
fn traces_url(endpoint: &str) -> String {
    let base = endpoint.trim_end_matches('/');
    if base.ends_with("/v1/traces") {
        base.to_owned()
    } else {
        format!("{base}/v1/traces")
    }
}

/// Lets the service push out the spans still queued (at shutdown, so the last requests'
/// spans are not lost with the process).
#[derive(Clone)]
pub struct ExportHandle {
    sender: mpsc::Sender<Command>,
    dropped: Arc<AtomicU64>,
}

impl ExportHandle {
    /// Exports every span finished so far; returns once the collector answered, or after
    /// `timeout`.
    pub async fn flush(&self, timeout: Duration) {
        let (done, finished) = oneshot::channel();
        if self.sender.send(Command::Flush(done)).await.is_ok() {
            let _ = tokio::time::timeout(timeout, finished).await;
        }
    }

    /// Spans dropped because the queue was full.
    #[must_use]
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

/// What the layer keeps on each span besides its [`TraceContext`].
struct SpanRecord {
    name: String,
    kind: i32,
    parent: Option<[u8; 8]>,
    /// A root that began its own trace: it may still join a journey's (see `on_record`).
    may_join: bool,
    start: SystemTime,
    attributes: Vec<(String, Value)>,
    error: Option<String>,
}

impl<S> Layer<S> for TraceLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        if !attrs.metadata().target().starts_with("brigade") {
            return;
        }
        let Some(span) = ctx.span(id) else { return };
        let mut fields = Fields::default();
        attrs.record(&mut fields);
        let remote = fields.traceparent.as_deref().and_then(TraceContext::parse);
        // The nearest traced ancestor (spans of other crates in between are not traced).
        let local = span
            .scope()
            .skip(1)
            .find_map(|ancestor| ancestor.extensions().get::<TraceContext>().copied());
        let (trace_id, parent, may_join) = match (remote, local) {
            (Some(remote), _) => (remote.trace_id, Some(remote.span_id), false),
            (None, Some(local)) => (local.trace_id, Some(local.span_id), false),
            (None, None) => (new_trace_id(), None, true),
        };
        let context = TraceContext {
            trace_id: fields
                .trace_id
                .as_deref()
                .and_then(parse_trace_id)
                .filter(|_| may_join)
                .unwrap_or(trace_id),
            span_id: new_span_id(),
        };
        let record = SpanRecord {
            name: fields
                .name
                .take()
                .unwrap_or_else(|| attrs.metadata().name().to_owned()),
            kind: fields.kind.unwrap_or(1),
            parent,
            may_join,
            start: SystemTime::now(),
            attributes: std::mem::take(&mut fields.attributes),
            error: fields.error.take(),
        };
        let mut extensions = span.extensions_mut();
        extensions.insert(context);
        extensions.insert(record);
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut fields = Fields::default();
        values.record(&mut fields);
        let mut extensions = span.extensions_mut();
        let joined = match (
            extensions.get_mut::<SpanRecord>(),
            fields.trace_id.as_deref().and_then(parse_trace_id),
        ) {
            (Some(record), Some(trace_id)) if record.may_join => {
                record.may_join = false;
                Some(trace_id)
            }
            _ => None,
        };
        if let (Some(trace_id), Some(context)) = (joined, extensions.get_mut::<TraceContext>()) {
            context.trace_id = trace_id;
        }
        if let Some(record) = extensions.get_mut::<SpanRecord>() {
            record.attributes.append(&mut fields.attributes);
            if fields.error.is_some() {
                record.error = fields.error;
            }
            if let Some(name) = fields.name {
                record.name = name;
            }
        }
    }

    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        let Some(exporter) = &self.exporter else {
            return;
        };
        let Some(span) = ctx.span(&id) else { return };
        let extensions = span.extensions();
        let (Some(context), Some(record)) = (
            extensions.get::<TraceContext>(),
            extensions.get::<SpanRecord>(),
        ) else {
            return;
        };
        exporter.send(otlp_span(context, record, SystemTime::now()));
    }
}

/// One span in OTLP's JSON encoding (ids in hex, times as nanosecond strings).
fn otlp_span(context: &TraceContext, record: &SpanRecord, end: SystemTime) -> Value {
    let nanos = |t: SystemTime| {
        t.duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos())
            .to_string()
    };
    let attributes: Vec<Value> = record
        .attributes
        .iter()
        .map(|(key, value)| json!({"key": key, "value": value}))
        .collect();
    let mut span = json!({
        "traceId": context.trace_id_hex(),
        "spanId": context.span_id_hex(),
        "name": record.name,
        "kind": record.kind,
        "startTimeUnixNano": nanos(record.start),
        "endTimeUnixNano": nanos(end),
        "attributes": attributes,
        "status": match &record.error {
            Some(message) => json!({"code": 2, "message": message}),
            None => json!({"code": 0}),
        },
    });
    if let Some(parent) = record.parent {
        span["parentSpanId"] = Value::String(
            TraceContext {
                trace_id: context.trace_id,
                span_id: parent,
            }
            .span_id_hex(),
        );
    }
    span
}

/// The fields of a span the layer understands; the others become attributes.
#[derive(Default)]
struct Fields {
    traceparent: Option<String>,
    trace_id: Option<String>,
    name: Option<String>,
    kind: Option<i32>,
    error: Option<String>,
    attributes: Vec<(String, Value)>,
}

impl Fields {
    fn text(&mut self, field: &Field, value: String) {
        match field.name() {
            "traceparent" => self.traceparent = Some(value).filter(|v| !v.is_empty()),
            "trace_id" => self.trace_id = Some(value),
            "otel.name" => self.name = Some(value),
            "otel.kind" => {
                // OTLP's SpanKind: 1 internal, 2 server, 3 client, 4 producer, 5 consumer.
                self.kind = Some(match value.as_str() {
                    "server" => 2,
                    "client" => 3,
                    "producer" => 4,
                    "consumer" => 5,
                    _ => 1,
                });
            }
            "otel.status_code" if value.eq_ignore_ascii_case("error") => {
                self.error.get_or_insert_with(String::new);
            }
            "otel.status_message" | "error" => self.error = Some(value),
            name => self
                .attributes
                .push((name.to_owned(), json!({"stringValue": value}))),
        }
    }
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.text(field, value.to_owned());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.text(field, format!("{value:?}"));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.attributes.push((
            field.name().to_owned(),
            json!({"intValue": value.to_string()}),
        ));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.attributes.push((
            field.name().to_owned(),
            json!({"intValue": value.to_string()}),
        ));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.attributes
            .push((field.name().to_owned(), json!({"boolValue": value})));
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.attributes
            .push((field.name().to_owned(), json!({"doubleValue": value})));
    }
}

enum Command {
    Span(Value),
    Flush(oneshot::Sender<()>),
}

/// The sending half, held by the layer; a thread of its own posts the batches, so export
/// works the same whichever runtime (or none) the service's spans come from.
struct Exporter {
    sender: mpsc::Sender<Command>,
    dropped: Arc<AtomicU64>,
}

impl Exporter {
    fn start(url: String, service_name: String) -> Self {
        let (sender, receiver) = mpsc::channel(QUEUE);
        let spawned = std::thread::Builder::new()
            .name("otlp-export".to_owned())
            .spawn(move || {
                match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(runtime) => runtime.block_on(export(receiver, url, service_name)),
                    Err(error) => tracing::error!(%error, "OTLP export disabled: no runtime"),
                }
            });
        if let Err(error) = spawned {
            tracing::error!(%error, "OTLP export disabled: no thread");
        }
        Self {
            sender,
            dropped: Arc::new(AtomicU64::new(0)),
        }
    }

    fn send(&self, span: Value) {
        if self.sender.try_send(Command::Span(span)).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Collects spans into batches and posts them until every sender is gone.
async fn export(mut receiver: mpsc::Receiver<Command>, url: String, service_name: String) {
    let client = reqwest::Client::builder()
        .timeout(EXPORT_TIMEOUT)
        .build()
        .unwrap_or_default();
    let resource = json!({"attributes": [
        {"key": "service.name", "value": {"stringValue": service_name}},
        {"key": "service.version", "value": {"stringValue": env!("CARGO_PKG_VERSION")}},
    ]});
    let mut batch = Vec::with_capacity(BATCH);
    let mut failing = false;
    loop {
        let command = if batch.is_empty() {
            receiver.recv().await
        } else {
            match tokio::time::timeout(LINGER, receiver.recv()).await {
                Ok(command) => command,
                Err(_) => {
                    post(&client, &url, &resource, &mut batch, &mut failing).await;
                    continue;
                }
            }
        };
        match command {
            Some(Command::Span(span)) => {
                batch.push(span);
                if batch.len() >= BATCH {
                    post(&client, &url, &resource, &mut batch, &mut failing).await;
                }
            }
            Some(Command::Flush(done)) => {
                post(&client, &url, &resource, &mut batch, &mut failing).await;
                let _ = done.send(());
            }
            None => {
                post(&client, &url, &resource, &mut batch, &mut failing).await;
                return;
            }
        }
    }
}

/// Posts one batch (emptying it whatever happens: spans are telemetry, not data to retry
/// forever). A collector that fails is reported once, and again once it recovers.
async fn post(
    client: &reqwest::Client,
    url: &str,
    resource: &Value,
    batch: &mut Vec<Value>,
    failing: &mut bool,
) {
    if batch.is_empty() {
        return;
    }
    let body = json!({"resourceSpans": [{
        "resource": resource,
        "scopeSpans": [{"scope": {"name": "brigade"}, "spans": std::mem::take(batch)}],
    }]});
    let result = client.post(url).json(&body).send().await;
    let error = match result {
        Ok(response) if response.status().is_success() => None,
        Ok(response) => Some(format!("HTTP {}", response.status())),
        Err(error) => Some(error.to_string()),
    };
    match error {
        Some(error) if !*failing => {
            *failing = true;
            tracing::warn!(%url, %error, "OTLP export failed; spans are dropped until it answers");
        }
        None if *failing => {
            *failing = false;
            tracing::info!(%url, "OTLP export works again");
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_traces_path_is_appended_once() {
        assert_eq!(
            traces_url("http://collector:4318"),
            "http://collector:4318/v1/traces"
        );
        assert_eq!(
            traces_url("http://collector:4318/"),
            "http://collector:4318/v1/traces"
        );
        assert_eq!(
            traces_url("http://collector:4318/v1/traces"),
            "http://collector:4318/v1/traces"
        );
    }
}
