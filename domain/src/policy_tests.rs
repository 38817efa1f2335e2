//! What a tenant may and may not set, and the names methods go by.

use super::*;
use proptest::prelude::*;

#[test]
fn defaults_follow_the_standards() {
    let p = Policy::default();
    assert_eq!((p.code_digits, p.code_ttl_seconds), (6, 600));
    assert_eq!((p.totp_digits, p.totp_algorithm), (6, TotpAlgorithm::Sha1));
    assert!(!p.enforce_two_factor);
    assert_eq!(p.allowed_methods.len(), 4);
}

#[test]
fn a_change_keeps_fields_it_does_not_name() {
    let change = PolicyChange {
        enforce_two_factor: Some(true),
        allowed_calling_codes: Some(vec!["995".into(), "+995".into()]),
        ..PolicyChange::default()
    };
    let p = Policy::default().apply(&change).unwrap();
    assert!(p.enforce_two_factor);
    assert_eq!(p.allowed_calling_codes.len(), 1, "duplicates collapse");
    assert_eq!(p.code_digits, 6);
}

#[test]
fn refuses_out_of_bounds_values_with_the_field_name() {
    let refused = |change: PolicyChange| Policy::default().apply(&change).unwrap_err();
    let e = refused(PolicyChange {
        code_digits: Some(5),
        ..Default::default()
    });
    assert!(e
        .to_string()
        .starts_with("codeDigits must be between 6 and 8"));
    assert!(matches!(
        refused(PolicyChange {
            code_ttl_seconds: Some(3601),
            ..Default::default()
        }),
        PolicyError::OutOfRange {
            field: "codeTtlSeconds",
            ..
        }
    ));
    assert!(matches!(
        refused(PolicyChange {
            trusted_device_days: Some(-1),
            ..Default::default()
        }),
        PolicyError::OutOfRange { .. }
    ));
    assert_eq!(
        refused(PolicyChange {
            totp_digits: Some(7),
            ..Default::default()
        }),
        PolicyError::TotpDigits(7)
    );
    assert!(matches!(
        refused(PolicyChange {
            allowed_calling_codes: Some(vec!["9950".into()]),
            ..Default::default()
        }),
        PolicyError::CallingCode(_)
    ));
    assert_eq!(
        refused(PolicyChange {
            allowed_methods: Some(vec![Method::RecoveryCode]),
            ..Default::default()
        }),
        PolicyError::NoPrimaryMethod
    );
    assert!(matches!(
        refused(PolicyChange {
            totp_algorithm: Some("MD5".into()),
            ..Default::default()
        }),
        PolicyError::TotpAlgorithm(_)
    ));
}

