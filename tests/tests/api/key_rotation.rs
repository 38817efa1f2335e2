//! `twofold keys rotate`: the master key replaced while the service runs, nothing sealed lost.

use serde_json::json;
use twofold_infra::config::Key32;
use twofold_infra::crypto::seal::{rotate_master_key, MasterKeys};
use twofold_tests::{spawn_app, spawn_app_on, Answer, TestApp};

const START: &str = "mutation($u: ID!) { startTotpEnrollment(userId: $u) { otpauthUri } }";
const CONFIRM: &str =
    "mutation($u: ID!, $c: String!) { confirmTotpEnrollment(userId: $u, code: $c) { codes } }";

/// Starting an enrollment seals a new secret: it needs the tenant's data key.
async fn start(app: &TestApp, key: &str, user: &str) -> Answer {
    app.gql(Some(key), START, json!({ "u": user })).await
}

/// The app's current code for the secret behind `uri`.
fn code(uri: &str) -> String {
    let totp = totp_rs::Totp::from_url(uri).unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    totp.generate(now).to_string()
}

#[tokio::test]
async fn a_rotation_rewraps_every_data_key_and_only_the_new_master_key_is_needed_afterwards() {
    let running = spawn_app().await;
    let old = running.secrets.master_key.clone();
    let (_, admin) = running.create_tenant("Acme").await;
    let (_, key) = running.issue_key(&admin, "APP").await;
    let started = start(&running, &key, "ann").await;
    let uri = started.body["data"]["startTotpEnrollment"]["otpauthUri"]
        .as_str()
        .unwrap_or_else(|| panic!("{:?}", started.body))
        .to_owned();

    // Instances restarted with the new key and the old one as previous work throughout.
    let new = Key32::generate();
    let mut rotating = running.secrets.clone();
    rotating.master_key = new.clone();
    rotating.previous_master_key = Some(old.clone());
    let during = spawn_app_on(running.database_url.clone(), rotating).await;
    assert!(start(&during, &key, "bea").await.body["errors"].is_null());

    let keys = MasterKeys::new(new.clone(), Some(old.clone()));
    let done = rotate_master_key(&running.db, &keys).await.unwrap();
    assert_eq!(done.failed, Vec::<String>::new());
    assert!(done.rewrapped >= 1, "{done:?}");
    // Again: nothing left to do.
    let again = rotate_master_key(&running.db, &keys).await.unwrap();
    assert_eq!((again.rewrapped, again.current), (0, done.rewrapped));
    let ids: Vec<Option<String>> =
        sqlx::query_scalar("SELECT DISTINCT master_key_id FROM tenant_data_keys")
            .fetch_all(&running.db)
            .await
            .unwrap();
    assert_eq!(ids, vec![Some(keys.current_id().to_owned())]);

    assert!(done.complete(), "{done:?}");

    // The instance started before the rotation keeps working (it holds the data key).
    assert!(start(&running, &key, "cid").await.body["errors"].is_null());

    // It still has only the old key, so a data key it makes now is under the old key: the
    // rotation must not call itself done, and a label claiming otherwise must not hide it.
    let (beta, beta_admin) = running.create_tenant("Beta").await;
    let (_, beta_key) = running.issue_key(&beta_admin, "APP").await;
    assert!(start(&running, &beta_key, "eve").await.body["errors"].is_null());
    let old_id = twofold_infra::crypto::seal::master_key_id(&old);
    sqlx::query("UPDATE tenant_data_keys SET master_key_id = $1 WHERE tenant_id = $2")
        .bind(keys.current_id())
        .bind(&beta)
        .execute(&running.db)
        .await
        .unwrap();
    let mislabelled = rotate_master_key(&running.db, &keys).await.unwrap();
    assert_eq!(mislabelled.failed, vec![beta.clone()]);
    assert!(!mislabelled.complete());
    sqlx::query("UPDATE tenant_data_keys SET master_key_id = $1 WHERE tenant_id = $2")
        .bind(&old_id)
        .bind(&beta)
        .execute(&running.db)
        .await
        .unwrap();
    let caught_up = rotate_master_key(&running.db, &keys).await.unwrap();
    assert_eq!(caught_up.rewrapped, 1, "{caught_up:?}");
    assert!(caught_up.complete(), "{caught_up:?}");
    // A fresh instance with only the new key opens the secret sealed before the rotation.
    let mut rotated = running.secrets.clone();
    rotated.master_key = new;
    rotated.previous_master_key = None;
    let after = spawn_app_on(running.database_url.clone(), rotated).await;
    let confirmed = after
        .gql(Some(&key), CONFIRM, json!({ "u": "ann", "c": code(&uri) }))
        .await;
    assert!(
        confirmed.body["data"]["confirmTotpEnrollment"]["codes"].is_array(),
        "{:?}",
        confirmed.body
    );
    // One with only the old key no longer can: a leaked old key opens nothing stored now.
    let stale = spawn_app_on(running.database_url.clone(), running.secrets.clone()).await;
    assert_eq!(start(&stale, &key, "dan").await.error_code(), "INTERNAL");
}
