//! One lookup per tenant and name at a time, and its answer kept for a short while.
//!
//! Every new connection to a tenant's provider looks its name up, so a burst of sends started
//! as many lookups of one name as it had sends: enough to spend a slow tenant's few places and
//! have its sends refused as busy, and to hold blocking threads for nothing. Callers of the same
//! tenant and name now wait for the lookup already running, and an answer is kept for
//! [`super::Limits::remember`]. Only the resolver's answer is kept: every caller still checks
//! each address against the SSRF rule, and connects to the address it checked. A failed lookup
//! is not kept, so a name that does not answer is asked again (and counted) at each send.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Mutex, PoisonError};

use futures::future::{FutureExt, Shared, WeakShared};
use tokio::time::Instant;
use twofold_domain::TenantId;

use super::LookupError;

/// A lookup's answer, as every caller waiting for it gets it (ports as the resolver gave them).
pub(super) type Answer = Result<Vec<SocketAddr>, LookupError>;
type Running = Shared<Pin<Box<dyn Future<Output = Answer> + Send>>>;

/// Entries past which expired answers are pruned, and the most kept: past it a lookup is still
/// shared while it runs, but its answer is not kept.
const MOST: usize = 16_384;

enum Entry {
    /// Weak: when every caller has stopped waiting, the lookup is dropped (and lags) as before.
    Running {
        id: u64,
        lookup: WeakShared<Pin<Box<dyn Future<Output = Answer> + Send>>>,
    },
    Answered {
        addrs: Vec<SocketAddr>,
        until: Instant,
    },
}

#[derive(Default)]
struct Table {
    entries: HashMap<(TenantId, String), Entry>,
    next_id: u64,
    prune_past: usize,
}

/// What a caller is to wait for.
pub(super) enum Found {
    Answer(Vec<SocketAddr>),
    /// A lookup to wait for, and its id (to record its end).
    Wait(u64, Running),
}

#[derive(Default)]
pub(super) struct Answers {
    table: Mutex<Table>,
}

impl Answers {
    /// The kept answer for `tenant`'s `host`, the lookup running for it, or the one `start`
    /// makes (in the same critical section, so two callers never both start one).
    pub(super) fn find_or_start(
        &self,
        tenant: &TenantId,
        host: &str,
        start: impl FnOnce() -> Pin<Box<dyn Future<Output = Answer> + Send>>,
    ) -> Found {
        let now = Instant::now();
        let key = (tenant.clone(), host.to_ascii_lowercase());
        let mut table = self.table.lock().unwrap_or_else(PoisonError::into_inner);
        match table.entries.get(&key) {
            Some(Entry::Answered { addrs, until }) if now < *until => {
                return Found::Answer(addrs.clone());
            }
            Some(Entry::Running { id, lookup }) => {
                if let Some(running) = lookup.upgrade() {
                    return Found::Wait(*id, running);
                }
            }
            _ => {}
        }
        let running = start().shared();
        let Some(lookup) = running.downgrade() else {
            return Found::Wait(0, running);
        };
        table.next_id += 1;
        let id = table.next_id;
        table.entries.insert(key, Entry::Running { id, lookup });
        if table.entries.len() > table.prune_past {
            table.entries.retain(|_, entry| match entry {
                Entry::Running { lookup, .. } => lookup.upgrade().is_some(),
                Entry::Answered { until, .. } => now < *until,
            });
            table.prune_past = (2 * table.entries.len()).clamp(1024, MOST);
        }
        Found::Wait(id, running)
    }

    /// Records the end of lookup `id`: its answer kept until `until`, or its entry removed if
    /// it failed. Nothing changes if another lookup has taken the entry meanwhile.
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
        if !matches!(table.entries.get(&key), Some(Entry::Running { id: current, .. }) if *current == id)
        {
            return;
        }
        match answer {
            Ok(addrs) if table.entries.len() < MOST => {
                let addrs = addrs.clone();
                table.entries.insert(key, Entry::Answered { addrs, until });
            }
            _ => {
                table.entries.remove(&key);
            }
        }
    }
}
