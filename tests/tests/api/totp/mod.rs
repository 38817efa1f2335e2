//! TOTP with recovery codes, end to end: codes are computed from the returned `otpauth://` URI
//! the way an authenticator app does.

use futures::future::join_all;
use serde_json::{json, Value};
use twofold_tests::{spawn_app, Answer, TestApp};

const START: &str = "mutation($u: ID!, $l: String) { startTotpEnrollment(userId: $u, accountLabel: $l) { secret otpauthUri qrPng qrSvg algorithm digits period } }";
const CONFIRM: &str =
    "mutation($u: ID!, $c: String!) { confirmTotpEnrollment(userId: $u, code: $c) { codes } }";
const VERIFY: &str = "mutation($u: ID!, $m: Method!, $c: String!) { verify(userId: $u, method: $m, code: $c) { method recoveryCodesRemaining deviceToken } }";
const STATUS: &str = "query($u: ID!) { user(userId: $u) { userId enabled methods totpPending recoveryCodesRemaining lockedUntil lastVerifiedAt email phone trustedDevices { id } } }";

/// An authenticator app holding one enrolled secret.
pub(crate) struct App {
    totp: totp_rs::Totp,
    last_step: Option<u64>,
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

impl App {
    fn from_uri(uri: &str) -> Self {
        Self {
            totp: totp_rs::Totp::from_url(uri).expect("a valid otpauth URI"),
            last_step: None,
        }
    }

    fn code_at(&self, step: u64) -> String {
        self.totp.generate(step * self.totp.step()).to_string()
    }

    /// A code for a step the server has not accepted yet and will accept now (the current or
    /// the next step, so a step boundary passing mid-request cannot push it out of the window).
    pub(crate) fn next_code(&mut self) -> String {
        let current = now() / self.totp.step();
        let step = self.last_step.map_or(current, |l| (l + 1).max(current));
        assert!(
            step <= current + 1,
            "test used more than two codes in one time step"
        );
        self.last_step = Some(step);
        self.code_at(step)
    }

    /// The code `next_code` would return, without using it up (for requests refused before any
    /// code is checked).
    fn peek_code(&self) -> String {
        let current = now() / self.totp.step();
        self.code_at(self.last_step.map_or(current, |l| (l + 1).max(current)))
    }

