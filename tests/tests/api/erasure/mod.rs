//! Erasure by crypto-shredding: after `eraseUser`, nothing stored anywhere (events, snapshots,
//! read models, the key database, or a backup taken before and restored after) yields the
//! user's contact details or TOTP secret, while the history stays and other users are intact.

mod key_database;
mod reseal;
mod tenant;

use std::time::Duration;

use serde_json::{json, Value};
use twofold_domain::secrets::SealedSecret;
use twofold_domain::user::UserRef;
use twofold_domain::{TenantId, UserId};
use twofold_infra::crypto::seal::PgSealer;
use twofold_services::ports::Sealer;
use twofold_tests::fakes::extract_code;
use twofold_tests::{Answer, TestApp};

use crate::secrets::strings;

const START: &str = "mutation($u: ID!) { startTotpEnrollment(userId: $u) { secret otpauthUri } }";
const CONFIRM: &str =
    "mutation($u: ID!, $c: String!) { confirmTotpEnrollment(userId: $u, code: $c) { codes } }";
const VERIFY: &str =
    "mutation($u: ID!, $m: Method!, $c: String!) { verify(userId: $u, method: $m, code: $c) { method } }";
const ERASE: &str = "mutation($u: ID!, $r: String!) { eraseUser(userId: $u, reason: $r) { userId erasedAt keysDestroyed complete } }";

const WAIT: Duration = Duration::from_secs(20);

/// The TOTP code for `uri` at the current step plus `offset`.
fn totp_code(uri: &str, offset: i64) -> String {
    let totp = totp_rs::Totp::from_url(uri).unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    totp.generate((now / 30).saturating_add_signed(offset) * 30)
        .to_string()
}

/// What a user was given: the TOTP URI and secret, and the recovery codes.
struct Enrolled {
    uri: String,
    secret: String,
    codes: Vec<String>,
}

async fn enroll(app: &TestApp, key: &str, user: &str) -> Enrolled {
    enroll_at(app, key, user, 0).await
}

/// Enrolls with the code `offset` steps from now (a step used once is never accepted again,
/// not even for a new secret after an erasure).
async fn enroll_at(app: &TestApp, key: &str, user: &str, offset: i64) -> Enrolled {
    let started = app.gql(Some(key), START, json!({ "u": user })).await;
    let uri = started.data()["startTotpEnrollment"]["otpauthUri"]
        .as_str()
        .unwrap()
        .to_owned();
    let secret = started.data()["startTotpEnrollment"]["secret"]
        .as_str()
        .unwrap()
        .to_owned();
    let confirmed = app
        .gql(
            Some(key),
            CONFIRM,
            json!({ "u": user, "c": totp_code(&uri, offset) }),
        )
        .await;
    let codes =
        serde_json::from_value(confirmed.data()["confirmTotpEnrollment"]["codes"].clone()).unwrap();
    Enrolled { uri, secret, codes }
}

/// Adds and confirms an email address (`EMAIL`) or phone number (`SMS`), proving with a
/// recovery code each time; `n` is how many mails or texts the sink has had by then.
async fn add_contact(
    app: &TestApp,
    key: &str,
    user: &str,
    channel: &str,
    contact: &str,
    proofs: &[String],
    n: usize,
) {
    let (add, field) = match channel {
        "EMAIL" => (
            "addEmail(userId: $u, email: $x, proof: { method: RECOVERY_CODE, code: $r })",
            "addEmail",
        ),
        _ => (
            "addPhone(userId: $u, phone: $x, proof: { method: RECOVERY_CODE, code: $r })",
            "addPhone",
        ),
    };
    let added = app
        .gql(
            Some(key),
            &format!("mutation($u: ID!, $x: String!, $r: String!) {{ {add} {{ id }} }}"),
            json!({ "u": user, "x": contact, "r": proofs[0] }),
        )
        .await;
    let challenge = added.data()[field]["id"].clone();
    let text = match channel {
        "EMAIL" => {
            let mails = app.smtp.wait_for(n, WAIT).await;
            mails[n - 1].text().unwrap_or_default()
        }
        _ => app.twilio.wait_for_delivered(n, WAIT).await[n - 1]
            .body
            .clone(),
    };
    let code = extract_code(&text, 6).unwrap();
    app.gql(
        Some(key),
        "mutation($u: ID!, $c: ID!, $k: String!, $r: String!) { confirmChannel(userId: $u, challengeId: $c, code: $k, proof: { method: RECOVERY_CODE, code: $r }) { codes } }",
        json!({ "u": user, "c": challenge, "k": code, "r": proofs[1] }),
    )
    .await
    .data();
}

