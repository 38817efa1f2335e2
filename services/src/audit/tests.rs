use std::hash::{Hash, Hasher};

use chrono::TimeZone;
use cqrs_es::DomainEvent;
use serde_json::json;
use twofold_domain::channel::{Channel, Purpose};
use twofold_domain::console_session::SessionRef;
use twofold_domain::secrets::SealedSecret;
use twofold_domain::tenant::{KeyedHash, TenantEvent};
use twofold_domain::user::{DeviceRevocation, NotificationKind, SignInReason, UserEvent};
use twofold_domain::{
    ApiKeyId, DeviceLabel, KeyLabel, Method, Policy, Reason, Role, TenantName, TotpAlgorithm,
};

use super::*;

/// A deterministic stand-in for the HMAC adapter (whose own tests cover HMAC): different
/// purposes or messages give different hashes, which is all the cursor logic relies on.
struct TestHasher;

impl SecretHasher for TestHasher {
    fn keyed_hash(&self, purpose: &str, secret: &[u8]) -> KeyedHash {
        let hex: String = (0..4u8)
            .map(|round| {
                let mut h = std::collections::hash_map::DefaultHasher::new();
                (round, purpose, secret).hash(&mut h);
                format!("{:016x}", h.finish())
            })
            .collect();
        KeyedHash::from_hex(hex)
    }
}

fn tenant(id: &str) -> TenantId {
    TenantId::parse(id).unwrap()
}

#[test]
fn a_cursor_round_trips_for_its_tenant_and_order_only() {
    let at = LogPosition {
        tx: 7_340_032,
        position: 12_345,
    };
    let acme = tenant("acme");
    let cursor = encode_cursor(&TestHasher, &acme, LogOrder::NewestFirst, at);
    assert_eq!(
        decode_cursor(&TestHasher, &acme, LogOrder::NewestFirst, &cursor).unwrap(),
        at
    );
    let refused = |t: &TenantId, order, c: &str| {
        matches!(
            decode_cursor(&TestHasher, t, order, c),
            Err(ServiceError::InvalidInput(_))
        )
    };
    assert!(refused(&tenant("globex"), LogOrder::NewestFirst, &cursor));
    assert!(refused(&acme, LogOrder::OldestFirst, &cursor));
    // Another tenant's cursor for the same position differs, and is refused here.
    let theirs = encode_cursor(&TestHasher, &tenant("globex"), LogOrder::NewestFirst, at);
    assert_ne!(theirs, cursor);
    assert!(refused(&acme, LogOrder::NewestFirst, &theirs));
    // A position edited inside a genuine cursor breaks its MAC.
    let mut edited = cursor.clone().into_bytes();
    edited[CURSOR_PREFIX.len() + 20] = if edited[CURSOR_PREFIX.len() + 20] == b'0' {
        b'1'
    } else {
        b'0'
    };
    let edited = String::from_utf8(edited).unwrap();
    assert!(refused(&acme, LogOrder::NewestFirst, &edited));
    for bad in ["", "a1", "a1zz", "c1abcd", &cursor[..cursor.len() - 2]] {
        assert!(refused(&acme, LogOrder::NewestFirst, bad), "{bad}");
    }
}

#[test]
fn filters_are_checked_before_anything_is_read() {
    let ok = AuditFilterInput {
        user_id: Some("alice".into()),
        event_types: Some(vec!["CodeSent".into(), "TwoFactorReset".into()]),
        from: Some(Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap()),
        to: Some(Utc.with_ymd_and_hms(2026, 2, 1, 0, 0, 0).unwrap()),
    }
    .parse()
    .unwrap();
    assert_eq!(ok.user.unwrap().as_str(), "alice");
    assert_eq!(ok.event_types.len(), 2);

    let invalid = |f: AuditFilterInput| matches!(f.parse(), Err(ServiceError::InvalidInput(_)));
    assert!(invalid(AuditFilterInput {
        event_types: Some(vec!["CodeSnet".into()]),
        ..Default::default()
    }));
    assert!(invalid(AuditFilterInput {
        event_types: Some(vec![]),
        ..Default::default()
    }));
    assert!(invalid(AuditFilterInput {
        user_id: Some(String::new()),
        ..Default::default()
    }));
    let t = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
    assert!(invalid(AuditFilterInput {
        from: Some(t),
        to: Some(t),
        ..Default::default()
    }));
}

