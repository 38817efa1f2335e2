//! `WebhookSender` against the fake receiver: signed requests keyed by the challenge (or, for a
//! security notice, by the notification), and its failures classified.

use twofold_domain::channel::Channel;
use twofold_infra::delivery::{webhook, SmsSettings, WebhookSender};
use twofold_services::ports::{CodeSender, NoticeSender, SendError};
use twofold_tests::fakes::{extract_code, FakeWebhook};

use crate::{assert_clean, code, notice, settings, WAIT};

const WEBHOOK_SECRET: &str = "webhook-secret-0123456789";

fn webhook_sender(url: String, secret: &str) -> WebhookSender {
    let s = settings(&[
        ("TWOFOLD_SMS_PROVIDER", "webhook".into()),
        ("TWOFOLD_SMS_WEBHOOK_URL", url),
        ("TWOFOLD_SMS_WEBHOOK_SECRET", secret.into()),
    ]);
    match s.sms {
        SmsSettings::Webhook(w) => WebhookSender::new(&w).expect("webhook sender"),
        other => panic!("expected webhook settings, got {other:?}"),
    }
}

#[tokio::test]
async fn webhook_requests_are_signed_and_keyed_by_the_challenge() {
    let fake = FakeWebhook::start(WEBHOOK_SECRET);
    let sender = webhook_sender(fake.url(), WEBHOOK_SECRET);
    let message = code(Channel::Sms, "+995555123463", "777888");
    let receipt = sender.send(&message).await.expect("accepted");
    assert_eq!(receipt.provider_message_id.as_deref(), Some("wh_0"));

    let requests = fake.wait_for(1, WAIT).await;
    let r = &requests[0];
    assert!(r.signature_valid, "signature verifies: {r:?}");
    assert_eq!(
        r.idempotency_key.as_deref(),
        Some(message.challenge_id.as_str())
    );
    assert_eq!(r.json["challengeId"], message.challenge_id.as_str());
    assert_eq!(r.json["to"], "+995555123463");
    assert_eq!(r.json["channel"], "SMS");
    let body = r.json["body"].as_str().unwrap_or_default();
    assert_eq!(extract_code(body, 6).as_deref(), Some("777888"));
    assert!(
        body.contains("Acme") && body.contains("7 minutes"),
        "{body}"
    );
    let timestamp: u64 = r.timestamp.as_deref().unwrap_or_default().parse().unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(now.abs_diff(timestamp) < 60, "a current timestamp");
    let header = r.signature.as_deref().unwrap_or_default();
    assert_eq!(
        header,
        webhook::signature(WEBHOOK_SECRET.as_bytes(), timestamp, &r.raw)
    );
    assert!(webhook::verify(
        WEBHOOK_SECRET.as_bytes(),
        timestamp,
        &r.raw,
        header
    ));
}

#[tokio::test]
async fn webhook_signed_with_another_secret_does_not_verify() {
    let fake = FakeWebhook::start(WEBHOOK_SECRET);
    let sender = webhook_sender(fake.url(), "some-other-secret-0000");
    sender
        .send(&code(Channel::Sms, "+995555123464", "999000"))
        .await
        .expect("the fake accepts anyway");
    let requests = fake.wait_for(1, WAIT).await;
    assert!(!requests[0].signature_valid);
}

#[tokio::test]
async fn webhook_failures_are_classified() {
    let fake = FakeWebhook::start_scripted(WEBHOOK_SECRET, vec![503, 400]);
    let sender = webhook_sender(fake.url(), WEBHOOK_SECRET);
    let message = code(Channel::Sms, "+995555123465", "565656");
    let e = sender.send(&message).await.expect_err("503");
    assert!(matches!(e, SendError::Retryable(_)), "{e}");
    let e = sender.send(&message).await.expect_err("400");
    assert!(matches!(e, SendError::Permanent(_)), "{e}");
    assert!(e.to_string().contains("refused with 400"), "{e}");
    assert_clean(&e, &["565656", "995555123465"]);
    sender.send(&message).await.expect("then accepted");
    let keys: Vec<_> = fake
        .requests()
        .into_iter()
        .map(|r| r.idempotency_key)
        .collect();
    assert_eq!(keys, vec![Some(message.challenge_id.clone()); 3]);
}

/// A security notice is the code's signed request, marked as a notice and keyed by its
/// notification id (so a resend is recognised, and receivers written for codes still find a
/// `challengeId`); its failures are classified like a code's.
#[tokio::test]
async fn webhook_notices_are_signed_and_keyed_by_the_notification() {
    let fake = FakeWebhook::start_scripted(WEBHOOK_SECRET, vec![503, 400]);
    let sender = webhook_sender(fake.url(), WEBHOOK_SECRET);
    let notice = notice(Channel::Sms, "+995555123467");
    let e = sender.send_notice(&notice).await.expect_err("503");
    assert!(matches!(e, SendError::Retryable(_)), "{e}");
    let e = sender.send_notice(&notice).await.expect_err("400");
    assert!(matches!(e, SendError::Permanent(_)), "{e}");
    assert!(e.to_string().contains("refused with 400"), "{e}");
    assert_clean(&e, &["995555123467"]);
    let receipt = sender.send_notice(&notice).await.expect("then accepted");
    assert_eq!(receipt.provider_message_id.as_deref(), Some("wh_2"));

    let notices = fake.notices();
    assert_eq!(notices.len(), 3, "{notices:?}");
    let id = notice.notification_id.as_str();
    for r in &notices {
        assert!(r.signature_valid, "signature verifies: {r:?}");
        assert_eq!(r.idempotency_key.as_deref(), Some(id));
        let mut keys: Vec<&str> = r
            .json
            .as_object()
            .unwrap()
            .keys()
            .map(|k| k.as_str())
            .collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            [
                "body",
                "challengeId",
                "channel",
                "notificationId",
                "to",
                "type"
            ]
        );
        assert_eq!(r.json["type"], "SECURITY_NOTICE");
        assert_eq!(r.json["challengeId"], id);
        assert_eq!(r.json["notificationId"], id);
        assert_eq!(r.json["to"], "+995555123467");
        assert_eq!(r.json["channel"], "SMS");
        assert_eq!(r.json["body"], notice.sms.as_str());
    }
    assert!(fake.requests().is_empty(), "nothing was sent as a code");
}
