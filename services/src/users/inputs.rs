//! What callers pass to the user use-cases beyond plain values.

use twofold_domain::Method;

/// A current factor presented: at sign-in, to replace recovery codes or turn 2FA off, and to
/// authorise adding, replacing or removing a factor (`ProofInput` in the API). The code never
/// appears in `Debug`.
#[derive(Clone)]
pub struct ProofInput {
    pub method: Method,
    /// The code as typed.
    pub code: String,
    /// For EMAIL and SMS: the sign-in challenge the code was sent with.
    pub challenge_id: Option<String>,
}

impl std::fmt::Debug for ProofInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProofInput")
            .field("method", &self.method)
            .field("code", &"<redacted>")
            .field("challenge_id", &self.challenge_id)
            .finish()
    }
}

/// A sign-in check: the factor presented, and whether to trust the device it came from.
#[derive(Debug, Clone)]
pub struct VerifyInput {
    pub factor: ProofInput,
    /// Remember the device and return its token.
    pub trust_device: bool,
    /// With `trust_device`: what the user calls the device.
    pub device_label: Option<String>,
}
