//! What the user aggregate's tests share. The code checker double maps code "step:N" to time
//! step N, hashes recovery code "c" to "h-c", and takes "code-of-ID" for challenge ID: the crypto
//! is tested in infra, the decisions here. An enrolled user has TOTP with last step 100 and
//! recovery codes r0..r9; a phone user has a verified, preferred number and recovery codes.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Duration, TimeZone, Utc};
use cqrs_es::test::TestFramework;

use super::*;
use crate::channel::{Channel, Purpose};
use crate::secrets::{SealedSecret, TotpParams};
use crate::tenant::KeyedHash;
use crate::{Method, TenantId, TotpAlgorithm, UserId};

struct Codes;

#[async_trait]
impl CodeChecker for Codes {
    async fn totp_step(
        &self,
        _user: &UserRef,
        secret: &SealedSecret,
        _params: &TotpParams,
        code: &str,
        _at: DateTime<Utc>,
    ) -> Result<Option<u64>, ServicesError> {
        if secret.as_encoded() == "broken" {
            return Err(ServicesError("data key unavailable".into()));
        }
        Ok(code.strip_prefix("step:").and_then(|s| s.parse().ok()))
    }

    fn recovery_code_hash(&self, _user: &UserRef, normalized_code: &str) -> KeyedHash {
        KeyedHash::from_hex(format!("h-{normalized_code}"))
    }

    fn challenge_code_matches(
        &self,
        _user: &UserRef,
        challenge_id: &str,
        _digits: u8,
        code: &str,
    ) -> bool {
        code == format!("code-of-{challenge_id}")
    }
}

pub(super) fn tf() -> TestFramework<User> {
    TestFramework::with(Arc::new(Codes) as Arc<dyn CodeChecker>)
}

pub(super) fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 23, 12, 0, 0).unwrap()
}

pub(super) fn cmd(at: DateTime<Utc>, action: UserAction) -> UserCommand {
    UserCommand {
        user: UserRef {
            tenant: TenantId::parse("acme").unwrap(),
            user: UserId::parse("alice").unwrap(),
        },
        at,
        action,
        notifications: Notifications::default(),
    }
}

pub(super) fn codes(prefix: &str) -> Vec<KeyedHash> {
    (0..10)
        .map(|i| KeyedHash::from_hex(format!("h-{prefix}{i}")))
        .collect()
}

pub(super) fn proof(method: Method, code: &str) -> Proof {
    Proof {
        method,
        code: code.into(),
        challenge_id: None,
    }
}

pub(super) fn started() -> UserEvent {
    UserEvent::TotpEnrollmentStarted {
        secret: SealedSecret::from_encoded("sealed".into()),
        algorithm: TotpAlgorithm::Sha1,
        digits: 6,
        period: 30,
        at: t0(),
    }
}

/// An enrolled user whose last accepted step is 100, with recovery codes r0..r9.
pub(super) fn enrolled() -> Vec<UserEvent> {
    vec![
        started(),
        UserEvent::TotpEnabled {
            step: 100,
            at: t0(),
        },
        UserEvent::RecoveryCodesGenerated {
            hashes: codes("r"),
            at: t0(),
        },
    ]
}

pub(super) fn failures(n: u32, method: Method) -> Vec<UserEvent> {
    let mut user = User::default();
    for e in enrolled() {
        cqrs_es::Aggregate::apply(&mut user, e);
    }
    let mut events = Vec::new();
    for _ in 0..n {
        for e in user.failure(method, t0()) {
            cqrs_es::Aggregate::apply(&mut user, e.clone());
            events.push(e);
        }
    }
    events
}

pub(super) fn challenge(id: &str, at: DateTime<Utc>) -> NewChallenge {
    NewChallenge {
        id: id.into(),
        digits: 6,
        expires_at: at + Duration::minutes(10),
        idempotency_key: None,
    }
}

pub(super) fn sent(id: &str, channel: Channel, purpose: Purpose, at: DateTime<Utc>) -> UserEvent {
    UserEvent::CodeSent {
        challenge_id: id.into(),
        channel,
        purpose,
        digits: 6,
        expires_at: at + Duration::minutes(10),
        sent_to: "+995 *** ** 34 56".into(),
        idempotency_key: None,
        at,
    }
}

/// A user whose phone is verified (and preferred), with recovery codes.
pub(super) fn phone_user() -> Vec<UserEvent> {
    vec![
        UserEvent::PhoneFactorAdded {
            replacing: false,
            phone: SealedSecret::from_encoded("sealed-phone".into()),
            calling_code: "995".into(),
            region: Some("GE".into()),
            masked: "+995 *** ** 34 56".into(),
            at: t0(),
        },
        sent("c0", Channel::Sms, Purpose::VerifyChannel, t0()),
        UserEvent::ChannelVerified {
            channel: Channel::Sms,
            challenge_id: "c0".into(),
            at: t0(),
        },
        UserEvent::RecoveryCodesGenerated {
            hashes: codes("r"),
            at: t0(),
        },
        UserEvent::PreferredChannelChosen {
            channel: Channel::Sms,
            at: t0(),
        },
    ]
}

pub(super) fn sms_proof(challenge: &str, code: &str) -> Proof {
    Proof {
        method: Method::Sms,
        code: code.into(),
        challenge_id: Some(challenge.into()),
    }
}

pub(super) fn state(events: Vec<UserEvent>) -> User {
    let mut user = User::default();
    for e in events {
        cqrs_es::Aggregate::apply(&mut user, e);
    }
    user
}

pub(super) fn trusted(id: &str, at: DateTime<Utc>, days: i64) -> UserEvent {
    UserEvent::DeviceTrusted {
        device_id: id.into(),
        token_hash: KeyedHash::from_hex(format!("token-{id}")),
        label: None,
        expires_at: at + Duration::days(days),
        at,
    }
}
