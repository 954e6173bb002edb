//! Live tracking fan-out: `couriers` couriers, each carrying one delivery, send their position
//! once a second; `clients` SSE clients follow those deliveries (`GET /deliveries/{id}/stream`,
//! spread evenly). Measured: what each held connection costs the delivery process (its RSS
//! before and after the clients connect), how many frames per second reach the clients, and
//! how long after the position was recorded each frame arrives (the position's own timestamp,
//! set by the delivery service, against the bench's clock: the same machine).

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::bail;
use chrono::{DateTime, Utc};
use futures::StreamExt;
use serde::Serialize;
use serde_json::json;
use tokio::sync::{watch, Semaphore};
use uuid::Uuid;

use crate::procfs;
use crate::sse;
use crate::stats::{round3, Latency};
use crate::system::{order_body, place_order, stream_client, Cast, Launch, Session, System};

/// One fan-out run.
#[derive(Debug, Clone, Serialize)]
pub struct Fanout {
    pub couriers: usize,
    pub clients: usize,
    pub seconds: f64,
    pub clients_connected: usize,
    pub rss_before_bytes: u64,
    pub rss_after_bytes: u64,
    pub bytes_per_connection: f64,
    /// What 10,000 held connections would take at that cost.
    pub mb_per_10k_connections: f64,
    pub positions_sent: u64,
    pub positions_failed: u64,
    pub messages_delivered: u64,
    pub messages_expected: u64,
    pub messages_per_second: f64,
    /// From the position being recorded to its frame at a client.
    pub delay: Latency,
    /// CPU of the delivery process per frame delivered.
    pub delivery_cpu_us_per_message: Option<f64>,
}

/// Runs one fan-out on a fresh system.
///
/// # Errors
/// When the system cannot start, the deliveries never get assigned, or clients cannot connect.
pub async fn run(
    launch: &Launch,
    couriers: usize,
    clients: usize,
    seconds: f64,
) -> anyhow::Result<Fanout> {
    let system = System::start(launch).await?;
    let result = measure(&system, couriers, clients, seconds).await;
    system.shutdown().await;
    result
}

