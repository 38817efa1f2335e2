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
use twofold_domain::TenantId;

use tracing::Instrument;

use crate::ports::{
    CodeSender, DeliveryJob, DeliveryKind, DeliveryQueue, SendError, TenantSenders,
};
use crate::users::UserService;
use crate::ServiceError;

mod notice;
mod settings;
mod spawn;
mod stats;
#[cfg(test)]
mod tests;
pub use spawn::DELIVERY_CONCURRENCY;
pub use stats::{AttemptResult, DeliveryCount, DeliveryStats};

/// How often a sent message's record is tried again while the database is unreachable
/// ([`DeliveryWorker::keep_recording`]).
const RECORD_RETRY: Duration = Duration::from_millis(500);

/// The worker's policy: retries, concurrency, retention (`TWOFOLD_DELIVERY_*`, see
/// [`RetryPolicy::from_lookup`]).
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Attempts before giving up on a temporary failure.
    pub max_attempts: u32,
    /// Delay before the first retry; doubled for each further one.
    pub first_backoff: Duration,
    /// How long a claimed job is reserved for one worker.
    pub lease: Duration,
    /// Sends in flight at once per instance.
    pub concurrency: usize,
    /// How long finished (delivered or failed) jobs stay in the queue before they are pruned.
    pub retention: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 5,
            first_backoff: Duration::from_secs(2),
            lease: Duration::from_secs(60),
            concurrency: DELIVERY_CONCURRENCY,
            retention: Duration::from_secs(7 * 86_400),
        }
    }
}

impl RetryPolicy {
    /// How often finished jobs are pruned: a quarter of the retention, between a second and
    /// ten minutes.
    pub fn prune_every(&self) -> Duration {
        (self.retention / 4).clamp(Duration::from_secs(1), Duration::from_secs(600))
    }
}