/// Every row of every table of the database, as text.
async fn everything_stored(url: &str) -> Vec<String> {
    let pool = sqlx::PgPool::connect(url).await.unwrap();
    let tables: Vec<String> =
        sqlx::query_scalar("SELECT tablename::text FROM pg_tables WHERE schemaname = 'public'")
            .fetch_all(&pool)
            .await
            .unwrap();
    let mut out = Vec::new();
    for table in tables {
        let rows: Vec<Value> =
            sqlx::query_scalar(&format!("SELECT to_jsonb(t) FROM \"{table}\" t"))
                .fetch_all(&pool)
                .await
                .unwrap();
        rows.iter().for_each(|row| strings(row, &mut out));
    }
    pool.close().await;
    out
}

/// The user's seals in the event log and snapshots of the database at `url`, and how many of
/// them `sealer` opens (trying every context a user's seal can have).
async fn openable(url: &str, sealer: &PgSealer, user: &UserRef) -> (usize, usize) {
    let pool = sqlx::PgPool::connect(url).await.unwrap();
    let id = user.aggregate_id();
    let mut found = Vec::new();
    for sql in [
        "SELECT to_jsonb(e) FROM events e WHERE aggregate_id = $1",
        "SELECT to_jsonb(s) FROM aggregate_snapshots s WHERE aggregate_id = $1",
    ] {
        let rows: Vec<Value> = sqlx::query_scalar(sql)
            .bind(&id)
            .fetch_all(&pool)
            .await
            .unwrap();
        rows.iter().for_each(|row| strings(row, &mut found));
    }
    pool.close().await;
    found.sort();
    found.dedup();
    let contexts = [
        "totp",
        "email",
        "sms",
        "webauthn-credential",
        "webauthn-ceremony",
    ];
    let (mut seals, mut opened) = (0, 0);
    for candidate in found.iter().filter(|s| s.len() >= 60 && !s.contains(' ')) {
        let sealed = SealedSecret::from_encoded(candidate.clone());
        let mut any_seal = false;
        for context in contexts {
            match sealer
                .open_for_user(user, &format!("{id}/{context}"), &sealed)
                .await
            {
                Ok(_) => {
                    opened += 1;
                    any_seal = true;
                }
                Err(e) => any_seal |= format!("{e:?}").contains("Erased"),
            }
        }
        seals += usize::from(any_seal || candidate.starts_with("A"));
    }
    (seals, opened)
}

fn forbidden(text: &str, needles: &[String]) -> Vec<String> {
    let text = text.to_lowercase();
    needles
        .iter()
        .filter(|n| text.contains(&n.to_lowercase()))
        .cloned()
        .collect()
}

fn user(tenant: &str, id: &str) -> UserRef {
    UserRef {
        tenant: TenantId::parse(tenant).unwrap(),
        user: UserId::parse(id).unwrap(),
    }
}

fn erased(answer: &Answer) -> &Value {
    &answer.data()["eraseUser"]
}

