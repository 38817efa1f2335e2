//! `twofold keys reseal`: every tenant that still has a first-format key, its users' seals and
//! its delivery settings moved to the new keys, then that key destroyed.

use twofold_infra::crypto::seal::{tenants_with_first_format_keys, users_of};
use twofold_services::RequestContext;

use crate::databases::Databases;
use crate::startup::{Delivery, StoreOptions, Wiring};

/// Runs it; fails (after doing what it could) if any tenant keeps its first-format key.
pub async fn run(
    databases: Databases,
    secrets: &twofold_infra::config::Secrets,
    delivery: &Delivery,
    settle_timeout: std::time::Duration,
) -> anyhow::Result<()> {
    let (events, keys) = (databases.events.clone(), databases.keys.clone());
    let stores = StoreOptions {
        settle_timeout,
        ..StoreOptions::default()
    };
    let wiring = Wiring::new(databases, secrets, delivery, stores).await?;
    let ctx = RequestContext::system("cli");
    let mut kept = vec![];
    for tenant in tenants_with_first_format_keys(&keys).await? {
        // One tenant's failure does not stop the others: each is done and reported on its own.
        match reseal_tenant(&wiring, &events, &tenant, &ctx).await {
            Ok((moved, left, retired)) => {
                crate::say!(
                    "Tenant {tenant}: {moved} seals moved to the new keys; first-format key {}.",
                    if retired { "destroyed" } else { "kept" }
                )?;
                if !retired {
                    kept.push(format!("{tenant} ({left} seals left)"));
                }
            }
            Err(e) => {
                eprintln!("Tenant {tenant}: {e}");
                kept.push(format!("{tenant} (failed: {e})"));
            }
        }
    }
    if !kept.is_empty() {
        anyhow::bail!(
            "first-format keys kept for {}: something is still sealed in the first format (an \
             instance still on an older version, or a user id this version does not accept); \
             run this again once every instance runs this version",
            kept.join(", ")
        );
    }
    crate::say!("No first-format key is left: an erasure now reaches everything ever sealed.")?;
    Ok(())
}

async fn reseal_tenant(
    wiring: &Wiring,
    events: &sqlx::PgPool,
    tenant: &twofold_domain::TenantId,
    ctx: &RequestContext,
) -> anyhow::Result<(usize, usize, bool)> {
    let fail = |e: twofold_services::ServiceError| anyhow::anyhow!("{e}");
    let (users, _) = users_of(events, tenant).await?;
    let moved = wiring
        .tenants
        .reseal(&wiring.users, tenant, &users, ctx)
        .await
        .map_err(fail)?;
    // Listed again: a user created meanwhile by an older instance must hold the key back.
    let (users, unlisted) = users_of(events, tenant).await?;
    let (left, retired) = wiring
        .tenants
        .retire_first_format_key(&wiring.users, tenant, &users, unlisted)
        .await
        .map_err(fail)?;
    Ok((moved, left, retired))
}
