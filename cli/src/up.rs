//! `brigade up`: the whole system on one machine, one process per service.
//!
//! Each service is this same binary run as `brigade serve <service>`, so the four stay
//! separate processes (a crash of one is not a crash of all) without building four binaries.
//! Their output is prefixed with the service's name in its colour. Ctrl-C (or SIGTERM) is
//! passed on as SIGTERM, and each service finishes its in-flight requests and messages.

use std::process::Stdio;

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
    // Someone is watching: the services' logs, piped through here, are for reading.
    let format = if std::io::IsTerminal::is_terminal(&std::io::stdout()) {
        "text"
    } else {
        "json"
    };
    let mut children: Vec<(&'static str, Child)> = Vec::new();
    for (name, colour) in PROCESSES {
        let mut child = Command::new(&exe)
            .args(["serve", name])
            .env("BRIGADE_LOG_FORMAT", format)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()?;
        if let Some(out) = child.stdout.take() {
            tokio::spawn(relay_lines(name, colour, out));
        }
        if let Some(err) = child.stderr.take() {
            tokio::spawn(relay_lines(name, colour, err));
        }
        children.push((name, child));
    }
    println!(
        "brigade: starting identity, orders, kitchen, delivery and the web app; Ctrl-C stops them"
    );
    println!("brigade: the web app will be on http://127.0.0.1:8080 (BRIGADE_GATEWAY_PORT)");
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
        (service, status) = first_exit(&mut children) => {
            eprintln!("brigade: {service} stopped ({status}); stopping the others");
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

async fn first_exit(children: &mut [(&'static str, Child)]) -> (&'static str, String) {
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

/// The processes `up` starts, with the colour of their log prefix.
const PROCESSES: [(&str, u8); 5] = [
    ("identity", 35),
    ("orders", 34),
    ("kitchen", 33),
    ("delivery", 32),
    ("gateway", 36),
];

async fn relay_lines(name: &'static str, colour: u8, stream: impl AsyncRead + Unpin) {
    let mut lines = BufReader::new(stream).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        println!("\x1b[{colour}m{name:>8} |\x1b[0m {line}");
    }
}
