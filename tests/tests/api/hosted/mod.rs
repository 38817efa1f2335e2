//! The hosted pages (issue 19): what a tenant sets up for them through the API.

use serde_json::json;
use twofold_tests::spawn_app;

const SET: &str = "mutation($i: PolicyInput!) { setPolicy(input: $i) { returnOrigins } }";

#[tokio::test]
async fn return_origins_are_checked_kept_as_browsers_write_them_and_read_back() {
    let app = spawn_app().await;
    let (_, admin) = app.create_tenant("Acme").await;
    let read = "{ tenant { policy { returnOrigins } } }";
    assert_eq!(
        app.gql(Some(&admin), read, json!({})).await.data()["tenant"]["policy"]["returnOrigins"],
        json!([])
    );
    let set = app
        .gql(
            Some(&admin),
            SET,
            json!({ "i": { "returnOrigins": [
                "https://App.Acme.ge/", "http://localhost:3000", "https://app.acme.ge"
            ] } }),
        )
        .await;
    let kept = json!(["https://app.acme.ge", "http://localhost:3000"]);
    assert_eq!(set.data()["setPolicy"]["returnOrigins"], kept);

    // Each refusal names the field and changes nothing.
    for bad in [
        json!(["http://app.acme.ge"]),
        json!(["https://app.acme.ge/after"]),
        json!(["https://user:pw@app.acme.ge"]),
        json!(["https://10.0.0.1"]),
        json!((0..11)
            .map(|i| format!("https://a{i}.acme.ge"))
            .collect::<Vec<_>>()),
    ] {
        let refused = app
            .gql(Some(&admin), SET, json!({ "i": { "returnOrigins": bad } }))
            .await;
        assert_eq!(refused.error_code(), "INVALID_INPUT", "{bad}");
        assert!(
            refused.body["errors"][0]["message"]
                .as_str()
                .unwrap()
                .starts_with("returnOrigins: "),
            "{}",
            refused.body
        );
    }
    assert_eq!(
        app.gql(Some(&admin), read, json!({})).await.data()["tenant"]["policy"]["returnOrigins"],
        kept
    );
    // [] empties the list.
    let emptied = app
        .gql(Some(&admin), SET, json!({ "i": { "returnOrigins": [] } }))
        .await;
    assert_eq!(emptied.data()["setPolicy"]["returnOrigins"], json!([]));
}

mod channels;
mod flows;
pub(crate) mod links;
mod manage;
mod passkeys;
mod review;
mod review2;
