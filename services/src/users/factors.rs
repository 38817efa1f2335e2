//! Changing factors: the proof a change needs, removing a factor, turning 2FA off, and recovery
//! codes.

use twofold_domain::tenant::KeyedHash;
use twofold_domain::user::CodeChecker;
use twofold_domain::user::{normalize_recovery_code, Proof, UserAction, UserRef, RECOVERY_CODES};
use twofold_domain::Method;

use super::errors::outcome;
use super::{parse_user, proof, ProofInput, RecoveryCodes, UserService, UserStatus};
use crate::encoding::base32_lower;
use crate::{Call, ServiceError};

impl UserService {
    /// Ten fresh recovery codes (80 bits each, `xxxx-xxxx-xxxx-xxxx`) and their keyed hashes.
    pub(super) fn new_recovery_codes(&self, user: &UserRef) -> (RecoveryCodes, Vec<KeyedHash>) {
        let mut codes = Vec::with_capacity(RECOVERY_CODES);
        let mut hashes = Vec::with_capacity(RECOVERY_CODES);
        for _ in 0..RECOVERY_CODES {
            let mut bytes = zeroize::Zeroizing::new([0u8; 10]);
            self.entropy.fill(bytes.as_mut());
            let raw = base32_lower(bytes.as_ref());
            let grouped = raw
                .as_bytes()
                .chunks(4)
                .map(|c| String::from_utf8_lossy(c).into_owned())
                .collect::<Vec<_>>()
                .join("-");
            hashes.push(
                self.crypto
                    .recovery_code_hash(user, &normalize_recovery_code(&grouped)),
            );
            codes.push(grouped);
        }
        (RecoveryCodes(codes), hashes)
    }

    /// The proof of a factor change, checked against the policy like any use of a method.
    pub(super) fn change_proof(
        policy: &twofold_domain::Policy,
        change: Option<&ProofInput>,
    ) -> Result<Option<Proof>, ServiceError> {
        change
            .map(|p| {
                Self::require_method(policy, p.method)?;
                proof(p.method, &p.code, p.challenge_id.as_deref())
            })
            .transpose()
    }

    /// Removes one factor (TOTP, the email address or the phone number) after checking a
    /// current one; the last one only while the policy does not enforce 2FA.
    pub async fn remove_factor(
        &self,
        call: &Call,
        user_id: &str,
        method: Method,
        change: &ProofInput,
    ) -> Result<UserStatus, ServiceError> {
        let user = parse_user(call.tenant(), user_id)?;
        let tenant = self.tenant(call.tenant()).await?;
        let change = Self::change_proof(&tenant.policy, Some(change))?
            .ok_or_else(|| ServiceError::InvalidInput("proof is required".into()))?;
        let (state, events, at) = self
            .run(
                call,
                &user,
                UserAction::RemoveFactor {
                    method,
                    proof: change,
                    policy_enforced: tenant.policy.enforce_two_factor,
                },
            )
            .await?;
        outcome(&events, at)?;
        Ok(UserStatus::of(&user.user, &state, at))
    }

    /// Replaces the recovery codes after checking a current factor.
    pub async fn regenerate_recovery_codes(
        &self,
        call: &Call,
        user_id: &str,
        factor: &ProofInput,
    ) -> Result<RecoveryCodes, ServiceError> {
        let user = parse_user(call.tenant(), user_id)?;
        self.allowed(call.tenant(), factor.method).await?;
        let (codes, hashes) = self.new_recovery_codes(&user);
        let (_, events, at) = self
            .run(
                call,
                &user,
                UserAction::RegenerateRecoveryCodes {
                    proof: proof(factor.method, &factor.code, factor.challenge_id.as_deref())?,
                    recovery_codes: hashes,
                },
            )
            .await?;
        outcome(&events, at)?;
        Ok(codes)
    }

    /// Turns 2FA off after checking a current factor, unless the tenant enforces it.
    pub async fn disable(
        &self,
        call: &Call,
        user_id: &str,
        factor: &ProofInput,
    ) -> Result<UserStatus, ServiceError> {
        let user = parse_user(call.tenant(), user_id)?;
        let tenant = self.allowed(call.tenant(), factor.method).await?;
        let (state, events, at) = self
            .run(
                call,
                &user,
                UserAction::Disable {
                    proof: proof(factor.method, &factor.code, factor.challenge_id.as_deref())?,
                    policy_enforced: tenant.policy.enforce_two_factor,
                },
            )
            .await?;
        outcome(&events, at)?;
        Ok(UserStatus::of(&user.user, &state, at))
    }
}
