//! What the application needs from the outside world. Adapters live in `twofold-infra`.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use twofold_domain::tenant::KeyedHash;
use twofold_domain::{ApiKeyId, Policy, Role, TenantId, UserId};

use crate::StoreError;

/// The current time. A port so tests and the domain never read the wall clock themselves.
pub trait Clock: Send + Sync {
    fn now(&self) -> DateTime<Utc>;
}

/// Cryptographically secure random bytes: ids, key secrets, codes.
pub trait Entropy: Send + Sync {
    /// Fills `buf` from a CSPRNG.
    fn fill(&self, buf: &mut [u8]);
}

/// Keyed hashing of secrets the service must recognise but never store (API keys, recovery
/// codes, device tokens). `purpose` separates domains, so a hash of one kind can never be
/// replayed as another.
pub trait SecretHasher: Send + Sync {
    /// HMAC of `secret` under the server's pepper, for `purpose`.
    fn keyed_hash(&self, purpose: &str, secret: &[u8]) -> KeyedHash;
}

/// A tenant as the read model shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct TenantView {
    pub id: TenantId,
    /// Display name.
    pub name: String,
    /// Current policy.
    pub policy: Policy,
    /// When registered.
    pub created_at: DateTime<Utc>,
    /// When enforcement was last turned on (`None` while 2FA is not enforced): every user's
    /// grace period starts then at the earliest.
    pub enforced_since: Option<DateTime<Utc>>,
}

/// An API key as the read model shows it (never its secret).
#[derive(Debug, Clone, PartialEq)]
pub struct ApiKeyView {
    /// Public id.
    pub id: ApiKeyId,
    /// Owning tenant.
    pub tenant_id: TenantId,
    pub role: Role,
    pub label: String,
    /// When issued.
    pub created_at: DateTime<Utc>,
    /// When revoked.
    pub revoked_at: Option<DateTime<Utc>>,
}

/// Read models of tenants and their keys, kept by the event processor.
#[async_trait]
pub trait TenantDirectory: Send + Sync {
    /// One tenant.
    async fn tenant(&self, id: &TenantId) -> Result<Option<TenantView>, StoreError>;
    /// Every key of a tenant, oldest first.
    async fn api_keys(&self, id: &TenantId) -> Result<Vec<ApiKeyView>, StoreError>;
    /// The key with this keyed hash, in any tenant (how a bearer key is authenticated).
    async fn key_by_hash(&self, hash: &KeyedHash) -> Result<Option<ApiKeyView>, StoreError>;
    /// Forgets anything cached about the tenant (after this instance changed it). Directories
    /// without a cache have nothing to do.
    fn invalidate(&self, _tenant: &TenantId) {}
}

/// Lets a request read its own writes: after a command commits, wait (bounded) until the
/// projections have processed its last event.
#[async_trait]
pub trait ReadModelSync: Send + Sync {
    /// Waits until every projection has seen event `sequence` of the aggregate. Returns
    /// normally after a bounded wait even if they have not (the write is committed either way;
    /// only the read model lags), logging that it happened.
    async fn settle(
        &self,
        aggregate_type: &str,
        aggregate_id: &str,
        sequence: usize,
    ) -> Result<(), StoreError>;

    /// Waits until every projection has seen every event committed before the call (bounded,
    /// like [`ReadModelSync::settle`]): reads of views that commands do not settle (such as
    /// compliance) still see what was written before them.
    async fn catch_up_all(&self) -> Result<(), StoreError>;
}

/// How many users a tenant has and how many of them have 2FA.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UserCounts {
    /// Users the tenant has shown us.
    pub total: u64,
    /// Users with an active second factor.
    pub enrolled: u64,
}

/// A user without an active second factor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotEnrolledUser {
    /// The tenant's id for the user.
    pub user_id: UserId,
    /// When the tenant first showed us the user (their grace period starts then at the latest).
    pub first_seen_at: DateTime<Utc>,
}

