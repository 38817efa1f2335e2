//! An admin clearing a lockout or resetting 2FA.

use chrono::Duration;

use super::fixtures::*;
use super::*;
use crate::channel::Channel;
use crate::{ApiKeyId, Method, Reason};

#[tokio::test]
async fn an_admin_clears_a_lockout() {
    let mut given = enrolled();
    given.extend(failures(10, Method::Totp));
    let by = ApiKeyId::parse("admin0001").unwrap();
    let reason = Reason::parse("called support").unwrap();
    tf().given(given)
        .when_async(cmd(
            t0(),
            UserAction::ClearLockout {
                by: by.clone(),
                reason: reason.clone(),
            },
        ))
        .await
        .then_expect_events(vec![UserEvent::LockoutCleared {
            by,
            reason,
            at: t0(),
        }]);
}

#[tokio::test]
async fn a_reset_needs_a_known_user_and_clears_everything() {
    let by = ApiKeyId::parse("admin0001").unwrap();
    let reason = Reason::parse("lost phone").unwrap();
    tf().given_no_previous_events()
        .when_async(cmd(
            t0(),
            UserAction::Reset {
                by: by.clone(),
                reason: reason.clone(),
            },
        ))
        .await
        .then_expect_error(UserError::UnknownUser);
    let mut user = User::default();
    let mut events = enrolled();
    events.extend(failures(10, Method::Totp));
    events.push(UserEvent::TwoFactorReset {
        by,
        reason,
        at: t0(),
    });
    for e in events {
        cqrs_es::Aggregate::apply(&mut user, e);
    }
    assert!(!user.enabled());
    assert_eq!(user.recovery_codes_remaining(), 0);
    assert_eq!(user.locked_until(t0()), None);
    assert!(user.exists());
}

#[test]
fn a_cleared_lockout_starts_the_count_and_the_backoff_again() {
    let mut events = enrolled();
    events.extend(failures(20, Method::Totp));
    events.push(UserEvent::LockoutCleared {
        by: ApiKeyId::parse("admin0001").unwrap(),
        reason: Reason::parse("called support").unwrap(),
        at: t0(),
    });
    let user = state(events);
    assert_eq!(user.consecutive_failures(), 0);
    assert_eq!(user.locked_until(t0()), None);
    let mut failing = user.clone();
    let mut lockouts = vec![];
    for _ in 0..10 {
        for e in failing.failure(Method::Totp, t0()) {
            if let UserEvent::UserLockedOut { lockout, until, .. } = &e {
                lockouts.push((*lockout, *until));
            }
            cqrs_es::Aggregate::apply(&mut failing, e);
        }
    }
    assert_eq!(lockouts, [(1, t0() + Duration::minutes(5))]);
}

#[tokio::test]
async fn nothing_to_clear_records_nothing() {
    tf().given(enrolled())
        .when_async(cmd(
            t0(),
            UserAction::ClearLockout {
                by: ApiKeyId::parse("admin0001").unwrap(),
                reason: Reason::parse("called support").unwrap(),
            },
        ))
        .await
        .then_expect_events(vec![]);
}

#[tokio::test]
async fn failures_short_of_a_lockout_are_cleared_too() {
    let mut given = enrolled();
    given.extend(failures(5, Method::Totp));
    let by = ApiKeyId::parse("admin0001").unwrap();
    let reason = Reason::parse("called support").unwrap();
    tf().given(given)
        .when_async(cmd(
            t0(),
            UserAction::ClearLockout {
                by: by.clone(),
                reason: reason.clone(),
            },
        ))
        .await
        .then_expect_events(vec![UserEvent::LockoutCleared {
            by,
            reason,
            at: t0(),
        }]);
}

