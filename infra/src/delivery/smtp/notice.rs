//! Security notices by email: one `multipart/alternative` mail, like a code's, with the
//! notice's own subject and texts (already in the user's language) and a `Message-ID` made
//! from the notification id, so a resend is recognisably the same mail.

use async_trait::async_trait;
use lettre::Message;
use twofold_services::ports::{DeliveryReceipt, NoticeSender, OutgoingNotice, SendError};

use super::SmtpSender;

impl SmtpSender {
    /// The mail of a notice, as it will be sent (public so tests can inspect it).
    pub fn compose_notice(&self, notice: &OutgoingNotice) -> Result<Message, SendError> {
        self.mail(
            &notice.destination,
            &notice.notification_id,
            &notice.subject,
            notice.plain.clone(),
            notice.html.clone(),
        )
    }
}

#[async_trait]
impl NoticeSender for SmtpSender {
    async fn send_notice(&self, notice: &OutgoingNotice) -> Result<DeliveryReceipt, SendError> {
        self.transmit(self.compose_notice(notice)?, &notice.notification_id)
            .await
    }
}
