//! Security notices through the SMS webhook: the same signed request as a code's, with
//! `"type": "SECURITY_NOTICE"`, the notice's text, and the notification id as both
//! `challengeId` (so receivers written for codes keep working) and `Idempotency-Key`.

use async_trait::async_trait;
use twofold_services::ports::{DeliveryReceipt, NoticeSender, OutgoingNotice, SendError};

use super::WebhookSender;

/// The JSON we post for a notice.
#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct NoticePayload<'a> {
    challenge_id: &'a str,
    notification_id: &'a str,
    #[serde(rename = "type")]
    kind: &'a str,
    to: &'a str,
    body: &'a str,
    channel: &'a str,
}

#[async_trait]
impl NoticeSender for WebhookSender {
    async fn send_notice(&self, notice: &OutgoingNotice) -> Result<DeliveryReceipt, SendError> {
        let to = notice.destination.as_str();
        let payload = NoticePayload {
            challenge_id: &notice.notification_id,
            notification_id: &notice.notification_id,
            kind: "SECURITY_NOTICE",
            to,
            body: notice.sms.as_str(),
            channel: notice.channel.as_str(),
        };
        self.post(
            &notice.notification_id,
            &payload,
            &[to, to.trim_start_matches('+')],
        )
        .await
    }
}
