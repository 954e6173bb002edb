//! The endpoints every service answers besides its own API: its home page, liveness,
//! readiness and Prometheus metrics.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::sync::atomic::Ordering;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use brigade_nats::Bus;
use poem::{Endpoint, IntoResponse, Request, Response};
use poem_openapi::payload::{Html, Json, PlainText};
use poem_openapi::{ApiResponse, Object, OpenApi, Tags};
use sqlx::PgPool;

use crate::config::ServiceName;

#[derive(Tags)]
enum SystemTags {
    /// Home page, health and metrics, the same on every service.
    System,
}

/// Health of one dependency.
#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct Check {
    pub name: String,
    pub ok: bool,
    #[oai(skip_serializing_if_is_none)]
    pub error: Option<String>,
}

/// The readiness report.
#[derive(Debug, Object)]
pub struct Readiness {
    pub ready: bool,
    pub checks: Vec<Check>,
}

#[derive(ApiResponse)]
enum ReadyResponse {
    /// Database and NATS reachable, migrations done: send traffic.
    #[oai(status = 200)]
    Ready(Json<Readiness>),
    /// A dependency is down: send traffic elsewhere.
    #[oai(status = 503)]
    NotReady(Json<Readiness>),
}

/// Home page, health and metrics of one service.
pub struct SystemApi {
    pub service: ServiceName,
    pub pool: PgPool,
    /// `None` when only describing the API (no connection).
    pub bus: Option<Bus>,
    pub links: Vec<(&'static str, &'static str)>,
}

#[OpenApi(tag = "SystemTags::System")]
impl SystemApi {
    /// The service's home page: name, version, health and links.
    #[oai(path = "/", method = "get")]
    async fn home(&self) -> Html<String> {
        let ready = self.readiness().await;
        Html(home_page(self.service, &ready, &self.links))
    }

    /// Liveness: the process answers.
    #[oai(path = "/health/live", method = "get")]
    async fn live(&self) -> PlainText<&'static str> {
        PlainText("ok")
    }

    /// Readiness: the database and NATS answer.
    #[oai(path = "/health/ready", method = "get")]
    async fn ready(&self) -> ReadyResponse {
        let readiness = self.readiness().await;
        if readiness.ready {
            ReadyResponse::Ready(Json(readiness))
        } else {
            ReadyResponse::NotReady(Json(readiness))
        }
    }

    /// Prometheus metrics: requests, outbox backlog, consumers, dead letters.
    #[oai(path = "/metrics", method = "get")]
    async fn metrics(&self) -> PlainText<String> {
        PlainText(self.render_metrics().await)
    }
}

impl SystemApi {
    /// The system endpoints of a service that is only being described (OpenAPI export):
    /// nothing is connected.
    ///
    /// # Panics
    /// Never: the URL is a constant that parses.
    #[must_use]
    pub fn described(service: ServiceName) -> Self {
        Self {
            service,
            pool: lazy_pool(),
            bus: None,
            links: Vec::new(),
        }
    }

    async fn readiness(&self) -> Readiness {
        let database = tokio::time::timeout(
            Duration::from_secs(2),
            sqlx::query_scalar::<_, i32>("SELECT 1").fetch_one(&self.pool),
        )
        .await;
        let database = match database {
            Ok(Ok(_)) => Check {
                name: "postgresql".into(),
                ok: true,
                error: None,
            },
            Ok(Err(e)) => Check {
                name: "postgresql".into(),
                ok: false,
                error: Some(e.to_string()),
            },
            Err(_) => Check {
                name: "postgresql".into(),
                ok: false,
                error: Some("timed out".into()),
            },
        };
        let connected = self.bus.as_ref().is_some_and(Bus::is_connected);
        let nats = Check {
            name: "nats".into(),
            ok: connected,
            error: (!connected).then(|| "not connected".to_owned()),
        };
        Readiness {
            ready: database.ok && nats.ok,
            checks: vec![database, nats],
        }
    }

