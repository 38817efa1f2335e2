//! Passkeys and security keys (WebAuthn): the two ceremonies, each started here (options for the
//! browser, the library's state sealed into the aggregate) and finished by the aggregate, which
//! checks the browser's answer through its `CodeChecker`; and removing one credential.

use chrono::Duration;
use twofold_domain::user::{
    NewWebAuthnChallenge, User, UserAction, UserError, UserEvent, UserRef,
    WEBAUTHN_CHALLENGE_SECONDS,
};
use twofold_domain::webauthn::RelyingParty;
use twofold_domain::{DeviceLabel, Method};

use super::errors::outcome;
use super::{parse_user, ProofInput, RecoveryCodes, UserService, UserStatus};
use crate::encoding::base32_lower;
use crate::ports::TenantView;
use crate::webauthn_port::{Ceremony, CeremonyUser, EngineError};
use crate::{Call, ServiceError};

/// Longest browser answer accepted (a credential with an RSA key and every `toJSON()` field is a
/// few KiB; the GraphQL layer holds `credential` and `code` to the same bound).
pub(super) const MAX_WEBAUTHN_JSON_BYTES: usize = 32 * 1024;
/// Longest display name, in characters.
const MAX_DISPLAY_NAME_CHARS: usize = 64;

/// A ceremony for the browser: `options` is the JSON `PublicKeyCredential.parse*OptionsFromJSON`
/// takes; the answer comes back with `challenge_id`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebAuthnChallengeView {
    pub challenge_id: String,
    pub options: String,
}

impl From<EngineError> for ServiceError {
    fn from(e: EngineError) -> Self {
        ServiceError::Internal(Box::new(e))
    }
}

fn relying_party(tenant: &TenantView) -> Result<RelyingParty, ServiceError> {
    tenant.policy.web_authn.clone().ok_or_else(|| {
        ServiceError::PolicyViolation(
            "the organisation's policy has no WebAuthn relying party (webAuthn)".into(),
        )
    })
}

fn check_json(field: &str, json: &str) -> Result<(), ServiceError> {
    if json.len() > MAX_WEBAUTHN_JSON_BYTES {
        return Err(ServiceError::InvalidInput(format!(
            "{field} is longer than {MAX_WEBAUTHN_JSON_BYTES} bytes"
        )));
    }
    Ok(())
}

impl UserService {
    /// `startWebAuthnRegistration`: options to create a credential (the user's own excluded).
    /// On an account with a factor, `change` must prove one.
    pub async fn start_webauthn_registration(
        &self,
        call: &Call,
        user_id: &str,
        display_name: &str,
        change: Option<&ProofInput>,
    ) -> Result<WebAuthnChallengeView, ServiceError> {
        let user = parse_user(call.tenant(), user_id)?;
        let display_name = display_name.trim();
        if display_name.is_empty()
            || display_name.chars().count() > MAX_DISPLAY_NAME_CHARS
            || display_name.chars().any(char::is_control)
        {
            return Err(ServiceError::InvalidInput(format!(
                "displayName must be 1 to {MAX_DISPLAY_NAME_CHARS} printable characters"
            )));
        }
        let tenant = self.allowed(call.tenant(), Method::WebAuthn).await?;
        let rp = relying_party(&tenant)?;
        let change = Self::change_proof(&tenant.policy, change)?;
        let state = self.load(&user).await?;
        let exclude: Vec<String> = state
            .webauthn_credentials()
            .iter()
            .map(|c| c.credential_ref.clone())
            .collect();
        let ceremony_user = CeremonyUser {
            handle: self.crypto.webauthn_user_handle(&user),
            name: user.user.as_str().to_owned(),
            display_name: display_name.to_owned(),
        };
        let ceremony = self
            .crypto
            .engine()?
            .start_registration(&rp, &ceremony_user, &exclude)?;
        let (challenge, view) = self.new_ceremony(&user, &rp, ceremony).await?;
        let (_, events, at) = self
            .run(
                call,
                &user,
                UserAction::StartWebAuthnRegistration {
                    proof: change,
                    challenge,
                },
            )
            .await?;
        outcome(&events, at)?;
        Ok(view)
    }

