//! History mode: verify cost against how much history a user has. For each history length,
//! fresh users are enrolled, given that many past sign-ins, and verified against; the rates
//! should match within noise, because a load reads the user's snapshot and at most a few dozen
//! events after it, however long the stream.
//!
//! The past sign-ins are `SignInEvaluated` events, what the service records at every
//! `signInRequirement`, appended to the users' streams in one statement per user (tens of
//! thousands over the API would take minutes). One `signInRequirement` per user afterwards lets
//! the service read the long stream once and snapshot it, as it would have along the way.
//!
//! A user can pass TOTP once per 30 s step, so each user gives two valid codes (this step and
//! the next) and, around them, runs of wrong codes short of the lockout: enough requests per
//! user to measure, with each request loading and appending to a long stream alike.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use futures::{stream, StreamExt, TryStreamExt};
use serde_json::json;
use sqlx::PgPool;
use twofold_domain::user::{SignInReason, UserEvent};
use twofold_domain::Method;

use super::api::{self, unix_now, Answer, Api, Enrolled};
use super::load::wrong_code;

const VERIFY: &str =
    "mutation($u: ID!, $c: String!) { verify(userId: $u, method: TOTP, code: $c) { method } }";
const REQUIREMENT: &str = "query($u: ID!) { signInRequirement(userId: $u) { reason } }";

/// Wrong codes in a row before a valid one resets the count (the lockout comes at ten).
const WRONG_RUN: u32 = 8;

/// What one history length measured.
#[derive(Debug)]
pub struct Level {
    /// Past sign-ins per user.
    pub history: usize,
    /// Verify requests sent.
    pub requests: usize,
    /// Requests per second.
    pub rate: f64,
    /// Median latency, ms.
    pub p50: f64,
    /// 99th percentile latency, ms.
    pub p99: f64,
    /// Answers that were not what the code deserved (valid accepted, wrong `INVALID_CODE`).
    pub unexpected: usize,
}

/// Runs every history length in `levels` with `users` fresh users each.
pub async fn run(
    api: &Api,
    key: &str,
    pool: &PgPool,
    tenant: &str,
    levels: &[usize],
    users: usize,
    concurrency: usize,
) -> anyhow::Result<Vec<Level>> {
    let mut groups = Vec::new();
    for &history in levels {
        let enrolled = api::enroll(api, key, &format!("h{history}-"), users, concurrency).await?;
        add_history(pool, tenant, &enrolled, history).await?;
        stream::iter(enrolled.iter().cloned())
            .map(|u| async move { api.data(key, REQUIREMENT, json!({ "u": u.user })).await })
            .buffer_unordered(concurrency)
            .try_collect::<Vec<_>>()
            .await
            .context("reading the long streams once")?;
        groups.push((history, enrolled));
    }
    // The bulk inserts leave work behind (autovacuum of the grown table, a checkpoint) that
    // would otherwise land on whichever level is measured next: do it now, before any.
    sqlx::query("VACUUM (ANALYZE) events").execute(pool).await?;
    sqlx::query("CHECKPOINT").execute(pool).await?;
    let mut out = Vec::new();
    for (history, enrolled) in groups {
        out.push(measure(api, key, history, enrolled, concurrency).await);
    }
    Ok(out)
}

