//! The hosted flows over HTTP, as a browser without JavaScript drives them: enrolling an
//! authenticator app with recovery codes, signing in with a code or a recovery code and trusting
//! the browser, and the settings (new recovery codes, turning 2FA off). The pages call the API's
//! use-cases, so each check here is one the API's rules make.

use serde_json::json;
use twofold_tests::TestApp;

use super::links::{redeem, tenant, CREATE, RETURN};
use crate::console::{Answer, Browser};
use crate::sign_in::Acme;

const VERIFY: &str =
    "mutation($u: ID!, $m: Method!, $c: String!) { verify(userId: $u, method: $m, code: $c) { method } }";
const REQUIREMENT: &str = "query($u: ID!, $d: String) { signInRequirement(userId: $u, deviceToken: $d) { required reason } }";

/// Opens a new link for `user` and `purpose`: the browser on its first page.
pub(crate) async fn visit(
    app: &TestApp,
    acme: &Acme,
    user: &str,
    purpose: &str,
) -> (Browser, Answer, String) {
    let made = app
        .gql(
            Some(&acme.app),
            CREATE,
            json!({ "u": user, "p": purpose, "r": RETURN }),
        )
        .await;
    let made = &made.data()["createUserSession"];
    let url = made["url"].as_str().unwrap();
    let mut browser = Browser::new(app);
    let opened = browser.get(url.strip_prefix(&app.address).unwrap()).await;
    assert_eq!(opened.status, 303, "{}", opened.body);
    let page = browser.get("/hosted").await;
    assert_eq!(page.status, 200, "{}", page.body);
    (browser, page, made["id"].as_str().unwrap().to_owned())
}

/// The code an app holding `key` shows `offset` steps from now.
pub(crate) fn code(key: &str, offset: i64) -> String {
    let totp =
        totp_rs::Totp::from_url(format!("otpauth://totp/Acme:u?secret={key}&issuer=Acme")).unwrap();
    let now = chrono::Utc::now().timestamp() as u64;
    totp.generate((now / 30).saturating_add_signed(offset) * 30)
        .to_string()
}

/// The key the enrollment page shows, as the copy button copies it.
pub(crate) fn key_of(page: &Answer) -> String {
    let marker = "id=\"totp-key-plain\" type=\"hidden\" value=\"";
    let start = page
        .body
        .find(marker)
        .unwrap_or_else(|| panic!("no key in {}", page.body))
        + marker.len();
    page.body[start..].split('"').next().unwrap().to_owned()
}

/// Every `data-recovery-code` on the page.
pub(crate) fn recovery_codes(page: &Answer) -> Vec<String> {
    page.body
        .split("<code data-recovery-code>")
        .skip(1)
        .map(|rest| rest.split('<').next().unwrap().to_owned())
        .collect()
}

/// The result code of a redirect back to the tenant.
pub(crate) fn result_of(back: &Answer) -> String {
    assert_eq!(back.status, 303, "{}", back.body);
    back.location()
        .strip_prefix(&format!("{RETURN}&twofold_result="))
        .unwrap_or_else(|| panic!("returned to {}", back.location()))
        .to_owned()
}

/// Enrolls `user`'s authenticator app on the pages: its key and recovery codes.
pub(crate) async fn enroll(app: &TestApp, acme: &Acme, user: &str) -> (String, Vec<String>) {
    let (mut browser, page, id) = visit(app, acme, user, "ENROLL").await;
    let csrf = page.field("csrf");
    let started = browser
        .post("/hosted/enroll/totp", &[("csrf", &csrf)])
        .await;
    assert_eq!(started.status, 200, "{}", started.body);
    let key = key_of(&started);
    let confirmed = browser
        .post(
            "/hosted/enroll/totp/confirm",
            &[("csrf", &csrf), ("code", &code(&key, 0))],
        )
        .await;
    let codes = recovery_codes(&confirmed);
    let back = browser
        .post(
            "/hosted/done",
            &[
                ("csrf", &csrf),
                ("enrolled", &confirmed.field("enrolled")),
                ("saved", "on"),
            ],
        )
        .await;
    let result = redeem(app, &acme.app, &result_of(&back), &id).await;
    assert_eq!(result.data()["redeemUserSession"]["completed"], true);
    (key, codes)
}

