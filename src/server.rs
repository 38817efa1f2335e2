//! The HTTP/1.1 server loop: accepts connections up to a cap, serves each with hyper under a
//! header timeout (which also bounds idle kept-alive connections) and a whole-body deadline,
//! and stops gracefully.
//!
//! `axum::serve` has none of these bounds: a client that sent half a header and stopped kept its
//! connection (and a file descriptor) forever, so enough of them locked every client out.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::{pin, Pin};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::ConnectInfo;
use axum::Router;
use hyper::body::{Frame, Incoming, SizeHint};
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use tower::ServiceExt;
use twofold_infra::http_limits::HttpLimits;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Least time between two "connection cap reached" warnings.
const CAP_WARNING_INTERVAL: Duration = Duration::from_secs(10);

/// File descriptors kept free for everything that is not a client connection: the database
/// pool, the private cluster's socket, the delivery worker's provider connections, log files.
/// The cap is at most half the process's limit.
fn connection_cap(configured: Option<usize>, fd_limit: Option<u64>) -> usize {
    let ceiling = fd_limit
        .map(|n| usize::try_from(n / 2).unwrap_or(usize::MAX))
        .unwrap_or(usize::MAX)
        .clamp(16, 1_000_000);
    match configured {
        Some(n) if n > ceiling => {
            tracing::warn!(
                configured = n,
                cap = ceiling,
                "TWOFOLD_HTTP_MAX_CONNECTIONS is above half the file-descriptor limit; capped"
            );
            ceiling
        }
        Some(n) => n,
        None => ceiling.min(65_536),
    }
}

/// The soft `RLIMIT_NOFILE` of this process (`None` when unlimited or unreadable).
fn fd_limit() -> Option<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit only writes the struct we pass.
    let read = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) };
    (read == 0 && limit.rlim_cur != libc::RLIM_INFINITY).then_some(limit.rlim_cur)
}

/// Serves `router` on `listener` until `shutdown` completes, then lets requests in flight finish
/// (upgraded WebSockets are not waited for; their streams end on the same signal).
///
/// Beyond the connection cap, new connections are not accepted: they wait in the kernel's accept
/// backlog until a slot frees (a slow client holds one for at most the header timeout), rather
/// than being accepted and closed, which a legitimate client would see as an error.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: HttpLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let cap = connection_cap(limits.max_connections, fd_limit());
    tracing::info!(
        max_connections = cap,
        header_timeout_ms = limits.header_timeout.as_millis() as u64,
        body_timeout_ms = limits.body_timeout.as_millis() as u64,
        "HTTP limits"
    );
    let slots = Arc::new(Semaphore::new(cap));
    // Connections watch `stop` to begin their graceful shutdown; each holds a `done` receiver,
    // so the sender sees them all gone once every one has finished.
    let (stop_tx, stop_rx) = watch::channel(false);
    let (done_tx, done_rx) = watch::channel(());
    let mut shutdown = pin!(shutdown);
    let mut last_warning: Option<std::time::Instant> = None;
    loop {
        let slot = match slots.clone().try_acquire_owned() {
            Ok(slot) => slot,
            Err(_) => {
                // At most one line per interval: under a flood, the log must not become the
                // next exhausted resource.
                if last_warning.is_none_or(|at| at.elapsed() >= CAP_WARNING_INTERVAL) {
                    last_warning = Some(std::time::Instant::now());
                    tracing::warn!(
                        max_connections = cap,
                        "connection cap reached; new connections wait in the listen backlog"
                    );
                }
                tokio::select! {
                    slot = slots.clone().acquire_owned() => {
                        slot.expect("the semaphore is never closed")
                    }
                    () = &mut shutdown => break,
                }
            }
        };
        let (stream, remote) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    accept_failed(e).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        tokio::spawn(serve_connection(
            Counted {
                stream,
                _slot: slot,
                write_stall: limits.header_timeout,
                stalled: None,
            },
            remote,
            router.clone(),
            limits.clone(),
            stop_rx.clone(),
            done_rx.clone(),
        ));
    }
    drop(listener);
    let _ = stop_tx.send(true);
    drop(done_rx);
    done_tx.closed().await;
    Ok(())
}

/// A failed accept: a connection reset before it was accepted is routine; anything else (out
/// of descriptors, above all) is logged and retried after a pause rather than in a hot loop.
async fn accept_failed(e: io::Error) {
    if matches!(
        e.kind(),
        io::ErrorKind::ConnectionAborted | io::ErrorKind::ConnectionReset
    ) {
        return;
    }
    tracing::error!(error = %e, "accepting a connection failed; retrying in 1 s");
    tokio::time::sleep(Duration::from_secs(1)).await;
}

