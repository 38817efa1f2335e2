//! An admin clearing a lockout or resetting 2FA.

use super::fixtures::*;
use super::*;
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
