//! The gateway's own knobs: its port, whether browsers reach it over TLS, where its sessions
//! are kept (NATS key-value), and the timeouts, retries and circuit breaker that guard each
//! call to a service. Derived once at start-up from
//! the platform [`Settings`] (the services' ports and URLs) and the gateway's own `BRIGADE_*`
//! variables, with defaults that run on one machine.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use brigade_platform::{ServiceName, Settings};

use crate::session::SessionStoreConfig;

/// The port browsers use unless `BRIGADE_GATEWAY_PORT` says otherwise.
pub const DEFAULT_PORT: u16 = 8080;
/// How long a session lasts from its last refresh: identity's session lifetime (30 days).
pub const SESSION_LIFETIME: Duration = Duration::from_secs(30 * 24 * 3600);

/// How the gateway serves browsers and calls the services.
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    /// Where the gateway listens (`BRIGADE_HOST`, `BRIGADE_GATEWAY_PORT`).
    pub address: SocketAddr,
    /// The base URL of each service, in [`ServiceName::ALL`] order.
    pub services: [String; 4],
    /// Browsers reach the gateway over HTTPS (`BRIGADE_GATEWAY_PUBLIC_URL` starts with
    /// `https://`): cookies get `Secure` and the `__Host-` prefix, responses get HSTS.
    pub tls: bool,
    /// Longest wait for a service to accept a connection.
    pub connect_timeout: Duration,
    /// Longest a whole call may take (not a live stream, which stays open).
    pub call_timeout: Duration,
    /// A live stream with no byte (not even a keep-alive) for this long is dead: the services
    /// send a keep-alive every 15 s.
    pub stream_idle_timeout: Duration,
    /// Extra attempts of an idempotent call (GET) after a failure; other calls are never
    /// retried, since the first attempt may have been applied.
    pub retries: u32,
    /// First retry waits up to this long (full jitter), doubling at each further attempt.
    pub retry_base_delay: Duration,
    /// Consecutive failures that open a service's circuit.
    pub breaker_failures: u32,
    /// How long an open circuit refuses calls before letting one trial through.
    pub breaker_cool_down: Duration,
    /// Sessions unused for this long are forgotten (the kitchen screen stays signed in all
    /// day: its actions keep its session in use).
    pub session_idle_timeout: Duration,
    /// NATS, whose key-value store keeps the sessions (`BRIGADE_NATS_URL`).
    pub nats_url: String,
    /// The sessions' bucket (named after `BRIGADE_NAMESPACE`), its entries' lifetime, replicas.
    pub sessions: SessionStoreConfig,
    /// Connections the gateway holds open at once (`BRIGADE_MAX_CONNECTIONS`); more wait in
    /// the listen backlog until one closes.
    pub max_connections: usize,
}

impl GatewayConfig {
    /// Reads the gateway's variables from the environment (the only place it does).
    ///
    /// # Errors
    /// A variable that is set but not valid, named in the message.
    pub fn from_env(settings: &Settings) -> Result<Self, String> {
        Self::from_lookup(settings, |key| std::env::var(key).ok())
    }

