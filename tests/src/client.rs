//! Calling the service: GraphQL requests and their answers, and the first steps every test takes
//! (a tenant, its keys).

use serde_json::{json, Value};

use crate::TestApp;

/// A GraphQL answer: the HTTP status and the JSON body.
#[derive(Debug, Clone)]
pub struct Answer {
    /// HTTP status.
    pub status: u16,
    pub body: Value,
}

impl Answer {
    /// `data`, asserting there were no errors.
    pub fn data(&self) -> &Value {
        assert!(
            self.body.get("errors").is_none(),
            "unexpected errors: {}",
            self.body
        );
        &self.body["data"]
    }

    /// The `extensions.code` of the first error, asserting there is one.
    pub fn error_code(&self) -> &str {
        self.body["errors"][0]["extensions"]["code"]
            .as_str()
            .unwrap_or_else(|| panic!("expected an error with a code, got {}", self.body))
    }

    /// The message of the first error.
    pub fn error_message(&self) -> &str {
        self.body["errors"][0]["message"]
            .as_str()
            .unwrap_or_default()
    }
}

impl TestApp {
    /// POSTs a GraphQL query with `token` as bearer credential (none when `None`).
    pub async fn gql(&self, token: Option<&str>, query: &str, variables: Value) -> Answer {
        self.post_raw(
            token,
            serde_json::to_vec(&json!({ "query": query, "variables": variables }))
                .expect("serializable"),
        )
        .await
    }

    /// POSTs a raw body to `/graphql`.
    pub async fn post_raw(&self, token: Option<&str>, body: Vec<u8>) -> Answer {
        let mut req = self
            .client
            .post(format!("{}/graphql", self.address))
            .header("content-type", "application/json")
            .body(body);
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        let res = req.send().await.expect("request sent");
        let status = res.status().as_u16();
        let body = res.json().await.expect("JSON body");
        Answer { status, body }
    }

    /// GET on a path.
    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(format!("{}{path}", self.address))
            .send()
            .await
            .expect("request sent")
    }

    /// A raw request builder, for header-level tests.
    pub fn post(&self, path: &str) -> reqwest::RequestBuilder {
        self.client.post(format!("{}{path}", self.address))
    }

    /// Creates a tenant through the API; returns (tenant id, admin key).
    pub async fn create_tenant(&self, name: &str) -> (String, String) {
        let a = self
            .gql(
                Some(&self.operator_token),
                "mutation($n: String!) { createTenant(name: $n) { tenant { id } adminKey { secret } } }",
                json!({ "n": name }),
            )
            .await;
        let d = &a.data()["createTenant"];
        (
            d["tenant"]["id"].as_str().expect("id").to_owned(),
            d["adminKey"]["secret"].as_str().expect("secret").to_owned(),
        )
    }

    /// Issues a key with `role` using `admin`; returns (key id, secret).
    pub async fn issue_key(&self, admin: &str, role: &str) -> (String, String) {
        let a = self
            .gql(
                Some(admin),
                "mutation($r: Role!) { issueApiKey(role: $r, label: \"test\") { key { id } secret } }",
                json!({ "r": role }),
            )
            .await;
        let d = &a.data()["issueApiKey"];
        (
            d["key"]["id"].as_str().expect("id").to_owned(),
            d["secret"].as_str().expect("secret").to_owned(),
        )
    }
}
