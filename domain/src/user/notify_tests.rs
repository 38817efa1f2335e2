//! Security notices: which change queues which notice, to where, and when none.

use chrono::Duration;

use super::fixtures::*;
use super::*;
use crate::channel::{Channel, Purpose};
use crate::secrets::SealedSecret;
use crate::{ApiKeyId, Method, Reason};

fn on() -> Notifications {
    Notifications::on("n1")
}

fn sealed(s: &str) -> SealedSecret {
    SealedSecret::from_encoded(s.into())
}

fn email_added(
    sealed_as: &str,
    masked: &str,
    replacing: bool,
    at: chrono::DateTime<chrono::Utc>,
) -> UserEvent {
    UserEvent::EmailFactorAdded {
        email: sealed(sealed_as),
        masked: masked.into(),
        replacing,
        at,
    }
}

/// A user with TOTP and a verified email address (`old-mail`, `j***@example.com`).
fn email_user() -> Vec<UserEvent> {
    let mut events = enrolled();
    events.extend([
        email_added("old-mail", "j***@example.com", false, t0()),
        sent("e0", Channel::Email, Purpose::VerifyChannel, t0()),
        UserEvent::ChannelVerified {
            channel: Channel::Email,
            challenge_id: "e0".into(),
            at: t0(),
        },
    ]);
    events
}

/// The one notice `events` queue on the state `given`, with its kind, channel and destination.
fn only_notice(given: Vec<UserEvent>, events: &[UserEvent]) -> (NotificationKind, Channel, String) {
    let notices = state(given).notices(events, &on(), t0());
    assert_eq!(notices.len(), 1, "{notices:?}");
    match notices.into_iter().next() {
        Some(UserEvent::NotificationQueued {
            notification_id,
            kind,
            channel,
            destination,
            ..
        }) => {
            assert_eq!(notification_id, "n1");
            (kind, channel, destination.as_encoded().to_owned())
        }
        other => panic!("not a notice: {other:?}"),
    }
}

#[test]
fn a_new_authenticator_app_is_told_to_the_verified_phone() {
    let totp_on = [UserEvent::TotpEnabled {
        step: 200,
        at: t0(),
    }];
    let (kind, channel, to) = only_notice(phone_user(), &totp_on);
    assert_eq!(
        kind,
        NotificationKind::FactorAdded {
            method: Method::Totp,
            masked: None
        }
    );
    assert_eq!((channel, to.as_str()), (Channel::Sms, "sealed-phone"));
    let mut given = phone_user();
    given.extend(enrolled());
    let (kind, _, _) = only_notice(given, &totp_on);
    assert_eq!(
        kind,
        NotificationKind::FactorReplaced {
            method: Method::Totp,
            masked: None
        }
    );
}

#[test]
fn an_added_email_is_told_to_the_phone_verified_before_it() {
    let mut given = phone_user();
    given.extend([
        email_added("new-mail", "a***@example.com", false, t0()),
        sent("e1", Channel::Email, Purpose::VerifyChannel, t0()),
    ]);
    let confirmed = [UserEvent::ChannelVerified {
        channel: Channel::Email,
        challenge_id: "e1".into(),
        at: t0(),
    }];
    let (kind, channel, to) = only_notice(given, &confirmed);
    assert_eq!(
        kind,
        NotificationKind::FactorAdded {
            method: Method::Email,
            masked: Some("a•••@example.com".into())
        }
    );
    assert_eq!((channel, to.as_str()), (Channel::Sms, "sealed-phone"));
}

#[test]
fn a_first_verified_contact_is_told_to_itself() {
    let mut given = enrolled();
    given.extend([
        email_added("new-mail", "a***@example.com", false, t0()),
        sent("e1", Channel::Email, Purpose::VerifyChannel, t0()),
    ]);
    let confirmed = [UserEvent::ChannelVerified {
        channel: Channel::Email,
        challenge_id: "e1".into(),
        at: t0(),
    }];
    let (_, channel, to) = only_notice(given, &confirmed);
    assert_eq!((channel, to.as_str()), (Channel::Email, "new-mail"));
}

#[test]
fn a_replaced_email_is_told_to_the_old_address() {
    let later = t0() + Duration::minutes(5);
    let mut given = email_user();
    given.extend([
        email_added("new-mail", "m***@evil.example", true, later),
        sent("e2", Channel::Email, Purpose::VerifyChannel, later),
    ]);
    let confirmed = [UserEvent::ChannelVerified {
        channel: Channel::Email,
        challenge_id: "e2".into(),
        at: later,
    }];
    let (kind, channel, to) = only_notice(given, &confirmed);
    assert_eq!(
        kind,
        NotificationKind::FactorReplaced {
            method: Method::Email,
            masked: Some("m•••@evil.example".into())
        }
    );
    assert_eq!((channel, to.as_str()), (Channel::Email, "old-mail"));
}

