//! Connections to the operator's SMTP server, kept open between sends.
//!
//! A connection per mail cost a TCP handshake, the greeting, `EHLO` (and TLS and `AUTH` where
//! configured) and `QUIT` around every code: more round trips than the mail itself. Here a
//! connection goes back for the next send only after a mail it carried was accepted (`250`
//! to the data), so every reply on it has been read and the server stands between
//! transactions. Anything else (a refusal, an error, a send cut by the caller's deadline, which
//! drops the future and with it the connection) closes it. lettre's own pool was not used
//! (decision 168): it took back a connection whose send our deadline had cut, with its reply
//! still unread, and it quit connections in tasks of their own, with no deadline.
//!
//! Only for the operator's server, configured by the operator: tenants' servers get a
//! connection per mail, resolved and checked at each send (`tenant::smtp`).
//!
//! A connection idle for a while may have been closed by the server. One that was idle for
//! more than [`CHECK_AFTER`] is asked with `NOOP` first; one that fails its `NOOP` or its
//! `MAIL FROM` in any way (no reply in time, a refusal, a reply out of step) is dropped and the
//! mail goes over a new connection: nothing of it had been sent.
//!
//! Every reply must carry the code its command calls for (`250` to `MAIL FROM`, `250`/`251` to
//! `RCPT TO`, `354` to `DATA`, `2xx` to the mail): a server that sends a line too many (or a
//! network attacker who injects one before `STARTTLS`) would otherwise shift every later reply
//! by one, and a refused mail would read as accepted. lettre's send accepts any positive reply.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use lettre::address::Envelope;
use lettre::transport::smtp::authentication::{Credentials, DEFAULT_MECHANISMS};
use lettre::transport::smtp::client::{AsyncSmtpConnection, Tls};
use lettre::transport::smtp::commands::{Data, Mail, Noop, Rcpt};
use lettre::transport::smtp::extension::{ClientId, Extension, MailBodyParameter, MailParameter};
use lettre::transport::smtp::response::Response;
use lettre::transport::smtp::Error;

/// Connections kept open between sends at most: the worker's sends in flight at once.
pub const MAX_IDLE: usize = 32;

/// A connection idle for longer is closed (servers commonly close after a few minutes).
const IDLE_FOR: Duration = Duration::from_secs(30);

/// A connection idle for longer is checked with `NOOP` before a mail goes over it.
const CHECK_AFTER: Duration = Duration::from_secs(2);

/// Mails one connection carries at most before it is closed, whatever the server allows.
const MAILS_PER_CONNECTION: u32 = 100;

/// Where and how to connect: what lettre reads from the URL.
pub struct Server {
    pub host: String,
    pub port: u16,
    pub tls: Tls,
    pub hello_name: ClientId,
    pub credentials: Option<Credentials>,
    /// Bound on connecting, and on each step over a kept connection before it has shown it is
    /// alive (lettre bounds the connect only; the caller's deadline bounds the whole send).
    pub timeout: Duration,
}

struct Idle {
    connection: AsyncSmtpConnection,
    since: Instant,
    mails: u32,
}

pub struct Connections {
    server: Server,
    idle: Mutex<Vec<Idle>>,
}

impl Connections {
    pub fn new(server: Server) -> Self {
        Self {
            server,
            idle: Mutex::new(Vec::new()),
        }
    }

    /// Sends `email` (already formatted) to the envelope's recipients. The caller bounds the
    /// whole send with its deadline; a send it drops takes its connection with it.
    pub async fn send(&self, envelope: &Envelope, email: &[u8]) -> Result<Response, Failure> {
        if let Some(mut idle) = self.take() {
            // Only `NOOP` and `MAIL FROM` go over a kept connection before it has shown it is
            // alive: any failure there (a server that closed it, went silent, or answered out
            // of turn) costs nothing but the connection, and a new one carries the mail.
            let began = tokio::time::timeout(self.server.timeout, async {
                if idle.since.elapsed() >= CHECK_AFTER
                    && !expect(idle.connection.command(Noop).await, &[250])?
                {
                    return Ok(false);
                }
                begin(&mut idle.connection, envelope, email).await
            })
            .await;
            if let Ok(Ok(true)) = began {
                let response = finish(&mut idle.connection, envelope, email).await?;
                self.put_back(idle.connection, idle.mails + 1);
                return Ok(response);
            }
        }
        let mut connection = self.connect().await.map_err(Failure::Smtp)?;
        if !begin(&mut connection, envelope, email).await? {
            return Err(Failure::OutOfStep);
        }
        let response = finish(&mut connection, envelope, email).await?;
        self.put_back(connection, 1);
        Ok(response)
    }

