//! Where the hosted pages' links, browser sessions and results are kept: server-side rows found
//! by the keyed hash of the random secret the browser or the tenant holds, so a copy of the table
//! opens nothing and redeems nothing.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use twofold_domain::hosted::{Purpose, ReturnUrl};
use twofold_domain::secrets::SealedSecret;
use twofold_domain::tenant::KeyedHash;
use twofold_domain::{Locale, Method, TenantId, UserId};

use crate::auth::KeyPrincipal;
use crate::StoreError;

/// A link as the tenant's backend asked for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostedLink {
    /// The link's public id, which its result is redeemed with.
    pub id: String,
    /// The APP key that asked: the pages act as it, and end when it is revoked.
    pub key: KeyPrincipal,
    pub user_id: UserId,
    pub purpose: Purpose,
    pub return_url: ReturnUrl,
    pub locale: Option<Locale>,
    pub created_at: DateTime<Utc>,
}

/// How a flow ended, for the tenant's backend to redeem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostedOutcome {
    /// The id of the link whose visit this was.
    pub link_id: String,
    pub tenant_id: TenantId,
    pub user_id: UserId,
    pub purpose: Purpose,
    /// Whether the user completed the flow (false: cancelled).
    pub completed: bool,
    /// The method the user proved or enrolled.
    pub method: Option<Method>,
    /// The trusted-device token of a sign-in that trusted the browser, sealed under the
    /// tenant's data key until it is redeemed.
    pub device_token: Option<SealedSecret>,
    pub created_at: DateTime<Utc>,
}

/// Links, the sessions they open and their results.
#[async_trait]
pub trait HostedStore: Send + Sync {
    /// Records a new link, ending the unopened links of the same user in the same tenant (a new
    /// sign-in's link replaces an abandoned one, and one user cannot fill the tenant's cap).
    async fn create_link(&self, link_hash: &KeyedHash, link: &HostedLink)
        -> Result<(), StoreError>;

    /// Opens the link once: binds it to a browser session and returns it, unless it is unknown,
    /// was opened before, was created before `created_after`, or its key was revoked.
    async fn open(
        &self,
        link_hash: &KeyedHash,
        session_hash: &KeyedHash,
        now: DateTime<Utc>,
        created_after: DateTime<Utc>,
    ) -> Result<Option<HostedLink>, StoreError>;

    /// The link of a live browser session: opened, not finished, created after
    /// `created_after`, its key not revoked.
    async fn find(
        &self,
        session_hash: &KeyedHash,
        created_after: DateTime<Utc>,
    ) -> Result<Option<HostedLink>, StoreError>;

    /// Ends the session and records its outcome under `code_hash`, in one transaction; `false`
    /// (and nothing recorded) when the session had already ended.
    async fn finish(
        &self,
        session_hash: &KeyedHash,
        code_hash: &KeyedHash,
        outcome: &HostedOutcome,
    ) -> Result<bool, StoreError>;

    /// Takes the outcome recorded under `code_hash` for `tenant` and link `link_id` once:
    /// `None` when it is unknown, another tenant's or link's, already redeemed or created
    /// before `created_after`.
    async fn redeem(
        &self,
        code_hash: &KeyedHash,
        tenant: &TenantId,
        link_id: &str,
        now: DateTime<Utc>,
        created_after: DateTime<Utc>,
    ) -> Result<Option<HostedOutcome>, StoreError>;

    /// How many of `tenant`'s links made after `since` are not opened yet.
    async fn unopened_links(
        &self,
        tenant: &TenantId,
        since: DateTime<Utc>,
    ) -> Result<u64, StoreError>;

    /// Deletes links, sessions and outcomes created before `before`; returns how many.
    async fn prune(&self, before: DateTime<Utc>) -> Result<u64, StoreError>;
}
