//! Email codes over SMTP with `lettre`.
//!
//! Each mail is `multipart/alternative` with a plain-text and an HTML part, both written by
//! [`render`] in the user's language (naming the tenant and how long the code is valid). Its `Message-ID` is derived from the challenge
//! id (`<challenge-id@from-domain>`), so a resend of the same challenge after a crash is the
//! same message to every mail system that deduplicates by Message-ID, and recognisable to a
//! person. Text parts are 7bit when they can be, quoted-printable otherwise, so the code stays
//! readable in the raw message.

use std::time::Duration;

use async_trait::async_trait;
use lettre::message::header::{
    ContentTransferEncoding, ContentType, Header, HeaderName, HeaderValue,
};
use lettre::message::{Body, Mailbox, MultiPart, SinglePart};
use lettre::{Address, Message};
use twofold_services::ports::{CodeSender, DeliveryReceipt, OutgoingCode, SendError};

use super::{render, BuildError, SmtpSettings};
use crate::config::ConfigError;

mod notice;
pub(crate) mod pool;
mod socket;

/// Sends email codes through one SMTP server.
pub struct SmtpSender {
    connections: pool::Connections,
    from: Mailbox,
    timeout: Duration,
}

impl std::fmt::Debug for SmtpSender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpSender")
            .field("from", &self.from.to_string())
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl SmtpSender {
    /// A sender for the server of `settings.url` (`smtp://` plain or with `?tls=required` /
    /// `?tls=opportunistic` STARTTLS, `smtps://` implicit TLS; credentials in the URL), with
    /// connections kept between sends. Connecting, and the first steps over a kept connection,
    /// are bounded by `settings.timeout`; a whole send by three times that.
    pub fn new(settings: &SmtpSettings) -> Result<Self, BuildError> {
        let server = pool::Server::from_url(&settings.url, settings.timeout).map_err(|_| {
            ConfigError::Malformed {
                var: "TWOFOLD_SMTP_URL",
                expected: "an SMTP URL such as smtp://127.0.0.1:2525",
            }
        })?;
        Ok(Self {
            connections: pool::Connections::new(server),
            from: settings.from.clone(),
            timeout: settings.timeout,
        })
    }

    /// A sender of one mail over a connection to `server` (a tenant's, at an address checked
    /// just before), closed after the send.
    pub(crate) fn once(server: pool::Server, from: Mailbox, timeout: Duration) -> Self {
        Self {
            connections: pool::Connections::once(server),
            from,
            timeout,
        }
    }

    /// The mail for `message`, as it will be sent. Public so tests can inspect it without a
    /// server.
    pub fn compose(&self, message: &OutgoingCode) -> Result<Message, SendError> {
        let text = render::email(message);
        self.mail(
            &message.destination,
            &message.challenge_id,
            &text.subject,
            text.plain,
            text.html,
        )
    }

    /// One `multipart/alternative` mail (a code's or a notice's) to `destination`, its
    /// `Message-ID` made from `id`.
    fn mail(
        &self,
        destination: &str,
        id: &str,
        subject: &str,
        plain: String,
        html: String,
    ) -> Result<Message, SendError> {
        let to: Address = destination.trim().parse().map_err(|_| {
            SendError::Permanent("the email address is not a valid address".to_owned())
        })?;
        let build_error = |_| SendError::Permanent("cannot build the email".to_owned());
        Message::builder()
            .from(self.from.clone())
            .to(Mailbox::new(None, to))
            .subject(literal_header_text(subject))
            .message_id(Some(message_id(id, self.from.email.domain())))
            .header(AutoSubmitted)
            .multipart(
                MultiPart::alternative()
                    .singlepart(
                        SinglePart::builder()
                            .header(ContentType::TEXT_PLAIN)
                            .body(readable_body(plain)),
                    )
                    .singlepart(
                        SinglePart::builder()
                            .header(ContentType::TEXT_HTML)
                            .body(readable_body(html)),
                    ),
            )
            .map_err(build_error)
    }

    /// Sends `mail`, whose `Message-ID` was made from `id`: the receipt is the server's queue
    /// id, else that `Message-ID`.
    async fn transmit(&self, mail: Message, id: &str) -> Result<DeliveryReceipt, SendError> {
        let message_id = message_id(id, self.from.email.domain());
        let send = async {
            self.connections
                .send(mail.envelope(), &mail.formatted())
                .await
                .map_err(|e| match e {
                    pool::Failure::Smtp(e) => classify(&e),
                    pool::Failure::Connect(e) => SendError::Retryable(format!(
                        "cannot connect to the SMTP server ({})",
                        e.kind()
                    )),
                    pool::Failure::OutOfStep => SendError::Retryable(
                        "the SMTP server's replies were out of step".to_owned(),
                    ),
                    pool::Failure::Unsupported(extension) => SendError::Permanent(format!(
                        "the SMTP server does not offer {extension}, which this mail needs"
                    )),
                })
        };
        let sent = tokio::time::timeout(self.timeout * 3, send)
            .await
            .map_err(|_| {
                SendError::Retryable(format!(
                    "the SMTP server did not finish within {:.1} s",
                    (self.timeout * 3).as_secs_f64()
                ))
            })?;
        let response = sent?;
        Ok(DeliveryReceipt {
            provider_message_id: Some(queue_id(response.message()).unwrap_or(message_id)),
        })
    }
}