    /// The most recently used idle connection, closing those idle for too long.
    fn take(&self) -> Option<Idle> {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        idle.retain(|c| c.since.elapsed() < IDLE_FOR);
        idle.pop()
    }

    fn put_back(&self, connection: AsyncSmtpConnection, mails: u32) {
        if connection.has_broken() || mails >= MAILS_PER_CONNECTION {
            return;
        }
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        idle.retain(|c| c.since.elapsed() < IDLE_FOR);
        if idle.len() < MAX_IDLE {
            idle.push(Idle {
                connection,
                since: Instant::now(),
                mails,
            });
        }
    }

    /// A new connection, as lettre's transport opens one: TLS from the start or upgraded with
    /// `STARTTLS`, then `AUTH` when the URL holds credentials.
    async fn connect(&self) -> Result<AsyncSmtpConnection, Error> {
        let s = &self.server;
        let wrapped = match &s.tls {
            Tls::Wrapper(parameters) => Some(parameters.clone()),
            _ => None,
        };
        let mut connection = AsyncSmtpConnection::connect_tokio1(
            (s.host.as_str(), s.port),
            Some(s.timeout),
            &s.hello_name,
            wrapped,
            None,
        )
        .await?;
        match &s.tls {
            Tls::Required(parameters) => {
                connection
                    .starttls(parameters.clone(), &s.hello_name)
                    .await?;
            }
            Tls::Opportunistic(parameters) if connection.can_starttls() => {
                connection
                    .starttls(parameters.clone(), &s.hello_name)
                    .await?;
            }
            _ => {}
        }
        if let Some(credentials) = &s.credentials {
            connection.auth(DEFAULT_MECHANISMS, credentials).await?;
        }
        Ok(connection)
    }
}

/// Why a send over [`Connections`] failed.
#[derive(Debug)]
pub enum Failure {
    /// lettre's error: the server's refusal, or a connection that failed.
    Smtp(Error),
    /// A reply that is not the one its command calls for (a stray line put the replies out of
    /// step): the connection is dropped and the mail is not counted as sent.
    OutOfStep,
    /// The mail needs an extension the server does not offer.
    Unsupported(&'static str),
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        Self::Smtp(e)
    }
}

/// Whether `reply` is positive and one of `codes`: a positive reply of another code is a
/// reply to some other command. A refusal is the server's answer, passed on.
fn expect(reply: Result<Response, Error>, codes: &[u16]) -> Result<bool, Failure> {
    let reply = reply?;
    Ok(codes.iter().any(|&c| reply.has_code(c)))
}

/// `MAIL FROM`, with what lettre's own send asks for: `SMTPUTF8` when an address is not
/// ASCII, `8BITMIME` when the mail is not (ours are 7-bit, see `readable_body`), refused here
/// when the server does not offer it. `Ok(false)`: the reply was out of step.
async fn begin(
    connection: &mut AsyncSmtpConnection,
    envelope: &Envelope,
    email: &[u8],
) -> Result<bool, Failure> {
    let mut parameters = Vec::new();
    if !envelope
        .from()
        .into_iter()
        .chain(envelope.to())
        .all(|a: &lettre::Address| AsRef::<str>::as_ref(a).is_ascii())
    {
        if !connection
            .server_info()
            .supports_feature(Extension::SmtpUtfEight)
        {
            return Err(Failure::Unsupported("SMTPUTF8"));
        }
        parameters.push(MailParameter::SmtpUtfEight);
    }
    if !email.is_ascii() {
        if !connection
            .server_info()
            .supports_feature(Extension::EightBitMime)
        {
            return Err(Failure::Unsupported("8BITMIME"));
        }
        parameters.push(MailParameter::Body(MailBodyParameter::EightBitMime));
    }
    expect(
        connection
            .command(Mail::new(envelope.from().cloned(), parameters))
            .await,
        &[250],
    )
}

