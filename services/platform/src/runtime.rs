//! Start-up of one service, the same for all four: open (create, migrate) its database,
//! connect to NATS, run its outbox relay and subscriptions, serve its API, and stop
//! gracefully on SIGTERM or Ctrl-C (finish in-flight requests and messages).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use brigade_nats::schema::EVENT_STORE;
use brigade_nats::{Bus, ConsumerRunner, Group, Migration, OutboxRelay, Pace, Subscription};
use poem::listener::{Acceptor, Listener, TcpListener};
use poem::middleware::Cors;
use poem::{EndpointExt, Route};
use poem_openapi::{OpenApi, OpenApiService};
use sqlx::PgPool;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinHandle;

use crate::config::{ServiceName, Settings};
use crate::dead_letters_api::DeadLettersApi;
use crate::problem::render_error;
use crate::system::{count_requests, SystemApi};

/// Largest request body accepted, in bytes: nothing in the API needs more.
pub const MAX_BODY_BYTES: usize = 256 * 1024;
/// A connection that neither sends nor receives anything for this long is closed, so idle or
/// stalled clients cannot hold connections forever. Live streams send a keep-alive every 15 s.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a client may take to send a request's body once its headers are in (408 after).
pub const BODY_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// At SIGTERM, how long requests in flight may take to finish (live streams are cut then).
pub const REQUESTS_GRACE: Duration = Duration::from_secs(10);
/// Then how long the background tasks may take to finish the messages they hold. Both fit
/// in compose's `stop_grace_period`.
pub const TASKS_GRACE: Duration = Duration::from_secs(10);

/// One running service: its database, its bus, its background tasks.
pub struct Service {
    pub name: ServiceName,
    pub settings: Settings,
    pub pool: PgPool,
    pub bus: Bus,
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    /// The handler of each subscription, by consumer name: `/dead-letters/{id}/replay` runs a
    /// parked message through the consumer that parked it.
    handlers: Vec<(String, Arc<dyn brigade_nats::EventHandler>)>,
}

impl Service {
    /// Opens the service's database (creating and migrating it: the event store first, then
    /// `migrations`) and connects to NATS (in the background if it is down).
    ///
    /// # Errors
    /// When PostgreSQL is unreachable or a migration fails.
    pub async fn start(
        name: ServiceName,
        settings: Settings,
        migrations: &[&[Migration]],
    ) -> anyhow::Result<Self> {
        let mut all: Vec<&[Migration]> = vec![EVENT_STORE];
        all.extend_from_slice(migrations);
        let pool = crate::database::open(
            &settings.database_url,
            &settings.database_name(name),
            settings.pool_size,
            &all,
        )
        .await?;
        let bus = Bus::connect(
            &settings.nats_url,
            settings.namespace.clone(),
            settings.nats_replicas,
        )
        .await?;
        let (shutdown, _) = watch::channel(false);
        Ok(Self {
            name,
            settings,
            pool,
            bus,
            shutdown,
            tasks: Vec::new(),
            handlers: Vec::new(),
        })
    }

    /// Starts the outbox relay of this service.
    pub fn run_relay(&mut self) {
        let relay = OutboxRelay::new(self.pool.clone(), self.bus.clone(), self.name.as_str());
        let shutdown = self.shutdown.subscribe();
        self.tasks.push(tokio::spawn(relay.run(shutdown)));
    }

    /// Starts the durable subscriptions of this service, whose lag `/metrics` reports (for one
    /// that reads the service's own stream, a read model, also its lag behind the event
    /// store). Those that read the same events of one stream share one JetStream consumer and
    /// one transaction per message ([`Group::sharing_events`]). Those named in `watched`, whose
    /// effect someone waits to see on a screen, apply each message at once; the others gather
    /// what comes within a few milliseconds into one transaction ([`Pace`]).
    pub fn subscribe_all(&mut self, subscriptions: Vec<Subscription>, watched: &[&str]) {
        for group in Group::sharing_events(self.name.as_str(), subscriptions) {
            let pace = if group
                .members()
                .iter()
                .any(|s| watched.contains(&s.name.as_str()))
            {
                Pace::AtOnce
            } else {
                Pace::GATHERED
            };
            for subscription in group.members() {
                self.handlers
                    .push((subscription.name.clone(), subscription.handler.clone()));
                crate::system::register_subscription(
                    self.name,
                    &subscription.name,
                    group.durable(),
                    subscription.source,
                    &subscription.aggregate_types,
                );
            }
            let runner =
                ConsumerRunner::group(self.pool.clone(), self.bus.clone(), group).pace(pace);
            let shutdown = self.shutdown.subscribe();
            self.tasks.push(tokio::spawn(runner.run(shutdown)));
        }
    }

