//! The `activity` projection: sign-ins and wrong codes per tenant and UTC day
//! (`tenant_daily_activity`), and each user's lockout and last sign-in (`user_activity`): the
//! admin overview's read model.
//!
//! Counters are not idempotent, and need not be: the processor applies each event to a
//! projection once, committing its writes and its checkpoint in one transaction, and a rebuild
//! deletes everything here (`reset`) before counting again in the same transaction.
//!
//! Which commits are sign-ins is the domain's rule ([`completes_sign_in`]): it reads every event
//! the command recorded on the user, which share its transaction. A batch may cut a transaction
//! in two, so for a passing code in the batch's first or last transaction the whole commit is
//! read back from the log (it is complete there: the processor reads only committed
//! transactions). The sign-in is counted with the batch holding its passing code, so a rebuild,
//! whose batches are cut elsewhere, counts the same.

use std::collections::{BTreeMap, HashMap};

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use cqrs_es::Aggregate;
use sqlx::{PgConnection, PgPool, Row};
use twofold_domain::user::{
    completes_sign_in, is_failed_code, is_passing_code, GraceCohort, LockoutChange, User, UserEvent,
};
use twofold_domain::TenantId;
use twofold_services::ports::{DayCount, OverviewReadModel, UserTotals};
use twofold_services::StoreError;

use super::compliance::user_of;
use crate::processor::{Projection, ProjectionError, StoredEvent};

/// Keeps `tenant_daily_activity` and `user_activity`.
pub struct ActivityProjection;

/// One command's events on one user: its transaction and aggregate.
type CommitKey<'a> = (i64, &'a str);

/// What one batch adds up to, written in a few statements.
#[derive(Default)]
struct Tally<'a> {
    /// (tenant, day) → (sign-ins, failed codes).
    days: BTreeMap<(&'a str, NaiveDate), (i64, i64)>,
    /// (tenant, user) → the last lockout change of the batch.
    lockouts: BTreeMap<(&'a str, &'a str), LockoutChange>,
    /// (tenant, user) → the latest sign-in of the batch.
    sign_ins: BTreeMap<(&'a str, &'a str), DateTime<Utc>>,
}

/// The event types of every commit in `events` that holds a passing code, read back from the
/// log for the commits a batch boundary may have cut (those of the first and last transaction).
async fn commits<'a>(
    db: &mut PgConnection,
    events: &'a [StoredEvent],
) -> Result<HashMap<CommitKey<'a>, Vec<String>>, sqlx::Error> {
    let mut commits: HashMap<CommitKey<'a>, Vec<String>> = HashMap::new();
    for e in events.iter().filter(|e| e.aggregate_type == User::TYPE) {
        commits
            .entry((e.tx_id, e.aggregate_id.as_str()))
            .or_default()
            .push(e.event_type.clone());
    }
    commits.retain(|_, types| types.iter().any(|t| is_passing_code(t)));
    let edges = [events.first(), events.last()].map(|e| e.map(|e| e.tx_id));
    let (txs, ids): (Vec<String>, Vec<&str>) = commits
        .keys()
        .filter(|(tx, _)| edges.contains(&Some(*tx)))
        .map(|(tx, id)| (tx.to_string(), *id))
        .unzip();
    if txs.is_empty() {
        return Ok(commits);
    }
    let rows = sqlx::query(
        "SELECT e.tx_id::text::bigint AS tx, e.aggregate_id, e.event_type FROM events e \
         JOIN unnest($1::text[], $2::text[]) AS c(tx, id) \
           ON e.tx_id = c.tx::xid8 AND e.aggregate_id = c.id \
         WHERE e.aggregate_type = $3 ORDER BY e.global_position",
    )
    .bind(&txs)
    .bind(&ids)
    .bind(User::TYPE)
    .fetch_all(&mut *db)
    .await?;
    for (tx, id) in txs.iter().zip(&ids) {
        if let Some(types) = tx
            .parse()
            .ok()
            .and_then(|tx: i64| commits.get_mut(&(tx, *id)))
        {
            types.clear();
        }
    }
    for row in &rows {
        let tx: i64 = row.try_get("tx")?;
        let id: String = row.try_get("aggregate_id")?;
        // The key borrows from the batch, not from the row.
        let key = ids.iter().find(|i| **i == id).map(|i| (tx, *i));
        if let Some(types) = key.and_then(|k| commits.get_mut(&k)) {
            types.push(row.try_get("event_type")?);
        }
    }
    Ok(commits)
}

