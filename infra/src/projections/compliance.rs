//! The `user_compliance` projection: one row per end user the tenant has shown us, with the
//! factors that make them enrolled (passkeys and security keys included), and the read model `compliance` answers from. Every write
//! is idempotent (an upsert or an assignment), so replaying an event yields the same row.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use cqrs_es::Aggregate;
use sqlx::{PgConnection, PgPool, Row};
use twofold_domain::channel::Channel;
use twofold_domain::user::{User, UserEvent};
use twofold_domain::{Method, TenantId, UserId};
use twofold_services::ports::{ComplianceReadModel, NotEnrolledUser, UserCounts};
use twofold_services::StoreError;

use crate::processor::{Projection, ProjectionError, StoredEvent};

/// Keeps `user_compliance`.
pub struct ComplianceProjection;

/// The tenant's id for the user, from an aggregate id `{tenant}/user/{user}` (the user id may
/// itself contain slashes).
pub(crate) fn user_of(aggregate_id: &str) -> Option<&str> {
    let mut parts = aggregate_id.splitn(3, '/');
    let _tenant = parts.next()?;
    (parts.next()? == "user").then_some(())?;
    parts.next()
}

/// The factor columns an event sets, as SQL assignments.
fn assignments(event: &UserEvent) -> Option<&'static str> {
    Some(match event {
        UserEvent::TotpEnabled { .. } => "totp = true",
        // A replacement waits beside the verified address, which keeps working meanwhile.
        UserEvent::EmailFactorAdded {
            replacing: false, ..
        } => "email_verified = false",
        UserEvent::PhoneFactorAdded {
            replacing: false, ..
        } => "phone_verified = false",
        UserEvent::FactorRemoved { method, .. } => match method {
            Method::Totp => "totp = false",
            Method::Email => "email_verified = false",
            Method::Sms => "phone_verified = false",
            Method::WebAuthn => "webauthn_credentials = '{}'",
            Method::RecoveryCode => return None,
        },
        UserEvent::ChannelVerified {
            channel: Channel::Email,
            ..
        } => "email_verified = true",
        UserEvent::ChannelVerified {
            channel: Channel::Sms,
            ..
        } => "phone_verified = true",
        UserEvent::TwoFactorDisabled { .. }
        | UserEvent::TwoFactorReset { .. }
        | UserEvent::UserErased { .. } => {
            "totp = false, email_verified = false, phone_verified = false, \
             webauthn_credentials = '{}'"
        }
        _ => return None,
    })
}

/// The change a WebAuthn event makes to the user's set of credentials, as an assignment that
/// takes the credential id as `$4`.
fn credential_assignment(event: &UserEvent) -> Option<(&'static str, &str)> {
    Some(match event {
        UserEvent::WebAuthnCredentialRegistered { credential_id, .. } => (
            "webauthn_credentials = array_append(array_remove(webauthn_credentials, $4), $4)",
            credential_id,
        ),
        UserEvent::WebAuthnCredentialRemoved { credential_id, .. } => (
            "webauthn_credentials = array_remove(webauthn_credentials, $4)",
            credential_id,
        ),
        _ => return None,
    })
}

#[async_trait]
impl Projection for ComplianceProjection {
    fn name(&self) -> &'static str {
        "user_compliance"
    }

    fn reads(&self, _aggregate_type: &str) -> bool {
        // Sign-ins must not wait for it: `compliance` catches up itself before reading.
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

    /// One statement records every user first seen in the batch (a user is first seen at the
    /// first event of their stream, sequence 1, and most events change nothing else), then the
    /// few events that change factors are applied in order.
    async fn apply_all(
        &self,
        db: &mut PgConnection,
        events: &[StoredEvent],
    ) -> Result<(), (i64, ProjectionError)> {
        let first = events.first().map_or(0, |e| e.position);
        let (mut tenants, mut users, mut times) = (Vec::new(), Vec::new(), Vec::new());
        let mut changes = Vec::new();
        for event in events {
            if event.aggregate_type != User::TYPE {
                continue;
            }
            let Some(user) = user_of(&event.aggregate_id) else {
                continue;
            };
            let Some(data) = event.user_event().map_err(|e| (event.position, e.into()))? else {
                continue;
            };
            if event.sequence == 1 {
                tenants.push(event.tenant_id.as_str());
                users.push(user);
                times.push(data.at());
            }
            if let Some(set) = assignments(data) {
                changes.push((event, user, set, None, data.at()));
            } else if let Some((set, credential)) = credential_assignment(data) {
                changes.push((event, user, set, Some(credential.to_owned()), data.at()));
            }
        }
        if !users.is_empty() {
            sqlx::query(
                "INSERT INTO user_compliance (tenant_id, user_id, first_seen_at, updated_at) \
                 SELECT t, u, at, at FROM unnest($1::text[], $2::text[], $3::timestamptz[]) \
                   AS s(t, u, at) \
                 ON CONFLICT (tenant_id, user_id) DO NOTHING",
            )
            .bind(&tenants)
            .bind(&users)
            .bind(&times)
            .execute(&mut *db)
            .await
            .map_err(|e| (first, e.into()))?;
        }
        // In order; consecutive changes with the same assignment, each on another user, in
        // one statement (an enrollment wave is mostly `totp = true`).
        let mut run = Run::default();
        for (event, user, set, credential, at) in changes {
            let joins = credential.is_none()
                && run.set == Some(set)
                && !run
                    .rows
                    .iter()
                    .any(|(e, u, _)| e.tenant_id == event.tenant_id && *u == user);
            if !joins {
                run.flush(db).await?;
            }
            let Some(credential) = credential else {
                run.set = Some(set);
                run.rows.push((event, user, at));
                continue;
            };
            sqlx::query(&format!(
                "UPDATE user_compliance SET {set}, updated_at = $3 \
                 WHERE tenant_id = $1 AND user_id = $2"
            ))
            .bind(&event.tenant_id)
            .bind(user)
            .bind(at)
            .bind(credential)
            .execute(&mut *db)
            .await
            .map_err(|e| (event.position, e.into()))?;
        }
        run.flush(db).await
    }

    async fn reset(&self, db: &mut PgConnection) -> Result<(), ProjectionError> {
        sqlx::query("DELETE FROM user_compliance")
            .execute(&mut *db)
            .await?;
        Ok(())
    }
}