    /// `finishWebAuthnRegistration`: the browser's new credential; ten recovery codes when it is
    /// the account's first factor, none otherwise.
    pub async fn finish_webauthn_registration(
        &self,
        call: &Call,
        user_id: &str,
        challenge_id: &str,
        credential: &str,
        label: Option<&str>,
    ) -> Result<RecoveryCodes, ServiceError> {
        let user = parse_user(call.tenant(), user_id)?;
        check_json("credential", credential)?;
        let label = label
            .map(DeviceLabel::parse)
            .transpose()
            .map_err(ServiceError::invalid)?;
        self.allowed(call.tenant(), Method::WebAuthn).await?;
        let (codes, hashes) = self.new_recovery_codes(&user);
        let (_, events, _) = self
            .run(
                call,
                &user,
                UserAction::FinishWebAuthnRegistration {
                    challenge_id: challenge_id.to_owned(),
                    credential: credential.to_owned(),
                    credential_id: self.new_public_id(),
                    label,
                    recovery_codes: hashes,
                },
            )
            .await?;
        let issued = events
            .iter()
            .any(|e| matches!(e, UserEvent::RecoveryCodesGenerated { .. }));
        Ok(if issued {
            codes
        } else {
            RecoveryCodes(Vec::new())
        })
    }

    /// `startWebAuthnAuthentication`: options to sign with one of the user's credentials; the
    /// assertion comes back through `verify(method: WEBAUTHN)`.
    pub async fn start_webauthn_authentication(
        &self,
        call: &Call,
        user_id: &str,
    ) -> Result<WebAuthnChallengeView, ServiceError> {
        let user = parse_user(call.tenant(), user_id)?;
        let tenant = self.allowed(call.tenant(), Method::WebAuthn).await?;
        let rp = relying_party(&tenant)?;
        let state = self.load(&user).await?;
        if state.webauthn_credentials().is_empty() {
            return Err(UserError::MethodNotEnrolled(Method::WebAuthn).into());
        }
        let mut credentials = Vec::with_capacity(state.webauthn_credentials().len());
        for c in state.webauthn_credentials() {
            credentials.push(self.crypto.open_credential(&user, &c.sealed).await?);
        }
        let ceremony = self
            .crypto
            .engine()?
            .start_authentication(&rp, &credentials)?;
        let (challenge, view) = self.new_ceremony(&user, &rp, ceremony).await?;
        self.run(
            call,
            &user,
            UserAction::StartWebAuthnAuthentication { challenge },
        )
        .await?;
        Ok(view)
    }

    /// `removeFactor` of one passkey or security key, after checking a current factor.
    pub async fn remove_webauthn_credential(
        &self,
        call: &Call,
        user_id: &str,
        credential_id: &str,
        change: &ProofInput,
    ) -> Result<UserStatus, ServiceError> {
        let user = parse_user(call.tenant(), user_id)?;
        let tenant = self.tenant(call.tenant()).await?;
        let proof = Self::change_proof(&tenant.policy, Some(change))?
            .ok_or_else(|| ServiceError::InvalidInput("proof is required".into()))?;
        let (state, events, at) = self
            .run(
                call,
                &user,
                UserAction::RemoveWebAuthnCredential {
                    credential_id: credential_id.to_owned(),
                    proof,
                    policy_enforced: tenant.policy.enforce_two_factor,
                },
            )
            .await?;
        outcome(&events, at)?;
        Ok(UserStatus::of(&user.user, &state, at))
    }

    async fn load(&self, user: &UserRef) -> Result<User, ServiceError> {
        self.commands
            .load(&user.aggregate_id())
            .await
            .map_err(crate::error::from_aggregate_error)
    }

    /// A random public id (ceremonies, credentials).
    fn new_public_id(&self) -> String {
        let mut id = [0u8; 10];
        self.entropy.fill(&mut id);
        base32_lower(&id)
    }

    /// The command's ceremony (state sealed) and the browser's view of it.
    async fn new_ceremony(
        &self,
        user: &UserRef,
        rp: &RelyingParty,
        ceremony: Ceremony,
    ) -> Result<(NewWebAuthnChallenge, WebAuthnChallengeView), ServiceError> {
        let id = self.new_public_id();
        let state = self.crypto.seal_ceremony(user, rp, &ceremony.state).await?;
        let challenge = NewWebAuthnChallenge {
            id: id.clone(),
            expires_at: self.clock.now() + Duration::seconds(WEBAUTHN_CHALLENGE_SECONDS),
            state,
        };
        Ok((
            challenge,
            WebAuthnChallengeView {
                challenge_id: id,
                options: ceremony.options,
            },
        ))
    }
}