    /// Reads the gateway's variables through `lookup` (the environment, or a map in tests).
    ///
    /// # Errors
    /// A variable that is set but not valid, named in the message.
    pub fn from_lookup(
        settings: &Settings,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, String> {
        let port = match lookup("BRIGADE_GATEWAY_PORT") {
            Some(v) => v
                .trim()
                .parse()
                .map_err(|e| format!("BRIGADE_GATEWAY_PORT={v:?}: {e}"))?,
            None => DEFAULT_PORT,
        };
        let tls = match lookup("BRIGADE_GATEWAY_PUBLIC_URL") {
            Some(url) if url.starts_with("https://") => true,
            Some(url) if url.starts_with("http://") => false,
            Some(url) => {
                return Err(format!(
                    "BRIGADE_GATEWAY_PUBLIC_URL={url:?}: expected an http:// or https:// URL"
                ))
            }
            None => false,
        };
        // The services listen on `BRIGADE_HOST`; a wildcard address is reached through
        // loopback. `BRIGADE_{SERVICE}_URL` (the same spelling as `BRIGADE_IDENTITY_URL`)
        // reaches a service on another machine.
        let connect_host = if settings.host.is_unspecified() {
            IpAddr::from([127, 0, 0, 1])
        } else {
            settings.host
        };
        let services = ServiceName::ALL.map(|service| {
            let key = format!("BRIGADE_{}_URL", service.as_str().to_ascii_uppercase());
            match (service, lookup(&key)) {
                (_, Some(url)) => url.trim_end_matches('/').to_owned(),
                (ServiceName::Identity, None) => settings.identity_url.clone(),
                (_, None) => format!(
                    "http://{}",
                    SocketAddr::new(connect_host, settings.port(service))
                ),
            }
        });
        Ok(Self {
            address: SocketAddr::new(settings.host, port),
            services,
            tls,
            nats_url: settings.nats_url.clone(),
            sessions: SessionStoreConfig {
                bucket: settings.namespace.stream("gateway_sessions"),
                lifetime: SESSION_LIFETIME,
                replicas: settings.nats_replicas,
            },
            max_connections: settings.max_connections,
            ..Self::local(SocketAddr::new(settings.host, port))
        })
    }

    /// Defaults for a gateway at `address` with the services on their default local ports.
    #[must_use]
    pub fn local(address: SocketAddr) -> Self {
        Self {
            address,
            services: ServiceName::ALL.map(|s| format!("http://127.0.0.1:{}", s.default_port())),
            tls: false,
            connect_timeout: Duration::from_secs(2),
            call_timeout: Duration::from_secs(10),
            stream_idle_timeout: Duration::from_secs(45),
            retries: 2,
            retry_base_delay: Duration::from_millis(100),
            breaker_failures: 5,
            breaker_cool_down: Duration::from_secs(10),
            session_idle_timeout: Duration::from_secs(7 * 24 * 3600),
            nats_url: "nats://127.0.0.1:4222".to_owned(),
            sessions: SessionStoreConfig {
                bucket: "GATEWAY_SESSIONS".to_owned(),
                lifetime: SESSION_LIFETIME,
                replicas: 1,
            },
            max_connections: 4096,
        }
    }

    /// The base URL of one service.
    #[must_use]
    pub fn service_url(&self, service: ServiceName) -> &str {
        &self.services[service as usize]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config(env: &[(&str, &str)]) -> Result<GatewayConfig, String> {
        let env: HashMap<&str, &str> = env.iter().copied().collect();
        let lookup = |k: &str| env.get(k).map(ToString::to_string);
        let settings = Settings::from_lookup(lookup).expect("valid settings");
        GatewayConfig::from_lookup(&settings, lookup)
    }

    #[test]
    fn the_gateway_listens_on_8080_and_finds_the_services_on_their_ports() {
        let config = config(&[("BRIGADE_KITCHEN_PORT", "4003")]).expect("defaults");
        assert_eq!(config.address.port(), 8080);
        assert_eq!(
            config.service_url(ServiceName::Kitchen),
            "http://127.0.0.1:4003"
        );
        assert_eq!(
            config.service_url(ServiceName::Delivery),
            "http://127.0.0.1:3000"
        );
        assert_eq!(
            config.service_url(ServiceName::Identity),
            "http://127.0.0.1:3001"
        );
        assert!(!config.tls);
        assert_eq!(config.sessions.bucket, "GATEWAY_SESSIONS");
    }

    #[test]
    fn the_port_tls_and_service_urls_come_from_the_environment() {
        let config = config(&[
            ("BRIGADE_GATEWAY_PORT", "9090"),
            ("BRIGADE_GATEWAY_PUBLIC_URL", "https://brigade.example"),
            ("BRIGADE_ORDERS_URL", "http://orders:3002/"),
            ("BRIGADE_HOST", "0.0.0.0"),
            ("BRIGADE_NAMESPACE", "t42"),
            ("BRIGADE_NATS_URL", "nats://nats:4222"),
        ])
        .expect("valid");
        assert_eq!(config.sessions.bucket, "T42_GATEWAY_SESSIONS");
        assert_eq!(config.nats_url, "nats://nats:4222");
        assert_eq!(config.address.port(), 9090);
        assert!(config.tls);
        assert_eq!(
            config.service_url(ServiceName::Orders),
            "http://orders:3002"
        );
        assert_eq!(
            config.service_url(ServiceName::Kitchen),
            "http://127.0.0.1:3003"
        );
    }

    #[test]
    fn a_bad_port_is_named() {
        let error = config(&[("BRIGADE_GATEWAY_PORT", "web")]).expect_err("invalid");
        assert!(error.contains("BRIGADE_GATEWAY_PORT"));
    }
}
