//! Calls from the gateway to the four services, each guarded the same way: a connect timeout
//! and a call timeout, bounded retries with full jitter for idempotent calls (GET, HEAD) only,
//! and a circuit breaker per service. Both the `/api/…` proxy and the pages go through here, so
//! a service that is down is noticed once and every page says so at once.

use std::time::Duration;

use brigade_platform::{ProblemDetails, ServiceName};
use bytes::Bytes;
use rand::Rng;
use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::breaker::CircuitBreaker;
use crate::config::GatewayConfig;

/// One call to a service.
#[derive(Debug, Clone)]
pub struct Outgoing {
    pub service: ServiceName,
    pub method: Method,
    /// Path and query, from `/`.
    pub path: String,
    pub headers: HeaderMap,
    pub body: Option<Bytes>,
    /// The user's access token, sent as `Authorization: Bearer`.
    pub token: Option<String>,
    /// A live stream: no call timeout (it stays open), only the wait for its headers.
    pub streaming: bool,
}

impl Outgoing {
    /// A plain call without headers or body.
    #[must_use]
    pub fn new(service: ServiceName, method: Method, path: impl Into<String>) -> Self {
        Self {
            service,
            method,
            path: path.into(),
            headers: HeaderMap::new(),
            body: None,
            token: None,
            streaming: false,
        }
    }

    #[must_use]
    pub fn token(mut self, token: Option<String>) -> Self {
        self.token = token;
        self
    }

    /// A JSON body.
    #[must_use]
    pub fn json(mut self, body: &impl Serialize) -> Self {
        self.headers.insert(
            reqwest::header::CONTENT_TYPE,
            reqwest::header::HeaderValue::from_static("application/json"),
        );
        self.body = Some(Bytes::from(serde_json::to_vec(body).unwrap_or_default()));
        self
    }

    fn idempotent(&self) -> bool {
        self.method == Method::GET || self.method == Method::HEAD
    }
}

/// Why a service could not be reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unavailable {
    /// Its circuit is open: it failed repeatedly just now.
    CircuitOpen {
        service: ServiceName,
        retry_after: Duration,
    },
    /// No connection, or the connection broke.
    Unreachable { service: ServiceName },
    /// No answer in time.
    TimedOut { service: ServiceName },
}

impl Unavailable {
    #[must_use]
    pub fn service(self) -> ServiceName {
        match self {
            Self::CircuitOpen { service, .. }
            | Self::Unreachable { service }
            | Self::TimedOut { service } => service,
        }
    }

    /// Seconds a client should wait before trying again.
    #[must_use]
    pub fn retry_after_secs(self) -> u64 {
        match self {
            Self::CircuitOpen { retry_after, .. } => retry_after.as_secs().max(1),
            Self::Unreachable { .. } | Self::TimedOut { .. } => 5,
        }
    }
}

impl std::fmt::Display for Unavailable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::CircuitOpen { service, .. } => {
                write!(
                    f,
                    "the {} service is unavailable (failing repeatedly; calls paused)",
                    service.as_str()
                )
            }
            Self::Unreachable { service } => {
                write!(f, "the {} service cannot be reached", service.as_str())
            }
            Self::TimedOut { service } => {
                write!(f, "the {} service did not answer in time", service.as_str())
            }
        }
    }
}

/// Why a page could not get what it asked a service for.
#[derive(Debug, Clone)]
pub enum FetchError {
    /// The service is down: the page says so and shows the rest.
    Unavailable(Unavailable),
    /// The service answered with an error.
    Status {
        status: u16,
        problem: Option<ProblemDetails>,
    },
    /// The answer was not what the contract says.
    Invalid { service: ServiceName },
}

impl FetchError {
    /// The HTTP status the service answered with, if it answered.
    #[must_use]
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Status { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The service is down or broken (as opposed to refusing this request).
    #[must_use]
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Self::Unavailable(_) | Self::Invalid { .. })
            || matches!(self, Self::Status { status, .. } if *status >= 500)
    }

    /// The stable code of the service's problem (`order-too-late-to-cancel`), if any.
    #[must_use]
    pub fn code(&self) -> Option<&str> {
        match self {
            Self::Status {
                problem: Some(problem),
                ..
            } => problem.kind.rsplit('/').next(),
            _ => None,
        }
    }
}

struct Backend {
    base: String,
    breaker: CircuitBreaker,
}

/// The guarded client of the four services. Cheap to share behind an `Arc`.
pub struct Upstream {
    client: reqwest::Client,
    backends: [Backend; 4],
    call_timeout: Duration,
    retries: u32,
    retry_base_delay: Duration,
}

impl Upstream {
    /// A client of the services named in `config`.
    ///
    /// # Errors
    /// When the HTTP client cannot be built (no TLS backend is needed: services speak plain
    /// HTTP on the internal network).
    pub fn new(config: &GatewayConfig) -> anyhow::Result<Self> {
        let client = reqwest::Client::builder()
            .connect_timeout(config.connect_timeout)
            .pool_idle_timeout(Duration::from_secs(60))
            // Services' redirects are for browsers; the gateway passes them on untouched.
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        let backends = ServiceName::ALL.map(|service| Backend {
            base: config.service_url(service).to_owned(),
            breaker: CircuitBreaker::new(config.breaker_failures, config.breaker_cool_down),
        });
        Ok(Self {
            client,
            backends,
            call_timeout: config.call_timeout,
            retries: config.retries,
            retry_base_delay: config.retry_base_delay,
        })
    }

    /// Whether the service's circuit is open right now.
    #[must_use]
    pub fn is_open(&self, service: ServiceName) -> bool {
        self.backend(service).breaker.is_open()
    }