    /// A code that is certainly wrong now.
    pub(crate) fn wrong_code(&self) -> String {
        let current = now() / self.totp.step();
        self.code_at(current + 5)
    }
}

pub(crate) struct Tenant {
    pub(crate) admin: String,
    pub(crate) app: String,
}

pub(crate) async fn tenant(app: &TestApp, name: &str) -> Tenant {
    let (_, admin) = app.create_tenant(name).await;
    let (_, app_key) = app.issue_key(&admin, "APP").await;
    Tenant {
        admin,
        app: app_key,
    }
}

async fn start(app: &TestApp, key: &str, user: &str) -> Value {
    let a = app
        .gql(Some(key), START, json!({ "u": user, "l": "alice@acme" }))
        .await;
    a.data()["startTotpEnrollment"].clone()
}

/// Enrolls `user` and returns its authenticator and recovery codes.
pub(crate) async fn enroll(app: &TestApp, key: &str, user: &str) -> (App, Vec<String>) {
    let enrollment = start(app, key, user).await;
    let mut authenticator = App::from_uri(enrollment["otpauthUri"].as_str().unwrap());
    let code = authenticator.next_code();
    let a = app
        .gql(Some(key), CONFIRM, json!({ "u": user, "c": code }))
        .await;
    let codes = a.data()["confirmTotpEnrollment"]["codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_owned())
        .collect();
    (authenticator, codes)
}

pub(crate) async fn verify(
    app: &TestApp,
    key: &str,
    user: &str,
    method: &str,
    code: &str,
) -> Answer {
    app.gql(
        Some(key),
        VERIFY,
        json!({ "u": user, "m": method, "c": code }),
    )
    .await
}

pub(crate) async fn status(app: &TestApp, key: &str, user: &str) -> Value {
    app.gql(Some(key), STATUS, json!({ "u": user }))
        .await
        .data()["user"]
        .clone()
}

fn decode_png_qr(data_uri: &str) -> String {
    use base64::Engine;
    let b64 = data_uri
        .strip_prefix("data:image/png;base64,")
        .expect("a PNG data URI");
    let png = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .unwrap();
    let img = image::load_from_memory(&png).unwrap().to_luma8();
    let mut prepared = rqrr::PreparedImage::prepare(img);
    let grids = prepared.detect_grids();
    assert_eq!(grids.len(), 1, "one QR code in the image");
    grids[0].decode().unwrap().1
}

#[tokio::test]
async fn enrollment_gives_a_secret_a_uri_and_qr_codes_of_that_uri() {
    let app = spawn_app().await;
    let t = tenant(&app, "Acme Corp").await;
    let e = start(&app, &t.app, "alice").await;
    let secret = e["secret"].as_str().unwrap();
    assert_eq!(secret.len(), 32, "160 bits in base32");
    assert!(secret
        .chars()
        .all(|c| c.is_ascii_uppercase() || ('2'..='7').contains(&c)));
    let uri = e["otpauthUri"].as_str().unwrap();
    assert!(uri.starts_with("otpauth://totp/"), "{uri}");
    assert!(uri.contains(&format!("secret={secret}")), "{uri}");
    assert!(uri.contains("issuer=Acme%20Corp"), "{uri}");
    assert!(uri.contains("alice%40acme"), "{uri}");
    assert_eq!(
        (
            e["algorithm"].as_str(),
            e["digits"].as_i64(),
            e["period"].as_i64()
        ),
        (Some("SHA1"), Some(6), Some(30))
    );
    assert_eq!(decode_png_qr(e["qrPng"].as_str().unwrap()), uri);
    let svg = e["qrSvg"].as_str().unwrap();
    assert!(svg.starts_with("<svg") && svg.contains("viewBox"), "{svg}");

    // Restarting replaces the secret.
    let again = start(&app, &t.app, "alice").await;
    assert_ne!(again["secret"], e["secret"]);
}

#[tokio::test]
async fn policy_selects_algorithm_and_digits() {
    let app = spawn_app().await;
    let t = tenant(&app, "Acme").await;
    app.gql(
        Some(&t.admin),
        "mutation { setPolicy(input: { totpAlgorithm: \"SHA512\", totpDigits: 8 }) { totpDigits } }",
        json!({}),
    )
    .await
    .data();
    let e = start(&app, &t.app, "bob").await;
    assert_eq!(
        (e["algorithm"].as_str(), e["digits"].as_i64()),
        (Some("SHA512"), Some(8))
    );
    let uri = e["otpauthUri"].as_str().unwrap();
    assert!(
        uri.contains("algorithm=SHA512") && uri.contains("digits=8"),
        "{uri}"
    );
    let mut authenticator = App::from_uri(uri);
    let code = authenticator.next_code();
    assert_eq!(code.len(), 8);
    let a = app
        .gql(Some(&t.app), CONFIRM, json!({ "u": "bob", "c": code }))
        .await;
    assert_eq!(
        a.data()["confirmTotpEnrollment"]["codes"]
            .as_array()
            .unwrap()
            .len(),
        10
    );
}

#[tokio::test]
async fn a_pending_enrollment_does_nothing_until_confirmed() {
    let app = spawn_app().await;
    let t = tenant(&app, "Acme").await;
    assert!(status(&app, &t.app, "carol").await.is_null(), "never seen");
    let first = start(&app, &t.app, "carol").await;
    let s = status(&app, &t.app, "carol").await;
    assert_eq!(
        (s["enabled"].as_bool(), s["totpPending"].as_bool()),
        (Some(false), Some(true))
    );
    let mut old = App::from_uri(first["otpauthUri"].as_str().unwrap());
    let a = verify(&app, &t.app, "carol", "TOTP", &old.next_code()).await;
    assert_eq!(
        a.error_code(),
        "NOT_FOUND",
        "a pending factor cannot sign in"
    );

    // A restart replaces the pending secret: the first one's codes no longer confirm.
    let second = start(&app, &t.app, "carol").await;
    let a = app
        .gql(
            Some(&t.app),
            CONFIRM,
            json!({ "u": "carol", "c": old.next_code() }),
        )
        .await;
    assert_eq!(a.error_code(), "INVALID_CODE");
    assert_eq!(a.body["errors"][0]["extensions"]["remainingAttempts"], 9);
    let mut new = App::from_uri(second["otpauthUri"].as_str().unwrap());
    let a = app
        .gql(
            Some(&t.app),
            CONFIRM,
            json!({ "u": "carol", "c": new.next_code() }),
        )
        .await;
    a.data();
    let s = status(&app, &t.app, "carol").await;
    assert_eq!(s["enabled"], true);
    assert_eq!(s["methods"], json!(["TOTP", "RECOVERY_CODE"]));
    assert_eq!(s["recoveryCodesRemaining"], 10);
}

#[tokio::test]
async fn sign_in_with_totp_and_recovery_codes() {
    let app = spawn_app().await;
    let t = tenant(&app, "Acme").await;
    let (mut authenticator, codes) = enroll(&app, &t.app, "dave").await;
    assert_eq!(codes.len(), 10);
    for c in &codes {
        assert_eq!(c.len(), 19, "four groups of four: {c}");
        assert_eq!(c.split('-').count(), 4);
    }

    let code = authenticator.next_code();
    let a = verify(&app, &t.app, "dave", "TOTP", &code).await;
    assert_eq!(a.data()["verify"]["method"], "TOTP");
    assert_eq!(a.data()["verify"]["recoveryCodesRemaining"], 10);
    // The same code (same time step) never works twice.
    let a = verify(&app, &t.app, "dave", "TOTP", &code).await;
    assert_eq!(a.error_code(), "INVALID_CODE");

    // Recovery codes: any order, any case, with or without separators, each once.
    let messy = codes[7].to_uppercase().replace('-', " ");
    let a = verify(&app, &t.app, "dave", "RECOVERY_CODE", &messy).await;
    assert_eq!(a.data()["verify"]["recoveryCodesRemaining"], 9);
    let a = verify(&app, &t.app, "dave", "RECOVERY_CODE", &codes[7]).await;
    assert_eq!(a.error_code(), "INVALID_CODE");
    let a = verify(
        &app,
        &t.app,
        "dave",
        "RECOVERY_CODE",
        &codes[2].replace('-', ""),
    )
    .await;
    assert_eq!(a.data()["verify"]["recoveryCodesRemaining"], 8);

    let s = status(&app, &t.app, "dave").await;
    assert!(s["lastVerifiedAt"].is_string());
    assert_eq!(s["recoveryCodesRemaining"], 8);
    assert_eq!(
        app.count_events_like("%/user/dave", "RecoveryCodeUsed")
            .await,
        2
    );
}

#[tokio::test]
async fn regenerating_recovery_codes_needs_a_factor_and_kills_the_old_ones() {
    let app = spawn_app().await;
    let t = tenant(&app, "Acme").await;
    let (mut authenticator, old) = enroll(&app, &t.app, "erin").await;
    let regen = "mutation($u: ID!, $m: Method!, $c: String!) { regenerateRecoveryCodes(userId: $u, method: $m, code: $c) { codes } }";
    let a = app
        .gql(
            Some(&t.app),
            regen,
            json!({ "u": "erin", "m": "TOTP", "c": authenticator.wrong_code() }),
        )
        .await;
    assert_eq!(a.error_code(), "INVALID_CODE");
    let a = app
        .gql(
            Some(&t.app),
            regen,
            json!({ "u": "erin", "m": "TOTP", "c": authenticator.next_code() }),
        )
        .await;
    let new: Vec<String> = a.data()["regenerateRecoveryCodes"]["codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(new.len(), 10);
    assert!(new.iter().all(|c| !old.contains(c)));
    for c in &old[..3] {
        let a = verify(&app, &t.app, "erin", "RECOVERY_CODE", c).await;
        assert_eq!(a.error_code(), "INVALID_CODE", "an old code still works");
    }
    let a = verify(&app, &t.app, "erin", "RECOVERY_CODE", &new[0]).await;
    assert_eq!(a.data()["verify"]["recoveryCodesRemaining"], 9);
}

#[tokio::test]
async fn parallel_verifies_of_one_code_succeed_exactly_once() {
    let app = spawn_app().await;
    let t = tenant(&app, "Acme").await;
    let (mut authenticator, _) = enroll(&app, &t.app, "frank").await;
    let code = authenticator.next_code();
    let answers = join_all((0..8).map(|_| verify(&app, &t.app, "frank", "TOTP", &code))).await;
    let ok = answers
        .iter()
        .filter(|a| a.body["errors"].is_null())
        .count();
    assert_eq!(ok, 1, "{answers:?}");
    for a in answers.iter().filter(|a| !a.body["errors"].is_null()) {
        assert_eq!(a.error_code(), "INVALID_CODE");
    }
    let accepted: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM events WHERE event_type = 'CodeVerified' AND aggregate_id LIKE '%/user/frank'",
    )
    .fetch_one(&app.db)
    .await
    .unwrap();
    assert_eq!(accepted, 1);
}

#[tokio::test]
async fn ten_failures_lock_the_user_until_an_admin_clears_it() {
    let app = spawn_app().await;
    let t = tenant(&app, "Acme").await;
    let (mut authenticator, codes) = enroll(&app, &t.app, "gina").await;
    for i in 1..=9u32 {
        // Failures count across methods.
        let (method, code) = if i % 2 == 0 {
            ("TOTP", authenticator.wrong_code())
        } else {
            ("RECOVERY_CODE", "aaaa-bbbb-cccc-dddd".to_owned())
        };
        let a = verify(&app, &t.app, "gina", method, &code).await;
        assert_eq!(a.error_code(), "INVALID_CODE");
        assert_eq!(
            a.body["errors"][0]["extensions"]["remainingAttempts"],
            10 - i
        );
    }
    let a = verify(&app, &t.app, "gina", "TOTP", &authenticator.wrong_code()).await;
    assert_eq!(a.error_code(), "LOCKED_OUT");
    let retry = a.body["errors"][0]["extensions"]["retryAfterSeconds"]
        .as_i64()
        .unwrap();
    assert!((290..=300).contains(&retry), "{retry}");

    // While locked, even a valid code or recovery code is refused, and not counted.
    let a = verify(&app, &t.app, "gina", "TOTP", &authenticator.next_code()).await;
    assert_eq!(a.error_code(), "LOCKED_OUT");
    let a = verify(&app, &t.app, "gina", "RECOVERY_CODE", &codes[0]).await;
    assert_eq!(a.error_code(), "LOCKED_OUT");
    let s = status(&app, &t.app, "gina").await;
    assert!(s["lockedUntil"].is_string());

    // Only an admin, with a reason, can end it early.
    let clear =
        "mutation($u: ID!, $r: String!) { clearLockout(userId: $u, reason: $r) { lockedUntil } }";
    let a = app
        .gql(Some(&t.app), clear, json!({ "u": "gina", "r": "x" }))
        .await;
    assert_eq!(a.error_code(), "FORBIDDEN");
    let a = app
        .gql(Some(&t.admin), clear, json!({ "u": "gina", "r": "  " }))
        .await;
    assert_eq!(a.error_code(), "INVALID_INPUT");
    let a = app
        .gql(
            Some(&t.admin),
            clear,
            json!({ "u": "gina", "r": "verified by phone" }),
        )
        .await;
    assert!(a.data()["clearLockout"]["lockedUntil"].is_null());
    let a = verify(&app, &t.app, "gina", "RECOVERY_CODE", &codes[0]).await;
    assert_eq!(a.data()["verify"]["recoveryCodesRemaining"], 9);

    let types: Vec<String> = sqlx::query_scalar(
        "SELECT event_type FROM events WHERE aggregate_id LIKE '%/user/gina' ORDER BY sequence",
    )
    .fetch_all(&app.db)
    .await
    .unwrap();
    assert_eq!(
        types.iter().filter(|t| *t == "VerificationFailed").count(),
        10
    );
    assert_eq!(types.iter().filter(|t| *t == "UserLockedOut").count(), 1);
    assert!(types.contains(&"LockoutCleared".to_owned()));
    assert_eq!(types.last().map(String::as_str), Some("RecoveryCodeUsed"));
}

#[tokio::test]
async fn disabling_needs_a_factor_and_is_refused_while_enforced() {
    let app = spawn_app().await;
    let t = tenant(&app, "Acme").await;
    let (mut authenticator, codes) = enroll(&app, &t.app, "hank").await;
    let disable = "mutation($u: ID!, $m: Method!, $c: String!) { disableTwoFactor(userId: $u, method: $m, code: $c) { enabled methods recoveryCodesRemaining } }";
    app.gql(
        Some(&t.admin),
        "mutation { setPolicy(input: { enforceTwoFactor: true }) { enforceTwoFactor } }",
        json!({}),
    )
    .await
    .data();
    let a = app
        .gql(
            Some(&t.app),
            disable,
            json!({ "u": "hank", "m": "TOTP", "c": authenticator.peek_code() }),
        )
        .await;
    assert_eq!(
        a.error_code(),
        "POLICY_VIOLATION",
        "refused even with a valid code"
    );
    app.gql(
        Some(&t.admin),
        "mutation { setPolicy(input: { enforceTwoFactor: false }) { enforceTwoFactor } }",
        json!({}),
    )
    .await
    .data();
    let a = app
        .gql(
            Some(&t.app),
            disable,
            json!({ "u": "hank", "m": "RECOVERY_CODE", "c": "nope-nope-nope-nope" }),
        )
        .await;
    assert_eq!(a.error_code(), "INVALID_CODE");
    let a = app
        .gql(
            Some(&t.app),
            disable,
            json!({ "u": "hank", "m": "RECOVERY_CODE", "c": codes[4] }),
        )
        .await;
    assert_eq!(
        a.data()["disableTwoFactor"],
        json!({ "enabled": false, "methods": [], "recoveryCodesRemaining": 0 })
    );
    let a = verify(&app, &t.app, "hank", "TOTP", &authenticator.next_code()).await;
    assert_eq!(a.error_code(), "NOT_FOUND");
    assert_eq!(
        app.count_events_like("%/user/hank", "TwoFactorDisabled")
            .await,
        1
    );
}

#[tokio::test]
async fn an_admin_reset_removes_everything_in_one_audited_event() {
    let app = spawn_app().await;
    let t = tenant(&app, "Acme").await;
    let (mut authenticator, codes) = enroll(&app, &t.app, "ivy").await;
    let reset = "mutation($u: ID!, $r: String!) { resetTwoFactor(userId: $u, reason: $r) { enabled methods recoveryCodesRemaining totpPending } }";
    let a = app
        .gql(
            Some(&t.app),
            reset,
            json!({ "u": "ivy", "r": "lost phone" }),
        )
        .await;
    assert_eq!(a.error_code(), "FORBIDDEN");
    let a = app
        .gql(Some(&t.admin), reset, json!({ "u": "ivy", "r": "" }))
        .await;
    assert_eq!(a.error_code(), "INVALID_INPUT");
    let a = app
        .gql(Some(&t.admin), reset, json!({ "u": "nobody", "r": "typo" }))
        .await;
    assert_eq!(a.error_code(), "NOT_FOUND");
    let a = app
        .gql(
            Some(&t.admin),
            reset,
            json!({ "u": "ivy", "r": "lost phone, ticket 42" }),
        )
        .await;
    assert_eq!(
        a.data()["resetTwoFactor"],
        json!({ "enabled": false, "methods": [], "recoveryCodesRemaining": 0, "totpPending": false })
    );
    assert_eq!(
        verify(&app, &t.app, "ivy", "TOTP", &authenticator.next_code())
            .await
            .error_code(),
        "NOT_FOUND"
    );
    assert_eq!(
        verify(&app, &t.app, "ivy", "RECOVERY_CODE", &codes[0])
            .await
            .error_code(),
        "NOT_FOUND"
    );

    let (payload, metadata): (Value, Value) =
        sqlx::query_as("SELECT payload, metadata FROM events WHERE event_type = 'TwoFactorReset'")
            .fetch_one(&app.db)
            .await
            .unwrap();
    let reset = &payload["TwoFactorReset"];
    assert_eq!(reset["reason"], "lost phone, ticket 42");
    assert_eq!(reset["by"].as_str().unwrap(), &t.admin[4..20]);
    assert!(metadata["actor"].as_str().unwrap().contains("ADMIN"));
    assert_eq!(
        app.count_events_like("%/user/ivy", "TwoFactorReset").await,
        1
    );
}

#[tokio::test]
async fn users_of_one_tenant_are_invisible_to_another() {
    let app = spawn_app().await;
    let a_tenant = tenant(&app, "Alpha").await;
    let b_tenant = tenant(&app, "Beta").await;
    let (mut authenticator, codes) = enroll(&app, &a_tenant.app, "same-id").await;
    assert!(status(&app, &b_tenant.app, "same-id").await.is_null());
    let a = verify(
        &app,
        &b_tenant.app,
        "same-id",
        "TOTP",
        &authenticator.next_code(),
    )
    .await;
    assert_eq!(a.error_code(), "NOT_FOUND");
    let a = verify(&app, &b_tenant.app, "same-id", "RECOVERY_CODE", &codes[0]).await;
    assert_eq!(a.error_code(), "NOT_FOUND");
    let a = app
        .gql(
            Some(&b_tenant.admin),
            "mutation { resetTwoFactor(userId: \"same-id\", reason: \"attack\") { enabled } }",
            json!({}),
        )
        .await;
    assert_eq!(a.error_code(), "NOT_FOUND");
    assert_eq!(
        status(&app, &a_tenant.app, "same-id").await["enabled"],
        true
    );
}

#[tokio::test]
async fn roles_and_bad_input_on_user_operations() {
    let app = spawn_app().await;
    let t = tenant(&app, "Acme").await;
    let (_, auditor) = app.issue_key(&t.admin, "AUDITOR").await;
    for key in [&t.admin, &auditor] {
        let a = app
            .gql(Some(key), START, json!({ "u": "x", "l": null }))
            .await;
        assert_eq!(a.error_code(), "FORBIDDEN");
    }
    let a = app.gql(Some(&auditor), STATUS, json!({ "u": "x" })).await;
    assert_eq!(a.error_code(), "FORBIDDEN");
    for user in ["", &"u".repeat(129), "bad\nid"] {
        let a = app
            .gql(Some(&t.app), START, json!({ "u": user, "l": null }))
            .await;
        assert_eq!(a.error_code(), "INVALID_INPUT", "{user:?}");
    }
    let a = app
        .gql(
            Some(&t.app),
            START,
            json!({ "u": "ok", "l": "l".repeat(101) }),
        )
        .await;
    assert_eq!(a.error_code(), "INVALID_INPUT");
    // The longest user id enrolls without a label (the label is the id, shortened).
    let a = app
        .gql(
            Some(&t.app),
            START,
            json!({ "u": "u".repeat(128), "l": null }),
        )
        .await;
    assert!(a.data()["startTotpEnrollment"]["otpauthUri"].is_string());
    let a = app
        .gql(Some(&t.app), CONFIRM, json!({ "u": "ok", "c": "123456" }))
        .await;
    assert_eq!(a.error_code(), "CONFLICT", "nothing to confirm");
    let a = verify(&app, &t.app, "ok", "CARRIER_PIGEON", "1").await;
    assert_eq!(a.error_code(), "INVALID_INPUT");
}

#[tokio::test]
async fn a_method_the_policy_no_longer_allows_cannot_be_used() {
    let app = spawn_app().await;
    let t = tenant(&app, "Acme").await;
    let (mut authenticator, codes) = enroll(&app, &t.app, "jo").await;
    app.gql(
        Some(&t.admin),
        "mutation { setPolicy(input: { allowedMethods: [EMAIL, SMS] }) { allowedMethods } }",
        json!({}),
    )
    .await
    .data();
    let a = verify(&app, &t.app, "jo", "TOTP", &authenticator.peek_code()).await;
    assert_eq!(a.error_code(), "POLICY_VIOLATION");
    let a = verify(&app, &t.app, "jo", "RECOVERY_CODE", &codes[0]).await;
    assert_eq!(a.error_code(), "POLICY_VIOLATION");
    let a = app
        .gql(Some(&t.app), START, json!({ "u": "kim", "l": null }))
        .await;
    assert_eq!(a.error_code(), "POLICY_VIOLATION");
    // Nothing was checked or counted.
    assert_eq!(
        app.count_events_like("%/user/jo", "VerificationFailed")
            .await,
        0
    );
    app.gql(
        Some(&t.admin),
        "mutation { setPolicy(input: { allowedMethods: [TOTP, RECOVERY_CODE] }) { allowedMethods } }",
        json!({}),
    )
    .await
    .data();
    let a = verify(&app, &t.app, "jo", "TOTP", &authenticator.next_code()).await;
    assert_eq!(a.data()["verify"]["method"], "TOTP");
}

#[tokio::test]
async fn a_label_too_long_for_a_qr_code_is_invalid_input_not_internal() {
    let app = twofold_tests::spawn_app().await;
    // Each emoji takes 12 characters of the percent-encoded URI: 100 in the organisation's name
    // and 100 in the label do not fit in any QR code.
    let (_, admin) = app.create_tenant(&"😀".repeat(100)).await;
    let (_, key) = app.issue_key(&admin, "APP").await;
    let a = app
        .gql(
            Some(&key),
            START,
            serde_json::json!({ "u": "u1", "l": "😀".repeat(100) }),
        )
        .await;
    assert_eq!(a.error_code(), "INVALID_INPUT", "{}", a.body);
    assert!(a.error_message().contains("too long for a QR code"));
    assert!(
        app.gql(
            Some(&key),
            "{ user(userId: \"u1\") { methods } }",
            serde_json::json!({})
        )
        .await
        .data()["user"]
            .is_null(),
        "nothing was recorded"
    );
}