/// Appends `history` past sign-ins to each user's stream, as the service records them.
async fn add_history(
    pool: &PgPool,
    tenant: &str,
    users: &[Arc<Enrolled>],
    history: usize,
) -> anyhow::Result<()> {
    if history == 0 {
        return Ok(());
    }
    let event = serde_json::to_value(UserEvent::SignInEvaluated {
        required: true,
        reason: SignInReason::Enrolled,
        methods: vec![Method::Totp, Method::RecoveryCode],
        trusted_device: None,
        device_token_rejected: false,
        sso_login: false,
        locked_until: None,
        grace_ends_at: None,
        at: chrono::Utc::now(),
    })?;
    let metadata = json!({
        "tenant_id": tenant,
        "actor": json!({ "system": true }).to_string(),
        "request_id": "bench-history",
        "ip": "",
        "user_agent": "",
    });
    for user in users {
        let aggregate_id = format!("{tenant}/user/{}", user.user);
        sqlx::query(
            "INSERT INTO events \
               (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata) \
             SELECT 'user', $1, last + s, 'SignInEvaluated', '1', $2, $3 \
             FROM (SELECT max(sequence) AS last FROM events \
                   WHERE aggregate_type = 'user' AND aggregate_id = $1) l, \
                  generate_series(1, $4) AS s",
        )
        .bind(&aggregate_id)
        .bind(&event)
        .bind(&metadata)
        .bind(i64::try_from(history).unwrap_or(i64::MAX))
        .execute(pool)
        .await
        .with_context(|| format!("adding history to {aggregate_id}"))?;
    }
    Ok(())
}

/// Each worker takes its share of the users round-robin: runs of wrong codes, each ended by
/// a valid code while a fresh time step is left, until its users are used up.
async fn measure(
    api: &Api,
    key: &str,
    history: usize,
    users: Vec<Arc<Enrolled>>,
    concurrency: usize,
) -> Level {
    struct State {
        user: Arc<Enrolled>,
        last_step: u64,
        wrong_in_row: u32,
        done: bool,
    }
    let started = Instant::now();
    let workers: Vec<_> = (0..concurrency)
        .map(|w| {
            let mine: Vec<State> = users
                .iter()
                .skip(w)
                .step_by(concurrency)
                .map(|u| State {
                    last_step: u.confirmed_step,
                    user: u.clone(),
                    wrong_in_row: 0,
                    done: false,
                })
                .collect();
            let api = api.clone();
            let key = key.to_owned();
            tokio::spawn(async move {
                let mut mine = mine;
                let mut latencies = Vec::new();
                let mut unexpected = 0;
                while mine.iter().any(|s| !s.done) {
                    for s in mine.iter_mut().filter(|s| !s.done) {
                        let current = unix_now() / s.user.totp.step();
                        let next_valid = (s.last_step + 1).max(current);
                        let (code, valid) = if s.wrong_in_row < WRONG_RUN {
                            (wrong_code(&s.user), false)
                        } else if next_valid <= current + 1 {
                            (s.user.code_at(next_valid), true)
                        } else {
                            s.done = true;
                            continue;
                        };
                        let t = Instant::now();
                        let answer = api
                            .call(&key, VERIFY, json!({ "u": s.user.user, "c": code }))
                            .await;
                        latencies.push(t.elapsed());
                        let as_expected = match (&answer, valid) {
                            (Ok(Answer::Data(_)), true) => true,
                            (Ok(Answer::Error(c, _)), false) => c == "INVALID_CODE",
                            _ => false,
                        };
                        if !as_expected {
                            unexpected += 1;
                        }
                        if valid {
                            s.last_step = next_valid;
                            s.wrong_in_row = 0;
                        } else {
                            s.wrong_in_row += 1;
                        }
                    }
                }
                (latencies, unexpected)
            })
        })
        .collect();
    let mut latencies: Vec<Duration> = Vec::new();
    let mut unexpected = 0;
    for w in workers {
        if let Ok((l, u)) = w.await {
            latencies.extend(l);
            unexpected += u;
        }
    }
    let elapsed = started.elapsed().as_secs_f64().max(1e-9);
    latencies.sort_unstable();
    let quantile = |q: f64| {
        if latencies.is_empty() {
            return 0.0;
        }
        let i = ((latencies.len() as f64 - 1.0) * q).round() as usize;
        latencies[i].as_secs_f64() * 1000.0
    };
    Level {
        history,
        requests: latencies.len(),
        rate: latencies.len() as f64 / elapsed,
        p50: quantile(0.5),
        p99: quantile(0.99),
        unexpected,
    }
}