    /// Sends one call, retrying an idempotent one (at most `retries` more times, with full
    /// jitter) when the service is unreachable, times out or answers 502/503/504. The answer
    /// of the last attempt is returned as it is, whatever its status.
    ///
    /// # Errors
    /// [`Unavailable`] when no attempt got an answer, or the circuit is open.
    pub async fn send(&self, call: &Outgoing) -> Result<reqwest::Response, Unavailable> {
        let backend = self.backend(call.service);
        let attempts = if call.idempotent() {
            1 + self.retries
        } else {
            1
        };
        let mut last = Unavailable::Unreachable {
            service: call.service,
        };
        for attempt in 0..attempts {
            if attempt > 0 {
                tokio::time::sleep(self.backoff(attempt)).await;
            }
            backend
                .breaker
                .permit()
                .map_err(|open| Unavailable::CircuitOpen {
                    service: call.service,
                    retry_after: open.retry_after,
                })?;
            match self.attempt(backend, call).await {
                Ok(response) if is_unavailable_status(response.status()) => {
                    backend.breaker.record_failure();
                    if attempt + 1 == attempts {
                        return Ok(response);
                    }
                    tracing::debug!(service = call.service.as_str(), status = %response.status(), "retrying");
                }
                Ok(response) => {
                    backend.breaker.record_success();
                    return Ok(response);
                }
                Err(unavailable) => {
                    backend.breaker.record_failure();
                    tracing::warn!(service = call.service.as_str(), path = %call.path, "{unavailable}");
                    last = unavailable;
                }
            }
        }
        Err(last)
    }

    /// GETs JSON from a service.
    ///
    /// # Errors
    /// [`FetchError`]: the service is down, refused, or answered something unexpected.
    pub async fn get_json<T: DeserializeOwned>(
        &self,
        service: ServiceName,
        path: &str,
        token: Option<&str>,
    ) -> Result<T, FetchError> {
        let call = Outgoing::new(service, Method::GET, path).token(token.map(ToOwned::to_owned));
        self.call_json(&call).await
    }

    /// Sends a call and reads its JSON answer (`null` when the answer has no body).
    ///
    /// # Errors
    /// [`FetchError`]: the service is down, refused, or answered something unexpected.
    pub async fn call_json<T: DeserializeOwned>(&self, call: &Outgoing) -> Result<T, FetchError> {
        let response = self.send(call).await.map_err(FetchError::Unavailable)?;
        let status = response.status();
        let bytes = response.bytes().await.map_err(|_| {
            FetchError::Unavailable(Unavailable::Unreachable {
                service: call.service,
            })
        })?;
        if !status.is_success() {
            return Err(FetchError::Status {
                status: status.as_u16(),
                problem: serde_json::from_slice(&bytes).ok(),
            });
        }
        let bytes = if bytes.is_empty() {
            Bytes::from_static(b"null")
        } else {
            bytes
        };
        serde_json::from_slice(&bytes).map_err(|error| {
            tracing::warn!(service = call.service.as_str(), path = %call.path, %error, "unexpected answer");
            FetchError::Invalid {
                service: call.service,
            }
        })
    }

    async fn attempt(
        &self,
        backend: &Backend,
        call: &Outgoing,
    ) -> Result<reqwest::Response, Unavailable> {
        let service = call.service;
        // A call in a trace the browser began (it sent a `traceparent`, which the gateway's
        // span continues): the service's span becomes a child of the gateway's. Without one,
        // no trace context goes on, so that the service's span joins the order's own trace
        // (the order id's digits, as every event of the order carries) instead of a trace the
        // gateway would have made up.
        let mut headers = call.headers.clone();
        if headers.contains_key("traceparent") {
            if let Some(traceparent) = brigade_platform::telemetry::outgoing_traceparent()
                .and_then(|value| reqwest::header::HeaderValue::from_str(&value).ok())
            {
                headers.insert("traceparent", traceparent);
            }
        }
        let mut request = self
            .client
            .request(
                call.method.clone(),
                format!("{}{}", backend.base, call.path),
            )
            .headers(headers);
        if let Some(token) = &call.token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = &call.body {
            request = request.body(body.clone());
        }
        if !call.streaming {
            // Covers the body too: a service that stalls half-way through an answer is cut.
            request = request.timeout(self.call_timeout);
        }
        match tokio::time::timeout(self.call_timeout, request.send()).await {
            Err(_) => Err(Unavailable::TimedOut { service }),
            Ok(Err(error)) if error.is_timeout() => Err(Unavailable::TimedOut { service }),
            Ok(Err(_)) => Err(Unavailable::Unreachable { service }),
            Ok(Ok(response)) => Ok(response),
        }
    }

    /// Full jitter: a random wait up to `base * 2^(attempt-1)`, so that many gateways
    /// retrying at once do not hit a recovering service in step.
    fn backoff(&self, attempt: u32) -> Duration {
        let cap = self.retry_base_delay * 2_u32.saturating_pow(attempt.saturating_sub(1));
        let millis = u64::try_from(cap.as_millis()).unwrap_or(u64::MAX).max(1);
        Duration::from_millis(rand::rng().random_range(0..=millis))
    }

    fn backend(&self, service: ServiceName) -> &Backend {
        &self.backends[service as usize]
    }
}

/// Statuses that say "the service cannot serve now" (as opposed to "your request is wrong" or
/// "this endpoint has a bug"): worth a retry, and counted by the breaker.
fn is_unavailable_status(status: StatusCode) -> bool {
    matches!(
        status,
        StatusCode::BAD_GATEWAY | StatusCode::SERVICE_UNAVAILABLE | StatusCode::GATEWAY_TIMEOUT
    )
}
