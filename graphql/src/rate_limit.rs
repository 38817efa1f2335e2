//! Per-key request rates and per-tenant shares of the instance, applied to every operation over
//! HTTP and WebSocket alike.
//!
//! - Each API key has a token bucket (`governor`): `requestsPerSecondPerKey` of its tenant's
//!   policy, or the operator's default, refilled continuously, holding two seconds' worth. An
//!   empty bucket answers `RATE_LIMITED` with `extensions.retryAfterSeconds` before the
//!   document is even parsed: both transports call [`RateLimits::charge`] first. The operator
//!   bounds what an ADMIN may set.
//! - Each tenant may have at most `tenant_concurrency` operations executing at once on this
//!   instance, below the database pool's size: a burst of one tenant queues behind its own
//!   share (for at most `queue_wait`, then `RATE_LIMITED`) instead of taking every connection and
//!   making other tenants' requests time out.
//!
//! Both are counted per instance. The operator token and unauthenticated requests are not
//! limited here (the latter run nothing: the guards refuse them).

use std::any::TypeId;
use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_graphql::extensions::{ExtensionContext, NextExecute};
use async_graphql::{Request, Response, ServerError};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, Quota};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use twofold_domain::TenantId;
use twofold_services::tenants::TenantService;
use twofold_services::{Call, ErrorCode, KeyPrincipal, Principal};

use crate::error::coded;
use crate::guard::Caller;

/// What the operator sets through the environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateLimitSettings {
    /// `TWOFOLD_RATE_LIMIT_DEFAULT`: requests per second per key when the tenant sets none.
    pub default_per_second: u32,
    /// `TWOFOLD_RATE_LIMIT_MIN`: the lowest rate an ADMIN may set.
    pub min_per_second: u32,
    /// `TWOFOLD_RATE_LIMIT_MAX`: the highest rate an ADMIN may set.
    pub max_per_second: u32,
    /// `TWOFOLD_TENANT_MAX_CONCURRENT_REQUESTS`: operations of one tenant executing at once on
    /// an instance; by default three quarters of `TWOFOLD_DB_POOL_SIZE` (default 8), at least 1.
    pub tenant_concurrency: usize,
    /// How long an operation waits for its tenant's share before `RATE_LIMITED`.
    pub queue_wait: Duration,
}

impl Default for RateLimitSettings {
    fn default() -> Self {
        Self::from_lookup(|_| None).unwrap_or(Self {
            default_per_second: 200,
            min_per_second: 1,
            max_per_second: 10_000,
            tenant_concurrency: 6,
            queue_wait: Duration::from_secs(5),
        })
    }
}

impl RateLimitSettings {
    /// From `TWOFOLD_*` variables read through `get`.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, String> {
        let number = |var: &str, default: u64, min: u64, max: u64| -> Result<u64, String> {
            match get(var) {
                None => Ok(default),
                Some(v) => v
                    .trim()
                    .parse::<u64>()
                    .ok()
                    .filter(|n| (min..=max).contains(n))
                    .ok_or_else(|| format!("{var} must be a whole number from {min} to {max}")),
            }
        };
        let narrow = |n: u64| u32::try_from(n).unwrap_or(u32::MAX);
        let max = narrow(number("TWOFOLD_RATE_LIMIT_MAX", 10_000, 1, 1_000_000)?);
        let min = narrow(number("TWOFOLD_RATE_LIMIT_MIN", 1, 1, u64::from(max))?);
        let default = narrow(number(
            "TWOFOLD_RATE_LIMIT_DEFAULT",
            200.clamp(u64::from(min), u64::from(max)),
            u64::from(min),
            u64::from(max),
        )?);
        let pool = number("TWOFOLD_DB_POOL_SIZE", 8, 2, 10_000)?;
        let concurrency = number(
            "TWOFOLD_TENANT_MAX_CONCURRENT_REQUESTS",
            (pool * 3 / 4).max(1),
            1,
            pool - 1,
        )?;
        Ok(Self {
            default_per_second: default,
            min_per_second: min,
            max_per_second: max,
            tenant_concurrency: usize::try_from(concurrency).unwrap_or(1),
            queue_wait: Duration::from_secs(5),
        })
    }

    /// From the process environment; a malformed variable is logged and its default used (the
    /// schema is built after the configuration was read, so this cannot stop start-up).
    pub fn from_env() -> Self {
        Self::from_lookup(|k| std::env::var(k).ok()).unwrap_or_else(|e| {
            tracing::error!(error = %e, "rate-limit settings: using the defaults");
            Self::default()
        })
    }
}

