//! Security notices by email: one `multipart/alternative` mail, like a code's, with the
//! notice's own subject and texts (already in the user's language) and a `Message-ID` made
//! from the notification id, so a resend is recognisably the same mail.

use async_trait::async_trait;
use lettre::message::header::ContentType;
use lettre::message::{Mailbox, MultiPart, SinglePart};
use lettre::{Address, AsyncTransport, Message};
use twofold_services::ports::{DeliveryReceipt, NoticeSender, OutgoingNotice, SendError};

use super::SmtpSender;
use super::{classify, literal_header_text, message_id, queue_id, readable_body, AutoSubmitted};

impl SmtpSender {
    /// The mail of a notice, as it will be sent (public so tests can inspect it).
    pub fn compose_notice(&self, notice: &OutgoingNotice) -> Result<Message, SendError> {
        let to: Address = notice.destination.trim().parse().map_err(|_| {
            SendError::Permanent("the email address is not a valid address".to_owned())
        })?;
        let build_error = |_| SendError::Permanent("cannot build the email".to_owned());
        Message::builder()
            .from(self.from.clone())
            .to(Mailbox::new(None, to))
            .subject(literal_header_text(&notice.subject))
            .message_id(Some(message_id(
                &notice.notification_id,
                self.from.email.domain(),
            )))
            .header(AutoSubmitted)
            .multipart(
                MultiPart::alternative()
                    .singlepart(
                        SinglePart::builder()
                            .header(ContentType::TEXT_PLAIN)
                            .body(readable_body(notice.plain.clone())),
                    )
                    .singlepart(
                        SinglePart::builder()
                            .header(ContentType::TEXT_HTML)
                            .body(readable_body(notice.html.clone())),
                    ),
            )
            .map_err(build_error)
    }
}

#[async_trait]
impl NoticeSender for SmtpSender {
    async fn send_notice(&self, notice: &OutgoingNotice) -> Result<DeliveryReceipt, SendError> {
        let mail = self.compose_notice(notice)?;
        let message_id = message_id(&notice.notification_id, self.from.email.domain());
        let sent = tokio::time::timeout(self.timeout * 3, self.transport.send(mail))
            .await
            .map_err(|_| {
                SendError::Retryable(format!(
                    "the SMTP server did not finish within {} s",
                    (self.timeout * 3).as_secs()
                ))
            })?;
        match sent {
            Ok(response) => Ok(DeliveryReceipt {
                provider_message_id: Some(queue_id(response.message()).unwrap_or(message_id)),
            }),
            Err(e) => Err(classify(&e)),
        }
    }
}
