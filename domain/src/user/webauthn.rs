//! Passkeys and security keys (WebAuthn). The browser's answers are checked by the services (the
//! `CodeChecker`: the WebAuthn library, the data key), the rules here: a ceremony answers once,
//! for its purpose, within its time; a further factor needs proof; a signature counter must go
//! up, judged against the counter the aggregate holds now (so of two concurrent uses of one
//! assertion, the one re-decided after the other's commit sees the spent ceremony and fails).

use super::aggregate::Context;
use super::factors::Authorized;
use super::verify::Checked;
use super::{
    DeviceRevocation, NewWebAuthnChallenge, Proof, User, UserError, UserEvent, WebAuthnChallenge,
    WebAuthnPurpose, MAX_WEBAUTHN_CREDENTIALS, RECOVERY_CODES,
};
use crate::tenant::KeyedHash;
use crate::{DeviceLabel, Method};

/// What [`User::decide_finish_webauthn_registration`] takes.
pub(super) struct FinishRegistration {
    pub(super) challenge_id: String,
    pub(super) credential: String,
    pub(super) credential_id: String,
    pub(super) label: Option<DeviceLabel>,
    pub(super) recovery_codes: Vec<KeyedHash>,
}

impl User {
    /// `startWebAuthnRegistration`: on an account with a factor, its proof first.
    pub(super) async fn decide_start_webauthn_registration(
        &self,
        cx: &Context<'_>,
        proof: Option<&Proof>,
        challenge: NewWebAuthnChallenge,
    ) -> Result<Vec<UserEvent>, UserError> {
        if self.webauthn.credentials.len() >= MAX_WEBAUTHN_CREDENTIALS {
            return Err(UserError::TooManyCredentials);
        }
        self.refuse_if_locked(cx.at)?;
        self.require_proof(proof)?;
        let proven = self.enabled();
        let mut events = match self.authorize_change(cx, proof).await? {
            Authorized::Proceed(events) => events,
            Authorized::Refused(events) => return Ok(events),
        };
        events.push(UserEvent::WebAuthnRegistrationStarted {
            challenge_id: challenge.id,
            state: challenge.state,
            expires_at: challenge.expires_at,
            proven,
            at: cx.at,
        });
        Ok(events)
    }

    /// `finishWebAuthnRegistration`: the browser's credential against the ceremony; the first
    /// factor of the account comes with recovery codes.
    pub(super) async fn decide_finish_webauthn_registration(
        &self,
        cx: &Context<'_>,
        finish: FinishRegistration,
    ) -> Result<Vec<UserEvent>, UserError> {
        if finish.recovery_codes.len() != RECOVERY_CODES {
            return Err(UserError::BadRecoverySet);
        }
        let challenge = self.open_ceremony(&finish.challenge_id, WebAuthnPurpose::Register, cx)?;
        if challenge.used {
            return Err(UserError::CodeExpired(
                "this registration was already answered: start a new one",
            ));
        }
        self.refuse_if_locked(cx.at)?;
        // Started before the account had a factor, finished after: the proof was never given.
        if self.enabled() && !challenge.proven {
            return Err(UserError::ProofRequired);
        }
        if self.webauthn.credentials.len() >= MAX_WEBAUTHN_CREDENTIALS {
            return Err(UserError::TooManyCredentials);
        }
        let registered = cx
            .checker
            .webauthn_registration(cx.user, &challenge.state, &finish.credential)
            .await?
            .ok_or(UserError::CredentialRefused)?;
        if self
            .webauthn
            .credentials
            .iter()
            .any(|c| c.credential_ref == registered.credential_ref)
        {
            return Err(UserError::CredentialAlreadyRegistered);
        }
        let mut events = vec![UserEvent::WebAuthnCredentialRegistered {
            credential_id: finish.credential_id,
            credential_ref: registered.credential_ref,
            label: finish.label,
            credential: registered.sealed,
            counter: registered.counter,
            challenge_id: finish.challenge_id,
            at: cx.at,
        }];
        if !self.enabled() {
            events.push(UserEvent::RecoveryCodesGenerated {
                hashes: finish.recovery_codes,
                at: cx.at,
            });
        }
        Ok(events)
    }

    /// `startWebAuthnAuthentication`: a ceremony listing the user's credentials.
    pub(super) fn decide_start_webauthn_authentication(
        &self,
        cx: &Context<'_>,
        challenge: NewWebAuthnChallenge,
    ) -> Result<Vec<UserEvent>, UserError> {
        if self.webauthn.credentials.is_empty() {
            return Err(UserError::MethodNotEnrolled(Method::WebAuthn));
        }
        self.refuse_if_locked(cx.at)?;
        Ok(vec![UserEvent::WebAuthnAuthenticationStarted {
            challenge_id: challenge.id,
            state: challenge.state,
            expires_at: challenge.expires_at,
            at: cx.at,
        }])
    }

