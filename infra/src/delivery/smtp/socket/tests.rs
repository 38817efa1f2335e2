//! The watched socket against scripted servers, in clear and over TLS (a self-signed
//! certificate the client is given as its root).

use std::sync::Arc;
use std::time::Duration;

use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio_rustls::rustls;
use twofold_domain::channel::{Channel, Purpose};
use twofold_services::ports::{CodeSender, OutgoingCode, SendError};
use zeroize::Zeroizing;

use crate::delivery::smtp::pool::Server;
use crate::delivery::SmtpSender;

/// How the scripted server behaves.
#[derive(Clone, Copy, PartialEq)]
enum Script {
    /// `STARTTLS`, then an honest session inside TLS.
    StartTls,
    /// `STARTTLS`, with what an attacker on the path appends in clear to its `220`: the
    /// replies to a whole mail (`EHLO`, `MAIL`, `RCPT`, `DATA`, the data). Inside TLS the
    /// real server refuses everything.
    StartTlsInjected,
    /// As above, the script appended to the `EHLO` reply before `STARTTLS` was asked for.
    InjectedBeforeStartTls,
    /// `STARTTLS`'s `220` ended by a bare LF, then (in a later read, if the pause between the
    /// two writes lets the client read in between) the rest of lettre's line and the script.
    BareLfThenInjected,
    /// TLS from the first byte, then an honest session.
    Wrapped,
    /// TLS from the first byte; the `EHLO` reply never ends its line.
    WrappedEndless,
    /// In clear; the `EHLO` reply never ends its line.
    ClearEndless,
}

const INJECTED: &[u8] =
    b"250-injected\r\n250 8BITMIME\r\n250 ok\r\n250 ok\r\n354 go\r\n250 queued as FAKE0001\r\n";

/// Starts the server; returns its port and the certificate the client trusts.
async fn server(script: Script) -> (u16, Vec<u8>) {
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let der = certified.cert.der().to_vec();
    let key =
        rustls::pki_types::PrivateKeyDer::try_from(certified.signing_key.serialize_der()).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![der.clone().into()], key)
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                // The client may hang up at any step (that is what most scripts test).
                let _ = connection(tcp, acceptor, script).await;
            });
        }
    });
    (port, der)
}

/// One connection of the scripted server.
async fn connection(
    mut tcp: tokio::net::TcpStream,
    acceptor: tokio_rustls::TlsAcceptor,
    script: Script,
) -> std::io::Result<()> {
    if matches!(script, Script::Wrapped | Script::WrappedEndless) {
        let tls = acceptor.accept(tcp).await?;
        session(tls, true, script == Script::WrappedEndless, false).await;
        return Ok(());
    }
    if script == Script::ClearEndless {
        session(tcp, true, true, false).await;
        return Ok(());
    }
    tcp.write_all(b"220 scripted\r\n").await?;
    read_line(&mut tcp).await?; // EHLO
    let mut ehlo = b"250-scripted\r\n250 STARTTLS\r\n".to_vec();
    if script == Script::InjectedBeforeStartTls {
        ehlo.extend_from_slice(b"220 go ahead\r\n");
        ehlo.extend_from_slice(INJECTED);
    }
    tcp.write_all(&ehlo).await?;
    read_line(&mut tcp).await?; // STARTTLS
    match script {
        Script::StartTlsInjected => {
            let mut reply = b"220 go ahead\r\n".to_vec();
            reply.extend_from_slice(INJECTED);
            tcp.write_all(&reply).await?;
        }
        Script::InjectedBeforeStartTls => {}
        Script::BareLfThenInjected => {
            tcp.write_all(b"220 go ahead\n").await?;
            tokio::time::sleep(Duration::from_millis(100)).await;
            let mut rest = b"x\r\n".to_vec();
            rest.extend_from_slice(INJECTED);
            tcp.write_all(&rest).await?;
        }
        _ => tcp.write_all(b"220 go ahead\r\n").await?,
    }
    let tls = acceptor.accept(tcp).await?;
    session(tls, false, false, script != Script::StartTls).await;
    Ok(())
}

/// Reads one line byte by byte, so nothing after it is taken from the socket.
async fn read_line(tcp: &mut tokio::net::TcpStream) -> std::io::Result<()> {
    use tokio::io::AsyncReadExt;
    while tcp.read_u8().await? != b'\n' {}
    Ok(())
}

