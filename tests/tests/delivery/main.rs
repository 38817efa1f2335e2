//! The delivery adapters against in-process providers: a real SMTP server, a fake Twilio
//! Messages API and a fake webhook receiver. No service or database is needed.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use twofold_domain::channel::{Channel, Purpose};
use twofold_infra::delivery::{
    webhook, ConsoleSender, DeliverySettings, Senders, SmsSettings, SmtpSender, TwilioSender,
    WebhookSender,
};
use twofold_services::ports::{CodeSender, OutgoingCode, SendError};
use twofold_tests::fakes::{extract_code, FakeTwilio, FakeWebhook, ReceivedMail, SmtpCapture};
use twofold_tests::{TWILIO_SID, TWILIO_TOKEN};
use zeroize::Zeroizing;

const WAIT: Duration = Duration::from_secs(10);
const WEBHOOK_SECRET: &str = "webhook-secret-0123456789";

fn code(channel: Channel, to: &str, code: &str) -> OutgoingCode {
    OutgoingCode {
        challenge_id: format!("ch-{}", uuid::Uuid::new_v4()),
        tenant_name: "Acme".into(),
        channel,
        purpose: Purpose::SignIn,
        destination: Zeroizing::new(to.into()),
        code: Zeroizing::new(code.into()),
        valid_seconds: 420,
    }
}

fn settings(vars: &[(&str, String)]) -> DeliverySettings {
    let map: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect();
    DeliverySettings::from_lookup(|k| map.get(k).cloned()).expect("valid delivery settings")
}

fn smtp_sender(capture_url: String) -> SmtpSender {
    let s = settings(&[
        ("TWOFOLD_SMTP_URL", capture_url),
        (
            "TWOFOLD_EMAIL_FROM",
            "Twofold <no-reply@twofold.test>".into(),
        ),
    ]);
    SmtpSender::new(s.email.as_ref().expect("SMTP configured")).expect("SMTP sender")
}

fn twilio_vars(base: String) -> Vec<(&'static str, String)> {
    vec![
        ("TWOFOLD_SMS_PROVIDER", "twilio".into()),
        ("TWOFOLD_TWILIO_API_BASE", base),
        ("TWOFOLD_TWILIO_ACCOUNT_SID", TWILIO_SID.into()),
        ("TWOFOLD_TWILIO_AUTH_TOKEN", TWILIO_TOKEN.into()),
        ("TWOFOLD_TWILIO_FROM", "+15005550006".into()),
    ]
}

fn twilio_sender(base: String) -> TwilioSender {
    match settings(&twilio_vars(base)).sms {
        SmsSettings::Twilio(t) => TwilioSender::new(&t).expect("Twilio sender"),
        other => panic!("expected Twilio settings, got {other:?}"),
    }
}

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

/// A loopback port nothing listens on.
fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    drop(l);
    port
}

fn assert_clean(e: &SendError, secrets: &[&str]) {
    let text = e.to_string();
    for s in secrets {
        assert!(!text.contains(s), "error {text:?} leaks {s:?}");
    }
}

// --- SMTP -------------------------------------------------------------------------------------

#[tokio::test]
async fn smtp_mail_arrives_with_tenant_validity_and_code() {
    let capture = SmtpCapture::start();
    let sender = smtp_sender(capture.url());
    let message = code(Channel::Email, "amy.smith@example.com", "904213");
    let receipt = sender.send(&message).await.expect("accepted");
    let expected_id = format!("<{}@twofold.test>", message.challenge_id);
    assert_eq!(
        receipt.provider_message_id.as_deref(),
        Some(expected_id.as_str())
    );

    let mails = capture.wait_for(1, WAIT).await;
    assert_eq!(mails.len(), 1);
    let mail = &mails[0];
    assert_eq!(mail.to, vec!["amy.smith@example.com".to_owned()]);
    assert_eq!(mail.from, "no-reply@twofold.test");
    assert_eq!(mail.header("To").as_deref(), Some("amy.smith@example.com"));
    assert_eq!(mail.header("Message-ID"), Some(expected_id));
    assert_eq!(
        mail.header("Subject").as_deref(),
        Some("Your Acme sign-in code")
    );
    assert!(mail
        .header("Content-Type")
        .unwrap_or_default()
        .starts_with("multipart/alternative"));

    let text = mail.text().expect("a plain-text part");
    let html = mail.html().expect("an HTML part");
    for part in [&text, &html] {
        assert!(part.contains("Acme"), "names the tenant: {part}");
        assert!(
            part.contains("7 minutes"),
            "says how long the code lives: {part}"
        );
        assert!(part.contains("904213"), "{part}");
    }
    assert!(html.contains("<p"), "{html}");
    assert_eq!(extract_code(&mail.data, 6).as_deref(), Some("904213"));
}

