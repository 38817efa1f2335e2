//! The SMTP capture server.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
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
    /// Sessions greeted with `EHLO`: the connections opened.
    sessions: Arc<AtomicUsize>,
    rcpt: RcptAnswer,
    helo: String,
    from: String,
    to: Vec<String>,
    data: Vec<u8>,
}

impl mailin_embedded::Handler for CaptureHandler {
    fn helo(&mut self, _ip: IpAddr, _domain: &str) -> mailin_embedded::Response {
        self.sessions.fetch_add(1, Ordering::SeqCst);
        mailin_embedded::response::OK
    }

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

/// One SMTP session, until the client quits or goes away.
fn serve_connection(
    stream: std::net::TcpStream,
    sessions: &mailin::SessionBuilder,
    handler: CaptureHandler,
) {
    use std::io::{BufRead, Write};
    let remote = stream
        .peer_addr()
        .map_or(IpAddr::from([127, 0, 0, 1]), |a| a.ip());
    let Ok(mut writer) = stream.try_clone() else {
        return;
    };
    let mut reader = std::io::BufReader::new(stream);
    let mut session = sessions.build(remote, handler);
    let mut line = Vec::new();
    let reply = |writer: &mut std::net::TcpStream, response: &mailin::Response| {
        response
            .write_to(writer)
            .and_then(|()| writer.flush())
            .is_ok()
    };
    if !reply(&mut writer, &session.greeting()) {
        return;
    }
    loop {
        line.clear();
        match reader.read_until(b'\n', &mut line) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let response = session.process(&line);
        match response.action {
            mailin::Action::NoReply => {}
            mailin::Action::Reply => {
                if !reply(&mut writer, &response) {
                    return;
                }
            }
            mailin::Action::Close | mailin::Action::UpgradeTls => {
                reply(&mut writer, &response);
                return;
            }
        }
    }
}

/// A real SMTP server on `127.0.0.1` that keeps every message it receives. Plain SMTP, no
/// authentication: point `TWOFOLD_SMTP_URL` at [`SmtpCapture::url`].
pub struct SmtpCapture {
    addr: SocketAddr,
    store: Arc<Mutex<Vec<ReceivedMail>>>,
    sessions: Arc<AtomicUsize>,
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
        let sessions = Arc::new(AtomicUsize::new(0));
        let handler = CaptureHandler {
            store: store.clone(),
            sessions: sessions.clone(),
            rcpt,
            helo: String::new(),
            from: String::new(),
            to: Vec::new(),
            data: Vec::new(),
        };
        // A thread per connection, not mailin-embedded's fixed pool: the service keeps
        // connections open between mails, and each would hold one of a pool's threads.
        std::thread::Builder::new()
            .name(format!("smtp-capture-{}", addr.port()))
            .spawn(move || {
                let sessions = mailin::SessionBuilder::new("capture.twofold.test");
                for stream in listener.incoming().flatten() {
                    let (sessions, handler) = (sessions.clone(), handler.clone());
                    std::thread::spawn(move || serve_connection(stream, &sessions, handler));
                }
            })
            .expect("starting the SMTP capture thread");
        SmtpCapture {
            addr,
            store,
            sessions,
        }
    }

    /// `smtp://127.0.0.1:PORT`, for `TWOFOLD_SMTP_URL`.
    pub fn url(&self) -> String {
        format!("smtp://{}", self.addr)
    }

    /// How many SMTP sessions (connections greeted with `EHLO`) were opened so far.
    pub fn sessions(&self) -> usize {
        self.sessions.load(Ordering::SeqCst)
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
