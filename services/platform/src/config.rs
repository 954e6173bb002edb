//! Configuration: one typed struct, read once at start-up from `BRIGADE_*` environment
//! variables, with defaults that run on one machine against local PostgreSQL and NATS.
//! Nothing else in Brigade reads the environment.

use std::net::IpAddr;

use brigade_nats::Namespace;

/// The four services of the brief.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ServiceName {
    Identity,
    Orders,
    Kitchen,
    Delivery,
}

impl ServiceName {
    pub const ALL: [Self; 4] = [Self::Identity, Self::Orders, Self::Kitchen, Self::Delivery];

    /// The lower-case name: stream, subjects, database and log prefix.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Identity => "identity",
            Self::Orders => "orders",
            Self::Kitchen => "kitchen",
            Self::Delivery => "delivery",
        }
    }

    /// The port each service listens on unless configured otherwise (delivery keeps the
    /// brief's 3000).
    #[must_use]
    pub fn default_port(self) -> u16 {
        match self {
            Self::Delivery => 3000,
            Self::Identity => 3001,
            Self::Orders => 3002,
            Self::Kitchen => 3003,
        }
    }

    /// Human title for home pages and API documents.
    #[must_use]
    pub fn title(self) -> &'static str {
        match self {
            Self::Identity => "Brigade identity",
            Self::Orders => "Brigade orders",
            Self::Kitchen => "Brigade kitchen",
            Self::Delivery => "Brigade delivery",
        }
    }
}

impl std::str::FromStr for ServiceName {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|service| service.as_str() == s)
            .ok_or_else(|| {
                format!("unknown service {s:?}: expected identity, orders, kitchen or delivery")
            })
    }
}

/// Everything a Brigade process can be told.
#[derive(Debug, Clone)]
pub struct Settings {
    /// PostgreSQL server URL without a database (`BRIGADE_DATABASE_URL`).
    pub database_url: String,
    /// Prefix of every database name (`BRIGADE_DATABASE_PREFIX`): `t1_` gives `t1_orders`.
    pub database_prefix: String,
    /// `BRIGADE_NATS_URL`.
    pub nats_url: String,
    /// Prefix of streams and subjects (`BRIGADE_NAMESPACE`).
    pub namespace: Namespace,
    /// Replicas of each JetStream stream (`BRIGADE_NATS_REPLICAS`, 3 on a cluster).
    pub nats_replicas: usize,
    /// Address the services bind (`BRIGADE_HOST`, default 127.0.0.1; 0.0.0.0 in containers).
    pub host: IpAddr,
    /// Ports (`BRIGADE_IDENTITY_PORT`, `BRIGADE_ORDERS_PORT`, …).
    pub ports: [u16; 4],
    /// Where the identity service answers, for its public keys (`BRIGADE_IDENTITY_URL`).
    pub identity_url: String,
    /// Access-token audience shared by all services (`BRIGADE_TOKEN_AUDIENCE`).
    pub token_audience: String,
    /// The first manager, created at the identity service's first start when both are set
    /// (`BRIGADE_MANAGER_EMAIL`, `BRIGADE_MANAGER_PASSWORD`).
    pub first_manager: Option<(String, String)>,
    /// Connections per service pool (`BRIGADE_DATABASE_POOL`).
    pub pool_size: u32,
    /// Live streams (server-sent events) one service process serves at once
    /// (`BRIGADE_MAX_STREAMS`); more get 503 until one ends.
    pub max_streams: usize,
    /// Connections one service process holds open at once (`BRIGADE_MAX_CONNECTIONS`); more
    /// wait in the kernel's listen backlog until one closes.
    pub max_connections: usize,
    /// `BRIGADE_LOG_FORMAT`: `auto` (text on a terminal, JSON lines otherwise), `text`, `json`.
    pub log_format: crate::telemetry::LogFormat,
    /// Tickets the kitchen takes per 15-minute slot, for the orders service
    /// (`BRIGADE_KITCHEN_SLOT_CAPACITY`); `None` (unset or 0): no limit.
    pub kitchen_slot_capacity: Option<u32>,
    /// Where spans are exported over OTLP/HTTP (JSON), e.g. `http://collector:4318`
    /// (`BRIGADE_OTLP_ENDPOINT`, else OpenTelemetry's own `OTEL_EXPORTER_OTLP_ENDPOINT`);
    /// unset: no export.
    pub otlp_endpoint: Option<String>,
    /// The SMTP server the delivery service e-mails notifications through
    /// (`BRIGADE_SMTP_URL`, `smtp://host[:port]`); no e-mail when unset.
    pub smtp_url: Option<String>,
    /// The sender of those e-mails (`BRIGADE_SMTP_FROM`).
    pub smtp_from: Option<String>,
    /// How long before the kitchen expects an order ready dispatch may send its courier
    /// (`BRIGADE_DISPATCH_LEAD_SECS`; 0: only once it is ready).
    pub dispatch_lead_secs: Option<u64>,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            database_url: "postgres://postgres@127.0.0.1:5432".to_owned(),
            database_prefix: String::new(),
            nats_url: "nats://127.0.0.1:4222".to_owned(),
            namespace: Namespace::default(),
            nats_replicas: 1,
            host: IpAddr::from([127, 0, 0, 1]),
            ports: ServiceName::ALL.map(ServiceName::default_port),
            identity_url: "http://127.0.0.1:3001".to_owned(),
            token_audience: "brigade".to_owned(),
            first_manager: None,
            pool_size: 16,
            max_streams: 256,
            max_connections: 4096,
            log_format: crate::telemetry::LogFormat::Auto,
            kitchen_slot_capacity: None,
            otlp_endpoint: None,
            smtp_url: None,
            smtp_from: None,
            dispatch_lead_secs: None,
        }
    }
}

