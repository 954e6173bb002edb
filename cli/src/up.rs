//! `brigade up`: the whole system on one machine, one process per service.
//!
//! Each service is this same binary run as `brigade serve <service>`, so the four stay
//! separate processes (a crash of one is not a crash of all) without building four binaries.
//! Their output is prefixed with the service's name in its colour. Ctrl-C (or SIGTERM) is
//! passed on as SIGTERM, and each service finishes its in-flight requests and messages.

use std::process::Stdio;

use brigade_platform::ServiceName;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::{Child, Command};

/// Starts every service and waits until they stop.
///
/// # Errors
/// When a service cannot be started.
pub async fn run_all() -> anyhow::Result<()> {
    let exe = std::env::current_exe()?;
    let mut children: Vec<(ServiceName, Child)> = Vec::new();
    for service in ServiceName::ALL {
        let mut child = Command::new(&exe)
            .args(["serve", service.as_str()])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()?;
        if let Some(out) = child.stdout.take() {
            tokio::spawn(relay_lines(service, out));
        }
        if let Some(err) = child.stderr.take() {
            tokio::spawn(relay_lines(service, err));
        }
        children.push((service, child));
    }
    println!("brigade: starting identity, orders, kitchen and delivery; Ctrl-C stops them");
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
        (service, status) = first_exit(&mut children) => {
            eprintln!("brigade: {} stopped ({status}); stopping the others", service.as_str());
        }
    }
    for (_, child) in &children {
        if let Some(pid) = child.id().and_then(|id| i32::try_from(id).ok()) {
            let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
        }
    }
    for (_, child) in &mut children {
        let _ = child.wait().await;
    }
    Ok(())
}

async fn first_exit(children: &mut [(ServiceName, Child)]) -> (ServiceName, String) {
    let waits = children.iter_mut().map(|(service, child)| {
        let service = *service;
        Box::pin(async move {
            let status = child
                .wait()
                .await
                .map_or_else(|e| e.to_string(), |s| s.to_string());
            (service, status)
        })
    });
    futures::future::select_all(waits).await.0
}

async fn relay_lines(service: ServiceName, stream: impl AsyncRead + Unpin) {
    let colour = match service {
        ServiceName::Identity => 35,
        ServiceName::Orders => 34,
        ServiceName::Kitchen => 33,
        ServiceName::Delivery => 32,
    };
    let mut lines = BufReader::new(stream).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        println!("\x1b[{colour}m{:>8} |\x1b[0m {line}", service.as_str());
    }
}
