//! `bench`: Brigade's benchmark suite (issue 10). It starts the whole system as processes on
//! this machine's PostgreSQL and NATS (throw-away databases and namespace), drives it through
//! the public HTTP API with open-loop load, measures the baselines in the same run, prints a
//! summary and writes everything as JSON under `target/bench/`.
//!
//! - `bench` — the full suite (several runs of each figure; medians and ratios);
//! - `bench --smoke` — a few seconds of each, to keep the suite working (CI runs it);
//! - `bench --only throughput,latency` — some sections only;
//! - `bench serve <service>` — what the suite starts for each service: the same code as
//!   `brigade serve <service>` (or pass `--brigade target/release/brigade` to run that binary).
//!
//! See `BENCHMARKS.md` for the figures and what they mean.
#![forbid(unsafe_code)]

mod baseline;
mod estimator;
mod fanout;
mod load;
mod orders;
mod procfs;
mod rebuild;
mod report;
mod sse;
mod stats;
mod system;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::report::Report;

#[derive(Parser, Debug, Clone)]
#[command(name = "bench", about = "Brigade's benchmark suite")]
pub struct Options {
    #[command(subcommand)]
    command: Option<Command>,
    /// A few seconds of everything, to check the suite works (what CI runs).
    #[arg(long)]
    pub smoke: bool,
    /// Runs of each figure; the report gives their median.
    #[arg(long, default_value_t = 3)]
    pub runs: usize,
    /// Sections to run, comma-separated: baselines, throughput, latency, rebuild, estimator,
    /// fanout.
    #[arg(long, value_delimiter = ',')]
    pub only: Vec<String>,
    /// Where the JSON results go.
    #[arg(long, default_value = "target/bench")]
    pub out: PathBuf,
    /// The executable started as `<exe> serve <service>` (default: this very binary).
    #[arg(long)]
    pub brigade: Option<PathBuf>,
    #[arg(long, default_value = "nats://127.0.0.1:4222")]
    pub nats: String,
    /// Connections per service pool.
    #[arg(long, default_value_t = 10)]
    pub pool: u32,
    /// Throughput: the first rate tried, in orders per second.
    #[arg(long, default_value_t = 20.0)]
    pub start_rate: f64,
    /// Throughput: each next rate is this times the last.
    #[arg(long, default_value_t = 1.3)]
    pub growth: f64,
    #[arg(long, default_value_t = 3000.0)]
    pub max_rate: f64,
    /// Throughput: seconds of load per rate.
    #[arg(long, default_value_t = 8.0)]
    pub step_seconds: f64,
    /// Throughput: bisections between the last rate held and the first lost.
    #[arg(long, default_value_t = 2)]
    pub refinements: u32,
    /// Latency: the sustained rate to halve, when the throughput section is not run.
    #[arg(long)]
    pub rate: Option<f64>,
    /// Latency: seconds of load at half the sustained rate.
    #[arg(long, default_value_t = 20.0)]
    pub latency_seconds: f64,
    /// Latency: the light rate the kitchen screen is also measured at.
    #[arg(long, default_value_t = 20.0)]
    pub light_rate: f64,
    /// Rebuild: events stored.
    #[arg(long, default_value_t = 1_000_000)]
    pub rebuild_events: u64,
    /// Estimator: sizes of the open queue its pass is measured on.
    #[arg(long, value_delimiter = ',', default_values_t = [1_000, 5_000])]
    pub estimator_open: Vec<usize>,
    /// Estimator: passes of each kind on each queue.
    #[arg(long, default_value_t = 41)]
    pub estimator_passes: usize,
    /// Fan-out: couriers sending a position each second.
    #[arg(long, default_value_t = 10)]
    pub couriers: usize,
    /// Fan-out: SSE clients following their deliveries.
    #[arg(long, default_value_t = 10_000)]
    pub clients: usize,
    #[arg(long, default_value_t = 20.0)]
    pub fanout_seconds: f64,
    #[arg(long, default_value_t = 10)]
    pub pgbench_seconds: u32,
    #[arg(long, default_value_t = 8)]
    pub pgbench_clients: u32,
    #[arg(long, default_value_t = 10)]
    pub pgbench_scale: u32,
    /// NATS baseline: messages through the raw loop.
    #[arg(long, default_value_t = 50_000)]
    pub nats_messages: u64,
}

#[derive(Subcommand, Debug, Clone)]
enum Command {
    /// Runs one service in this process (what the suite starts; same as `brigade serve`).
    Serve {
        service: brigade_platform::ServiceName,
    },
}

impl Options {
    /// The smoke run's sizes: seconds, not minutes.
    fn smoke(mut self) -> Self {
        self.runs = 1;
        // CI shares PostgreSQL's connections with the other test suites, so the pools stay
        // small: four, where the kitchen once stalled when its LISTEN connections came out of
        // its pool (BENCHMARKS.md), so the smoke run also keeps that from coming back.
        self.pool = self.pool.min(4);
        self.start_rate = 10.0;
        self.growth = 2.0;
        self.max_rate = 20.0;
        self.step_seconds = 2.0;
        self.refinements = 0;
        self.latency_seconds = 2.0;
        self.light_rate = 5.0;
        self.rebuild_events = 1_200;
        self.estimator_open = vec![50];
        self.estimator_passes = 3;
        self.couriers = 2;
        self.clients = 20;
        self.fanout_seconds = 2.0;
        self.pgbench_seconds = 1;
        self.pgbench_clients = 2;
        self.pgbench_scale = 1;
        self.nats_messages = 2_000;
        self
    }

    fn wants(&self, section: &str) -> bool {
        self.only.is_empty() || self.only.iter().any(|s| s.trim() == section)
    }
}

fn main() -> anyhow::Result<()> {
    let options = Options::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    if let Some(Command::Serve { service }) = options.command {
        brigade_platform::telemetry::init_logging();
        let settings = brigade_platform::Settings::from_env().map_err(anyhow::Error::msg)?;
        return runtime.block_on(serve(service, settings));
    }
    let options = if options.smoke {
        options.smoke()
    } else {
        options
    };
    let report = runtime.block_on(report::run(&options))?;
    finish(&options, &report)
}

async fn serve(
    service: brigade_platform::ServiceName,
    settings: brigade_platform::Settings,
) -> anyhow::Result<()> {
    use brigade_platform::ServiceName;
    match service {
        ServiceName::Identity => brigade_identity::run(settings).await,
        ServiceName::Orders => brigade_orders::run(settings).await,
        ServiceName::Kitchen => brigade_kitchen::run(settings).await,
        ServiceName::Delivery => brigade_delivery::run(settings).await,
    }
}

fn finish(options: &Options, report: &Report) -> anyhow::Result<()> {
    std::fs::create_dir_all(&options.out)?;
    let json = serde_json::to_string_pretty(report)?;
    let name = if options.smoke {
        "smoke.json".to_owned()
    } else {
        format!("bench-{}.json", report.started_at.format("%Y%m%dT%H%M%SZ"))
    };
    let path = options.out.join(name);
    std::fs::write(&path, &json)?;
    if !options.smoke {
        std::fs::write(options.out.join("latest.json"), &json)?;
    }
    report.print_summary();
    println!("\nresults: {}", path.display());
    if report.failures.is_empty() {
        Ok(())
    } else {
        anyhow::bail!(
            "{} section(s) failed: {:?}",
            report.failures.len(),
            report.failures
        )
    }
}