/// The compliance read model: users by enrollment, kept by the event processor so a report
/// never scans events.
#[async_trait]
pub trait ComplianceReadModel: Send + Sync {
    /// Totals for the tenant.
    async fn counts(&self, tenant: &TenantId) -> Result<UserCounts, StoreError>;
    /// Users without 2FA ordered by (first seen, id), after the given position, at most
    /// `limit` of them.
    async fn not_enrolled(
        &self,
        tenant: &TenantId,
        after: Option<&(DateTime<Utc>, UserId)>,
        limit: u32,
    ) -> Result<Vec<NotEnrolledUser>, StoreError>;
}

/// A place in the event log's commit-safe order: the writing transaction, then the global
/// position. Every event that commits later sorts after every event already readable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LogPosition {
    /// The writing transaction's id.
    pub tx: i64,
    /// The global insertion position.
    pub position: i64,
}

/// Which of a tenant's events to read. The tenant is not part of it: it is always the caller's,
/// passed separately, so no filter can reach another tenant.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogFilter {
    /// Only this user's events (their aggregate).
    pub user: Option<UserId>,
    /// Only these event types (empty: all).
    pub event_types: Vec<String>,
    /// Recorded at or after.
    pub from: Option<DateTime<Utc>>,
    /// Recorded before.
    pub to: Option<DateTime<Utc>>,
}

/// Which way a read goes through the commit-safe order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogOrder {
    /// Oldest first: events after the cursor.
    OldestFirst,
    /// Newest first: events before the cursor.
    NewestFirst,
}

/// One event as stored, before masking.
#[derive(Debug, Clone, PartialEq)]
pub struct LoggedEvent {
    /// Where it sits in commit-safe order.
    pub at: LogPosition,
    /// `user` or `tenant`.
    pub aggregate_type: String,
    /// `{tenant}/user/{userId}` or `{tenant}/tenant`.
    pub aggregate_id: String,
    /// e.g. `CodeSent`.
    pub event_type: String,
    /// The serialized domain event (may hold sealed secrets and hashes: never shown as is).
    pub payload: serde_json::Value,
    /// Request metadata (actor, request id, ...).
    pub metadata: serde_json::Value,
    /// When its transaction recorded it.
    pub recorded_at: DateTime<Utc>,
}

/// The event log, read for auditors: only events whose transaction is below the commit horizon
/// (every transaction that could still commit has a larger id), so a reader that has seen up
/// to some position never misses an event that commits later at an earlier one.
#[async_trait]
pub trait AuditLog: Send + Sync {
    /// The commit horizon now: transactions below it have all ended.
    async fn horizon(&self) -> Result<i64, StoreError>;
    /// Up to `limit` of the tenant's events matching `filter`, strictly after (`OldestFirst`)
    /// or before (`NewestFirst`) `cursor`, with transaction ids below `below` (the current
    /// horizon when `None`).
    async fn read(
        &self,
        tenant: &TenantId,
        filter: &LogFilter,
        order: LogOrder,
        cursor: Option<LogPosition>,
        below: Option<i64>,
        limit: u32,
    ) -> Result<Vec<LoggedEvent>, StoreError>;
}

/// Tells waiting readers that new events may be readable (the event processor applied some):
/// a counter that only goes up, so a reader busy while it changed still sees the change.
pub trait CommitSignal: Send + Sync {
    /// A receiver that is marked changed whenever new events were processed.
    fn subscribe(&self) -> tokio::sync::watch::Receiver<u64>;
}

/// Wakes the delivery worker when the event processor applied new events (a `CodeSent` queues a
/// delivery). Unlike [`CommitSignal`], only what happens after the wait starts counts: the worker
/// claims again at its next poll anyway.
#[async_trait]
pub trait ProcessorProgress: Send + Sync {
    /// Returns the next time the processor applies events.
    async fn progressed(&self);
}

/// Whether the service can do its work (the database answers). Behind `/health`.
#[async_trait]
pub trait HealthCheck: Send + Sync {
    /// `Ok` when healthy.
    async fn check(&self) -> Result<(), StoreError>;
}

