//! PostgreSQL crashing under a consumer. Consumers commit without waiting for the WAL flush
//! (`brigade_nats::durable`), so a crash takes their last transactions back: their messages
//! must come again and be applied, each once, and nothing acknowledged may be missing.
//!
//! The shared PostgreSQL cannot be crashed, so the test starts one of its own (the machine's
//! PostgreSQL binaries, a throw-away data directory, run as the `postgres` user when the test
//! runs as root, as on CI). Its WAL writer waits 10 s between rounds, so that what makes a
//! consumer's work durable is the consumers' own flush, not the writer's: each immediate stop
//! then finds committed work that never reached the disk.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use brigade_nats::schema::EVENT_STORE;
use brigade_nats::{migrate, Bus, ConsumerRunner, Migration, Namespace, Subscription};
use sqlx::postgres::PgPoolOptions;
use sqlx::{Connection, PgConnection};
use tokio::sync::watch;
use uuid::Uuid;

const AGGREGATES: i64 = 20;
const EVENTS: i64 = 100;
const CRASHES: usize = 3;

const APPLIED: Migration = Migration {
    name: "test_applied",
    sql: "CREATE TABLE applied (aggregate_id text, sequence bigint, application uuid DEFAULT gen_random_uuid())",
};

/// A PostgreSQL server of the test's own.
struct Server {
    dir: PathBuf,
    port: u16,
}

impl Server {
    /// The machine's newest PostgreSQL binaries (`BRIGADE_PG_BIN` overrides).
    fn bin(program: &str) -> PathBuf {
        let dir = std::env::var_os("BRIGADE_PG_BIN").map_or_else(
            || {
                let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
                    .expect("PostgreSQL's binaries under /usr/lib/postgresql")
                    .filter_map(|entry| entry.ok().map(|e| e.path().join("bin")))
                    .filter(|bin| bin.join("pg_ctl").exists())
                    .collect();
                versions.sort();
                versions.pop().expect("a PostgreSQL with pg_ctl")
            },
            PathBuf::from,
        );
        dir.join(program)
    }