const SECRET: &str = "SEALED-SECRET-MARKER";
const HASH: &str = "deadbeefdeadbeefdeadbeefdeadbeefdeadbeefdeadbeefdeadbeefdeadbeef";

fn one_of_every_event() -> Vec<(&'static str, serde_json::Value, String)> {
    let at = Utc.with_ymd_and_hms(2026, 11, 1, 12, 0, 0).unwrap();
    let sealed = || SealedSecret::from_encoded(SECRET.into());
    let hash = || KeyedHash::from_hex(HASH.into());
    let key = || ApiKeyId::parse("abcdefgh").unwrap();
    let users = vec![
        UserEvent::TotpEnrollmentStarted {
            secret: sealed(),
            algorithm: TotpAlgorithm::Sha1,
            digits: 6,
            period: 30,
            at,
        },
        UserEvent::TotpEnabled { step: 1, at },
        UserEvent::RecoveryCodesGenerated {
            hashes: vec![hash(), hash()],
            at,
        },
        UserEvent::CodeVerified {
            method: Method::Totp,
            totp_step: Some(2),
            challenge_id: None,
            at,
        },
        UserEvent::RecoveryCodeUsed {
            index: 0,
            remaining: 9,
            at,
        },
        UserEvent::VerificationFailed {
            method: Method::Sms,
            challenge_id: Some("ch1".into()),
            consecutive_failures: 1,
            at,
        },
        UserEvent::UserLockedOut {
            until: at,
            lockout: 1,
            admin_required: false,
            at,
        },
        UserEvent::LockoutCleared {
            by: key(),
            reason: Reason::parse("called in").unwrap(),
            at,
        },
        UserEvent::EmailFactorAdded {
            email: sealed(),
            masked: "j***@example.com".into(),
            replacing: true,
            at,
        },
        UserEvent::PhoneFactorAdded {
            phone: sealed(),
            calling_code: "995".into(),
            region: Some("GE".into()),
            masked: "+995 *** ** 12 34".into(),
            replacing: false,
            at,
        },
        UserEvent::CodeSent {
            challenge_id: "ch1".into(),
            channel: Channel::Sms,
            purpose: Purpose::SignIn,
            digits: 6,
            expires_at: at,
            sent_to: "+995 *** ** 12 34".into(),
            idempotency_key: Some(SECRET.into()),
            at,
        },
        UserEvent::CodeDelivered {
            challenge_id: "ch1".into(),
            provider_message_id: Some("SM1".into()),
            at,
        },
        UserEvent::CodeDeliveryFailed {
            challenge_id: "ch1".into(),
            error: "refused".into(),
            attempts: 3,
            at,
        },
        UserEvent::NotificationQueued {
            notification_id: "n1".into(),
            kind: NotificationKind::FactorReplaced {
                method: Method::Email,
                masked: Some("m•••@example.com".into()),
            },
            channel: Channel::Email,
            destination: sealed(),
            sent_to: "j***@example.com".into(),
            at,
        },
        UserEvent::NotificationDelivered {
            notification_id: "n1".into(),
            provider_message_id: Some("q1".into()),
            at,
        },
        UserEvent::NotificationDeliveryFailed {
            notification_id: "n2".into(),
            error: "refused".into(),
            attempts: 5,
            at,
        },
        UserEvent::ChannelVerified {
            channel: Channel::Email,
            challenge_id: "ch2".into(),
            at,
        },
        UserEvent::PreferredChannelChosen {
            channel: Channel::Email,
            at,
        },
        UserEvent::LocaleChanged {
            locale: "ka-GE".into(),
            at,
        },
        UserEvent::FactorRemoved {
            method: Method::Sms,
            at,
        },
        UserEvent::TwoFactorDisabled {
            method: Method::Totp,
            at,
        },
        UserEvent::DeviceTrusted {
            device_id: "dev1".into(),
            token_hash: hash(),
            label: Some(DeviceLabel::parse("laptop").unwrap()),
            expires_at: at,
            at,
        },
        UserEvent::DeviceTrustRevoked {
            device_id: "dev1".into(),
            reason: DeviceRevocation::Revoked,
            explanation: Some(Reason::parse("laptop stolen").unwrap()),
            at,
        },
        UserEvent::SignInEvaluated {
            required: true,
            reason: SignInReason::Enrolled,
            methods: vec![Method::Totp],
            trusted_device: None,
            device_token_rejected: true,
            sso_login: false,
            locked_until: None,
            grace_ends_at: None,
            at,
        },
        UserEvent::TwoFactorReset {
            by: key(),
            reason: Reason::parse("lost phone").unwrap(),
            at,
        },
        UserEvent::UserErased {
            by: key(),
            reason: Reason::parse("GDPR request 42").unwrap(),
            at,
        },
        UserEvent::SecretsResealed {
            seals: vec![(twofold_domain::user::SealSlot::Totp, sealed())],
            at,
        },
        UserEvent::WebAuthnRegistrationStarted {
            challenge_id: "wa1".into(),
            state: sealed(),
            expires_at: at,
            proven: false,
            at,
        },
        UserEvent::WebAuthnCredentialRegistered {
            credential_id: "cred1".into(),
            credential_ref: format!("AbCdEfGh{SECRET}"),
            label: Some(DeviceLabel::parse("YubiKey").unwrap()),
            credential: sealed(),
            counter: 3,
            challenge_id: "wa1".into(),
            at,
        },
        UserEvent::WebAuthnAuthenticationStarted {
            challenge_id: "wa2".into(),
            state: sealed(),
            expires_at: at,
            at,
        },
        UserEvent::WebAuthnCredentialUsed {
            credential_id: "cred1".into(),
            counter: 4,
            challenge_id: "wa2".into(),
            at,
        },
        UserEvent::WebAuthnCounterRegressed {
            credential_id: "cred1".into(),
            stored: 4,
            presented: 2,
            challenge_id: "wa3".into(),
            at,
        },
        UserEvent::WebAuthnCredentialRemoved {
            credential_id: "cred1".into(),
            at,
        },
    ];
    let tenants = vec![
        TenantEvent::TenantRegistered {
            tenant_id: tenant("acme"),
            name: TenantName::parse("Acme").unwrap(),
            policy: Policy::default(),
            registered_at: at,
        },
        TenantEvent::ApiKeyIssued {
            key_id: key(),
            role: Role::App,
            label: KeyLabel::parse("backend").unwrap(),
            key_hash: hash(),
            issued_at: at,
        },
        TenantEvent::ApiKeyRevoked {
            key_id: key(),
            revoked_at: at,
        },
        TenantEvent::TwoFactorPolicySet {
            previous: Policy::default(),
            policy: Policy::default(),
            set_at: at,
        },
        TenantEvent::DeliverySettingsChanged {
            version: 1,
            settings: Some(twofold_domain::provider::DeliveryFacts {
                sender_name: Some("Acme".into()),
                email: None,
                sms: Some(twofold_domain::provider::SmsFacts::Webhook {
                    host: "sms.acme.example".into(),
                }),
            }),
            sealed: Some(SealedSecret::from_encoded(SECRET.into())),
            changed_at: at,
        },
        TenantEvent::DeliveryTested {
            channel: Channel::Sms,
            destination: "+995 *** ** 12 34".into(),
            delivered: false,
            provider_message_id: None,
            error: Some("the SMS webhook answered 500".into()),
            retryable: true,
            at,
        },
        TenantEvent::ConsoleSignedIn {
            key_id: key(),
            role: Role::Auditor,
            session: SessionRef::of(&hash()),
            signed_in_at: at,
        },
        TenantEvent::ConsoleSignedOut {
            key_id: key(),
            session: SessionRef::of(&hash()),
            signed_out_at: at,
        },
        TenantEvent::TenantErased {
            reason: Reason::parse("contract ended").unwrap(),
            erased_at: at,
        },
    ];
    users
        .into_iter()
        .map(|e| ("user", serde_json::to_value(&e).unwrap(), e.event_type()))
        .chain(
            tenants
                .into_iter()
                .map(|e| ("tenant", serde_json::to_value(&e).unwrap(), e.event_type())),
        )
        .collect()
}

