//! Registering passkeys and security keys, and removing them.

use super::fixtures::{cmd, codes, enrolled, proof, state, t0, trusted};
use super::webauthn_fixtures::*;
use super::*;
use crate::Method;
use chrono::Duration;

#[tokio::test]
async fn the_first_credential_of_an_account_comes_with_recovery_codes() {
    tf().given_no_previous_events()
        .when_async(cmd(
            t0(),
            UserAction::StartWebAuthnRegistration {
                proof: None,
                challenge: ceremony("w1"),
            },
        ))
        .await
        .then_expect_events(vec![registration_started("w1", false)]);
    tf().given(vec![registration_started("w1", false)])
        .when_async(cmd(t0(), finish("w1", "cred:R9:0")))
        .await
        .then_expect_events(vec![
            registered("k2", "R9", 0, "w1"),
            UserEvent::RecoveryCodesGenerated {
                hashes: codes("n"),
                at: t0(),
            },
        ]);
}

#[tokio::test]
async fn a_further_credential_needs_proof_when_it_starts() {
    let start = |proof| {
        cmd(
            t0(),
            UserAction::StartWebAuthnRegistration {
                proof,
                challenge: ceremony("w1"),
            },
        )
    };
    tf().given(enrolled())
        .when_async(start(None))
        .await
        .then_expect_error(UserError::ProofRequired);
    tf().given(enrolled())
        .when_async(start(Some(proof(Method::Totp, "step:101"))))
        .await
        .then_expect_events(vec![
            UserEvent::CodeVerified {
                method: Method::Totp,
                totp_step: Some(101),
                challenge_id: None,
                at: t0(),
            },
            registration_started("w1", true),
        ]);
    tf().given(enrolled())
        .when_async(start(Some(proof(Method::Totp, "wrong"))))
        .await
        .then_expect_events(vec![UserEvent::VerificationFailed {
            method: Method::Totp,
            challenge_id: None,
            consecutive_failures: 1,
            at: t0(),
        }]);
    // A proven registration adds the credential and keeps the saved recovery codes.
    let mut given = enrolled();
    given.push(registration_started("w1", true));
    tf().given(given)
        .when_async(cmd(t0(), finish("w1", "cred:R9:0")))
        .await
        .then_expect_events(vec![registered("k2", "R9", 0, "w1")]);
}

#[tokio::test]
async fn a_registration_started_before_the_account_had_a_factor_cannot_finish_after() {
    let mut given = vec![registration_started("w1", false)];
    given.extend(enrolled());
    tf().given(given)
        .when_async(cmd(t0(), finish("w1", "cred:R9:0")))
        .await
        .then_expect_error(UserError::ProofRequired);
}

#[tokio::test]
async fn a_registration_answers_its_own_live_ceremony_once() {
    tf().given(vec![registration_started("w1", false)])
        .when_async(cmd(t0(), finish("w1", "garbage")))
        .await
        .then_expect_error(UserError::CredentialRefused);
    tf().given(vec![registration_started("w1", false)])
        .when_async(cmd(t0() + Duration::minutes(5), finish("w1", "cred:R9:0")))
        .await
        .then_expect_error(UserError::CodeExpired(
            "the WebAuthn challenge has expired: start a new one",
        ));
    tf().given(passkey_user())
        .when_async(cmd(t0(), finish("w0", "cred:R9:0")))
        .await
        .then_expect_error(UserError::CodeExpired(
            "this registration was already answered: start a new one",
        ));
    let mut given = passkey_user();
    given.push(authentication_started("a1"));
    tf().given(given)
        .when_async(cmd(t0(), finish("a1", "cred:R9:0")))
        .await
        .then_expect_error(UserError::ChallengeNotFound);
}

#[tokio::test]
async fn the_same_authenticator_is_not_registered_twice() {
    let mut given = passkey_user();
    given.push(registration_started("w1", true));
    tf().given(given)
        .when_async(cmd(t0(), finish("w1", "cred:R1:9")))
        .await
        .then_expect_error(UserError::CredentialAlreadyRegistered);
}