    async fn render_metrics(&self) -> String {
        let mut out = String::new();
        let service = self.service.as_str();
        let _ = writeln!(out, "# TYPE brigade_http_requests_total counter");
        let _ = writeln!(out, "# TYPE brigade_http_request_seconds_sum counter");
        for ((method, status), (count, seconds)) in http_counters() {
            let _ = writeln!(out, "brigade_http_requests_total{{service=\"{service}\",method=\"{method}\",status=\"{status}\"}} {count}");
            let _ = writeln!(out, "brigade_http_request_seconds_sum{{service=\"{service}\",method=\"{method}\",status=\"{status}\"}} {seconds:.6}");
        }
        let backlog: Option<i64> =
            sqlx::query_scalar("SELECT count(*) FROM outbox WHERE published_at IS NULL")
                .fetch_one(&self.pool)
                .await
                .ok();
        if let Some(backlog) = backlog {
            let _ = writeln!(out, "# TYPE brigade_outbox_backlog gauge");
            let _ = writeln!(
                out,
                "brigade_outbox_backlog{{service=\"{service}\"}} {backlog}"
            );
        }
        if let Ok(open) = brigade_nats::dead_letters::count_open(&self.pool).await {
            let _ = writeln!(out, "# TYPE brigade_dead_letters gauge");
            let _ = writeln!(out, "brigade_dead_letters{{service=\"{service}\"}} {open}");
        }
        self.render_lag(&mut out).await;
        let _ = writeln!(out, "# TYPE brigade_consumer_lag gauge");
        for (consumer, stats) in brigade_nats::consumer::all_stats() {
            let _ = writeln!(
                out,
                "brigade_consumer_lag{{service=\"{service}\",consumer=\"{consumer}\"}} {}",
                stats.pending.load(Ordering::Relaxed)
            );
        }
        let _ = writeln!(out, "# TYPE brigade_consumer_messages_total counter");
        for (consumer, stats) in brigade_nats::consumer::all_stats() {
            for (outcome, value) in [
                ("applied", &stats.applied),
                ("duplicate", &stats.duplicates),
                ("out_of_order", &stats.out_of_order),
                ("retried", &stats.retries),
                ("parked", &stats.parked),
            ] {
                let _ = writeln!(
                    out,
                    "brigade_consumer_messages_total{{service=\"{service}\",consumer=\"{consumer}\",outcome=\"{outcome}\"}} {}",
                    value.load(Ordering::Relaxed)
                );
            }
        }
        out
    }
}