#[tokio::test]
async fn time_steps_used_before_a_reset_stay_used() {
    let mut given = enrolled(); // step 100 used
    given.push(UserEvent::TwoFactorReset {
        by: ApiKeyId::parse("admin0001").unwrap(),
        reason: Reason::parse("lost phone").unwrap(),
        at: t0(),
    });
    given.push(started());
    tf().given(given)
        .when_async(cmd(
            t0(),
            UserAction::ConfirmTotp {
                code: "step:100".into(),
                proof: None,
                recovery_codes: codes("n"),
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
async fn an_erasure_needs_a_known_user_revokes_devices_and_sends_no_notice() {
    let by = ApiKeyId::parse("admin0001").unwrap();
    let reason = Reason::parse("GDPR request 42").unwrap();
    let erase = || {
        cmd(
            t0(),
            UserAction::Erase {
                by: by.clone(),
                reason: reason.clone(),
            },
        )
    };
    tf().given_no_previous_events()
        .when_async(erase())
        .await
        .then_expect_error(UserError::UnknownUser);
    let mut given = phone_user();
    given.push(trusted("d1", t0(), 30));
    // Notices are on for these fixtures: an erasure still queues none, having no address left.
    tf().given(given)
        .when_async(erase())
        .await
        .then_expect_events(vec![
            UserEvent::DeviceTrustRevoked {
                device_id: "d1".into(),
                reason: DeviceRevocation::UserErased,
                explanation: None,
                at: t0(),
            },
            UserEvent::UserErased {
                by: by.clone(),
                reason: reason.clone(),
                at: t0(),
            },
        ]);
}

#[tokio::test]
async fn an_erased_user_keeps_nothing_sealed_and_starts_again() {
    let mut events = phone_user();
    events.extend(enrolled()); // step 100 used
    events.push(UserEvent::LocaleChanged {
        locale: "ka".into(),
        at: t0(),
    });
    events.extend(failures(10, Method::Totp));
    events.push(UserEvent::UserErased {
        by: ApiKeyId::parse("admin0001").unwrap(),
        reason: Reason::parse("GDPR request 42").unwrap(),
        at: t0(),
    });
    let user = state(events.clone());
    assert!(
        user.exists(),
        "the user is known: a new start, not a stranger"
    );
    assert!(!user.enabled());
    assert!(user.methods().is_empty());
    assert!(user.contact(Channel::Sms).is_none());
    assert!(user.contact(Channel::Email).is_none());
    assert!(user.locale().is_none());
    assert_eq!(user.locked_until(t0()), None);
    assert!(user.challenges().is_empty());
    // Nothing sealed survives in the snapshot an erased user is stored as.
    let snapshot = serde_json::to_string(&user).unwrap();
    assert!(!snapshot.contains("sealed"), "{snapshot}");
    // A new start: enrol again, but the step used before the erasure stays used.
    events.push(started());
    tf().given(events)
        .when_async(cmd(
            t0(),
            UserAction::ConfirmTotp {
                code: "step:100".into(),
                proof: None,
                recovery_codes: codes("n"),
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
async fn a_reseal_replaces_only_seals_still_in_place_queued_notices_included() {
    use crate::secrets::SealedSecret;
    let sealed = |s: &str| SealedSecret::from_encoded(s.into());
    let mut given = phone_user(); // the number sealed as "sealed-phone"
    given.push(UserEvent::NotificationQueued {
        notification_id: "n-1".into(),
        kind: NotificationKind::DeviceTrusted,
        channel: Channel::Sms,
        destination: sealed("sealed-phone"),
        sent_to: "+995 •••• 56".into(),
        at: t0(),
    });
    let phone_slot = SealSlot::Phone;
    let notice_slot = SealSlot::Notification {
        id: "n-1".into(),
        channel: Channel::Sms,
    };
    let user = state(given.clone());
    assert_eq!(
        user.seals()
            .into_iter()
            .map(|(slot, _)| slot)
            .collect::<Vec<_>>(),
        vec![phone_slot.clone(), notice_slot.clone()]
    );
    let resealed = |slot: SealSlot, old: &str| Resealed {
        slot,
        old: sealed(old),
        new: sealed("new"),
    };
    // A slot that changed meanwhile (its seal is no longer the one resealed) is left alone.
    tf().given(given.clone())
        .when_async(cmd(
            t0(),
            UserAction::Reseal {
                seals: vec![
                    resealed(phone_slot.clone(), "sealed-phone"),
                    resealed(notice_slot.clone(), "sealed-phone"),
                    resealed(SealSlot::Totp, "whatever"),
                ],
            },
        ))
        .await
        .then_expect_events(vec![UserEvent::SecretsResealed {
            seals: vec![
                (phone_slot.clone(), sealed("new")),
                (notice_slot, sealed("new")),
            ],
            at: t0(),
        }]);
    let mut after = given;
    after.push(UserEvent::SecretsResealed {
        seals: vec![(phone_slot, sealed("new"))],
        at: t0(),
    });
    let user = state(after);
    assert_eq!(user.contact(Channel::Sms).unwrap().sealed, sealed("new"));
    assert_eq!(
        user.notification("n-1").unwrap().destination,
        sealed("sealed-phone")
    );
}
