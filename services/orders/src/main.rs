//! The orders service binary: `brigade-orders`, configured from `BRIGADE_*` variables.
#![forbid(unsafe_code)]

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings = brigade_platform::Settings::from_env().map_err(anyhow::Error::msg)?;
    // Logs, and spans exported as `brigade-orders` when `BRIGADE_OTLP_ENDPOINT` is set.
    brigade_platform::telemetry::init_telemetry(&settings, "orders");
    brigade_orders::run(settings).await
}
