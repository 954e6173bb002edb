//! Runs the sections in order and gathers the report: every run's raw figures, their medians,
//! their ratios to the baselines of the same run, and the targets.

use std::time::Instant;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::baseline::{self, NatsRaw, Pgbench};
use crate::estimator::{self, Passes};
use crate::fanout::{self, Fanout};
use crate::orders::{self, AtRate, Ramp, RampPlan};
use crate::rebuild::{self, RebuildBench};
use crate::stats::{median, ratio, round3};
use crate::system::Launch;
use crate::Options;

/// The machine the figures were measured on.
#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    pub nproc: usize,
    pub cpu_model: String,
    pub memory_total: String,
    /// `/proc/loadavg` when the suite started and ended: a busy machine shows here.
    pub load_at_start: String,
    pub load_at_end: String,
    /// Processes using much CPU at the start that are not part of the benchmark.
    pub other_busy_processes: Vec<String>,
}

/// One figure of the summary.
#[derive(Debug, Clone, Serialize)]
pub struct Figure {
    pub name: String,
    pub unit: String,
    /// The median of the runs.
    pub median: f64,
    pub runs: Vec<f64>,
    /// What it is divided by, and the quotient.
    pub baseline: Option<String>,
    pub ratio: Option<f64>,
    pub target: Option<String>,
    pub met: Option<bool>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Baselines {
    pub pgbench: Vec<Pgbench>,
    pub pgbench_median_tps: Option<f64>,
    pub pgbench_median_latency_ms: Option<f64>,
    pub pgbench_median_cpu_ms_per_tx: Option<f64>,
    pub nats: Vec<NatsRaw>,
    pub nats_median_messages_per_second: Option<f64>,
    pub nats_median_round_trip_p50_ms: Option<f64>,
    pub notes: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct LatencyRun {
    pub light: AtRate,
    pub half_load: AtRate,
}

/// Everything one invocation measured.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub started_at: DateTime<Utc>,
    pub seconds: f64,
    pub smoke: bool,
    pub machine: Machine,
    pub command: String,
    pub runs: usize,
    pub baselines: Baselines,
    pub ramp_plan: Option<RampPlan>,
    pub throughput: Vec<Ramp>,
    pub latency: Vec<LatencyRun>,
    pub rebuild: Option<RebuildBench>,
    pub estimator: Vec<Passes>,
    pub fanout: Vec<Fanout>,
    pub summary: Vec<Figure>,
    pub failures: Vec<String>,
}

fn read(path: &str) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

fn machine() -> Machine {
    let cpuinfo = read("/proc/cpuinfo");
    let cpu_model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split(':').nth(1))
        .map_or_else(|| "unknown".to_owned(), |m| m.trim().to_owned());
    let memory_total = read("/proc/meminfo")
        .lines()
        .find(|l| l.starts_with("MemTotal"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map_or_else(
            || "unknown".to_owned(),
            |kb| format!("{:.1} GiB", kb / 1_048_576.0),
        );
    Machine {
        nproc: std::thread::available_parallelism().map_or(1, std::num::NonZero::get),
        cpu_model,
        memory_total,
        load_at_start: read("/proc/loadavg").trim().to_owned(),
        load_at_end: String::new(),
        other_busy_processes: busy_processes(),
    }
}

/// `ps`' view of the processes above 5 % CPU right now, for the record.
fn busy_processes() -> Vec<String> {
    std::process::Command::new("ps")
        .args(["-eo", "pcpu,comm", "--sort=-pcpu", "--no-headers"])
        .output()
        .ok()
        .map(|out| {
            String::from_utf8_lossy(&out.stdout)
                .lines()
                .filter(|l| {
                    l.split_whitespace()
                        .next()
                        .and_then(|p| p.parse::<f64>().ok())
                        .is_some_and(|p| p >= 5.0)
                })
                .take(10)
                .map(|l| l.trim().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

fn section(name: &str) {
    println!("\n== {name}");
}

/// Runs the chosen sections; a section that fails is recorded and the others still run.
///
/// # Errors
/// Only when PostgreSQL is unreachable (nothing can be measured then).
pub async fn run(options: &Options) -> anyhow::Result<Report> {
    let started = Instant::now();
    baseline::check_postgres().await?;
    let launch = Launch {
        executable: match &options.brigade {
            Some(path) => path.clone(),
            None => std::env::current_exe()?,
        },
        nats_url: options.nats.clone(),
        pool_size: options.pool,
        log_dir: options.out.join("logs"),
    };
    let mut report = Report {
        started_at: Utc::now(),
        seconds: 0.0,
        smoke: options.smoke,
        machine: machine(),
        command: std::env::args().collect::<Vec<_>>().join(" "),
        runs: options.runs,
        baselines: Baselines::default(),
        ramp_plan: None,
        throughput: Vec::new(),
        latency: Vec::new(),
        rebuild: None,
        estimator: Vec::new(),
        fanout: Vec::new(),
        summary: Vec::new(),
        failures: Vec::new(),
    };
    println!(
        "machine: {} × {}, {}; load {}",
        report.machine.nproc,
        report.machine.cpu_model,
        report.machine.memory_total,
        report.machine.load_at_start
    );

    if options.wants("baselines") {
        section("baselines: pgbench simple-update, raw JetStream loop");
        baselines(options, &mut report).await;
    }
    let mut sustained = options.rate;
    if options.wants("throughput") {
        section("throughput: orders/s sustained end to end");
        let plan = RampPlan {
            start_rate: options.start_rate,
            growth: options.growth,
            max_rate: options.max_rate,
            step_seconds: options.step_seconds,
            refinements: options.refinements,
        };
        for run in 0..options.runs {
            println!("  run {}", run + 1);
            match orders::ramp(&launch, &plan).await {
                Ok(ramp) => {
                    println!(
                        "  sustained {:.0} orders/s (peak applied {:.0}/s)",
                        ramp.sustained_rate, ramp.peak_applied_rate
                    );
                    report.throughput.push(ramp);
                }
                Err(error) => report.failures.push(format!("throughput: {error:#}")),
            }
        }
        report.ramp_plan = Some(plan);
        let rates: Vec<f64> = report.throughput.iter().map(|r| r.sustained_rate).collect();
        if !rates.is_empty() {
            sustained = Some(median(&rates));
        }
    }
    if options.wants("latency") {
        let full = sustained.unwrap_or(100.0).max(2.0);
        let half = (full / 2.0).round().max(1.0);
        section(&format!(
            "latency: placement and kitchen screen at {half}/s (half of {full:.0}/s), and at {}/s",
            options.light_rate
        ));
        for run in 0..options.runs {
            match orders::latency(&launch, options.light_rate, half, options.latency_seconds).await
            {
                Ok((light, half_load)) => {
                    println!(
                        "  run {}: placement p50 {:.2} ms p99 {:.2} ms (sent late p50 {:.3} ms); kitchen screen p50 {:.2} ms p99 {:.2} ms (light: {:.2} / {:.2}); cpu {:?} ms/order",
                        run + 1,
                        half_load.placement.p50_ms,
                        half_load.placement.p99_ms,
                        half_load.sent_late.p50_ms,
                        half_load.placed_to_kitchen.p50_ms,
                        half_load.placed_to_kitchen.p99_ms,
                        light.placed_to_kitchen.p50_ms,
                        light.placed_to_kitchen.p99_ms,
                        half_load.cpu.as_ref().map(|c| c.with_nats_ms_per_order),
                    );
                    report.latency.push(LatencyRun { light, half_load });
                }
                Err(error) => report.failures.push(format!("latency: {error:#}")),
            }
        }
    }
    if options.wants("rebuild") {
        section(&format!(
            "rebuild: kitchen queue from {} events",
            options.rebuild_events
        ));
        match rebuild::run(options.rebuild_events, options.runs).await {
            Ok(bench) => report.rebuild = Some(bench),
            Err(error) => report.failures.push(format!("rebuild: {error:#}")),
        }
    }
    if options.wants("estimator") {
        section(&format!(
            "estimator: a pass on {:?} open tickets, {} changed",
            options.estimator_open,
            estimator::CHANGED_PER_PASS
        ));
        match estimator::run(&options.estimator_open, options.estimator_passes).await {
            Ok(passes) => report.estimator = passes,
            Err(error) => report.failures.push(format!("estimator: {error:#}")),
        }
    }
    if options.wants("fanout") {
        section(&format!(
            "fan-out: {} couriers × 1 position/s to {} SSE clients",
            options.couriers, options.clients
        ));
        for run in 0..options.runs {
            match fanout::run(
                &launch,
                options.couriers,
                options.clients,
                options.fanout_seconds,
            )
            .await
            {
                Ok(f) => {
                    println!(
                        "  run {}: {:.0} bytes/connection, {:.0} msgs/s of {} expected, delay p50 {:.1} ms p99 {:.1} ms",
                        run + 1,
                        f.bytes_per_connection,
                        f.messages_per_second,
                        f.messages_expected as f64 / f.seconds,
                        f.delay.p50_ms,
                        f.delay.p99_ms
                    );
                    report.fanout.push(f);
                }
                Err(error) => report.failures.push(format!("fanout: {error:#}")),
            }
        }
    }
    report.summary = summary(&report);
    report.machine.load_at_end = read("/proc/loadavg").trim().to_owned();
    report.seconds = round3(started.elapsed().as_secs_f64());
    Ok(report)
}

async fn baselines(options: &Options, report: &mut Report) {
    let pgbench_installed = std::process::Command::new("pgbench")
        .arg("--version")
        .output()
        .is_ok();
    if pgbench_installed {
        match baseline::pgbench(
            options.pgbench_scale,
            options.pgbench_clients,
            options.pgbench_seconds,
            options.runs,
        )
        .await
        {
            Ok(runs) => {
                for run in &runs {
                    println!(
                        "  pgbench: {:.0} tps, {:.2} ms average",
                        run.tps, run.latency_avg_ms
                    );
                }
                report.baselines.pgbench = runs;
            }
            Err(error) => report.failures.push(format!("pgbench: {error:#}")),
        }
    } else {
        report
            .baselines
            .notes
            .push("pgbench is not installed: no PostgreSQL baseline".to_owned());
    }
    for _ in 0..options.runs {
        match baseline::nats_raw(
            &options.nats,
            options.nats_messages,
            if options.smoke { 20 } else { 500 },
        )
        .await
        {
            Ok(run) => {
                println!(
                    "  nats: {:.0} msgs/s, round trip p50 {:.3} ms",
                    run.messages_per_second, run.round_trip.p50_ms
                );
                report.baselines.nats.push(run);
            }
            Err(error) => report.failures.push(format!("nats baseline: {error:#}")),
        }
    }
    let b = &mut report.baselines;
    let some = |v: Vec<f64>| (!v.is_empty()).then(|| round3(median(&v)));
    b.pgbench_median_tps = some(b.pgbench.iter().map(|r| r.tps).collect());
    b.pgbench_median_latency_ms = some(b.pgbench.iter().map(|r| r.latency_avg_ms).collect());
    b.pgbench_median_cpu_ms_per_tx = some(
        b.pgbench
            .iter()
            .filter_map(|r| r.machine_cpu_ms_per_tx)
            .collect(),
    );
    b.nats_median_messages_per_second =
        some(b.nats.iter().map(|r| r.messages_per_second).collect());
    b.nats_median_round_trip_p50_ms = some(b.nats.iter().map(|r| r.round_trip.p50_ms).collect());
}

/// A target, as written in the issue, and the check of a figure against it.
type Target<'a> = (&'a str, fn(f64) -> bool);

struct Spec<'a> {
    name: &'a str,
    unit: &'a str,
    runs: Vec<f64>,
    baseline: Option<(&'a str, Option<f64>)>,
    target: Option<Target<'a>>,
}

fn figure(spec: Spec<'_>) -> Option<Figure> {
    if spec.runs.is_empty() {
        return None;
    }
    let value = round3(median(&spec.runs));
    let (baseline, ratio) = match spec.baseline {
        Some((name, Some(base))) => (Some(format!("{name} ({base})")), ratio(value, base)),
        Some((name, None)) => (Some(format!("{name} (not measured)")), None),
        None => (None, None),
    };
    Some(Figure {
        name: spec.name.to_owned(),
        unit: spec.unit.to_owned(),
        median: value,
        runs: spec.runs,
        baseline,
        ratio,
        target: spec.target.map(|t| t.0.to_owned()),
        met: spec.target.map(|t| (t.1)(value)),
    })
}

fn summary(report: &Report) -> Vec<Figure> {
    let b = &report.baselines;
    let half = |f: fn(&AtRate) -> f64| {
        report
            .latency
            .iter()
            .map(|r| f(&r.half_load))
            .collect::<Vec<_>>()
    };
    let light = |f: fn(&AtRate) -> f64| {
        report
            .latency
            .iter()
            .map(|r| f(&r.light))
            .collect::<Vec<_>>()
    };
    let cpu = |f: fn(&orders::Cpu) -> f64| {
        report
            .latency
            .iter()
            .filter_map(|r| r.half_load.cpu.as_ref().map(f))
            .collect::<Vec<_>>()
    };
    let rebuild_runs: Vec<f64> = report
        .rebuild
        .iter()
        .flat_map(|r| r.runs.iter().map(|run| run.events_per_second))
        .collect();
    let fan = |f: fn(&Fanout) -> f64| report.fanout.iter().map(f).collect::<Vec<_>>();
    // The estimator's pass on the longest queue measured, against reading that whole queue.
    let longest = report.estimator.iter().max_by_key(|p| p.open_tickets);
    let estimator_name = longest.map_or_else(String::new, |p| {
        format!(
            "estimator pass, {} open tickets ({} changed)",
            p.open_tickets, p.changed_tickets
        )
    });
    let tps = b.pgbench_median_tps;
    let pg_latency = b.pgbench_median_latency_ms;
    let nats_rtt = b.nats_median_round_trip_p50_ms;
    let nats_rate = b.nats_median_messages_per_second;
    let pg_cpu = b.pgbench_median_cpu_ms_per_tx;
    [
        Spec {
            name: "orders/s sustained end to end",
            unit: "orders/s",
            runs: report.throughput.iter().map(|r| r.sustained_rate).collect(),
            baseline: Some(("pgbench simple-update tps", tps)),
            target: Some(("≥ 1000/s and ≥ 0.3 × pgbench tps", |v| v >= 1000.0)),
        },
        Spec {
            name: "orders/s applied at peak (overloaded)",
            unit: "orders/s",
            runs: report
                .throughput
                .iter()
                .map(|r| r.peak_applied_rate)
                .collect(),
            baseline: Some(("pgbench simple-update tps", tps)),
            target: None,
        },
        Spec {
            name: "placement p50 at half load",
            unit: "ms",
            runs: half(|r| r.placement.p50_ms),
            baseline: Some(("pgbench average latency ms", pg_latency)),
            target: Some(("≤ 2 ms", |v| v <= 2.0)),
        },
        Spec {
            name: "placement p99 at half load",
            unit: "ms",
            runs: half(|r| r.placement.p99_ms),
            baseline: Some(("pgbench average latency ms", pg_latency)),
            target: Some(("≤ 10 ms", |v| v <= 10.0)),
        },
        Spec {
            name: "placed → kitchen screen p50 at half load",
            unit: "ms",
            runs: half(|r| r.placed_to_kitchen.p50_ms),
            baseline: Some(("raw JetStream round trip p50 ms", nats_rtt)),
            target: Some(("≤ 5 ms", |v| v <= 5.0)),
        },
        Spec {
            name: "placed → kitchen screen p99 at half load",
            unit: "ms",
            runs: half(|r| r.placed_to_kitchen.p99_ms),
            baseline: Some(("raw JetStream round trip p50 ms", nats_rtt)),
            target: Some(("≤ 25 ms", |v| v <= 25.0)),
        },
        Spec {
            name: "placed → kitchen screen p50 at light load",
            unit: "ms",
            runs: light(|r| r.placed_to_kitchen.p50_ms),
            baseline: Some(("raw JetStream round trip p50 ms", nats_rtt)),
            target: Some(("≤ 5 ms", |v| v <= 5.0)),
        },
        Spec {
            name: "placed → kitchen screen p99 at light load",
            unit: "ms",
            runs: light(|r| r.placed_to_kitchen.p99_ms),
            baseline: Some(("raw JetStream round trip p50 ms", nats_rtt)),
            target: Some(("≤ 25 ms", |v| v <= 25.0)),
        },
        Spec {
            name: "CPU per order, services + PostgreSQL + NATS",
            unit: "CPU-ms/order",
            runs: cpu(|c| c.with_nats_ms_per_order),
            baseline: Some(("machine CPU-ms per pgbench transaction", pg_cpu)),
            target: Some(("≤ 1.5 CPU-ms", |v| v <= 1.5)),
        },
        Spec {
            name: "CPU per order, services only",
            unit: "CPU-ms/order",
            runs: cpu(|c| c.services_ms_per_order),
            baseline: Some(("machine CPU-ms per pgbench transaction", pg_cpu)),
            target: None,
        },
        Spec {
            name: "CPU per order, whole machine (load generator included)",
            unit: "CPU-ms/order",
            runs: cpu(|c| c.machine_ms_per_order.unwrap_or(f64::NAN))
                .into_iter()
                .filter(|v| v.is_finite())
                .collect(),
            baseline: Some(("machine CPU-ms per pgbench transaction", pg_cpu)),
            target: None,
        },
        Spec {
            name: "projection rebuild",
            unit: "events/s",
            runs: rebuild_runs,
            baseline: Some(("pgbench simple-update tps", tps)),
            target: Some(("≥ 50,000 events/s", |v| v >= 50_000.0)),
        },
        Spec {
            name: &estimator_name,
            unit: "ms",
            runs: longest.map(|p| p.kept_copy_ms).into_iter().collect(),
            baseline: Some((
                "a pass reading the whole queue, ms",
                longest.map(|p| p.whole_queue_ms),
            )),
            target: None,
        },
        Spec {
            name: "memory per held SSE connection",
            unit: "bytes",
            runs: fan(|f| f.bytes_per_connection),
            baseline: None,
            target: Some(("10,000 in ≤ 200 MB (≤ 20,971 bytes each)", |v| {
                v <= 20_971.52
            })),
        },
        Spec {
            name: "fan-out messages delivered",
            unit: "msgs/s",
            runs: fan(|f| f.messages_per_second),
            baseline: Some(("raw JetStream msgs/s", nats_rate)),
            target: None,
        },
        Spec {
            name: "fan-out delivery delay p99",
            unit: "ms",
            runs: fan(|f| f.delay.p99_ms),
            baseline: Some(("raw JetStream round trip p50 ms", nats_rtt)),
            target: None,
        },
        Spec {
            name: "fan-out delivery delay p50",
            unit: "ms",
            runs: fan(|f| f.delay.p50_ms),
            baseline: Some(("raw JetStream round trip p50 ms", nats_rtt)),
            target: None,
        },
    ]
    .into_iter()
    .filter_map(figure)
    .collect()
}

impl Report {
    /// The summary table, one figure a line.
    pub fn print_summary(&self) {
        println!(
            "\n== summary (median of {} run(s); ratio = figure / baseline of this run)",
            self.runs
        );
        for f in &self.summary {
            println!(
                "  {:<58} {:>12.3} {:<13} ratio {:>9}  target {:<28} {}",
                f.name,
                f.median,
                f.unit,
                f.ratio
                    .map_or_else(|| "-".to_owned(), |r| format!("{r:.3}")),
                f.target.clone().unwrap_or_else(|| "-".to_owned()),
                match f.met {
                    Some(true) => "met",
                    Some(false) => "NOT met",
                    None => "",
                }
            );
        }
        if let Some(tps) = self.baselines.pgbench_median_tps {
            println!("  pgbench simple-update: {tps:.0} tps (median)");
        }
        if let Some(rate) = self.baselines.nats_median_messages_per_second {
            println!("  raw JetStream loop: {rate:.0} msgs/s (median)");
        }
        for failure in &self.failures {
            println!("  FAILED: {failure}");
        }
    }
}
