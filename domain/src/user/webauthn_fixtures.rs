//! What the WebAuthn tests share. The checker double verifies a registration answer
//! "cred:REF:COUNTER" and an assertion "sig:REF:COUNTER" (anything else does not verify): the
//! WebAuthn library is tested in infra and end to end, the rules here.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use cqrs_es::test::TestFramework;

use super::fixtures::{codes, t0};
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

pub(super) fn tf() -> TestFramework<User> {
    TestFramework::with(Arc::new(Ceremonies) as Arc<dyn CodeChecker>)
}

pub(super) fn ceremony(id: &str) -> NewWebAuthnChallenge {
    NewWebAuthnChallenge {
        id: id.into(),
        expires_at: t0() + Duration::minutes(5),
        state: SealedSecret::from_encoded(format!("state-{id}")),
    }
}

pub(super) fn registration_started(id: &str, proven: bool) -> UserEvent {
    UserEvent::WebAuthnRegistrationStarted {
        challenge_id: id.into(),
        state: SealedSecret::from_encoded(format!("state-{id}")),
        expires_at: t0() + Duration::minutes(5),
        proven,
        at: t0(),
    }
}

pub(super) fn registered(key: &str, r: &str, counter: u32, challenge: &str) -> UserEvent {
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

pub(super) fn authentication_started(id: &str) -> UserEvent {
    UserEvent::WebAuthnAuthenticationStarted {
        challenge_id: id.into(),
        state: SealedSecret::from_encoded(format!("state-{id}")),
        expires_at: t0() + Duration::minutes(5),
        at: t0(),
    }
}

/// A user whose only factor is passkey k1 (credential R1, counter 5), with recovery codes.
pub(super) fn passkey_user() -> Vec<UserEvent> {
    vec![
        registration_started("w0", false),
        registered("k1", "R1", 5, "w0"),
        UserEvent::RecoveryCodesGenerated {
            hashes: codes("r"),
            at: t0(),
        },
    ]
}

pub(super) fn finish(challenge: &str, credential: &str) -> UserAction {
    UserAction::FinishWebAuthnRegistration {
        challenge_id: challenge.into(),
        credential: credential.into(),
        credential_id: "k2".into(),
        label: None,
        recovery_codes: codes("n"),
    }
}

pub(super) fn assertion(challenge: &str, answer: &str) -> UserAction {
    UserAction::Verify {
        proof: Proof {
            method: Method::WebAuthn,
            code: answer.into(),
            challenge_id: Some(challenge.into()),
        },
        trust: None,
    }
}

pub(super) fn failed(n: u32, challenge: &str) -> UserEvent {
    UserEvent::VerificationFailed {
        method: Method::WebAuthn,
        challenge_id: Some(challenge.into()),
        consecutive_failures: n,
        at: t0(),
    }
}

pub(super) fn signing_in() -> Vec<UserEvent> {
    let mut given = passkey_user();
    given.push(authentication_started("a1"));
    given
}