async fn measure(
    system: &System,
    couriers: usize,
    clients: usize,
    seconds: f64,
) -> anyhow::Result<Fanout> {
    let cast = Cast::hire(system, 1).await?;
    let mut fleet = Vec::with_capacity(couriers);
    for i in 0..couriers {
        fleet.push(
            system
                .courier_on_shift(&cast.manager, &format!("Coursier{i}"))
                .await?,
        );
    }
    // One delivery per courier: placed, cooked, assigned by dispatch.
    let url = system.url("orders", "/orders");
    let mut carried: Vec<(Uuid, Session)> = Vec::with_capacity(couriers);
    for i in 0..couriers {
        let order_id = place_order(
            &system.http,
            &url,
            &cast.customers[0],
            &order_body(&cast.dishes, i),
        )
        .await?;
        system.cook(&cast.chef, order_id).await?;
        let courier_id = system.wait_assigned(&cast.manager, order_id).await?;
        let courier = fleet
            .iter()
            .find(|c| c.account_id == courier_id)
            .cloned()
            .ok_or_else(|| anyhow::anyhow!("dispatch chose a courier of someone else"))?;
        carried.push((order_id, courier));
    }
    let Some(pid) = system.pid("delivery") else {
        bail!("the delivery process is gone");
    };
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss_before = procfs::rss_bytes(pid).unwrap_or(0);

    // The clients, each a connection of its own, following one delivery.
    let (stop, stopped) = watch::channel(false);
    let http = stream_client();
    let gate = Arc::new(Semaphore::new(128));
    let opened = futures::stream::iter(0..clients)
        .map(|i| {
            let (http, gate, stopped) = (http.clone(), gate.clone(), stopped.clone());
            let url = system.url(
                "delivery",
                &format!("/deliveries/{}/stream", carried[i % couriers].0),
            );
            let token = cast.manager.token.clone();
            async move {
                let _permit = gate.acquire().await.ok()?;
                // A client the service does not take within the minute (its connection cap,
                // say) counts as not connected, rather than holding the whole run up.
                let response = tokio::time::timeout(
                    Duration::from_secs(60),
                    http.get(url)
                        .bearer_auth(token)
                        .header("Accept", "text/event-stream")
                        .send(),
                )
                .await
                .ok()?
                .ok()?;
                if !response.status().is_success() {
                    return None;
                }
                Some(tokio::spawn(async move {
                    let mut delays: Vec<f64> = Vec::new();
                    sse::read_events(response, stopped, |data| {
                        if let Some(at) = position_time(data) {
                            delays.push(
                                (Utc::now() - at).num_microseconds().unwrap_or(0) as f64 / 1000.0,
                            );
                        }
                        true
                    })
                    .await;
                    delays
                }))
            }
        })
        .buffer_unordered(256)
        .collect::<Vec<_>>()
        .await;
    let readers: Vec<_> = opened.into_iter().flatten().collect();
    let connected = readers.len();
    println!("    {connected} of {clients} clients connected");
    tokio::time::sleep(Duration::from_secs(3)).await;
    let rss_after = procfs::rss_bytes(pid).unwrap_or(0);

    // Positions: each courier once a second, the couriers spread over the second.
    let cpu_before = procfs::cpu_ms(pid);
    let started = Instant::now();
    let senders: Vec<_> = carried
        .iter()
        .enumerate()
        .map(|(i, (_, courier))| {
            let http = system.http.clone();
            let url = system.url("delivery", "/couriers/me/position");
            let token = courier.token.clone();
            #[allow(clippy::cast_precision_loss)]
            let offset = Duration::from_secs_f64(i as f64 / couriers as f64);
            tokio::spawn(async move {
                let (mut sent, mut failed) = (0_u64, 0_u64);
                let mut tick =
                    tokio::time::interval_at((started + offset).into(), Duration::from_secs(1));
                #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
                for n in 0..seconds.round() as u64 {
                    tick.tick().await;
                    #[allow(clippy::cast_precision_loss)]
                    let body = json!({"lat": 48.85 + n as f64 * 0.0001, "lon": 2.35});
                    match http.post(&url).bearer_auth(&token).json(&body).send().await {
                        Ok(response) if response.status().is_success() => sent += 1,
                        _ => failed += 1,
                    }
                }
                (sent, failed)
            })
        })
        .collect();
    let (mut sent, mut failed) = (0, 0);
    for sender in senders {
        let (s, f) = sender.await.unwrap_or((0, 0));
        sent += s;
        failed += f;
    }
    // The last frames are on their way.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let cpu_after = procfs::cpu_ms(pid);
    let _ = stop.send(true);
    let mut delays = Vec::new();
    for reader in readers {
        delays.extend(reader.await.unwrap_or_default());
    }
    let delivered = delays.len() as u64;
    #[allow(clippy::cast_precision_loss)]
    let per_connection = (rss_after.saturating_sub(rss_before)) as f64 / connected.max(1) as f64;
    // Each position reaches every client following its courier's delivery.
    let expected = sent * (connected as u64) / (couriers as u64).max(1);
    #[allow(clippy::cast_precision_loss)]
    Ok(Fanout {
        couriers,
        clients,
        seconds,
        clients_connected: connected,
        rss_before_bytes: rss_before,
        rss_after_bytes: rss_after,
        bytes_per_connection: round3(per_connection),
        mb_per_10k_connections: round3(per_connection * 10_000.0 / 1_048_576.0),
        positions_sent: sent,
        positions_failed: failed,
        messages_delivered: delivered,
        messages_expected: expected,
        messages_per_second: round3(delivered as f64 / seconds),
        delay: Latency::of(&delays),
        delivery_cpu_us_per_message: cpu_before
            .zip(cpu_after)
            .filter(|_| delivered > 0)
            .map(|(b, a)| round3((a - b) * 1000.0 / delivered as f64)),
    })
}

/// When the courier's position in a frame was recorded.
fn position_time(data: &str) -> Option<DateTime<Utc>> {
    let position = &data[data.find("\"courierPosition\":{")?..];
    let marker = "\"at\":\"";
    let start = position.find(marker)? + marker.len();
    let end = start + position[start..].find('"')?;
    position[start..end].parse().ok()
}

#[cfg(test)]
mod tests {
    use super::position_time;

    #[test]
    fn the_position_time_is_read_from_a_frame() {
        let frame = r#"{"changeId":9,"delivery":{"requestedAt":"2025-01-01T10:00:00Z","courierPosition":{"lat":1.0,"lon":2.0,"at":"2025-01-01T12:00:00.5Z"}}}"#;
        assert_eq!(
            position_time(frame).map(|at| at.to_rfc3339()),
            Some("2025-01-01T12:00:00.500+00:00".to_owned())
        );
        assert_eq!(position_time(r#"{"courierPosition":null}"#), None);
    }
}
