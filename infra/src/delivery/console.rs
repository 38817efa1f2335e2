//! The zero-config development channel: prints codes to the console instead of sending them.
//!
//! It writes to standard output directly, never through `tracing`: codes must never reach the
//! log pipeline (log files, collectors), and the console of a developer's `twofold serve` is the
//! one place where showing them is the point.

use std::io::Write;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use twofold_domain::channel::Purpose;
use twofold_services::ports::{CodeSender, DeliveryReceipt, OutgoingCode, SendError};

mod notice;

/// Where the console sender writes.
enum Target {
    Stdout,
    Writer(Arc<Mutex<dyn Write + Send>>),
}

/// Prints each code in a loud block that says it was not sent. The receipt id is `console`.
pub struct ConsoleSender {
    target: Target,
}

impl ConsoleSender {
    /// The provider message id of every console "delivery".
    pub const RECEIPT_ID: &'static str = "console";

    /// Prints to standard output: the zero-config default of a channel without a provider.
    pub fn stdout() -> Self {
        Self {
            target: Target::Stdout,
        }
    }

    /// Prints to `writer` instead (tests read what a developer would see).
    pub fn with_writer(writer: Arc<Mutex<dyn Write + Send>>) -> Self {
        Self {
            target: Target::Writer(writer),
        }
    }

    /// The block printed for `message`.
    pub fn render(message: &OutgoingCode) -> String {
        let rule = "=".repeat(72);
        let purpose = match message.purpose {
            Purpose::SignIn => "sign-in",
            Purpose::VerifyChannel => "channel verification",
        };
        format!(
            "\n{rule}\n\
             DEVELOPMENT DELIVERY — NOT SENT\n\
             No {channel} provider is configured, so this code was printed here instead of\n\
             being sent. For development only: configure SMTP / an SMS provider in production.\n\
             {rule}\n\
             channel:    {channel}\n\
             to:         {to}\n\
             tenant:     {tenant}\n\
             purpose:    {purpose}\n\
             challenge:  {challenge}\n\
             valid for:  {seconds} s\n\
             code:       {code}\n\
             {rule}\n",
            channel = message.channel.as_str(),
            to = message.destination.as_str(),
            tenant = twofold_i18n::display_name(&message.tenant_name),
            challenge = message.challenge_id,
            seconds = message.valid_seconds,
            code = message.code.as_str(),
        )
    }
}

impl Default for ConsoleSender {
    fn default() -> Self {
        Self::stdout()
    }
}

impl ConsoleSender {
    /// Prints one block (a code's or a notice's); the receipt is [`Self::RECEIPT_ID`].
    fn print(&self, block: &str) -> Result<DeliveryReceipt, SendError> {
        let written = match &self.target {
            // One locked write, so blocks of concurrent deliveries never interleave; an error is
            // returned rather than the panic of `println!` on a closed stdout.
            Target::Stdout => {
                let mut out = std::io::stdout().lock();
                out.write_all(block.as_bytes()).and_then(|()| out.flush())
            }
            Target::Writer(writer) => match writer.lock() {
                Ok(mut w) => w.write_all(block.as_bytes()).and_then(|()| w.flush()),
                Err(_) => Err(std::io::Error::other("console writer poisoned")),
            },
        };
        written.map_err(|e| SendError::Permanent(format!("cannot print to the console: {e}")))?;
        Ok(DeliveryReceipt {
            provider_message_id: Some(Self::RECEIPT_ID.to_owned()),
        })
    }
}

#[async_trait]
impl CodeSender for ConsoleSender {
    async fn send(&self, message: &OutgoingCode) -> Result<DeliveryReceipt, SendError> {
        self.print(&zeroize::Zeroizing::new(Self::render(message)))
    }
}
