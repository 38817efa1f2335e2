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
    /// The tenant's own delivery providers; `None`: the service's.
    pub delivery: Option<twofold_domain::tenant::TenantDelivery>,
}

impl TenantView {
    /// The name messages to users go out under: the sender name the tenant set with its
    /// providers, else its name.
    pub fn sender_name(&self) -> &str {
        self.delivery
            .as_ref()
            .and_then(|d| d.facts.sender_name.as_deref())
            .unwrap_or(&self.name)
    }
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

/// Seals secrets and PII (AES-256-GCM) under data keys wrapped by the master key: a tenant's
/// own key for what belongs to the tenant, and one key per user for what belongs to a user, so
/// destroying that key erases the user. `context` (e.g. `"{aggregate id}/totp"`) is bound into
/// the seal as associated data, so a sealed value copied to another user or purpose does not
/// open.
#[async_trait]
pub trait Sealer: Send + Sync {
    /// Seals `plaintext` under the tenant's own key.
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
    /// Seals `plaintext` under the user's own key (created on first use).
    async fn seal_for_user(
        &self,
        user: &twofold_domain::user::UserRef,
        context: &str,
        plaintext: &[u8],
    ) -> Result<twofold_domain::secrets::SealedSecret, StoreError>;
    /// Opens a seal made by [`Sealer::seal_for_user`] for the same user and context (or one
    /// made under the tenant's key before users had their own).
    async fn open_for_user(
        &self,
        user: &twofold_domain::user::UserRef,
        context: &str,
        sealed: &twofold_domain::secrets::SealedSecret,
    ) -> Result<zeroize::Zeroizing<Vec<u8>>, StoreError>;
    /// Destroys the user's keys: nothing sealed for the user opens again, anywhere. Returns
    /// how many keys went (none when there was nothing to destroy).
    async fn erase_user(&self, user: &twofold_domain::user::UserRef) -> Result<u64, StoreError>;
    /// Destroys every key of the tenant and its users.
    async fn erase_tenant(&self, tenant: &TenantId) -> Result<u64, StoreError>;
    /// Whether `sealed` is under the tenant's first-format key (sealed before per-user keys),
    /// and should be sealed again (`twofold keys reseal`).
    fn needs_reseal(&self, sealed: &twofold_domain::secrets::SealedSecret) -> bool;
    /// Whether the keys live apart from the events (another server), so an erasure also
    /// reaches the backups of the event database.
    fn keys_apart(&self) -> bool;
    /// Whether the tenant still has its first-format key (what was sealed before per-user keys
    /// opens under it until `twofold keys reseal` destroys it).
    async fn has_first_format_key(&self, tenant: &TenantId) -> Result<bool, StoreError>;
    /// Destroys the tenant's first-format key, once nothing in use is sealed under it: every
    /// seal made before per-user keys stops opening. Returns whether there was one.
    async fn retire_first_format_key(&self, tenant: &TenantId) -> Result<bool, StoreError>;
}

/// What an authenticator app needs to enroll: shown once, never stored in clear.
#[derive(Clone, PartialEq, Eq)]
pub struct TotpProvisioning {
    /// The secret in base32 (RFC 4648, no padding), for manual entry.
    pub secret_base32: String,
    /// `otpauth://totp/...` URI, known to fit in a QR code; [`TotpEngine::qr_png`] and
    /// [`TotpEngine::qr_svg`] draw it when a caller asks for the picture (drawing took half
    /// of an enrollment's CPU, for callers that mostly show the URI or the secret).
    pub uri: String,
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

    /// `uri` (a provisioned one) as a QR code, `data:image/png;base64,...`.
    fn qr_png(&self, uri: &str) -> Result<String, TotpError>;

    /// `uri` (a provisioned one) as a QR code, an SVG document.
    fn qr_svg(&self, uri: &str) -> Result<String, TotpError>;

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

mod console;
mod delivery;
pub use console::*;
pub use delivery::*;
mod overview;
pub use overview::*;
mod hosted;
pub use hosted::*;
mod operations;
pub use operations::*;
