use twofold_domain::channel::{Channel, Purpose};
use twofold_domain::user::{DeliveryState, UserEvent};
use twofold_domain::Method;

use super::{check, remaining_attempts};
use crate::testing::{app, Harness};
use crate::users::ProofInput;
use crate::ServiceError;

fn email_code(code: &str, challenge_id: &str) -> ProofInput {
    ProofInput {
        method: Method::Email,
        code: code.to_owned(),
        challenge_id: Some(challenge_id.to_owned()),
    }
}

#[tokio::test]
async fn an_address_confirmed_with_its_code_becomes_a_factor() {
    let h = Harness::new();
    let challenge = h
        .users
        .add_email(&app(), "bob", "Bob@Example.com", None, None)
        .await
        .unwrap();
    assert_eq!(challenge.channel, Channel::Email);
    assert_eq!(challenge.purpose, Purpose::VerifyChannel);
    assert_eq!(challenge.delivery, DeliveryState::Pending);
    assert_ne!(challenge.sent_to, "Bob@Example.com", "shown masked");

    let code = h.code_sent("bob", &challenge.id).await;
    let codes = h
        .users
        .confirm_channel(&app(), "bob", &challenge.id, &code, None)
        .await
        .unwrap();

    assert_eq!(codes.map(|c| c.0.len()), Some(10));
    let status = h
        .users
        .status(app().tenant(), "bob")
        .await
        .unwrap()
        .unwrap();
    assert!(status.enabled);
    assert_eq!(status.email.map(|(_, verified)| verified), Some(true));
}

#[tokio::test]
async fn a_sign_in_code_sent_by_email_verifies_once() {
    let h = Harness::new();
    h.confirmed_email("bob", "Bob@Example.com").await;

    let challenge = h
        .users
        .send_code(&app(), "bob", Some(Channel::Email), None, None)
        .await
        .unwrap();
    assert_eq!(challenge.purpose, Purpose::SignIn);
    let code = h.code_sent("bob", &challenge.id).await;
    let verified = h
        .users
        .verify(&app(), "bob", check(email_code(&code, &challenge.id)))
        .await
        .unwrap();
    assert_eq!(verified.method, Method::Email);

    let again = h
        .users
        .verify(&app(), "bob", check(email_code(&code, &challenge.id)))
        .await;
    assert!(
        matches!(again, Err(ServiceError::CodeExpired(_))),
        "{again:?}"
    );
}

#[tokio::test]
async fn a_wrong_emailed_code_counts_and_the_right_one_still_works() {
    let h = Harness::new();
    h.confirmed_email("bob", "Bob@Example.com").await;
    let challenge = h
        .users
        .send_code(&app(), "bob", Some(Channel::Email), None, None)
        .await
        .unwrap();
    let code = h.code_sent("bob", &challenge.id).await;
    let wrong = if code == "000000" { "111111" } else { "000000" };

    let refused = h
        .users
        .verify(&app(), "bob", check(email_code(wrong, &challenge.id)))
        .await;
    assert_eq!(remaining_attempts(refused), 9);

    h.users
        .verify(&app(), "bob", check(email_code(&code, &challenge.id)))
        .await
        .unwrap();
}

#[tokio::test]
async fn asking_again_within_seconds_returns_the_open_challenge_without_a_second_send() {
    let h = Harness::new();
    h.confirmed_email("bob", "Bob@Example.com").await;
    let first = h
        .users
        .send_code(&app(), "bob", Some(Channel::Email), None, None)
        .await
        .unwrap();

    let second = h
        .users
        .send_code(&app(), "bob", Some(Channel::Email), None, None)
        .await
        .unwrap();

    assert_eq!(second.id, first.id);
    let sign_in_codes = h
        .events("bob")
        .await
        .into_iter()
        .filter(|e| {
            matches!(
                e,
                UserEvent::CodeSent {
                    purpose: Purpose::SignIn,
                    ..
                }
            )
        })
        .count();
    assert_eq!(sign_in_codes, 1);
}

