//! A cap on the connections one process holds open at once.
//!
//! Every open connection costs a task, buffers and a file descriptor; without a cap, one client
//! opening connections in a loop (or many slow clients) could exhaust the process's memory or
//! its descriptors, and every other client with it. At the cap the acceptor simply stops
//! accepting: new connections wait in the kernel's listen backlog and are taken as soon as one
//! closes, as nginx does with `worker_connections`. Each connection holds its place until it is
//! dropped, whichever way it ends (closed by the client, idle timeout, shutdown).

use std::io::Result as IoResult;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use poem::http::uri::Scheme;
use poem::listener::Acceptor;
use poem::web::{LocalAddr, RemoteAddr};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Wraps an acceptor so that at most `limit` of its connections are open at once.
pub struct CappedAcceptor<A> {
    inner: A,
    places: Arc<Semaphore>,
}

impl<A: Acceptor> CappedAcceptor<A> {
    pub fn new(inner: A, limit: usize) -> Self {
        Self {
            inner,
            places: Arc::new(Semaphore::new(limit.max(1))),
        }
    }
}

impl<A: Acceptor> Acceptor for CappedAcceptor<A> {
    type Io = Capped<A::Io>;

    fn local_addr(&self) -> Vec<LocalAddr> {
        self.inner.local_addr()
    }

    async fn accept(&mut self) -> IoResult<(Self::Io, LocalAddr, RemoteAddr, Scheme)> {
        // The semaphore is never closed, so waiting for a place cannot fail.
        let place = Arc::clone(&self.places)
            .acquire_owned()
            .await
            .map_err(std::io::Error::other)?;
        let (io, local, remote, scheme) = self.inner.accept().await?;
        Ok((Capped { io, _place: place }, local, remote, scheme))
    }
}

/// A connection holding its place under the cap until it is dropped.
pub struct Capped<T> {
    io: T,
    _place: OwnedSemaphorePermit,
}

impl<T: AsyncRead + Unpin> AsyncRead for Capped<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<IoResult<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Capped<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<IoResult<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<IoResult<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
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

#[cfg(test)]
mod tests {
    use super::*;
    use poem::listener::{Listener, TcpListener};
    use std::time::Duration;
    use tokio::io::AsyncWriteExt;

    #[tokio::test]
    async fn the_connection_over_the_cap_waits_until_one_closes() {
        let acceptor = TcpListener::bind("127.0.0.1:0")
            .into_acceptor()
            .await
            .expect("bind");
        let address = *acceptor.local_addr()[0]
            .as_socket_addr()
            .expect("a socket address");
        let mut capped = CappedAcceptor::new(acceptor, 2);
        let mut clients = Vec::new();
        for _ in 0..3 {
            clients.push(
                tokio::net::TcpStream::connect(address)
                    .await
                    .expect("connect"),
            );
        }
        let first = capped.accept().await.expect("first").0;
        let _second = capped.accept().await.expect("second").0;
        let third = tokio::time::timeout(Duration::from_millis(300), capped.accept()).await;
        assert!(
            third.is_err(),
            "a third connection was accepted over a cap of 2"
        );
        drop(first);
        let mut third = tokio::time::timeout(Duration::from_secs(5), capped.accept())
            .await
            .expect("accepted once a place is free")
            .expect("third")
            .0;
        third.flush().await.expect("usable");
    }
}
