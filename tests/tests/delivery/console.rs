//! `ConsoleSender`: the development blocks it prints, for codes and security notices.

use std::sync::{Arc, Mutex};

use twofold_domain::channel::Channel;
use twofold_infra::delivery::ConsoleSender;
use twofold_services::ports::{CodeSender, NoticeSender};

use crate::{code, notice};

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

#[tokio::test]
async fn console_prints_a_notice_in_a_block_of_its_own() {
    let buffer = Buffer::default();
    let sender = ConsoleSender::with_writer(Arc::new(Mutex::new(buffer.clone())));
    let notice = notice(Channel::Email, "gus@example.com");
    let receipt = sender.send_notice(&notice).await.expect("printed");
    assert_eq!(receipt.provider_message_id.as_deref(), Some("console"));
    let printed = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
    assert_eq!(printed, ConsoleSender::render_notice(&notice), "one block");
    for needle in [
        "DEVELOPMENT DELIVERY — NOT SENT (security notice)",
        "EMAIL",
        "gus@example.com",
        notice.notification_id.as_str(),
        notice.subject.as_str(),
        notice.plain.as_str(),
    ] {
        assert!(printed.contains(needle), "{needle} missing from {printed}");
    }
}
