//! History mode: verify cost against how much history a user has. For each history length,
//! fresh users are enrolled and given that many past sign-ins; then all lengths are verified
//! against together, their requests interleaved. Their latencies, and so their rates, should
//! match within noise, because a load reads the user's snapshot and at most a few dozen events
//! after it, however long the stream.
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

/// Waits until every projection has processed every committed event: the service's event
/// processor works through the added history in the background.
async fn projections_caught_up(pool: &PgPool, within: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + within;
    loop {
        let behind: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM projection_checkpoints c \
               WHERE EXISTS (SELECT 1 FROM events e \
                 WHERE (e.tx_id, e.global_position) > (c.last_tx, c.last_position)))",
        )
        .fetch_one(pool)
        .await?;
        if !behind {
            return Ok(());
        }
        if Instant::now() >= deadline {
            anyhow::bail!(
                "the projections had not caught up with the added history after {} s",
                within.as_secs()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// What one history length measured.
#[derive(Debug)]
pub struct Level {
    /// Past sign-ins per user.
    pub history: usize,
    /// Verify requests sent.
    pub requests: usize,
    /// Requests per second that the clients would sustain on this level alone: the
    /// concurrency over the mean latency, the levels' requests being interleaved.
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
    // The bulk inserts leave work behind (the projections' catch-up on every added event,
    // autovacuum of the grown table, a checkpoint) that would otherwise land on the
    // measurement: let it finish now.
    projections_caught_up(pool, Duration::from_secs(180)).await?;
    sqlx::query("VACUUM (ANALYZE) events").execute(pool).await?;
    sqlx::query("CHECKPOINT").execute(pool).await?;
    Ok(measure(api, key, groups, concurrency).await)
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

/// All levels at once, so that they share the same conditions: each worker takes its share
/// of every level's users and cycles through them interleaved (a user of the first level,
/// one of the second, ...), sending runs of wrong codes, each ended by a valid code while a
/// fresh time step is left, until its users are used up. Measured one after the other, the
/// levels differed by up to a fifth, whichever ran first being the slowest (decision 80).
async fn measure(
    api: &Api,
    key: &str,
    groups: Vec<(usize, Vec<Arc<Enrolled>>)>,
    concurrency: usize,
) -> Vec<Level> {
    struct State {
        level: usize,
        user: Arc<Enrolled>,
        last_step: u64,
        wrong_in_row: u32,
        done: bool,
    }
    let workers: Vec<_> = (0..concurrency)
        .map(|w| {
            let shares: Vec<Vec<Arc<Enrolled>>> = groups
                .iter()
                .map(|(_, users)| users.iter().skip(w).step_by(concurrency).cloned().collect())
                .collect();
            let longest = shares.iter().map(Vec::len).max().unwrap_or(0);
            let mine: Vec<State> = (0..longest)
                .flat_map(|i| {
                    shares
                        .iter()
                        .enumerate()
                        .filter_map(move |(level, share)| share.get(i).map(|u| (level, u)))
                })
                .map(|(level, u)| State {
                    level,
                    last_step: u.confirmed_step,
                    user: u.clone(),
                    wrong_in_row: 0,
                    done: false,
                })
                .collect();
            let api = api.clone();
            let key = key.to_owned();
            let levels = groups.len();
            tokio::spawn(async move {
                let mut mine = mine;
                let mut latencies = vec![Vec::new(); levels];
                let mut unexpected = vec![0; levels];
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
                        latencies[s.level].push(t.elapsed());
                        let as_expected = match (&answer, valid) {
                            (Ok(Answer::Data(_)), true) => true,
                            (Ok(Answer::Error(c, _)), false) => c == "INVALID_CODE",
                            _ => false,
                        };
                        if !as_expected {
                            unexpected[s.level] += 1;
                        }
                        if valid {
                            s.last_step = s.user.step_recorded_for(next_valid);
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
    let mut latencies: Vec<Vec<Duration>> = vec![Vec::new(); groups.len()];
    let mut unexpected = vec![0; groups.len()];
    for w in workers {
        if let Ok((l, u)) = w.await {
            for (level, l) in l.into_iter().enumerate() {
                latencies[level].extend(l);
                unexpected[level] += u[level];
            }
        }
    }
    groups
        .iter()
        .zip(latencies)
        .zip(unexpected)
        .map(|(((history, _), mut latencies), unexpected)| {
            latencies.sort_unstable();
            let quantile = |q: f64| {
                if latencies.is_empty() {
                    return 0.0;
                }
                let i = ((latencies.len() as f64 - 1.0) * q).round() as usize;
                latencies[i].as_secs_f64() * 1000.0
            };
            let mean = latencies.iter().map(Duration::as_secs_f64).sum::<f64>()
                / latencies.len().max(1) as f64;
            Level {
                history: *history,
                requests: latencies.len(),
                // Little's law: what `concurrency` clients sending only this level's requests
                // would sustain at these latencies.
                rate: if mean > 0.0 {
                    concurrency as f64 / mean
                } else {
                    0.0
                },
                p50: quantile(0.5),
                p99: quantile(0.99),
                unexpected,
            }
        })
        .collect()
}
