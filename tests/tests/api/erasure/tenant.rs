//! `twofold tenant erase`: every key of the tenant revoked, every data key of it and its users
//! destroyed; other tenants untouched.

use serde_json::json;
use twofold_infra::crypto::seal::PgSealer;
use twofold_services::RequestContext;
use twofold_tests::spawn_app;

use super::{enroll, openable, totp_code, user, VERIFY};

#[tokio::test]
async fn an_erased_tenant_has_no_key_left_and_nothing_of_it_opens() {
    let app = spawn_app().await;
    let (acme, admin) = app.create_tenant("Acme").await;
    let (_, key) = app.issue_key(&admin, "APP").await;
    let (beta, beta_admin) = app.create_tenant("Beta").await;
    let (_, beta_key) = app.issue_key(&beta_admin, "APP").await;
    let eve = enroll(&app, &key, "eve").await;
    let kept = enroll(&app, &beta_key, "eve").await;
    let sealer = PgSealer::new(app.db.clone(), app.secrets.master_key.clone());
    let (_, before) = openable(&app.database_url, &sealer, &user(&acme, "eve")).await;
    assert_eq!(before, 1, "eve's TOTP secret opens before");

    // With the keys in the event database, an erasure is not complete: backups hold the key.
    enroll(&app, &key, "bea").await;
    let erased = app
        .gql(
            Some(&admin),
            super::ERASE,
            json!({ "u": "bea", "r": "request 9" }),
        )
        .await;
    assert_eq!(
        erased.data()["eraseUser"]["complete"],
        false,
        "{:?}",
        erased.body
    );

    let cli = RequestContext::system("cli");
    let bad = app.wiring.tenants.erase_tenant(&acme, "", &cli).await;
    assert_eq!(bad.unwrap_err().code().as_str(), "INVALID_INPUT");
    let unknown = app.wiring.tenants.erase_tenant("nobody", "x", &cli).await;
    assert_eq!(unknown.unwrap_err().code().as_str(), "NOT_FOUND");

    let destroyed = app
        .wiring
        .tenants
        .erase_tenant(&acme, "contract ended", &cli)
        .await
        .unwrap();
    assert!(destroyed >= 1, "{destroyed}");
    // Every key, the admin's too, is refused from now on.
    for k in [&admin, &key] {
        let refused = app
            .gql(
                Some(k),
                VERIFY,
                json!({ "u": "eve", "m": "TOTP", "c": totp_code(&eve.uri, 1) }),
            )
            .await;
        assert_eq!(
            refused.error_code(),
            "UNAUTHENTICATED",
            "{:?}",
            refused.body
        );
    }
    let (seals, opened) = openable(&app.database_url, &sealer, &user(&acme, "eve")).await;
    assert!(seals >= 1 && opened == 0, "{seals} seals, {opened} opened");
    // Erasing again is harmless (and would finish a destruction that failed).
    let again = app.wiring.tenants.erase_tenant(&acme, "again", &cli).await;
    assert_eq!(again.unwrap(), 0);
    assert_eq!(app.count_events(&acme, "TenantErased").await, 2);
    // The id stays taken: an erased tenant is not a free name for someone else's data.
    let reused = app
        .wiring
        .tenants
        .create_tenant("Acme again", Some(&acme), &cli)
        .await;
    assert_eq!(reused.unwrap_err().code().as_str(), "CONFLICT");

    // The other tenant, with a user of the same id, is untouched.
    let (_, beta_opened) = openable(&app.database_url, &sealer, &user(&beta, "eve")).await;
    assert_eq!(beta_opened, 1);
    let ok = app
        .gql(
            Some(&beta_key),
            VERIFY,
            json!({ "u": "eve", "m": "TOTP", "c": totp_code(&kept.uri, 1) }),
        )
        .await;
    assert_eq!(ok.data()["verify"]["method"], "TOTP");
}
