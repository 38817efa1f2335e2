//! The delivery adapters against in-process providers: a real SMTP server, a fake Twilio
//! Messages API and a fake webhook receiver. No service or database is needed.

mod console;
mod fakes;
mod smtp;
mod twilio;
mod webhook;

use std::collections::HashMap;
use std::time::Duration;

use twofold_domain::channel::{Channel, Purpose};
use twofold_infra::delivery::{DeliverySettings, Senders};
use twofold_services::ports::{OutgoingCode, OutgoingNotice, SendError};
use twofold_tests::fakes::{extract_code, FakeTwilio, SmtpCapture, NOTICE_ID_PREFIX};
use twofold_tests::{TWILIO_SID, TWILIO_TOKEN};
use zeroize::Zeroizing;

const WAIT: Duration = Duration::from_secs(10);

fn code(channel: Channel, to: &str, code: &str) -> OutgoingCode {
    OutgoingCode {
        challenge_id: format!("ch-{}", uuid::Uuid::new_v4()),
        tenant_name: "Acme".into(),
        channel,
        purpose: Purpose::SignIn,
        destination: Zeroizing::new(to.into()),
        code: Zeroizing::new(code.into()),
        valid_seconds: 420,
        language: twofold_domain::Language::En,
        web_host: None,
    }
}

/// A security notice by `channel` to `to`, its id marked as the fakes recognise notices.
fn notice(channel: Channel, to: &str) -> OutgoingNotice {
    let text = "Acme: a sign-in method was added to your account.";
    OutgoingNotice {
        notification_id: format!("{NOTICE_ID_PREFIX}{}", uuid::Uuid::new_v4()),
        channel,
        destination: Zeroizing::new(to.into()),
        subject: "A new sign-in method was added to your Acme account".into(),
        plain: text.into(),
        html: format!("<p>{text}</p>"),
        sms: text.into(),
    }
}

fn settings(vars: &[(&str, String)]) -> DeliverySettings {
    let map: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect();
    DeliverySettings::from_lookup(|k| map.get(k).cloned()).expect("valid delivery settings")
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