#[test]
fn algorithm_names_are_case_insensitive() {
    let p = Policy::default()
        .apply(&PolicyChange {
            totp_algorithm: Some("sha-256".into()),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(p.totp_algorithm.as_str(), "SHA256");
}

proptest! {
    #[test]
    fn an_accepted_change_always_yields_a_policy_within_bounds(
        digits in -10i64..20, ttl in -100i64..10_000, grace in -5i64..400, days in -5i64..400,
    ) {
        let change = PolicyChange {
            code_digits: Some(digits),
            code_ttl_seconds: Some(ttl),
            enrollment_grace_period_days: Some(grace),
            trusted_device_days: Some(days),
            ..Default::default()
        };
        match Policy::default().apply(&change) {
            Ok(p) => {
                prop_assert!((6..=8).contains(&p.code_digits));
                prop_assert!((60..=3600).contains(&p.code_ttl_seconds));
                prop_assert_eq!(i64::from(p.enrollment_grace_period_days), grace);
                prop_assert_eq!(i64::from(p.trusted_device_days), days);
            }
            Err(_) => prop_assert!(
                !(6..=8).contains(&digits) || !(60..=3600).contains(&ttl)
                    || !(0..=365).contains(&grace) || !(0..=365).contains(&days)
            ),
        }
    }
}

#[test]
fn a_disallowed_method_is_refused_and_an_allowed_one_is_not() {
    let p = Policy::default()
        .apply(&PolicyChange {
            allowed_methods: Some(vec![Method::Totp]),
            ..Default::default()
        })
        .unwrap();
    assert!(p.allows(Method::Totp));
    assert!(!p.allows(Method::Sms));
    assert!(!p.allows(Method::RecoveryCode));
}

#[test]
fn method_names_are_the_api_and_event_names() {
    for (method, name) in [
        (Method::Totp, "TOTP"),
        (Method::Email, "EMAIL"),
        (Method::Sms, "SMS"),
        (Method::RecoveryCode, "RECOVERY_CODE"),
    ] {
        assert_eq!(method.as_str(), name);
        assert_eq!(method.to_string(), name);
        assert_eq!(serde_json::to_value(method).unwrap(), name);
    }
    for (algorithm, name) in [
        (TotpAlgorithm::Sha1, "SHA1"),
        (TotpAlgorithm::Sha256, "SHA256"),
        (TotpAlgorithm::Sha512, "SHA512"),
    ] {
        assert_eq!(algorithm.as_str(), name, "the otpauth:// name");
        assert_eq!(serde_json::to_value(algorithm).unwrap(), name);
    }
}

#[test]
fn every_algorithm_can_be_chosen_by_either_spelling() {
    let set = |from: TotpAlgorithm, name: &str| {
        Policy {
            totp_algorithm: from,
            ..Policy::default()
        }
        .apply(&PolicyChange {
            totp_algorithm: Some(name.into()),
            ..Default::default()
        })
        .map(|p| p.totp_algorithm)
    };
    assert_eq!(set(TotpAlgorithm::Sha256, "SHA1"), Ok(TotpAlgorithm::Sha1));
    assert_eq!(set(TotpAlgorithm::Sha256, "sha-1"), Ok(TotpAlgorithm::Sha1));
    assert_eq!(
        set(TotpAlgorithm::Sha1, " SHA256"),
        Ok(TotpAlgorithm::Sha256)
    );
    assert_eq!(
        set(TotpAlgorithm::Sha1, "sha512"),
        Ok(TotpAlgorithm::Sha512)
    );
    assert_eq!(
        set(TotpAlgorithm::Sha1, "SHA-512"),
        Ok(TotpAlgorithm::Sha512)
    );
}

#[test]
fn totp_codes_have_six_or_eight_digits() {
    for digits in [6, 8] {
        let p = Policy::default()
            .apply(&PolicyChange {
                totp_digits: Some(digits),
                ..Default::default()
            })
            .unwrap();
        assert_eq!(i64::from(p.totp_digits), digits);
    }
}

#[test]
fn the_calling_code_allow_list_holds_at_most_fifty_codes() {
    let assigned: Vec<String> = (1..1000)
        .map(|n: u16| n.to_string())
        .filter(|c| CallingCode::parse(c).is_ok())
        .collect();
    let change = |n: usize| PolicyChange {
        allowed_calling_codes: Some(assigned[..n].to_vec()),
        ..Default::default()
    };
    let p = Policy::default().apply(&change(50)).unwrap();
    assert_eq!(p.allowed_calling_codes.len(), 50);
    assert_eq!(
        Policy::default().apply(&change(51)),
        Err(PolicyError::TooManyCallingCodes { max: 50 })
    );
}

#[test]
fn a_rate_of_zero_returns_to_the_service_default() {
    let set = |v: i64| {
        Policy::default()
            .apply(&PolicyChange {
                requests_per_second_per_key: Some(v),
                ..Default::default()
            })
            .unwrap()
            .requests_per_second_per_key
    };
    assert_eq!(set(5), Some(5));
    assert_eq!(set(1), Some(1));
    assert_eq!(set(0), None);
}

#[test]
fn send_budgets_default_to_a_thousand_sms_and_ten_thousand_emails_an_hour() {
    let p = Policy::default();
    assert_eq!(
        (p.sms_hourly_budget, p.email_hourly_budget),
        (1_000, 10_000)
    );
    // A policy recorded before the budgets existed loads with them.
    let mut stored = serde_json::to_value(&p).unwrap();
    let fields = stored.as_object_mut().unwrap();
    fields.remove("smsHourlyBudget");
    fields.remove("emailHourlyBudget");
    let loaded: Policy = serde_json::from_value(stored).unwrap();
    assert_eq!(
        (loaded.sms_hourly_budget, loaded.email_hourly_budget),
        (1_000, 10_000)
    );
}