impl SystemApi {
    /// How far behind each subscription of this service is: for a read model (a subscription
    /// to the service's own stream), the events of its event store it has not applied yet and
    /// the age of the oldest of them; for every subscription, the messages JetStream still
    /// holds for its consumer, asked of the server now (`brigade_consumer_lag` is what the
    /// last delivered message said, which goes stale when nothing is delivered).
    async fn render_lag(&self, out: &mut String) {
        let service = self.service.as_str();
        let subscriptions = subscriptions_of(self.service);
        let _ = writeln!(
            out,
            "# HELP brigade_projection_lag_events Events in the event store not yet applied to the read model."
        );
        let _ = writeln!(out, "# TYPE brigade_projection_lag_events gauge");
        let _ = writeln!(
            out,
            "# HELP brigade_projection_lag_seconds Age of the oldest event not yet applied to the read model (0: caught up)."
        );
        let _ = writeln!(out, "# TYPE brigade_projection_lag_seconds gauge");
        for subscription in subscriptions.iter().filter(|s| s.source == service) {
            match projection_lag(
                &self.pool,
                &subscription.name,
                &subscription.aggregate_types,
            )
            .await
            {
                Ok((events, seconds)) => {
                    let labels =
                        format!("service=\"{service}\",projection=\"{}\"", subscription.name);
                    let _ = writeln!(out, "brigade_projection_lag_events{{{labels}}} {events}");
                    let _ = writeln!(
                        out,
                        "brigade_projection_lag_seconds{{{labels}}} {seconds:.3}"
                    );
                }
                Err(error) => {
                    tracing::debug!(projection = %subscription.name, %error, "projection lag unknown");
                }
            }
        }
        let Some(bus) = &self.bus else { return };
        let _ = writeln!(
            out,
            "# HELP brigade_consumer_pending_messages Messages JetStream holds for the consumer that delivers to this subscription (`jetstream_consumer`, shared by a group of subscriptions, each given its figure): not delivered yet, or delivered and not acknowledged."
        );
        let _ = writeln!(out, "# TYPE brigade_consumer_pending_messages gauge");
        // The members of a group share their consumer: it is asked once.
        let mut asked: HashMap<&str, Option<(u64, usize)>> = HashMap::new();
        for subscription in &subscriptions {
            let pending = match asked.get(subscription.durable.as_str()) {
                Some(pending) => *pending,
                None => {
                    let stream = bus.namespace.stream(subscription.source);
                    let info = tokio::time::timeout(Duration::from_secs(2), async {
                        bus.jetstream
                            .get_stream_no_info(&stream)
                            .await
                            .ok()?
                            .consumer_info(&subscription.durable)
                            .await
                            .ok()
                    })
                    .await;
                    let pending = info
                        .ok()
                        .flatten()
                        .map(|info| (info.num_pending, info.num_ack_pending));
                    asked.insert(&subscription.durable, pending);
                    pending
                }
            };
            let Some((num_pending, num_ack_pending)) = pending else {
                continue;
            };
            for (state, value) in [
                ("undelivered", num_pending),
                (
                    "unacknowledged",
                    u64::try_from(num_ack_pending).unwrap_or(u64::MAX),
                ),
            ] {
                let _ = writeln!(
                    out,
                    "brigade_consumer_pending_messages{{service=\"{service}\",consumer=\"{}\",jetstream_consumer=\"{}\",state=\"{state}\"}} {value}",
                    subscription.name, subscription.durable
                );
            }
        }
    }
}

/// Events of `aggregate_types` in the event store that the consumer `projection` has not
/// applied (beyond its checkpoint of their aggregate), and the age in seconds of the oldest.
/// The statement may not take more than two seconds: a scrape must never weigh on the
/// database (on a huge backlog the metric is then missing, not wrong).
async fn projection_lag(
    pool: &PgPool,
    projection: &str,
    aggregate_types: &[String],
) -> Result<(i64, f64), sqlx::Error> {
    let mut tx = pool.begin().await?;
    sqlx::query("SET LOCAL statement_timeout = 2000")
        .execute(&mut *tx)
        .await?;
    let lag = sqlx::query_as(
        "SELECT count(*),
                coalesce(extract(epoch FROM clock_timestamp() - min(e.recorded_at)), 0)::float8
         FROM events e
         LEFT JOIN consumer_checkpoints c ON c.consumer = $1
              AND c.aggregate_type = e.aggregate_type AND c.aggregate_id = e.aggregate_id
         WHERE e.aggregate_type = ANY($2) AND e.sequence > coalesce(c.last_sequence, 0)",
    )
    .bind(projection)
    .bind(aggregate_types)
    .fetch_one(&mut *tx)
    .await?;
    tx.rollback().await?;
    Ok(lag)
}

/// One durable subscription a service runs, as `/metrics` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct SubscriptionInfo {
    service: ServiceName,
    name: String,
    /// The JetStream consumer that delivers its messages: its own name, or its group's
    /// (`brigade_nats::Group`).
    durable: String,
    /// The service whose stream it reads; its own for a read model.
    source: &'static str,
    aggregate_types: Vec<String>,
}

fn subscriptions() -> &'static Mutex<Vec<SubscriptionInfo>> {
    static SUBSCRIPTIONS: OnceLock<Mutex<Vec<SubscriptionInfo>>> = OnceLock::new();
    SUBSCRIPTIONS.get_or_init(Default::default)
}