#[tokio::test]
async fn smtp_resend_of_a_challenge_is_the_same_message_id() {
    let capture = SmtpCapture::start();
    let sender = smtp_sender(capture.url());
    let message = code(Channel::Email, "bo@example.com", "111222");
    sender.send(&message).await.expect("first");
    sender.send(&message).await.expect("second");
    let other = code(Channel::Email, "bo@example.com", "333444");
    sender.send(&other).await.expect("other");
    let mails = capture.wait_for(3, WAIT).await;
    let ids: Vec<_> = mails.iter().map(|m| m.header("Message-ID")).collect();
    assert_eq!(ids[0], ids[1], "a resend carries the same Message-ID");
    assert_ne!(ids[0], ids[2], "another challenge does not");
}

#[tokio::test]
async fn smtp_non_ascii_tenant_stays_readable() {
    let capture = SmtpCapture::start();
    let sender = smtp_sender(capture.url());
    let mut message = code(Channel::Email, "cy@example.com", "556677");
    message.tenant_name = "თბილისი ბანკი".into();
    message.purpose = Purpose::VerifyChannel;
    sender.send(&message).await.expect("accepted");
    let mails = capture.wait_for(1, WAIT).await;
    let mail = &mails[0];
    assert!(mail.data.contains("quoted-printable"), "{}", mail.data);
    let text = mail.text().expect("plain part");
    assert!(text.contains("თბილისი ბანკი"), "{text}");
    assert!(text.contains("verification code"), "{text}");
    assert!(mail.html().expect("html part").contains("თბილისი ბანკი"));
    assert_eq!(extract_code(&mail.data, 6).as_deref(), Some("556677"));
}

#[tokio::test]
async fn smtp_refusals_are_classified_and_never_quote_the_address() {
    let permanent = SmtpCapture::start_refusing(550);
    let message = code(Channel::Email, "dee@example.com", "123123");
    let e = smtp_sender(permanent.url())
        .send(&message)
        .await
        .expect_err("refused");
    assert!(matches!(e, SendError::Permanent(_)), "{e}");
    assert!(e.to_string().contains("550"), "{e}");
    assert_clean(&e, &["dee@example.com", "123123"]);

    let temporary = SmtpCapture::start_refusing(450);
    let e = smtp_sender(temporary.url())
        .send(&message)
        .await
        .expect_err("deferred");
    assert!(matches!(e, SendError::Retryable(_)), "{e}");
    assert_clean(&e, &["dee@example.com", "123123"]);
    assert!(permanent.messages().is_empty() && temporary.messages().is_empty());
}

#[tokio::test]
async fn smtp_server_down_is_retryable_and_bad_addresses_permanent() {
    let sender = smtp_sender(format!("smtp://127.0.0.1:{}", closed_port()));
    let e = sender
        .send(&code(Channel::Email, "ed@example.com", "987987"))
        .await
        .expect_err("nobody listens");
    assert!(matches!(e, SendError::Retryable(_)), "{e}");
    assert_clean(&e, &["ed@example.com", "987987"]);

    let capture = SmtpCapture::start();
    let e = smtp_sender(capture.url())
        .send(&code(Channel::Email, "ed at example", "987987"))
        .await
        .expect_err("invalid address");
    assert!(matches!(e, SendError::Permanent(_)), "{e}");
    assert_clean(&e, &["ed at example", "987987"]);
}

// --- Twilio -----------------------------------------------------------------------------------

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
        "Acme sign-in code: 246810. Valid 7 minutes. Do not share it."
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