    /// Starts any other background task that should stop with the service.
    pub fn spawn<F>(&mut self, task: impl FnOnce(watch::Receiver<bool>) -> F)
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        let shutdown = self.shutdown.subscribe();
        self.tasks.push(tokio::spawn(task(shutdown)));
    }

    /// A receiver that turns true when the service stops.
    #[must_use]
    pub fn shutdown_signal(&self) -> watch::Receiver<bool> {
        self.shutdown.subscribe()
    }

    /// The address this service listens on.
    #[must_use]
    pub fn address(&self) -> SocketAddr {
        SocketAddr::new(self.settings.host, self.settings.port(self.name))
    }

    /// Serves `api` (plus the system endpoints, `/docs` and `/openapi.json`) until SIGTERM or
    /// Ctrl-C, then stops the background tasks after in-flight work.
    ///
    /// `data` is attached to every request (the token verifier, shared state).
    ///
    /// # Errors
    /// When the port cannot be bound.
    pub async fn serve<T, D>(
        mut self,
        api: T,
        links: Vec<(&'static str, &'static str)>,
        data: D,
    ) -> anyhow::Result<()>
    where
        T: OpenApi + 'static,
        D: Clone + Send + Sync + 'static,
    {
        let address = self.address();
        let system = SystemApi {
            service: self.name,
            pool: self.pool.clone(),
            bus: Some(self.bus.clone()),
            links,
        };
        let dead_letters = DeadLettersApi {
            service: self.name,
            pool: self.pool.clone(),
            handlers: Arc::new(std::mem::take(&mut self.handlers)),
        };
        let streams = Arc::new(Semaphore::new(self.settings.max_streams));
        let app = application_with(
            self.name,
            (api, dead_letters),
            system,
            &format!("http://{address}"),
        )
        .data(data)
        .around(move |next, request| limit_streams(next, request, streams.clone()));
        let acceptor = TcpListener::bind(address)
            .into_acceptor()
            .await
            .map_err(|e| anyhow::anyhow!("cannot listen on {address}: {e}"))?;
        let local = acceptor
            .local_addr()
            .first()
            .and_then(|a| a.as_socket_addr().copied())
            .unwrap_or(address);
        tracing::info!(service = self.name.as_str(), "listening on http://{local}");
        println!("{} listening on http://{local}", self.name.as_str());
        let mut stop = self.shutdown.subscribe();
        crate::server::serve(
            acceptor,
            app,
            async move {
                tokio::select! {
                    () = termination() => {}
                    _ = stop.changed() => {}
                }
            },
            crate::server::Limits {
                max_connections: self.settings.max_connections,
                idle: IDLE_TIMEOUT,
                grace: REQUESTS_GRACE,
            },
        )
        .await;
        self.stop().await;
        Ok(())
    }

    /// Signals every background task to stop and waits for them: a consumer applies the
    /// messages it already took, the relay publishes what the last requests committed. They
    /// stop together, within [`TASKS_GRACE`] in all (what is left then is redelivered or
    /// republished: nothing is lost).
    pub async fn stop(self) {
        let _ = self.shutdown.send(true);
        let _ = tokio::time::timeout(TASKS_GRACE, futures::future::join_all(self.tasks)).await;
        crate::telemetry::flush_traces().await;
        self.pool.close().await;
    }
}

/// The HTTP application of one service: its API, its dead letters (`/dead-letters`, with no
/// consumer to replay through) and the system endpoints under one OpenAPI document, Swagger UI
/// at `/docs`, problem+json for every error.
pub fn application<T: OpenApi + 'static>(
    name: ServiceName,
    api: T,
    system: SystemApi,
    server_url: &str,
) -> impl poem::Endpoint {
    let dead_letters = DeadLettersApi {
        service: name,
        pool: system.pool.clone(),
        handlers: Arc::default(),
    };
    application_with(name, (api, dead_letters), system, server_url)
}

