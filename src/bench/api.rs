//! The load generator's GraphQL client, and enrollment the way a tenant's app and an
//! authenticator app would do it: start TOTP enrollment, read the `otpauth://` URI, compute the
//! current code, confirm.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, Context};
use futures::stream::{self, StreamExt, TryStreamExt};
use serde_json::{json, Value};
use totp_rs::Totp;

/// A GraphQL client of the service under test.
#[derive(Clone)]
pub struct Api {
    http: reqwest::Client,
    graphql: String,
}

/// A GraphQL answer: its data, or the first error's code and message.
pub enum Answer {
    /// `data` of a successful call.
    Data(Value),
    /// `extensions.code` and message of the first error.
    Error(String, String),
}

impl Api {
    /// A client of the service at `base` (e.g. `http://127.0.0.1:8080`), with a connection pool
    /// large enough for `concurrency` requests in flight.
    pub fn new(base: &str, concurrency: usize) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(concurrency * 2)
            .tcp_nodelay(true)
            .build()?;
        Ok(Self {
            http,
            graphql: format!("{base}/graphql"),
        })
    }

    /// Runs one GraphQL operation with a bearer key.
    pub async fn call(&self, key: &str, query: &str, variables: Value) -> anyhow::Result<Answer> {
        let body: Value = self
            .http
            .post(&self.graphql)
            .bearer_auth(key)
            .json(&json!({ "query": query, "variables": variables }))
            .send()
            .await
            .context("sending a request to the service")?
            .json()
            .await
            .context("reading the service's answer")?;
        if let Some(e) = body["errors"].get(0) {
            return Ok(Answer::Error(
                e["extensions"]["code"].as_str().unwrap_or("?").to_owned(),
                e["message"].as_str().unwrap_or_default().to_owned(),
            ));
        }
        Ok(Answer::Data(body["data"].clone()))
    }

    /// A new tenant named `name`: its id, its first ADMIN key, and an APP key issued with it.
    pub async fn create_tenant(
        &self,
        operator: &str,
        name: &str,
    ) -> anyhow::Result<(String, String, String)> {
        let text = |v: &Value| v.as_str().unwrap_or_default().to_owned();
        let created = self
            .data(
                operator,
                "mutation($n: String!) { createTenant(name: $n) { tenant { id } adminKey { secret } } }",
                json!({ "n": name }),
            )
            .await?;
        let admin = text(&created["createTenant"]["adminKey"]["secret"]);
        let issued = self
            .data(
                &admin,
                "mutation { issueApiKey(role: APP, label: \"load\") { secret } }",
                json!({}),
            )
            .await?;
        Ok((
            text(&created["createTenant"]["tenant"]["id"]),
            admin,
            text(&issued["issueApiKey"]["secret"]),
        ))
    }

    /// Like [`Api::call`], but an error answer is an error.
    pub async fn data(&self, key: &str, query: &str, variables: Value) -> anyhow::Result<Value> {
        match self.call(key, query, variables).await? {
            Answer::Data(d) => Ok(d),
            Answer::Error(code, message) => Err(anyhow!("{code}: {message}")),
        }
    }
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// An enrolled user and their authenticator app.
pub struct Enrolled {
    /// The tenant's id for the user.
    pub user: String,
    /// The authenticator (secret and parameters from the `otpauth://` URI).
    pub totp: Totp,
    /// The time step the server recorded for the code that confirmed the enrollment (used).
    pub confirmed_step: u64,
    /// The recovery codes the enrollment returned (the delivery path proves factor changes
    /// with them).
    pub recovery_codes: Vec<String>,
}

impl Enrolled {
    /// The code for time step `step`.
    pub fn code_at(&self, step: u64) -> String {
        self.totp.generate(step * self.totp.step()).to_string()
    }

    /// The step the server may record when it accepts the code of `step`: six digits collide
    /// between neighbouring steps about once in a million, and the server then records the
    /// highest matching step of its window (which reaches at most `step + 2` while the request
    /// is under 30 s old). The caller counts that step as used, as the server does, so the
    /// bench never sends a code the server rightly refuses as a replay.
    pub fn step_recorded_for(&self, step: u64) -> u64 {
        let code = self.code_at(step);
        (step + 1..=step + 2)
            .rev()
            .find(|s| self.code_at(*s) == code)
            .unwrap_or(step)
    }
}

const START: &str = "mutation($u: ID!) { startTotpEnrollment(userId: $u) { otpauthUri } }";
const CONFIRM: &str =
    "mutation($u: ID!, $c: String!) { confirmTotpEnrollment(userId: $u, code: $c) { codes } }";

/// Enrolls `count` users named `{prefix}{i}` with TOTP, `concurrency` at a time.
pub async fn enroll(
    api: &Api,
    key: &str,
    prefix: &str,
    count: usize,
    concurrency: usize,
) -> anyhow::Result<Vec<Arc<Enrolled>>> {
    stream::iter(0..count)
        .map(|i| async move {
            let user = format!("{prefix}{i}");
            let started = api.data(key, START, json!({ "u": user })).await?;
            let uri = started["startTotpEnrollment"]["otpauthUri"]
                .as_str()
                .ok_or_else(|| anyhow!("no otpauthUri"))?;
            let totp = Totp::from_url(uri).map_err(|e| anyhow!("bad otpauth URI: {e}"))?;
            let step = unix_now() / totp.step();
            let mut enrolled = Enrolled {
                user,
                totp,
                confirmed_step: step,
                recovery_codes: Vec::new(),
            };
            let confirmed = api
                .data(
                    key,
                    CONFIRM,
                    json!({ "u": enrolled.user, "c": enrolled.code_at(step) }),
                )
                .await
                .with_context(|| format!("confirming {}", enrolled.user))?;
            enrolled.recovery_codes =
                serde_json::from_value(confirmed["confirmTotpEnrollment"]["codes"].clone())
                    .context("reading the recovery codes")?;
            enrolled.confirmed_step = enrolled.step_recorded_for(step);
            Ok::<_, anyhow::Error>(Arc::new(enrolled))
        })
        .buffer_unordered(concurrency)
        .try_collect()
        .await
}