#[test]
fn a_removed_email_is_told_to_that_address() {
    let removed = [UserEvent::FactorRemoved {
        method: Method::Email,
        at: t0(),
    }];
    let (kind, channel, to) = only_notice(email_user(), &removed);
    assert_eq!(
        kind,
        NotificationKind::FactorRemoved {
            method: Method::Email
        }
    );
    assert_eq!((channel, to.as_str()), (Channel::Email, "old-mail"));
}

#[test]
fn passkeys_added_and_removed_are_told() {
    let added = [UserEvent::WebAuthnCredentialRegistered {
        credential_id: "k1".into(),
        credential_ref: "ref".into(),
        label: None,
        credential: sealed("cred"),
        counter: 0,
        challenge_id: "w1".into(),
        at: t0(),
    }];
    let (kind, _, _) = only_notice(phone_user(), &added);
    assert_eq!(
        kind,
        NotificationKind::FactorAdded {
            method: Method::WebAuthn,
            masked: None
        }
    );
    let removed = [UserEvent::WebAuthnCredentialRemoved {
        credential_id: "k1".into(),
        at: t0(),
    }];
    let (kind, _, _) = only_notice(phone_user(), &removed);
    assert_eq!(
        kind,
        NotificationKind::FactorRemoved {
            method: Method::WebAuthn
        }
    );
}

#[test]
fn turning_two_factor_off_is_one_notice_not_one_per_factor() {
    let off = [
        UserEvent::FactorRemoved {
            method: Method::Sms,
            at: t0(),
        },
        UserEvent::TwoFactorDisabled {
            method: Method::Sms,
            at: t0(),
        },
    ];
    let (kind, channel, to) = only_notice(phone_user(), &off);
    assert_eq!(kind, NotificationKind::TwoFactorDisabled);
    assert_eq!((channel, to.as_str()), (Channel::Sms, "sealed-phone"));
}

#[test]
fn recovery_code_use_device_trust_and_lockout_are_told() {
    let used = [UserEvent::RecoveryCodeUsed {
        index: 0,
        remaining: 9,
        at: t0(),
    }];
    let (kind, _, _) = only_notice(phone_user(), &used);
    assert_eq!(kind, NotificationKind::RecoveryCodeUsed { remaining: 9 });
    let (kind, _, _) = only_notice(phone_user(), &[trusted("d1", t0(), 30)]);
    assert_eq!(kind, NotificationKind::DeviceTrusted);
    let until = t0() + Duration::minutes(5);
    let locked = [
        UserEvent::VerificationFailed {
            method: Method::Totp,
            challenge_id: None,
            consecutive_failures: 10,
            at: t0(),
        },
        UserEvent::UserLockedOut {
            until,
            lockout: 1,
            admin_required: false,
            at: t0(),
        },
    ];
    let (kind, _, _) = only_notice(phone_user(), &locked);
    assert_eq!(
        kind,
        NotificationKind::LockedOut {
            until,
            admin_required: false
        }
    );
}

