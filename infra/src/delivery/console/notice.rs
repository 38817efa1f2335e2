//! Security notices on the development console: printed, like codes, in a block that says
//! they were not sent. A notice holds no code or secret; the destination is shown because a
//! developer needs to see where it would have gone.

use async_trait::async_trait;
use twofold_services::ports::{DeliveryReceipt, NoticeSender, OutgoingNotice, SendError};

use super::ConsoleSender;

impl ConsoleSender {
    /// The block printed for `notice`.
    pub fn render_notice(notice: &OutgoingNotice) -> String {
        let rule = "=".repeat(72);
        let text = match notice.channel {
            twofold_domain::channel::Channel::Email => {
                format!("subject:    {}\n\n{}", notice.subject, notice.plain)
            }
            twofold_domain::channel::Channel::Sms => format!("{}\n", notice.sms),
        };
        format!(
            "\n{rule}\n\
             DEVELOPMENT DELIVERY — NOT SENT (security notice)\n\
             {rule}\n\
             channel:    {channel}\n\
             to:         {to}\n\
             notice:     {id}\n\
             {text}\
             {rule}\n",
            channel = notice.channel.as_str(),
            to = notice.destination.as_str(),
            id = notice.notification_id,
        )
    }
}

#[async_trait]
impl NoticeSender for ConsoleSender {
    async fn send_notice(&self, notice: &OutgoingNotice) -> Result<DeliveryReceipt, SendError> {
        self.print(&zeroize::Zeroizing::new(Self::render_notice(notice)))
    }
}
