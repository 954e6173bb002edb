//! SIGTERM stops a service gracefully: a request in flight still gets its answer.
//! (Alone in its test binary: the signal goes to the whole process.)
#![allow(clippy::unwrap_used)]
#![cfg(unix)]

use std::time::Duration;

use brigade_nats::Namespace;
use brigade_platform::{ServiceName, Settings};
use poem_openapi::payload::PlainText;
use poem_openapi::OpenApi;
use uuid::Uuid;

struct Slow;

#[OpenApi]
impl Slow {
    /// Answers after a second.
    #[oai(path = "/slow", method = "get")]
    async fn slow(&self) -> PlainText<&'static str> {
        tokio::time::sleep(Duration::from_secs(1)).await;
        PlainText("finished")
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_the_request_in_flight_finish() {
    let tag = format!("shutdown{}", &Uuid::new_v4().simple().to_string()[..8]);
    let port = brigade_platform::testing::free_port();
    let mut settings = Settings {
        database_prefix: format!("{tag}_"),
        namespace: Namespace::new(Some(&tag)).unwrap(),
        pool_size: 2,
        ..Settings::default()
    };
    settings.ports[ServiceName::Orders as usize] = port;
    let service = brigade_platform::Service::start(ServiceName::Orders, settings.clone(), &[])
        .await
        .unwrap();
    let server = tokio::spawn(service.serve(Slow, Vec::new(), ()));
    let url = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    for _ in 0..50 {
        if client
            .get(format!("{url}/health/live"))
            .send()
            .await
            .is_ok()
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let in_flight = tokio::spawn({
        let client = client.clone();
        let url = url.clone();
        async move { client.get(format!("{url}/slow")).send().await }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &std::process::id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());

    let response = in_flight
        .await
        .unwrap()
        .expect("the request in flight is answered");
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.unwrap(), "finished");
    tokio::time::timeout(Duration::from_secs(15), server)
        .await
        .expect("the service stops")
        .unwrap()
        .unwrap();
    assert!(
        client
            .get(format!("{url}/health/live"))
            .send()
            .await
            .is_err(),
        "no new connection is accepted after the stop"
    );

    let admin = sqlx::PgPool::connect(&format!("{}/postgres", settings.database_url))
        .await
        .unwrap();
    sqlx::query(&format!(
        "DROP DATABASE IF EXISTS {} WITH (FORCE)",
        settings.database_name(ServiceName::Orders)
    ))
    .execute(&admin)
    .await
    .unwrap();
}
