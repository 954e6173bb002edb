//! The kitchen service binary: `brigade-kitchen`, configured from `BRIGADE_*` variables.
#![forbid(unsafe_code)]

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings = brigade_platform::Settings::from_env().map_err(anyhow::Error::msg)?;
    // Logs, and spans exported as `brigade-kitchen` when `BRIGADE_OTLP_ENDPOINT` is set.
    brigade_platform::telemetry::init_telemetry(&settings, "kitchen");
    brigade_kitchen::run(settings).await
}
