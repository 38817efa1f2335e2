//! `testDelivery`: one message through the tenant's own provider, sent at once, its outcome
//! answered and recorded (`DeliveryTested`, the destination masked). Rate limited per tenant:
//! it sends to any address the administrator names.

use twofold_domain::channel::Channel;
use twofold_domain::contact::{EmailAddress, PhoneNumber};
use twofold_domain::tenant::{DeliveryTest, TenantCommand};
use zeroize::Zeroizing;

use super::DeliverySettingsService;
use crate::encoding::base32_lower;
use crate::ports::{OutgoingNotice, Reservation, SendCap, SendError};
use crate::{Call, ServiceError};

/// Test messages a tenant may send per hour, over all instances.
pub const TESTS_PER_HOUR: u32 = 10;

/// What the provider answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestOutcome {
    /// Whether the provider accepted the message.
    pub delivered: bool,
    /// The provider's id of the message, when it gave one.
    pub provider_message_id: Option<String>,
    /// Why not (redacted: never a credential, the code or the destination).
    pub error: Option<String>,
    /// Whether the failure is temporary.
    pub retryable: bool,
}

impl DeliverySettingsService {
    /// Sends a test message to `destination` through the tenant's own provider of `channel`.
    pub async fn test(
        &self,
        call: &Call,
        channel: Channel,
        destination: &str,
    ) -> Result<TestOutcome, ServiceError> {
        let p = &self.ports;
        let (destination, masked) = match channel {
            Channel::Email => {
                let e = EmailAddress::parse(destination).map_err(ServiceError::invalid)?;
                (e.as_str().to_owned(), e.masked())
            }
            Channel::Sms => {
                let n = PhoneNumber::parse(destination).map_err(ServiceError::invalid)?;
                (n.e164().to_owned(), n.masked())
            }
        };
        let tenant = call.tenant();
        let view = p
            .directory
            .tenant(tenant)
            .await?
            .ok_or_else(|| ServiceError::NotFound("tenant not found".into()))?;
        let no_provider = || {
            ServiceError::InvalidInput(format!(
                "the tenant has no own {} provider: testDelivery tests the settings made with \
                 setDeliverySettings",
                channel.as_str()
            ))
        };
        let settings = view.delivery.as_ref().ok_or_else(no_provider)?;
        let has_channel = match channel {
            Channel::Email => settings.facts.email.is_some(),
            Channel::Sms => settings.facts.sms.is_some(),
        };
        if !has_channel {
            return Err(no_provider());
        }
        let mut id = [0u8; 10];
        p.entropy.fill(&mut id);
        let id = format!("test-{}", base32_lower(&id));
        let cap = SendCap {
            bucket: format!("delivery-test/{tenant}"),
            limit: TESTS_PER_HOUR,
            window: chrono::Duration::hours(1),
        };
        if let Reservation::Refused {
            retry_after_seconds,
            ..
        } = p.limiter.reserve(&id, &[cap], p.clock.now()).await?
        {
            return Err(ServiceError::RateLimited {
                message: format!(
                    "at most {TESTS_PER_HOUR} test messages per hour; try again in \
                     {retry_after_seconds} s"
                ),
                retry_after_seconds,
            });
        }
        let sent = match p.senders.sender(tenant, settings, channel).await {
            Ok(Some(sender)) => {
                let language =
                    twofold_domain::Language::choose(None, view.policy.default_locale.as_ref());
                let mail = twofold_i18n::delivery_test::email(language, view.sender_name());
                let message = OutgoingNotice {
                    notification_id: id,
                    channel,
                    destination: Zeroizing::new(destination),
                    subject: mail.subject,
                    plain: mail.plain,
                    html: mail.html,
                    sms: twofold_i18n::delivery_test::sms(language, view.sender_name()),
                };
                sender.send_notice(&message).await
            }
            Ok(None) => return Err(no_provider()),
            Err(e) => Err(e),
        };
        let outcome = match sent {
            Ok(receipt) => TestOutcome {
                delivered: true,
                provider_message_id: receipt.provider_message_id,
                error: None,
                retryable: false,
            },
            Err(e) => TestOutcome {
                delivered: false,
                provider_message_id: None,
                retryable: matches!(e, SendError::Retryable(_)),
                error: Some(e.to_string()),
            },
        };
        tracing::info!(
            channel = channel.as_str(),
            delivered = outcome.delivered,
            "test message sent"
        );
        self.run(
            call,
            TenantCommand::RecordDeliveryTest {
                test: DeliveryTest {
                    channel,
                    destination: masked,
                    delivered: outcome.delivered,
                    provider_message_id: outcome.provider_message_id.clone(),
                    error: outcome.error.clone(),
                    retryable: outcome.retryable,
                },
                at: p.clock.now(),
            },
        )
        .await?;
        Ok(outcome)
    }
}
