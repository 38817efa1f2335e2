//! Given/when/then tests of the tenant aggregate: registration, keys, policy.

use super::*;
use crate::PolicyChange;
use chrono::TimeZone;
use cqrs_es::test::TestFramework;
use cqrs_es::DomainEvent;

type Tf = TestFramework<Tenant>;

pub(super) fn at() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 23, 12, 0, 0).unwrap()
}

fn key(id: &str, role: Role) -> NewApiKey {
    NewApiKey {
        id: ApiKeyId::parse(id).unwrap(),
        role,
        label: KeyLabel::parse(&format!("{id} key")).unwrap(),
        hash: KeyedHash::from_hex(format!("hash-of-{id}")),
    }
}

pub(super) fn registered() -> Vec<TenantEvent> {
    vec![
        TenantEvent::TenantRegistered {
            tenant_id: TenantId::parse("acme").unwrap(),
            name: TenantName::parse("Acme").unwrap(),
            policy: Policy::default(),
            registered_at: at(),
        },
        Tenant::issued(key("admin0001", Role::Admin), at()),
    ]
}

#[tokio::test]
async fn registering_records_the_tenant_and_an_admin_key() {
    Tf::with(())
        .given_no_previous_events()
        .when_async(TenantCommand::Register {
            tenant_id: TenantId::parse("acme").unwrap(),
            name: TenantName::parse("Acme").unwrap(),
            // Whatever role the caller asks for, the first key is ADMIN.
            first_admin_key: key("admin0001", Role::App),
            at: at(),
        })
        .await
        .then_expect_events(registered());
}

#[tokio::test]
async fn a_tenant_registers_once() {
    Tf::with(())
        .given(registered())
        .when_async(TenantCommand::Register {
            tenant_id: TenantId::parse("acme").unwrap(),
            name: TenantName::parse("Other").unwrap(),
            first_admin_key: key("admin0002", Role::Admin),
            at: at(),
        })
        .await
        .then_expect_error(TenantError::AlreadyRegistered);
}

#[tokio::test]
async fn commands_on_an_unknown_tenant_are_refused() {
    Tf::with(())
        .given_no_previous_events()
        .when_async(TenantCommand::IssueApiKey {
            key: key("app00001", Role::App),
            at: at(),
        })
        .await
        .then_expect_error(TenantError::NotFound);
}

#[tokio::test]
async fn issuing_and_revoking_a_key() {
    Tf::with(())
        .given(registered())
        .when_async(TenantCommand::IssueApiKey {
            key: key("app00001", Role::App),
            at: at(),
        })
        .await
        .then_expect_events(vec![Tenant::issued(key("app00001", Role::App), at())]);

    let mut given = registered();
    given.push(Tenant::issued(key("app00001", Role::App), at()));
    Tf::with(())
        .given(given)
        .when_async(TenantCommand::RevokeApiKey {
            key_id: ApiKeyId::parse("app00001").unwrap(),
            at: at(),
        })
        .await
        .then_expect_events(vec![TenantEvent::ApiKeyRevoked {
            key_id: ApiKeyId::parse("app00001").unwrap(),
            revoked_at: at(),
        }]);
}

#[tokio::test]
async fn revoking_twice_records_nothing_new() {
    let mut given = registered();
    given.push(Tenant::issued(key("app00001", Role::App), at()));
    given.push(TenantEvent::ApiKeyRevoked {
        key_id: ApiKeyId::parse("app00001").unwrap(),
        revoked_at: at(),
    });
    Tf::with(())
        .given(given)
        .when_async(TenantCommand::RevokeApiKey {
            key_id: ApiKeyId::parse("app00001").unwrap(),
            at: at(),
        })
        .await
        .then_expect_events(vec![]);
}

#[tokio::test]
async fn the_last_admin_key_cannot_be_revoked() {
    Tf::with(())
        .given(registered())
        .when_async(TenantCommand::RevokeApiKey {
            key_id: ApiKeyId::parse("admin0001").unwrap(),
            at: at(),
        })
        .await
        .then_expect_error(TenantError::LastAdminKey);
}

#[tokio::test]
async fn an_unknown_key_cannot_be_revoked() {
    Tf::with(())
        .given(registered())
        .when_async(TenantCommand::RevokeApiKey {
            key_id: ApiKeyId::parse("nosuchkey").unwrap(),
            at: at(),
        })
        .await
        .then_expect_error(TenantError::KeyNotFound(
            ApiKeyId::parse("nosuchkey").unwrap(),
        ));
}

#[tokio::test]
async fn active_keys_are_capped() {
    let mut given = registered();
    for i in 1..MAX_ACTIVE_KEYS {
        given.push(Tenant::issued(key(&format!("app{i:05}"), Role::App), at()));
    }
    Tf::with(())
        .given(given)
        .when_async(TenantCommand::IssueApiKey {
            key: key("onetoomany", Role::App),
            at: at(),
        })
        .await
        .then_expect_error(TenantError::TooManyKeys);
}

