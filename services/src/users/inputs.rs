//! What callers pass to the user use-cases beyond plain values.

use twofold_domain::Method;

/// A current factor presented to authorise adding, replacing or removing one (`ProofInput`
/// in the API). The code never appears in `Debug`.
#[derive(Clone)]
pub struct ProofInput {
    /// The method.
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