impl Settings {
    /// Reads the environment once.
    ///
    /// # Errors
    /// A variable that is set but not valid, named in the message.
    pub fn from_env() -> Result<Self, String> {
        Self::from_lookup(|key| std::env::var(key).ok())
    }

    /// Reads settings through `lookup` (the environment, or a map in tests).
    ///
    /// # Errors
    /// A value that is set but not valid, named in the message.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, String> {
        let mut settings = Self::default();
        if let Some(v) = lookup("BRIGADE_DATABASE_URL") {
            settings.database_url = v.trim_end_matches('/').to_owned();
        }
        if let Some(v) = lookup("BRIGADE_DATABASE_PREFIX") {
            if !v.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(format!(
                    "BRIGADE_DATABASE_PREFIX={v:?}: only letters, digits and '_'"
                ));
            }
            settings.database_prefix = v.to_ascii_lowercase();
        }
        if let Some(v) = lookup("BRIGADE_NATS_URL") {
            settings.nats_url = v;
        }
        settings.namespace = Namespace::new(lookup("BRIGADE_NAMESPACE").as_deref())
            .map_err(|e| format!("BRIGADE_NAMESPACE: {e}"))?;
        if let Some(v) = lookup("BRIGADE_NATS_REPLICAS") {
            settings.nats_replicas = parse("BRIGADE_NATS_REPLICAS", &v)?;
        }
        if let Some(v) = lookup("BRIGADE_HOST") {
            settings.host = parse("BRIGADE_HOST", &v)?;
        }
        for (i, service) in ServiceName::ALL.into_iter().enumerate() {
            let key = format!("BRIGADE_{}_PORT", service.as_str().to_ascii_uppercase());
            if let Some(v) = lookup(&key) {
                settings.ports[i] = parse(&key, &v)?;
            }
        }
        settings.identity_url = match lookup("BRIGADE_IDENTITY_URL") {
            Some(v) => v.trim_end_matches('/').to_owned(),
            None => format!("http://127.0.0.1:{}", settings.port(ServiceName::Identity)),
        };
        if let Some(v) = lookup("BRIGADE_TOKEN_AUDIENCE") {
            settings.token_audience = v;
        }
        // Empty counts as unset: compose passes `${BRIGADE_MANAGER_EMAIL:-}` through as "".
        let set = |key: &str| lookup(key).filter(|v| !v.trim().is_empty());
        settings.first_manager = set("BRIGADE_MANAGER_EMAIL").zip(set("BRIGADE_MANAGER_PASSWORD"));
        if let Some((key, v)) = ["BRIGADE_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT"]
            .into_iter()
            .find_map(|key| set(key).map(|v| (key, v)))
        {
            // The services' HTTP client speaks plain HTTP: a collector or agent beside them.
            if !v.starts_with("http://") {
                return Err(format!(
                    "{key}={v:?}: expected an http:// URL (OTLP/HTTP, e.g. http://collector:4318)"
                ));
            }
            settings.otlp_endpoint = Some(v.trim().to_owned());
        }
        if let Some(v) = lookup("BRIGADE_LOG_FORMAT") {
            settings.log_format = match v.as_str() {
                "auto" => crate::telemetry::LogFormat::Auto,
                "text" => crate::telemetry::LogFormat::Text,
                "json" => crate::telemetry::LogFormat::Json,
                other => {
                    return Err(format!(
                        "BRIGADE_LOG_FORMAT={other:?}: expected auto, text or json"
                    ))
                }
            };
        }
        if let Some(v) = lookup("BRIGADE_DATABASE_POOL") {
            settings.pool_size = parse("BRIGADE_DATABASE_POOL", &v)?;
        }
        if let Some(v) = lookup("BRIGADE_MAX_STREAMS") {
            settings.max_streams = parse("BRIGADE_MAX_STREAMS", &v)?;
        }
        if let Some(v) = lookup("BRIGADE_MAX_CONNECTIONS") {
            settings.max_connections = parse("BRIGADE_MAX_CONNECTIONS", &v)?;
        }
        if let Some(v) = lookup("BRIGADE_KITCHEN_SLOT_CAPACITY").filter(|v| !v.trim().is_empty()) {
            let capacity: u32 = parse("BRIGADE_KITCHEN_SLOT_CAPACITY", &v)?;
            settings.kitchen_slot_capacity = (capacity > 0).then_some(capacity);
        }
        settings.smtp_url = lookup("BRIGADE_SMTP_URL").filter(|v| !v.trim().is_empty());
        settings.smtp_from = lookup("BRIGADE_SMTP_FROM").filter(|v| !v.trim().is_empty());
        if let Some(v) = lookup("BRIGADE_DISPATCH_LEAD_SECS") {
            settings.dispatch_lead_secs = Some(parse("BRIGADE_DISPATCH_LEAD_SECS", &v)?);
        }
        Ok(settings)
    }

    /// The port of one service.
    #[must_use]
    pub fn port(&self, service: ServiceName) -> u16 {
        self.ports[service as usize]
    }

    /// The database of one service: `orders`, or `{prefix}orders`.
    #[must_use]
    pub fn database_name(&self, service: ServiceName) -> String {
        format!("{}{}", self.database_prefix, service.as_str())
    }

    /// The URL of one service's database.
    #[must_use]
    pub fn database_url_for(&self, service: ServiceName) -> String {
        format!("{}/{}", self.database_url, self.database_name(service))
    }
}

