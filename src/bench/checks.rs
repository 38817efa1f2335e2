//! Correctness after the load, read from the event log: the speed figures count only if the
//! service also kept its promises under load.

use cqrs_es::Aggregate;
use sqlx::{PgPool, Row};
use twofold_domain::user::{User, UserEvent, MAX_FAILURES_WITHOUT_ADMIN};

use super::load::LoadResult;

/// One checked promise.
pub struct Check {
    /// What was checked.
    pub what: &'static str,
    /// Whether it held.
    pub ok: bool,
    /// The numbers behind the verdict.
    pub detail: String,
}

/// How many (user, time step) pairs the tenant's log accepted more than once (a TOTP
/// verification or an enrollment's confirmation).
pub(crate) async fn steps_accepted_twice(pool: &PgPool, tenant: &str) -> anyhow::Result<i64> {
    Ok(sqlx::query_scalar(
        "SELECT count(*) FROM ( \
           SELECT aggregate_id, step FROM ( \
             SELECT aggregate_id, (payload -> 'CodeVerified' ->> 'totp_step')::bigint AS step \
             FROM events WHERE tenant_id = $1 AND event_type = 'CodeVerified' \
               AND payload -> 'CodeVerified' ->> 'method' = 'TOTP' \
             UNION ALL \
             SELECT aggregate_id, (payload -> 'TotpEnabled' ->> 'step')::bigint \
             FROM events WHERE tenant_id = $1 AND event_type = 'TotpEnabled') s \
           GROUP BY aggregate_id, step HAVING count(*) > 1) d",
    )
    .bind(tenant)
    .fetch_one(pool)
    .await?)
}

/// The promises of the verify path, for events after `since` (a global position).
pub async fn verify(
    pool: &PgPool,
    tenant: &str,
    since: i64,
    load: &LoadResult,
) -> anyhow::Result<Vec<Check>> {
    let reused = steps_accepted_twice(pool, tenant).await?;
    let count = |event_type: &'static str| async move {
        sqlx::query_scalar::<_, i64>(
            "SELECT count(*) FROM events WHERE tenant_id = $1 AND event_type = $2 \
             AND global_position > $3",
        )
        .bind(tenant)
        .bind(event_type)
        .bind(since)
        .fetch_one(pool)
        .await
    };
    let verified = count("CodeVerified").await?;
    let failed = count("VerificationFailed").await?;
    let (over_cap, while_locked) = failures_within_caps(pool, tenant, since).await?;
    Ok(vec![
        Check {
            what: "no (user, time step) accepted twice",
            ok: reused == 0,
            detail: format!("{reused} reused"),
        },
        Check {
            what: "every valid code accepted exactly once",
            ok: load.valid_accepted == load.valid_sent
                && load.transport_errors == 0
                && verified == load.valid_accepted as i64,
            detail: format!(
                "{} sent, {} accepted, refused {:?}, {} transport errors, {verified} CodeVerified recorded",
                load.valid_sent, load.valid_accepted, load.valid_refused, load.transport_errors
            ),
        },
        Check {
            what: "every wrong code refused and recorded",
            ok: !load.wrong_other.contains_key("ACCEPTED") && failed == load.wrong_invalid as i64,
            detail: format!(
                "{} sent, {} INVALID_CODE, other {:?}, {failed} VerificationFailed recorded",
                load.wrong_sent, load.wrong_invalid, load.wrong_other
            ),
        },
        Check {
            what: "failure counters never past their cap",
            ok: over_cap == 0 && while_locked == 0,
            detail: format!(
                "{over_cap} failures counted past {MAX_FAILURES_WITHOUT_ADMIN} or out of order, \
                 {while_locked} recorded while locked"
            ),
        },
    ])
}

/// Replays every user that failed after `since` with the domain's own rules: no failure may be
/// recorded while the user is locked, and each count must follow the previous one.
pub(crate) async fn failures_within_caps(
    pool: &PgPool,
    tenant: &str,
    since: i64,
) -> anyhow::Result<(u64, u64)> {
    let rows = sqlx::query(
        "SELECT aggregate_id, payload FROM events WHERE aggregate_type = 'user' AND aggregate_id IN ( \
           SELECT DISTINCT aggregate_id FROM events WHERE tenant_id = $1 \
             AND event_type = 'VerificationFailed' AND global_position > $2) \
         ORDER BY aggregate_id, sequence",
    )
    .bind(tenant)
    .bind(since)
    .fetch_all(pool)
    .await?;
    let (mut over_cap, mut while_locked) = (0, 0);
    let mut current: Option<(String, User)> = None;
    for row in rows {
        let id: String = row.try_get("aggregate_id")?;
        let event: UserEvent = serde_json::from_value(row.try_get("payload")?)?;
        if current.as_ref().is_none_or(|(c, _)| *c != id) {
            current = Some((id, User::default()));
        }
        let Some((_, user)) = current.as_mut() else {
            continue;
        };
        if let UserEvent::VerificationFailed {
            consecutive_failures,
            at,
            ..
        } = &event
        {
            if user.locked_until(*at).is_some() {
                while_locked += 1;
            }
            if *consecutive_failures > MAX_FAILURES_WITHOUT_ADMIN
                || *consecutive_failures != user.consecutive_failures() + 1
            {
                over_cap += 1;
            }
        }
        user.apply(event);
    }
    Ok((over_cap, while_locked))
}

/// The promise of the delivery path: every code of the timed part delivered, and once.
pub fn delivery(result: &super::delivery::DeliveryResult) -> Check {
    Check {
        what: "every sent code delivered exactly once",
        ok: result.duplicates == 0 && result.missing == 0,
        detail: format!(
            "{} codes, {} missing, {} delivered twice",
            result.codes, result.missing, result.duplicates
        ),
    }
}