#[test]
fn every_event_type_is_listed_and_shows_no_secret_or_hash() {
    let events = one_of_every_event();
    assert_eq!(
        events.len(),
        EVENT_TYPES.len(),
        "one sample per listed type"
    );
    for (aggregate, payload, event_type) in events {
        assert!(
            EVENT_TYPES.contains(&event_type.as_str()),
            "{event_type} missing from EVENT_TYPES"
        );
        let shown = mask::audit_data(aggregate, &payload).to_string();
        assert!(shown.len() > 2, "{event_type} shows nothing: {shown}");
        assert!(!shown.contains(SECRET), "{event_type}: {shown}");
        assert!(!shown.contains(HASH), "{event_type}: {shown}");
    }
}

#[test]
fn masked_contact_details_and_counts_are_kept() {
    let events = one_of_every_event();
    let shown = |t: &str| {
        let (aggregate, payload, _) = events.iter().find(|(_, _, e)| e == t).unwrap();
        mask::audit_data(aggregate, payload)
    };
    assert_eq!(shown("PhoneFactorAdded")["masked"], "+995 *** ** 12 34");
    let notice = shown("NotificationQueued");
    assert_eq!(notice["sentTo"], "j***@example.com");
    assert_eq!(notice["kind"]["type"], "FACTOR_REPLACED");
    assert_eq!(notice["kind"]["masked"], "m•••@example.com");
    assert!(notice.get("destination").is_none());
    assert_eq!(shown("RecoveryCodesGenerated")["count"], 2);
    assert_eq!(shown("ApiKeyIssued")["keyId"], "abcdefgh");
    assert_eq!(shown("DeviceTrusted")["label"], "laptop");
    // An admin's reasons are shown, as they typed them.
    assert_eq!(shown("TwoFactorReset")["reason"], "lost phone");
    let revoked = shown("DeviceTrustRevoked");
    assert_eq!(revoked["reason"], "REVOKED");
    assert_eq!(revoked["explanation"], "laptop stolen");
    assert_eq!(shown("LocaleChanged")["locale"], "ka-GE");
    for t in ["ConsoleSignedIn", "ConsoleSignedOut"] {
        assert_eq!(shown(t)["keyId"], "abcdefgh", "{t}");
        assert_eq!(shown(t)["session"], &HASH[..8], "{t}");
    }
    assert_eq!(shown("ConsoleSignedIn")["role"], "AUDITOR");
}