/// Seals secrets and PII under the tenant's data key (AES-256-GCM), itself wrapped by the master
/// key. `context` (e.g. `"{aggregate id}/totp"`) is bound into the seal as associated data, so a
/// sealed value copied to another user or purpose does not open.
#[async_trait]
pub trait Sealer: Send + Sync {
    /// Seals `plaintext`.
    async fn seal(
        &self,
        tenant: &TenantId,
        context: &str,
        plaintext: &[u8],
    ) -> Result<twofold_domain::secrets::SealedSecret, StoreError>;
    /// Opens a seal made by [`Sealer::seal`] with the same tenant and context.
    async fn open(
        &self,
        tenant: &TenantId,
        context: &str,
        sealed: &twofold_domain::secrets::SealedSecret,
    ) -> Result<zeroize::Zeroizing<Vec<u8>>, StoreError>;
}

/// What an authenticator app needs to enroll: shown once, never stored in clear.
#[derive(Clone, PartialEq, Eq)]
pub struct TotpProvisioning {
    /// The secret in base32 (RFC 4648, no padding), for manual entry.
    pub secret_base32: String,
    /// `otpauth://totp/...` URI.
    pub uri: String,
    /// The URI as a QR code, `data:image/png;base64,...`.
    pub qr_png_data_uri: String,
    /// The URI as a QR code, an SVG document.
    pub qr_svg: String,
}

impl std::fmt::Debug for TotpProvisioning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TotpProvisioning(<redacted>)")
    }
}

/// Why a TOTP could not be provisioned.
#[derive(Debug, thiserror::Error)]
pub enum TotpError {
    /// The `otpauth://` URI (label and issuer, percent-encoded) does not fit in a QR code: the
    /// caller's input is too long, not our fault.
    #[error("the enrollment URI of {0} bytes does not fit in a QR code")]
    TooLongForQr(usize),
    /// Anything else.
    #[error("cannot build the TOTP enrollment: {0}")]
    Failed(String),
}

/// RFC 6238 TOTP: provisioning URIs and QR codes, and code checks.
pub trait TotpEngine: Send + Sync {
    /// The enrollment material for `secret` (raw bytes) with `issuer` (the tenant's name) and
    /// `account` (the label the user sees in the app). Characters that would break the
    /// `issuer:account` label (`:`) are replaced.
    fn provision(
        &self,
        secret: &[u8],
        params: &twofold_domain::secrets::TotpParams,
        issuer: &str,
        account: &str,
    ) -> Result<TotpProvisioning, TotpError>;

    /// The time step (unix time / period) within ±1 step of `unix_time` whose code equals
    /// `code`, compared in constant time; `None` when no step matches or `code` is not
    /// `params.digits` digits (spaces are ignored).
    fn matching_step(
        &self,
        secret: &[u8],
        params: &twofold_domain::secrets::TotpParams,
        code: &str,
        unix_time: u64,
    ) -> Option<u64>;
}

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
    /// challenge id) and answers `Granted`; otherwise takes nothing.
    async fn reserve(
        &self,
        id: &str,
        caps: &[SendCap],
        now: DateTime<Utc>,
    ) -> Result<Reservation, StoreError>;
    /// Gives back the slots `id` took in `caps` (its code was not issued after all).
    async fn release(&self, id: &str, caps: &[SendCap]) -> Result<(), StoreError>;
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
}

/// The queue of codes to deliver (fed from the event log, drained by the delivery worker).
#[async_trait]
pub trait DeliveryQueue: Send + Sync {
    /// Claims the next due job for `lease` (another worker may take it after the lease ends).
    async fn claim(&self, lease: std::time::Duration) -> Result<Option<DeliveryJob>, StoreError>;
    /// The job is done (delivered, or given up for good).
    async fn finish(
        &self,
        challenge_id: &str,
        delivered: bool,
        error: Option<&str>,
    ) -> Result<(), StoreError>;
    /// Try again after `delay`.
    async fn retry_later(
        &self,
        challenge_id: &str,
        attempts: u32,
        delay: std::time::Duration,
        error: &str,
    ) -> Result<(), StoreError>;
}
