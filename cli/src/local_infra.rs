//! `brigade up` on a bare machine: when nothing answers at the configured PostgreSQL or NATS
//! address, start private ones from the installed binaries under `./var/`, or say exactly what
//! to install. Never a bare connection error.

use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use brigade_platform::Settings;

/// Private servers started for this run; stopped when dropped.
#[derive(Default)]
pub struct LocalInfra {
    children: Vec<(&'static str, Child)>,
}

impl Drop for LocalInfra {
    fn drop(&mut self) {
        for (name, child) in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
            eprintln!("brigade: stopped the private {name}");
        }
    }
}

fn address(url: &str, default_port: u16) -> Option<SocketAddr> {
    let rest = url.split("://").nth(1)?;
    let host_port = rest.split(['/', ',']).next()?;
    let host_port = host_port.rsplit('@').next()?;
    let with_port = if host_port.contains(':') {
        host_port.to_owned()
    } else {
        format!("{host_port}:{default_port}")
    };
    with_port.to_socket_addrs().ok()?.next()
}

fn answers(address: SocketAddr) -> bool {
    TcpStream::connect_timeout(&address, Duration::from_millis(500)).is_ok()
}

fn wait_until_answers(address: SocketAddr, what: &str) -> anyhow::Result<()> {
    let started = Instant::now();
    while !answers(address) {
        if started.elapsed() > Duration::from_secs(30) {
            anyhow::bail!("the private {what} did not start; see ./var/{what}.log");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    Ok(())
}

fn find(candidates: &[PathBuf]) -> Option<PathBuf> {
    candidates.iter().find(|p| p.exists()).cloned()
}

fn postgres_bin(name: &str) -> Option<PathBuf> {
    let mut candidates: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|dir| {
            dir.filter_map(Result::ok)
                .map(|e| e.path().join("bin").join(name))
                .collect()
        })
        .unwrap_or_default();
    candidates.sort();
    candidates.reverse();
    candidates.push(PathBuf::from(format!("/usr/local/bin/{name}")));
    candidates.push(PathBuf::from(format!("/usr/bin/{name}")));
    candidates.push(PathBuf::from(format!("/opt/homebrew/bin/{name}")));
    find(&candidates)
}

/// Makes sure PostgreSQL and NATS answer, starting private ones when they don't.
///
/// # Errors
/// When one is missing and cannot be started: the message says what to install or set.
pub fn ensure(settings: &Settings) -> anyhow::Result<LocalInfra> {
    let mut infra = LocalInfra::default();
    let var = Path::new("var");
    let pg = address(&settings.database_url, 5432).ok_or_else(|| {
        anyhow::anyhow!(
            "BRIGADE_DATABASE_URL {:?} names no host",
            settings.database_url
        )
    })?;
    if !answers(pg) {
        let (Some(initdb), Some(postgres)) = (postgres_bin("initdb"), postgres_bin("postgres"))
        else {
            anyhow::bail!(
                "nothing answers at {pg} (PostgreSQL) and no PostgreSQL is installed.\n\
                 Install it (Debian/Ubuntu: `sudo apt-get install postgresql`; macOS: `brew install postgresql`)\n\
                 or point BRIGADE_DATABASE_URL at a running server."
            );
        };
        if nix::unistd::Uid::effective().is_root() {
            anyhow::bail!(
                "nothing answers at {pg} (PostgreSQL), and PostgreSQL refuses to run as root.\n\
                 Start the system's server (`pg_ctlcluster <version> main start`) or run brigade as a normal user."
            );
        }
        let data = var.join("postgres");
        std::fs::create_dir_all(var)?;
        if !data.join("PG_VERSION").exists() {
            let status = Command::new(initdb)
                .args(["-U", "postgres", "--auth=trust", "-E", "UTF8", "-D"])
                .arg(&data)
                .stdout(Stdio::null())
                .status()?;
            anyhow::ensure!(status.success(), "initdb failed for {}", data.display());
        }
        let log = std::fs::File::create(var.join("postgresql.log"))?;
        let child = Command::new(postgres)
            .arg("-D")
            .arg(&data)
            .args([
                "-p",
                &pg.port().to_string(),
                "-c",
                "listen_addresses=127.0.0.1",
                "-k",
            ])
            .arg(std::fs::canonicalize(var)?)
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()?;
        infra.children.push(("postgresql", child));
        wait_until_answers(pg, "postgresql")?;
        eprintln!("brigade: started a private PostgreSQL on {pg} (data in ./var/postgres)");
    }
    let nats = address(&settings.nats_url, 4222)
        .ok_or_else(|| anyhow::anyhow!("BRIGADE_NATS_URL {:?} names no host", settings.nats_url))?;
    if !answers(nats) {
        let Some(server) = find(&[
            PathBuf::from("/usr/sbin/nats-server"),
            PathBuf::from("/usr/bin/nats-server"),
            PathBuf::from("/usr/local/bin/nats-server"),
            PathBuf::from("/opt/homebrew/bin/nats-server"),
        ]) else {
            anyhow::bail!(
                "nothing answers at {nats} (NATS) and no nats-server is installed.\n\
                 Install it (Debian/Ubuntu: `sudo apt-get install nats-server`; macOS: `brew install nats-server`)\n\
                 or point BRIGADE_NATS_URL at a running server started with JetStream (`nats-server -js`)."
            );
        };
        std::fs::create_dir_all(var.join("nats"))?;
        let log = std::fs::File::create(var.join("nats.log"))?;
        let child = Command::new(server)
            .args([
                "-a",
                &nats.ip().to_string(),
                "-p",
                &nats.port().to_string(),
                "-js",
                "-sd",
            ])
            .arg(var.join("nats"))
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()?;
        infra.children.push(("nats", child));
        wait_until_answers(nats, "nats")?;
        eprintln!("brigade: started a private NATS with JetStream on {nats} (data in ./var/nats)");
    }
    Ok(infra)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_come_from_urls_with_or_without_port() {
        assert_eq!(
            address("postgres://postgres@127.0.0.1:5433", 5432).map(|a| a.port()),
            Some(5433)
        );
        assert_eq!(
            address("nats://127.0.0.1", 4222).map(|a| a.port()),
            Some(4222)
        );
        assert_eq!(
            address("nats://127.0.0.1:4223,nats://127.0.0.1:4224", 4222).map(|a| a.port()),
            Some(4223)
        );
    }
}
