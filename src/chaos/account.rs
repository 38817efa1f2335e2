//! After the run, from the event log and the sinks: was every acknowledged write kept, and was
//! anything accepted or delivered twice?

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use sqlx::PgPool;

use super::load::Ledger;
use crate::bench::sinks::Inbox;

/// The verdict.
#[derive(Debug, Default)]
pub struct Accounts {
    /// Acknowledged writes: verifies, enrollments, resets and `sendCode`s.
    pub acknowledged: u64,
    /// Acknowledged writes missing from the log, or codes neither delivered nor recorded failed.
    pub lost: u64,
    /// A (user, time step) accepted twice, or a code the service delivered twice to a provider
    /// that honours idempotency keys.
    pub duplicated: u64,
    /// Codes that reached the SMS or mail sink twice under one idempotency key or Message-ID:
    /// our sinks, like Twilio's Messages API, do not deduplicate on it.
    pub provider_duplicates: u64,
    /// Codes that reached the provider but whose `CodeDelivered` was never recorded.
    pub delivered_unrecorded: u64,
    /// Kinds of acknowledged work of which the run saw none (a run that exercised nothing
    /// proves nothing).
    pub unexercised: Vec<&'static str>,
    /// Failures recorded past their cap or while locked.
    pub lockout_errors: u64,
    /// One line per check, for the report.
    pub lines: Vec<String>,
}

/// Waits (at most `timeout`) until the tenant's delivery queue holds nothing pending: a send
/// cut by a killed instance is retried once its lease (60 s) runs out, and only then could a
/// second copy appear, so the check must not run before.
pub async fn settle_deliveries(pool: &PgPool, tenant: &str, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        let pending: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM deliveries WHERE tenant_id = $1 AND status = 'pending'",
        )
        .bind(tenant)
        .fetch_one(pool)
        .await
        .unwrap_or(1);
        if pending == 0 {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    false
}

