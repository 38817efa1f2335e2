//! What the user aggregate needs from the outside (sealing, TOTP, keyed hashing), and the
//! challenge codes derived under the server's key.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use twofold_domain::channel::Channel;
use twofold_domain::secrets::{SealedSecret, TotpParams};
use twofold_domain::tenant::KeyedHash;
use twofold_domain::user::{Assertion, CodeChecker, RegisteredCredential, ServicesError, UserRef};
use twofold_domain::webauthn::RelyingParty;

use crate::ports::{Sealer, SecretHasher, TenantDirectory, TotpEngine};
use crate::webauthn_port::WebAuthnEngine;

const RECOVERY_HASH_PURPOSE: &str = "recovery-code";
const CHALLENGE_CODE_PURPOSE: &str = "challenge-code";
const DEVICE_TOKEN_PURPOSE: &str = "trusted-device";
const WEBAUTHN_HANDLE_PURPOSE: &str = "webauthn-user-handle";

/// The seal context of a user's email address or phone number.
pub fn contact_context(user: &UserRef, channel: Channel) -> String {
    format!(
        "{}/{}",
        user.aggregate_id(),
        channel.as_str().to_ascii_lowercase()
    )
}

/// The seal context of a user's TOTP secret: a sealed secret only opens for its own user.
pub(super) fn totp_context(user: &UserRef) -> String {
    format!("{}/totp", user.aggregate_id())
}

/// The seal context of a WebAuthn ceremony's state.
fn webauthn_ceremony_context(user: &UserRef) -> String {
    format!("{}/webauthn-ceremony", user.aggregate_id())
}

/// The seal context of a registered WebAuthn credential.
pub(super) fn webauthn_credential_context(user: &UserRef) -> String {
    format!("{}/webauthn-credential", user.aggregate_id())
}

/// What is sealed for a ceremony: the library's state and the relying party it was started
/// for, so the answer is checked against the site the options named even if the policy
/// changes in the five minutes between.
#[derive(serde::Serialize, serde::Deserialize)]
struct SealedCeremony {
    rp: RelyingParty,
    state: String,
}

impl Drop for SealedCeremony {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.state);
    }
}

/// What the user aggregate needs from the outside: sealing, TOTP and keyed hashing.
/// Built once: the command gateway hands it to the aggregate, and `UserService` uses the same.
pub struct UserCrypto {
    pub(super) sealer: Arc<dyn Sealer>,
    pub(super) totp: Arc<dyn TotpEngine>,
    pub(super) hasher: Arc<dyn SecretHasher>,
    /// `None`: WebAuthn refused as unavailable (wirings that do not need it).
    pub(super) webauthn: Option<WebAuthnParts>,
}

/// The WebAuthn ceremonies, and the tenants whose relying party an answer must still match.
pub(super) struct WebAuthnParts {
    engine: Arc<dyn WebAuthnEngine>,
    tenants: Arc<dyn TenantDirectory>,
}

impl UserCrypto {
    /// Wires the aggregate's services.
    pub fn new(
        sealer: Arc<dyn Sealer>,
        totp: Arc<dyn TotpEngine>,
        hasher: Arc<dyn SecretHasher>,
    ) -> Self {
        Self {
            sealer,
            totp,
            hasher,
            webauthn: None,
        }
    }

    /// Runs WebAuthn ceremonies with `engine`; `tenants` gives the relying party in force when
    /// an answer comes back.
    pub fn with_webauthn(
        mut self,
        engine: Arc<dyn WebAuthnEngine>,
        tenants: Arc<dyn TenantDirectory>,
    ) -> Self {
        self.webauthn = Some(WebAuthnParts { engine, tenants });
        self
    }
}

#[async_trait]
impl CodeChecker for UserCrypto {
    async fn totp_step(
        &self,
        user: &UserRef,
        secret: &SealedSecret,
        params: &TotpParams,
        code: &str,
        at: DateTime<Utc>,
    ) -> Result<Option<u64>, ServicesError> {
        let secret = self
            .sealer
            .open_for_user(user, &totp_context(user), secret)
            .await
            .map_err(|e| ServicesError(e.to_string()))?;
        let now = u64::try_from(at.timestamp()).unwrap_or(0);
        Ok(self.totp.matching_step(&secret, params, code, now))
    }

