//! The gateway binary: `brigade-gateway`, configured from `BRIGADE_*` variables (the services'
//! ports and URLs, and `BRIGADE_GATEWAY_PORT`, 8080 by default).
#![forbid(unsafe_code)]

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    brigade_platform::telemetry::init_logging();
    let settings = brigade_platform::Settings::from_env().map_err(anyhow::Error::msg)?;
    brigade_gateway::run(settings).await
}
