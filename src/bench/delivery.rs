//! The email/SMS path: `sendCode` → event → outbox → worker → provider, measured against the
//! local sinks. Setup (not timed) gives users a verified email address and phone number the
//! way an app does (add, read the code from the message, confirm); the timed part sends one
//! sign-in code by each channel to every such user and waits until all have arrived.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context};
use futures::stream::{self, StreamExt, TryStreamExt};
use serde_json::json;

use super::api::{Api, Enrolled};
use super::sinks::{Inbox, SmsSink, SmtpSink};

/// What the timed part measured.
pub struct DeliveryResult {
    /// Codes sent in the timed part (email + SMS).
    pub codes: usize,
    /// From the first `sendCode` to the last message arriving.
    pub elapsed: Duration,
    /// How long until every `sendCode` was answered (the rest is the worker's).
    pub answered: Duration,
    /// Challenges of the timed part that arrived more than once.
    pub duplicates: usize,
    /// Challenges of the timed part that never arrived.
    pub missing: usize,
    /// CPU seconds of the timed part: the service, PostgreSQL, the load generator (with its
    /// SMTP and SMS sinks).
    pub cpu: [f64; 3],
    /// Where PostgreSQL's time went in the timed part (with `--statement-stats`).
    pub statements: Vec<String>,
}

impl DeliveryResult {
    /// Codes delivered per second.
    pub fn rate(&self) -> f64 {
        self.codes as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// CPU per code, in µs, of each of [`DeliveryResult::cpu`].
    pub fn cpu_per_code(&self) -> [f64; 3] {
        self.cpu.map(|s| s * 1e6 / self.codes.max(1) as f64)
    }
}

/// What the timed part is measured with: CPU clocks to read before and after, and the pool to
/// read statement statistics from when asked.
pub struct Probe<'a> {
    pub cpu: &'a dyn Fn() -> [Duration; 3],
    pub statements: Option<&'a sqlx::PgPool>,
}

// Each factor change on these TOTP users proves a current factor with a recovery code.
const ADD_EMAIL: &str = "mutation($u: ID!, $e: String!, $r: String!) { addEmail(userId: $u, email: $e, proof: { method: RECOVERY_CODE, code: $r }) { id } }";
const ADD_PHONE: &str = "mutation($u: ID!, $p: String!, $r: String!) { addPhone(userId: $u, phone: $p, proof: { method: RECOVERY_CODE, code: $r }) { id } }";
const CONFIRM: &str = "mutation($u: ID!, $c: ID!, $k: String!, $r: String!) { confirmChannel(userId: $u, challengeId: $c, code: $k, proof: { method: RECOVERY_CODE, code: $r }) { codes } }";
const SEND: &str = "mutation($u: ID!, $ch: Channel!) { sendCode(userId: $u, channel: $ch) { id } }";

fn email_of(i: usize) -> String {
    format!("bench{i}@example.com")
}

fn phone_of(i: usize) -> String {
    format!("+99555{:07}", 5_000_000 + i)
}

async fn wait_for_code(inbox: &Inbox, to: &str) -> anyhow::Result<String> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(code) = inbox.latest_code(to, 6) {
            return Ok(code);
        }
        if Instant::now() > deadline {
            return Err(anyhow!("no code reached {to} within 60 s"));
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn wait_for(inbox: &Inbox, n: usize, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while inbox.len() < n {
        if Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    true
}

/// Gives `users` a verified email and phone, then times one sign-in code per channel each.
pub async fn run(
    api: &Api,
    key: &str,
    users: &[Arc<Enrolled>],
    smtp: &SmtpSink,
    sms: &SmsSink,
    concurrency: usize,
    probe: Probe<'_>,
) -> anyhow::Result<DeliveryResult> {
    stream::iter(users.iter().enumerate())
        .map(|(i, u)| async move {
            let (email, phone) = (email_of(i), phone_of(i));
            let proof = |n: usize| {
                u.recovery_codes
                    .get(n)
                    .cloned()
                    .ok_or_else(|| anyhow!("{} has fewer than 4 recovery codes", u.user))
            };
            let c = api
                .data(
                    key,
                    ADD_EMAIL,
                    json!({ "u": u.user, "e": email, "r": proof(0)? }),
                )
                .await?;
            let code = wait_for_code(&smtp.inbox, &email).await?;
            api.data(
                key,
                CONFIRM,
                json!({ "u": u.user, "c": c["addEmail"]["id"], "k": code, "r": proof(1)? }),
            )
            .await
            .context("confirming an email")?;
            let c = api
                .data(
                    key,
                    ADD_PHONE,
                    json!({ "u": u.user, "p": phone, "r": proof(2)? }),
                )
                .await?;
            let code = wait_for_code(&sms.inbox, &phone).await?;
            api.data(
                key,
                CONFIRM,
                json!({ "u": u.user, "c": c["addPhone"]["id"], "k": code, "r": proof(3)? }),
            )
            .await
            .context("confirming a phone")?;
            Ok::<_, anyhow::Error>(())
        })
        .buffer_unordered(concurrency)
        .try_collect::<Vec<()>>()
        .await?;

    let (email_before, sms_before) = (smtp.inbox.len(), sms.inbox.len());
    if let Some(pool) = probe.statements {
        super::reset_statement_stats(pool).await?;
    }
    let cpu_before = (probe.cpu)();
    let started = Instant::now();
    let requests = users
        .iter()
        .flat_map(|u| [(u.clone(), "EMAIL"), (u.clone(), "SMS")]);
    let challenge_ids: Vec<String> = stream::iter(requests)
        .map(|(u, channel)| async move {
            let d = api
                .data(key, SEND, json!({ "u": u.user, "ch": channel }))
                .await?;
            Ok::<_, anyhow::Error>(d["sendCode"]["id"].as_str().unwrap_or_default().to_owned())
        })
        .buffer_unordered(concurrency)
        .try_collect()
        .await?;
    let answered = started.elapsed();
    let n = users.len();
    let all_email = wait_for(&smtp.inbox, email_before + n, Duration::from_secs(300)).await;
    let all_sms = wait_for(&sms.inbox, sms_before + n, Duration::from_secs(300)).await;
    let elapsed = started.elapsed();
    let cpu_after = (probe.cpu)();
    let statements = match probe.statements {
        Some(pool) => super::statement_stats(pool).await?,
        None => Vec::new(),
    };
    let cpu = [0, 1, 2].map(|i| cpu_after[i].saturating_sub(cpu_before[i]).as_secs_f64());
    // Give a duplicate (a second send of one challenge) a moment to show up before counting.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let timed: Vec<_> = smtp.inbox.messages()[email_before..]
        .iter()
        .chain(sms.inbox.messages()[sms_before..].iter())
        .cloned()
        .collect();
    let mut per_challenge = std::collections::HashMap::new();
    for m in &timed {
        // The SMS key is the challenge id; the email Message-ID contains it.
        let id = challenge_ids
            .iter()
            .find(|id| m.key.contains(id.as_str()))
            .cloned()
            .unwrap_or_else(|| m.key.clone());
        *per_challenge.entry(id).or_insert(0usize) += 1;
    }
    let duplicates = per_challenge.values().filter(|n| **n > 1).count();
    let missing = challenge_ids
        .iter()
        .filter(|id| !per_challenge.contains_key(*id))
        .count();
    if !(all_email && all_sms) {
        eprintln!("warning: not every code arrived within 300 s");
    }
    Ok(DeliveryResult {
        codes: 2 * n,
        elapsed,
        answered,
        duplicates,
        missing,
        cpu,
        statements,
    })
}
