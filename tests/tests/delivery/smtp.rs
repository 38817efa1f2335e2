//! `SmtpSender` against a real SMTP server: the mail's headers, parts and stable `Message-ID`,
//! for codes and security notices alike, refusals, and a server that is down.

use twofold_domain::channel::{Channel, Purpose};
use twofold_infra::delivery::SmtpSender;
use twofold_services::ports::{CodeSender, NoticeSender, SendError};
use twofold_tests::fakes::{extract_code, SmtpCapture};

use crate::{assert_clean, closed_port, code, notice, settings, WAIT};

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

/// Codes in a row go over one kept connection, each a whole mail of its own; a refused mail's
/// connection is not kept.
#[tokio::test]
async fn smtp_codes_in_a_row_share_one_connection_and_a_refusal_ends_it() {
    let capture = SmtpCapture::start();
    let sender = smtp_sender(capture.url());
    for (to, digits) in [("amy@example.com", "100001"), ("bo@example.com", "100002")] {
        sender
            .send(&code(Channel::Email, to, digits))
            .await
            .expect("accepted");
    }
    let mails = capture.wait_for(2, WAIT).await;
    assert_eq!(capture.sessions(), 1, "one connection for both");
    assert_eq!(mails[1].to, vec!["bo@example.com".to_owned()]);
    assert_eq!(extract_code(&mails[1].data, 6).as_deref(), Some("100002"));
    assert!(
        !mails[1].data.contains("100001"),
        "nothing of the first mail"
    );

    let refusing = SmtpCapture::start_refusing(450);
    let sender = smtp_sender(refusing.url());
    for _ in 0..2 {
        let e = sender
            .send(&code(Channel::Email, "cy@example.com", "100003"))
            .await
            .expect_err("deferred");
        assert!(matches!(e, SendError::Retryable(_)), "{e}");
    }
    assert_eq!(
        refusing.sessions(),
        2,
        "a refused mail's connection is closed"
    );
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

/// A security notice is a mail like a code's: the notice's subject and texts, and a
/// `Message-ID` made from the notification id, the same for a resend.
#[tokio::test]
async fn smtp_notice_arrives_with_its_texts_and_a_stable_message_id() {
    let capture = SmtpCapture::start();
    let sender = smtp_sender(capture.url());
    let notice = notice(Channel::Email, "amy.smith@example.com");
    let receipt = sender.send_notice(&notice).await.expect("accepted");
    let expected_id = format!("<{}@twofold.test>", notice.notification_id);
    assert_eq!(
        receipt.provider_message_id.as_deref(),
        Some(expected_id.as_str())
    );
    sender.send_notice(&notice).await.expect("resent");

    let mails = capture.wait_for_notices(2, WAIT).await;
    assert!(capture.messages().is_empty(), "nothing was sent as a code");
    for mail in &mails {
        assert_eq!(mail.to, vec!["amy.smith@example.com".to_owned()]);
        assert_eq!(mail.from, "no-reply@twofold.test");
        assert_eq!(mail.header("Message-ID").as_ref(), Some(&expected_id));
        assert_eq!(mail.header("Subject"), Some(notice.subject.clone()));
        assert_eq!(
            mail.header("Auto-Submitted").as_deref(),
            Some("auto-generated")
        );
        assert!(mail
            .header("Content-Type")
            .unwrap_or_default()
            .starts_with("multipart/alternative"));
        assert_eq!(
            mail.text().as_deref().map(str::trim),
            Some(notice.plain.as_str())
        );
        assert_eq!(
            mail.html().as_deref().map(str::trim),
            Some(notice.html.as_str())
        );
    }
}