    /// `program` run as the user that owns the data directory (PostgreSQL refuses root).
    fn command(program: &str) -> Command {
        let root = Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|out| out.stdout.starts_with(b"0\n"));
        if root {
            let mut command = Command::new("runuser");
            command
                .args(["-u", "postgres", "--"])
                .arg(Self::bin(program));
            command
        } else {
            Command::new(Self::bin(program))
        }
    }

    fn run(command: &mut Command) {
        let output = command.output().unwrap();
        assert!(
            output.status.success(),
            "{command:?}: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }

    fn new() -> Self {
        let dir = std::env::temp_dir().join(format!("brigade-crash-{}", Uuid::new_v4().simple()));
        std::fs::create_dir(&dir).unwrap();
        Self::run(Command::new("chmod").arg("777").arg(&dir));
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let server = Self { dir, port };
        Self::run(
            Self::command("initdb")
                .args(["-U", "postgres", "-A", "trust", "--no-sync", "-D"])
                .arg(server.data()),
        );
        server.start();
        server
    }

    fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    fn start(&self) {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c wal_writer_delay=10s \
             -c wal_writer_flush_after=1GB -c max_connections=40 -c autovacuum=off",
            self.port,
            self.dir.display()
        );
        Self::run(
            Self::command("pg_ctl")
                .args(["-w", "-l"])
                .arg(self.dir.join("log"))
                .arg("-D")
                .arg(self.data())
                .args(["-o", &options, "start"]),
        );
    }

    /// Stops at once (SIGQUIT, as `pg_ctl stop -m immediate`): no shutdown checkpoint, the
    /// WAL not written yet is gone, crash recovery at the next start.
    fn crash(&self) {
        let pid = std::fs::read_to_string(self.data().join("postmaster.pid")).unwrap();
        let pid = pid.lines().next().unwrap().trim().to_owned();
        Self::run(Command::new("kill").args(["-QUIT", &pid]));
    }

    /// Waits for the server to be gone after [`Self::crash`], then starts it again.
    fn restart(&self, outage: Duration) {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while self.data().join("postmaster.pid").exists() {
            assert!(
                std::time::Instant::now() < deadline,
                "the server does not stop"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        std::thread::sleep(outage);
        self.start();
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = Self::command("pg_ctl")
            .args(["-m", "immediate", "-D"])
            .arg(self.data())
            .arg("stop")
            .output();
        remove(&self.dir);
    }
}

fn remove(dir: &Path) {
    let _ = std::fs::remove_dir_all(dir);
}

/// What is applied now, by event: the ids of its applications.
async fn applications(conn: &mut PgConnection) -> HashMap<(String, i64), Vec<Uuid>> {
    let rows: Vec<(String, i64, Uuid)> =
        sqlx::query_as("SELECT aggregate_id, sequence, application FROM applied")
            .fetch_all(conn)
            .await
            .unwrap_or_default();
    let mut applied: HashMap<(String, i64), Vec<Uuid>> = HashMap::new();
    for (aggregate, sequence, application) in rows {
        applied
            .entry((aggregate, sequence))
            .or_default()
            .push(application);
    }
    applied
}

/// [`applications`] on a connection of its own (the server may have restarted since the last).
async fn applications_now(url: &str) -> HashMap<(String, i64), Vec<Uuid>> {
    match PgConnection::connect(url).await {
        Ok(mut conn) => applications(&mut conn).await,
        Err(_) => HashMap::new(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn work_a_crash_takes_back_is_applied_again_once_and_nothing_acknowledged_is_missing() {
    let server = Arc::new(tokio::task::spawn_blocking(Server::new).await.unwrap());
    let pool = PgPoolOptions::new()
        .max_connections(8)
        .acquire_timeout(Duration::from_secs(5))
        .connect(&server.url())
        .await
        .unwrap();
    migrate(&pool, EVENT_STORE).await.unwrap();
    migrate(&pool, &[APPLIED]).await.unwrap();
    let tag = Uuid::new_v4().simple().to_string()[..10].to_owned();
    let namespace = Namespace::new(Some(&format!("t{tag}"))).unwrap();
    let bus = Bus::connect("nats://127.0.0.1:4222", namespace, 1)
        .await
        .unwrap();
    bus.ensure_stream("orders").await.unwrap();
    let (stop, stopped) = watch::channel(false);
    let runner = ConsumerRunner::new(
        pool.clone(),
        bus.clone(),
        Subscription {
            name: "crash-consumer".into(),
            source: "orders",
            aggregate_types: vec!["order"],
            handler: common::recorder(0, None),
        },
    )
    // An outage is retried, never parked.
    .max_attempts(10_000);
    tokio::spawn(runner.run(stopped));

    // Events keep coming while PostgreSQL crashes, one aggregate after the other in turn.
    let publisher = {
        let bus = bus.clone();
        tokio::spawn(async move {
            for sequence in 1..=EVENTS {
                for aggregate in 0..AGGREGATES {
                    let envelope = common::placed("order", &format!("order-{aggregate}"), sequence);
                    let subject = bus.namespace.subject("orders.order.placed");
                    let body = serde_json::to_vec(&envelope).unwrap();
                    bus.jetstream
                        .publish(subject, body.into())
                        .await
                        .unwrap()
                        .await
                        .unwrap();
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            }
        })
    };

    // Each crash comes once the consumer is busy. What it had committed an instant before is
    // read first: some of it not flushed yet, which the crash takes back.
    let url = server.url();
    let mut seen_before_crashes = Vec::new();
    for crash in 0..CRASHES {
        let busy_from = applications_now(&url).await.len();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        let mut conn = loop {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the consumer applies nothing after crash {crash}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
            if let Ok(mut conn) = PgConnection::connect(&url).await {
                if applications(&mut conn).await.len() >= busy_from + 50 {
                    break conn;
                }
            }
        };
        seen_before_crashes.push(applications(&mut conn).await);
        server.crash();
        drop(conn);
        let server = server.clone();
        let outage = Duration::from_millis(300 + 200 * u64::try_from(crash).unwrap());
        tokio::task::spawn_blocking(move || server.restart(outage))
            .await
            .unwrap();
    }
    publisher.await.unwrap();

    let expected = usize::try_from(AGGREGATES * EVENTS).unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(180);
    let mut applied = applications_now(&url).await;
    while applied.len() < expected && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
        applied = applications_now(&url).await;
    }
    // A little longer, so that an application twice would show.
    tokio::time::sleep(Duration::from_millis(500)).await;
    applied = applications_now(&url).await;
    let _ = stop.send(true);

    for aggregate in 0..AGGREGATES {
        for sequence in 1..=EVENTS {
            let key = (format!("order-{aggregate}"), sequence);
            let applications = applied.get(&key).map_or(0, Vec::len);
            assert_eq!(applications, 1, "{key:?} applied {applications} times");
        }
    }
    // Work seen committed before a crash and applied again after it: the crash took it back,
    // and its message came again (an acknowledged message's work is never taken back: were
    // it, its event would be missing above).
    let taken_back: usize = seen_before_crashes
        .iter()
        .map(|seen| {
            seen.iter()
                .filter(|(key, ids)| applied.get(*key).is_some_and(|now| now[0] != ids[0]))
                .count()
        })
        .sum();
    eprintln!("{taken_back} applications taken back by {CRASHES} crashes, then applied again");
    assert!(
        taken_back > 0,
        "no crash took committed work back: the test has not tried what it is for"
    );
    pool.close().await;
    let _ = bus
        .jetstream
        .delete_stream(bus.namespace.stream("orders"))
        .await;
    drop(server);
}
