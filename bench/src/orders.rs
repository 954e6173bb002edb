//! Orders end to end: how many orders per second the whole system sustains (placed, stored,
//! published, applied by the kitchen, delivery and the orders' own read model), how fast a
//! customer hears back at half that rate, how soon the order shows on a connected kitchen
//! screen, and how much CPU one order costs across every process.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::bail;
use serde::Serialize;
use tokio::sync::watch;
use uuid::Uuid;

use crate::load::{open_loop, Outcome};
use crate::procfs::{self, CpuSnapshot};
use crate::sse;
use crate::stats::{round3, Latency};
use crate::system::{order_body, place_order, Cast, Launch, System};

/// Customers the load is spread over.
const CUSTOMERS: usize = 16;
/// Requests waiting at once beyond which the generator sheds load (and the step fails).
const MAX_IN_FLIGHT: usize = 2048;

/// How to look for the sustained rate.
#[derive(Debug, Clone, Serialize)]
pub struct RampPlan {
    pub start_rate: f64,
    pub growth: f64,
    pub max_rate: f64,
    pub step_seconds: f64,
    /// Halvings of the interval between the last rate held and the first one lost.
    pub refinements: u32,
}

/// One rate tried.
#[derive(Debug, Clone, Serialize)]
pub struct Step {
    pub rate: f64,
    pub achieved_rate: f64,
    pub placed: u64,
    pub errors: u64,
    pub shed: u64,
    /// Orders applied everywhere per second while the load ran.
    pub applied_rate: f64,
    /// Orders placed but not yet applied everywhere, half-way and at the end of the load.
    pub backlog_mid: u64,
    pub backlog_end: u64,
    pub placement: Latency,
    /// How long the backlog took to drain after the load stopped.
    pub drain_seconds: f64,
    pub sustained: bool,
}

/// One ramp, on a fresh system.
#[derive(Debug, Clone, Serialize)]
pub struct Ramp {
    pub steps: Vec<Step>,
    /// The highest rate held.
    pub sustained_rate: f64,
    /// The highest rate at which orders were applied everywhere, overloaded or not.
    pub peak_applied_rate: f64,
}

struct Load {
    system: System,
    cast: Cast,
    placed: Arc<AtomicU64>,
    next: AtomicU64,
}

impl Load {
    async fn start(launch: &Launch) -> anyhow::Result<Self> {
        let system = System::start(launch).await?;
        match Cast::hire(&system, CUSTOMERS).await {
            Ok(cast) => Ok(Self {
                system,
                cast,
                placed: Arc::new(AtomicU64::new(0)),
                next: AtomicU64::new(0),
            }),
            Err(error) => {
                system.shutdown().await;
                Err(error)
            }
        }
    }

    /// Places orders at `rate` for `duration`; `answered` is told of each order placed.
    async fn run(
        &self,
        rate: f64,
        duration: Duration,
        answered: Option<Arc<Mutex<HashMap<Uuid, Instant>>>>,
    ) -> Outcome {
        let offset = self.next.load(Ordering::Relaxed);
        let url = self.system.url("orders", "/orders");
        let outcome = open_loop(rate, duration, MAX_IN_FLIGHT, |i| {
            let i = usize::try_from(offset + i).unwrap_or(0);
            let http = self.system.http.clone();
            let url = url.clone();
            let customer = self.cast.customers[i % self.cast.customers.len()].clone();
            let body = order_body(&self.cast.dishes, i);
            let placed = self.placed.clone();
            let answered = answered.clone();
            async move {
                let order_id = place_order(&http, &url, &customer, &body)
                    .await
                    .map_err(|e| e.to_string())?;
                let at = Instant::now();
                placed.fetch_add(1, Ordering::Relaxed);
                if let Some(answered) = answered {
                    if let Ok(mut map) = answered.lock() {
                        map.insert(order_id, at);
                    }
                }
                Ok(())
            }
        })
        .await;
        self.next.fetch_add(outcome.due, Ordering::Relaxed);
        outcome
    }

    /// Orders placed and not yet applied everywhere.
    async fn backlog(&self) -> anyhow::Result<(u64, u64)> {
        let applied = self.system.applied().await?.everywhere();
        let placed = self.placed.load(Ordering::Relaxed);
        Ok((placed.saturating_sub(applied), applied))
    }

