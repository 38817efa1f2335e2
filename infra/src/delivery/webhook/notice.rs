//! Security notices through the SMS webhook: the same signed request as a code's, with
//! `"type": "SECURITY_NOTICE"`, the notice's text, and the notification id as both
//! `challengeId` (so receivers written for codes keep working) and `Idempotency-Key`.

use async_trait::async_trait;
use twofold_services::ports::{DeliveryReceipt, NoticeSender, OutgoingNotice, SendError};
use zeroize::Zeroizing;

use super::super::{redact, status_error, transport_error};
use super::{
    signature, Answer, WebhookSender, IDEMPOTENCY_HEADER, PROVIDER, SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
};

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
        let body = Zeroizing::new(
            serde_json::to_vec(&NoticePayload {
                challenge_id: &notice.notification_id,
                notification_id: &notice.notification_id,
                kind: "SECURITY_NOTICE",
                to: notice.destination.as_str(),
                body: notice.sms.as_str(),
                channel: notice.channel.as_str(),
            })
            .map_err(|_| SendError::Permanent("cannot encode the webhook payload".to_owned()))?,
        );
        let timestamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let signed = signature(self.secret.as_bytes(), timestamp, &body);
        let response = self
            .client
            .post(self.url.clone())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(reqwest::header::ACCEPT, "application/json")
            .header(IDEMPOTENCY_HEADER, notice.notification_id.as_str())
            .header(TIMESTAMP_HEADER, timestamp.to_string())
            .header(SIGNATURE_HEADER, signed)
            .body(body.to_vec())
            .send()
            .await
            .map_err(|e| transport_error(PROVIDER, &e))?;
        let status = response.status();
        let answer: Option<Answer> = response
            .bytes()
            .await
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok());
        let secrets = [
            notice.destination.as_str(),
            notice.destination.trim_start_matches('+'),
        ];
        if status.is_success() {
            let id = answer.and_then(|a| a.id).and_then(|id| match id {
                serde_json::Value::String(s) if !s.is_empty() => Some(s),
                serde_json::Value::Number(n) => Some(n.to_string()),
                _ => None,
            });
            return Ok(DeliveryReceipt {
                provider_message_id: id.map(|id| redact(&id, &secrets)),
            });
        }
        let detail = answer
            .and_then(|a| {
                a.message.or(a.error.map(|e| match e {
                    serde_json::Value::String(s) => s,
                    other => other.to_string(),
                }))
            })
            .unwrap_or_default();
        Err(status_error(PROVIDER, status, &redact(&detail, &secrets)))
    }
}
