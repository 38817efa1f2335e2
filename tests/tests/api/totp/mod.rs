//! TOTP with recovery codes, end to end: codes are computed from the returned `otpauth://` URI
//! the way an authenticator app does.

mod enrollment;
mod instances;
mod verification;

use serde_json::{json, Value};
use twofold_tests::{Answer, TestApp};

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
