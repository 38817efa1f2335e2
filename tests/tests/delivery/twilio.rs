//! `TwilioSender` against the fake Messages API: the request Twilio expects, and each answer and
//! timeout classified.

use std::time::Duration;

use twofold_domain::channel::Channel;
use twofold_infra::delivery::{SmsSettings, TwilioSender};
use twofold_services::ports::{CodeSender, NoticeSender, OutgoingNotice, SendError};
use twofold_tests::fakes::{extract_code, FakeTwilio};
use twofold_tests::{TWILIO_SID, TWILIO_TOKEN};

use crate::{assert_clean, closed_port, code, settings, twilio_vars, WAIT};

fn twilio_sender(base: String) -> TwilioSender {
    match settings(&twilio_vars(base)).sms {
        SmsSettings::Twilio(t) => TwilioSender::new(&t).expect("Twilio sender"),
        other => panic!("expected Twilio settings, got {other:?}"),
    }
}

#[tokio::test]
async fn twilio_201_gives_the_sid_and_sends_what_twilio_expects() {
    let fake = FakeTwilio::start(vec![]);
    let sender = twilio_sender(fake.base_url());
    let message = code(Channel::Sms, "+995555123456", "246810");
    let receipt = sender.send(&message).await.expect("accepted");

    let delivered = fake.wait_for_delivered(1, WAIT).await;
    assert_eq!(delivered.len(), 1);
    let r = &delivered[0];
    assert_eq!(receipt.provider_message_id, r.sid);
    assert!(r.sid.as_deref().unwrap_or_default().starts_with("SM"));
    assert_eq!(r.account_sid, TWILIO_SID);
    assert_eq!(
        r.basic_auth,
        Some((TWILIO_SID.to_owned(), TWILIO_TOKEN.to_owned()))
    );
    assert_eq!(
        r.idempotency_token.as_deref(),
        Some(message.challenge_id.as_str())
    );
    assert_eq!(r.to, "+995555123456");
    assert_eq!(r.from, "+15005550006");
    assert_eq!(
        r.body,
        "246810 is your Acme sign-in code. Valid for 7 minutes. Do not share it."
    );
    assert!(r.body.len() <= 160, "one SMS segment");
    assert_eq!(extract_code(&r.body, 6).as_deref(), Some("246810"));
}

#[tokio::test]
async fn twilio_500_is_retryable_and_the_retry_carries_the_same_key() {
    let fake = FakeTwilio::start(vec![500]);
    let sender = twilio_sender(fake.base_url());
    let message = code(Channel::Sms, "+995555123457", "135791");
    let e = sender.send(&message).await.expect_err("500");
    assert!(matches!(e, SendError::Retryable(_)), "{e}");
    assert_clean(&e, &["135791", "995555123457"]);
    sender.send(&message).await.expect("the retry is accepted");
    let requests = fake.requests();
    assert_eq!(
        requests.iter().map(|r| r.status).collect::<Vec<_>>(),
        vec![500, 201]
    );
    assert!(requests
        .iter()
        .all(|r| r.idempotency_token.as_deref() == Some(message.challenge_id.as_str())));
    assert_eq!(fake.delivered().len(), 1);
}

#[tokio::test]
async fn twilio_429_and_503_are_retryable() {
    let fake = FakeTwilio::start(vec![429, 503]);
    let sender = twilio_sender(fake.base_url());
    let message = code(Channel::Sms, "+995555123458", "112233");
    for expected in ["429", "503"] {
        let e = sender.send(&message).await.expect_err(expected);
        assert!(matches!(e, SendError::Retryable(_)), "{e}");
        assert!(e.to_string().contains(expected), "{e}");
    }
}

