//! One lookup per tenant and name at a time, and its answer kept for a short while.
//!
//! Every new connection to a tenant's provider looks its name up, so a burst of sends started
//! as many lookups of one name as it had sends: enough to spend a slow tenant's few places and
//! have its sends refused as busy, and to hold blocking threads for nothing. Callers of the same
//! tenant and name now wait for the lookup already running, and an answer is kept for
//! [`super::Limits::remember`]. Only the resolver's answer is kept: every caller still checks
//! each address against the SSRF rule, and connects to the address it checked. A failed lookup
//! is not kept, so a name that does not answer is asked again (and counted) at each send.
//!
//! What is kept is bounded: [`PER_TENANT`] answers per tenant (a tenant checking settings with
//! ever new names, from a wildcard zone, keeps only so many, and others' answers are still
//! kept), answers of at most [`ADDRESSES`] addresses, and [`MOST`] answers in all. Expired
//! entries are pruned each time the table has doubled and every [`PRUNE_EVERY`], so a crowd
//! costs a scan now and then, not at every lookup.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use futures::future::{FutureExt, Shared, WeakShared};
use tokio::time::Instant;
use twofold_domain::TenantId;

use super::LookupError;

/// A lookup's answer, as every caller waiting for it gets it (ports as the resolver gave them).
pub(super) type Answer = Result<Vec<SocketAddr>, LookupError>;
type Lookup = Pin<Box<dyn Future<Output = Answer> + Send>>;
type Running = Shared<Lookup>;

/// Answers kept in all: past it a lookup is still shared while it runs, but not kept.
const MOST: usize = 16_384;
/// Answers kept per tenant (a tenant has three providers, each with one name).
pub(super) const PER_TENANT: usize = 64;
/// How often expired answers are pruned, whatever the table's size.
const PRUNE_EVERY: Duration = Duration::from_secs(10);
/// The most addresses in a kept answer: a larger one (a name server's answer can hold
/// thousands) is used once, as before, not kept.
pub(super) const ADDRESSES: usize = 16;

enum Entry {
    /// Weak: when every caller has stopped waiting, the lookup is dropped (and lags) as before.
    Running { id: u64, lookup: WeakShared<Lookup> },
    Answered {
        addrs: Vec<SocketAddr>,
        until: Instant,
    },
}

#[derive(Default)]
struct Table {
    entries: HashMap<(TenantId, String), Entry>,
    /// The answers kept per tenant, expired ones included until they are pruned or replaced.
    kept: HashMap<TenantId, usize>,
    kept_in_all: usize,
    next_id: u64,
    prune_past: usize,
    /// When expired answers are pruned in any case: they count against the bounds until then,
    /// and a table that never doubles would otherwise keep them for good.
    prune_at: Option<Instant>,
}

impl Table {
    /// Counts an answer that left the table.
    fn forget(&mut self, tenant: &TenantId) {
        self.kept_in_all -= 1;
        if let Some(n) = self.kept.get_mut(tenant) {
            *n -= 1;
            if *n == 0 {
                self.kept.remove(tenant);
            }
        }
    }

    fn prune(&mut self, now: Instant) {
        let mut gone = Vec::new();
        self.entries.retain(|(tenant, _), entry| match entry {
            Entry::Running { lookup, .. } => lookup.upgrade().is_some(),
            Entry::Answered { until, .. } => {
                let keep = now < *until;
                if !keep {
                    gone.push(tenant.clone());
                }
                keep
            }
        });
        for tenant in &gone {
            self.forget(tenant);
        }
        self.prune_past = (2 * self.entries.len()).max(1024);
        self.prune_at = Some(now + PRUNE_EVERY);
    }
}

/// What a caller is to wait for.
pub(super) enum Found {
    Answer(Vec<SocketAddr>),
    /// A lookup to wait for: it records its own end ([`Answers::ended`]) before any caller
    /// sees its answer, so a caller arriving in between joins it rather than starting another.
    Wait(Running),
}

#[derive(Default)]
pub(super) struct Answers {
    table: Mutex<Table>,
}

impl Answers {
    /// The kept answer for `tenant`'s `host`, the lookup running for it, or the one `start`
    /// makes (in the same critical section, so two callers never both start one), given the
    /// id it is to end with.
    pub(super) fn find_or_start(
        &self,
        tenant: &TenantId,
        host: &str,
        start: impl FnOnce(u64) -> Lookup,
    ) -> Found {
        let now = Instant::now();
        let key = (tenant.clone(), host.to_ascii_lowercase());
        let mut table = self.table.lock().unwrap_or_else(PoisonError::into_inner);
        match table.entries.get(&key) {
            Some(Entry::Answered { addrs, until }) if now < *until => {
                return Found::Answer(addrs.clone());
            }
            Some(Entry::Running { lookup, .. }) => {
                if let Some(running) = lookup.upgrade() {
                    return Found::Wait(running);
                }
            }
            _ => {}
        }
        table.next_id += 1;
        let id = table.next_id;
        let running = start(id).shared();
        let Some(lookup) = running.downgrade() else {
            return Found::Wait(running);
        };
        if let Some(Entry::Answered { .. }) =
            table.entries.insert(key, Entry::Running { id, lookup })
        {
            table.forget(tenant);
        }
        if table.entries.len() > table.prune_past || table.prune_at.is_none_or(|at| now >= at) {
            table.prune(now);
        }
        Found::Wait(running)
    }

    /// Records the end of lookup `id`: its answer kept until `until`, or its entry removed if
    /// it failed or is not to be kept. Nothing changes if another lookup has taken the entry
    /// meanwhile.
    pub(super) fn ended(
        &self,
        tenant: &TenantId,
        host: &str,
        id: u64,
        answer: &Answer,
        until: Instant,
    ) {
        let key = (tenant.clone(), host.to_ascii_lowercase());
        let mut table = self.table.lock().unwrap_or_else(PoisonError::into_inner);
        let current = matches!(
            table.entries.get(&key),
            Some(Entry::Running { id: running, .. }) if *running == id
        );
        if !current {
            return;
        }
        let room = table.kept_in_all < MOST
            && table.kept.get(tenant).copied().unwrap_or_default() < PER_TENANT;
        match answer {
            Ok(addrs) if room && addrs.len() <= ADDRESSES => {
                let addrs = addrs.clone();
                table.entries.insert(key, Entry::Answered { addrs, until });
                table.kept_in_all += 1;
                *table.kept.entry(tenant.clone()).or_default() += 1;
            }
            _ => {
                table.entries.remove(&key);
            }
        }
    }

    /// Whether an answer is kept for `tenant`'s `host`, and how many callers wait for its
    /// running lookup.
    #[cfg(test)]
    pub(super) fn state(&self, tenant: &TenantId, host: &str) -> (bool, usize) {
        let key = (tenant.clone(), host.to_ascii_lowercase());
        let table = self.table.lock().unwrap_or_else(PoisonError::into_inner);
        match table.entries.get(&key) {
            Some(Entry::Answered { .. }) => (true, 0),
            Some(Entry::Running { lookup, .. }) => (
                false,
                lookup
                    .upgrade()
                    .and_then(|running| running.strong_count())
                    .map_or(0, |n| n - 1),
            ),
            None => (false, 0),
        }
    }
}