    fn recovery_code_hash(&self, user: &UserRef, normalized_code: &str) -> KeyedHash {
        let message = format!("{}\0{normalized_code}", user.aggregate_id());
        self.hasher
            .keyed_hash(RECOVERY_HASH_PURPOSE, message.as_bytes())
    }

    fn challenge_code_matches(
        &self,
        user: &UserRef,
        challenge_id: &str,
        digits: u8,
        code: &str,
    ) -> bool {
        let expected = self.challenge_code(user, challenge_id, digits);
        let given: String = code.chars().filter(|c| !c.is_whitespace()).collect();
        subtle::ConstantTimeEq::ct_eq(expected.as_bytes(), given.as_bytes()).into()
    }

    async fn webauthn_registration(
        &self,
        user: &UserRef,
        state: &SealedSecret,
        credential: &str,
    ) -> Result<Option<RegisteredCredential>, ServicesError> {
        let engine = self.engine().map_err(|e| ServicesError(e.to_string()))?;
        let ceremony = self.open_ceremony(user, state).await?;
        if !self.still_in_force(user, &ceremony.rp).await? {
            return Ok(None);
        }
        let Some(registered) = engine
            .finish_registration(&ceremony.rp, &ceremony.state, credential)
            .map_err(|e| ServicesError(e.to_string()))?
        else {
            return Ok(None);
        };
        let sealed = self
            .sealer
            .seal_for_user(
                user,
                &webauthn_credential_context(user),
                registered.credential.as_bytes(),
            )
            .await
            .map_err(|e| ServicesError(e.to_string()))?;
        Ok(Some(RegisteredCredential {
            credential_ref: registered.credential_ref,
            sealed,
            counter: registered.counter,
        }))
    }

    async fn webauthn_assertion(
        &self,
        user: &UserRef,
        state: &SealedSecret,
        assertion: &str,
    ) -> Result<Option<Assertion>, ServicesError> {
        let engine = self.engine().map_err(|e| ServicesError(e.to_string()))?;
        let ceremony = self.open_ceremony(user, state).await?;
        if !self.still_in_force(user, &ceremony.rp).await? {
            return Ok(None);
        }
        Ok(engine
            .finish_authentication(&ceremony.rp, &ceremony.state, assertion)
            .map_err(|e| ServicesError(e.to_string()))?
            .map(|a| Assertion {
                credential_ref: a.credential_ref,
                counter: a.counter,
            }))
    }
}

impl UserCrypto {
    /// The one-time code of a challenge: HMAC(pepper, purpose, user, challenge id) reduced to
    /// `digits` decimal digits. Deriving it means no code is ever stored, in clear or sealed:
    /// the delivery worker and the verifier compute the same value from the challenge id.
    pub fn challenge_code(
        &self,
        user: &UserRef,
        challenge_id: &str,
        digits: u8,
    ) -> zeroize::Zeroizing<String> {
        let message = format!("{}\0{challenge_id}", user.aggregate_id());
        let hash = self
            .hasher
            .keyed_hash(CHALLENGE_CODE_PURPOSE, message.as_bytes());
        // 64 bits of the MAC modulo 10^digits: bias below 10^-10.
        let value = u64::from_str_radix(&hash.as_hex()[..16], 16).unwrap_or(0);
        let digits = u32::from(digits.clamp(6, 8));
        zeroize::Zeroizing::new(format!(
            "{:0width$}",
            value % 10u64.pow(digits),
            width = digits as usize
        ))
    }

    /// The keyed hash of a trusted-device token, bound to its user: a token only ever works
    /// for the user it was issued to.
    pub fn device_token_hash(&self, user: &UserRef, token: &str) -> KeyedHash {
        let message = format!("{}\0{token}", user.aggregate_id());
        self.hasher
            .keyed_hash(DEVICE_TOKEN_PURPOSE, message.as_bytes())
    }
}