#[tokio::test]
async fn senders_built_from_settings_reach_the_configured_providers() {
    let capture = SmtpCapture::start();
    let fake = FakeTwilio::start(vec![]);
    let mut vars = twilio_vars(fake.base_url());
    vars.push(("TWOFOLD_SMTP_URL", capture.url()));
    vars.push(("TWOFOLD_EMAIL_FROM", "no-reply@twofold.test".into()));
    let senders = Senders::build(&settings(&vars)).expect("senders");
    senders
        .email
        .send(&code(Channel::Email, "fay@example.com", "314159"))
        .await
        .expect("mail");
    senders
        .sms
        .send(&code(Channel::Sms, "+995555123462", "271828"))
        .await
        .expect("sms");
    assert_eq!(
        extract_code(&capture.wait_for(1, WAIT).await[0].data, 6).as_deref(),
        Some("314159")
    );
    assert_eq!(
        fake.wait_for_delivered(1, WAIT).await[0].to,
        "+995555123462"
    );
}

// --- Webhook ----------------------------------------------------------------------------------

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

// --- Console ----------------------------------------------------------------------------------

#[derive(Clone, Default)]
struct Buffer(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Buffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn console_prints_a_loud_development_block() {
    let buffer = Buffer::default();
    let sender = ConsoleSender::with_writer(Arc::new(Mutex::new(buffer.clone())));
    let message = code(Channel::Sms, "+995555123466", "424242");
    let receipt = sender.send(&message).await.expect("printed");
    assert_eq!(receipt.provider_message_id.as_deref(), Some("console"));
    let printed = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
    for needle in [
        "DEVELOPMENT DELIVERY — NOT SENT",
        "SMS",
        "+995555123466",
        "Acme",
        "424242",
        message.challenge_id.as_str(),
    ] {
        assert!(printed.contains(needle), "{needle} missing from {printed}");
    }

    // The zero-config default prints to stdout and succeeds too.
    let stdout = ConsoleSender::stdout()
        .send(&code(Channel::Email, "gus@example.com", "123321"))
        .await
        .expect("printed to stdout");
    assert_eq!(stdout.provider_message_id.as_deref(), Some("console"));
}

// --- The fakes' own helpers --------------------------------------------------------------

#[test]
fn codes_are_found_standalone_only() {
    assert_eq!(
        extract_code("Acme code: 123456. Valid", 6).as_deref(),
        Some("123456")
    );
    assert_eq!(
        extract_code("id a123456 or 1234567 then 654321", 6).as_deref(),
        Some("654321")
    );
    assert_eq!(extract_code("nothing 12345 here", 6), None);
    assert_eq!(
        extract_code("<b>12345678</b>", 8).as_deref(),
        Some("12345678")
    );
}

#[test]
fn codes_are_found_in_encoded_mail_bodies_not_headers() {
    let qp = "Message-ID: <111111@x>\r\nContent-Type: text/plain; charset=utf-8\r\n\
              Content-Transfer-Encoding: quoted-printable\r\n\r\n\
              =E1=83=97 code 12=\r\n3456 ok\r\n";
    assert_eq!(extract_code(qp, 6).as_deref(), Some("123456"));
    let b64 = format!(
        "Date: 1 Jan 222222\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: base64\r\n\r\n{}\r\n",
        base64::engine::general_purpose::STANDARD.encode("your code is 987654.")
    );
    assert_eq!(extract_code(&b64, 6).as_deref(), Some("987654"));
    let multipart = "Content-Type: multipart/alternative; boundary=\"b1\"\r\n\r\n\
                     --b1\r\nContent-Type: text/html\r\n\r\n<p>222222</p>\r\n\
                     --b1\r\nContent-Type: text/plain\r\n\r\ncode 333333\r\n--b1--\r\n";
    assert_eq!(
        extract_code(multipart, 6).as_deref(),
        Some("333333"),
        "plain first"
    );
    let mail = ReceivedMail {
        from: String::new(),
        to: Vec::new(),
        data: multipart.to_owned(),
    };
    assert_eq!(mail.html().as_deref(), Some("<p>222222</p>\r\n"));
    assert_eq!(
        mail.header("content-type").as_deref(),
        Some("multipart/alternative; boundary=\"b1\"")
    );
}
