//! Given/when/then tests of the tenant's delivery settings.

use super::*;
use crate::channel::Channel;
use crate::provider::{DeliveryFacts, SmsFacts};
use crate::tenant::DeliveryTest;
use chrono::TimeZone;
use cqrs_es::test::TestFramework;
use cqrs_es::DomainEvent;

type Tf = TestFramework<Tenant>;

fn at() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 3, 12, 0, 0).unwrap()
}

fn registered() -> Vec<TenantEvent> {
    vec![TenantEvent::TenantRegistered {
        tenant_id: TenantId::parse("acme").unwrap(),
        name: TenantName::parse("Acme").unwrap(),
        policy: Policy::default(),
        registered_at: at(),
    }]
}

fn facts() -> DeliveryFacts {
    DeliveryFacts {
        sender_name: Some("Acme Bank".into()),
        email: None,
        sms: Some(SmsFacts::Webhook {
            host: "sms.acme.example".into(),
        }),
    }
}

fn changed(version: u64, set: bool) -> TenantEvent {
    TenantEvent::DeliverySettingsChanged {
        version,
        settings: set.then(facts),
        sealed: set.then(|| SealedSecret::from_encoded(format!("sealed-{version}"))),
        changed_at: at(),
    }
}

#[tokio::test]
async fn settings_are_versioned_from_one() {
    Tf::with(())
        .given(registered())
        .when_async(TenantCommand::SetDeliverySettings {
            settings: Some((facts(), SealedSecret::from_encoded("sealed-1".into()))),
            at: at(),
        })
        .await
        .then_expect_events(vec![changed(1, true)]);
}

#[tokio::test]
async fn clearing_counts_as_a_change_once() {
    let mut given = registered();
    given.push(changed(1, true));
    Tf::with(())
        .given(given.clone())
        .when_async(TenantCommand::SetDeliverySettings {
            settings: None,
            at: at(),
        })
        .await
        .then_expect_events(vec![changed(2, false)]);
    given.push(changed(2, false));
    Tf::with(())
        .given(given)
        .when_async(TenantCommand::SetDeliverySettings {
            settings: None,
            at: at(),
        })
        .await
        .then_expect_events(vec![]);
}

#[tokio::test]
async fn settings_need_a_tenant() {
    Tf::with(())
        .given_no_previous_events()
        .when_async(TenantCommand::SetDeliverySettings {
            settings: None,
            at: at(),
        })
        .await
        .then_expect_error(TenantError::NotFound);
}

#[test]
fn the_state_keeps_the_latest_settings_and_counts_versions() {
    let mut tenant = Tenant::default();
    for e in registered()
        .into_iter()
        .chain([changed(1, true), changed(2, false), changed(3, true)])
    {
        tenant.apply(e);
    }
    let delivery = tenant.delivery().expect("set");
    assert_eq!(delivery.version, 3);
    assert_eq!(delivery.sealed.as_encoded(), "sealed-3");
    assert_eq!(delivery.facts, facts());
}

#[test]
fn test_messages_are_recorded_under_fixed_names() {
    let test = TenantEvent::DeliveryTested {
        channel: Channel::Sms,
        destination: "+995 *** ** 12 34".into(),
        delivered: true,
        provider_message_id: Some("SM1".into()),
        error: None,
        retryable: false,
        at: at(),
    };
    assert_eq!(test.event_type(), "DeliveryTested");
    assert_eq!(changed(1, true).event_type(), "DeliverySettingsChanged");
    let _ = DeliveryTest {
        channel: Channel::Email,
        destination: String::new(),
        delivered: false,
        provider_message_id: None,
        error: None,
        retryable: false,
    };
}
