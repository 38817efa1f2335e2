//! Signing in with a passkey or security key: the ceremony, the assertion, the counter.

use super::fixtures::{cmd, enrolled, proof, state, t0};
use super::webauthn_fixtures::*;
use super::*;
use crate::secrets::SealedSecret;
use crate::Method;
use chrono::Duration;

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
    // 0 too: an authenticator that kept a counter cannot stop keeping one (a clone might).
    for presented in [5, 2, 0] {
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

#[test]
fn a_regressed_counter_spends_its_ceremony_on_its_own() {
    let mut given = signing_in();
    given.push(UserEvent::WebAuthnCounterRegressed {
        credential_id: "k1".into(),
        stored: 5,
        presented: 5,
        challenge_id: "a1".into(),
        at: t0(),
    });
    assert!(state(given).webauthn_challenge("a1").unwrap().used);
}

#[test]
fn expired_ceremonies_go_when_a_new_one_starts_and_live_ones_stay() {
    let started_at = |id: &str, at| UserEvent::WebAuthnAuthenticationStarted {
        challenge_id: id.into(),
        state: SealedSecret::from_encoded(format!("state-{id}")),
        expires_at: at + Duration::minutes(5),
        at,
    };
    // a1 expires at t0 + 5 min: still there for a ceremony started a minute in...
    let mut given = signing_in();
    given.push(started_at("a2", t0() + Duration::minutes(1)));
    let user = state(given);
    assert!(user.webauthn_challenge("a1").is_some());
    assert!(user.webauthn_challenge("a2").is_some());
    // ...and gone for one started at the moment it expires.
    let mut given = signing_in();
    given.push(started_at("a3", t0() + Duration::minutes(5)));
    let user = state(given);
    assert!(user.webauthn_challenge("a1").is_none());
    assert!(user.webauthn_challenge("a3").is_some());
}