/// `RCPT TO` for each recipient, `DATA` and the mail: the rest of a transaction, each reply
/// checked for the code its command calls for. The mail itself is sent only after `354`.
async fn finish(
    connection: &mut AsyncSmtpConnection,
    envelope: &Envelope,
    email: &[u8],
) -> Result<Response, Failure> {
    for to in envelope.to() {
        if !expect(
            connection.command(Rcpt::new(to.clone(), vec![])).await,
            &[250, 251],
        )? {
            return Err(Failure::OutOfStep);
        }
    }
    if !expect(connection.command(Data).await, &[354])? {
        return Err(Failure::OutOfStep);
    }
    let response = connection.message(email).await?;
    if response.code().to_string().starts_with('2') {
        Ok(response)
    } else {
        Err(Failure::OutOfStep)
    }
}

impl Server {
    /// Reads an SMTP URL as lettre's `AsyncSmtpTransport::from_url` does: `smtp://` plain (port
    /// 25), `?tls=required` or `?tls=opportunistic` STARTTLS (587), `smtps://` TLS from the start
    /// (465); credentials (percent-decoded) in the user and password; a path names the `EHLO`
    /// domain. The test `urls_are_read_as_lettre_reads_them` holds the two together.
    pub fn from_url(raw: &str, timeout: Duration) -> Result<Self, BadUrl> {
        use lettre::transport::smtp::client::TlsParameters;
        use lettre::transport::smtp::{SMTP_PORT, SUBMISSIONS_PORT, SUBMISSION_PORT};

        let url = url::Url::parse(raw).map_err(|_| BadUrl)?;
        let tls_for = |host: &str| TlsParameters::new(host.to_owned()).map_err(|_| BadUrl);
        let host = url.host_str().ok_or(BadUrl)?.to_owned();
        let tls = url
            .query_pairs()
            .find(|(k, _)| k == "tls")
            .map(|(_, v)| v.into_owned());
        let (tls, default_port) = match (url.scheme(), tls.as_deref()) {
            ("smtp", None) => (Tls::None, SMTP_PORT),
            ("smtp", Some("required")) => (Tls::Required(tls_for(&host)?), SUBMISSION_PORT),
            ("smtp", Some("opportunistic")) => {
                (Tls::Opportunistic(tls_for(&host)?), SUBMISSION_PORT)
            }
            ("smtps", _) => (Tls::Wrapper(tls_for(&host)?), SUBMISSIONS_PORT),
            _ => return Err(BadUrl),
        };
        let hello_name = match url.path().trim_matches('/') {
            "" => ClientId::default(),
            name => ClientId::Domain(name.to_owned()),
        };
        let decode = |s: &str| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8()
                .map(|s| s.into_owned())
                .map_err(|_| BadUrl)
        };
        let credentials = match url.password() {
            Some(password) => Some(Credentials::new(decode(url.username())?, decode(password)?)),
            None => None,
        };
        Ok(Self {
            port: url.port().unwrap_or(default_port),
            host,
            tls,
            hello_name,
            credentials,
            timeout,
        })
    }
}

