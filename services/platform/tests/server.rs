//! The services' HTTP/1.1 server (`brigade_platform::server`): keep-alive, idle connections
//! closed, and a shutdown that lets requests finish but does not wait for ever.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use brigade_platform::server::Limits;
use brigade_platform::sse::EventStream;
use poem::listener::{Acceptor, Listener, TcpListener};
use poem::web::sse::Event;
use poem::{get, handler, IntoResponse, Response, Route};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

#[handler]
fn hello() -> &'static str {
    "hello"
}

/// A live stream that sends one event and then nothing, for ever.
#[handler]
fn endless() -> Response {
    let first = futures::stream::iter([1_i32]);
    EventStream::new(futures::StreamExt::chain(first, futures::stream::pending()))
        .to_event(|n| Event::message(n.to_string()))
        .into_response()
}

struct Running {
    address: String,
    stop: Option<oneshot::Sender<()>>,
    server: JoinHandle<()>,
}

impl Running {
    async fn start(idle: Duration, grace: Duration) -> Self {
        Self::start_with(Limits {
            max_connections: 4096,
            idle,
            grace,
        })
        .await
    }

    async fn start_with(limits: Limits) -> Self {
        let acceptor = TcpListener::bind("127.0.0.1:0")
            .into_acceptor()
            .await
            .unwrap();
        let address = acceptor.local_addr()[0]
            .as_socket_addr()
            .unwrap()
            .to_string();
        let app = Route::new()
            .at("/hello", get(hello))
            .at("/stream", get(endless));
        let (stop, stopped) = oneshot::channel::<()>();
        let server = tokio::spawn(brigade_platform::server::serve(
            acceptor,
            app,
            async move {
                let _ = stopped.await;
            },
            limits,
        ));
        Self {
            address,
            stop: Some(stop),
            server,
        }
    }

    async fn connect(&self) -> TcpStream {
        TcpStream::connect(&self.address).await.unwrap()
    }

    /// Stops the server; returns once it has returned.
    async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        tokio::time::timeout(Duration::from_secs(20), &mut self.server)
            .await
            .expect("the server returns")
            .unwrap();
    }
}

const GET_HELLO: &[u8] = b"GET /hello HTTP/1.1\r\nHost: test\r\n\r\n";

/// Reads one response to `GET /hello` off a keep-alive connection.
async fn read_hello(connection: &mut TcpStream) -> String {
    let mut answer = Vec::new();
    let mut buffer = [0_u8; 1024];
    while !answer.ends_with(b"hello") {
        let n = tokio::time::timeout(Duration::from_secs(5), connection.read(&mut buffer))
            .await
            .expect("an answer")
            .unwrap();
        assert!(n > 0, "the connection closed before the answer");
        answer.extend_from_slice(&buffer[..n]);
    }
    String::from_utf8(answer).unwrap()
}

/// Asks `GET /hello` on a keep-alive connection and checks the answer is a 200.
async fn ask_hello(connection: &mut TcpStream) {
    connection.write_all(GET_HELLO).await.unwrap();
    let answer = read_hello(connection).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}

/// Checks that the server closes the connection within five seconds, sending nothing more.
async fn closed_by_the_server(connection: &mut TcpStream) {
    let rest = read_to_close(connection, Duration::from_secs(5)).await;
    assert!(rest.is_empty(), "{rest:?}");
}

/// Reads until the server closes the connection (or `within` passes: a panic).
async fn read_to_close(connection: &mut TcpStream, within: Duration) -> Vec<u8> {
    let mut rest = Vec::new();
    tokio::time::timeout(within, connection.read_to_end(&mut rest))
        .await
        .expect("the server closes the connection")
        .unwrap_or_default();
    rest
}

#[tokio::test]
async fn a_connection_keeps_serving_requests_and_closes_once_quiet_for_the_idle_time() {
    let running = Running::start(Duration::from_millis(400), Duration::from_secs(5)).await;
    let mut connection = running.connect().await;
    // Requests closer together than the idle time: the same connection serves them all.
    for _ in 0..5 {
        ask_hello(&mut connection).await;
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    // Then nothing: the server closes it.
    closed_by_the_server(&mut connection).await;
    running.stop().await;
}

#[tokio::test]
async fn a_connection_that_sends_nothing_is_closed_after_the_idle_time() {
    let running = Running::start(Duration::from_millis(300), Duration::from_secs(5)).await;
    let mut connection = running.connect().await;
    closed_by_the_server(&mut connection).await;
    running.stop().await;
}

#[tokio::test]
async fn at_shutdown_idle_connections_close_and_no_new_one_is_taken() {
    let running = Running::start(Duration::from_secs(60), Duration::from_secs(60)).await;
    let address = running.address.clone();
    let mut connection = running.connect().await;
    ask_hello(&mut connection).await;
    // The grace is a minute: returning long before it means the idle connection was not
    // waited for.
    tokio::time::timeout(Duration::from_secs(10), running.stop())
        .await
        .expect("the server does not wait for an idle connection");
    closed_by_the_server(&mut connection).await;
    assert!(TcpStream::connect(&address).await.is_err());
}

#[tokio::test]
async fn at_shutdown_a_stream_that_never_ends_is_cut_after_the_grace() {
    let running = Running::start(Duration::from_secs(60), Duration::from_millis(500)).await;
    let mut connection = running.connect().await;
    connection
        .write_all(b"GET /stream HTTP/1.1\r\nHost: test\r\nAccept: text/event-stream\r\n\r\n")
        .await
        .unwrap();
    let mut head = Vec::new();
    let mut buffer = [0_u8; 1024];
    while !String::from_utf8_lossy(&head).contains("data: 1") {
        let n = connection.read(&mut buffer).await.unwrap();
        assert!(n > 0);
        head.extend_from_slice(&buffer[..n]);
    }
    let head = String::from_utf8(head).unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(head.contains("content-type: text/event-stream"), "{head}");
    running.stop().await;
    // The stream's connection went with the server.
    read_to_close(&mut connection, Duration::from_secs(5)).await;
}

#[tokio::test]
async fn an_idle_time_too_long_to_count_means_no_idle_timeout() {
    let running = Running::start(Duration::MAX, Duration::from_secs(5)).await;
    let mut connection = running.connect().await;
    for _ in 0..2 {
        ask_hello(&mut connection).await;
    }
    running.stop().await;
}

#[tokio::test]
async fn over_the_connection_cap_a_connection_waits_until_one_closes() {
    let running = Running::start_with(Limits {
        max_connections: 2,
        idle: Duration::from_secs(60),
        grace: Duration::from_secs(5),
    })
    .await;
    let mut first = running.connect().await;
    let mut second = running.connect().await;
    for connection in [&mut first, &mut second] {
        ask_hello(connection).await;
    }
    // The third is connected by the kernel but not taken: its request waits unanswered.
    let mut third = running.connect().await;
    third.write_all(GET_HELLO).await.unwrap();
    let mut buffer = [0_u8; 64];
    let early = tokio::time::timeout(Duration::from_millis(500), third.read(&mut buffer)).await;
    assert!(
        early.is_err(),
        "a third connection was served over a cap of 2"
    );
    // One closes: the third is taken and answered.
    drop(first);
    let answer = read_hello(&mut third).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    running.stop().await;
}
