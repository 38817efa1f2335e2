//! `twofold keys reseal`: a database as a version before per-user keys left it (everything
//! sealed under one key per tenant) is moved to the per-user keys, the tenant's old key is
//! destroyed, and from then on an erasure reaches the whole history.

use base64::Engine as _;
use serde_json::{json, Value};
use sqlx::PgPool;
use twofold_domain::secrets::SealedSecret;
use twofold_domain::{TenantId, UserId};
use twofold_infra::crypto::seal::{
    master_key_id, random_nonce, seal_aad, seal_with, wrap_data_key, PgSealer,
};
use twofold_services::ports::Sealer;
use twofold_services::RequestContext;

use super::{add_contact, enroll, openable, totp_code, user, ERASE, VERIFY};

const CONTEXTS: [&str; 3] = ["totp", "email", "sms"];

/// Rewrites the user's events as the earlier version wrote them: every seal under the
/// tenant's one key (which is stored), no per-user key, no snapshot. (Test set-up only: the
/// log's immutability trigger is skipped for it.)
async fn as_first_format(app: &twofold_tests::TestApp, keys: &PgPool, tenant: &str, id: &str) {
    let sealer = PgSealer::new(keys.clone(), app.secrets.master_key.clone());
    let owner = user(tenant, id);
    let tenant_id = TenantId::parse(tenant).unwrap();
    let legacy = [0x5a; 32];
    sqlx::query(
        "INSERT INTO tenant_data_keys (tenant_id, wrapped_key, master_key_id) VALUES ($1, $2, $3) \
         ON CONFLICT (tenant_id) DO NOTHING",
    )
    .bind(tenant)
    .bind(wrap_data_key(&app.secrets.master_key, &tenant_id, &legacy).unwrap())
    .bind(master_key_id(&app.secrets.master_key))
    .execute(keys)
    .await
    .unwrap();
    let rows: Vec<(i64, Value)> = sqlx::query_as(
        "SELECT sequence, payload FROM events WHERE aggregate_id = $1 ORDER BY sequence",
    )
    .bind(owner.aggregate_id())
    .fetch_all(&app.db)
    .await
    .unwrap();
    let mut rewritten: Vec<(i64, String)> = vec![];
    for (sequence, payload) in rows {
        let mut text = payload.to_string();
        let mut strings = vec![];
        crate::secrets::strings(&payload, &mut strings);
        for candidate in strings {
            for context in CONTEXTS {
                let context = format!("{}/{context}", owner.aggregate_id());
                let sealed = SealedSecret::from_encoded(candidate.clone());
                if let Ok(value) = sealer.open_for_user(&owner, &context, &sealed).await {
                    let old = seal_with(
                        &legacy,
                        &seal_aad(&tenant_id, &context),
                        &value,
                        random_nonce(),
                    )
                    .unwrap();
                    let old = base64::engine::general_purpose::STANDARD.encode(old);
                    text = text.replace(&candidate, &old);
                }
            }
        }
        rewritten.push((sequence, text));
    }
    // Replica mode skips the log's immutability trigger, for this transaction only.
    let mut tx = app.db.begin().await.unwrap();
    sqlx::query("SET LOCAL session_replication_role = replica")
        .execute(&mut *tx)
        .await
        .unwrap();
    for (sequence, text) in rewritten {
        sqlx::query(
            "UPDATE events SET payload = $3::jsonb WHERE aggregate_id = $1 AND sequence = $2",
        )
        .bind(owner.aggregate_id())
        .bind(sequence)
        .bind(text)
        .execute(&mut *tx)
        .await
        .unwrap();
    }
    tx.commit().await.unwrap();
    for (sql, pool) in [
        (
            "DELETE FROM aggregate_snapshots WHERE aggregate_id = $1",
            &app.db,
        ),
        (
            "DELETE FROM data_keys WHERE tenant_id || '/user/' || user_id = $1",
            keys,
        ),
    ] {
        sqlx::query(sql)
            .bind(owner.aggregate_id())
            .execute(pool)
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn resealing_moves_old_seals_to_the_users_key_and_then_erasure_reaches_the_old_history() {
    // The keys on another server, so a complete erasure can say so.
    let keys_server = twofold_tests::backup::OtherServer::start().await;
    let options = || twofold_tests::TestOptions {
        key_database_url: Some(keys_server.url()),
        ..Default::default()
    };
    let app = twofold_tests::spawn_app_with(options()).await;
    let keys = PgPool::connect(&keys_server.url()).await.unwrap();
    let (tenant, admin) = app.create_tenant("Acme").await;
    let (_, key) = app.issue_key(&admin, "APP").await;
    // Three users from before: one stays, one is erased before the reseal, one appears while
    // it runs (made by an instance still on the older version).
    let old = enroll(&app, &key, "old").await;
    add_contact(
        &app,
        &key,
        "old",
        "EMAIL",
        "old.secret@example.com",
        &old.codes[0..2],
        1,
    )
    .await;
    app.wait_for_events("%/user/old", "CodeDelivered", 1).await;
    enroll(&app, &key, "gone").await;
    enroll(&app, &key, "late").await;
    for u in ["old", "gone", "late"] {
        as_first_format(&app, &keys, &tenant, u).await;
    }

    // A fresh instance (no key in memory) still opens the first format: the user signs in.
    let fresh =
        twofold_tests::spawn_instance_on(app.database_url.clone(), app.secrets.clone(), options())
            .await;
    let signed_in = fresh
        .gql(
            Some(&key),
            VERIFY,
            json!({ "u": "old", "m": "TOTP", "c": totp_code(&old.uri, 1) }),
        )
        .await;
    assert_eq!(signed_in.data()["verify"]["method"], "TOTP");
    let sealer = || PgSealer::new(keys.clone(), app.secrets.master_key.clone());
    let (_, before) = openable(&app.database_url, &sealer(), &user(&tenant, "old")).await;
    assert!(before >= 2, "the first-format seals open ({before})");

    // Erasing before the reseal: the state is cleared, but the old seals still open under the
    // tenant's old key, and the answer says the erasure is not complete.
    let early = app
        .gql(
            Some(&admin),
            ERASE,
            json!({ "u": "gone", "r": "GDPR request 6" }),
        )
        .await;
    assert_eq!(
        early.data()["eraseUser"]["complete"],
        false,
        "{:?}",
        early.body
    );
    let (_, still) = openable(&app.database_url, &sealer(), &user(&tenant, "gone")).await;
    assert!(
        still >= 1,
        "first-format seals of an erased user open until the reseal"
    );

    let tenant_id = TenantId::parse(&tenant).unwrap();
    let listed: Vec<UserId> = ["gone", "old"].map(|u| UserId::parse(u).unwrap()).to_vec();
    let cli = RequestContext::system("cli");
    let tenants = &app.wiring.tenants;
    let moved = tenants
        .reseal(&app.wiring.users, &tenant_id, &listed, &cli)
        .await
        .unwrap();
    assert_eq!(moved, 2, "old's secret and address");
    // Listed afresh, "late" holds the key back; so does a user whose id cannot be read.
    let all: Vec<UserId> = ["gone", "late", "old"]
        .map(|u| UserId::parse(u).unwrap())
        .to_vec();
    let (left, retired) = tenants
        .retire_first_format_key(&app.wiring.users, &tenant_id, &all, 0)
        .await
        .unwrap();
    assert_eq!((left, retired), (1, false));
    let (left, retired) = tenants
        .retire_first_format_key(&app.wiring.users, &tenant_id, &listed, 1)
        .await
        .unwrap();
    assert_eq!((left, retired), (1, false));
    assert_eq!(
        tenants
            .reseal(&app.wiring.users, &tenant_id, &all, &cli)
            .await
            .unwrap(),
        1,
        "late's secret"
    );
    let (left, retired) = tenants
        .retire_first_format_key(&app.wiring.users, &tenant_id, &all, 0)
        .await
        .unwrap();
    assert_eq!((left, retired), (0, true));
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM tenant_data_keys")
        .fetch_one(&keys)
        .await
        .unwrap();
    assert_eq!(left, 0, "the tenant's first-format key is gone");

    // The early erasure is now complete: nothing of "gone" opens any more.
    let (seals, opened) = openable(&app.database_url, &sealer(), &user(&tenant, "gone")).await;
    assert!(seals >= 1 && opened == 0, "{seals} seals, {opened} opened");
    // Nothing changes for the others: the secret still opens (a wrong code is judged, not an
    // internal error) and a code still reaches the address.
    let window: Vec<String> = (-1..=1).map(|o| totp_code(&old.uri, o)).collect();
    let wrong = (0..4)
        .map(|d| format!("{d}{d}{d}{d}{d}{d}"))
        .find(|c| !window.contains(c))
        .unwrap();
    let judged = fresh
        .gql(
            Some(&key),
            VERIFY,
            json!({ "u": "old", "m": "TOTP", "c": wrong }),
        )
        .await;
    assert_eq!(judged.error_code(), "INVALID_CODE", "{:?}", judged.body);
    let sent = fresh
        .gql(
            Some(&key),
            "mutation { sendCode(userId: \"old\", channel: EMAIL) { id } }",
            json!({}),
        )
        .await;
    assert!(sent.body["errors"].is_null(), "{:?}", sent.body);
    app.wait_for_events("%/user/old", "CodeDelivered", 2).await;
    // Running it again finds nothing to do.
    let rerun = tenants
        .reseal(&app.wiring.users, &tenant_id, &all, &cli)
        .await
        .unwrap();
    assert_eq!(rerun, 0);

    // Now an erasure reaches the old events too, and is complete at once.
    let erased = app
        .gql(
            Some(&admin),
            ERASE,
            json!({ "u": "old", "r": "GDPR request 7" }),
        )
        .await;
    assert_eq!(erased.data()["eraseUser"]["keysDestroyed"], 1);
    assert_eq!(erased.data()["eraseUser"]["complete"], true);
    let (seals, opened) = openable(&app.database_url, &sealer(), &user(&tenant, "old")).await;
    assert!(seals >= 4 && opened == 0, "{seals} seals, {opened} opened");
}
