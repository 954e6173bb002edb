//! Trace context: how one order is followed across services, in W3C `traceparent` form
//! (`00-{trace id}-{parent span id}-{flags}`).
//!
//! The trace of an order's journey is the order id itself (its 32 hex digits, see
//! [`crate::store::CommandMetadata::correlation`]). A command records, beside its events, the
//! span that issued it (`span_id`: the HTTP request or the consumer handling an event); the
//! relay sends both as the `traceparent` header of the NATS message; the consumer that receives
//! it opens its handling span as a child of that span. So the spans of `POST /orders`, of each
//! service reacting to each event, down to the delivery, form one tree under one trace id.
//!
//! The spans themselves are `tracing` spans; the platform's tracing layer gives each one a
//! [`TraceContext`] (stored in the span's extensions, where [`current`] reads it) and exports
//! them over OTLP when asked to. Without that layer nothing here costs more than a header.

use std::collections::HashMap;

use tracing_subscriber::registry::LookupSpan;
use uuid::Uuid;

/// The W3C trace-context header, on HTTP requests and NATS messages alike.
pub const TRACEPARENT: &str = "traceparent";

/// The identity of one span: the trace it belongs to and its own id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TraceContext {
    pub trace_id: [u8; 16],
    pub span_id: [u8; 8],
}

impl TraceContext {
    /// Reads a `traceparent` value; `None` when malformed or naming the invalid all-zero ids
    /// (the standard says to ignore such a header and start a new trace).
    #[must_use]
    pub fn parse(traceparent: &str) -> Option<Self> {
        let mut parts = traceparent.trim().split('-');
        let version = parts.next()?;
        let trace_id = parse_trace_id(parts.next()?)?;
        let span_id = parse_span_id(parts.next()?)?;
        let flags = parts.next()?;
        // Version 00 has exactly four parts; a later version may add some after the flags.
        let well_formed = version.len() == 2
            && version != "ff"
            && version.bytes().all(|b| b.is_ascii_hexdigit())
            && flags.len() == 2
            && flags.bytes().all(|b| b.is_ascii_hexdigit())
            && (version != "00" || parts.next().is_none());
        well_formed.then_some(Self { trace_id, span_id })
    }

    /// The `traceparent` value naming this span as the parent (sampled).
    #[must_use]
    pub fn traceparent(&self) -> String {
        format!("00-{}-{}-01", self.trace_id_hex(), self.span_id_hex())
    }

    #[must_use]
    pub fn trace_id_hex(&self) -> String {
        hex(&self.trace_id)
    }

    #[must_use]
    pub fn span_id_hex(&self) -> String {
        hex(&self.span_id)
    }
}

/// 32 lower-case hex digits, not all zero.
#[must_use]
pub fn parse_trace_id(text: &str) -> Option<[u8; 16]> {
    let mut id = [0u8; 16];
    decode_hex(text, &mut id)?;
    (id != [0; 16]).then_some(id)
}

/// 16 lower-case hex digits, not all zero.
#[must_use]
pub fn parse_span_id(text: &str) -> Option<[u8; 8]> {
    let mut id = [0u8; 8];
    decode_hex(text, &mut id)?;
    (id != [0; 8]).then_some(id)
}

/// A fresh trace id (random, as the standard asks).
#[must_use]
pub fn new_trace_id() -> [u8; 16] {
    *Uuid::new_v4().as_bytes()
}

/// A fresh span id (random, never all zero).
#[must_use]
pub fn new_span_id() -> [u8; 8] {
    let bytes = Uuid::new_v4().into_bytes();
    let mut id = [0u8; 8];
    id.copy_from_slice(&bytes[8..]);
    // The last 8 bytes of a v4 UUID hold its variant bits, so they are never all zero.
    id
}

/// The trace context of the current `tracing` span, as the platform's layer assigned it;
/// `None` outside any span or without that layer.
#[must_use]
pub fn current() -> Option<TraceContext> {
    let id = tracing::Span::current().id()?;
    tracing::dispatcher::get_default(|dispatch| {
        let registry = dispatch.downcast_ref::<tracing_subscriber::Registry>()?;
        let span = registry.span(&id)?;
        let context = span.extensions().get::<TraceContext>().copied();
        context
    })
}