    /// Waits until every placed order is applied everywhere; returns how long it took.
    async fn drain(&self, limit: Duration) -> anyhow::Result<Duration> {
        let started = Instant::now();
        loop {
            if self.backlog().await?.0 == 0 {
                return Ok(started.elapsed());
            }
            if started.elapsed() > limit {
                bail!("the backlog did not drain within {limit:?}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn step(&self, rate: f64, seconds: f64) -> anyhow::Result<Step> {
        let duration = Duration::from_secs_f64(seconds);
        let (_, applied_before) = self.backlog().await?;
        let started = Instant::now();
        let mid = async {
            tokio::time::sleep(duration / 2).await;
            self.backlog().await.map(|b| b.0).unwrap_or(u64::MAX)
        };
        let (outcome, backlog_mid) = tokio::join!(self.run(rate, duration, None), mid);
        let (backlog_end, applied_end) = self.backlog().await?;
        let elapsed = started.elapsed().as_secs_f64();
        #[allow(clippy::cast_precision_loss)]
        let applied_rate = (applied_end - applied_before) as f64 / elapsed;
        let drained = self.drain(Duration::from_secs(180)).await;
        // At most one second's worth of orders still on their way when the load stops, and
        // not growing through the step: the system keeps up.
        #[allow(clippy::cast_precision_loss)]
        let keeps_up = (backlog_end as f64) <= rate.max(10.0)
            && (backlog_end as f64) <= backlog_mid as f64 + 0.25 * rate + 10.0;
        let sustained = outcome.errors == 0
            && outcome.shed == 0
            && outcome.achieved_rate() >= 0.95 * rate
            && keeps_up
            && drained.is_ok();
        if !outcome.sample_errors.is_empty() {
            eprintln!("    errors at {rate:.0}/s: {:?}", outcome.sample_errors);
        }
        Ok(Step {
            rate: round3(rate),
            achieved_rate: round3(outcome.achieved_rate()),
            placed: outcome.ok,
            errors: outcome.errors,
            shed: outcome.shed,
            applied_rate: round3(applied_rate),
            backlog_mid,
            backlog_end,
            placement: Latency::of(&outcome.latencies_ms),
            drain_seconds: round3(drained.as_ref().map_or(f64::NAN, Duration::as_secs_f64)),
            sustained,
        })
    }
}

fn print_step(step: &Step) {
    println!(
        "    {:>7.0}/s: placed {:>6} ({:>7.1}/s), applied {:>7.1}/s, backlog mid {:>5} end {:>5}, p50 {:>7.2} ms p99 {:>8.2} ms, drain {:>5.1}s  {}",
        step.rate,
        step.placed,
        step.achieved_rate,
        step.applied_rate,
        step.backlog_mid,
        step.backlog_end,
        step.placement.p50_ms,
        step.placement.p99_ms,
        step.drain_seconds,
        if step.sustained { "held" } else { "LOST" }
    );
}

/// Raises the rate until the system stops keeping up, then narrows down between the last
/// rate held and the first one lost. One fresh system per ramp.
///
/// # Errors
/// When the system cannot start.
pub async fn ramp(launch: &Launch, plan: &RampPlan) -> anyhow::Result<Ramp> {
    let load = Load::start(launch).await?;
    let result = async {
        // Warm up: connections, caches, JetStream consumers.
        load.run(plan.start_rate.min(20.0), Duration::from_secs(2), None)
            .await;
        load.drain(Duration::from_secs(60)).await?;
        let mut steps = Vec::new();
        let mut held: Option<f64> = None;
        let mut lost: Option<f64> = None;
        let mut rate = plan.start_rate;
        while rate <= plan.max_rate {
            let step = load.step(rate, plan.step_seconds).await?;
            print_step(&step);
            let ok = step.sustained;
            steps.push(step);
            if !ok {
                lost = Some(rate);
                break;
            }
            held = Some(rate);
            rate *= plan.growth;
        }
        if let (Some(mut low), Some(mut high)) = (held, lost) {
            for _ in 0..plan.refinements {
                let rate = ((low + high) / 2.0).round();
                if rate <= low || rate >= high {
                    break;
                }
                let step = load.step(rate, plan.step_seconds).await?;
                print_step(&step);
                if step.sustained {
                    low = rate;
                } else {
                    high = rate;
                }
                let drained = step.drain_seconds.is_finite();
                steps.push(step);
                if !drained {
                    break;
                }
            }
            held = Some(low);
        }
        let peak = steps.iter().map(|s| s.applied_rate).fold(0.0, f64::max);
        Ok(Ramp {
            steps,
            sustained_rate: held.unwrap_or(0.0),
            peak_applied_rate: peak,
        })
    }
    .await;
    load.system.shutdown().await;
    result
}

/// Placement latency, kitchen screen latency and CPU at one rate.
#[derive(Debug, Clone, Serialize)]
pub struct AtRate {
    pub rate: f64,
    pub seconds: f64,
    pub achieved_rate: f64,
    pub errors: u64,
    pub shed: u64,
    /// From the moment each `POST /orders` was due to its 201 answer.
    pub placement: Latency,
    /// How late the generator sent each `POST /orders` (included in `placement`).
    pub sent_late: Latency,
    /// From the 201 answer to the ticket's frame on a connected `GET /tickets/stream`.
    pub placed_to_kitchen: Latency,
    /// Orders whose frame came before the bench had read their answer (counted as 0 ms).
    pub kitchen_before_answer: u64,
    /// Orders placed whose first frame never came.
    pub kitchen_missing: u64,
    pub cpu: Option<Cpu>,
}

/// CPU per order, from `/proc`, over the load and until everything it caused was applied.
#[derive(Debug, Clone, Serialize)]
pub struct Cpu {
    pub orders: u64,
    /// The four service processes.
    pub services_ms_per_order: f64,
    /// Plus the PostgreSQL backends serving them.
    pub with_postgres_ms_per_order: f64,
    /// Plus nats-server (shared with anyone else using it on the machine).
    pub with_nats_ms_per_order: f64,
    /// Busy time of the whole machine (the load generator and anything else running).
    pub machine_ms_per_order: Option<f64>,
    pub per_service_ms_per_order: HashMap<String, f64>,
    pub window_seconds: f64,
    /// Transactions committed, events stored and messages consumed, per order.
    pub work: crate::system::PerOrder,
}

/// Runs the orders' latency phases on a fresh system: first at `light_rate` (the kitchen
/// screen with little else going on), then at `rate` (half the sustained rate), with CPU.
///
/// # Errors
/// When the system cannot start or the kitchen stream cannot be opened.
pub async fn latency(
    launch: &Launch,
    light_rate: f64,
    rate: f64,
    seconds: f64,
) -> anyhow::Result<(AtRate, AtRate)> {
    let load = Load::start(launch).await?;
    let result = async {
        load.run(light_rate.min(20.0), Duration::from_secs(2), None)
            .await;
        load.drain(Duration::from_secs(60)).await?;
        let light = at_rate(&load, light_rate, seconds.min(10.0), false).await?;
        let loaded = at_rate(&load, rate, seconds, true).await?;
        Ok((light, loaded))
    }
    .await;
    load.system.shutdown().await;
    result
}

async fn at_rate(load: &Load, rate: f64, seconds: f64, with_cpu: bool) -> anyhow::Result<AtRate> {
    let answered: Arc<Mutex<HashMap<Uuid, Instant>>> = Arc::default();
    let screen: Arc<Mutex<HashMap<Uuid, Instant>>> = Arc::default();
    let (stop, stopped) = watch::channel(false);
    let response = crate::system::stream_client()
        .get(load.system.url("kitchen", "/tickets/stream"))
        .bearer_auth(&load.cast.chef.token)
        .header("Accept", "text/event-stream")
        .send()
        .await?;
    if !response.status().is_success() {
        bail!("GET /tickets/stream answered {}", response.status());
    }
    let reader = {
        let screen = screen.clone();
        tokio::spawn(sse::read_events(response, stopped, move |data| {
            let at = Instant::now();
            if let Some(order_id) = first_uuid_after(data, "\"orderId\":\"") {
                if let Ok(mut map) = screen.lock() {
                    map.entry(order_id).or_insert(at);
                }
            }
            true
        }))
    };
    // The stream subscribes as it answers; a moment for the first frame machinery to settle.
    tokio::time::sleep(Duration::from_millis(200)).await;

    let pids = load.system.pids();
    let services: Vec<(String, u32)> = ["identity", "orders", "kitchen", "delivery"]
        .iter()
        .filter_map(|s| Some(((*s).to_owned(), load.system.pid(s)?)))
        .collect();
    let nats = procfs::pids_named("nats-server");
    let backends_before = load.system.backend_pids().await;
    let snapshot = |backends: &[u32]| {
        (
            CpuSnapshot::take(&pids),
            CpuSnapshot::take(backends),
            CpuSnapshot::take(&nats),
            procfs::machine_cpu_ms(),
            services
                .iter()
                .map(|(name, pid)| (name.clone(), procfs::cpu_ms(*pid).unwrap_or(0.0)))
                .collect::<HashMap<_, _>>(),
        )
    };
    let before = snapshot(&backends_before);
    let work_before = load.system.work().await;
    let started = Instant::now();
    let outcome = load
        .run(
            rate,
            Duration::from_secs_f64(seconds),
            Some(answered.clone()),
        )
        .await;
    load.drain(Duration::from_secs(120)).await?;
    // What the orders set off beyond the three read models (acceptance, quotes) settles too.
    let settle = Instant::now();
    while load.system.bus_backlog().await > 0 && settle.elapsed() < Duration::from_secs(30) {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let mut backends = load.system.backend_pids().await;
    backends.extend(backends_before.iter().copied());
    backends.sort_unstable();
    backends.dedup();
    let after = snapshot(&backends);
    let window = started.elapsed().as_secs_f64();
    let work = load
        .system
        .work()
        .await
        .per_order_since(&work_before, outcome.ok);
    // A moment for the last frames to arrive.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let _ = stop.send(true);
    let _ = reader.await;

    #[allow(clippy::cast_precision_loss)]
    let orders = outcome.ok.max(1) as f64;
    let cpu = with_cpu.then(|| {
        let services_ms = after.0.since(&before.0);
        let postgres_ms = after.1.since(&before.1);
        let nats_ms = after.2.since(&before.2);
        Cpu {
            orders: outcome.ok,
            services_ms_per_order: round3(services_ms / orders),
            with_postgres_ms_per_order: round3((services_ms + postgres_ms) / orders),
            with_nats_ms_per_order: round3((services_ms + postgres_ms + nats_ms) / orders),
            machine_ms_per_order: before
                .3
                .zip(after.3)
                .map(|(b, a)| round3((a.0 - b.0) / orders)),
            per_service_ms_per_order: after
                .4
                .iter()
                .map(|(name, ms)| {
                    let was = before.4.get(name).copied().unwrap_or(0.0);
                    (name.clone(), round3((ms - was) / orders))
                })
                .collect(),
            window_seconds: round3(window),
            work,
        }
    });

    let answered = answered.lock().map(|m| m.clone()).unwrap_or_default();
    let screen = screen.lock().map(|m| m.clone()).unwrap_or_default();
    let mut kitchen = Vec::with_capacity(answered.len());
    let (mut early, mut missing) = (0, 0);
    for (order_id, answered_at) in &answered {
        match screen.get(order_id) {
            Some(seen) if seen >= answered_at => {
                kitchen.push(seen.duration_since(*answered_at).as_secs_f64() * 1000.0);
            }
            Some(_) => {
                early += 1;
                kitchen.push(0.0);
            }
            None => missing += 1,
        }
    }
    Ok(AtRate {
        rate: round3(rate),
        seconds,
        achieved_rate: round3(outcome.achieved_rate()),
        errors: outcome.errors,
        shed: outcome.shed,
        placement: Latency::of(&outcome.latencies_ms),
        sent_late: Latency::of(&outcome.sent_late_ms),
        placed_to_kitchen: Latency::of(&kitchen),
        kitchen_before_answer: early,
        kitchen_missing: missing,
        cpu,
    })
}

/// The UUID that follows `marker` in `text` (cheaper than parsing every frame as JSON).
fn first_uuid_after(text: &str, marker: &str) -> Option<Uuid> {
    let start = text.find(marker)? + marker.len();
    text.get(start..start + 36)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::first_uuid_after;

    #[test]
    fn the_ticket_id_is_read_from_a_frame() {
        let frame = r#"{"changeId":3,"ticket":{"orderId":"67e55044-10b1-426f-9247-bb680e5fe0c8","items":[]}}"#;
        assert_eq!(
            first_uuid_after(frame, "\"orderId\":\"").map(|id| id.to_string()),
            Some("67e55044-10b1-426f-9247-bb680e5fe0c8".to_owned())
        );
        assert_eq!(first_uuid_after("{}", "\"orderId\":\""), None);
    }
}
