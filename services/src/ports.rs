//! What the application needs from the outside world. Adapters live in `twofold-infra`.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use twofold_domain::tenant::KeyedHash;
use twofold_domain::{ApiKeyId, Policy, Role, TenantId};

use crate::StoreError;

/// The current time. A port so tests and the domain never read the wall clock themselves.
pub trait Clock: Send + Sync {
    /// Now.
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
    /// Id.
    pub id: TenantId,
    /// Display name.
    pub name: String,
    /// Current policy.
    pub policy: Policy,
    /// When registered.
    pub created_at: DateTime<Utc>,
}

/// An API key as the read model shows it (never its secret).
#[derive(Debug, Clone, PartialEq)]
pub struct ApiKeyView {
    /// Public id.
    pub id: ApiKeyId,
    /// Owning tenant.
    pub tenant_id: TenantId,
    /// Role.
    pub role: Role,
    /// Label.
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
#[error("cannot build the TOTP enrollment: {0}")]
pub struct TotpError(pub String);

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