fn parse<T: std::str::FromStr>(key: &str, value: &str) -> Result<T, String>
where
    T::Err: std::fmt::Display,
{
    value
        .trim()
        .parse()
        .map_err(|e| format!("{key}={value:?}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn defaults_run_on_one_machine() {
        let settings = Settings::from_lookup(|_| None).expect("defaults are valid");
        assert_eq!(settings.port(ServiceName::Delivery), 3000);
        assert_eq!(settings.database_name(ServiceName::Orders), "orders");
        assert_eq!(settings.identity_url, "http://127.0.0.1:3001");
    }

    #[test]
    fn a_prefix_and_ports_come_from_the_environment() {
        let env: HashMap<&str, &str> = [
            ("BRIGADE_DATABASE_PREFIX", "t1_"),
            ("BRIGADE_IDENTITY_PORT", "4001"),
            ("BRIGADE_NAMESPACE", "t1"),
        ]
        .into();
        let settings =
            Settings::from_lookup(|k| env.get(k).map(ToString::to_string)).expect("valid");
        assert_eq!(settings.database_name(ServiceName::Kitchen), "t1_kitchen");
        assert_eq!(settings.identity_url, "http://127.0.0.1:4001");
        assert_eq!(settings.namespace.stream("orders"), "T1_ORDERS");
    }

    #[test]
    fn spans_go_to_brigades_otlp_endpoint_before_opentelemetrys_own() {
        let env: HashMap<&str, &str> = [
            ("BRIGADE_OTLP_ENDPOINT", "http://collector:4318"),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://other:4318"),
        ]
        .into();
        let settings =
            Settings::from_lookup(|k| env.get(k).map(ToString::to_string)).expect("valid");
        assert_eq!(
            settings.otlp_endpoint.as_deref(),
            Some("http://collector:4318")
        );
        let settings = Settings::from_lookup(|k| {
            (k == "OTEL_EXPORTER_OTLP_ENDPOINT").then(|| "http://other:4318".to_owned())
        })
        .expect("valid");
        assert_eq!(settings.otlp_endpoint.as_deref(), Some("http://other:4318"));
        let error = Settings::from_lookup(|k| {
            (k == "BRIGADE_OTLP_ENDPOINT").then(|| "grpc://collector:4317".to_owned())
        })
        .expect_err("not OTLP/HTTP");
        assert!(error.contains("BRIGADE_OTLP_ENDPOINT"));
    }

    #[test]
    fn empty_values_from_compose_count_as_unset() {
        let env: HashMap<&str, &str> = [
            ("BRIGADE_MANAGER_EMAIL", ""),
            ("BRIGADE_MANAGER_PASSWORD", ""),
            ("BRIGADE_OTLP_ENDPOINT", ""),
        ]
        .into();
        let settings =
            Settings::from_lookup(|k| env.get(k).map(ToString::to_string)).expect("valid");
        assert_eq!(settings.first_manager, None);
        assert_eq!(settings.otlp_endpoint, None);
    }

    #[test]
    fn the_kitchen_slot_capacity_is_unlimited_unless_set() {
        assert_eq!(
            Settings::from_lookup(|_| None)
                .expect("defaults")
                .kitchen_slot_capacity,
            None
        );
        let set = |v: &'static str| {
            Settings::from_lookup(move |k| {
                (k == "BRIGADE_KITCHEN_SLOT_CAPACITY").then(|| v.to_owned())
            })
        };
        assert_eq!(set("6").expect("valid").kitchen_slot_capacity, Some(6));
        assert_eq!(set("0").expect("valid").kitchen_slot_capacity, None);
        assert!(set("many")
            .expect_err("not a number")
            .contains("BRIGADE_KITCHEN_SLOT_CAPACITY"));
    }

    #[test]
    fn the_smtp_relay_and_the_dispatch_lead_come_from_the_environment() {
        let env: HashMap<&str, &str> = [
            ("BRIGADE_SMTP_URL", "smtp://relay:2525"),
            ("BRIGADE_SMTP_FROM", "bistro@example.com"),
            ("BRIGADE_DISPATCH_LEAD_SECS", "120"),
        ]
        .into();
        let settings =
            Settings::from_lookup(|k| env.get(k).map(ToString::to_string)).expect("valid");
        assert_eq!(settings.smtp_url.as_deref(), Some("smtp://relay:2525"));
        assert_eq!(settings.smtp_from.as_deref(), Some("bistro@example.com"));
        assert_eq!(settings.dispatch_lead_secs, Some(120));
        assert_eq!(
            Settings::from_lookup(|_| None).expect("valid").smtp_url,
            None
        );
    }

    #[test]
    fn a_bad_value_is_named() {
        let error = Settings::from_lookup(|k| (k == "BRIGADE_ORDERS_PORT").then(|| "x".to_owned()))
            .expect_err("invalid port");
        assert!(error.contains("BRIGADE_ORDERS_PORT"));
    }
}
