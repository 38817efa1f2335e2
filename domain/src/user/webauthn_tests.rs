//! Passkeys and security keys. The checker double verifies a registration answer
//! "cred:REF:COUNTER" and an assertion "sig:REF:COUNTER" (anything else does not verify): the
//! WebAuthn library is tested in infra and end to end, the rules here.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use cqrs_es::test::TestFramework;

use super::fixtures::{cmd, codes, enrolled, proof, state, t0, trusted};
use super::*;
use crate::secrets::{SealedSecret, TotpParams};
use crate::tenant::KeyedHash;
use crate::Method;

struct Ceremonies;

fn parse(prefix: &str, answer: &str) -> Option<(String, u32)> {
    let rest = answer.strip_prefix(prefix)?;
    let (r, counter) = rest.split_once(':')?;
    Some((r.to_owned(), counter.parse().ok()?))
}

#[async_trait]
impl CodeChecker for Ceremonies {
    async fn totp_step(
        &self,
        _user: &UserRef,
        _secret: &SealedSecret,
        _params: &TotpParams,
        code: &str,
        _at: DateTime<Utc>,
    ) -> Result<Option<u64>, ServicesError> {
        Ok(code.strip_prefix("step:").and_then(|s| s.parse().ok()))
    }

    fn recovery_code_hash(&self, _user: &UserRef, normalized_code: &str) -> KeyedHash {
        KeyedHash::from_hex(format!("h-{normalized_code}"))
    }

    fn challenge_code_matches(&self, _: &UserRef, _: &str, _: u8, _: &str) -> bool {
        false
    }

    async fn webauthn_registration(
        &self,
        _user: &UserRef,
        state: &SealedSecret,
        credential: &str,
    ) -> Result<Option<RegisteredCredential>, ServicesError> {
        if state.as_encoded() == "broken" {
            return Err(ServicesError("data key unavailable".into()));
        }
        Ok(
            parse("cred:", credential).map(|(r, counter)| RegisteredCredential {
                sealed: SealedSecret::from_encoded(format!("sealed-{r}")),
                credential_ref: r,
                counter,
            }),
        )
    }

    async fn webauthn_assertion(
        &self,
        _user: &UserRef,
        _state: &SealedSecret,
        assertion: &str,
    ) -> Result<Option<Assertion>, ServicesError> {
        Ok(
            parse("sig:", assertion).map(|(credential_ref, counter)| Assertion {
                credential_ref,
                counter,
            }),
        )
    }
}

fn tf() -> TestFramework<User> {
    TestFramework::with(Arc::new(Ceremonies) as Arc<dyn CodeChecker>)
}

fn ceremony(id: &str) -> NewWebAuthnChallenge {
    NewWebAuthnChallenge {
        id: id.into(),
        expires_at: t0() + Duration::minutes(5),
        state: SealedSecret::from_encoded(format!("state-{id}")),
    }
}

fn registration_started(id: &str, proven: bool) -> UserEvent {
    UserEvent::WebAuthnRegistrationStarted {
        challenge_id: id.into(),
        state: SealedSecret::from_encoded(format!("state-{id}")),
        expires_at: t0() + Duration::minutes(5),
        proven,
        at: t0(),
    }
}

fn registered(key: &str, r: &str, counter: u32, challenge: &str) -> UserEvent {
    UserEvent::WebAuthnCredentialRegistered {
        credential_id: key.into(),
        credential_ref: r.into(),
        label: None,
        credential: SealedSecret::from_encoded(format!("sealed-{r}")),
        counter,
        challenge_id: challenge.into(),
        at: t0(),
    }
}

fn authentication_started(id: &str) -> UserEvent {
    UserEvent::WebAuthnAuthenticationStarted {
        challenge_id: id.into(),
        state: SealedSecret::from_encoded(format!("state-{id}")),
        expires_at: t0() + Duration::minutes(5),
        at: t0(),
    }
}

