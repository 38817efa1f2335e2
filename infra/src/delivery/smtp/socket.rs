//! The socket under an SMTP connection, watched for two things lettre's connection leaves
//! unchecked (decision 170).
//!
//! - **Bytes after a reply, before TLS.** lettre reads replies through a buffer. Whatever a
//!   server sends after a reply, in the same read, waits in that buffer; after `STARTTLS` it
//!   is read as the replies to the commands sent inside TLS. So an attacker on the path who
//!   appends a whole script of replies to the clear-text `220` (or to the `EHLO` before it)
//!   answers for the server inside TLS, and a refused mail reads as accepted. lettre does not
//!   pipeline its set-up, so a server never has anything to say after a reply until it is
//!   asked again: until TLS begins, a read carrying bytes past the end of a reply fails the
//!   connection.
//! - **A reply line without an end.** lettre reads a reply line whole before it checks the
//!   line's length, so a server that never ends one fills memory for as long as the send's
//!   deadline lets it. A connection reads at most [`READ_BUDGET`] bytes per mail (counted on
//!   the socket, under any TLS).

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use lettre::transport::smtp::client::{AsyncTokioStream, TlsParameters};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// Bytes a connection may read for its set-up and one mail. Replies to a mail's transaction
/// are a few hundred bytes; a TLS handshake with a long certificate chain a few dozen KiB.
pub(crate) const READ_BUDGET: usize = 256 * 1024;

/// What the watch found: the connection is closed and the send fails, to be tried again. (Past
/// the budget after a mail's data, a server that did accept it gets it twice: only a hostile
/// or broken server sends that much, and one can as well lie in its reply.)
#[derive(Clone, Copy, Debug, thiserror::Error)]
pub(crate) enum Breach {
    #[error("the SMTP server sent more than a reply before TLS began")]
    AfterReply,
    #[error("the SMTP server sent more than {} KiB for one mail", READ_BUDGET / 1024)]
    TooMuch,
}

impl Breach {
    /// The breach behind a connection's failure, if that is what failed it.
    pub(crate) fn behind<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a Breach> {
        let mut cause = Some(e);
        while let Some(e) = cause {
            if let Some(breach) = e.downcast_ref::<Breach>() {
                return Some(breach);
            }
            // An I/O error's `source` skips the error it carries.
            let carried = e
                .downcast_ref::<std::io::Error>()
                .and_then(|io| io.get_ref())
                .and_then(|inner| inner.downcast_ref::<Breach>());
            if carried.is_some() {
                return carried;
            }
            cause = e.source();
        }
        None
    }
}

/// The pool's hold on a connection's watch.
#[derive(Clone, Debug)]
pub(crate) struct Watch(Arc<Shared>);

#[derive(Debug)]
struct Shared {
    /// Bytes the connection may still read.
    left: AtomicUsize,
    /// Whether reads are still checked for bytes past a reply: until TLS begins, or the
    /// set-up ends without it.
    in_clear: AtomicBool,
}

impl Watch {
    /// A new mail may read a budget of its own.
    pub(crate) fn refill(&self) {
        self.0.left.store(READ_BUDGET, Ordering::Relaxed);
    }

    /// The set-up is over: later reads are not checked for bytes past a reply. A server that
    /// sent a line too many after a mail's acceptance would otherwise fail a mail it accepted
    /// (and have it sent again); the pool's reply checks catch that line instead.
    pub(crate) fn set_up(&self) {
        self.0.in_clear.store(false, Ordering::Relaxed);
    }
}

/// A TCP socket under a watch.
#[derive(Debug)]
pub(crate) struct Watched {
    tcp: TcpStream,
    peer: SocketAddr,
    watch: Watch,
    replies: Replies,
    /// What the watch found, once it has: every later read and write fails with it, so
    /// lettre's `QUIT` on the way out does not wait on a server that broke the rules.
    breached: Option<Breach>,
}

/// Where the replies read in clear end, found as lettre finds them: a line ends at CRLF only,
/// and a reply at a line whose code is followed by a space (or by nothing).
#[derive(Debug, Default)]
struct Replies {
    /// `STARTTLS` was written: the end of its reply is where TLS begins.
    starttls_sent: bool,
    /// Bytes of the current line read so far.
    line_len: usize,
    /// Whether the current line is a reply's last (`250 ok`, not `250-more`).
    last_line: bool,
    /// Whether the byte before was CR.
    after_cr: bool,
}

/// What a read in clear came to.
#[derive(Debug, PartialEq)]
enum Read {
    /// More of the set-up in clear.
    Clear,
    /// The reply to `STARTTLS` ended with this read: TLS begins with the next bytes.
    TlsNext,
}

impl Replies {
    /// Checks bytes just read: none may follow the end of a reply, and no line may end at a
    /// bare LF. lettre would read on past such a line, so a watch that ended the reply there
    /// would stop watching before lettre had read it all.
    fn check(&mut self, read: &[u8]) -> Result<Read, Breach> {
        for (i, &byte) in read.iter().enumerate() {
            let after_cr = std::mem::replace(&mut self.after_cr, byte == b'\r');
            if self.line_len == 3 {
                self.last_line = byte != b'-';
            }
            if byte != b'\n' {
                self.line_len += 1;
                continue;
            }
            if !after_cr {
                return Err(Breach::AfterReply);
            }
            // A line too short to carry a separator is no continuation either.
            let reply_ends = self.last_line || self.line_len <= 4;
            self.line_len = 0;
            self.last_line = false;
            if !reply_ends {
                continue;
            }
            if i + 1 < read.len() {
                return Err(Breach::AfterReply);
            }
            if self.starttls_sent {
                return Ok(Read::TlsNext);
            }
        }
        Ok(Read::Clear)
    }
}