#[tokio::test]
async fn enrolling_shows_the_key_then_the_recovery_codes_once_and_returns_a_result() {
    let app = twofold_tests::spawn_app().await;
    let acme = tenant(&app, "Acme").await;
    let (mut browser, page, id) = visit(&app, &acme, "nino", "ENROLL").await;
    assert!(page.body.contains("data-method=\"TOTP\""), "{}", page.body);
    let csrf = page.field("csrf");
    let started = browser
        .post("/hosted/enroll/totp", &[("csrf", &csrf)])
        .await;
    assert_eq!(started.status, 200, "{}", started.body);
    assert!(started
        .body
        .contains("<img data-qr src=\"data:image/png;base64,"));
    let key = key_of(&started);
    assert_eq!(key.len(), 32, "160 bits in base32");
    let grouped: Vec<&str> = started
        .body
        .split("data-key data-secret")
        .next()
        .unwrap()
        .rsplit("value=\"")
        .next()
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .split(' ')
        .collect();
    assert_eq!(grouped.len(), 8, "the key in groups of four");
    assert_eq!(grouped.concat(), key);
    for hook in [
        "name=\"code\"",
        "autocomplete=\"one-time-code\"",
        "inputmode=\"numeric\"",
    ] {
        assert!(started.body.contains(hook), "{hook}");
    }

    // The confirmation form sends the code and its token only: the QR image is larger than a
    // form may be for a tenant with a long non-Latin name.
    let form = started
        .body
        .split("action=\"/hosted/enroll/totp/confirm\"")
        .nth(1)
        .unwrap()
        .split("</form>")
        .next()
        .unwrap();
    assert_eq!(form.matches("name=\"").count(), 2, "{form}");

    // A wrong code: told so, with a way to a new QR code, and nothing enrolled.
    let wrong = browser
        .post(
            "/hosted/enroll/totp/confirm",
            &[("csrf", &csrf), ("code", &code(&key, 9))],
        )
        .await;
    assert_eq!(wrong.status, 422, "{}", wrong.body);
    assert!(
        wrong.body.contains("That code isn&#39;t right")
            || wrong.body.contains("That code isn't right"),
        "{}",
        wrong.body
    );
    assert!(wrong.body.contains("data-again"));
    let still = app
        .gql(Some(&acme.app), REQUIREMENT, json!({ "u": "nino" }))
        .await;
    assert_eq!(still.data()["signInRequirement"]["required"], false);

    let confirmed = browser
        .post(
            "/hosted/enroll/totp/confirm",
            &[("csrf", &csrf), ("code", &code(&key, 0))],
        )
        .await;
    assert_eq!(confirmed.status, 200, "{}", confirmed.body);
    assert_eq!(
        confirmed.headers["cache-control"], "no-store",
        "shown once: no cache may keep them"
    );
    let codes = recovery_codes(&confirmed);
    assert_eq!(codes.len(), 10, "{}", confirmed.body);
    assert!(confirmed.body.contains("download=\"recovery-codes.txt\""));
    assert!(confirmed.body.contains("name=\"saved\" required"));

    // Going on without ticking the box is refused (a browser does not send the form).
    let unsaved = browser
        .post(
            "/hosted/done",
            &[("csrf", &csrf), ("enrolled", &confirmed.field("enrolled"))],
        )
        .await;
    assert_eq!(unsaved.status, 422, "{}", unsaved.body);
    let back = browser
        .post(
            "/hosted/done",
            &[
                ("csrf", &csrf),
                ("enrolled", &confirmed.field("enrolled")),
                ("saved", "on"),
            ],
        )
        .await;
    let result = redeem(&app, &acme.app, &result_of(&back), &id).await;
    let r = &result.data()["redeemUserSession"];
    assert_eq!(r["userId"], "nino");
    assert_eq!(r["completed"], true);
    assert_eq!(r["method"], "TOTP");
    assert_eq!(r["deviceToken"], serde_json::Value::Null);

    // The user now needs the app to sign in, and the codes work with the API.
    let needed = app
        .gql(Some(&acme.app), REQUIREMENT, json!({ "u": "nino" }))
        .await;
    assert_eq!(needed.data()["signInRequirement"]["required"], true);
    let used = app
        .gql(
            Some(&acme.app),
            VERIFY,
            json!({ "u": "nino", "m": "RECOVERY_CODE", "c": codes[0] }),
        )
        .await;
    assert_eq!(used.data()["verify"]["method"], "RECOVERY_CODE");
}

