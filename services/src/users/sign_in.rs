//! Signing in: whether a second factor is needed, and checking it.

use twofold_domain::user::{SignInAttempt, SignInDecision, SignInPolicy, UserAction, UserEvent};
use twofold_domain::DeviceLabel;

use super::errors::outcome;
use super::{parse_user, proof, UserService, Verified, VerifyInput};
use crate::{Call, ServiceError};

/// Longest device token accepted (anything longer cannot be one of ours).
const MAX_DEVICE_TOKEN_CHARS: usize = 128;

impl UserService {
    /// Checks a second factor at sign-in; with `trust_device`, also remembers the device and
    /// returns its token (shown this once).
    pub async fn verify(
        &self,
        call: &Call,
        user_id: &str,
        input: VerifyInput,
    ) -> Result<Verified, ServiceError> {
        let VerifyInput {
            factor,
            trust_device,
            device_label,
        } = input;
        let method = factor.method;
        let user = parse_user(call.tenant(), user_id)?;
        let tenant = self.allowed(call.tenant(), method).await?;
        let label = device_label
            .as_deref()
            .map(DeviceLabel::parse)
            .transpose()
            .map_err(ServiceError::invalid)?;
        let (token, trust) = if trust_device {
            let days = tenant.policy.trusted_device_days;
            if days == 0 {
                return Err(ServiceError::PolicyViolation(
                    "the organisation's policy does not allow trusted devices".into(),
                ));
            }
            let (token, device) = self.new_trusted_device(&user, label, days);
            (Some(token), Some(device))
        } else {
            if label.is_some() {
                return Err(ServiceError::InvalidInput(
                    "deviceLabel is only used with trustDevice: true".into(),
                ));
            }
            (None, None)
        };
        let (state, events, at) = self
            .run(
                call,
                &user,
                UserAction::Verify {
                    proof: proof(method, &factor.code, factor.challenge_id.as_deref())?,
                    trust,
                },
            )
            .await?;
        outcome(&events, at)?;
        Ok(Verified {
            method,
            recovery_codes_remaining: state.recovery_codes_remaining(),
            device_token: token,
        })
    }

    /// Whether this sign-in needs a second factor, which methods may satisfy it, and why; the
    /// decision is recorded (`SignInEvaluated`), and a user asked about for the first time is
    /// first seen now (their grace period starts, if 2FA is enforced).
    pub async fn sign_in_requirement(
        &self,
        call: &Call,
        user_id: &str,
        device_token: Option<&str>,
        sso_login: bool,
    ) -> Result<SignInDecision, ServiceError> {
        let user = parse_user(call.tenant(), user_id)?;
        let device_token = device_token.filter(|t| !t.is_empty());
        if device_token.is_some_and(|t| t.chars().count() > MAX_DEVICE_TOKEN_CHARS) {
            return Err(ServiceError::InvalidInput(
                "deviceToken is not a device token".into(),
            ));
        }
        let tenant = self.tenant(call.tenant()).await?;
        let policy = &tenant.policy;
        let attempt = SignInAttempt {
            device_token_hash: device_token.map(|t| self.crypto.device_token_hash(&user, t)),
            sso_login,
            policy: SignInPolicy {
                enforced_since: tenant.enforced_since.filter(|_| policy.enforce_two_factor),
                grace_days: policy.enrollment_grace_period_days,
                sso_bypass: policy.sso_bypasses_two_factor,
                trusted_device_days: policy.trusted_device_days,
                allowed_methods: policy.allowed_methods.clone(),
            },
        };
        let (_, events, _) = self
            .run(call, &user, UserAction::EvaluateSignIn { attempt })
            .await?;
        // The answer is the decision as recorded.
        events
            .into_iter()
            .find_map(|e| match e {
                UserEvent::SignInEvaluated {
                    required,
                    reason,
                    methods,
                    trusted_device,
                    device_token_rejected,
                    locked_until,
                    grace_ends_at,
                    ..
                } => Some(SignInDecision {
                    required,
                    reason,
                    methods,
                    trusted_device,
                    device_token_rejected,
                    locked_until,
                    grace_ends_at,
                }),
                _ => None,
            })
            .ok_or_else(|| ServiceError::Internal("the sign-in decision was not recorded".into()))
    }
}