/// Records a subscription of `service`, delivered by the JetStream consumer `durable`, for
/// `/metrics` (done by `Service::subscribe_all`; a process that runs a service twice, as some
/// tests do, records it once).
pub fn register_subscription(
    service: ServiceName,
    name: &str,
    durable: &str,
    source: &'static str,
    aggregate_types: &[&str],
) {
    let info = SubscriptionInfo {
        service,
        name: name.to_owned(),
        durable: durable.to_owned(),
        source,
        aggregate_types: aggregate_types.iter().map(ToString::to_string).collect(),
    };
    if let Ok(mut all) = subscriptions().lock() {
        if !all.contains(&info) {
            all.push(info);
        }
    }
}

fn subscriptions_of(service: ServiceName) -> Vec<SubscriptionInfo> {
    subscriptions()
        .lock()
        .map(|all| {
            all.iter()
                .filter(|s| s.service == service)
                .cloned()
                .collect()
        })
        .unwrap_or_default()
}

fn home_page(service: ServiceName, readiness: &Readiness, links: &[(&str, &str)]) -> String {
    let status = if readiness.ready { "ready" } else { "degraded" };
    let checks: String = readiness
        .checks
        .iter()
        .map(|c| {
            format!(
                "<li>{}: <strong>{}</strong></li>",
                c.name,
                if c.ok { "ok" } else { "down" }
            )
        })
        .collect();
    let links: String = links
        .iter()
        .chain(
            [
                ("/docs", "API documentation (Swagger UI)"),
                ("/openapi.json", "OpenAPI document"),
                ("/health/ready", "Readiness"),
                ("/metrics", "Metrics"),
            ]
            .iter(),
        )
        .map(|(href, label)| format!("<li><a href=\"{href}\">{label}</a></li>"))
        .collect();
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
<title>{title}</title><style>body{{font:16px/1.5 system-ui,sans-serif;max-width:40rem;margin:2rem auto;padding:0 1rem;color:#222}}\
h1{{margin-bottom:0}}.s{{color:{color}}}</style></head><body>\
<h1>{title}</h1><p>version {version} · <span class=\"s\">{status}</span></p>\
<h2>Health</h2><ul>{checks}</ul><h2>Links</h2><ul>{links}</ul></body></html>",
        title = service.title(),
        version = env!("CARGO_PKG_VERSION"),
        color = if readiness.ready { "#16794a" } else { "#b3261e" },
    )
}

type Counters = BTreeMap<(String, u16), (u64, f64)>;

fn counters() -> &'static Mutex<Counters> {
    static COUNTERS: OnceLock<Mutex<Counters>> = OnceLock::new();
    COUNTERS.get_or_init(Default::default)
}

fn http_counters() -> Counters {
    counters().lock().map(|c| c.clone()).unwrap_or_default()
}

/// Middleware counting requests and their durations by method and status.
pub async fn count_requests<E: Endpoint>(next: E, request: Request) -> poem::Result<Response> {
    let method = request.method().to_string();
    let started = Instant::now();
    let result = next.call(request).await.map(IntoResponse::into_response);
    let status = match &result {
        Ok(response) => response.status().as_u16(),
        Err(error) => error.status().as_u16(),
    };
    if let Ok(mut counters) = counters().lock() {
        let entry = counters.entry((method, status)).or_default();
        entry.0 += 1;
        entry.1 += started.elapsed().as_secs_f64();
    }
    result
}

/// A pool that never connects until used: for describing an API without a database.
///
/// # Panics
/// Never: the URL is a constant that parses.
#[must_use]
pub fn lazy_pool() -> PgPool {
    sqlx::postgres::PgPoolOptions::new()
        .connect_lazy("postgres://describe@127.0.0.1:1/describe")
        .expect("a constant URL parses")
}
