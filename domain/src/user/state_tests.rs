//! What the `user` query reads from the state, as the events leave it.

use chrono::Duration;

use super::fixtures::*;
use super::*;
use crate::channel::{Channel, Purpose};
use crate::Method;

#[test]
fn a_user_is_first_seen_at_the_first_event_and_never_after() {
    let mut events = vec![started()];
    events.push(UserEvent::TotpEnabled {
        step: 1,
        at: t0() + Duration::hours(1),
    });
    let user = state(events);
    assert!(user.exists());
    assert_eq!(user.first_seen_at(), Some(t0()));
    assert_eq!(User::default().first_seen_at(), None);
}

#[test]
fn an_enrollment_waits_until_it_is_confirmed() {
    let waiting = state(vec![started()]);
    assert!(waiting.totp_pending());
    assert!(!waiting.enabled());
    let confirmed = state(enrolled());
    assert!(!confirmed.totp_pending());
    assert!(confirmed.enabled());
}

#[test]
fn the_last_verification_is_the_last_code_that_passed() {
    let mut events = enrolled();
    let later = t0() + Duration::hours(2);
    events.push(UserEvent::CodeVerified {
        method: Method::Totp,
        totp_step: Some(101),
        challenge_id: None,
        at: later,
    });
    events.extend(failures(1, Method::Totp));
    let user = state(events);
    assert_eq!(user.last_verified_at(), Some(later));
    assert_eq!(user.consecutive_failures(), 1);
}

#[test]
fn recovery_codes_are_a_method_only_while_some_are_left() {
    let mut events = enrolled();
    for index in 0..10 {
        events.push(UserEvent::RecoveryCodeUsed {
            index,
            remaining: 9 - index,
            at: t0(),
        });
    }
    let user = state(events);
    assert_eq!(user.recovery_codes_remaining(), 0);
    assert_eq!(user.methods(), vec![Method::Totp]);
}

#[test]
fn sent_codes_are_listed_oldest_first() {
    let mut events = phone_user();
    events.push(sent("s1", Channel::Sms, Purpose::SignIn, t0()));
    let user = state(events);
    let ids: Vec<&str> = user.challenges().iter().map(|c| c.id.as_str()).collect();
    assert_eq!(ids, ["c0", "s1"]);
    assert_eq!(user.preferred_channel(), Some(Channel::Sms));
    assert_eq!(user.methods(), vec![Method::Sms, Method::RecoveryCode]);
}

#[test]
fn an_event_is_stored_under_the_name_its_payload_is_tagged_with() {
    use cqrs_es::DomainEvent;
    let mut events = phone_user();
    events.extend(enrolled());
    events.extend(failures(10, Method::Sms));
    for event in events {
        let payload = serde_json::to_value(&event).unwrap();
        let tag = payload.as_object().and_then(|o| o.keys().next()).cloned();
        assert_eq!(Some(event.event_type()), tag);
        assert_eq!(event.event_version(), "1");
    }
}

#[test]
fn a_users_events_are_stored_in_a_stream_inside_its_tenant() {
    let command = cmd(
        t0(),
        UserAction::CheckProof {
            proof: proof(Method::Totp, "step:1"),
        },
    );
    assert_eq!(command.user.aggregate_id(), "acme/user/alice");
}
