//! Enrolling an authenticator app (TOTP): a fresh secret, then its confirmation with a code.

use twofold_domain::secrets::TotpParams;
use twofold_domain::user::{UserAction, UserEvent};
use twofold_domain::Method;

use super::crypto::totp_context;
use super::errors::outcome;
use super::{
    parse_user, proof, ProofInput, QrPictures, RecoveryCodes, TotpEnrollment, UserService,
};
use crate::ports::TotpError;
use crate::{Call, ServiceError};

/// TOTP secrets are 160 bits (RFC 4226 §4 recommends it; what authenticator apps expect).
const TOTP_SECRET_BYTES: usize = 20;
/// Longest account label accepted.
const MAX_LABEL_CHARS: usize = 100;

impl UserService {
    /// Starts (or restarts) TOTP enrollment with a fresh 160-bit secret.
    pub async fn start_totp_enrollment(
        &self,
        call: &Call,
        user_id: &str,
        account_label: Option<&str>,
    ) -> Result<TotpEnrollment, ServiceError> {
        let user = parse_user(call.tenant(), user_id)?;
        // Without a label the app shows the user id, shortened to what a label may hold.
        let label = match account_label {
            Some(l) => l.trim().to_owned(),
            None => user.user.as_str().chars().take(MAX_LABEL_CHARS).collect(),
        };
        if label.is_empty()
            || label.chars().count() > MAX_LABEL_CHARS
            || label.chars().any(char::is_control)
        {
            return Err(ServiceError::InvalidInput(format!(
                "accountLabel must be 1 to {MAX_LABEL_CHARS} printable characters"
            )));
        }
        let tenant = self.tenant(call.tenant()).await?;
        if !tenant.policy.allows(Method::Totp) {
            return Err(ServiceError::PolicyViolation(
                "the organisation's policy does not allow authenticator apps (TOTP)".into(),
            ));
        }
        let params = TotpParams {
            algorithm: tenant.policy.totp_algorithm,
            digits: tenant.policy.totp_digits,
            period: TotpParams::PERIOD,
        };
        let mut secret = zeroize::Zeroizing::new([0u8; TOTP_SECRET_BYTES]);
        self.entropy.fill(secret.as_mut());
        let provisioning = self
            .crypto
            .totp
            .provision(secret.as_ref(), &params, &tenant.name, &label)
            .map_err(|e| match e {
                TotpError::TooLongForQr(_) => ServiceError::InvalidInput(
                    "accountLabel is too long for a QR code together with the organisation's \
                     name: use a shorter label (plain letters and digits take the least room)"
                        .into(),
                ),
                e @ TotpError::Failed(_) => ServiceError::Internal(Box::new(e)),
            })?;
        let sealed = self
            .crypto
            .sealer
            .seal_for_user(&user, &totp_context(&user), secret.as_ref())
            .await?;
        self.run(
            call,
            &user,
            UserAction::StartTotpEnrollment {
                secret: sealed,
                params,
            },
        )
        .await?;
        Ok(TotpEnrollment {
            pictures: QrPictures {
                engine: self.crypto.totp.clone(),
                uri: provisioning.uri.clone(),
                drawn: Default::default(),
            },
            provisioning,
            params,
        })
    }

    /// Confirms the pending TOTP with a code from the app; returns ten new recovery codes.
    ///
    /// New recovery codes come with the user's first factor only: adding TOTP beside another
    /// factor, or replacing it, keeps the codes the user saved (and returns none). On an account
    /// that has a factor, `change` must prove one.
    pub async fn confirm_totp_enrollment(
        &self,
        call: &Call,
        user_id: &str,
        code: &str,
        change: Option<&ProofInput>,
    ) -> Result<RecoveryCodes, ServiceError> {
        let user = parse_user(call.tenant(), user_id)?;
        let tenant = self.allowed(call.tenant(), Method::Totp).await?;
        let change = Self::change_proof(&tenant.policy, change)?;
        let (codes, hashes) = self.new_recovery_codes(&user);
        let (_, events, at) = self
            .run(
                call,
                &user,
                UserAction::ConfirmTotp {
                    code: proof(Method::Totp, code, None)?.code,
                    proof: change,
                    recovery_codes: hashes,
                },
            )
            .await?;
        outcome(&events, at)?;
        let issued = events
            .iter()
            .any(|e| matches!(e, UserEvent::RecoveryCodesGenerated { .. }));
        Ok(if issued {
            codes
        } else {
            RecoveryCodes(Vec::new())
        })
    }
}