#[test]
fn several_notices_of_one_command_get_distinct_ids() {
    let events = [
        UserEvent::RecoveryCodeUsed {
            index: 0,
            remaining: 9,
            at: t0(),
        },
        trusted("d1", t0(), 30),
    ];
    let ids: Vec<String> = state(phone_user())
        .notices(&events, &on(), t0())
        .into_iter()
        .map(|e| match e {
            UserEvent::NotificationQueued {
                notification_id, ..
            } => notification_id,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(ids, ["n1", "n1-2"]);
}

#[test]
fn no_notice_when_the_tenant_turned_them_off() {
    let used = [UserEvent::RecoveryCodeUsed {
        index: 0,
        remaining: 9,
        at: t0(),
    }];
    let off = Notifications {
        enabled: false,
        id: "n1".into(),
    };
    assert!(state(phone_user()).notices(&used, &off, t0()).is_empty());
}

#[test]
fn no_notice_without_a_verified_contact() {
    let used = [UserEvent::RecoveryCodeUsed {
        index: 0,
        remaining: 9,
        at: t0(),
    }];
    // TOTP only.
    assert!(state(enrolled()).notices(&used, &on(), t0()).is_empty());
    // An address registered but never proven is no one's to write to.
    let mut given = enrolled();
    given.push(email_added("unproven", "x***@example.com", false, t0()));
    assert!(state(given).notices(&used, &on(), t0()).is_empty());
}

#[tokio::test]
async fn an_admin_reset_queues_its_notice_to_the_contact_it_removes() {
    let by = ApiKeyId::parse("admin0001").unwrap();
    let reason = Reason::parse("lost phone").unwrap();
    let mut command = cmd(
        t0(),
        UserAction::Reset {
            by: by.clone(),
            reason: reason.clone(),
        },
    );
    command.notifications = on();
    tf().given(phone_user())
        .when_async(command)
        .await
        .then_expect_events(vec![
            UserEvent::TwoFactorReset {
                by: by.clone(),
                reason: reason.clone(),
                at: t0(),
            },
            UserEvent::NotificationQueued {
                notification_id: "n1".into(),
                kind: NotificationKind::TwoFactorReset,
                channel: Channel::Sms,
                destination: sealed("sealed-phone"),
                sent_to: "+995 *** ** 34 56".into(),
                at: t0(),
            },
        ]);
    // Notices outlive the reset in the state (this one, and one queued before it), so the
    // worker still finds them.
    let mut after = phone_user();
    after.extend([
        UserEvent::NotificationQueued {
            notification_id: "n0".into(),
            kind: NotificationKind::DeviceTrusted,
            channel: Channel::Sms,
            destination: sealed("sealed-phone"),
            sent_to: "+995 *** ** 34 56".into(),
            at: t0(),
        },
        UserEvent::TwoFactorReset {
            by,
            reason,
            at: t0(),
        },
        UserEvent::NotificationQueued {
            notification_id: "n1".into(),
            kind: NotificationKind::TwoFactorReset,
            channel: Channel::Sms,
            destination: sealed("sealed-phone"),
            sent_to: "+995 *** ** 34 56".into(),
            at: t0(),
        },
    ]);
    let user = state(after);
    assert!(!user.enabled());
    for id in ["n0", "n1"] {
        assert_eq!(
            user.notification(id).map(|n| n.destination.as_encoded()),
            Some("sealed-phone")
        );
    }
}

#[tokio::test]
async fn an_outcome_is_recorded_once() {
    let mut given = phone_user();
    given.push(UserEvent::NotificationQueued {
        notification_id: "n1".into(),
        kind: NotificationKind::DeviceTrusted,
        channel: Channel::Sms,
        destination: sealed("sealed-phone"),
        sent_to: "+995 *** ** 34 56".into(),
        at: t0(),
    });
    let record = || {
        cmd(
            t0(),
            UserAction::RecordNotification {
                notification_id: "n1".into(),
                outcome: DeliveryOutcome::Delivered {
                    provider_message_id: Some("SM1".into()),
                },
            },
        )
    };
    tf().given(given.clone())
        .when_async(record())
        .await
        .then_expect_events(vec![UserEvent::NotificationDelivered {
            notification_id: "n1".into(),
            provider_message_id: Some("SM1".into()),
            at: t0(),
        }]);
    given.push(UserEvent::NotificationDelivered {
        notification_id: "n1".into(),
        provider_message_id: Some("SM1".into()),
        at: t0(),
    });
    tf().given(given)
        .when_async(record())
        .await
        .then_expect_events(vec![]);
}

#[test]
fn notice_masks_show_less_than_display_masks() {
    assert_eq!(
        notice_mask(Channel::Email, "a***@example.com"),
        "a•••@example.com"
    );
    assert_eq!(
        notice_mask(Channel::Sms, "+995 *** ** 12 56"),
        "+995 •••• 56"
    );
    assert_eq!(notice_mask(Channel::Sms, "+1 *** *** 98 76"), "+1 •••• 76");
}

/// Attack review: a notice waiting for its send (its provider slow or failing, so retried)
/// must not be pushed out of the kept list by a flood of repeatable notices the attacker can
/// cause at will (a device trusted at each sign-in with their own passkey): the user would
/// never hear of the change that mattered.
#[test]
fn a_flood_of_repeated_notices_does_not_push_out_a_waiting_one() {
    let mut user = state(email_user());
    let replaced = NotificationKind::FactorReplaced {
        method: Method::Email,
        masked: Some("a•••@evil.example".into()),
    };
    cqrs_es::Aggregate::apply(
        &mut user,
        UserEvent::NotificationQueued {
            notification_id: "n-replaced".into(),
            kind: replaced,
            channel: Channel::Email,
            destination: sealed("old-mail"),
            sent_to: "j***@example.com".into(),
            at: t0(),
        },
    );
    for i in 0..(super::notify::KEPT_NOTIFICATIONS * 2) {
        let event = trusted(&format!("d{i}"), t0(), 30);
        let notices = user.notices(
            std::slice::from_ref(&event),
            &Notifications::on(format!("n{i}")),
            t0(),
        );
        for e in std::iter::once(event).chain(notices) {
            cqrs_es::Aggregate::apply(&mut user, e);
        }
    }
    assert!(
        user.notification("n-replaced").is_some(),
        "the waiting notice was dropped"
    );
    // The repeated change is still told (once while one is waiting).
    assert!(user.notification("n0").is_some());
}
