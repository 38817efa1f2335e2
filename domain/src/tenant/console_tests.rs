//! Given/when/then tests of console sign-ins and sign-outs: which keys may sign in, and what
//! the history records of it.

use super::tests::{at, registered};
use super::*;
use crate::console_session::SessionRef;
use cqrs_es::test::TestFramework;
use cqrs_es::DomainEvent;

type Tf = TestFramework<Tenant>;

fn id(raw: &str) -> ApiKeyId {
    ApiKeyId::parse(raw).unwrap()
}

fn session() -> SessionRef {
    SessionRef::of(&KeyedHash::from_hex("5e55101d".repeat(8)))
}

fn issued(key_id: &str, role: Role) -> TenantEvent {
    TenantEvent::ApiKeyIssued {
        key_id: id(key_id),
        role,
        label: KeyLabel::parse(&format!("{key_id} key")).unwrap(),
        key_hash: KeyedHash::from_hex(format!("hash-of-{key_id}")),
        issued_at: at(),
    }
}

/// A tenant with an ADMIN (`admin0001`), an AUDITOR, an APP key and a revoked AUDITOR key.
fn tenant() -> Vec<TenantEvent> {
    let mut events = registered();
    events.extend([
        issued("audit001", Role::Auditor),
        issued("app00001", Role::App),
        issued("audit002", Role::Auditor),
        TenantEvent::ApiKeyRevoked {
            key_id: id("audit002"),
            revoked_at: at(),
        },
    ]);
    events
}

fn sign_in(key_id: &str) -> TenantCommand {
    TenantCommand::SignInToConsole {
        key_id: id(key_id),
        session: session(),
        at: at(),
    }
}

#[tokio::test]
async fn active_admin_and_auditor_keys_sign_in_with_their_role_recorded() {
    for (key_id, role) in [("admin0001", Role::Admin), ("audit001", Role::Auditor)] {
        Tf::with(())
            .given(tenant())
            .when_async(sign_in(key_id))
            .await
            .then_expect_events(vec![TenantEvent::ConsoleSignedIn {
                key_id: id(key_id),
                role,
                session: session(),
                signed_in_at: at(),
            }]);
    }
}

#[tokio::test]
async fn revoked_app_and_unknown_keys_do_not_sign_in() {
    for (key_id, error) in [
        ("audit002", TenantError::KeyRevoked(id("audit002"))),
        ("app00001", TenantError::NoConsoleRole(Role::App)),
        ("nosuchke", TenantError::KeyNotFound(id("nosuchke"))),
    ] {
        Tf::with(())
            .given(tenant())
            .when_async(sign_in(key_id))
            .await
            .then_expect_error(error);
    }
    Tf::with(())
        .given_no_previous_events()
        .when_async(sign_in("admin0001"))
        .await
        .then_expect_error(TenantError::NotFound);
}

#[tokio::test]
async fn a_sign_out_is_recorded_unless_the_revocation_already_ended_the_session() {
    let sign_out = |key_id: &str| TenantCommand::SignOutOfConsole {
        key_id: id(key_id),
        session: session(),
        at: at(),
    };
    Tf::with(())
        .given(tenant())
        .when_async(sign_out("audit001"))
        .await
        .then_expect_events(vec![TenantEvent::ConsoleSignedOut {
            key_id: id("audit001"),
            session: session(),
            signed_out_at: at(),
        }]);
    Tf::with(())
        .given(tenant())
        .when_async(sign_out("audit002"))
        .await
        .then_expect_events(vec![]);
}

#[test]
fn sessions_change_nothing_the_tenant_decides_by() {
    let mut state = Tenant::default();
    for e in tenant() {
        state.apply(e);
    }
    let before = state.clone();
    let signed_in = TenantEvent::ConsoleSignedIn {
        key_id: id("admin0001"),
        role: Role::Admin,
        session: session(),
        signed_in_at: at(),
    };
    assert_eq!(signed_in.event_type(), "ConsoleSignedIn");
    state.apply(signed_in);
    state.apply(TenantEvent::ConsoleSignedOut {
        key_id: id("admin0001"),
        session: session(),
        signed_out_at: at(),
    });
    assert_eq!(state, before);
}
