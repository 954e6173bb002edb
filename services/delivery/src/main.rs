//! The delivery service binary: `brigade-delivery`, configured from `BRIGADE_*` variables.
#![forbid(unsafe_code)]

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    brigade_platform::telemetry::init_logging();
    let settings = brigade_platform::Settings::from_env().map_err(anyhow::Error::msg)?;
    brigade_delivery::run(settings).await
}