/// A user whose only factor is passkey k1 (credential R1, counter 5), with recovery codes.
fn passkey_user() -> Vec<UserEvent> {
    vec![
        registration_started("w0", false),
        registered("k1", "R1", 5, "w0"),
        UserEvent::RecoveryCodesGenerated {
            hashes: codes("r"),
            at: t0(),
        },
    ]
}

fn finish(challenge: &str, credential: &str) -> UserAction {
    UserAction::FinishWebAuthnRegistration {
        challenge_id: challenge.into(),
        credential: credential.into(),
        credential_id: "k2".into(),
        label: None,
        recovery_codes: codes("n"),
    }
}

fn assertion(challenge: &str, answer: &str) -> UserAction {
    UserAction::Verify {
        proof: Proof {
            method: Method::WebAuthn,
            code: answer.into(),
            challenge_id: Some(challenge.into()),
        },
        trust: None,
    }
}

fn failed(n: u32, challenge: &str) -> UserEvent {
    UserEvent::VerificationFailed {
        method: Method::WebAuthn,
        challenge_id: Some(challenge.into()),
        consecutive_failures: n,
        at: t0(),
    }
}

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

#[tokio::test]
async fn a_sign_in_ceremony_needs_a_credential() {
    tf().given(enrolled())
        .when_async(cmd(
            t0(),
            UserAction::StartWebAuthnAuthentication {
                challenge: ceremony("a1"),
            },
        ))
        .await
        .then_expect_error(UserError::MethodNotEnrolled(Method::WebAuthn));
    tf().given(passkey_user())
        .when_async(cmd(
            t0(),
            UserAction::StartWebAuthnAuthentication {
                challenge: ceremony("a1"),
            },
        ))
        .await
        .then_expect_events(vec![authentication_started("a1")]);
}

fn signing_in() -> Vec<UserEvent> {
    let mut given = passkey_user();
    given.push(authentication_started("a1"));
    given
}

#[tokio::test]
async fn an_assertion_with_a_higher_counter_signs_in() {
    tf().given(signing_in())
        .when_async(cmd(t0(), assertion("a1", "sig:R1:6")))
        .await
        .then_expect_events(vec![
            UserEvent::CodeVerified {
                method: Method::WebAuthn,
                totp_step: None,
                challenge_id: Some("a1".into()),
                at: t0(),
            },
            UserEvent::WebAuthnCredentialUsed {
                credential_id: "k1".into(),
                counter: 6,
                challenge_id: "a1".into(),
                at: t0(),
            },
        ]);
}

#[tokio::test]
async fn a_replayed_assertion_is_a_counted_failure() {
    let mut given = signing_in();
    given.push(UserEvent::CodeVerified {
        method: Method::WebAuthn,
        totp_step: None,
        challenge_id: Some("a1".into()),
        at: t0(),
    });
    tf().given(given)
        .when_async(cmd(t0(), assertion("a1", "sig:R1:6")))
        .await
        .then_expect_events(vec![failed(1, "a1")]);
}

#[tokio::test]
async fn a_wrong_assertion_spends_the_ceremony() {
    tf().given(signing_in())
        .when_async(cmd(t0(), assertion("a1", "not signed")))
        .await
        .then_expect_events(vec![failed(1, "a1")]);
    let mut given = signing_in();
    given.push(failed(1, "a1"));
    assert!(state(given.clone()).webauthn_challenge("a1").unwrap().used);
    tf().given(given)
        .when_async(cmd(t0(), assertion("a1", "sig:R1:6")))
        .await
        .then_expect_events(vec![failed(2, "a1")]);
}

#[tokio::test]
async fn a_credential_that_is_not_the_users_is_a_failure() {
    tf().given(signing_in())
        .when_async(cmd(t0(), assertion("a1", "sig:OTHER:9")))
        .await
        .then_expect_events(vec![failed(1, "a1")]);
}

