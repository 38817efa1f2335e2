use super::*;

fn settings(vars: &[(&str, &str)]) -> Result<RateLimitSettings, String> {
    RateLimitSettings::from_lookup(|k| {
        vars.iter()
            .find(|(name, _)| *name == k)
            .map(|(_, v)| (*v).to_owned())
    })
}

#[test]
fn defaults_are_documented_values_and_the_share_is_below_the_pool() {
    let s = settings(&[]).unwrap();
    assert_eq!(
        (s.default_per_second, s.min_per_second, s.max_per_second),
        (200, 1, 10_000)
    );
    assert_eq!(
        s.tenant_concurrency, 6,
        "three quarters of the default pool of 8"
    );
    let s = settings(&[("TWOFOLD_DB_POOL_SIZE", "2")]).unwrap();
    assert_eq!(s.tenant_concurrency, 1);
}

#[test]
fn the_operator_sets_the_bounds_and_bad_values_are_refused() {
    let s = settings(&[
        ("TWOFOLD_RATE_LIMIT_MAX", "50"),
        ("TWOFOLD_RATE_LIMIT_MIN", "5"),
    ])
    .unwrap();
    assert_eq!(
        (s.default_per_second, s.min_per_second, s.max_per_second),
        (50, 5, 50),
        "the default stays within the bounds"
    );
    for bad in [
        ("TWOFOLD_RATE_LIMIT_MAX", "0"),
        ("TWOFOLD_RATE_LIMIT_MAX", "lots"),
        ("TWOFOLD_RATE_LIMIT_DEFAULT", "20000"),
        ("TWOFOLD_TENANT_MAX_CONCURRENT_REQUESTS", "8"),
    ] {
        let e = settings(&[bad]).unwrap_err();
        assert!(e.contains(bad.0), "{e}");
    }
}

#[test]
fn a_bucket_holds_two_seconds_of_requests() {
    let b = bucket(3);
    for _ in 0..6 {
        assert!(b.check().is_ok());
    }
    let refused = b.check().unwrap_err();
    let wait = refused.wait_time_from(DefaultClock::default().now());
    assert!(
        wait > Duration::ZERO && wait <= Duration::from_millis(334),
        "{wait:?}"
    );
}

#[test]
fn a_tenant_at_its_share_does_not_take_another_tenants() {
    let shares = Shares::new(2);
    let (a, b) = (
        TenantId::parse("tenant-a").unwrap(),
        TenantId::parse("tenant-b").unwrap(),
    );
    let first = shares.of(&a).try_acquire_owned().unwrap();
    let _second = shares.of(&a).try_acquire_owned().unwrap();
    assert!(
        shares.of(&a).try_acquire_owned().is_err(),
        "a's third waits"
    );
    assert!(
        shares.of(&b).try_acquire_owned().is_ok(),
        "b is not affected"
    );
    drop(first);
    assert!(
        shares.of(&a).try_acquire_owned().is_ok(),
        "a permit comes back when done"
    );
}
