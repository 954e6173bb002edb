//! The baselines every figure is divided by, measured in the same run on the same machine:
//! what PostgreSQL alone does (pgbench's `simple-update`, the transaction mix closest to an
//! event append), and what NATS JetStream alone does (a raw async-nats publish/consume loop,
//! file storage like the services' streams). A figure's ratio to its baseline says how much
//! of the raw capacity the system keeps, and stays meaningful when the machine is busier.

use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use async_nats::jetstream::{self, consumer::pull, stream};
use bytes::Bytes;
use futures::StreamExt;
use serde::Serialize;

use crate::procfs;
use crate::stats::{round3, Latency};
use crate::system::{bench_pool, create_database, drop_databases, POSTGRES};

/// One pgbench run.
#[derive(Debug, Clone, Serialize)]
pub struct Pgbench {
    pub tps: f64,
    pub latency_avg_ms: f64,
    /// Busy CPU of the whole machine per transaction (pgbench client included).
    pub machine_cpu_ms_per_tx: Option<f64>,
    pub clients: u32,
    pub seconds: u32,
}

/// Runs `pgbench -b simple-update` on a scratch database (initialised at `scale`).
///
/// # Errors
/// When pgbench is missing or fails.
pub async fn pgbench(
    scale: u32,
    clients: u32,
    seconds: u32,
    runs: usize,
) -> anyhow::Result<Vec<Pgbench>> {
    let database = format!(
        "bench{}_pgbench",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    );
    create_database(&database).await?;
    let result = async {
        // Plain TCP, as the services use on this machine (see `brigade_platform::database`).
        let init = tokio::process::Command::new("pgbench")
            .env("PGSSLMODE", "disable")
            .args([
                "-h",
                "127.0.0.1",
                "-U",
                "postgres",
                "-i",
                "-q",
                "-s",
                &scale.to_string(),
                &database,
            ])
            .output()
            .await
            .context("running pgbench (is it installed with PostgreSQL?)")?;
        if !init.status.success() {
            bail!(
                "pgbench -i failed: {}",
                String::from_utf8_lossy(&init.stderr)
            );
        }
        let mut all = Vec::with_capacity(runs);
        for _ in 0..runs {
            let before = procfs::machine_cpu_ms();
            let out = tokio::process::Command::new("pgbench")
                .env("PGSSLMODE", "disable")
                .args([
                    "-h",
                    "127.0.0.1",
                    "-U",
                    "postgres",
                    "-b",
                    "simple-update",
                    "-n",
                    "-c",
                    &clients.to_string(),
                    "-j",
                    "2",
                    "-T",
                    &seconds.to_string(),
                    &database,
                ])
                .output()
                .await?;
            let after = procfs::machine_cpu_ms();
            let text = String::from_utf8_lossy(&out.stdout).to_string();
            if !out.status.success() {
                bail!(
                    "pgbench failed: {}{}",
                    text,
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            let tps = field(&text, "tps = ").context("no tps in pgbench's output")?;
            let latency = field(&text, "latency average = ").unwrap_or(0.0);
            let transactions = tps * f64::from(seconds);
            all.push(Pgbench {
                tps: round3(tps),
                latency_avg_ms: latency,
                machine_cpu_ms_per_tx: before
                    .zip(after)
                    .map(|(b, a)| round3((a.0 - b.0) / transactions.max(1.0))),
                clients,
                seconds,
            });
        }
        Ok(all)
    }
    .await;
    drop_databases("", &[database.as_str()]).await;
    result
}

/// The number after `label` on the line that holds it.
fn field(text: &str, label: &str) -> Option<f64> {
    let line = text.lines().find(|line| line.contains(label))?;
    let rest = &line[line.find(label)? + label.len()..];
    rest.split_whitespace().next()?.parse().ok()
}

/// One raw NATS run.
#[derive(Debug, Clone, Serialize)]
pub struct NatsRaw {
    /// Messages published (each acknowledged by JetStream) and consumed (each acknowledged
    /// back), per second, publisher and consumer running together.
    pub messages_per_second: f64,
    /// One message at a time, publish to consumer receiving it.
    pub round_trip: Latency,
    pub messages: u64,
    pub payload_bytes: usize,
}

/// A raw JetStream loop on a stream of its own: `messages` published with at most 256
/// unacknowledged, consumed by a pull consumer that acknowledges each (as the services'
/// consumers do); then `pings` single round trips.
///
/// # Errors
/// When NATS is unreachable.
pub async fn nats_raw(url: &str, messages: u64, pings: usize) -> anyhow::Result<NatsRaw> {
    let tag = uuid::Uuid::new_v4().simple().to_string()[..8].to_owned();
    let client = async_nats::connect(url)
        .await
        .context("connecting to NATS")?;
    let js = jetstream::new(client);
    let name = format!("BENCH{}_RAW", tag.to_uppercase());
    let subject = format!("bench{tag}.raw");
    let stream = js
        .get_or_create_stream(stream::Config {
            name: name.clone(),
            subjects: vec![format!("{subject}.>")],
            storage: stream::StorageType::File,
            ..Default::default()
        })
        .await
        .map_err(|e| anyhow::anyhow!("creating the stream: {e}"))?;
    // An envelope-sized payload: what the relay publishes for one event.
    let payload = Bytes::from(vec![b'x'; 600]);
    let result = async {
        let consumer = stream
            .create_consumer(pull::Config {
                durable_name: Some("raw".to_owned()),
                ack_policy: jetstream::consumer::AckPolicy::Explicit,
                max_ack_pending: 1024,
                ..Default::default()
            })
            .await
            .map_err(|e| anyhow::anyhow!("creating the consumer: {e}"))?;
        let mut incoming = consumer.messages().await?;
        let started = Instant::now();
        let consume = tokio::spawn(async move {
            let mut seen = 0_u64;
            while seen < messages {
                match tokio::time::timeout(Duration::from_secs(30), incoming.next()).await {
                    Ok(Some(Ok(message))) => {
                        let _ = message.ack().await;
                        seen += 1;
                    }
                    _ => break,
                }
            }
            (seen, incoming)
        });
        let mut pending = futures::stream::FuturesUnordered::new();
        for i in 0..messages {
            let ack = js
                .publish(format!("{subject}.m{}", i % 16), payload.clone())
                .await
                .map_err(|e| anyhow::anyhow!("publish: {e}"))?;
            pending.push(std::future::IntoFuture::into_future(ack));
            if pending.len() >= 256 {
                if let Some(Err(e)) = pending.next().await {
                    bail!("publish ack: {e}");
                }
            }
        }
        while let Some(ack) = pending.next().await {
            ack.map_err(|e| anyhow::anyhow!("publish ack: {e}"))?;
        }
        let (seen, mut incoming) = consume.await?;
        let elapsed = started.elapsed();
        if seen < messages {
            bail!("only {seen} of {messages} messages came back");
        }
        let mut round_trips = Vec::with_capacity(pings);
        for i in 0..pings {
            let sent = Instant::now();
            js.publish(format!("{subject}.ping{i}"), payload.clone())
                .await
                .map_err(|e| anyhow::anyhow!("publish: {e}"))?
                .await
                .map_err(|e| anyhow::anyhow!("publish ack: {e}"))?;
            match tokio::time::timeout(Duration::from_secs(10), incoming.next()).await {
                Ok(Some(Ok(message))) => {
                    round_trips.push(sent.elapsed().as_secs_f64() * 1000.0);
                    let _ = message.ack().await;
                }
                _ => bail!("a ping never came back"),
            }
        }
        #[allow(clippy::cast_precision_loss)]
        let rate = messages as f64 / elapsed.as_secs_f64();
        Ok(NatsRaw {
            messages_per_second: round3(rate),
            round_trip: Latency::of(&round_trips),
            messages,
            payload_bytes: payload.len(),
        })
    }
    .await;
    let _ = js.delete_stream(&name).await;
    result
}

/// Whether PostgreSQL answers at all (the suite needs it for everything).
///
/// # Errors
/// When it does not.
pub async fn check_postgres() -> anyhow::Result<()> {
    let pool = bench_pool("postgres", 1)
        .await
        .with_context(|| format!("PostgreSQL at {POSTGRES}"))?;
    pool.close().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::field;

    #[test]
    fn pgbench_figures_are_read_from_its_report() {
        let out = "latency average = 1.873 ms\ninitial connection time = 9.1 ms\ntps = 4270.884529 (without initial connection time)\n";
        assert_eq!(field(out, "tps = "), Some(4270.884529));
        assert_eq!(field(out, "latency average = "), Some(1.873));
        assert_eq!(field(out, "nothing = "), None);
    }
}