#[tokio::test]
async fn signing_in_with_a_code_and_trusting_the_browser_gives_the_tenant_a_device_token() {
    let app = twofold_tests::spawn_app().await;
    let acme = tenant(&app, "Acme").await;
    app.gql(
        Some(&acme.admin),
        "mutation { setPolicy(input: { trustedDeviceDays: 30 }) { trustedDeviceDays } }",
        json!({}),
    )
    .await
    .data();
    let (key, _) = enroll(&app, &acme, "nino").await;
    let (mut browser, page, id) = visit(&app, &acme, "nino", "VERIFY").await;
    assert!(
        page.body.contains("Trust this browser for 30 days"),
        "{}",
        page.body
    );
    let csrf = page.field("csrf");

    let wrong = browser
        .post(
            "/hosted/verify",
            &[
                ("csrf", &csrf),
                ("method", "TOTP"),
                ("code", &code(&key, 9)),
                ("trust", "on"),
            ],
        )
        .await;
    assert_eq!(wrong.status, 422, "{}", wrong.body);
    assert!(wrong.body.contains("data-error"));

    let back = browser
        .post(
            "/hosted/verify",
            &[
                ("csrf", &csrf),
                ("method", "TOTP"),
                ("code", &code(&key, 1)),
                ("trust", "on"),
            ],
        )
        .await;
    let code_back = result_of(&back);
    let result = redeem(&app, &acme.app, &code_back, &id).await;
    let r = &result.data()["redeemUserSession"];
    assert_eq!(r["completed"], true);
    assert_eq!(r["method"], "TOTP");
    let token = r["deviceToken"]
        .as_str()
        .expect("a device token")
        .to_owned();

    let next = app
        .gql(
            Some(&acme.app),
            REQUIREMENT,
            json!({ "u": "nino", "d": token }),
        )
        .await;
    assert_eq!(next.data()["signInRequirement"]["reason"], "TRUSTED_DEVICE");
    assert_eq!(next.data()["signInRequirement"]["required"], false);

    // The result, and so the token, is given once; the stored copy is gone.
    let again = redeem(&app, &acme.app, &code_back, &id).await;
    assert_eq!(again.error_code(), "INVALID_INPUT");
    let pool = sqlx::PgPool::connect(&app.database_url).await.unwrap();
    let left: i64 =
        sqlx::query_scalar("SELECT count(*) FROM hosted_results WHERE device_token IS NOT NULL")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(left, 0);
}

#[tokio::test]
async fn a_recovery_code_signs_in_and_new_codes_from_the_settings_replace_the_old() {
    let app = twofold_tests::spawn_app().await;
    let acme = tenant(&app, "Acme").await;
    app.gql(
        Some(&acme.admin),
        "mutation { setPolicy(input: { trustedDeviceDays: 0 }) { trustedDeviceDays } }",
        json!({}),
    )
    .await
    .data();
    let (key, old) = enroll(&app, &acme, "nino").await;

    let (mut browser, page, id) = visit(&app, &acme, "nino", "VERIFY").await;
    assert!(page.body.contains("data-method=\"RECOVERY_CODE\""));
    assert!(
        !page.body.contains("name=\"trust\""),
        "trusted devices are off"
    );
    let csrf = page.field("csrf");
    let back = browser
        .post(
            "/hosted/verify",
            &[
                ("csrf", &csrf),
                ("method", "RECOVERY_CODE"),
                ("code", &old[0]),
            ],
        )
        .await;
    let result = redeem(&app, &acme.app, &result_of(&back), &id).await;
    assert_eq!(
        result.data()["redeemUserSession"]["method"],
        "RECOVERY_CODE"
    );

    let (mut browser, page, _) = visit(&app, &acme, "nino", "MANAGE").await;
    assert!(page.body.contains("data-factor=\"TOTP\""), "{}", page.body);
    assert!(page.body.contains("data-recovery-remaining=\"9\""));
    let csrf = page.field("csrf");
    let wrong = browser
        .post(
            "/hosted/manage",
            &[
                ("csrf", &csrf),
                ("action", "regenerate"),
                ("proof", "TOTP"),
                ("code", &code(&key, 9)),
            ],
        )
        .await;
    assert_eq!(wrong.status, 422, "{}", wrong.body);
    assert!(recovery_codes(&wrong).is_empty());
    let fresh = browser
        .post(
            "/hosted/manage",
            &[
                ("csrf", &csrf),
                ("action", "regenerate"),
                ("proof", "TOTP"),
                ("code", &code(&key, 1)),
            ],
        )
        .await;
    let new = recovery_codes(&fresh);
    assert_eq!(new.len(), 10, "{}", fresh.body);
    assert!(
        fresh.body.contains("action=\"/hosted\""),
        "back to the settings"
    );

    let dead = app
        .gql(
            Some(&acme.app),
            VERIFY,
            json!({ "u": "nino", "m": "RECOVERY_CODE", "c": old[1] }),
        )
        .await;
    assert_eq!(dead.error_code(), "INVALID_CODE");
    let alive = app
        .gql(
            Some(&acme.app),
            VERIFY,
            json!({ "u": "nino", "m": "RECOVERY_CODE", "c": new[0] }),
        )
        .await;
    assert_eq!(alive.data()["verify"]["method"], "RECOVERY_CODE");
}

