//! Secret material as the domain sees it: opaque sealed blobs and TOTP parameters. The domain
//! never holds a secret in clear; it asks its services to check codes against sealed secrets.

use serde::{Deserialize, Serialize};

use crate::TotpAlgorithm;

/// A secret or piece of PII sealed (AES-256-GCM) under the tenant's data key. Opaque here;
/// auditors never see it. Deleting the tenant's data key makes every seal unreadable
/// (crypto-shredding) while the events stay immutable.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SealedSecret(String);

impl SealedSecret {
    /// Wraps the sealer's output (base64 text).
    pub fn from_encoded(encoded: String) -> Self {
        Self(encoded)
    }

    /// The encoded form, for the sealer.
    pub fn as_encoded(&self) -> &str {
        &self.0
    }
}

/// How TOTP codes of one enrollment are computed (RFC 6238).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TotpParams {
    /// HMAC algorithm.
    pub algorithm: TotpAlgorithm,
    /// Code length (6 or 8).
    pub digits: u8,
    /// Time step in seconds (30).
    pub period: u32,
}

impl TotpParams {
    /// The RFC 6238 / Google Authenticator time step.
    pub const PERIOD: u32 = 30;
}
