//! The HTTP server every service runs: its poem application, served over HTTP/1.1 by hyper.
//!
//! poem's own `Server` hands each connection to hyper-util's `auto` builder, which first reads a
//! few bytes to tell HTTP/2 from HTTP/1.1 and then replays them to the HTTP/1 connection: the
//! request arrives in two reads, and hyper's read buffer (8 KiB) doubles to 16 KiB for the life
//! of the connection; the connection's future, holding both protocols' state, is 5.5 KB; and
//! each connection's idleness is watched by a task, a channel and a token of their own. Nothing
//! speaks HTTP/2 to a service (browsers speak it over TLS only, to the proxy in front; the
//! gateway's client speaks HTTP/1.1), while a service holds thousands of quiet connections
//! (every live screen is a server-sent event stream): about 12 KB a connection for nothing
//! (the heap profile is in BENCHMARKS.md).
//!
//! Here each connection is hyper's HTTP/1 connection alone (upgrades allowed), behaving as
//! poem's did otherwise, with the process's connection cap in the accept loop: at most
//! `max_connections` are open at once; a connection with no byte read or written for `idle`
//! is closed (gracefully: a request in flight finishes first); at shutdown no connection is
//! taken any more, idle ones close at once and requests in flight have `grace` to finish, after
//! which their connections are dropped.

use std::convert::Infallible;
use std::future::Future;
use std::io::Result as IoResult;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use hyper_util::rt::TokioIo;
use poem::endpoint::{DynEndpoint, ToDynEndpoint};
use poem::http::uri::Scheme;
use poem::listener::Acceptor;
use poem::web::{LocalAddr, RemoteAddr};
use poem::{Endpoint as _, EndpointExt, IntoEndpoint, Response};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use tokio_util::task::TaskTracker;

/// The body poem converts its responses to for hyper.
type HyperBody = http_body_util::combinators::BoxBody<Bytes, std::io::Error>;
type App = Arc<dyn DynEndpoint<Output = Response>>;

/// What the server allows its connections.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Connections open at once. Every open connection costs a task, buffers and a file
    /// descriptor; without a cap, one client opening connections in a loop (or many slow
    /// clients) could exhaust the process, and every other client with it. At the cap the
    /// server simply stops accepting: new connections wait in the kernel's listen backlog and
    /// are taken as soon as one closes, as nginx does with `worker_connections`.
    pub max_connections: usize,
    /// A connection with no byte read or written for this long is closed.
    pub idle: Duration,
    /// How long requests in flight may take to finish at shutdown.
    pub grace: Duration,
}