#[tokio::test]
async fn a_counter_that_does_not_go_up_is_recorded_and_refused() {
    for presented in [5, 2] {
        tf().given(signing_in())
            .when_async(cmd(t0(), assertion("a1", &format!("sig:R1:{presented}"))))
            .await
            .then_expect_events(vec![
                UserEvent::WebAuthnCounterRegressed {
                    credential_id: "k1".into(),
                    stored: 5,
                    presented,
                    challenge_id: "a1".into(),
                    at: t0(),
                },
                failed(1, "a1"),
            ]);
    }
}

#[tokio::test]
async fn an_authenticator_without_a_counter_is_accepted_at_zero() {
    let given = vec![
        registration_started("w0", false),
        registered("k1", "R1", 0, "w0"),
        authentication_started("a1"),
    ];
    tf().given(given)
        .when_async(cmd(t0(), assertion("a1", "sig:R1:0")))
        .await
        .then_expect_events(vec![
            UserEvent::CodeVerified {
                method: Method::WebAuthn,
                totp_step: None,
                challenge_id: Some("a1".into()),
                at: t0(),
            },
            UserEvent::WebAuthnCredentialUsed {
                credential_id: "k1".into(),
                counter: 0,
                challenge_id: "a1".into(),
                at: t0(),
            },
        ]);
}

#[tokio::test]
async fn the_stored_counter_is_the_one_judged() {
    let mut given = signing_in();
    given.push(UserEvent::WebAuthnCredentialUsed {
        credential_id: "k1".into(),
        counter: 40,
        challenge_id: "a0".into(),
        at: t0(),
    });
    let user = state(given.clone());
    assert_eq!(user.webauthn_credentials()[0].counter, 40);
    assert_eq!(user.webauthn_credentials()[0].last_used_at, Some(t0()));
    tf().given(given)
        .when_async(cmd(t0(), assertion("a1", "sig:R1:39")))
        .await
        .then_expect_events(vec![
            UserEvent::WebAuthnCounterRegressed {
                credential_id: "k1".into(),
                stored: 40,
                presented: 39,
                challenge_id: "a1".into(),
                at: t0(),
            },
            failed(1, "a1"),
        ]);
}

#[tokio::test]
async fn ceremonies_are_bound_to_purpose_time_and_id() {
    tf().given(signing_in())
        .when_async(cmd(
            t0() + Duration::minutes(5),
            assertion("a1", "sig:R1:6"),
        ))
        .await
        .then_expect_error(UserError::CodeExpired(
            "the WebAuthn challenge has expired: start a new one",
        ));
    tf().given(signing_in())
        .when_async(cmd(t0(), assertion("w0", "sig:R1:6")))
        .await
        .then_expect_error(UserError::ChallengeNotFound);
    tf().given(signing_in())
        .when_async(cmd(t0(), assertion("nope", "sig:R1:6")))
        .await
        .then_expect_error(UserError::ChallengeNotFound);
    tf().given(signing_in())
        .when_async(cmd(
            t0(),
            UserAction::Verify {
                proof: proof(Method::WebAuthn, "sig:R1:6"),
                trust: None,
            },
        ))
        .await
        .then_expect_error(UserError::ChallengeRequired);
}

#[tokio::test]
async fn wrong_assertions_count_toward_the_lockout() {
    let mut given = signing_in();
    for n in 1..=9 {
        given.push(UserEvent::VerificationFailed {
            method: Method::Totp,
            challenge_id: None,
            consecutive_failures: n,
            at: t0(),
        });
    }
    tf().given(given)
        .when_async(cmd(t0(), assertion("a1", "forged")))
        .await
        .then_expect_events(vec![
            failed(10, "a1"),
            UserEvent::UserLockedOut {
                until: t0() + lockout_duration(1),
                lockout: 1,
                admin_required: false,
                at: t0(),
            },
        ]);
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