impl<'a> Tally<'a> {
    /// Adds one event of the batch; `commits` are the commits with a passing code.
    fn add(
        &mut self,
        event: &'a StoredEvent,
        user: &'a str,
        data: &UserEvent,
        commits: &HashMap<CommitKey<'a>, Vec<String>>,
    ) {
        let tenant = event.tenant_id.as_str();
        let at = data.at();
        let day = self.days.entry((tenant, at.date_naive())).or_default();
        if is_failed_code(&event.event_type) {
            day.1 += 1;
        }
        let signed_in = is_passing_code(&event.event_type)
            && commits
                .get(&(event.tx_id, event.aggregate_id.as_str()))
                .is_some_and(|types| completes_sign_in(types.iter().map(String::as_str)));
        if signed_in {
            day.0 += 1;
            let last = self.sign_ins.entry((tenant, user)).or_insert(at);
            *last = (*last).max(at);
        }
        if let Some(change) = data.lockout_change() {
            self.lockouts.insert((tenant, user), change);
        }
    }

    async fn write(self, db: &mut PgConnection) -> Result<(), sqlx::Error> {
        let days: Vec<_> = self
            .days
            .into_iter()
            .filter(|(_, (s, f))| *s > 0 || *f > 0)
            .collect();
        if !days.is_empty() {
            sqlx::query(
                "INSERT INTO tenant_daily_activity AS a (tenant_id, day, sign_ins, failed_codes) \
                 SELECT * FROM unnest($1::text[], $2::date[], $3::bigint[], $4::bigint[]) \
                 ON CONFLICT (tenant_id, day) DO UPDATE SET \
                   sign_ins = a.sign_ins + EXCLUDED.sign_ins, \
                   failed_codes = a.failed_codes + EXCLUDED.failed_codes",
            )
            .bind(days.iter().map(|((t, _), _)| *t).collect::<Vec<_>>())
            .bind(days.iter().map(|((_, d), _)| *d).collect::<Vec<_>>())
            .bind(days.iter().map(|(_, (s, _))| *s).collect::<Vec<_>>())
            .bind(days.iter().map(|(_, (_, f))| *f).collect::<Vec<_>>())
            .execute(&mut *db)
            .await?;
        }
        // Each user's row once: the batch's last word on the lockout (a new end, or none; an
        // end is written as a row too, so which rows exist does not depend on where batches
        // were cut) and the latest sign-in. A passing code ends any lockout, so a user signed
        // in has a lockout word too and nearly every row is written by the first statement.
        let lockouts: Vec<_> = self.lockouts.into_iter().collect();
        let mut sign_ins = self.sign_ins;
        let signed: Vec<Option<DateTime<Utc>>> = lockouts
            .iter()
            .map(|(key, _)| sign_ins.remove(key))
            .collect();
        if !lockouts.is_empty() {
            sqlx::query(
                "INSERT INTO user_activity AS u (tenant_id, user_id, locked_until, last_sign_in_at) \
                 SELECT * FROM unnest($1::text[], $2::text[], $3::timestamptz[], $4::timestamptz[]) \
                 ON CONFLICT (tenant_id, user_id) DO UPDATE SET \
                   locked_until = EXCLUDED.locked_until, \
                   last_sign_in_at = GREATEST(u.last_sign_in_at, EXCLUDED.last_sign_in_at)",
            )
            .bind(lockouts.iter().map(|((t, _), _)| *t).collect::<Vec<_>>())
            .bind(lockouts.iter().map(|((_, u), _)| *u).collect::<Vec<_>>())
            .bind(
                lockouts
                    .iter()
                    .map(|(_, change)| match change {
                        LockoutChange::Until(until) => Some(*until),
                        LockoutChange::Ended => None,
                    })
                    .collect::<Vec<_>>(),
            )
            .bind(signed)
            .execute(&mut *db)
            .await?;
        }
        if !sign_ins.is_empty() {
            let signed: Vec<_> = sign_ins.into_iter().collect();
            sqlx::query(
                "INSERT INTO user_activity AS u (tenant_id, user_id, last_sign_in_at) \
                 SELECT * FROM unnest($1::text[], $2::text[], $3::timestamptz[]) \
                 ON CONFLICT (tenant_id, user_id) DO UPDATE SET \
                   last_sign_in_at = GREATEST(u.last_sign_in_at, EXCLUDED.last_sign_in_at)",
            )
            .bind(signed.iter().map(|((t, _), _)| *t).collect::<Vec<_>>())
            .bind(signed.iter().map(|((_, u), _)| *u).collect::<Vec<_>>())
            .bind(signed.iter().map(|(_, at)| *at).collect::<Vec<_>>())
            .execute(&mut *db)
            .await?;
        }
        Ok(())
    }
}

