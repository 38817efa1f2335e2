//! The delivery side of the ports: messages on their way to users, the senders that carry
//! them, the send caps, the delivery queue and tenants' own providers.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use twofold_domain::TenantId;

use crate::StoreError;

/// A one-time code on its way to a user. Its `Debug` hides the code and the destination.
pub struct OutgoingCode {
    /// The challenge: the idempotency key at the provider, so a resend after a crash is
    /// recognised as the same message.
    pub challenge_id: String,
    /// The tenant's display name, named in the message.
    pub tenant_name: String,
    /// Email or SMS.
    pub channel: twofold_domain::channel::Channel,
    /// Sign-in or channel verification (changes the wording).
    pub purpose: twofold_domain::channel::Purpose,
    /// The email address, or the phone number in E.164.
    pub destination: zeroize::Zeroizing<String>,
    pub code: zeroize::Zeroizing<String>,
    /// How long the code stays valid from now, in seconds (said in the message, never
    /// rounded up).
    pub valid_seconds: u32,
    /// The language to write in: the user's, else the tenant's default, else English.
    pub language: twofold_domain::Language,
    /// The host of the tenant's web origin, when set: SMS end with its autofill line.
    pub web_host: Option<String>,
}

impl std::fmt::Debug for OutgoingCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OutgoingCode")
            .field("challenge_id", &self.challenge_id)
            .field("channel", &self.channel)
            .field("language", &self.language)
            .field("destination", &"<redacted>")
            .field("code", &"<redacted>")
            .finish()
    }
}

/// What the provider said when it accepted a message.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DeliveryReceipt {
    /// The provider's message id (Twilio `sid`, SMTP queue id...), when it gives one.
    pub provider_message_id: Option<String>,
}

/// Why a message was not accepted. Messages never contain the code or the destination.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// Worth retrying with backoff: timeouts, connection failures, 5xx, 429.
    #[error("temporary delivery failure: {0}")]
    Retryable(String),
    /// Retrying will not help: 4xx, a refused address.
    #[error("permanent delivery failure: {0}")]
    Permanent(String),
}

/// A security notice on its way to a user, already written in their language. It holds no
/// code or secret; its `Debug` still hides the destination.
pub struct OutgoingNotice {
    /// The notice's id: the provider's idempotency key, like a challenge id.
    pub notification_id: String,
    /// Email or SMS.
    pub channel: twofold_domain::channel::Channel,
    /// The email address, or the phone number in E.164.
    pub destination: zeroize::Zeroizing<String>,
    /// The email's subject.
    pub subject: String,
    /// The email's `text/plain` part.
    pub plain: String,
    /// The email's `text/html` part.
    pub html: String,
    /// The SMS (one segment).
    pub sms: String,
}

impl std::fmt::Debug for OutgoingNotice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OutgoingNotice")
            .field("notification_id", &self.notification_id)
            .field("channel", &self.channel)
            .field("destination", &"<redacted>")
            .finish()
    }
}

/// Sends security notices through one channel. Every [`CodeSender`] is one: a notice goes by
/// the same provider, with the same retries and idempotency, as the tenant's codes.
#[async_trait]
pub trait NoticeSender: Send + Sync {
    /// Sends `notice`; must be safe to call again with the same notification id.
    async fn send_notice(&self, notice: &OutgoingNotice) -> Result<DeliveryReceipt, SendError>;
}

/// Sends one-time codes through one channel (SMTP, an SMS provider, the dev console).
#[async_trait]
pub trait CodeSender: NoticeSender + Send + Sync {
    /// Sends `message`; must be safe to call again with the same challenge id.
    async fn send(&self, message: &OutgoingCode) -> Result<DeliveryReceipt, SendError>;
}

/// One limit a code's send must fit under: at most `limit` sends in `bucket` per `window`.
/// A bucket names what is counted (a tenant's SMS, a destination's keyed hash...), never a
/// secret or PII in clear.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendCap {
    /// What is counted.
    pub bucket: String,
    /// Sends allowed per window.
    pub limit: u32,
    /// The sliding window.
    pub window: chrono::Duration,
}

/// The answer to a reservation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reservation {
    /// Every cap had room: one slot is taken in each.
    Granted,
    /// The cap at this index (of those passed) is full; nothing was taken.
    Refused {
        /// Index of the full cap.
        cap: usize,
        /// When its oldest counted send leaves the window.
        retry_after_seconds: i64,
    },
}

