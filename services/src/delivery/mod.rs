//! The delivery worker: sends queued one-time codes, retries temporary failures with
//! exponential backoff, and records the outcome on the user's aggregate.
//!
//! Exactly once in effect: the queue holds one job per challenge (filled from the event log), a
//! job is claimed under a lease, and every send carries the challenge id as the provider's
//! idempotency key. A worker that dies after sending but before recording leaves the lease to
//! expire; the retry sends with the same key (the provider recognises it) and recording is
//! idempotent (the aggregate records a challenge's delivery once).

use std::sync::Arc;
use std::time::Duration;

use twofold_domain::channel::Channel;
use twofold_domain::user::DeliveryOutcome;

use tracing::Instrument;

use crate::ports::{CodeSender, DeliveryJob, DeliveryKind, DeliveryQueue, SendError};
use crate::users::UserService;
use crate::ServiceError;

mod notice;
mod spawn;
pub use spawn::DELIVERY_CONCURRENCY;

/// Retry policy of the worker.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Attempts before giving up on a temporary failure.
    pub max_attempts: u32,
    /// Delay before the first retry; doubled for each further one.
    pub first_backoff: Duration,
    /// How long a claimed job is reserved for one worker.
    pub lease: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 5,
            first_backoff: Duration::from_secs(2),
            lease: Duration::from_secs(60),
        }
    }
}

/// Drains the delivery queue.
#[derive(Clone)]
pub struct DeliveryWorker {
    users: UserService,
    queue: Arc<dyn DeliveryQueue>,
    email: Arc<dyn CodeSender>,
    sms: Arc<dyn CodeSender>,
    policy: RetryPolicy,
}

impl DeliveryWorker {
    /// Wires the worker.
    pub fn new(
        users: UserService,
        queue: Arc<dyn DeliveryQueue>,
        email: Arc<dyn CodeSender>,
        sms: Arc<dyn CodeSender>,
        policy: RetryPolicy,
    ) -> Self {
        Self {
            users,
            queue,
            email,
            sms,
            policy,
        }
    }

    /// Reserves the next due job for this worker for the lease, if one is due. Jobs under
    /// another worker's lease are skipped, so several sends (of one instance or of many) can
    /// run at once, each on its own job.
    pub async fn claim(&self) -> Result<Option<DeliveryJob>, ServiceError> {
        Ok(self.queue.claim(self.policy.lease).await?)
    }

    /// Sends a job [`DeliveryWorker::claim`] returned, and records the outcome.
    pub async fn deliver_claimed(&self, job: DeliveryJob) -> Result<(), ServiceError> {
        let span = tracing::info_span!(
            "delivery",
            tenant = job.user.tenant.as_str(),
            challenge = job.challenge_id.as_str(),
            kind = job.kind.as_str(),
            channel = job.channel.as_str(),
            attempt = job.attempts + 1,
        );
        self.deliver(job).instrument(span).await
    }

    async fn deliver(&self, job: DeliveryJob) -> Result<(), ServiceError> {
        if job.kind == DeliveryKind::Notification {
            return self.deliver_notice(job).await;
        }
        let Some(message) = self.users.outgoing(&job.user, &job.challenge_id).await? else {
            tracing::info!("nothing to send any more (spent, expired or already delivered)");
            self.queue
                .finish(&job.challenge_id, false, Some("obsolete"))
                .await?;
            return Ok(());
        };
        let sender = match job.channel {
            Channel::Email => &self.email,
            Channel::Sms => &self.sms,
        };
        let attempts = job.attempts + 1;
        match sender.send(&message).await {
            Ok(receipt) => {
                self.users
                    .record_delivery(
                        &job.user,
                        &job.challenge_id,
                        DeliveryOutcome::Delivered {
                            provider_message_id: receipt.provider_message_id,
                        },
                    )
                    .await?;
                self.queue.finish(&job.challenge_id, true, None).await?;
                tracing::info!("code delivered");
            }
            Err(SendError::Retryable(error)) if attempts < self.policy.max_attempts => {
                let delay = self.policy.first_backoff * 2u32.saturating_pow(attempts - 1);
                tracing::warn!(%error, ?delay, "delivery failed; will retry");
                self.queue
                    .retry_later(&job.challenge_id, attempts, delay, &error)
                    .await?;
            }
            Err(e) => {
                let error = e.to_string();
                tracing::warn!(%error, "delivery failed; giving up");
                self.users
                    .record_delivery(
                        &job.user,
                        &job.challenge_id,
                        DeliveryOutcome::Failed {
                            error: error.clone(),
                            attempts,
                        },
                    )
                    .await?;
                self.queue
                    .finish(&job.challenge_id, false, Some(&error))
                    .await?;
            }
        }
        Ok(())
    }
}