/// Connects to `host:port` within `timeout` for each address it resolves to, in order, as
/// lettre's own connect does. `in_clear`: the connection starts without TLS and may upgrade
/// with `STARTTLS`, so its reads are checked until it does.
pub(crate) async fn dial(
    host: &str,
    port: u16,
    timeout: Duration,
    in_clear: bool,
) -> std::io::Result<(Watched, Watch)> {
    let mut last = None;
    for addr in tokio::net::lookup_host((host, port)).await? {
        match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
            Ok(Ok(tcp)) => {
                let watch = Watch(Arc::new(Shared {
                    left: AtomicUsize::new(READ_BUDGET),
                    in_clear: AtomicBool::new(in_clear),
                }));
                let socket = Watched {
                    tcp,
                    peer: addr,
                    watch: watch.clone(),
                    replies: Replies::default(),
                    breached: None,
                };
                return Ok((socket, watch));
            }
            Ok(Err(e)) => last = Some(e),
            Err(_) => {
                last = Some(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "connection timed out",
                ));
            }
        }
    }
    Err(last.unwrap_or_else(|| std::io::Error::other("the host resolves to no address")))
}

fn breach(b: Breach) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, b)
}

impl AsyncRead for Watched {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        if let Some(b) = this.breached {
            return Poll::Ready(Err(breach(b)));
        }
        let before = buf.filled().len();
        ready!(Pin::new(&mut this.tcp).poll_read(cx, buf))?;
        let read = &buf.filled()[before..];
        let within_budget = this
            .watch
            .0
            .left
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |l| {
                l.checked_sub(read.len())
            })
            .is_ok();
        let checked = if !within_budget {
            Err(Breach::TooMuch)
        } else if this.watch.0.in_clear.load(Ordering::Relaxed) {
            this.replies.check(read).map(|next| {
                if next == Read::TlsNext {
                    this.watch.set_up();
                }
            })
        } else {
            Ok(())
        };
        if let Err(b) = checked {
            this.breached = Some(b);
            // Nothing read may reach lettre's buffer.
            buf.set_filled(before);
            return Poll::Ready(Err(breach(b)));
        }
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        if let Some(b) = this.breached {
            return Poll::Ready(Err(breach(b)));
        }
        // lettre writes a command whole. Were `STARTTLS` ever split over writes, the handshake's
        // bytes would be checked as clear text and fail the connection: closed, not open.
        if this.watch.0.in_clear.load(Ordering::Relaxed)
            && buf.len() >= 8
            && buf[..8].eq_ignore_ascii_case(b"STARTTLS")
        {
            this.replies.starttls_sent = true;
        }
        Pin::new(&mut this.tcp).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().tcp).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().tcp).poll_shutdown(cx)
    }
}

impl AsyncTokioStream for Watched {
    fn peer_addr(&self) -> std::io::Result<SocketAddr> {
        Ok(self.peer)
    }
}

/// lettre's TLS from the first byte over a watched socket, as a stream lettre's connection
/// is built on (lettre's own connect would open a socket of its own). lettre calls the type
/// that carries its TLS not meant to be public; it is the one way to keep its TLS set-up
/// (roots, versions, host name checks) over a socket of ours. lettre takes the result for a
/// clear stream (`is_encrypted` is false), so nothing may ask it that: the pool never sends
/// `STARTTLS` over a connection that began with TLS.
#[allow(deprecated)]
pub(crate) async fn with_tls(
    socket: Watched,
    parameters: TlsParameters,
) -> Result<Box<dyn AsyncTokioStream>, lettre::transport::smtp::Error> {
    use lettre::transport::smtp::client::AsyncNetworkStream;
    let peer = socket.peer;
    let mut stream = AsyncNetworkStream::use_existing_tokio1(Box::new(socket));
    stream.upgrade_tls(parameters).await?;
    Ok(Box::new(Encrypted { stream, peer }))
}

/// lettre's TLS stream (futures' I/O traits) as tokio's.
#[allow(deprecated)]
#[derive(Debug)]
struct Encrypted {
    stream: lettre::transport::smtp::client::AsyncNetworkStream,
    peer: SocketAddr,
}

impl AsyncRead for Encrypted {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let n = ready!(futures::io::AsyncRead::poll_read(
            Pin::new(&mut self.get_mut().stream),
            cx,
            buf.initialize_unfilled()
        ))?;
        buf.advance(n);
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for Encrypted {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        futures::io::AsyncWrite::poll_write(Pin::new(&mut self.get_mut().stream), cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        futures::io::AsyncWrite::poll_flush(Pin::new(&mut self.get_mut().stream), cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        futures::io::AsyncWrite::poll_close(Pin::new(&mut self.get_mut().stream), cx)
    }
}

impl AsyncTokioStream for Encrypted {
    fn peer_addr(&self) -> std::io::Result<SocketAddr> {
        Ok(self.peer)
    }
}

#[cfg(test)]
mod tests;
