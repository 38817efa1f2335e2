//! The WebAuthn ceremonies as the application needs them (`WebAuthnEngine`, implemented in infra
//! over `webauthn-rs`). Everything crossing this port is text: the options the browser gets,
//! the browser's answers, and the library's ceremony state and credentials as opaque JSON that
//! the services seal before the aggregate records them.

use twofold_domain::webauthn::RelyingParty;
use zeroize::Zeroizing;

/// The user as authenticators show and bind it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CeremonyUser {
    /// The WebAuthn user handle: 16 bytes derived from tenant and user under a server key, so
    /// it reveals neither (a user id may be an email address).
    pub handle: [u8; 16],
    /// The account name authenticators show (the tenant's user id).
    pub name: String,
    /// The name shown beside it.
    pub display_name: String,
}

/// A ceremony started: what the browser gets and what the server keeps.
pub struct Ceremony {
    /// `PublicKeyCredentialCreationOptions` or `PublicKeyCredentialRequestOptions` as JSON with
    /// base64url binary fields (what `PublicKeyCredential.parse*OptionsFromJSON` takes).
    pub options: String,
    /// The library's state of the ceremony (holds the challenge): sealed before it is stored.
    pub state: Zeroizing<String>,
}

/// A credential the browser registered, verified.
pub struct EngineCredential {
    /// The authenticator's credential id, base64url.
    pub credential_ref: String,
    /// The credential (public key, algorithm, flags) as the library keeps it: sealed before it
    /// is stored.
    pub credential: Zeroizing<String>,
    /// The signature counter at registration.
    pub counter: u32,
}

/// A verified assertion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineAssertion {
    /// The authenticator's credential id, base64url.
    pub credential_ref: String,
    /// The counter presented.
    pub counter: u32,
}

/// Why a ceremony could not start or be checked for reasons other than a wrong answer: a state
/// or credential that does not parse, a relying party the library refuses. Never shown.
#[derive(Debug, thiserror::Error)]
#[error("webauthn: {0}")]
pub struct EngineError(pub String);

/// The WebAuthn ceremonies of one relying party at a time. A wrong answer (signature, origin,
/// rpId, challenge, a credential not offered) is `Ok(None)`, never an error.
pub trait WebAuthnEngine: Send + Sync {
    /// Options to create a credential, excluding `exclude` (base64url credential ids).
    fn start_registration(
        &self,
        rp: &RelyingParty,
        user: &CeremonyUser,
        exclude: &[String],
    ) -> Result<Ceremony, EngineError>;

    /// Checks the browser's `PublicKeyCredential` (its `toJSON()`) against `state`.
    fn finish_registration(
        &self,
        rp: &RelyingParty,
        state: &str,
        credential: &str,
    ) -> Result<Option<EngineCredential>, EngineError>;

    /// Options to sign with one of `credentials` (as [`EngineCredential::credential`]). The
    /// library is told nothing of their counters: the aggregate judges counters itself.
    fn start_authentication(
        &self,
        rp: &RelyingParty,
        credentials: &[Zeroizing<String>],
    ) -> Result<Ceremony, EngineError>;

    /// Checks an assertion (the browser's `toJSON()`) against `state`.
    fn finish_authentication(
        &self,
        rp: &RelyingParty,
        state: &str,
        assertion: &str,
    ) -> Result<Option<EngineAssertion>, EngineError>;
}