#[tokio::test]
async fn a_send_dropped_while_its_command_runs_keeps_a_slot_only_for_a_code_issued() {
    let h = Harness::new();
    h.confirmed_email("bob", "Bob@Example.com").await;
    let codes = |events: &[UserEvent]| {
        events
            .iter()
            .filter(|e| matches!(e, UserEvent::CodeSent { .. }))
            .count()
    };
    assert_eq!((h.limiter.sends(), codes(&h.events("bob").await)), (1, 1));
    // The send takes its slot, then its request goes away (the client hung up) while its
    // command waits.
    let held = h.gateway.hold().await;
    let before = h.gateway.commands();
    let call = app();
    tokio::select! {
        _ = h.users.send_code(&call, "bob", Some(Channel::Email), None, None) => {
            panic!("the command ran while held")
        }
        () = h.gateway.arrived(before) => {}
    }
    drop(held);
    // The command runs to its end: the slot it took is for a code issued.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while codes(&h.events("bob").await) < 2 {
        assert!(
            std::time::Instant::now() < deadline,
            "the dropped send's slot is kept with no code: {} slots",
            h.limiter.sends()
        );
        tokio::task::yield_now().await;
    }
    assert_eq!(h.limiter.sends(), 2);
}

#[tokio::test(start_paused = true)]
async fn a_code_s_command_that_never_finishes_lets_its_place_go_and_keeps_its_slot() {
    let h = Harness::new();
    h.confirmed_email("bob", "Bob@Example.com").await;
    let held = h.gateway.hold().await;
    let place = std::sync::Arc::new(());
    let call = app();
    call.admission().hold(place.clone());
    // The command waits for ever (a stalled database); the paused clock runs to the deadline.
    let answer = tokio::time::timeout(
        std::time::Duration::from_secs(3_600),
        h.users
            .send_code(&call, "bob", Some(Channel::Email), None, None),
    )
    .await
    .expect("the command gives up at its deadline");
    assert!(
        matches!(answer, Err(ServiceError::Internal(_))),
        "{answer:?}"
    );
    call.admission().let_go();
    assert_eq!(
        std::sync::Arc::strong_count(&place),
        1,
        "the place is let go"
    );
    assert_eq!(h.limiter.sends(), 2, "the slot stays counted");
    drop(held);
}

// The proof a full cap checks first waits at most the deadline too: it runs in the task that
// keeps the request's place (attacker review of `107310d`: without it, a stalled database
// pinned the place for as long as it stalled).
#[tokio::test(start_paused = true)]
async fn a_proof_checked_on_a_full_cap_that_never_finishes_lets_its_place_go() {
    let h = Harness::new();
    let codes = h.confirmed_email("bob", "Bob@Example.com").await;
    // Fresh users fill the destination's cap (they need no proof).
    for i in 0..5 {
        h.users
            .add_email(&app(), &format!("x{i}"), "victim@example.com", None, None)
            .await
            .unwrap();
    }
    // Five users hold the cap's five slots (bob's confirmed email took its slot earlier, on
    // another address): bob's change below meets a full cap, and so checks its proof.
    assert_eq!(h.limiter.sends(), 6);
    let held = h.gateway.hold().await;
    let place = std::sync::Arc::new(());
    let call = app();
    call.admission().hold(place.clone());
    let proof = ProofInput {
        method: Method::RecoveryCode,
        code: codes[0].clone(),
        challenge_id: None,
    };
    let answer = tokio::time::timeout(
        std::time::Duration::from_secs(3_600),
        h.users
            .add_email(&call, "bob", "victim@example.com", Some(&proof), None),
    )
    .await
    .expect("the proof check gives up at its deadline");
    assert!(
        matches!(answer, Err(ServiceError::Internal(_))),
        "{:?}",
        answer.map(|c| c.id)
    );
    call.admission().let_go();
    assert_eq!(
        std::sync::Arc::strong_count(&place),
        1,
        "the place is let go"
    );
    drop(held);
}

// Giving back a slot waits at most its own deadline: the task that does it holds the request's
// place (review of `bf98f35`: a stalled give-back pinned it).
#[tokio::test(start_paused = true)]
async fn a_give_back_that_never_finishes_lets_the_place_go() {
    let h = Harness::new();
    h.confirmed_email("bob", "Bob@Example.com").await;
    h.limiter.stall_releases();
    let place = std::sync::Arc::new(());
    let call = app();
    call.admission().hold(place.clone());
    // A wrong proof: the slot is taken, the command refuses, and the slot is given back.
    let wrong = ProofInput {
        method: Method::RecoveryCode,
        code: "aaaa-bbbb-cccc-dddd".into(),
        challenge_id: None,
    };
    let answer = tokio::time::timeout(
        std::time::Duration::from_secs(3_600),
        h.users
            .add_email(&call, "bob", "new@example.com", Some(&wrong), None),
    )
    .await
    .expect("the give-back gives up at its deadline");
    assert!(answer.is_err(), "{:?}", answer.map(|c| c.id));
    call.admission().let_go();
    assert_eq!(
        std::sync::Arc::strong_count(&place),
        1,
        "the place is let go"
    );
}
