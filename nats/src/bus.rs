//! The connection to NATS JetStream and the streams the services publish to.

use std::time::Duration;

use async_nats::jetstream::{self, stream};

use crate::Namespace;

/// How long JetStream remembers a `Nats-Msg-Id` to drop a republished event: longer than the
/// relay's retry horizon, so a relay that crashed between publishing and marking never
/// duplicates. Consumers are idempotent anyway; this saves them the work.
pub const DUPLICATE_WINDOW: Duration = Duration::from_secs(30 * 60);

/// The services that publish a stream each.
pub const SERVICES: [&str; 4] = ["identity", "orders", "kitchen", "delivery"];

#[derive(Debug, thiserror::Error)]
pub enum BusError {
    #[error("cannot reach NATS at {url}: {source}")]
    Connect {
        url: String,
        source: async_nats::ConnectError,
    },
    #[error("cannot create or read the JetStream stream {stream}: {message}")]
    Stream { stream: String, message: String },
}

/// A NATS client with its JetStream context and namespace. Cheap to clone.
#[derive(Clone)]
pub struct Bus {
    pub client: async_nats::Client,
    pub jetstream: jetstream::Context,
    pub namespace: Namespace,
    replicas: usize,
}

impl Bus {
    /// Connects to NATS. When the server is down, the client keeps trying in the background
    /// and this returns at once: a service takes orders while NATS is away, and its outbox
    /// drains when NATS comes back.
    ///
    /// # Errors
    /// When the URL or options are invalid.
    pub async fn connect(
        url: &str,
        namespace: Namespace,
        replicas: usize,
    ) -> Result<Self, BusError> {
        let client = async_nats::ConnectOptions::new()
            .name("brigade")
            .retry_on_initial_connect()
            .max_reconnects(None)
            .connection_timeout(Duration::from_secs(2))
            .connect(url)
            .await
            .map_err(|source| BusError::Connect {
                url: url.to_owned(),
                source,
            })?;
        let jetstream = jetstream::ContextBuilder::new()
            .timeout(Duration::from_secs(5))
            .build(client.clone());
        Ok(Self {
            client,
            jetstream,
            namespace,
            replicas: replicas.max(1),
        })
    }

    /// Messages of the services' streams (every one of [`SERVICES`] that exists) that their
    /// durable consumers have not applied yet: waiting to be delivered, or delivered and not
    /// acknowledged (a retry waiting out its delay). Zero: every consumer has had every event.
    ///
    /// # Errors
    /// A stream or its consumers cannot be read.
    pub async fn unapplied(&self) -> Result<u64, BusError> {
        use futures::StreamExt;
        let mut unapplied = 0_u64;
        for service in SERVICES {
            let name = self.namespace.stream(service);
            let Ok(stream) = self.jetstream.get_stream(&name).await else {
                continue;
            };
            let mut consumers = stream.consumers();
            while let Some(info) = consumers.next().await {
                let info = info.map_err(|e| BusError::Stream {
                    stream: name.clone(),
                    message: e.to_string(),
                })?;
                unapplied += info.num_pending + info.num_ack_pending as u64;
            }
        }
        Ok(unapplied)
    }

    /// Whether the client is connected right now.
    #[must_use]
    pub fn is_connected(&self) -> bool {
        self.client.connection_state() == async_nats::connection::State::Connected
    }

    /// Creates the stream of one service if it does not exist yet, and returns it. Publisher
    /// and consumers both call this with the same configuration, so whoever starts first
    /// creates it.
    ///
    /// # Errors
    /// When NATS is unreachable or refuses the configuration.
    pub async fn ensure_stream(&self, service: &str) -> Result<stream::Stream, BusError> {
        let name = self.namespace.stream(service);
        let config = stream::Config {
            name: name.clone(),
            subjects: vec![self.namespace.subject(&format!("{service}.>"))],
            storage: stream::StorageType::File,
            retention: stream::RetentionPolicy::Limits,
            duplicate_window: DUPLICATE_WINDOW,
            num_replicas: self.replicas,
            ..Default::default()
        };
        self.jetstream
            .get_or_create_stream(config)
            .await
            .map_err(|e| BusError::Stream {
                stream: name,
                message: e.to_string(),
            })
    }
}
