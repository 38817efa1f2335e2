//! The kept and one-time connections against a scripted SMTP server.

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
    /// Answers `MAIL FROM` with a line too many, and refuses the mail's data.
    StrayAfterMailThenRefuse,
    /// Accepts the first mail this late, and never answers `QUIT`.
    LateAndDeafToQuit(Duration),
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
                        if let (Script::LateFirstReply(late) | Script::LateAndDeafToQuit(late), 1) =
                            (script, n)
                        {
                            tokio::time::sleep(late).await;
                        }
                        let reply = match (script, n) {
                            (Script::StrayLineThenRefuse, 1) => {
                                "250 queued as MAIL0001\r\n250 stray\r\n".to_owned()
                            }
                            (Script::StrayLineThenRefuse | Script::StrayAfterMailThenRefuse, _) => {
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
                        "MAIL" if matches!(script, Script::StrayAfterMailThenRefuse) => {
                            b"250 ok\r\n250 stray\r\n"
                        }
                        "DATA" => {
                            in_data = true;
                            b"354 go ahead\r\n"
                        }
                        "QUIT" if matches!(script, Script::LateAndDeafToQuit(_)) => continue,
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

/// A tenant's server gets a connection per mail, with the same checks: a line too many in
/// one session (lettre's send would read `RCPT TO`'s `250` as the answer to `DATA`, send
/// the mail, read `354` as its acceptance and record a refused mail as delivered) fails
/// the mail before its data is sent.
#[tokio::test]
async fn a_connection_used_once_checks_every_reply_and_is_not_kept() {
    let (url, connections, mails) = server(Script::StrayAfterMailThenRefuse).await;
    let server_of = |url: &str| Server::from_url(url, Duration::from_secs(5)).unwrap();
    let from: lettre::message::Mailbox = "Acme <no-reply@acme.example>".parse().unwrap();
    let once = SmtpSender::once(server_of(&url), from.clone(), Duration::from_secs(5));
    let e = once.send(&code(1)).await.unwrap_err();
    assert!(matches!(e, SendError::Retryable(_)), "{e}");
    assert_eq!(mails.load(Ordering::SeqCst), 0, "the data was never sent");

    let (url, connections_b, _) = server(Script::LateFirstReply(Duration::ZERO)).await;
    let once = SmtpSender::once(server_of(&url), from, Duration::from_secs(5));
    for n in 1..=2 {
        once.send(&code(n)).await.unwrap();
    }
    assert_eq!(
        connections_b.load(Ordering::SeqCst),
        2,
        "one connection per mail"
    );
    assert_eq!(connections.load(Ordering::SeqCst), 1);
}

/// A mail accepted just before the deadline is delivered, whatever the server then does with
/// `QUIT`: waiting for its answer must not turn the send into a failure, and a second send.
#[tokio::test]
async fn a_server_deaf_to_quit_does_not_fail_a_mail_it_accepted() {
    let timeout = Duration::from_millis(200);
    let (url, _, mails) = server(Script::LateAndDeafToQuit(timeout * 2)).await;
    let server = Server::from_url(&url, timeout).unwrap();
    let from: lettre::message::Mailbox = "Acme <no-reply@acme.example>".parse().unwrap();
    let receipt = SmtpSender::once(server, from, timeout)
        .send(&code(1))
        .await
        .unwrap();
    assert_eq!(queue_id(&receipt), "MAIL0001");
    assert_eq!(mails.load(Ordering::SeqCst), 1);
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
