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
    /// `BRIGADE_LOG_FORMAT`: `auto` (text on a terminal, JSON lines otherwise), `text`, `json`.
    pub log_format: crate::telemetry::LogFormat,
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
            log_format: crate::telemetry::LogFormat::Auto,
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
        settings.first_manager =
            lookup("BRIGADE_MANAGER_EMAIL").zip(lookup("BRIGADE_MANAGER_PASSWORD"));
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
    fn a_bad_value_is_named() {
        let error = Settings::from_lookup(|k| (k == "BRIGADE_ORDERS_PORT").then(|| "x".to_owned()))
            .expect_err("invalid port");
        assert!(error.contains("BRIGADE_ORDERS_PORT"));
    }
}