#[tokio::test]
async fn an_eleventh_credential_is_refused() {
    let mut given = passkey_user();
    for i in 2..=10 {
        given.push(registration_started(&format!("w{i}"), true));
        given.push(registered(
            &format!("k{i}"),
            &format!("R{i}"),
            0,
            &format!("w{i}"),
        ));
    }
    given.push(registration_started("w11", true));
    assert_eq!(state(given.clone()).webauthn_credentials().len(), 10);
    tf().given(given.clone())
        .when_async(cmd(t0(), finish("w11", "cred:R11:0")))
        .await
        .then_expect_error(UserError::TooManyCredentials);
    tf().given(given)
        .when_async(cmd(
            t0(),
            UserAction::StartWebAuthnRegistration {
                proof: Some(proof(Method::RecoveryCode, "r0")),
                challenge: ceremony("w12"),
            },
        ))
        .await
        .then_expect_error(UserError::TooManyCredentials);
}

fn remove(credential_id: &str, proof: Proof, policy_enforced: bool) -> UserAction {
    UserAction::RemoveWebAuthnCredential {
        credential_id: credential_id.into(),
        proof,
        policy_enforced,
    }
}

#[tokio::test]
async fn removing_the_last_credential_turns_2fa_off_unless_enforced() {
    let mut given = passkey_user();
    given.push(trusted("d1", t0(), 30));
    tf().given(given)
        .when_async(cmd(
            t0(),
            remove("k1", proof(Method::RecoveryCode, "r0"), false),
        ))
        .await
        .then_expect_events(vec![
            UserEvent::RecoveryCodeUsed {
                index: 0,
                remaining: 9,
                at: t0(),
            },
            UserEvent::DeviceTrustRevoked {
                device_id: "d1".into(),
                reason: DeviceRevocation::FactorRemoved,
                explanation: None,
                at: t0(),
            },
            UserEvent::WebAuthnCredentialRemoved {
                credential_id: "k1".into(),
                at: t0(),
            },
            UserEvent::TwoFactorDisabled {
                method: Method::RecoveryCode,
                at: t0(),
            },
        ]);
    tf().given(passkey_user())
        .when_async(cmd(
            t0(),
            remove("k1", proof(Method::RecoveryCode, "r0"), true),
        ))
        .await
        .then_expect_error(UserError::PolicyEnforced);
    tf().given(passkey_user())
        .when_async(cmd(
            t0(),
            remove("k9", proof(Method::RecoveryCode, "r0"), false),
        ))
        .await
        .then_expect_error(UserError::CredentialNotFound);
}

#[tokio::test]
async fn removing_one_of_several_factors_keeps_the_rest() {
    let mut given = enrolled();
    given.push(registration_started("w1", true));
    given.push(registered("k1", "R1", 0, "w1"));
    tf().given(given)
        .when_async(cmd(
            t0(),
            remove("k1", proof(Method::Totp, "step:101"), true),
        ))
        .await
        .then_expect_events(vec![
            UserEvent::CodeVerified {
                method: Method::Totp,
                totp_step: Some(101),
                challenge_id: None,
                at: t0(),
            },
            UserEvent::WebAuthnCredentialRemoved {
                credential_id: "k1".into(),
                at: t0(),
            },
        ]);
}

#[test]
fn a_passkey_is_a_factor_and_disable_reset_or_remove_factor_take_it() {
    let user = state(passkey_user());
    assert!(user.enabled());
    assert_eq!(user.methods(), vec![Method::WebAuthn, Method::RecoveryCode]);
    for end in [
        UserEvent::TwoFactorDisabled {
            method: Method::WebAuthn,
            at: t0(),
        },
        UserEvent::TwoFactorReset {
            by: crate::ApiKeyId::parse("adminkey01").unwrap(),
            reason: crate::Reason::parse("lost").unwrap(),
            at: t0(),
        },
        UserEvent::FactorRemoved {
            method: Method::WebAuthn,
            at: t0(),
        },
    ] {
        let mut events = signing_in();
        events.push(end);
        let user = state(events);
        assert!(user.webauthn_credentials().is_empty());
        assert!(user.webauthn_challenge("a1").is_none());
        assert!(!user.methods().contains(&Method::WebAuthn));
    }
}

#[test]
fn a_removed_credential_goes_and_only_it() {
    let mut events = passkey_user();
    events.push(registration_started("w1", true));
    events.push(registered("k2", "R2", 0, "w1"));
    events.push(UserEvent::WebAuthnCredentialRemoved {
        credential_id: "k1".into(),
        at: t0(),
    });
    let user = state(events);
    let left: Vec<&str> = user
        .webauthn_credentials()
        .iter()
        .map(|c| c.id.as_str())
        .collect();
    assert_eq!(left, ["k2"]);
}