#[tokio::test]
async fn after_an_erasure_no_stored_copy_not_even_a_restored_backup_yields_the_users_secrets() {
    // The keys on another server, as a deployment whose erasures reach its backups keeps them.
    let keys_server = twofold_tests::backup::OtherServer::start().await;
    let keys_url = keys_server.url();
    let app = twofold_tests::spawn_app_with(twofold_tests::TestOptions {
        key_database_url: Some(keys_url.clone()),
        ..Default::default()
    })
    .await;
    let (tenant, admin) = app.create_tenant("Acme").await;
    let (_, key) = app.issue_key(&admin, "APP").await;

    // Eve: an authenticator app, an email address and a phone number. Bob: an app and email.
    let eve = enroll(&app, &key, "eve").await;
    add_contact(
        &app,
        &key,
        "eve",
        "EMAIL",
        "eve.secret@example.com",
        &eve.codes[0..2],
        1,
    )
    .await;
    add_contact(
        &app,
        &key,
        "eve",
        "SMS",
        "+995 555 98 76 54",
        &eve.codes[2..4],
        1,
    )
    .await;
    let bob = enroll(&app, &key, "bob").await;
    add_contact(
        &app,
        &key,
        "bob",
        "EMAIL",
        "bob.kept@example.com",
        &bob.codes[0..2],
        2,
    )
    .await;
    app.wait_for_events("%/user/%", "CodeDelivered", 3).await;

    let sealer = PgSealer::new(
        sqlx::PgPool::connect(&keys_url).await.unwrap(),
        app.secrets.master_key.clone(),
    );
    let (eve_ref, bob_ref) = (user(&tenant, "eve"), user(&tenant, "bob"));
    let (seals, opened) = openable(&app.database_url, &sealer, &eve_ref).await;
    assert!(
        opened >= 3,
        "before: eve's secret, address and number open ({seals} seals)"
    );

    // A backup of the event database, taken before the erasure.
    let backup = twofold_tests::backup::Backup::take(&app.database_url).await;

    // Only an admin may erase; bad input changes nothing.
    let refused = app
        .gql(
            Some(&key),
            ERASE,
            json!({ "u": "eve", "r": "GDPR request 42" }),
        )
        .await;
    assert_eq!(refused.error_code(), "FORBIDDEN");
    let unknown = app
        .gql(
            Some(&admin),
            ERASE,
            json!({ "u": "nobody", "r": "GDPR request 42" }),
        )
        .await;
    assert_eq!(unknown.error_code(), "NOT_FOUND", "{:?}", unknown.body);
    let no_reason = app
        .gql(Some(&admin), ERASE, json!({ "u": "eve", "r": "" }))
        .await;
    assert_eq!(no_reason.error_code(), "INVALID_INPUT");
    assert_eq!(app.count_events_like("%/user/eve", "UserErased").await, 0);

    let done = app
        .gql(
            Some(&admin),
            ERASE,
            json!({ "u": "eve", "r": "GDPR request 42" }),
        )
        .await;
    assert_eq!(erased(&done)["userId"], "eve", "{:?}", done.body);
    assert_eq!(erased(&done)["keysDestroyed"], 1);
    assert_eq!(erased(&done)["complete"], true);

    // Nothing stored yields eve's contact details or secret: no clear text anywhere in either
    // database, and no seal of hers opens any more. Bob's still do.
    let needles = vec![
        "eve.secret".to_owned(),
        "555987654".to_owned(),
        "555 98 76 54".to_owned(),
        eve.secret.clone(),
    ];
    for url in [&app.database_url, &keys_url] {
        let stored = everything_stored(url).await.join("\n");
        assert_eq!(forbidden(&stored, &needles), Vec::<String>::new());
    }
    let (seals, opened) = openable(&app.database_url, &sealer, &eve_ref).await;
    assert!(seals >= 3, "the seals are still in the log ({seals})");
    assert_eq!(opened, 0, "an erased user's seal opened");
    let (_, bob_opened) = openable(&app.database_url, &sealer, &bob_ref).await;
    assert!(bob_opened >= 2, "bob's seals are intact");

    // The history stays, masked, and says who erased her and why.
    let history = app
        .gql(
            Some(&admin),
            "query { auditEvents(filter: { userId: \"eve\", eventTypes: [\"UserErased\"] }) { nodes { eventType data } } }",
            json!({}),
        )
        .await;
    let node = &history.data()["auditEvents"]["nodes"][0];
    assert_eq!(node["eventType"], "UserErased", "{:?}", history.body);
    assert_eq!(node["data"]["reason"], "GDPR request 42");

    // Her old codes no longer pass, and she can start again, under a new key.
    let old = app
        .gql(
            Some(&key),
            VERIFY,
            json!({ "u": "eve", "m": "TOTP", "c": totp_code(&eve.uri, 1) }),
        )
        .await;
    assert_eq!(old.error_code(), "NOT_FOUND", "{:?}", old.body);
    let again = enroll_at(&app, &key, "eve", 1).await;
    assert_eq!(again.codes.len(), eve.codes.len());

    // The backup from before, restored and opened with the live key database: the events say
    // eve is enrolled, but nothing of hers opens. Bob signs in as before.
    let restored_url = backup.restore().await;
    let stored = everything_stored(&restored_url).await.join("\n");
    assert_eq!(forbidden(&stored, &needles), Vec::<String>::new());
    let fresh = PgSealer::new(
        sqlx::PgPool::connect(&keys_url).await.unwrap(),
        app.secrets.master_key.clone(),
    );
    let (seals, opened) = openable(&restored_url, &fresh, &eve_ref).await;
    assert!(
        seals >= 3 && opened == 0,
        "restored: {seals} seals, {opened} opened"
    );
    let restored = twofold_tests::spawn_instance_on(
        restored_url,
        app.secrets.clone(),
        twofold_tests::TestOptions {
            key_database_url: Some(keys_url.clone()),
            ..Default::default()
        },
    )
    .await;
    let bob_in = restored
        .gql(
            Some(&key),
            VERIFY,
            json!({ "u": "bob", "m": "TOTP", "c": totp_code(&bob.uri, 1) }),
        )
        .await;
    assert_eq!(bob_in.data()["verify"]["method"], "TOTP");
    let eve_in = restored
        .gql(
            Some(&key),
            VERIFY,
            json!({ "u": "eve", "m": "TOTP", "c": totp_code(&eve.uri, 2) }),
        )
        .await;
    assert_eq!(eve_in.error_code(), "INTERNAL", "{:?}", eve_in.body);
    // Nor can a code go to her restored address: it does not open, so nothing is sent.
    let sent = restored
        .gql(
            Some(&key),
            "mutation { sendCode(userId: \"eve\", channel: EMAIL) { id } }",
            json!({}),
        )
        .await;
    assert_eq!(sent.error_code(), "INTERNAL", "{:?}", sent.body);
    assert_eq!(
        restored.count_events_like("%/user/eve", "CodeSent").await,
        2,
        "only the two from before the backup"
    );
    assert!(
        restored.smtp.messages().is_empty(),
        "a mail went to the erased address"
    );
}