/// Serves `app` on the connections `acceptor` takes until `signal` resolves, then shuts down
/// as the module says and returns.
pub async fn serve<A, E>(mut acceptor: A, app: E, signal: impl Future<Output = ()>, limits: Limits)
where
    A: Acceptor,
    E: IntoEndpoint,
    E::Endpoint: 'static,
{
    let app: App = Arc::new(ToDynEndpoint(app.into_endpoint().map_to_response()));
    let places = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    // `true` once the server stops taking connections; dropped when it gives up waiting.
    let (stopping, stop) = watch::channel(false);
    let connections = TaskTracker::new();
    tokio::pin!(signal);
    loop {
        // A place first (the semaphore is never closed), then a connection to fill it; each
        // connection holds its place until its task ends, whichever way it ends.
        let place = tokio::select! {
            () = &mut signal => break,
            place = Arc::clone(&places).acquire_owned() => match place {
                Ok(place) => place,
                Err(_) => break,
            },
        };
        tokio::select! {
            () = &mut signal => break,
            accepted = acceptor.accept() => match accepted {
                Ok((io, local, remote, scheme)) => {
                    let peer = Peer { local, remote, scheme };
                    // The place goes in as an argument: wrapping the connection's future in
                    // another to drop the place after it made every held connection 1.5 KB
                    // bigger (BENCHMARKS.md; likely room for the future twice).
                    let connection =
                        connection(io, place, peer, app.clone(), stop.clone(), limits.idle);
                    connections.spawn(connection);
                }
                Err(error) => {
                    // Out of descriptors, say: the connections that close will make room.
                    tracing::warn!(%error, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
        }
    }
    drop(acceptor);
    let _ = stopping.send(true);
    connections.close();
    if tokio::time::timeout(limits.grace, connections.wait())
        .await
        .is_err()
    {
        tracing::warn!(
            still_open = connections.len(),
            "requests still in flight after the grace period are dropped"
        );
        // Every connection task ends at its next poll once the sender is gone; wait for that,
        // so that nothing of the server runs after it returns (the service then closes its pool).
        drop(stopping);
        let _ = tokio::time::timeout(Duration::from_secs(1), connections.wait()).await;
    }
}

/// Where a connection comes from, as poem's requests carry it.
#[derive(Clone)]
struct Peer {
    local: LocalAddr,
    remote: RemoteAddr,
    scheme: Scheme,
}

/// Serves one connection until it closes, goes idle, or the server stops; its place under the
/// connection cap is given back when it ends, whichever way.
async fn connection<I>(
    io: I,
    _place: OwnedSemaphorePermit,
    peer: Peer,
    app: App,
    mut stop: watch::Receiver<bool>,
    idle: Duration,
) where
    I: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let activity = Arc::new(Activity::starting_now());
    let remote = peer.remote.clone();
    let io = Watched {
        io,
        activity: activity.clone(),
    };
    let service = hyper::service::service_fn(move |request| {
        let (app, peer) = (app.clone(), peer.clone());
        async move {
            let request = (request, peer.local, peer.remote, peer.scheme).into();
            Ok::<_, Infallible>(hyper::Response::<HyperBody>::from(
                app.get_response(request).await,
            ))
        }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .serve_connection(TokioIo::new(io), service)
        .with_upgrades();
    tokio::pin!(conn);
    let mut closing = false;
    loop {
        tokio::select! {
            _ = &mut conn => return,
            () = sleep_until(activity.quiet_until(idle)), if !closing => {
                // Bytes may have moved while this slept: the deadline is read again.
                if activity.quiet_until(idle).is_some_and(|at| at <= Instant::now()) {
                    tracing::debug!(%remote, "closing an idle connection");
                    conn.as_mut().graceful_shutdown();
                    closing = true;
                }
            }
            changed = stop.changed() => match changed {
                Ok(()) if !closing => {
                    conn.as_mut().graceful_shutdown();
                    closing = true;
                }
                Ok(()) => {}
                // The server gave up waiting: drop the connection, request and all.
                Err(_) => return,
            },
        }
    }
}

/// When a connection last read or wrote a byte, in milliseconds since the process's first
/// connection: one atomic per connection, where poem spent a task.
struct Activity(AtomicU64);

impl Activity {
    fn starting_now() -> Self {
        let activity = Self(AtomicU64::new(0));
        activity.touch();
        activity
    }

    fn epoch() -> Instant {
        static EPOCH: OnceLock<Instant> = OnceLock::new();
        *EPOCH.get_or_init(Instant::now)
    }

    fn touch(&self) {
        let since = Instant::now().saturating_duration_since(Self::epoch());
        self.0.store(
            u64::try_from(since.as_millis()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
    }

    fn last(&self) -> Instant {
        let since = Duration::from_millis(self.0.load(Ordering::Relaxed));
        Self::epoch()
            .checked_add(since)
            .unwrap_or_else(Instant::now)
    }

    /// When the connection will have been quiet for `idle`; none when that is too far to count
    /// (an idle time that long means no idle timeout at all).
    fn quiet_until(&self, idle: Duration) -> Option<Instant> {
        self.last().checked_add(idle)
    }
}

/// Sleeps until `at`, or for ever when there is no such instant.
async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// A connection's socket, noting each read and write in its [`Activity`].
struct Watched<I> {
    io: I,
    activity: Arc<Activity>,
}

impl<I> Watched<I> {
    /// Notes a read or write that finished (with bytes, an end or an error) as activity.
    fn noted<T>(&self, polled: Poll<T>) -> Poll<T> {
        if polled.is_ready() {
            self.activity.touch();
        }
        polled
    }
}

impl<I: AsyncRead + Unpin> AsyncRead for Watched<I> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<IoResult<()>> {
        let polled = Pin::new(&mut self.io).poll_read(cx, buf);
        self.noted(polled)
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for Watched<I> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<IoResult<usize>> {
        let polled = Pin::new(&mut self.io).poll_write(cx, buf);
        self.noted(polled)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<IoResult<usize>> {
        let polled = Pin::new(&mut self.io).poll_write_vectored(cx, bufs);
        self.noted(polled)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<IoResult<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<IoResult<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}