impl UserCrypto {
    /// A user's email address or phone number for `channel`, opened from `sealed` (a current
    /// contact's seal, or the one a notice was queued with).
    pub(super) async fn open_contact(
        &self,
        user: &UserRef,
        channel: Channel,
        sealed: &SealedSecret,
    ) -> Result<zeroize::Zeroizing<String>, crate::ServiceError> {
        let opened = self
            .sealer
            .open_for_user(user, &contact_context(user, channel), sealed)
            .await?;
        let text = std::str::from_utf8(&opened)
            .map_err(|_| crate::ServiceError::Internal("sealed destination is not text".into()))?;
        Ok(zeroize::Zeroizing::new(text.to_owned()))
    }
}

/// WebAuthn: sealing ceremonies and credentials, and the user handle.
impl UserCrypto {
    pub(super) fn engine(&self) -> Result<&Arc<dyn WebAuthnEngine>, crate::ServiceError> {
        self.webauthn.as_ref().map(|w| &w.engine).ok_or_else(|| {
            crate::ServiceError::PolicyViolation("WebAuthn is not available on this server".into())
        })
    }

    /// The WebAuthn user handle: a keyed hash of the user, so authenticators never hold the
    /// tenant's user id (which may be an email address) in the handle.
    pub(super) fn webauthn_user_handle(&self, user: &UserRef) -> [u8; 16] {
        let hash = self
            .hasher
            .keyed_hash(WEBAUTHN_HANDLE_PURPOSE, user.aggregate_id().as_bytes());
        let mut handle = [0u8; 16];
        for (i, byte) in handle.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&hash.as_hex()[2 * i..2 * i + 2], 16).unwrap_or(0);
        }
        handle
    }

    /// Whether the tenant's relying party is still `rp`, the one a ceremony was started for. An
    /// answer is judged by both: the options named `rp` (the authenticator signed for its
    /// rpId), and an admin's change (an origin withdrawn, verification now required) must hold
    /// from that moment, for ceremonies already under way too. Any change refuses the answer.
    async fn still_in_force(
        &self,
        user: &UserRef,
        rp: &RelyingParty,
    ) -> Result<bool, ServicesError> {
        let parts = self
            .webauthn
            .as_ref()
            .ok_or_else(|| ServicesError("WebAuthn is not available".into()))?;
        let tenant = parts
            .tenants
            .tenant(&user.tenant)
            .await
            .map_err(|e| ServicesError(e.to_string()))?;
        let same = tenant.and_then(|t| t.policy.web_authn).as_ref() == Some(rp);
        if !same {
            tracing::debug!("webauthn answer refused: the relying party changed since it started");
        }
        Ok(same)
    }

    /// Seals a ceremony's state with the relying party it was started for.
    pub(super) async fn seal_ceremony(
        &self,
        user: &UserRef,
        rp: &RelyingParty,
        state: &str,
    ) -> Result<SealedSecret, crate::ServiceError> {
        let ceremony = SealedCeremony {
            rp: rp.clone(),
            state: state.to_owned(),
        };
        let json = zeroize::Zeroizing::new(
            serde_json::to_vec(&ceremony)
                .map_err(|e| crate::ServiceError::Internal(Box::new(e)))?,
        );
        Ok(self
            .sealer
            .seal_for_user(user, &webauthn_ceremony_context(user), &json)
            .await?)
    }

    async fn open_ceremony(
        &self,
        user: &UserRef,
        sealed: &SealedSecret,
    ) -> Result<SealedCeremony, ServicesError> {
        let json = self
            .sealer
            .open_for_user(user, &webauthn_ceremony_context(user), sealed)
            .await
            .map_err(|e| ServicesError(e.to_string()))?;
        serde_json::from_slice(&json).map_err(|e| ServicesError(format!("ceremony state: {e}")))
    }

    /// Opens a registered credential for the library.
    pub(super) async fn open_credential(
        &self,
        user: &UserRef,
        sealed: &SealedSecret,
    ) -> Result<zeroize::Zeroizing<String>, crate::ServiceError> {
        let bytes = self
            .sealer
            .open_for_user(user, &webauthn_credential_context(user), sealed)
            .await?;
        String::from_utf8(bytes.to_vec())
            .map(zeroize::Zeroizing::new)
            .map_err(|e| crate::ServiceError::Internal(Box::new(e)))
    }
}
