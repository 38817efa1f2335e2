//! No secret, code or recovery code is ever stored, logged or echoed in clear.

use serde_json::{json, Value};
use twofold_tests::fakes::extract_code;
use twofold_tests::{captured_logs, spawn_app};

const START: &str = "mutation($u: ID!) { startTotpEnrollment(userId: $u, accountLabel: \"zed.label@example.com\") { secret otpauthUri } }";
const CONFIRM: &str =
    "mutation($u: ID!, $c: String!) { confirmTotpEnrollment(userId: $u, code: $c) { codes } }";
const VERIFY: &str = "mutation($u: ID!, $m: Method!, $c: String!) { verify(userId: $u, method: $m, code: $c) { method } }";
const REGEN: &str = "mutation($u: ID!, $c: String!) { regenerateRecoveryCodes(userId: $u, method: RECOVERY_CODE, code: $c) { codes } }";

/// Every string in a JSON value, JSON text inside strings included (metadata values are JSON
/// text themselves); shared with the erasure tests.
pub(crate) fn strings(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::String(s) => {
            out.push(s.clone());
            // Metadata values are JSON text themselves.
            if let Ok(inner) = serde_json::from_str::<Value>(s) {
                if !inner.is_string() {
                    strings(&inner, out);
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|x| strings(x, out)),
        Value::Object(o) => o.values().for_each(|x| strings(x, out)),
        _ => {}
    }
}

#[tokio::test]
async fn a_full_scenario_leaves_no_secret_in_storage_or_logs() {
    let app = spawn_app().await;
    let (tenant, admin) = app.create_tenant("Acme").await;
    let (_, key) = app.issue_key(&admin, "APP").await;

    let e = app.gql(Some(&key), START, json!({ "u": "zed" })).await;
    let secret = e.data()["startTotpEnrollment"]["secret"]
        .as_str()
        .unwrap()
        .to_owned();
    let uri = e.data()["startTotpEnrollment"]["otpauthUri"]
        .as_str()
        .unwrap()
        .to_owned();
    let totp = totp_rs::Totp::from_url(&uri).unwrap();
    let raw = totp.secret().to_bytes_owned_for_test();
    let step = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        / 30;
    let confirm_code = totp.generate(step * 30).to_string();
    let verify_code = totp.generate((step + 1) * 30).to_string();
    let wrong_code = totp.generate((step + 7) * 30).to_string();

    let c = app
        .gql(
            Some(&key),
            CONFIRM,
            json!({ "u": "zed", "c": confirm_code }),
        )
        .await;
    let first: Vec<String> =
        serde_json::from_value(c.data()["confirmTotpEnrollment"]["codes"].clone()).unwrap();
    app.gql(
        Some(&key),
        VERIFY,
        json!({ "u": "zed", "m": "TOTP", "c": verify_code }),
    )
    .await
    .data();
    let failed = app
        .gql(
            Some(&key),
            VERIFY,
            json!({ "u": "zed", "m": "TOTP", "c": wrong_code }),
        )
        .await;
    assert_eq!(failed.error_code(), "INVALID_CODE");
    assert!(
        !failed.body.to_string().contains(&wrong_code),
        "an error echoed the code"
    );
    app.gql(
        Some(&key),
        VERIFY,
        json!({ "u": "zed", "m": "RECOVERY_CODE", "c": first[3] }),
    )
    .await
    .data();
    let r = app
        .gql(Some(&key), REGEN, json!({ "u": "zed", "c": first[5] }))
        .await;
    let second: Vec<String> =
        serde_json::from_value(r.data()["regenerateRecoveryCodes"]["codes"].clone()).unwrap();
    // Email and phone: registered, confirmed and used with the codes they received.
    let mail = app
        .gql(
            Some(&key),
            "mutation($r: String!) { addEmail(userId: \"zed\", email: \"zed.secret@example.com\", proof: { method: RECOVERY_CODE, code: $r }) { id } }",
            json!({ "r": second[0] }),
        )
        .await;
    let mail_id = mail.data()["addEmail"]["id"].clone();
    let mails = app
        .smtp
        .wait_for(1, std::time::Duration::from_secs(20))
        .await;
    let mail_code = extract_code(&mails[0].text().unwrap_or_default(), 6).unwrap();
    app.gql(
        Some(&key),
        "mutation($c: ID!, $k: String!, $r: String!) { confirmChannel(userId: \"zed\", challengeId: $c, code: $k, proof: { method: RECOVERY_CODE, code: $r }) { codes } }",
        json!({ "c": mail_id, "k": mail_code, "r": second[1] }),
    )
    .await
    .data();
    let sms = app
        .gql(
            Some(&key),
            "mutation($r: String!) { addPhone(userId: \"zed\", phone: \"+995 555 98 76 54\", proof: { method: RECOVERY_CODE, code: $r }) { id } }",
            json!({ "r": second[2] }),
        )
        .await;
    let sms_id = sms.data()["addPhone"]["id"].clone();
    let texts = app
        .twilio
        .wait_for_delivered(1, std::time::Duration::from_secs(20))
        .await;
    let sms_code = extract_code(&texts[0].body, 6).unwrap();
    app.gql(
        Some(&key),
        "mutation($c: ID!, $k: String!, $r: String!) { confirmChannel(userId: \"zed\", challengeId: $c, code: $k, proof: { method: RECOVERY_CODE, code: $r }) { codes } }",
        json!({ "c": sms_id, "k": sms_code, "r": second[3] }),
    )
    .await
    .data();
    app.wait_for_events("%/user/zed", "CodeDelivered", 2).await;

    app.gql(
        Some(&admin),
        "mutation { resetTwoFactor(userId: \"zed\", reason: \"scenario over\") { enabled } }",
        json!({}),
    )
    .await
    .data();

    // Everything the database holds, every table.
    let mut stored = Vec::new();
    for table in [
        "events",
        "aggregate_snapshots",
        "tenants",
        "api_keys",
        "tenant_data_keys",
        "data_keys",
        "projection_checkpoints",
    ] {
        let rows: Vec<Value> = sqlx::query_scalar(&format!("SELECT to_jsonb(t) FROM {table} t"))
            .fetch_all(&app.db)
            .await
            .unwrap();
        for row in &rows {
            strings(row, &mut stored);
        }
    }
    let stored_text = stored.join("\n").to_lowercase();
    let logs = captured_logs().to_lowercase();
    assert!(logs.contains(&tenant), "the log capture saw this scenario");

    let mut forbidden: Vec<String> = vec![
        "zed.secret".to_owned(),
        "zed.label".to_owned(),
        "555987654".to_owned(),
        "555 98 76 54".to_owned(),
        secret.to_lowercase(),
        hex_of(&raw),
        base64_of(&raw).to_lowercase(),
    ];
    for code in first.iter().chain(&second) {
        forbidden.push(code.to_lowercase());
        forbidden.push(code.replace('-', "").to_lowercase());
    }
    for needle in &forbidden {
        assert!(
            !stored_text.contains(needle.as_str()),
            "a secret was stored in clear: {needle}"
        );
        assert!(
            !logs.contains(needle.as_str()),
            "a secret was logged: {needle}"
        );
    }
    // Six-digit codes can occur by chance in timestamps; look for them as values.
    for code in [
        &confirm_code,
        &verify_code,
        &wrong_code,
        &mail_code,
        &sms_code,
    ] {
        assert!(
            !stored.iter().any(|s| s == code),
            "a code was stored: {code}"
        );
        for form in [
            format!("\"{code}\""),
            format!("={code}"),
            format!(": {code}"),
        ] {
            assert!(!logs.contains(&form), "a code was logged: {form}");
        }
    }
}

fn hex_of(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn base64_of(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// The raw secret bytes, decoded from the URI the way an app would.
trait RawSecret {
    fn to_bytes_owned_for_test(&self) -> Vec<u8>;
}

impl RawSecret for totp_rs::Secret {
    fn to_bytes_owned_for_test(&self) -> Vec<u8> {
        let b32 = self.to_base32();
        base32_decode(&b32)
    }
}

fn base32_decode(s: &str) -> Vec<u8> {
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut bits: u64 = 0;
    let mut n = 0;
    let mut out = Vec::new();
    for c in s.bytes().filter(|c| *c != b'=') {
        let v = alphabet.iter().position(|a| *a == c).unwrap() as u64;
        bits = (bits << 5) | v;
        n += 5;
        if n >= 8 {
            n -= 8;
            out.push((bits >> n) as u8);
        }
    }
    out
}
