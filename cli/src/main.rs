//! `brigade`: the one command to run and operate the system.
//!
//! - `brigade` or `brigade up`: start the four services, each its own process, with their logs
//!   prefixed and coloured; Ctrl-C stops them gracefully.
//! - `brigade serve <service>`: run one service in this process (what `up` starts, and what a
//!   container runs).
//! - `brigade openapi [--out DIR]`: write every service's OpenAPI document.
//! - `brigade dead-letters …`, `brigade outbox status`: look into the no-loss machinery.
//! - `brigade simulate`: customers, a chef and couriers at work against a running system.
#![forbid(unsafe_code)]

mod audit;
mod local_infra;
mod operations;
mod projections;
mod simulate;
mod up;

use std::path::PathBuf;

use brigade_platform::{ServiceName, Settings};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "brigade",
    version,
    about = "Brigade, the restaurant order system: run and operate it."
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Start the four services (identity :3001, orders :3002, kitchen :3003, delivery :3000)
    /// and the web app (gateway :8080).
    Up,
    /// Run one service, or the gateway, in this process.
    Serve {
        /// identity, orders, kitchen, delivery or gateway
        service: Process,
    },
    /// Write the OpenAPI document of every service.
    Openapi {
        /// Folder to write `{service}.json` into.
        #[arg(long, default_value = "openapi")]
        out: PathBuf,
    },
    /// The first manager (or another one), created directly in the identity database.
    #[command(subcommand)]
    Manager(ManagerCommand),
    /// The whole story of an order, an account or a courier across the four event stores.
    #[command(subcommand)]
    Audit(audit::AuditCommand),
    /// Read models: list, lag, rebuild from the event store.
    #[command(subcommand)]
    Projections(projections::ProjectionCommand),
    /// Messages a service could not apply, parked for a human.
    #[command(subcommand)]
    DeadLetters(operations::DeadLetterCommand),
    /// The transactional outbox of each service.
    #[command(subcommand)]
    Outbox(operations::OutboxCommand),
    /// Customers order, a chef cooks and couriers deliver, against the running services.
    Simulate(simulate::SimulateArgs),
}

#[derive(Subcommand)]
enum ManagerCommand {
    /// Create a manager account.
    Create {
        #[arg(long)]
        email: String,
        /// Read from BRIGADE_NEW_PASSWORD when not given, so it stays out of shell history.
        #[arg(long, env = "BRIGADE_NEW_PASSWORD", hide_env_values = true)]
        password: String,
        #[arg(long, default_value = "Manager")]
        name: String,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let settings = Settings::from_env().map_err(anyhow::Error::msg)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    match cli.command.unwrap_or(Command::Up) {
        Command::Up => {
            let _infra = local_infra::ensure(&settings)?;
            runtime.block_on(up::run_all())
        }
        Command::Serve { service } => {
            let name = match service {
                Process::Service(name) => name.as_str(),
                Process::Gateway => "gateway",
            };
            brigade_platform::telemetry::init_telemetry(&settings, name);
            runtime.block_on(serve(service, settings))
        }
        Command::Openapi { out } => runtime.block_on(operations::write_openapi(&out)),
        Command::Manager(ManagerCommand::Create {
            email,
            password,
            name,
        }) => runtime.block_on(async {
            let id = brigade_identity::create_manager(&settings, &email, &password, &name)
                .await
                .map_err(|e| anyhow::anyhow!("cannot create the manager: {e}"))?;
            println!("manager {email} created (account {id})");
            Ok(())
        }),
        Command::Audit(command) => runtime.block_on(audit::run(command, &settings)),
        Command::Projections(command) => runtime.block_on(projections::run(command, &settings)),
        Command::DeadLetters(command) => {
            runtime.block_on(operations::dead_letters(command, &settings))
        }
        Command::Outbox(command) => runtime.block_on(operations::outbox(command, &settings)),
        Command::Simulate(args) => runtime.block_on(simulate::run(args, &settings)),
    }
}

/// What `brigade serve` runs: one of the four services, or the gateway.
#[derive(Clone, Copy, Debug)]
enum Process {
    Service(ServiceName),
    Gateway,
}

impl std::str::FromStr for Process {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if s == "gateway" {
            Ok(Self::Gateway)
        } else {
            s.parse()
                .map(Self::Service)
                .map_err(|e: String| e.replace("or delivery", "delivery or gateway"))
        }
    }
}

async fn serve(process: Process, settings: Settings) -> anyhow::Result<()> {
    match process {
        Process::Service(ServiceName::Identity) => brigade_identity::run(settings).await,
        Process::Service(ServiceName::Orders) => brigade_orders::run(settings).await,
        Process::Service(ServiceName::Kitchen) => brigade_kitchen::run(settings).await,
        Process::Service(ServiceName::Delivery) => brigade_delivery::run(settings).await,
        Process::Gateway => brigade_gateway::run(settings).await,
    }
}