#[tokio::test]
async fn turning_2fa_off_is_refused_with_the_reason_while_the_organisation_enforces_it() {
    let app = twofold_tests::spawn_app().await;
    let acme = tenant(&app, "Acme").await;
    let (key, _) = enroll(&app, &acme, "nino").await;
    let enforce = |on: bool| {
        format!(
            "mutation {{ setPolicy(input: {{ enforceTwoFactor: {on} }}) {{ enforceTwoFactor }} }}"
        )
    };
    app.gql(Some(&acme.admin), &enforce(true), json!({}))
        .await
        .data();

    let (mut browser, page, _) = visit(&app, &acme, "nino", "MANAGE").await;
    assert!(page.body.contains("data-disable-refused"), "{}", page.body);
    assert!(!page.body.contains("data-action=\"disable\""));
    // Posted anyway: refused with the reason, and still enrolled.
    let csrf = page.field("csrf");
    let refused = browser
        .post(
            "/hosted/manage",
            &[
                ("csrf", &csrf),
                ("action", "disable"),
                ("proof", "TOTP"),
                ("code", &code(&key, 1)),
            ],
        )
        .await;
    assert_eq!(refused.status, 422, "{}", refused.body);
    assert!(
        refused
            .body
            .contains("requires two-step verification for everyone"),
        "{}",
        refused.body
    );
    let still = app
        .gql(Some(&acme.app), REQUIREMENT, json!({ "u": "nino" }))
        .await;
    assert_eq!(still.data()["signInRequirement"]["required"], true);

    app.gql(Some(&acme.admin), &enforce(false), json!({}))
        .await
        .data();
    let (mut browser, page, _) = visit(&app, &acme, "nino", "MANAGE").await;
    let csrf = page.field("csrf");
    let off = browser
        .post(
            "/hosted/manage",
            &[
                ("csrf", &csrf),
                ("action", "disable"),
                ("proof", "TOTP"),
                ("code", &code(&key, 1)),
            ],
        )
        .await;
    assert_eq!(off.status, 200, "{}", off.body);
    assert!(off.body.contains("data-no-factor"), "{}", off.body);
    let after = app
        .gql(Some(&acme.app), REQUIREMENT, json!({ "u": "nino" }))
        .await;
    assert_eq!(after.data()["signInRequirement"]["required"], false);
}

#[tokio::test]
async fn a_link_s_session_serves_only_its_own_flow() {
    let app = twofold_tests::spawn_app().await;
    let acme = tenant(&app, "Acme").await;
    let (key, _) = enroll(&app, &acme, "nino").await;
    let (mut browser, page, _) = visit(&app, &acme, "nino", "VERIFY").await;
    let csrf = page.field("csrf");
    // A sign-in ends only with a checked factor: not by "done", not by enrolling.
    for (path, form) in [
        ("/hosted/done", vec![("csrf", csrf.as_str())]),
        ("/hosted/enroll/totp", vec![("csrf", csrf.as_str())]),
        (
            "/hosted/manage",
            vec![
                ("csrf", csrf.as_str()),
                ("action", "disable"),
                ("proof", "TOTP"),
                ("code", "000000"),
            ],
        ),
    ] {
        let refused = browser.post(path, &form).await;
        assert_eq!(refused.status, 403, "{path}: {}", refused.body);
    }
    let (mut browser, page, id) = visit(&app, &acme, "nino", "ENROLL").await;
    assert!(page.body.contains("data-enrolled"), "{}", page.body);
    let csrf = page.field("csrf");
    let refused = browser
        .post(
            "/hosted/verify",
            &[
                ("csrf", &csrf),
                ("method", "TOTP"),
                ("code", &code(&key, 1)),
            ],
        )
        .await;
    assert_eq!(refused.status, 403, "{}", refused.body);
    // The session lives on; going on from "already set up" says no method: nothing was
    // enrolled or proved, whatever the form claims.
    let back = browser
        .post(
            "/hosted/done",
            &[
                ("csrf", &csrf),
                ("enrolled", &format!("TOTP.{}", "0".repeat(64))),
                ("saved", "on"),
            ],
        )
        .await;
    let result = redeem(&app, &acme.app, &result_of(&back), &id).await;
    assert_eq!(result.data()["redeemUserSession"]["completed"], true);
    assert_eq!(
        result.data()["redeemUserSession"]["method"],
        serde_json::Value::Null
    );
}