/// An SMTP URL that cannot be used (never echoed: it may hold a password).
#[derive(Debug)]
pub struct BadUrl;

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    use tokio::net::TcpListener;
    use twofold_domain::channel::{Channel, Purpose};
    use twofold_services::ports::{CodeSender, OutgoingCode, SendError};
    use zeroize::Zeroizing;

    use super::*;
    use crate::delivery::{SmtpSender, SmtpSettings};

    /// How the scripted server treats each mail.
    #[derive(Clone, Copy)]
    enum Script {
        /// Answers the first mail's data only after this long; the others at once.
        LateFirstReply(Duration),
        /// Closes the connection right after accepting each mail, without a word.
        CloseAfterEachMail,
        /// Accepts the first mail with a line too many, then refuses every mail.
        StrayLineThenRefuse,
        /// Accepts the first mail, then never answers on that connection again.
        SilentAfterFirstMail,
    }

    /// A scripted SMTP server: returns its address and counters of connections and mails.
    async fn server(script: Script) -> (String, Arc<AtomicUsize>, Arc<AtomicUsize>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("smtp://{}", listener.local_addr().unwrap());
        let (connections, mails) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let counters = (connections.clone(), mails.clone());
        tokio::spawn(async move {
            loop {
                let (socket, _) = listener.accept().await.unwrap();
                counters.0.fetch_add(1, Ordering::SeqCst);
                let mails = counters.1.clone();
                tokio::spawn(async move {
                    let (read, mut write) = socket.into_split();
                    let mut lines = BufReader::new(read).lines();
                    write.write_all(b"220 scripted\r\n").await.unwrap();
                    let mut in_data = false;
                    while let Ok(Some(line)) = lines.next_line().await {
                        if in_data {
                            if line != "." {
                                continue;
                            }
                            in_data = false;
                            let n = mails.fetch_add(1, Ordering::SeqCst) + 1;
                            if let (Script::LateFirstReply(late), 1) = (script, n) {
                                tokio::time::sleep(late).await;
                            }
                            let reply = match (script, n) {
                                (Script::StrayLineThenRefuse, 1) => {
                                    "250 queued as MAIL0001\r\n250 stray\r\n".to_owned()
                                }
                                (Script::StrayLineThenRefuse, _) => {
                                    format!("554 rejected MAIL{n:04}\r\n")
                                }
                                _ => format!("250 2.0.0 Ok: queued as MAIL{n:04}\r\n"),
                            };
                            let _ = write.write_all(reply.as_bytes()).await;
                            match script {
                                Script::CloseAfterEachMail => return,
                                Script::SilentAfterFirstMail if n == 1 => {
                                    std::future::pending::<()>().await;
                                }
                                _ => {}
                            }
                            continue;
                        }
                        let reply: &[u8] = match line.get(..4).unwrap_or("") {
                            "EHLO" => b"250-scripted\r\n250 8BITMIME\r\n",
                            "DATA" => {
                                in_data = true;
                                b"354 go ahead\r\n"
                            }
                            "QUIT" => b"221 bye\r\n",
                            _ => b"250 ok\r\n",
                        };
                        if write.write_all(reply).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        (url, connections, mails)
    }

    fn sender(url: String, timeout: Duration) -> SmtpSender {
        SmtpSender::new(&SmtpSettings {
            url: Zeroizing::new(url),
            from: "Twofold <no-reply@twofold.test>".parse().unwrap(),
            timeout,
        })
        .unwrap()
    }

    fn code(n: u32) -> OutgoingCode {
        OutgoingCode {
            challenge_id: format!("challenge-{n}"),
            tenant_name: "Acme".into(),
            channel: Channel::Email,
            purpose: Purpose::SignIn,
            destination: Zeroizing::new("amy@example.com".into()),
            code: Zeroizing::new(format!("{n:06}")),
            valid_seconds: 600,
            language: twofold_domain::Language::En,
            web_host: None,
        }
    }

    fn queue_id(receipt: &twofold_services::ports::DeliveryReceipt) -> &str {
        receipt.provider_message_id.as_deref().unwrap_or_default()
    }

    #[tokio::test]
    async fn mails_in_a_row_share_one_connection() {
        let (url, connections, mails) = server(Script::LateFirstReply(Duration::ZERO)).await;
        let sender = sender(url, Duration::from_secs(5));
        for n in 1..=3 {
            let receipt = sender.send(&code(n)).await.unwrap();
            assert_eq!(queue_id(&receipt), format!("MAIL{n:04}"));
        }
        assert_eq!(mails.load(Ordering::SeqCst), 3);
        assert_eq!(connections.load(Ordering::SeqCst), 1);
    }

    /// A send cut by the deadline leaves its reply unread on its connection: that connection
    /// must never carry another mail, or every later reply would be one behind (a refusal
    /// read as the previous mail's acceptance).
    #[tokio::test]
    async fn a_send_cut_by_the_deadline_never_lends_its_connection() {
        let timeout = Duration::from_millis(100);
        let (url, connections, mails) = server(Script::LateFirstReply(timeout * 5)).await;
        let sender = sender(url, timeout);
        let e = sender.send(&code(1)).await.unwrap_err();
        assert!(matches!(e, SendError::Retryable(_)), "{e}");
        // The first reply arrives now, on the connection the deadline dropped.
        tokio::time::sleep(timeout * 3).await;
        let receipt = sender.send(&code(2)).await.unwrap();
        assert_eq!(
            queue_id(&receipt),
            "MAIL0002",
            "its own reply, not the late one"
        );
        assert_eq!(mails.load(Ordering::SeqCst), 2);
        assert_eq!(connections.load(Ordering::SeqCst), 2);
    }

    /// A server that closed a kept connection: the next mail goes over a new one instead of
    /// failing (nothing of it had been sent).
    #[tokio::test]
    async fn a_connection_the_server_closed_is_replaced_not_failed() {
        let (url, connections, mails) = server(Script::CloseAfterEachMail).await;
        let sender = sender(url, Duration::from_secs(5));
        for n in 1..=3 {
            let receipt = sender.send(&code(n)).await.unwrap();
            assert_eq!(queue_id(&receipt), format!("MAIL{n:04}"));
        }
        assert_eq!(mails.load(Ordering::SeqCst), 3);
        assert_eq!(connections.load(Ordering::SeqCst), 3);
    }

    /// A line too many puts every later reply one behind: the mail after it must not be
    /// recorded as delivered (its `DATA` would read `RCPT TO`'s `250`), and nothing of it is
    /// sent before the server's `354`.
    #[tokio::test]
    async fn a_reply_out_of_step_fails_the_mail_and_ends_the_connection() {
        let (url, connections, mails) = server(Script::StrayLineThenRefuse).await;
        let sender = sender(url, Duration::from_secs(5));
        let receipt = sender.send(&code(1)).await.unwrap();
        assert_eq!(queue_id(&receipt), "MAIL0001");
        let e = sender.send(&code(2)).await.unwrap_err();
        assert!(matches!(e, SendError::Retryable(_)), "{e}");
        assert_eq!(mails.load(Ordering::SeqCst), 1, "the mail was never sent");
        // The next mail goes over a new connection, and reads its own refusal.
        let e = sender.send(&code(3)).await.unwrap_err();
        assert!(matches!(e, SendError::Permanent(_)), "{e}");
        assert_eq!(connections.load(Ordering::SeqCst), 2);
    }

    /// A kept connection that went silent (a firewall dropped the flow) costs one step's
    /// timeout, not the send: the mail goes over a new connection.
    #[tokio::test]
    async fn a_kept_connection_that_went_silent_is_replaced_in_time() {
        let timeout = Duration::from_millis(200);
        let (url, connections, _) = server(Script::SilentAfterFirstMail).await;
        let sender = sender(url, timeout);
        sender.send(&code(1)).await.unwrap();
        let receipt = sender.send(&code(2)).await.unwrap();
        assert_eq!(queue_id(&receipt), "MAIL0002");
        assert_eq!(connections.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn urls_are_read_as_lettre_reads_them() {
        let second = Duration::from_secs(1);
        let plain = Server::from_url("smtp://mail.example:2525", second).unwrap();
        assert_eq!((plain.host.as_str(), plain.port), ("mail.example", 2525));
        assert!(matches!(plain.tls, Tls::None) && plain.credentials.is_none());

        let starttls =
            Server::from_url("smtp://us%40er:p%2Fss@mail.example?tls=required", second).unwrap();
        assert_eq!(starttls.port, 587);
        assert!(matches!(starttls.tls, Tls::Required(_)));
        assert_eq!(
            starttls.credentials,
            Some(Credentials::new("us@er".into(), "p/ss".into()))
        );
        let opportunistic = Server::from_url(
            "smtp://mail.example/relay.example?tls=opportunistic",
            second,
        )
        .unwrap();
        assert!(matches!(opportunistic.tls, Tls::Opportunistic(_)));
        assert_eq!(
            opportunistic.hello_name,
            ClientId::Domain("relay.example".into())
        );
        let wrapped = Server::from_url("smtps://mail.example", second).unwrap();
        assert_eq!(wrapped.port, 465);
        assert!(matches!(wrapped.tls, Tls::Wrapper(_)));

        for bad in [
            "http://mail.example",
            "smtp://mail.example?tls=maybe",
            "smtp://",
            "x",
        ] {
            assert!(Server::from_url(bad, second).is_err(), "{bad}");
        }
    }
}