#[tokio::test]
async fn a_policy_change_records_old_and_new() {
    let change = PolicyChange {
        enforce_two_factor: Some(true),
        ..Default::default()
    };
    let expected = Policy::default().apply(&change).unwrap();
    Tf::with(())
        .given(registered())
        .when_async(TenantCommand::SetPolicy {
            change: Box::new(change),
            at: at(),
        })
        .await
        .then_expect_events(vec![TenantEvent::TwoFactorPolicySet {
            previous: Policy::default(),
            policy: expected,
            set_at: at(),
        }]);
}

#[tokio::test]
async fn an_invalid_policy_changes_nothing() {
    Tf::with(())
        .given(registered())
        .when_async(TenantCommand::SetPolicy {
            change: Box::new(PolicyChange {
                enforce_two_factor: Some(true),
                code_digits: Some(4),
                ..Default::default()
            }),
            at: at(),
        })
        .await
        .then_expect_error(TenantError::Policy(PolicyError::OutOfRange {
            field: "codeDigits",
            min: 6,
            max: 8,
            got: 4,
        }));
}

#[tokio::test]
async fn a_policy_change_that_changes_nothing_records_nothing() {
    Tf::with(())
        .given(registered())
        .when_async(TenantCommand::SetPolicy {
            change: Box::new(PolicyChange {
                code_digits: Some(6),
                ..Default::default()
            }),
            at: at(),
        })
        .await
        .then_expect_events(vec![]);
}

fn state(events: Vec<TenantEvent>) -> Tenant {
    let mut tenant = Tenant::default();
    for e in events {
        tenant.apply(e);
    }
    tenant
}

#[test]
fn the_state_shows_the_name_policy_keys_and_registration_time() {
    let mut events = registered();
    let change = PolicyChange {
        enforce_two_factor: Some(true),
        ..Default::default()
    };
    let policy = Policy::default().apply(&change).unwrap();
    events.push(TenantEvent::TwoFactorPolicySet {
        previous: Policy::default(),
        policy: policy.clone(),
        set_at: at(),
    });
    events.push(TenantEvent::ApiKeyRevoked {
        key_id: ApiKeyId::parse("admin0001").unwrap(),
        revoked_at: at() + chrono::Duration::hours(1),
    });
    let tenant = state(events);
    assert!(tenant.exists());
    assert_eq!(tenant.name().map(TenantName::as_str), Some("Acme"));
    assert_eq!(tenant.created_at(), Some(at()));
    assert_eq!(tenant.policy(), &policy);
    let admin = &tenant.keys()[&ApiKeyId::parse("admin0001").unwrap()];
    assert_eq!(admin.role, Role::Admin);
    assert_eq!(admin.revoked_at, Some(at() + chrono::Duration::hours(1)));
}

#[tokio::test]
async fn an_admin_key_goes_only_while_another_admin_key_stays() {
    let mut given = registered();
    given.push(Tenant::issued(key("app00001", Role::App), at()));
    // An APP key does not count as the admin that would remain.
    Tf::with(())
        .given(given.clone())
        .when_async(TenantCommand::RevokeApiKey {
            key_id: ApiKeyId::parse("admin0001").unwrap(),
            at: at(),
        })
        .await
        .then_expect_error(TenantError::LastAdminKey);
    given.push(Tenant::issued(key("admin0002", Role::Admin), at()));
    Tf::with(())
        .given(given)
        .when_async(TenantCommand::RevokeApiKey {
            key_id: ApiKeyId::parse("admin0001").unwrap(),
            at: at(),
        })
        .await
        .then_expect_events(vec![TenantEvent::ApiKeyRevoked {
            key_id: ApiKeyId::parse("admin0001").unwrap(),
            revoked_at: at(),
        }]);
}

#[test]
fn events_are_stored_under_fixed_names() {
    let names: Vec<(String, String)> = registered()
        .into_iter()
        .chain([
            TenantEvent::ApiKeyRevoked {
                key_id: ApiKeyId::parse("admin0001").unwrap(),
                revoked_at: at(),
            },
            TenantEvent::TwoFactorPolicySet {
                previous: Policy::default(),
                policy: Policy::default(),
                set_at: at(),
            },
        ])
        .map(|e| (e.event_type(), e.event_version()))
        .collect();
    let expected = [
        "TenantRegistered",
        "ApiKeyIssued",
        "ApiKeyRevoked",
        "TwoFactorPolicySet",
    ];
    assert_eq!(
        names,
        expected.map(|n| (n.to_owned(), "1".to_owned())).to_vec()
    );
}
