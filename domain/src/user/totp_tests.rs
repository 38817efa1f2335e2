//! Enrolling an authenticator app.

use super::fixtures::*;
use super::*;
use crate::secrets::SealedSecret;
use crate::{Method, TotpAlgorithm};

#[tokio::test]
async fn confirming_enables_totp_with_recovery_codes() {
    tf().given(vec![started()])
        .when_async(cmd(
            t0(),
            UserAction::ConfirmTotp {
                proof: None,
                code: "step:7".into(),
                recovery_codes: codes("r"),
            },
        ))
        .await
        .then_expect_events(vec![
            UserEvent::TotpEnabled { step: 7, at: t0() },
            UserEvent::RecoveryCodesGenerated {
                hashes: codes("r"),
                at: t0(),
            },
        ]);
}

#[tokio::test]
async fn a_wrong_confirmation_code_is_a_recorded_failure() {
    tf().given(vec![started()])
        .when_async(cmd(
            t0(),
            UserAction::ConfirmTotp {
                proof: None,
                code: "nope".into(),
                recovery_codes: codes("r"),
            },
        ))
        .await
        .then_expect_events(vec![UserEvent::VerificationFailed {
            challenge_id: None,
            method: Method::Totp,
            consecutive_failures: 1,
            at: t0(),
        }]);
}

#[tokio::test]
async fn nothing_to_confirm_without_an_enrollment() {
    tf().given_no_previous_events()
        .when_async(cmd(
            t0(),
            UserAction::ConfirmTotp {
                proof: None,
                code: "step:7".into(),
                recovery_codes: codes("r"),
            },
        ))
        .await
        .then_expect_error(UserError::NoPendingEnrollment);
}

#[tokio::test]
async fn a_pending_enrollment_is_not_a_factor() {
    tf().given(vec![started()])
        .when_async(cmd(
            t0(),
            UserAction::Verify {
                proof: proof(Method::Totp, "step:7"),
                trust: None,
            },
        ))
        .await
        .then_expect_error(UserError::NotEnrolled);
}

#[tokio::test]
async fn a_services_failure_is_an_error_not_a_wrong_code() {
    tf().given(vec![UserEvent::TotpEnrollmentStarted {
        secret: SealedSecret::from_encoded("broken".into()),
        algorithm: TotpAlgorithm::Sha1,
        digits: 6,
        period: 30,
        at: t0(),
    }])
    .when_async(cmd(
        t0(),
        UserAction::ConfirmTotp {
            proof: None,
            code: "step:1".into(),
            recovery_codes: codes("r"),
        },
    ))
    .await
    .then_expect_error(UserError::Services(ServicesError(
        "data key unavailable".into(),
    )));
}
