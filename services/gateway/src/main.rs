//! The gateway binary: `brigade-gateway`, configured from `BRIGADE_*` variables (the services'
//! ports and URLs, and `BRIGADE_GATEWAY_PORT`, 8080 by default).
#![forbid(unsafe_code)]

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings = brigade_platform::Settings::from_env().map_err(anyhow::Error::msg)?;
    // Logs, and spans exported as `brigade-gateway` when `BRIGADE_OTLP_ENDPOINT` is set.
    brigade_platform::telemetry::init_telemetry(&settings, "gateway");
    brigade_gateway::run(settings).await
}