/// Whether the activity figures use events of this type (others are not even parsed).
fn counted(event_type: &str) -> bool {
    matches!(
        event_type,
        "CodeVerified"
            | "RecoveryCodeUsed"
            | "VerificationFailed"
            | "UserLockedOut"
            | "LockoutCleared"
            | "TwoFactorReset"
            | "UserErased"
            | "TotpEnabled"
            | "ChannelVerified"
            | "WebAuthnCredentialRegistered"
    )
}

#[async_trait]
impl Projection for ActivityProjection {
    fn name(&self) -> &'static str {
        "activity"
    }

    fn reads(&self, _aggregate_type: &str) -> bool {
        // Sign-ins must not wait for it: the overview catches up itself before reading.
        false
    }

    async fn apply(
        &self,
        db: &mut PgConnection,
        event: &StoredEvent,
    ) -> Result<(), ProjectionError> {
        self.apply_all(db, std::slice::from_ref(event))
            .await
            .map_err(|(_, e)| e)
    }

    async fn apply_all(
        &self,
        db: &mut PgConnection,
        events: &[StoredEvent],
    ) -> Result<(), (i64, ProjectionError)> {
        let first = events.first().map_or(0, |e| e.position);
        let commits = commits(db, events).await.map_err(|e| (first, e.into()))?;
        let mut tally = Tally::default();
        for event in events {
            if event.aggregate_type != User::TYPE || !counted(&event.event_type) {
                continue;
            }
            let Some(user) = user_of(&event.aggregate_id) else {
                continue;
            };
            let Some(data) = event.user_event().map_err(|e| (event.position, e.into()))? else {
                continue;
            };
            tally.add(event, user, data, &commits);
        }
        tally.write(db).await.map_err(|e| (first, e.into()))
    }

    async fn reset(&self, db: &mut PgConnection) -> Result<(), ProjectionError> {
        sqlx::query("DELETE FROM tenant_daily_activity")
            .execute(&mut *db)
            .await?;
        sqlx::query("DELETE FROM user_activity")
            .execute(&mut *db)
            .await?;
        Ok(())
    }
}

/// Reads the `activity` projection (and `user_compliance` for the totals).
#[derive(Clone)]
pub struct PgOverviewReadModel {
    pool: PgPool,
}

impl PgOverviewReadModel {
    /// Reads through `pool`.
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }
}

fn count(row: &sqlx::postgres::PgRow, column: &str) -> Result<u64, StoreError> {
    row.try_get::<i64, _>(column)
        .map(|n| u64::try_from(n).unwrap_or(0))
        .map_err(StoreError::new)
}

#[async_trait]
impl OverviewReadModel for PgOverviewReadModel {
    async fn user_totals(
        &self,
        tenant: &TenantId,
        now: DateTime<Utc>,
        grace: GraceCohort,
    ) -> Result<UserTotals, StoreError> {
        let (anyone, after) = match grace {
            GraceCohort::Nobody => (false, None),
            GraceCohort::Everyone => (true, None),
            GraceCohort::FirstSeenAfter(bound) => (true, Some(bound)),
        };
        // One statement, so the totals come from one snapshot.
        let row = sqlx::query(
            "SELECT count(*) AS seen, count(*) FILTER (WHERE enrolled) AS enrolled, \
               count(*) FILTER (WHERE NOT enrolled AND $2 \
                 AND ($3::timestamptz IS NULL OR first_seen_at > $3)) AS in_grace, \
               (SELECT count(*) FROM user_activity \
                 WHERE tenant_id = $1 AND locked_until > $4) AS locked_out \
             FROM user_compliance WHERE tenant_id = $1",
        )
        .bind(tenant.as_str())
        .bind(anyone)
        .bind(after)
        .bind(now)
        .fetch_one(&self.pool)
        .await
        .map_err(StoreError::new)?;
        Ok(UserTotals {
            seen: count(&row, "seen")?,
            enrolled: count(&row, "enrolled")?,
            in_grace: count(&row, "in_grace")?,
            locked_out: count(&row, "locked_out")?,
        })
    }

    async fn daily_activity(
        &self,
        tenant: &TenantId,
        first: NaiveDate,
        last: NaiveDate,
    ) -> Result<Vec<DayCount>, StoreError> {
        let rows = sqlx::query(
            "SELECT day, sign_ins, failed_codes FROM tenant_daily_activity \
             WHERE tenant_id = $1 AND day BETWEEN $2 AND $3 ORDER BY day",
        )
        .bind(tenant.as_str())
        .bind(first)
        .bind(last)
        .fetch_all(&self.pool)
        .await
        .map_err(StoreError::new)?;
        rows.iter()
            .map(|row| {
                Ok(DayCount {
                    day: row.try_get("day").map_err(StoreError::new)?,
                    sign_ins: count(row, "sign_ins")?,
                    failed_codes: count(row, "failed_codes")?,
                })
            })
            .collect()
    }
}