/// Checks the ledger against the log and the sinks.
pub async fn check(
    pool: &PgPool,
    tenant: &str,
    ledger: &Ledger,
    inboxes: &[&Inbox],
) -> anyhow::Result<Accounts> {
    let mut a = Accounts::default();
    let user_of = |aggregate: &str| {
        aggregate
            .split_once("/user/")
            .map(|(_, u)| u.to_owned())
            .unwrap_or_default()
    };

    // Verifies: each acknowledged (user, step) recorded; none recorded twice.
    let rows: Vec<(String, i64)> = sqlx::query_as(
        "SELECT aggregate_id, (payload -> 'CodeVerified' ->> 'totp_step')::bigint FROM events \
         WHERE tenant_id = $1 AND event_type = 'CodeVerified' \
           AND payload -> 'CodeVerified' ->> 'method' = 'TOTP'",
    )
    .bind(tenant)
    .fetch_all(pool)
    .await?;
    let recorded: HashSet<(String, u64)> = rows
        .into_iter()
        .map(|(agg, step)| (user_of(&agg), u64::try_from(step).unwrap_or(0)))
        .collect();
    let verified = ledger
        .verified
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    let missing = verified.iter().filter(|v| !recorded.contains(v)).count() as u64;
    a.acknowledged += verified.len() as u64;
    if verified.is_empty() {
        a.unexercised.push("verifies");
    }
    a.lost += missing;
    a.lines.push(format!(
        "verifies: {} acknowledged, {missing} missing from the log",
        verified.len()
    ));
    let reused = crate::bench::checks::steps_accepted_twice(pool, tenant).await?;
    a.duplicated += u64::try_from(reused).unwrap_or(0);
    a.lines.push(format!(
        "time steps accepted twice across instances: {reused}"
    ));

    // Enrollments and resets.
    let enabled: HashSet<String> = count_by_user(pool, tenant, "TotpEnabled")
        .await?
        .into_keys()
        .collect();
    let enrolled = ledger
        .enrolled
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    let missing = enrolled.iter().filter(|u| !enabled.contains(*u)).count() as u64;
    a.acknowledged += enrolled.len() as u64;
    if enrolled.is_empty() {
        a.unexercised.push("enrollments");
    }
    a.lost += missing;
    a.lines.push(format!(
        "enrollments: {} acknowledged, {missing} missing",
        enrolled.len()
    ));
    let reset_counts = count_by_user(pool, tenant, "TwoFactorReset").await?;
    let resets = ledger
        .resets
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    let missing: u64 = resets
        .iter()
        .map(|(u, n)| n.saturating_sub(reset_counts.get(u).copied().unwrap_or(0)))
        .sum();
    let acked: u64 = resets.values().sum();
    a.acknowledged += acked;
    if acked == 0 {
        a.unexercised.push("admin resets");
    }
    a.lost += missing;
    a.lines.push(format!(
        "admin resets: {acked} acknowledged, {missing} missing"
    ));

    // Codes: each acknowledged challenge delivered or recorded failed, once.
    let outcomes: Vec<(String, String)> = sqlx::query_as(
        "SELECT event_type, COALESCE(payload -> 'CodeDelivered' ->> 'challenge_id', \
                                     payload -> 'CodeDeliveryFailed' ->> 'challenge_id') \
         FROM events WHERE tenant_id = $1 \
           AND event_type IN ('CodeDelivered', 'CodeDeliveryFailed')",
    )
    .bind(tenant)
    .fetch_all(pool)
    .await?;
    let mut outcome_of: HashMap<String, Vec<String>> = HashMap::new();
    for (kind, id) in outcomes {
        outcome_of.entry(id).or_default().push(kind);
    }
    let mut received: HashMap<String, u64> = HashMap::new();
    for inbox in inboxes {
        for m in inbox.messages() {
            *received.entry(m.key).or_insert(0) += 1;
        }
    }
    let sent: HashSet<String> = ledger
        .sent
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        .cloned()
        .collect();

    // Codes typed from the mail: each acknowledged one recorded on its challenge.
    let by_email: HashSet<String> = sqlx::query_scalar::<_, Option<String>>(
        "SELECT payload -> 'CodeVerified' ->> 'challenge_id' FROM events \
         WHERE tenant_id = $1 AND event_type = 'CodeVerified' \
           AND payload -> 'CodeVerified' ->> 'method' = 'EMAIL'",
    )
    .bind(tenant)
    .fetch_all(pool)
    .await?
    .into_iter()
    .flatten()
    .collect();
    let typed = ledger
        .email_verified
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    let missing = typed.iter().filter(|c| !by_email.contains(*c)).count() as u64;
    a.acknowledged += typed.len() as u64;
    if typed.is_empty() {
        a.unexercised.push("typed email codes");
    }
    a.lost += missing;
    a.lines.push(format!(
        "emailed codes typed: {} acknowledged, {missing} missing",
        typed.len()
    ));
    let (mut undelivered, mut failed, mut twice_recorded, mut twice_received) = (0, 0, 0, 0);
    let mut unrecorded = 0;
    let mut stuck = Vec::new();
    for id in &sent {
        let arrived = received
            .iter()
            .filter(|(key, _)| key.contains(id.as_str()))
            .map(|(_, n)| *n)
            .sum::<u64>();
        match outcome_of.get(id).map(Vec::as_slice) {
            // Delivered, but the instance stopped (or the database did) between the provider's
            // acceptance and the record: the crash window of decision 29, measured.
            None | Some([]) if arrived > 0 => unrecorded += 1,
            None | Some([]) => {
                undelivered += 1;
                stuck.push(id.clone());
            }
            Some([one]) if one == "CodeDeliveryFailed" => failed += 1,
            Some([_]) => {}
            Some(_) => twice_recorded += 1,
        }
        if arrived > 1 {
            twice_received += 1;
        }
    }
    for id in stuck.iter().take(5) {
        let row: Option<(String, i32, Option<String>)> = sqlx::query_as(
            "SELECT status, attempts, last_error FROM deliveries WHERE challenge_id = $1",
        )
        .bind(id)
        .fetch_optional(pool)
        .await?;
        let events: Vec<String> = sqlx::query_scalar(
            "SELECT event_type FROM events WHERE tenant_id = $1 AND payload::text LIKE $2 \
             ORDER BY global_position",
        )
        .bind(tenant)
        .bind(format!("%{id}%"))
        .fetch_all(pool)
        .await?;
        a.lines.push(format!(
            "code {id} has no outcome: queue row {row:?}, events {events:?}"
        ));
    }
    a.acknowledged += sent.len() as u64;
    if sent.is_empty() {
        a.unexercised.push("sent codes");
    }
    a.lost += undelivered;
    a.duplicated += twice_recorded;
    a.provider_duplicates += twice_received;
    a.delivered_unrecorded = unrecorded;
    a.lines.push(format!(
        "codes: {} acknowledged, {undelivered} neither delivered nor recorded failed, {failed} \
         recorded failed, {unrecorded} delivered without a CodeDelivered record (stopped between \
         the provider's acceptance and the record), {twice_recorded} recorded twice, \
         {twice_received} arrived twice (the sinks ignore idempotency keys, as Twilio's \
         Messages API does)",
        sent.len()
    ));

    let (over_cap, while_locked) =
        crate::bench::checks::failures_within_caps(pool, tenant, 0).await?;
    a.lockout_errors = over_cap + while_locked;
    a.lines.push(format!(
        "lockout counters: {over_cap} past their cap or out of order, {while_locked} while locked"
    ));
    Ok(a)
}

async fn count_by_user(
    pool: &PgPool,
    tenant: &str,
    event_type: &str,
) -> anyhow::Result<HashMap<String, u64>> {
    let rows: Vec<(String, i64)> = sqlx::query_as(
        "SELECT aggregate_id, count(*) FROM events WHERE tenant_id = $1 AND event_type = $2 \
         GROUP BY aggregate_id",
    )
    .bind(tenant)
    .bind(event_type)
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .filter_map(|(agg, n)| {
            let user = agg.split_once("/user/")?.1.to_owned();
            Some((user, u64::try_from(n).unwrap_or(0)))
        })
        .collect())
}
