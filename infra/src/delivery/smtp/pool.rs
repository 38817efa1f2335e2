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
//! Kept only for the operator's server, configured by the operator: tenants' servers get a
//! connection per mail ([`Connections::once`]), resolved and checked at each send
//! (`tenant::smtp`), with the same checks of every reply.
//!
//! A connection idle for a while may have been closed by the server. One that was idle for
//! more than [`CHECK_AFTER`] is asked with `NOOP` first; one that fails its `NOOP` or its
//! `MAIL FROM` in any way (no reply in time, a refusal, a reply out of step) is dropped and the
//! mail goes over a new connection: nothing of it had been sent.
//!
//! Every reply of a mail's transaction must carry the code its command calls for (`250` to
//! `MAIL FROM`, `250`/`251` to `RCPT TO`, `354` to `DATA`, `2xx` to the mail): a server that
//! sends a line too many would otherwise shift every later reply by one, and a refused mail
//! would read as accepted. lettre's send accepts any positive reply. The connection set-up,
//! `EHLO`, `STARTTLS` and `AUTH`, is lettre's, over a socket of ours ([`super::socket`]) that
//! closes two gaps lettre leaves there.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use lettre::address::Envelope;
use lettre::transport::smtp::authentication::{Credentials, DEFAULT_MECHANISMS};
use lettre::transport::smtp::client::{AsyncSmtpConnection, Tls};
use lettre::transport::smtp::commands::{Data, Mail, Noop, Rcpt};
use lettre::transport::smtp::extension::{ClientId, Extension, MailBodyParameter, MailParameter};
use lettre::transport::smtp::response::Response;
use lettre::transport::smtp::Error;

use super::socket::{self, Watch};

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
    watch: Watch,
    since: Instant,
    mails: u32,
}

pub struct Connections {
    server: Server,
    idle: Mutex<Vec<Idle>>,
    /// Whether connections are kept between sends (the operator's server) or used once (a
    /// tenant's, connected at an address checked for this send).
    keep: bool,
}

/// How long a connection used once waits for the server's answer to `QUIT`.
const QUIT_WAIT: Duration = Duration::from_secs(1);

impl Connections {
    /// Connections kept open between sends.
    pub fn new(server: Server) -> Self {
        Self {
            server,
            idle: Mutex::new(Vec::new()),
            keep: true,
        }
    }

    /// A connection per send, closed with `QUIT` (waited for briefly) once the mail is sent.
    pub fn once(server: Server) -> Self {
        Self {
            keep: false,
            ..Self::new(server)
        }
    }

    /// Sends `email` (already formatted) to the envelope's recipients. The caller bounds the
    /// whole send with its deadline; a send it drops takes its connection with it.
    pub async fn send(&self, envelope: &Envelope, email: &[u8]) -> Result<Response, Failure> {
        if let Some(mut idle) = self.take().filter(|_| self.keep) {
            idle.watch.refill();
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
                self.put_back(idle.connection, idle.watch, idle.mails + 1);
                return Ok(response);
            }
        }
        let (mut connection, watch) = self.connect().await?;
        if !begin(&mut connection, envelope, email).await? {
            return Err(Failure::OutOfStep);
        }
        let response = finish(&mut connection, envelope, email).await?;
        if self.keep {
            self.put_back(connection, watch, 1);
        } else {
            // The mail is accepted: `QUIT` goes on by itself, so the caller's deadline cannot
            // turn that into a failure (and a second send). A server that never answers costs
            // a task and a socket for this long, never for ever.
            tokio::spawn(async move {
                let _ = tokio::time::timeout(QUIT_WAIT, connection.quit()).await;
            });
        }
        Ok(response)
    }

    /// The most recently used idle connection, closing those idle for too long.
    fn take(&self) -> Option<Idle> {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        idle.retain(|c| c.since.elapsed() < IDLE_FOR);
        idle.pop()
    }

    fn put_back(&self, connection: AsyncSmtpConnection, watch: Watch, mails: u32) {
        if connection.has_broken() || mails >= MAILS_PER_CONNECTION {
            return;
        }
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        idle.retain(|c| c.since.elapsed() < IDLE_FOR);
        if idle.len() < MAX_IDLE {
            idle.push(Idle {
                connection,
                watch,
                since: Instant::now(),
                mails,
            });
        }
    }

    /// A new connection, as lettre's transport opens one but over a watched socket: TLS from
    /// the start or upgraded with `STARTTLS`, then `AUTH` when the URL holds credentials.
    async fn connect(&self) -> Result<(AsyncSmtpConnection, Watch), Failure> {
        let s = &self.server;
        let in_clear = matches!(s.tls, Tls::Required(_) | Tls::Opportunistic(_));
        let (socket, watch) = socket::dial(&s.host, s.port, s.timeout, in_clear)
            .await
            .map_err(Failure::Connect)?;
        let stream = match &s.tls {
            Tls::Wrapper(parameters) => socket::with_tls(socket, parameters.clone()).await?,
            _ => Box::new(socket),
        };
        let mut connection =
            AsyncSmtpConnection::connect_with_transport(stream, &s.hello_name).await?;
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
        watch.set_up();
        if let Some(credentials) = &s.credentials {
            connection.auth(DEFAULT_MECHANISMS, credentials).await?;
        }
        Ok((connection, watch))
    }
}

/// Why a send over [`Connections`] failed.
#[derive(Debug)]
pub enum Failure {
    /// lettre's error: the server's refusal, or a connection that failed.
    Smtp(Error),
    /// No connection could be opened.
    Connect(std::io::Error),
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
mod tests;
