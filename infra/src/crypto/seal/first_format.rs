//! What `twofold keys reseal` reads to find the seals still in the first format: the tenants
//! that have a first-format key, and the users of each.

use sqlx::PgPool;
use twofold_domain::{TenantId, UserId};
use twofold_services::StoreError;

/// The tenants that still have a first-format key (`twofold keys reseal` works through them).
pub async fn tenants_with_first_format_keys(keys: &PgPool) -> Result<Vec<TenantId>, StoreError> {
    let ids: Vec<String> = sqlx::query_scalar("SELECT tenant_id FROM tenant_data_keys ORDER BY 1")
        .fetch_all(keys)
        .await
        .map_err(StoreError::new)?;
    Ok(ids
        .iter()
        .filter_map(|id| TenantId::parse(id).ok())
        .collect())
}

/// Every user the event log knows of in `tenant`, and how many user aggregates of it have an id
/// this version does not accept (they cannot be checked, so they count against retiring the
/// tenant's first-format key).
pub async fn users_of(
    events: &PgPool,
    tenant: &TenantId,
) -> Result<(Vec<UserId>, usize), StoreError> {
    let prefix = format!("{}/user/", tenant.as_str());
    let ids: Vec<String> = sqlx::query_scalar(
        "SELECT DISTINCT aggregate_id FROM events \
         WHERE aggregate_type = 'user' AND tenant_id = $1 ORDER BY 1",
    )
    .bind(tenant.as_str())
    .fetch_all(events)
    .await
    .map_err(StoreError::new)?;
    let parsed: Vec<UserId> = ids
        .iter()
        .filter_map(|id| id.strip_prefix(&prefix))
        .filter_map(|user| UserId::parse(user).ok())
        .collect();
    let unparsable = ids.len() - parsed.len();
    Ok((parsed, unparsable))
}
