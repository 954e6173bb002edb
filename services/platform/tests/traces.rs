//! Traces leave a service over OTLP/HTTP: a local receiver stands in for the collector and
//! sees the spans of a request, in the trace its caller named, or in its order's journey.
#![allow(clippy::unwrap_used)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use brigade_nats::store::CommandMetadata;
use brigade_nats::trace::{consuming_span, TraceContext};
use brigade_nats::EventEnvelope;
use brigade_platform::otlp::TraceLayer;
use brigade_platform::runtime::application;
use brigade_platform::system::{lazy_pool, SystemApi};
use brigade_platform::ServiceName;
use poem::listener::{Acceptor, Listener, TcpListener};
use poem::web::{Data, Json};
use poem::{handler, post, Endpoint, EndpointExt, IntoResponse as _, Request, Route, Server};
use poem_openapi::param::Path;
use poem_openapi::payload::PlainText;
use poem_openapi::OpenApi;
use serde_json::Value;
use tracing_subscriber::layer::SubscriberExt as _;
use uuid::Uuid;

type Received = Arc<Mutex<Vec<Value>>>;

#[handler]
fn collect(Json(body): Json<Value>, received: Data<&Received>) {
    received.lock().unwrap().push(body);
}

/// A stand-in collector on a free local port; returns its base URL and what it received.
async fn collector() -> (String, Received) {
    let received = Received::default();
    let acceptor = TcpListener::bind("127.0.0.1:0")
        .into_acceptor()
        .await
        .unwrap();
    let port = acceptor.local_addr()[0].as_socket_addr().unwrap().port();
    let app = Route::new()
        .at("/v1/traces", post(collect))
        .data(received.clone());
    tokio::spawn(Server::new_with_acceptor(acceptor).run(app));
    (format!("http://127.0.0.1:{port}"), received)
}

/// Every span the collector received, flattened.
fn spans(received: &Received) -> Vec<Value> {
    let batches = received.lock().unwrap().clone();
    let mut spans = Vec::new();
    for batch in batches {
        for resource in batch["resourceSpans"].as_array().unwrap() {
            assert_eq!(
                resource["resource"]["attributes"][0]["value"]["stringValue"],
                "brigade-orders"
            );
            for scope in resource["scopeSpans"].as_array().unwrap() {
                spans.extend(scope["spans"].as_array().unwrap().iter().cloned());
            }
        }
    }
    spans
}

/// An endpoint that issues a command about one order, as the orders API does.
struct Touch;

#[OpenApi]
impl Touch {
    /// The metadata a command about this order would carry.
    #[oai(path = "/orders/:order_id/touch", method = "post")]
    async fn touch(&self, order_id: Path<Uuid>) -> PlainText<String> {
        let metadata = CommandMetadata::by("{}".to_owned())
            .correlation(order_id.0.to_string())
            .into_map();
        PlainText(serde_json::to_string(&metadata).unwrap())
    }
}

#[tokio::test]
async fn a_requests_span_reaches_the_collector_in_the_callers_trace_or_its_orders() {
    let (endpoint, received) = collector().await;
    let (layer, export) = TraceLayer::exporting(&endpoint, "brigade-orders");
    let subscriber = tracing_subscriber::registry().with(layer);
    let _default = tracing::subscriber::set_default(subscriber);
    let system = SystemApi {
        service: ServiceName::Orders,
        pool: lazy_pool(),
        bus: None,
        links: Vec::new(),
    };
    let app = application(ServiceName::Orders, Touch, system, "http://127.0.0.1");

    // A caller that names its trace: the request's span is its child.
    let caller = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let response = app
        .call(
            Request::builder()
                .uri("/health/live".parse().unwrap())
                .header("traceparent", caller)
                .finish(),
        )
        .await
        .unwrap()
        .into_response();
    assert!(response.status().is_success());

    // A request without one, about an order: it joins the order's journey, and the command's
    // metadata names it as the parent of what the order's events cause elsewhere.
    let order = Uuid::new_v4();
    let response = app
        .call(
            Request::builder()
                .method(poem::http::Method::POST)
                .uri(format!("/orders/{order}/touch").parse().unwrap())
                .finish(),
        )
        .await
        .unwrap()
        .into_response();
    let metadata: Value =
        serde_json::from_str(&response.into_body().into_string().await.unwrap()).unwrap();
    assert_eq!(metadata["trace_id"], order.simple().to_string());

    // A consumer applying one of that order's events continues the trace of its message.
    let event = EventEnvelope {
        event_id: Uuid::new_v4(),
        aggregate_type: "order".to_owned(),
        aggregate_id: order.to_string(),
        sequence: 1,
        event_type: "OrderPlaced".to_owned(),
        event_version: "1".to_owned(),
        payload: Value::Null,
        metadata: serde_json::from_value(metadata.clone()).unwrap(),
        recorded_at: chrono::Utc::now(),
    };
    let header = brigade_nats::trace::traceparent_of(&event.metadata, event.event_id).unwrap();
    consuming_span(
        "kitchen-orders",
        "orders.order.placed",
        Some(&header),
        &event,
    )
    .in_scope(|| {});

    export.flush(Duration::from_secs(5)).await;
    let spans = spans(&received);
    assert_eq!(spans.len(), 3, "{spans:#?}");
    let live = &spans[0];
    assert_eq!(live["traceId"], "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_eq!(live["parentSpanId"], "00f067aa0ba902b7");
    assert_eq!(live["name"], "GET /health/live");
    assert_eq!(live["kind"], 2);
    assert!(live["attributes"]
        .as_array()
        .unwrap()
        .iter()
        .any(|a| a["key"] == "http.response.status_code" && a["value"]["intValue"] == "200"));

    let touch = &spans[1];
    assert_eq!(touch["traceId"], order.simple().to_string());
    assert_eq!(touch.get("parentSpanId"), None, "a root of the journey");
    assert_eq!(touch["spanId"], metadata["span_id"]);

    let consume = &spans[2];
    let parent = TraceContext::parse(&header).unwrap();
    assert_eq!(consume["traceId"], order.simple().to_string());
    assert_eq!(consume["parentSpanId"], parent.span_id_hex());
    assert_eq!(consume["parentSpanId"], touch["spanId"]);
    assert_eq!(consume["kind"], 5);
    assert_eq!(consume["name"], "kitchen-orders OrderPlaced");
    assert_eq!(export.dropped(), 0);
}
