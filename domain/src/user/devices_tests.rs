//! Trusting a device, the limit on trusted devices, and revoking them.

use chrono::Duration;

use super::fixtures::*;
use super::*;
use crate::tenant::KeyedHash;
use crate::{ApiKeyId, DeviceLabel, Method, Reason};

fn trust(id: &str) -> NewTrustedDevice {
    NewTrustedDevice {
        id: id.into(),
        token_hash: KeyedHash::from_hex(format!("token-{id}")),
        label: Some(DeviceLabel::parse("Work laptop").unwrap()),
        lifetime_days: 30,
    }
}

#[tokio::test]
async fn a_passing_verification_trusts_the_device_and_a_failing_one_does_not() {
    tf().given(enrolled())
        .when_async(cmd(
            t0(),
            UserAction::Verify {
                proof: proof(Method::Totp, "step:101"),
                trust: Some(trust("d1")),
            },
        ))
        .await
        .then_expect_events(vec![
            UserEvent::CodeVerified {
                method: Method::Totp,
                totp_step: Some(101),
                challenge_id: None,
                at: t0(),
            },
            UserEvent::DeviceTrusted {
                device_id: "d1".into(),
                token_hash: KeyedHash::from_hex("token-d1".into()),
                label: Some(DeviceLabel::parse("Work laptop").unwrap()),
                expires_at: t0() + Duration::days(30),
                at: t0(),
            },
        ]);
    tf().given(enrolled())
        .when_async(cmd(
            t0(),
            UserAction::Verify {
                proof: proof(Method::Totp, "step:100"),
                trust: Some(trust("d1")),
            },
        ))
        .await
        .then_expect_events(vec![UserEvent::VerificationFailed {
            method: Method::Totp,
            challenge_id: None,
            consecutive_failures: 1,
            at: t0(),
        }]);
}

#[tokio::test]
async fn trusting_past_the_limit_revokes_the_oldest() {
    let mut events = enrolled();
    for i in 0..MAX_TRUSTED_DEVICES {
        events.push(trusted(&format!("old{i}"), t0(), 30));
    }
    let at = t0() + Duration::minutes(1);
    let result = tf()
        .given(events)
        .when_async(cmd(
            at,
            UserAction::Verify {
                proof: proof(Method::Totp, "step:101"),
                trust: Some(trust("new")),
            },
        ))
        .await;
    let events = result.inspect_result().unwrap();
    assert_eq!(
        events[1],
        UserEvent::DeviceTrustRevoked {
            device_id: "old0".into(),
            reason: DeviceRevocation::LimitReached,
            explanation: None,
            at,
        }
    );
    assert!(matches!(&events[2], UserEvent::DeviceTrusted { device_id, .. } if device_id == "new"));
}

fn with_devices() -> Vec<UserEvent> {
    let mut events = enrolled();
    events.push(trusted("d1", t0(), 30));
    events.push(trusted("gone", t0() - Duration::days(40), 30));
    events.push(trusted("d2", t0(), 30));
    events
}

fn revoked(id: &str, reason: DeviceRevocation) -> UserEvent {
    UserEvent::DeviceTrustRevoked {
        device_id: id.into(),
        reason,
        explanation: None,
        at: t0(),
    }
}

#[tokio::test]
async fn new_recovery_codes_revoke_every_trusted_device() {
    tf().given(with_devices())
        .when_async(cmd(
            t0(),
            UserAction::RegenerateRecoveryCodes {
                proof: proof(Method::Totp, "step:101"),
                recovery_codes: codes("n"),
            },
        ))
        .await
        .then_expect_events(vec![
            UserEvent::CodeVerified {
                method: Method::Totp,
                totp_step: Some(101),
                challenge_id: None,
                at: t0(),
            },
            UserEvent::RecoveryCodesGenerated {
                hashes: codes("n"),
                at: t0(),
            },
            revoked("d1", DeviceRevocation::RecoveryCodesRegenerated),
            revoked("d2", DeviceRevocation::RecoveryCodesRegenerated),
        ]);
}

#[tokio::test]
async fn disabling_and_resetting_revoke_every_trusted_device() {
    tf().given(with_devices())
        .when_async(cmd(
            t0(),
            UserAction::Disable {
                proof: proof(Method::Totp, "step:101"),
                policy_enforced: false,
            },
        ))
        .await
        .then_expect_events(vec![
            UserEvent::CodeVerified {
                method: Method::Totp,
                totp_step: Some(101),
                challenge_id: None,
                at: t0(),
            },
            revoked("d1", DeviceRevocation::TwoFactorDisabled),
            revoked("d2", DeviceRevocation::TwoFactorDisabled),
            UserEvent::TwoFactorDisabled {
                method: Method::Totp,
                at: t0(),
            },
        ]);
    let by = ApiKeyId::parse("admin0001").unwrap();
    let reason = Reason::parse("lost phone").unwrap();
    tf().given(with_devices())
        .when_async(cmd(
            t0(),
            UserAction::Reset {
                by: by.clone(),
                reason: reason.clone(),
            },
        ))
        .await
        .then_expect_events(vec![
            revoked("d1", DeviceRevocation::TwoFactorReset),
            revoked("d2", DeviceRevocation::TwoFactorReset),
            UserEvent::TwoFactorReset {
                by,
                reason,
                at: t0(),
            },
        ]);
}

