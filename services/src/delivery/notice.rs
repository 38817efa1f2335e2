//! The worker's side of security notices: the same queue, leases, retries and idempotency as
//! codes (the notification id is the provider's idempotency key), but the message comes
//! rendered from the user's queued notice, and the outcome is recorded as
//! `NotificationDelivered` / `NotificationDeliveryFailed`.
//!
//! A notice is never dropped because the user's contact changed since: it carries its own
//! sealed destination. It ends without a send when its outcome is already recorded (or it is
//! no longer kept), and fails, after the retries, when that destination no longer opens (the
//! tenant's data key was shredded).

use twofold_domain::user::DeliveryOutcome;

use super::{AttemptResult, DeliveryWorker};
use crate::ports::{DeliveryJob, SendError};
use crate::ServiceError;

impl DeliveryWorker {
    /// Sends a claimed notice job and records the outcome.
    pub(super) async fn deliver_notice(
        &self,
        job: DeliveryJob,
        claimed: tokio::time::Instant,
    ) -> Result<(), ServiceError> {
        let id = job.challenge_id.as_str();
        let attempts = job.attempts + 1;
        let sent = match self.users.outgoing_notice(&job.user, id).await {
            Ok(None) => {
                tracing::info!("notice already recorded or no longer kept; nothing to send");
                self.queue.finish(&job, false, Some("obsolete")).await?;
                self.counted(&job, AttemptResult::Obsolete);
                return Ok(());
            }
            // The same sender as the tenant's codes: its own provider when it set one.
            Ok(Some(notice)) => match self.sender(&job.user.tenant, notice.channel).await {
                Ok(sender) => sender.send_notice(&notice).await,
                Err(e) => Err(e),
            },
            // The destination did not open (the data key is unavailable, or was shredded):
            // retried like a provider's failure, then recorded as failed, never silent.
            Err(e) => {
                tracing::warn!(error = %e, "cannot prepare the notice");
                Err(SendError::Retryable(
                    "the notice's destination could not be opened".to_owned(),
                ))
            }
        };
        match sent {
            Ok(receipt) => {
                let outcome = DeliveryOutcome::Delivered {
                    provider_message_id: receipt.provider_message_id,
                };
                // Sent: from here a failure must not lead to a second send.
                self.keep_recording(claimed, || self.record_sent(&job, outcome.clone()))
                    .await?;
                self.counted(&job, AttemptResult::Delivered);
                tracing::info!("notice delivered");
            }
            Err(SendError::Retryable(error)) if attempts < self.policy.max_attempts => {
                let delay = self.policy.first_backoff * 2u32.saturating_pow(attempts - 1);
                tracing::warn!(%error, ?delay, "notice delivery failed; will retry");
                self.queue
                    .retry_later(&job, attempts, delay, &error)
                    .await?;
                self.counted(&job, AttemptResult::Retried);
            }
            Err(e) => {
                let error = e.to_string();
                tracing::warn!(%error, "notice delivery failed; giving up");
                self.users
                    .record_notification(
                        &job.user,
                        id,
                        DeliveryOutcome::Failed {
                            error: error.clone(),
                            attempts,
                        },
                    )
                    .await?;
                self.queue.finish(&job, false, Some(&error)).await?;
                self.counted(&job, AttemptResult::Failed);
            }
        }
        Ok(())
    }
}