/// The buckets and shares of this instance. Lives in the schema's data.
pub struct RateLimits {
    settings: RateLimitSettings,
    tenants: TenantService,
    /// Per key id: the rate its bucket was built for, and the bucket.
    buckets: Mutex<HashMap<String, (u32, Arc<DefaultDirectRateLimiter>)>>,
    shares: Shares,
}

/// Each tenant's share of the instance: a semaphore of `concurrency` permits per tenant.
struct Shares {
    concurrency: usize,
    by_tenant: Mutex<HashMap<TenantId, Arc<Semaphore>>>,
}

impl Shares {
    fn new(concurrency: usize) -> Self {
        Self {
            concurrency,
            by_tenant: Mutex::new(HashMap::new()),
        }
    }

    fn of(&self, tenant: &TenantId) -> Arc<Semaphore> {
        let mut by_tenant = self.by_tenant.lock().unwrap_or_else(|e| e.into_inner());
        by_tenant
            .entry(tenant.clone())
            .or_insert_with(|| Arc::new(Semaphore::new(self.concurrency)))
            .clone()
    }
}

fn rate_limited(message: &str, retry_after_seconds: u64) -> ServerError {
    use async_graphql::ErrorExtensions;
    coded(ErrorCode::RateLimited, message)
        .extend_with(|_, ext| ext.set("retryAfterSeconds", retry_after_seconds))
        .into_server_error(async_graphql::Pos::default())
}