#[test]
fn a_payload_that_does_not_parse_shows_nothing() {
    let raw = json!({ "CodeSent": { "code": "123456" } });
    assert_eq!(mask::audit_data("user", &raw), json!({}));
    assert_eq!(mask::audit_data("other", &json!({"a": 1})), json!({}));
}

#[test]
fn webauthn_credential_ids_are_shortened_and_keys_and_challenges_hidden() {
    let events = one_of_every_event();
    let shown = |t: &str| {
        let (aggregate, payload, _) = events.iter().find(|(_, _, e)| e == t).unwrap();
        mask::audit_data(aggregate, payload)
    };
    let registered = shown("WebAuthnCredentialRegistered");
    assert_eq!(registered["authenticatorCredentialId"], "AbCdEfGh…");
    assert_eq!(registered["credentialId"], "cred1");
    assert_eq!(registered["label"], "YubiKey");
    assert!(registered.get("credential").is_none());
    for t in [
        "WebAuthnRegistrationStarted",
        "WebAuthnAuthenticationStarted",
    ] {
        assert!(shown(t).get("state").is_none(), "{t}");
    }
    let regressed = shown("WebAuthnCounterRegressed");
    assert_eq!(
        (
            regressed["stored"].as_u64(),
            regressed["presented"].as_u64()
        ),
        (Some(4), Some(2))
    );
}