/// Drains the delivery queue.
#[derive(Clone)]
pub struct DeliveryWorker {
    users: UserService,
    queue: Arc<dyn DeliveryQueue>,
    email: Arc<dyn CodeSender>,
    sms: Arc<dyn CodeSender>,
    /// Tenants' own providers; `None`: every tenant uses `email` and `sms`.
    tenant_senders: Option<Arc<dyn TenantSenders>>,
    policy: RetryPolicy,
    stats: Arc<DeliveryStats>,
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
            tenant_senders: None,
            policy,
            stats: Arc::default(),
        }
    }

    /// Sends the codes of tenants with their own providers through those.
    pub fn with_tenant_senders(mut self, senders: Arc<dyn TenantSenders>) -> Self {
        self.tenant_senders = Some(senders);
        self
    }

    /// The policy the worker runs with.
    pub fn policy(&self) -> RetryPolicy {
        self.policy
    }

    /// Its counters, for `/metrics` and `/health/ready`.
    pub fn stats(&self) -> Arc<DeliveryStats> {
        self.stats.clone()
    }

    /// Deletes finished jobs older than the retention.
    pub async fn prune(&self) -> Result<u64, ServiceError> {
        Ok(self.queue.prune(self.policy.retention).await?)
    }

    /// Reserves up to `n` due jobs for this worker for the lease, in one round trip. Jobs under
    /// another worker's lease are skipped, so several sends (of one instance or of many) can
    /// run at once, each on its own job.
    pub async fn claim_up_to(&self, n: usize) -> Result<Vec<DeliveryJob>, ServiceError> {
        Ok(self.queue.claim_up_to(self.policy.lease, n).await?)
    }

    /// Sends a job [`DeliveryWorker::claim_up_to`] returned, and records the outcome.
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
        // Just after the claim: the lease runs from about now.
        let claimed = tokio::time::Instant::now();
        if job.kind == DeliveryKind::Notification {
            return self.deliver_notice(job, claimed).await;
        }
        let attempts = job.attempts + 1;
        let message = match self.users.outgoing(&job.user, &job.challenge_id).await {
            Ok(Some(message)) => message,
            Ok(None) => {
                tracing::info!("nothing to send any more (spent, expired or already delivered)");
                self.queue.finish(&job, false, Some("obsolete")).await?;
                self.counted(&job, AttemptResult::Obsolete);
                return Ok(());
            }
            Err(e) => {
                // A seal that does not open, a tenant that cannot be read: retried like a
                // temporary failure, and recorded as failed when the attempts run out, so a
                // code never waits in silence for ever.
                tracing::error!(error = ?e, "cannot prepare the message");
                let error = SendError::Retryable("the message could not be prepared".to_owned());
                return self.failed(&job, attempts, error).await;
            }
        };
        let sender = match self.sender(&job.user.tenant, job.channel).await {
            Ok(sender) => sender,
            Err(e) => return self.failed(&job, attempts, e).await,
        };
        match sender.send(&message).await {
            Ok(receipt) => {
                let outcome = DeliveryOutcome::Delivered {
                    provider_message_id: receipt.provider_message_id,
                };
                // Sent: from here a failure must not lead to a second send.
                self.keep_recording(claimed, || self.record_sent(&job, outcome.clone()))
                    .await?;
                self.counted(&job, AttemptResult::Delivered);
                tracing::info!("code delivered");
                Ok(())
            }
            Err(e) => self.failed(&job, attempts, e).await,
        }
    }

    /// Runs `record` (a sent message's outcome, idempotent) until it is stored. While the
    /// database is unreachable (a restart, a failover), or the user too busy to commit, it is
    /// tried again rather than leave the job to its lease, whose retry would send a notice a
    /// second time, or find a code already used and record nothing. A new attempt starts only
    /// while half the lease is left, and every attempt is cut at three quarters of it, so none
    /// is still running when another worker may claim the job.
    async fn keep_recording<F, R>(
        &self,
        claimed: tokio::time::Instant,
        mut record: F,
    ) -> Result<(), ServiceError>
    where
        F: FnMut() -> R,
        R: std::future::Future<Output = Result<(), ServiceError>>,
    {
        let (retry_until, cut_at) = (
            claimed + self.policy.lease / 2,
            claimed + self.policy.lease * 3 / 4,
        );
        loop {
            let attempt = tokio::time::timeout_at(cut_at, record()).await;
            let error = match attempt {
                Ok(Ok(())) => return Ok(()),
                Ok(Err(e)) => e,
                Err(_) => {
                    return Err(ServiceError::Internal(
                        "recording a sent message did not finish within the lease".into(),
                    ))
                }
            };
            let again = error.is_unavailable() || matches!(error, ServiceError::Conflict(_));
            if !again || tokio::time::Instant::now() + RECORD_RETRY >= retry_until {
                return Err(error);
            }
            tracing::warn!(%error, "sent; recording it again shortly");
            tokio::time::sleep(RECORD_RETRY).await;
        }
    }

    /// Records a sent code or notice on the user (idempotent, so a repeat after a failure is
    /// harmless). The event processor closes the job from the recorded event, a batch of jobs
    /// per statement; until then the lease keeps it from other workers. A record that wrote
    /// nothing (the challenge went with a reset meanwhile, the notice is no longer kept) closes
    /// the job here: no event will.
    async fn record_sent(
        &self,
        job: &DeliveryJob,
        outcome: DeliveryOutcome,
    ) -> Result<(), ServiceError> {
        let id = &job.challenge_id;
        let recorded = match job.kind {
            DeliveryKind::Code => self.users.record_delivery(&job.user, id, outcome).await?,
            DeliveryKind::Notification => {
                self.users
                    .record_notification(&job.user, id, outcome)
                    .await?
            }
        };
        if !recorded {
            self.queue.finish(job, true, None).await?;
        }
        Ok(())
    }

    /// The sender of the job's channel: the tenant's own provider when it set one for this
    /// channel, else the service's.
    async fn sender(
        &self,
        tenant: &TenantId,
        channel: Channel,
    ) -> Result<Arc<dyn CodeSender>, SendError> {
        let service = match channel {
            Channel::Email => &self.email,
            Channel::Sms => &self.sms,
        };
        let Some(senders) = &self.tenant_senders else {
            return Ok(service.clone());
        };
        let settings = self.users.tenant_delivery(tenant).await.map_err(|e| {
            tracing::error!(error = ?e, "cannot read the tenant's delivery settings");
            SendError::Retryable("the tenant's delivery settings could not be read".to_owned())
        })?;
        let Some(settings) = settings else {
            return Ok(service.clone());
        };
        Ok(senders
            .sender(tenant, &settings, channel)
            .await?
            .unwrap_or_else(|| service.clone()))
    }

    /// A failed attempt: retried later while it is temporary and attempts are left, else
    /// recorded on the user as `CodeDeliveryFailed`.
    async fn failed(
        &self,
        job: &DeliveryJob,
        attempts: u32,
        error: SendError,
    ) -> Result<(), ServiceError> {
        match error {
            SendError::Retryable(error) if attempts < self.policy.max_attempts => {
                let delay = self.policy.first_backoff * 2u32.saturating_pow(attempts - 1);
                tracing::warn!(%error, ?delay, "delivery failed; will retry");
                self.queue.retry_later(job, attempts, delay, &error).await?;
                self.counted(job, AttemptResult::Retried);
            }
            e => {
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
                self.queue.finish(job, false, Some(&error)).await?;
                self.counted(job, AttemptResult::Failed);
            }
        }
        Ok(())
    }

    /// Counted once the log (or, for a retry, the queue) holds the outcome, so a count is
    /// never ahead of what is stored.
    fn counted(&self, job: &DeliveryJob, result: AttemptResult) {
        self.stats.record(job.channel, job.kind, result);
    }
}