#[async_trait]
impl CodeSender for SmtpSender {
    async fn send(&self, message: &OutgoingCode) -> Result<DeliveryReceipt, SendError> {
        self.transmit(self.compose(message)?, &message.challenge_id)
            .await
    }
}

/// Maps a `lettre` error to the port's classification. Never uses the server's reply text: it
/// often quotes the recipient address.
fn classify(e: &lettre::transport::smtp::Error) -> SendError {
    if let Some(breach) = socket::Breach::behind(e) {
        return SendError::Retryable(breach.to_string());
    }
    if let Some(code) = e.status() {
        if e.is_permanent() {
            return SendError::Permanent(format!("the SMTP server refused the message ({code})"));
        }
        return SendError::Retryable(format!("the SMTP server deferred the message ({code})"));
    }
    if e.is_timeout() {
        SendError::Retryable("the SMTP server did not answer in time".to_owned())
    } else if e.is_tls() {
        SendError::Retryable("TLS with the SMTP server failed".to_owned())
    } else if e.is_client() {
        SendError::Permanent("the SMTP client could not send this message".to_owned())
    } else if e.is_response() {
        SendError::Retryable("the SMTP server's reply could not be understood".to_owned())
    } else {
        SendError::Retryable("cannot connect to the SMTP server".to_owned())
    }
}

/// The server's queue id from a `250` reply (`queued as ABC123`, `id=ABC123`), if it gave one
/// in a recognisable form. Only the id is kept, never the rest of the reply.
fn queue_id<'a>(lines: impl Iterator<Item = &'a str>) -> Option<String> {
    let valid = |id: &str| {
        (4..=100).contains(&id.len())
            && id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    };
    for line in lines {
        for marker in ["queued as ", "id=", "Queued as "] {
            if let Some(rest) = line.split(marker).nth(1) {
                let id: String = rest
                    .chars()
                    .take_while(|c| !c.is_whitespace() && *c != ',' && *c != ')')
                    .collect();
                if valid(&id) {
                    return Some(id);
                }
            }
        }
    }
    None
}

/// `<challenge-id@domain>`: the same for every send of one challenge.
pub fn message_id(challenge_id: &str, domain: &str) -> String {
    let left: String = challenge_id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '-'
            }
        })
        .collect();
    let left = left.trim_matches('.');
    format!("<{left}@{domain}>")
}