/// Makes the current span part of the journey `trace_id` (hex), if it started a trace of its
/// own: an HTTP request without `traceparent` that turns out to be about one order joins that
/// order's trace. A span that continues a caller's trace keeps it. (The span must declare a
/// `trace_id` field, as request spans do; on any other span this does nothing.)
pub fn join(trace_id: &str) {
    tracing::Span::current().record("trace_id", trace_id);
}

/// The `traceparent` header of an event on the bus, from its metadata: the journey's
/// `trace_id`, and as parent the span that issued the command (`span_id`), or else a span id
/// derived from the event id, so that every event still names a parent in its trace.
#[must_use]
pub fn traceparent_of(metadata: &HashMap<String, String>, event_id: Uuid) -> Option<String> {
    let trace_id = parse_trace_id(metadata.get("trace_id")?)?;
    let span_id = metadata
        .get("span_id")
        .and_then(|s| parse_span_id(s))
        .unwrap_or_else(|| {
            let mut id = [0u8; 8];
            id.copy_from_slice(&event_id.as_bytes()[8..]);
            if id == [0; 8] {
                id[7] = 1;
            }
            id
        });
    Some(TraceContext { trace_id, span_id }.traceparent())
}

/// The span a consumer applies one event in: a child of the span named by the message's
/// `traceparent` header (or, for a message published without one, by the event's metadata).
#[must_use]
pub fn consuming_span(
    consumer: &str,
    subject: &str,
    header: Option<&str>,
    envelope: &crate::EventEnvelope,
) -> tracing::Span {
    let traceparent = header
        .filter(|value| TraceContext::parse(value).is_some())
        .map(ToOwned::to_owned)
        .or_else(|| traceparent_of(&envelope.metadata, envelope.event_id))
        .unwrap_or_default();
    tracing::info_span!(
        "consume",
        otel.name = %format!("{consumer} {}", envelope.event_type),
        otel.kind = "consumer",
        messaging.system = "nats",
        messaging.destination.name = %subject,
        messaging.consumer.group.name = %consumer,
        messaging.message.id = %envelope.message_id(),
        traceparent = %traceparent,
        trace_id = tracing::field::Empty,
    )
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::new(), |mut out, b| {
        let _ = write!(out, "{b:02x}");
        out
    })
}

fn decode_hex(text: &str, out: &mut [u8]) -> Option<()> {
    let digits = text.as_bytes();
    if digits.len() != out.len() * 2 {
        return None;
    }
    for (byte, pair) in out.iter_mut().zip(digits.chunks(2)) {
        let high = hex_digit(pair[0])?;
        let low = hex_digit(pair[1])?;
        *byte = high << 4 | low;
    }
    Some(())
}

/// Lower-case only, as `traceparent` requires.
fn hex_digit(digit: u8) -> Option<u8> {
    match digit {
        b'0'..=b'9' => Some(digit - b'0'),
        b'a'..=b'f' => Some(digit - b'a' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn a_traceparent_reads_and_writes_back_the_same() {
        let context = TraceContext::parse(HEADER).expect("a valid header");
        assert_eq!(context.trace_id_hex(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(context.span_id_hex(), "00f067aa0ba902b7");
        assert_eq!(context.traceparent(), HEADER);
    }

    #[test]
    fn a_malformed_or_all_zero_traceparent_is_ignored() {
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "00-4bf92f3577b34da6a3ce929d0e0e473-600f067aa0ba902b7-01",
        ] {
            assert_eq!(TraceContext::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn an_event_names_the_span_that_issued_it_in_the_journeys_trace() {
        let order = Uuid::new_v4();
        let event = Uuid::new_v4();
        let mut metadata = HashMap::from([("trace_id".to_owned(), order.simple().to_string())]);
        let derived = traceparent_of(&metadata, event).expect("a trace id");
        let derived = TraceContext::parse(&derived).expect("valid");
        assert_eq!(derived.trace_id, *order.as_bytes());
        assert_eq!(derived.span_id[..], event.as_bytes()[8..]);

        metadata.insert("span_id".to_owned(), "00f067aa0ba902b7".to_owned());
        assert_eq!(
            traceparent_of(&metadata, event),
            Some(format!("00-{}-00f067aa0ba902b7-01", order.simple()))
        );
        assert_eq!(traceparent_of(&HashMap::new(), event), None);
    }
}