#[tokio::test]
async fn a_device_is_revoked_once_and_unknown_ones_are_not_found() {
    tf().given(with_devices())
        .when_async(cmd(
            t0(),
            UserAction::RevokeTrustedDevice {
                device_id: "d1".into(),
                explanation: None,
            },
        ))
        .await
        .then_expect_events(vec![revoked("d1", DeviceRevocation::Revoked)]);
    // An admin's explanation is kept in the event.
    let stolen = Reason::parse("Laptop stolen").unwrap();
    tf().given(with_devices())
        .when_async(cmd(
            t0(),
            UserAction::RevokeTrustedDevice {
                device_id: "d1".into(),
                explanation: Some(stolen.clone()),
            },
        ))
        .await
        .then_expect_events(vec![UserEvent::DeviceTrustRevoked {
            device_id: "d1".into(),
            reason: DeviceRevocation::Revoked,
            explanation: Some(stolen),
            at: t0(),
        }]);
    for id in ["nope", "gone"] {
        tf().given(with_devices())
            .when_async(cmd(
                t0(),
                UserAction::RevokeTrustedDevice {
                    device_id: id.into(),
                    explanation: None,
                },
            ))
            .await
            .then_expect_error(UserError::DeviceNotFound);
    }
    let mut events = with_devices();
    events.push(revoked("d1", DeviceRevocation::Revoked));
    tf().given(events)
        .when_async(cmd(
            t0(),
            UserAction::RevokeTrustedDevice {
                device_id: "d1".into(),
                explanation: None,
            },
        ))
        .await
        .then_expect_error(UserError::DeviceNotFound);
}

fn device(lifetime_days: i64) -> TrustedDevice {
    TrustedDevice {
        id: "d1".into(),
        token_hash: KeyedHash::from_hex("token-d1".into()),
        label: None,
        created_at: t0(),
        expires_at: t0() + Duration::days(lifetime_days),
    }
}

#[test]
fn trust_ends_at_the_instant_its_lifetime_or_the_policy_ends_it() {
    let just_before = Duration::seconds(1);
    // Its own lifetime, under a longer policy.
    let short = device(10);
    assert!(short.valid(30, t0() + Duration::days(10) - just_before));
    assert!(!short.valid(30, t0() + Duration::days(10)));
    // A policy shortened since.
    let long = device(30);
    assert!(long.valid(1, t0() + Duration::days(1) - just_before));
    assert!(!long.valid(1, t0() + Duration::days(1)));
}

#[test]
fn trusted_devices_off_means_off_even_for_a_clock_behind_the_trust() {
    // Another instance whose clock is a second behind the one that trusted the device.
    assert!(!device(30).valid(0, t0() - Duration::seconds(1)));
}

#[test]
fn a_device_is_listed_until_its_trust_expires() {
    let user = state(with_devices());
    let listed = |at| {
        user.trusted_devices(at)
            .map(|d| d.id.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(listed(t0()), ["d1", "d2"]);
    assert_eq!(
        listed(t0() + Duration::days(30) - Duration::seconds(1)),
        ["d1", "d2"]
    );
    assert!(listed(t0() + Duration::days(30)).is_empty());
}

#[test]
fn trusting_a_device_forgets_the_expired_ones() {
    let mut events = with_devices(); // "gone" expired ten days ago
    events.push(trusted("d3", t0(), 30));
    let user = state(events);
    let kept: Vec<&str> = user.trusted_devices.iter().map(|d| d.id.as_str()).collect();
    assert_eq!(kept, ["d1", "d2", "d3"]);
    // One that expires at the very moment of the new trust is expired too.
    let mut events = enrolled();
    events.push(trusted("d1", t0() - Duration::days(30), 30));
    events.push(trusted("d2", t0(), 30));
    assert_eq!(state(events).trusted_devices.len(), 1);
}

#[test]
fn a_revocation_recorded_before_explanations_still_reads() {
    // The payload as stored before `explanation` existed.
    let old: UserEvent = serde_json::from_value(serde_json::json!({
        "DeviceTrustRevoked": { "device_id": "d1", "reason": "REVOKED", "at": t0() }
    }))
    .unwrap();
    assert_eq!(old, revoked("d1", DeviceRevocation::Revoked));
    let mut events = with_devices();
    events.push(old);
    assert!(state(events).trusted_devices(t0()).all(|d| d.id != "d1"));
}
