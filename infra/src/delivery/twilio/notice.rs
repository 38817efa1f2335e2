//! Security notices by SMS through Twilio: the same request as a code's (the From number or
//! the Messaging Service alike), with the notice's text and the notification id as
//! `I-Twilio-Idempotency-Token`.

use async_trait::async_trait;
use twofold_services::ports::{DeliveryReceipt, NoticeSender, OutgoingNotice, SendError};

use super::TwilioSender;

#[async_trait]
impl NoticeSender for TwilioSender {
    async fn send_notice(&self, notice: &OutgoingNotice) -> Result<DeliveryReceipt, SendError> {
        let to = notice.destination.as_str();
        self.post(
            &notice.notification_id,
            to,
            &notice.sms,
            &[to, to.trim_start_matches('+')],
        )
        .await
    }
}
