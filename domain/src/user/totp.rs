//! Enrolling an authenticator app: a secret waits until a code from it proves the user scanned
//! it. Confirming the first factor also issues the recovery codes; replacing an authenticator
//! needs a current factor and keeps the recovery codes the user saved.

use super::aggregate::Context;
use super::factors::Authorized;
use super::{DeviceRevocation, Proof, User, UserError, UserEvent, RECOVERY_CODES};
use crate::secrets::{SealedSecret, TotpParams};
use crate::tenant::KeyedHash;
use crate::Method;

impl User {
    /// `startTotpEnrollment`: a new secret waits, replacing any other waiting one.
    pub(super) fn decide_start_totp(
        &self,
        cx: &Context<'_>,
        secret: SealedSecret,
        params: TotpParams,
    ) -> Vec<UserEvent> {
        vec![UserEvent::TotpEnrollmentStarted {
            secret,
            algorithm: params.algorithm,
            digits: params.digits,
            period: params.period,
            at: cx.at,
        }]
    }

    /// `confirmTotpEnrollment`: a code from the waiting secret, and the proof of a current factor
    /// if there is one.
    pub(super) async fn decide_confirm_totp(
        &self,
        cx: &Context<'_>,
        code: &str,
        proof: Option<&Proof>,
        recovery_codes: Vec<KeyedHash>,
    ) -> Result<Vec<UserEvent>, UserError> {
        let at = cx.at;
        let pending = self
            .pending_totp
            .as_ref()
            .ok_or(UserError::NoPendingEnrollment)?;
        self.refuse_if_locked(at)?;
        if recovery_codes.len() != RECOVERY_CODES {
            return Err(UserError::BadRecoverySet);
        }
        self.require_proof(proof)?;
        // The new code first: a typo must not cost the user the proof (a recovery code, a
        // sign-in code); a proof never checked was never accepted either.
        let Some(step) = self.totp_passes(cx, pending, code).await? else {
            return Ok(self.failure(Method::Totp, at));
        };
        let mut events = match self.authorize_change(cx, proof).await? {
            Authorized::Proceed(events) => events,
            Authorized::Refused(events) => return Ok(events),
        };
        events.push(UserEvent::TotpEnabled { step, at });
        if self.totp.is_some() {
            // A replaced authenticator: the recovery codes the user saved stay valid.
            events.extend(self.revoke_devices(DeviceRevocation::FactorReplaced, at));
        } else if !self.enabled() {
            events.push(UserEvent::RecoveryCodesGenerated {
                hashes: recovery_codes,
                at,
            });
        }
        Ok(events)
    }
}
