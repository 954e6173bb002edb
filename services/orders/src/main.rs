//! The orders service binary: `brigade-orders`, configured from `BRIGADE_*` variables.
#![forbid(unsafe_code)]

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    brigade_platform::telemetry::init_logging();
    let settings = brigade_platform::Settings::from_env().map_err(anyhow::Error::msg)?;
    brigade_orders::run(settings).await
}