/// Consecutive factor changes with the same assignment, on distinct users.
#[derive(Default)]
struct Run<'a> {
    set: Option<&'static str>,
    rows: Vec<(&'a StoredEvent, &'a str, DateTime<Utc>)>,
}

impl Run<'_> {
    async fn flush(&mut self, db: &mut PgConnection) -> Result<(), (i64, ProjectionError)> {
        let (Some(set), Some(first)) = (self.set, self.rows.first()) else {
            return Ok(());
        };
        let position = first.0.position;
        sqlx::query(&format!(
            "UPDATE user_compliance c SET {set}, updated_at = d.at \
             FROM unnest($1::text[], $2::text[], $3::timestamptz[]) AS d(t, u, at) \
             WHERE c.tenant_id = d.t AND c.user_id = d.u"
        ))
        .bind(
            self.rows
                .iter()
                .map(|(e, _, _)| e.tenant_id.as_str())
                .collect::<Vec<_>>(),
        )
        .bind(self.rows.iter().map(|(_, u, _)| *u).collect::<Vec<_>>())
        .bind(self.rows.iter().map(|(_, _, at)| *at).collect::<Vec<_>>())
        .execute(&mut *db)
        .await
        .map_err(|e| (position, e.into()))?;
        self.rows.clear();
        self.set = None;
        Ok(())
    }
}

/// Reads the `user_compliance` projection.
#[derive(Clone)]
pub struct PgComplianceReadModel {
    pool: PgPool,
}

impl PgComplianceReadModel {
    /// Reads through `pool`.
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }
}

/// A stored user id that no longer parses means the view is corrupt: an internal error.
#[derive(Debug, thiserror::Error)]
#[error("corrupt user_compliance row")]
struct CorruptRow;

#[async_trait]
impl ComplianceReadModel for PgComplianceReadModel {
    async fn counts(&self, tenant: &TenantId) -> Result<UserCounts, StoreError> {
        let row = sqlx::query(
            "SELECT count(*) AS total, count(*) FILTER (WHERE enrolled) AS enrolled \
             FROM user_compliance WHERE tenant_id = $1",
        )
        .bind(tenant.as_str())
        .fetch_one(&self.pool)
        .await
        .map_err(StoreError::new)?;
        let get = |c: &str| {
            row.try_get::<i64, _>(c)
                .map(|n| u64::try_from(n).unwrap_or(0))
                .map_err(StoreError::new)
        };
        Ok(UserCounts {
            total: get("total")?,
            enrolled: get("enrolled")?,
        })
    }

    async fn not_enrolled(
        &self,
        tenant: &TenantId,
        after: Option<&(DateTime<Utc>, UserId)>,
        limit: u32,
    ) -> Result<Vec<NotEnrolledUser>, StoreError> {
        let rows = sqlx::query(
            "SELECT user_id, first_seen_at FROM user_compliance \
             WHERE tenant_id = $1 AND NOT enrolled \
               AND ($2::timestamptz IS NULL OR (first_seen_at, user_id) > ($2, $3)) \
             ORDER BY first_seen_at, user_id LIMIT $4",
        )
        .bind(tenant.as_str())
        .bind(after.map(|(at, _)| *at))
        .bind(after.map(|(_, id)| id.as_str().to_owned()))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(StoreError::new)?;
        rows.iter()
            .map(|row| {
                let id: String = row.try_get("user_id").map_err(StoreError::new)?;
                Ok(NotEnrolledUser {
                    user_id: UserId::parse(&id).map_err(|_| StoreError::new(CorruptRow))?,
                    first_seen_at: row.try_get("first_seen_at").map_err(StoreError::new)?,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_ids_come_from_user_aggregates_only() {
        assert_eq!(user_of("acme/user/alice"), Some("alice"));
        assert_eq!(user_of("acme/user/a/b"), Some("a/b"));
        assert_eq!(user_of("acme/tenant"), None);
        assert_eq!(user_of("acme/other/x"), None);
    }
}