impl RateLimits {
    /// Limits with `settings`, reading tenants' policies through `tenants` (cached).
    pub fn new(settings: RateLimitSettings, tenants: TenantService) -> Self {
        Self {
            shares: Shares::new(settings.tenant_concurrency),
            settings,
            tenants,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Refuses a policy rate outside the operator's bounds (0 returns to the default).
    pub fn check_policy_rate(&self, rate: Option<i32>) -> async_graphql::Result<()> {
        let s = &self.settings;
        match rate {
            Some(r)
                if r != 0
                    && !(i64::from(s.min_per_second)..=i64::from(s.max_per_second))
                        .contains(&i64::from(r)) =>
            {
                Err(coded(
                    ErrorCode::InvalidInput,
                    format!(
                        "requestsPerSecondPerKey must be {} to {} (set by the operator), or 0 \
                         for the default of {}",
                        s.min_per_second, s.max_per_second, s.default_per_second
                    ),
                ))
            }
            _ => Ok(()),
        }
    }

    /// The rate of the tenant's keys: its policy's, within the operator's bounds, or the default.
    async fn rate_of(&self, tenant: &TenantId) -> u32 {
        let s = &self.settings;
        let policy = self
            .tenants
            .tenant(tenant)
            .await
            .ok()
            .and_then(|t| t.policy.requests_per_second_per_key);
        policy
            .unwrap_or(s.default_per_second)
            .clamp(s.min_per_second, s.max_per_second)
    }

    /// Whether `key` is still active, asked again when an operation had to wait for its
    /// tenant's share: it was authenticated when the request arrived, and may have been revoked
    /// during the wait (up to `queue_wait`).
    async fn still_active(
        &self,
        key: &KeyPrincipal,
    ) -> Result<bool, twofold_services::ServiceError> {
        Ok(self
            .tenants
            .api_keys(&key.tenant_id)
            .await?
            .iter()
            .any(|k| k.id == key.key_id && k.revoked_at.is_none()))
    }

    /// Takes a place in the key's tenant's share of the instance, to be held while the
    /// request runs: at once if one is free, else after waiting up to `queue_wait` (and the key
    /// is then checked again: it may have been revoked meanwhile). The API's operations and the
    /// console's pages both take one, so neither can hold every pooled connection.
    pub async fn admit(&self, key: &KeyPrincipal) -> Result<OwnedSemaphorePermit, ServerError> {
        let share = self.shares.of(&key.tenant_id);
        // A permit free at once: the key was checked microseconds ago, when the request came.
        if let Ok(permit) = share.clone().try_acquire_owned() {
            return Ok(permit);
        }
        let Ok(Ok(permit)) =
            tokio::time::timeout(self.settings.queue_wait, share.acquire_owned()).await
        else {
            tracing::warn!(
                tenant = key.tenant_id.as_str(),
                "tenant's share of the instance is busy"
            );
            return Err(rate_limited(
                "the organisation has too many requests running at once: try again shortly",
                1,
            ));
        };
        match self.still_active(key).await {
            Ok(true) => Ok(permit),
            Ok(false) => Err(
                coded(ErrorCode::Unauthenticated, "invalid or revoked credentials")
                    .into_server_error(async_graphql::Pos::default()),
            ),
            Err(e) => {
                tracing::error!(error = ?e, "checking the key again failed");
                Err(coded(ErrorCode::Internal, "internal error")
                    .into_server_error(async_graphql::Pos::default()))
            }
        }
    }

    /// Charges one request to the caller's key: `RATE_LIMITED` with `retryAfterSeconds` when
    /// its bucket is empty. Called before the document is parsed (HTTP and WebSocket alike), so
    /// a key over its rate gets no parsing done either. The operator has no bucket.
    pub async fn charge(&self, caller: Option<&Principal>) -> Result<(), ServerError> {
        let Some(Principal::Key(key)) = caller else {
            return Ok(());
        };
        self.take_token(key).await.map_err(|seconds| {
            tracing::info!(key = key.key_id.as_str(), "request rate limit reached");
            rate_limited(
                "this API key sent too many requests: slow down and try again after \
                 retryAfterSeconds",
                seconds.max(1),
            )
        })
    }

    /// Takes one token from the key's bucket, or says how many seconds until one is there.
    async fn take_token(&self, key: &KeyPrincipal) -> Result<(), u64> {
        let rate = self.rate_of(&key.tenant_id).await;
        let bucket = {
            let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
            let entry = buckets
                .entry(key.key_id.as_str().to_owned())
                .or_insert_with(|| (rate, Arc::new(bucket(rate))));
            if entry.0 != rate {
                *entry = (rate, Arc::new(bucket(rate)));
            }
            entry.1.clone()
        };
        bucket.check().map_err(|not_until| {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            wait.as_secs() + u64::from(wait.subsec_nanos() > 0)
        })
    }
}

/// A bucket of `rate` tokens per second holding two seconds' worth.
fn bucket(rate: u32) -> DefaultDirectRateLimiter {
    let per_second = NonZeroU32::new(rate).unwrap_or(NonZeroU32::MIN);
    let burst = NonZeroU32::new(rate.saturating_mul(2)).unwrap_or(per_second);
    governor::RateLimiter::direct(Quota::per_second(per_second).allow_burst(burst))
}

/// The calling key: in the request's data over HTTP, in the connection's over WebSocket.
fn caller_key<'a>(
    ctx: &'a ExtensionContext<'_>,
    request: Option<&'a Request>,
) -> Option<&'a KeyPrincipal> {
    let from_request = request.and_then(|r| {
        r.data
            .get(&TypeId::of::<Caller>())
            .and_then(|d| d.downcast_ref::<Caller>())
    });
    match from_request
        .or_else(|| ctx.data_opt::<Caller>())?
        .0
        .as_ref()?
    {
        Principal::Key(key) => Some(key),
        Principal::Operator => None,
    }
}

/// Runs the operation in a place of the calling key's tenant's share, after a token of its
/// bucket (the schema's extension, [`crate::extension`], calls this on `execute`). Without
/// [`RateLimits`] in the schema's data, or without a key, it just runs.
pub(crate) async fn execute(
    ctx: &ExtensionContext<'_>,
    operation_name: Option<&str>,
    next: NextExecute<'_>,
) -> Response {
    let (Some(limits), Some(key)) = (ctx.data_opt::<Arc<RateLimits>>(), caller_key(ctx, None))
    else {
        return next.run(ctx, operation_name).await;
    };
    match limits.admit(key).await {
        Ok(place) => {
            // Held by the request's `Call` while the operation runs, and so also by any work it
            // leaves running once its caller is gone (`Call::keeping_place`).
            let call = ctx.data_opt::<Call>();
            let held_here = match call {
                Some(call) => {
                    call.admission().hold(place);
                    None
                }
                None => Some(place),
            };
            let response = next.run(ctx, operation_name).await;
            if let Some(call) = call {
                call.admission().let_go();
            }
            drop(held_here);
            response
        }
        Err(refusal) => Response::from_errors(vec![refusal]),
    }
}

#[cfg(test)]
#[path = "rate_limit_tests.rs"]
mod tests;