    /// A WEBAUTHN proof (`verify`, or the proof of a change): the assertion answers a sign-in
    /// ceremony of this user that no answer spent yet, is signed by one of the user's
    /// credentials, and shows a counter above the stored one. Every refusal after the ceremony
    /// is found counts toward the lockout, a replay included.
    pub(super) async fn check_webauthn(
        &self,
        cx: &Context<'_>,
        proof: &Proof,
    ) -> Result<Checked, UserError> {
        if self.webauthn.credentials.is_empty() {
            return Err(UserError::MethodNotEnrolled(Method::WebAuthn));
        }
        let id = proof
            .challenge_id
            .as_deref()
            .ok_or(UserError::ChallengeRequired)?;
        let challenge = self.open_ceremony(id, WebAuthnPurpose::Authenticate, cx)?;
        let failed =
            || Checked::Failed(self.failure_on(Method::WebAuthn, Some(id.to_owned()), cx.at));
        if challenge.used {
            return Ok(failed());
        }
        let Some(assertion) = cx
            .checker
            .webauthn_assertion(cx.user, &challenge.state, &proof.code)
            .await?
        else {
            return Ok(failed());
        };
        let Some(credential) = self
            .webauthn
            .credentials
            .iter()
            .find(|c| c.credential_ref == assertion.credential_ref)
        else {
            return Ok(failed());
        };
        // W3C WebAuthn §7.2 step 21: a counter that does not go up may mean a cloned key.
        let counted = assertion.counter != 0 || credential.counter != 0;
        if counted && assertion.counter <= credential.counter {
            let mut events = vec![UserEvent::WebAuthnCounterRegressed {
                credential_id: credential.id.clone(),
                stored: credential.counter,
                presented: assertion.counter,
                challenge_id: id.to_owned(),
                at: cx.at,
            }];
            events.extend(self.failure_on(Method::WebAuthn, Some(id.to_owned()), cx.at));
            return Ok(Checked::Failed(events));
        }
        Ok(Checked::Passed(vec![
            UserEvent::CodeVerified {
                method: Method::WebAuthn,
                totp_step: None,
                challenge_id: Some(id.to_owned()),
                at: cx.at,
            },
            UserEvent::WebAuthnCredentialUsed {
                credential_id: credential.id.clone(),
                counter: assertion.counter,
                challenge_id: id.to_owned(),
                at: cx.at,
            },
        ]))
    }

    /// `removeFactor` of one credential: the last factor of the account takes 2FA with it (as
    /// for any factor), which an enforcing policy forbids.
    pub(super) async fn decide_remove_webauthn_credential(
        &self,
        cx: &Context<'_>,
        credential_id: &str,
        proof: &Proof,
        policy_enforced: bool,
    ) -> Result<Vec<UserEvent>, UserError> {
        if !self.enabled() {
            return Err(UserError::NotEnrolled);
        }
        let credential = self
            .webauthn_credential(credential_id)
            .ok_or(UserError::CredentialNotFound)?;
        let last =
            self.webauthn.credentials.len() == 1 && self.methods_other_than(Method::WebAuthn) == 0;
        if last && policy_enforced {
            return Err(UserError::PolicyEnforced);
        }
        self.refuse_if_locked(cx.at)?;
        let mut events = match self.check(cx, proof).await? {
            Checked::Passed(events) => events,
            Checked::Failed(events) => return Ok(events),
        };
        events.extend(self.revoke_devices(DeviceRevocation::FactorRemoved, cx.at));
        events.push(UserEvent::WebAuthnCredentialRemoved {
            credential_id: credential.id.clone(),
            at: cx.at,
        });
        if last {
            events.push(UserEvent::TwoFactorDisabled {
                method: proof.method,
                at: cx.at,
            });
        }
        Ok(events)
    }

    /// A ceremony of this user for `purpose` that has not expired (spent ones are returned:
    /// what a second answer costs depends on the flow).
    fn open_ceremony(
        &self,
        id: &str,
        purpose: WebAuthnPurpose,
        cx: &Context<'_>,
    ) -> Result<&WebAuthnChallenge, UserError> {
        let challenge = self
            .webauthn_challenge(id)
            .filter(|c| c.purpose == purpose)
            .ok_or(UserError::ChallengeNotFound)?;
        if cx.at >= challenge.expires_at {
            return Err(UserError::CodeExpired(
                "the WebAuthn challenge has expired: start a new one",
            ));
        }
        Ok(challenge)
    }
}