/// An SMTP session from its greeting (none inside `STARTTLS`'s TLS): honest, refusing
/// everything, or answering `EHLO` with a line that never ends.
async fn session<S: AsyncRead + AsyncWrite + Unpin>(
    stream: S,
    greet: bool,
    endless: bool,
    refuse: bool,
) {
    let (read, mut write) = tokio::io::split(stream);
    let mut lines = BufReader::new(read).lines();
    if greet {
        let _ = write.write_all(b"220 scripted\r\n").await;
    }
    let mut in_data = false;
    while let Ok(Some(line)) = lines.next_line().await {
        if in_data {
            if line == "." {
                in_data = false;
                let _ = write.write_all(b"250 queued as REAL0001\r\n").await;
            }
            continue;
        }
        let verb = line.get(..4).unwrap_or("").to_ascii_uppercase();
        if endless && verb == "EHLO" {
            let chunk = vec![b'x'; 64 * 1024];
            for _ in 0..64 {
                if write.write_all(&chunk).await.is_err() {
                    return;
                }
            }
            std::future::pending::<()>().await;
        }
        let reply: &[u8] = match verb.as_str() {
            _ if refuse => b"554 refused\r\n",
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
}

async fn send(script: Script) -> Result<String, SendError> {
    let (port, der) = server(script).await;
    let parameters = TlsParameters::builder("localhost".to_owned())
        .add_root_certificate(Certificate::from_der(der).unwrap())
        .build_rustls()
        .unwrap();
    let server = Server {
        host: "127.0.0.1".into(),
        port,
        tls: match script {
            Script::Wrapped | Script::WrappedEndless => Tls::Wrapper(parameters),
            Script::ClearEndless => Tls::None,
            _ => Tls::Required(parameters),
        },
        hello_name: ClientId::Domain("acme.example".into()),
        credentials: None,
        timeout: Duration::from_secs(5),
    };
    let from = "Acme <no-reply@acme.example>".parse().unwrap();
    let code = OutgoingCode {
        challenge_id: "challenge-1".into(),
        tenant_name: "Acme".into(),
        channel: Channel::Email,
        purpose: Purpose::SignIn,
        destination: Zeroizing::new("amy@example.com".into()),
        code: Zeroizing::new("123456".into()),
        valid_seconds: 600,
        language: twofold_domain::Language::En,
        web_host: None,
    };
    let receipt = SmtpSender::once(server, from, Duration::from_secs(5))
        .send(&code)
        .await?;
    Ok(receipt.provider_message_id.unwrap_or_default())
}

#[tokio::test]
async fn starttls_and_tls_from_the_start_carry_a_mail() {
    assert_eq!(send(Script::StartTls).await.unwrap(), "REAL0001");
    assert_eq!(send(Script::Wrapped).await.unwrap(), "REAL0001");
}

/// Replies injected in clear after `STARTTLS`'s `220` would answer for the server inside
/// TLS: the server refuses the mail, and the injected script accepts it as `FAKE0001`.
#[tokio::test]
async fn replies_injected_before_tls_fail_the_connection_not_answer_inside_it() {
    for script in [
        Script::StartTlsInjected,
        Script::InjectedBeforeStartTls,
        Script::BareLfThenInjected,
    ] {
        let e = send(script).await.unwrap_err();
        assert!(
            matches!(&e, SendError::Retryable(m) if m.contains("more than a reply before TLS")),
            "{e}"
        );
    }
}

/// A reply line that never ends is cut at the budget, in clear and under TLS, instead of
/// filling memory until the deadline.
#[tokio::test]
async fn a_reply_line_without_an_end_is_cut_at_the_budget() {
    for script in [Script::ClearEndless, Script::WrappedEndless] {
        let e = send(script).await.unwrap_err();
        assert!(
            matches!(&e, SendError::Retryable(m) if m.contains("more than 256 KiB")),
            "{e}"
        );
    }
}

/// The reads of `chunks` in clear, `STARTTLS` sent or not: what each came to, up to a breach.
fn reads(starttls_sent: bool, chunks: &[&[u8]]) -> Vec<Result<super::Read, ()>> {
    let mut replies = super::Replies {
        starttls_sent,
        ..Default::default()
    };
    let mut out = Vec::new();
    for chunk in chunks {
        let read = replies.check(chunk).map_err(|_| ());
        let stop = read.is_err();
        out.push(read);
        if stop {
            break;
        }
    }
    out
}

#[test]
fn replies_end_where_lettre_ends_them_and_nothing_may_follow_one() {
    use super::Read::{Clear, TlsNext};
    // Split anywhere, multi-line, or with a bare code: fine.
    assert_eq!(
        reads(false, &[b"250-a\r\n250 START", b"TLS\r", b"\n"]),
        [Ok(Clear), Ok(Clear), Ok(Clear)]
    );
    assert_eq!(reads(false, &[b"250\r\n"]), [Ok(Clear)]);
    assert_eq!(
        reads(true, &[b"220 go", b" ahead\r", b"\n"]),
        [Ok(Clear), Ok(Clear), Ok(TlsNext)]
    );
    // Anything after a reply's end in the same read, or a line ended by a bare LF (lettre
    // reads on past it), fails.
    assert_eq!(reads(true, &[b"220 go ahead\r\n250 ok\r\n"]), [Err(())]);
    assert_eq!(reads(false, &[b"250-a\r\n250 b\r\n2"]), [Err(())]);
    assert_eq!(reads(true, &[b"220 go ahead\n"]), [Err(())]);
    assert_eq!(reads(false, &[b"250-a\nb c\r\n"]), [Err(())]);
}
