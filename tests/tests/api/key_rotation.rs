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
    let (tenant, admin) = running.create_tenant("Acme").await;
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
    let bea = start(&during, &key, "bea").await;
    let bea_uri = bea.body["data"]["startTotpEnrollment"]["otpauthUri"]
        .as_str()
        .unwrap_or_else(|| panic!("{:?}", bea.body))
        .to_owned();

    let keys = MasterKeys::new(new.clone(), Some(old.clone()));
    let done = rotate_master_key(&running.db, &keys).await.unwrap();
    assert_eq!(done.failed, Vec::<String>::new());
    assert!(done.rewrapped >= 1, "{done:?}");
    // Again: nothing left to do.
    let again = rotate_master_key(&running.db, &keys).await.unwrap();
    assert_eq!((again.rewrapped, again.current), (0, done.current));
    let ids: Vec<String> = sqlx::query_scalar("SELECT DISTINCT master_key_id FROM data_keys")
        .fetch_all(&running.db)
        .await
        .unwrap();
    assert_eq!(ids, vec![keys.current_id().to_owned()]);
    let users: i64 = sqlx::query_scalar("SELECT count(*) FROM data_keys WHERE user_id <> ''")
        .fetch_one(&running.db)
        .await
        .unwrap();
    assert_eq!(users, 2, "ann's and bea's keys were rewrapped too");

    assert!(done.complete(), "{done:?}");

    // The instance started before the rotation keeps working: it holds ann's key, and a new
    // user gets a new key.
    assert!(start(&running, &key, "cid").await.body["errors"].is_null());

    // It still has only the old master key, so cid's key is under it: the rotation must not
    // call itself done, and a label claiming otherwise must not hide it.
    let old_id = twofold_infra::crypto::seal::master_key_id(&old);
    let relabel = |id: String| {
        sqlx::query("UPDATE data_keys SET master_key_id = $1 WHERE user_id = 'cid'")
            .bind(id)
            .execute(&running.db)
    };
    relabel(keys.current_id().to_owned()).await.unwrap();
    let mislabelled = rotate_master_key(&running.db, &keys).await.unwrap();
    assert_eq!(mislabelled.failed, vec![format!("{tenant} (a user's key)")]);
    assert!(!mislabelled.complete());
    relabel(old_id).await.unwrap();
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
    let refused = stale
        .gql(
            Some(&key),
            CONFIRM,
            json!({ "u": "bea", "c": code(&bea_uri) }),
        )
        .await;
    assert_eq!(refused.error_code(), "INTERNAL", "{:?}", refused.body);
}