async fn serve_connection(
    io: Counted,
    remote: SocketAddr,
    router: Router,
    limits: HttpLimits,
    mut stop: watch::Receiver<bool>,
    _done: watch::Receiver<()>,
) {
    let body_timeout = limits.body_timeout;
    let service = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
        let mut req = req.map(|body| Body::new(DeadlineBody::new(body, body_timeout)));
        req.extensions_mut().insert(ConnectInfo(remote));
        router.clone().oneshot(req)
    });
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .keep_alive(true);
    let mut conn = pin!(builder
        .serve_connection(TokioIo::new(io), service)
        .with_upgrades());
    let mut stopping = false;
    loop {
        tokio::select! {
            served = conn.as_mut() => {
                if let Err(e) = served {
                    // Header and body timeouts end up here, as do clients that hang up.
                    tracing::debug!(error = %e, %remote, "connection ended with an error");
                }
                return;
            }
            _ = stop.wait_for(|stop| *stop), if !stopping => {
                stopping = true;
                conn.as_mut().graceful_shutdown();
            }
        }
    }
}

/// A connection's socket and its slot under the cap. The slot goes with the socket, so a
/// WebSocket (whose socket hyper hands over on upgrade) keeps counting until it closes.
///
/// Writes that make no progress for `write_stall` (the header timeout) fail the connection: a
/// client that stops reading (a tiny receive window, a large response) would otherwise hold
/// its slot, and the response in memory, for ever. hyper bounds reading, not writing.
struct Counted {
    stream: TcpStream,
    _slot: OwnedSemaphorePermit,
    write_stall: Duration,
    /// Since when a write has been waiting for the client, as a deadline.
    stalled: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl Counted {
    /// `written` as it is, after noting whether the client is keeping up: progress clears the
    /// deadline, a wait starts it, and a wait past it is an error that ends the connection.
    fn watch<T>(
        &mut self,
        cx: &mut Context<'_>,
        written: Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        match written {
            Poll::Ready(result) => {
                self.stalled = None;
                Poll::Ready(result)
            }
            Poll::Pending => {
                let stall = self.write_stall;
                let deadline = self
                    .stalled
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(stall)));
                match deadline.as_mut().poll(cx) {
                    Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "the client stopped reading",
                    ))),
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }
}

impl AsyncRead for Counted {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Counted {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let written = Pin::new(&mut this.stream).poll_write(cx, buf);
        this.watch(cx, written)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let written = Pin::new(&mut this.stream).poll_write_vectored(cx, bufs);
        this.watch(cx, written)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let flushed = Pin::new(&mut this.stream).poll_flush(cx);
        this.watch(cx, flushed)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}

/// The request body has not fully arrived within the body timeout.
#[derive(Debug, thiserror::Error)]
#[error("the request body did not arrive within the body timeout")]
pub struct BodyTimeout;

/// A request body with one deadline for all of it, counted from the end of the header.
/// (tower-http's `RequestBodyTimeout` bounds the gap between chunks instead, which a client
/// sending a byte just under every interval never meets.)
struct DeadlineBody {
    inner: Incoming,
    deadline: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl DeadlineBody {
    fn new(inner: Incoming, timeout: Duration) -> Self {
        use hyper::body::Body as _;
        let deadline = (!inner.is_end_stream()).then(|| Box::pin(tokio::time::sleep(timeout)));
        Self { inner, deadline }
    }
}

impl hyper::body::Body for DeadlineBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        if let Poll::Ready(frame) = Pin::new(&mut this.inner).poll_frame(cx) {
            return Poll::Ready(frame.map(|f| f.map_err(BoxError::from)));
        }
        if let Some(deadline) = &mut this.deadline {
            if deadline.as_mut().poll(cx).is_ready() {
                return Poll::Ready(Some(Err(BodyTimeout.into())));
            }
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::connection_cap;

    #[test]
    fn the_cap_stays_at_most_half_the_descriptor_limit() {
        assert_eq!(connection_cap(None, Some(20_000)), 10_000);
        assert_eq!(connection_cap(None, Some(1024)), 512);
        assert_eq!(connection_cap(Some(300), Some(1024)), 300);
        assert_eq!(connection_cap(Some(5_000), Some(1024)), 512);
        assert_eq!(connection_cap(None, None), 65_536);
        assert_eq!(connection_cap(None, Some(10)), 16);
    }
}