#[tokio::test]
async fn twilio_400_is_permanent_with_twilios_message_but_no_number_or_code() {
    let fake = FakeTwilio::start(vec![400]);
    let sender = twilio_sender(fake.base_url());
    let message = code(Channel::Sms, "+995555123459", "864200");
    let e = sender.send(&message).await.expect_err("400");
    let SendError::Permanent(text) = &e else {
        panic!("expected a permanent failure, got {e:?}")
    };
    assert!(text.contains("is not a valid phone number"), "{text}");
    assert!(text.contains("21211"), "Twilio's error code: {text}");
    // The fake's message quotes the number, as Twilio's does: it must be redacted.
    assert!(fake.requests()[0].status == 400);
    assert_clean(&e, &["864200", "995555123459", "Do not share"]);
}

#[tokio::test]
async fn twilio_wrong_credentials_are_permanent() {
    let fake = FakeTwilio::start_with_credentials(TWILIO_SID, "another-token", vec![]);
    let sender = twilio_sender(fake.base_url());
    let e = sender
        .send(&code(Channel::Sms, "+995555123460", "101010"))
        .await
        .expect_err("401");
    assert!(matches!(e, SendError::Permanent(_)), "{e}");
    assert!(e.to_string().contains("401"), "{e}");
    assert!(fake.delivered().is_empty());
    assert_clean(&e, &[TWILIO_TOKEN]);
}

#[tokio::test]
async fn twilio_down_or_silent_is_retryable() {
    let sender = twilio_sender(format!("http://127.0.0.1:{}", closed_port()));
    let e = sender
        .send(&code(Channel::Sms, "+995555123461", "202020"))
        .await
        .expect_err("nobody listens");
    assert!(matches!(e, SendError::Retryable(_)), "{e}");

    // A server that accepts the connection and never answers: the timeout ends the call.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let mut vars = twilio_vars(format!("http://{}", silent.local_addr().unwrap()));
    vars.retain(|(k, _)| *k != "TWOFOLD_SMS_PROVIDER");
    vars.push(("TWOFOLD_SMS_PROVIDER", "twilio".into()));
    let SmsSettings::Twilio(mut t) = settings(&vars).sms else {
        panic!("expected Twilio")
    };
    t.timeout = Duration::from_millis(300);
    let started = std::time::Instant::now();
    let e = TwilioSender::new(&t)
        .unwrap()
        .send(&code(Channel::Sms, "+995555123461", "202020"))
        .await
        .expect_err("times out");
    assert!(matches!(e, SendError::Retryable(_)), "{e}");
    assert!(e.to_string().contains("in time"), "{e}");
    assert!(started.elapsed() < Duration::from_secs(5));
    drop(silent);
}

/// A tenant's own Twilio account may name only a Messaging Service (no From number): its
/// security notices must go out through that service like its codes, not be refused by Twilio
/// for want of a sender (a notice that never arrives warns nobody).
#[tokio::test]
async fn a_notice_through_a_messaging_service_only_account_names_the_service() {
    let fake = FakeTwilio::start(vec![]);
    let mut twilio = match settings(&twilio_vars(fake.base_url())).sms {
        SmsSettings::Twilio(t) => t,
        other => panic!("expected Twilio settings, got {other:?}"),
    };
    let service = format!("MG{}", "0".repeat(32));
    twilio.from = String::new();
    twilio.messaging_service_sid = Some(service.clone());
    let sender = TwilioSender::new(&twilio).expect("Twilio sender");
    let notice = OutgoingNotice {
        notification_id: "n-attack-review".into(),
        channel: Channel::Sms,
        destination: zeroize::Zeroizing::new("+995555123456".into()),
        subject: String::new(),
        plain: String::new(),
        html: String::new(),
        sms: "Acme: a sign-in method was added to your account.".into(),
    };
    // The code path already names the service; the notice path must too.
    sender
        .send(&code(Channel::Sms, "+995555123456", "246810"))
        .await
        .expect("the code is accepted");
    let receipt = sender.send_notice(&notice).await;
    assert!(receipt.is_ok(), "{receipt:?}");
    let notices = fake.notices();
    assert_eq!(notices.len(), 1);
    assert_eq!(
        notices[0].messaging_service_sid.as_deref(),
        Some(service.as_str())
    );
    assert_eq!(notices[0].to, "+995555123456");
}
