//! The SMTP capture server.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::{lock, poll_for, ReceivedMail};

/// How the capture server answers `RCPT TO`.
#[derive(Debug, Clone, Copy)]
enum RcptAnswer {
    Accept,
    /// Refuse with this code; the reply text quotes the address, as real servers do.
    Refuse(u16),
}

#[derive(Clone)]
struct CaptureHandler {
    store: Arc<Mutex<Vec<ReceivedMail>>>,
    rcpt: RcptAnswer,
    helo: String,
    from: String,
    to: Vec<String>,
    data: Vec<u8>,
}

impl mailin_embedded::Handler for CaptureHandler {
    fn rcpt(&mut self, to: &str) -> mailin_embedded::Response {
        match self.rcpt {
            RcptAnswer::Accept => mailin_embedded::response::OK,
            RcptAnswer::Refuse(code) => mailin_embedded::Response::custom(
                code,
                format!("<{to}>: Recipient address rejected"),
            ),
        }
    }

    fn data_start(
        &mut self,
        domain: &str,
        from: &str,
        _is8bit: bool,
        to: &[String],
    ) -> mailin_embedded::Response {
        self.helo = domain.to_owned();
        self.from = from.to_owned();
        self.to = to.to_vec();
        self.data.clear();
        mailin_embedded::response::OK
    }

    fn data(&mut self, buf: &[u8]) -> std::io::Result<()> {
        self.data.extend_from_slice(buf);
        Ok(())
    }

    fn data_end(&mut self) -> mailin_embedded::Response {
        let mail = ReceivedMail {
            from: std::mem::take(&mut self.from),
            to: std::mem::take(&mut self.to),
            data: String::from_utf8_lossy(&std::mem::take(&mut self.data)).into_owned(),
            helo: std::mem::take(&mut self.helo),
        };
        lock(&self.store).push(mail);
        mailin_embedded::response::OK
    }
}

/// A real SMTP server on `127.0.0.1` that keeps every message it receives. Plain SMTP, no
/// authentication: point `TWOFOLD_SMTP_URL` at [`SmtpCapture::url`].
pub struct SmtpCapture {
    addr: SocketAddr,
    store: Arc<Mutex<Vec<ReceivedMail>>>,
}

impl SmtpCapture {
    /// Starts a server that accepts every message.
    pub fn start() -> SmtpCapture {
        Self::start_with(RcptAnswer::Accept)
    }

    /// Starts a server that refuses every recipient with `code` (e.g. 550 for a permanent,
    /// 450 for a temporary failure), quoting the address in its reply as real servers do.
    pub fn start_refusing(code: u16) -> SmtpCapture {
        Self::start_with(RcptAnswer::Refuse(code))
    }

    fn start_with(rcpt: RcptAnswer) -> SmtpCapture {
        let listener =
            std::net::TcpListener::bind("127.0.0.1:0").expect("binding the SMTP capture port");
        let addr = listener.local_addr().expect("SMTP capture address");
        let store = Arc::new(Mutex::new(Vec::new()));
        let handler = CaptureHandler {
            store: store.clone(),
            rcpt,
            helo: String::new(),
            from: String::new(),
            to: Vec::new(),
            data: Vec::new(),
        };
        let mut server = mailin_embedded::Server::new(handler);
        server
            .with_name("capture.twofold.test")
            .with_num_threads(4)
            .with_tcp_listener(listener);
        std::thread::Builder::new()
            .name(format!("smtp-capture-{}", addr.port()))
            .spawn(move || {
                if let Err(e) = server.serve() {
                    eprintln!("SMTP capture server stopped: {e}");
                }
            })
            .expect("starting the SMTP capture thread");
        SmtpCapture { addr, store }
    }

    /// `smtp://127.0.0.1:PORT`, for `TWOFOLD_SMTP_URL`.
    pub fn url(&self) -> String {
        format!("smtp://{}", self.addr)
    }

    /// Every code mail received so far, oldest first (security notices apart: see
    /// [`SmtpCapture::notices`]).
    pub fn messages(&self) -> Vec<ReceivedMail> {
        lock(&self.store)
            .iter()
            .filter(|m| !m.is_notice())
            .cloned()
            .collect()
    }

    /// The security notices received so far, oldest first.
    pub fn notices(&self) -> Vec<ReceivedMail> {
        lock(&self.store)
            .iter()
            .filter(|m| m.is_notice())
            .cloned()
            .collect()
    }

    /// Waits until at least `n` notices arrived (panics after `timeout`).
    pub async fn wait_for_notices(&self, n: usize, timeout: Duration) -> Vec<ReceivedMail> {
        poll_for("notices", n, timeout, || self.notices()).await
    }

    /// Waits until at least `n` messages arrived (panics after `timeout`); returns them all.
    pub async fn wait_for(&self, n: usize, timeout: Duration) -> Vec<ReceivedMail> {
        poll_for("mails", n, timeout, || self.messages()).await
    }
}