/// Counts sends against caps, exactly under concurrency and across instances: a send reserves
/// its slots before its code is issued and gives them back if it is not.
#[async_trait]
pub trait SendLimiter: Send + Sync {
    /// Atomically: if every cap has room at `now`, takes one slot in each under `id` (the
    /// challenge id) and answers `Granted`; otherwise takes nothing. `caps` are in the order a
    /// refusal is reported, the broadest (the tenant's budget) last.
    ///
    /// A reservation whose caller stops waiting for it (its request was dropped: the client
    /// hung up, a proxy timed out) is not kept: nobody would issue its code or give its slots
    /// back, so an attacker could spend someone's caps without a trace.
    async fn reserve(
        &self,
        id: &str,
        caps: &[SendCap],
        now: DateTime<Utc>,
    ) -> Result<Reservation, StoreError>;
    /// Gives back the slots `id` took in `caps` at `reserved_at` (the `now` of its
    /// reservation) because its code was not issued after all. At most once per grant, and
    /// never retried: a give-back comes off the counts, so a second one (say, after a reply
    /// lost with its commit) would free a slot another send holds. One that fails leaves the
    /// slot counted until its window ends, the safe side for a cap.
    async fn release(
        &self,
        id: &str,
        caps: &[SendCap],
        reserved_at: DateTime<Utc>,
    ) -> Result<(), StoreError>;
}

/// What a queued delivery carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DeliveryKind {
    /// A one-time code (`CodeSent`); the job's id is the challenge id.
    #[default]
    Code,
    /// A security notice (`NotificationQueued`); the job's id is the notification id.
    Notification,
}

impl DeliveryKind {
    /// The queue's name for it.
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryKind::Code => "code",
            DeliveryKind::Notification => "notification",
        }
    }
}

/// A queued delivery: which challenge (or notice) of which user, by which channel, how many
/// tries so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryJob {
    /// The challenge id, or the notification id of a notice.
    pub challenge_id: String,
    /// A code or a notice.
    pub kind: DeliveryKind,
    /// Whose.
    pub user: twofold_domain::user::UserRef,
    /// Email or SMS.
    pub channel: twofold_domain::channel::Channel,
    /// Attempts made before this one.
    pub attempts: u32,
    /// The end of this claim's lease, exactly as stored: the claim's fencing token.
    /// [`DeliveryQueue::finish`] and [`DeliveryQueue::retry_later`] act only while the row still
    /// holds it, so a worker whose lease ran out (and whose job another worker claimed) cannot
    /// overwrite that worker's outcome.
    pub lease: chrono::DateTime<chrono::Utc>,
}

/// The queue of codes to deliver (fed from the event log, drained by the delivery worker).
#[async_trait]
pub trait DeliveryQueue: Send + Sync {
    /// Claims the next due job for `lease` (another worker may take it after the lease ends).
    async fn claim(&self, lease: std::time::Duration) -> Result<Option<DeliveryJob>, StoreError> {
        Ok(self.claim_up_to(lease, 1).await?.pop())
    }
    /// Claims up to `n` due jobs, the longest due first, each for `lease`: one round trip for
    /// a worker with several free slots.
    async fn claim_up_to(
        &self,
        lease: std::time::Duration,
        n: usize,
    ) -> Result<Vec<DeliveryJob>, StoreError>;
    /// The job is done (given up for good, or nothing left to send). Returns `false` when the
    /// claim's lease was lost to another worker: nothing was changed. A delivered job is closed
    /// by the event processor from its recorded `CodeDelivered` or `NotificationDelivered`.
    async fn finish(
        &self,
        job: &DeliveryJob,
        delivered: bool,
        error: Option<&str>,
    ) -> Result<bool, StoreError>;
    /// Deletes finished (delivered or failed) jobs last changed more than `older_than` ago;
    /// returns how many.
    async fn prune(&self, older_than: std::time::Duration) -> Result<u64, StoreError>;
    /// Try again after `delay`. Returns `false`, changing nothing, when the lease was lost.
    async fn retry_later(
        &self,
        job: &DeliveryJob,
        attempts: u32,
        delay: std::time::Duration,
        error: &str,
    ) -> Result<bool, StoreError>;
}

/// Where a tenant's own providers may be reached: the name-resolution half of the SSRF rule
/// (IP literals are checked by the domain).
#[async_trait]
pub trait ProviderHosts: Send + Sync {
    /// Refuses `host` when it resolves to an address providers may not use, looked up for
    /// `tenant`. A name that does not resolve now passes: nothing can be reached through it,
    /// and every connection checks again.
    async fn check(&self, tenant: &TenantId, host: &str) -> Result<(), HostRefusal>;
}

/// Why a provider's host is not accepted now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostRefusal {
    /// It resolves to an address providers may not use; the message is safe to show.
    NotAllowed(String),
    /// Lookups of provider hosts are at one of their bounds (decision 182): the tenant's own,
    /// or all tenants'.
    Busy,
}

/// The senders of tenants' own providers, built from their sealed settings.
#[async_trait]
pub trait TenantSenders: Send + Sync {
    /// The sender of `channel` under `settings` (one version of a tenant's settings), `None`
    /// when they leave this channel to the service's provider. Built once per version and
    /// channel, then reused. An error (the seal does not open, the settings cannot be used)
    /// is a failure before the send.
    async fn sender(
        &self,
        tenant: &TenantId,
        settings: &twofold_domain::tenant::TenantDelivery,
        channel: twofold_domain::channel::Channel,
    ) -> Result<Option<std::sync::Arc<dyn CodeSender>>, SendError>;
}