/// [`application`] with `api` already holding the service's [`DeadLettersApi`].
fn application_with<T: OpenApi + 'static>(
    name: ServiceName,
    api: (T, DeadLettersApi),
    system: SystemApi,
    server_url: &str,
) -> impl poem::Endpoint {
    let service = api_service(name, api, system).server(server_url);
    let allowed = AllowedMethods::from_spec(&service.spec());
    let docs = service.swagger_ui();
    let spec = service.spec_endpoint();
    Route::new()
        .nest("/docs", docs)
        .at("/openapi.json", spec)
        .nest("/", service)
        .around(move |next, request| answer_allow(next, request, allowed.clone()))
        .around(limit_body)
        .with(Cors::new())
        .around(crate::telemetry::trace_requests)
        .around(count_requests)
        .catch_all_error(render_error)
}

/// Refuses bodies over [`MAX_BODY_BYTES`] with 413, whether announced by `Content-Length` or
/// streamed in chunks, so no client can make a service buffer more than that. (poem's own
/// `SizeLimit` also refuses requests without `Content-Length`, such as every plain GET.) A body
/// must arrive within [`BODY_READ_TIMEOUT`] (408 after): a client trickling bytes cannot hold
/// a request open.
async fn limit_body<E: poem::Endpoint>(
    next: E,
    mut request: poem::Request,
) -> poem::Result<poem::Response> {
    let too_large = || poem::Error::from_status(poem::http::StatusCode::PAYLOAD_TOO_LARGE);
    let announced = request
        .headers()
        .get(poem::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    let has_body = match announced {
        Some(length) if length > MAX_BODY_BYTES => return Err(too_large()),
        Some(length) => length > 0,
        None => request
            .headers()
            .contains_key(poem::http::header::TRANSFER_ENCODING),
    };
    if has_body {
        let body = tokio::time::timeout(
            BODY_READ_TIMEOUT,
            request.take_body().into_bytes_limit(MAX_BODY_BYTES),
        )
        .await
        .map_err(|_| poem::Error::from_status(poem::http::StatusCode::REQUEST_TIMEOUT))?
        .map_err(|_| too_large())?;
        if contains_nul_escape(&body) {
            // PostgreSQL's `jsonb` (every event payload) cannot hold U+0000: such a text would
            // pass every check and then fail as a 500 when the event is stored.
            let problem = crate::Problem::bad_request(
                "invalid-request",
                "text may not contain the NUL character (\\u0000)",
            );
            return Ok(poem::IntoResponse::into_response(problem));
        }
        request.set_body(body);
    }
    next.call(request)
        .await
        .map(poem::IntoResponse::into_response)
}

/// Whether a JSON body escapes U+0000 (`\u0000`, not preceded by an escaped backslash). A raw
/// NUL byte is already refused by the JSON parser (control characters must be escaped).
fn contains_nul_escape(body: &[u8]) -> bool {
    body.windows(6).enumerate().any(|(at, window)| {
        window == b"\\u0000"
            && body[..at].iter().rev().take_while(|b| **b == b'\\').count() % 2 == 0
    })
}

/// Caps the live streams (`GET …/stream`, server-sent events) one process serves at once: each
/// holds a task, buffers and database reads per change, so without a cap one client opening
/// streams in a loop could exhaust the service. Over the cap: 503 problem with `Retry-After`.
/// The permit lives as long as the response body, i.e. until the client goes away.
async fn limit_streams<E: poem::Endpoint>(
    next: E,
    request: poem::Request,
    streams: Arc<Semaphore>,
) -> poem::Result<poem::Response> {
    use futures::StreamExt as _;
    use poem::IntoResponse;

    let is_stream_request =
        request.method() == poem::http::Method::GET && request.uri().path().ends_with("/stream");
    if !is_stream_request {
        return next.call(request).await.map(IntoResponse::into_response);
    }
    let Ok(permit) = streams.try_acquire_owned() else {
        let mut response = crate::Problem::new(
            poem::http::StatusCode::SERVICE_UNAVAILABLE,
            "too-many-streams",
            "this service follows as many live streams as it can; retry later",
        )
        .into_response();
        response.headers_mut().insert(
            poem::http::header::RETRY_AFTER,
            poem::http::HeaderValue::from_static("5"),
        );
        return Ok(response);
    };
    let response = next.call(request).await?.into_response();
    let is_event_stream = response
        .headers()
        .get(poem::http::header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"));
    if !is_event_stream {
        return Ok(response);
    }
    let (parts, body) = response.into_parts();
    let guarded = body.into_bytes_stream().map(move |chunk| {
        // The permit moves into the body and is released when the body is dropped.
        let _held = &permit;
        chunk
    });
    Ok(poem::Response::from_parts(
        parts,
        poem::Body::from_bytes_stream(guarded),
    ))
}

/// The methods each path of a service answers, from its OpenAPI document: a 405 names them in
/// `Allow`, as RFC 9110 §15.5.6 requires.
#[derive(Clone, Default)]
struct AllowedMethods(Arc<Vec<(Vec<String>, String)>>);

impl AllowedMethods {
    fn from_spec(spec: &str) -> Self {
        let document: serde_json::Value = serde_json::from_str(spec).unwrap_or_default();
        let mut routes: Vec<(Vec<String>, String)> = vec![
            (segments("/openapi.json"), "GET, HEAD".to_owned()),
            (segments("/docs"), "GET, HEAD".to_owned()),
        ];
        if let Some(paths) = document.get("paths").and_then(serde_json::Value::as_object) {
            for (path, operations) in paths {
                let mut methods: Vec<String> = operations
                    .as_object()
                    .map(|o| o.keys().map(|m| m.to_ascii_uppercase()).collect())
                    .unwrap_or_default();
                if methods.iter().any(|m| m == "GET") {
                    methods.push("HEAD".to_owned());
                }
                routes.push((segments(path), methods.join(", ")));
            }
        }
        Self(Arc::new(routes))
    }

    /// The `Allow` value of `path`: the route matching most literal segments wins, as in the
    /// router (`/tickets/stream` before `/tickets/{orderId}`).
    fn for_path(&self, path: &str) -> Option<&str> {
        let wanted = segments(path);
        self.0
            .iter()
            .filter(|(route, _)| {
                route.len() == wanted.len()
                    && route
                        .iter()
                        .zip(&wanted)
                        .all(|(r, w)| r.starts_with('{') || r == w)
            })
            .max_by_key(|(route, _)| route.iter().filter(|r| !r.starts_with('{')).count())
            .map(|(_, allow)| allow.as_str())
    }
}

fn segments(path: &str) -> Vec<String> {
    path.trim_matches('/')
        .split('/')
        .map(ToOwned::to_owned)
        .collect()
}

/// Adds `Allow` to every 405.
async fn answer_allow<E: poem::Endpoint>(
    next: E,
    request: poem::Request,
    allowed: AllowedMethods,
) -> poem::Result<poem::Response> {
    let path = request.uri().path().to_owned();
    let mut response = match next.call(request).await {
        Ok(response) => poem::IntoResponse::into_response(response),
        Err(error) if error.status() == poem::http::StatusCode::METHOD_NOT_ALLOWED => {
            render_error(error).await
        }
        Err(error) => return Err(error),
    };
    if response.status() == poem::http::StatusCode::METHOD_NOT_ALLOWED {
        if let Some(allow) = allowed
            .for_path(&path)
            .and_then(|allow| poem::http::HeaderValue::from_str(allow).ok())
        {
            response
                .headers_mut()
                .insert(poem::http::header::ALLOW, allow);
        }
    }
    Ok(response)
}

fn api_service<T: OpenApi>(
    name: ServiceName,
    api: T,
    system: SystemApi,
) -> OpenApiService<(T, SystemApi), ()> {
    OpenApiService::new((api, system), name.title(), env!("CARGO_PKG_VERSION"))
}

/// The OpenAPI document of a service, as committed under `openapi/` and checked for drift.
#[must_use]
pub fn openapi_document<T: OpenApi>(name: ServiceName, api: T) -> String {
    let api = (api, DeadLettersApi::described(name));
    api_service(name, api, SystemApi::described(name)).spec()
}

/// Resolves on SIGTERM or Ctrl-C: when a process is asked to stop.
pub async fn termination() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_nul_escape_is_found_and_an_escaped_backslash_is_not_one() {
        assert!(contains_nul_escape(br#"{"name": "a\u0000b"}"#));
        assert!(contains_nul_escape(br#"{"name": "\\\u0000"}"#));
        assert!(!contains_nul_escape(br#"{"name": "\\u0000"}"#));
        assert!(!contains_nul_escape(br#"{"name": "\u00e9t\u00e9"}"#));
    }

    #[test]
    fn allow_names_the_methods_of_the_most_literal_route() {
        let spec = r#"{"paths": {"/tickets/{order_id}": {"get": {}}, "/tickets/stream": {"get": {}},
                       "/tickets": {"get": {}, "post": {}}}}"#;
        let allowed = AllowedMethods::from_spec(spec);
        assert_eq!(allowed.for_path("/tickets"), Some("GET, POST, HEAD"));
        assert_eq!(allowed.for_path("/tickets/42"), Some("GET, HEAD"));
        assert_eq!(allowed.for_path("/nowhere/at/all"), None);
    }
}
