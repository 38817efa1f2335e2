//! Two instances on one database, each keeping the users it worked on in memory between
//! commands (the aggregate cache): interleaved commands on one user still decide on the user's
//! latest state, whichever instance runs them.

use serde_json::json;
use twofold_tests::{spawn_app, spawn_instance_on, TestOptions};

use super::{enroll, tenant, verify};

const REQUIREMENT: &str = "query($u: ID!) { signInRequirement(userId: $u) { required } }";
const RESET: &str =
    "mutation($u: ID!, $r: String!) { resetTwoFactor(userId: $u, reason: $r) { enabled } }";

#[tokio::test]
async fn two_instances_interleaving_commands_on_one_user_decide_on_its_latest_state() {
    let a = spawn_app().await;
    let b = spawn_instance_on(
        a.database_url.clone(),
        a.secrets.clone(),
        TestOptions::default(),
    )
    .await;
    let t = tenant(&a, "Acme").await;

    // A has seen dora without a factor; B enrolls her. A's memory of her is now stale, and
    // its refusal (no factor) must not stand.
    let asked = a
        .gql(Some(&t.app), REQUIREMENT, json!({ "u": "dora" }))
        .await;
    assert_eq!(asked.data()["signInRequirement"]["required"], false);
    let (mut authenticator, codes) = enroll(&b, &t.app, "dora").await;
    let code = authenticator.next_code();
    let on_a = verify(&a, &t.app, "dora", "TOTP", &code).await;
    assert_eq!(on_a.data()["verify"]["method"], "TOTP", "{:?}", on_a.body);

    // B's memory of her (from the enrollment) does not know A accepted that step: the same
    // code is refused there, not accepted a second time.
    let on_b = verify(&b, &t.app, "dora", "TOTP", &code).await;
    assert_eq!(on_b.error_code(), "INVALID_CODE", "{:?}", on_b.body);

    // A recovery code used on B is used on A too.
    let used = verify(&b, &t.app, "dora", "RECOVERY_CODE", &codes[0]).await;
    assert_eq!(used.data()["verify"]["method"], "RECOVERY_CODE");
    let again = verify(&a, &t.app, "dora", "RECOVERY_CODE", &codes[0]).await;
    assert_eq!(again.error_code(), "INVALID_CODE", "{:?}", again.body);

    // An admin resets her on B: A, which last saw her enrolled, no longer accepts her codes.
    let reset = b
        .gql(
            Some(&t.admin),
            RESET,
            json!({ "u": "dora", "r": "lost phone" }),
        )
        .await;
    assert_eq!(reset.data()["resetTwoFactor"]["enabled"], false);
    let after = verify(&a, &t.app, "dora", "RECOVERY_CODE", &codes[1]).await;
    assert_eq!(after.error_code(), "NOT_FOUND", "{:?}", after.body);

    let accepted: Vec<String> = sqlx::query_scalar(
        "SELECT event_type FROM events WHERE aggregate_id LIKE '%/user/dora' \
         AND event_type IN ('CodeVerified', 'RecoveryCodeUsed') ORDER BY sequence",
    )
    .fetch_all(&a.db)
    .await
    .unwrap();
    assert_eq!(accepted, ["CodeVerified", "RecoveryCodeUsed"]);
}