/// Header text that every mail client shows exactly as given. lettre encodes only words that
/// are not plain ASCII, so a tenant named `=?utf-8?b?UGF5UGFs?=` would reach the Subject raw and
/// be shown decoded ("PayPal"). Text that holds `=?` is therefore sent wholly as RFC 2047
/// encoded words of its own, which decode back to the literal characters.
fn literal_header_text(text: &str) -> String {
    use base64::Engine as _;
    if !text.contains("=?") {
        return text.to_owned();
    }
    // At most 45 bytes per word keeps each encoded word within RFC 2047's 75 characters.
    let mut words = Vec::new();
    let mut chunk = String::new();
    for c in text.chars() {
        if chunk.len() + c.len_utf8() > 45 {
            words.push(std::mem::take(&mut chunk));
        }
        chunk.push(c);
    }
    words.push(chunk);
    words
        .iter()
        .map(|w| {
            format!(
                "=?utf-8?b?{}?=",
                base64::engine::general_purpose::STANDARD.encode(w)
            )
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// 7bit when the text allows it, quoted-printable otherwise (never base64, so the code stays
/// readable in the raw mail).
fn readable_body(text: String) -> Body {
    match Body::new_with_encoding(text, ContentTransferEncoding::SevenBit) {
        Ok(body) => body,
        Err(bytes) => match String::from_utf8(bytes) {
            Ok(text) => Body::new_with_encoding(text, ContentTransferEncoding::QuotedPrintable)
                .unwrap_or_else(Body::new),
            Err(e) => Body::new(e.into_bytes()),
        },
    }
}

/// `Auto-Submitted: auto-generated` (RFC 3834): no out-of-office replies to code mails.
#[derive(Debug, Clone, Copy)]
struct AutoSubmitted;

impl Header for AutoSubmitted {
    fn name() -> HeaderName {
        HeaderName::new_from_ascii_str("Auto-Submitted")
    }

    fn parse(_: &str) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        Ok(Self)
    }

    fn display(&self) -> HeaderValue {
        HeaderValue::new(Self::name(), "auto-generated".to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use twofold_domain::channel::{Channel, Purpose};
    use zeroize::Zeroizing;

    fn sender() -> SmtpSender {
        SmtpSender::new(&SmtpSettings {
            url: Zeroizing::new("smtp://127.0.0.1:2525".into()),
            from: "Twofold <no-reply@twofold.test>".parse().unwrap(),
            timeout: Duration::from_secs(10),
        })
        .unwrap()
    }

    fn message(tenant: &str, to: &str) -> OutgoingCode {
        OutgoingCode {
            challenge_id: "3f2a9c1e-0b7d-4e5f-9a8b-1c2d3e4f5a6b".into(),
            tenant_name: tenant.into(),
            channel: Channel::Email,
            purpose: Purpose::SignIn,
            destination: Zeroizing::new(to.into()),
            code: Zeroizing::new("042917".into()),
            valid_seconds: 600,
            language: twofold_domain::Language::En,
            web_host: None,
        }
    }

    #[test]
    fn the_mail_is_multipart_with_a_stable_message_id() {
        let mail = sender()
            .compose(&message("Acme <Corp>", "amy@example.com"))
            .unwrap();
        let raw = String::from_utf8(mail.formatted()).unwrap();
        assert!(
            raw.contains("Subject: Your Acme <Corp> sign-in code"),
            "{raw}"
        );
        assert!(
            raw.contains("Message-ID: <3f2a9c1e-0b7d-4e5f-9a8b-1c2d3e4f5a6b@twofold.test>"),
            "{raw}"
        );
        assert!(raw.contains("Auto-Submitted: auto-generated"), "{raw}");
        assert!(raw.contains("multipart/alternative"), "{raw}");
        assert!(raw.contains("Content-Transfer-Encoding: 7bit"), "{raw}");
        assert!(raw.contains("Acme &lt;Corp&gt;"), "HTML is escaped: {raw}");
        assert!(raw.contains("valid for 10 minutes"), "{raw}");
        assert!(
            raw.contains("\r\n    042917\r\n"),
            "the code has a line of its own: {raw}"
        );
        assert!(raw.lines().all(|l| l.len() <= 78), "{raw}");
        assert_eq!(raw.matches("042917").count(), 2, "plain and HTML: {raw}");
    }

    #[test]
    fn non_ascii_names_stay_readable_as_quoted_printable() {
        let mail = sender()
            .compose(&message("თბილისი Bank", "amy@example.com"))
            .unwrap();
        let raw = String::from_utf8(mail.formatted()).unwrap();
        assert!(raw.contains("quoted-printable"), "{raw}");
        assert!(!raw.contains("base64"), "{raw}");
        assert!(raw.contains("042917"), "{raw}");
    }

    #[test]
    fn a_name_holding_an_encoded_word_is_shown_as_given() {
        use base64::Engine as _;
        let name = "=?utf-8?b?UGF5UGFs?= Security";
        let mail = sender().compose(&message(name, "amy@example.com")).unwrap();
        let raw = String::from_utf8(mail.formatted()).unwrap();
        let subject: String = raw
            .split("\r\n")
            .skip_while(|l| !l.starts_with("Subject:"))
            .take_while(|l| l.starts_with("Subject:") || l.starts_with(' '))
            .collect::<Vec<_>>()
            .join("");
        assert!(!subject.contains("UGF5UGFs?= "), "passed raw: {subject}");
        // Decoding every encoded word, as a mail client does, gives the name back literally.
        let decoded: String = subject
            .trim_start_matches("Subject:")
            .split_whitespace()
            .map(|w| {
                let b64 = w
                    .strip_prefix("=?utf-8?b?")
                    .and_then(|w| w.strip_suffix("?="))
                    .expect("every word encoded");
                String::from_utf8(
                    base64::engine::general_purpose::STANDARD
                        .decode(b64)
                        .unwrap(),
                )
                .unwrap()
            })
            .collect();
        assert_eq!(decoded, format!("Your {name} sign-in code"));
    }

    #[test]
    fn an_invalid_address_is_permanent_and_not_echoed() {
        let e = sender()
            .compose(&message("Acme", "not-an-address"))
            .unwrap_err();
        assert!(matches!(e, SendError::Permanent(_)), "{e}");
        assert!(!e.to_string().contains("not-an-address"), "{e}");
    }

    #[test]
    fn queue_ids_are_taken_from_the_reply_and_nothing_else() {
        assert_eq!(
            queue_id(["2.0.0 Ok: queued as 4F1A2B3C4D"].into_iter()),
            Some("4F1A2B3C4D".to_owned())
        );
        assert_eq!(
            queue_id(["OK id=1qX2yZ-0004aB-Cd"].into_iter()),
            Some("1qX2yZ-0004aB-Cd".to_owned())
        );
        assert_eq!(queue_id(["OK <amy@example.com>"].into_iter()), None);
        assert_eq!(message_id("a b<c>", "x.test"), "<a-b-c-@x.test>");
    }
}
