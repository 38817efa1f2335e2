//! Security notices by SMS through Twilio: the same request as a code's, with the notice's
//! text and the notification id as `I-Twilio-Idempotency-Token`.

use async_trait::async_trait;
use twofold_services::ports::{DeliveryReceipt, NoticeSender, OutgoingNotice, SendError};

use super::super::{redact, status_error, transport_error};
use super::{TwilioAnswer, TwilioSender, PROVIDER};

#[async_trait]
impl NoticeSender for TwilioSender {
    async fn send_notice(&self, notice: &OutgoingNotice) -> Result<DeliveryReceipt, SendError> {
        let response = self
            .client
            .post(self.endpoint.clone())
            .basic_auth(&self.account_sid, Some(self.auth_token.as_str()))
            .header(
                "I-Twilio-Idempotency-Token",
                notice.notification_id.as_str(),
            )
            .header(reqwest::header::ACCEPT, "application/json")
            // The same sender fields as a code's: a Messaging Service when the account has one.
            .form(&self.form(notice.destination.as_str(), notice.sms.as_str()))
            .send()
            .await
            .map_err(|e| transport_error(PROVIDER, &e))?;
        let status = response.status();
        let answer: Option<TwilioAnswer> = response
            .bytes()
            .await
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok());
        if status.is_success() {
            return Ok(DeliveryReceipt {
                provider_message_id: answer.and_then(|a| a.sid),
            });
        }
        let detail = answer
            .map(|a| {
                let code = a
                    .code
                    .map(|c| match c {
                        serde_json::Value::String(s) => s,
                        other => other.to_string(),
                    })
                    .map(|c| format!("code {c}: "))
                    .unwrap_or_default();
                format!("{code}{}", a.message.unwrap_or_default())
            })
            .unwrap_or_default();
        let secrets = [
            notice.destination.as_str(),
            notice.destination.trim_start_matches('+'),
        ];
        Err(status_error(
            PROVIDER,
            status,
            &redact(detail.trim_end_matches(": "), &secrets),
        ))
    }
}
