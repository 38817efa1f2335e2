//! Name lookups for tenants' providers, bounded once a tenant's names are slow to answer.
//!
//! The system resolver (`getaddrinfo`) runs on Tokio's blocking threads and cannot be
//! cancelled: a caller that gives up at its timeout leaves the lookup running until the
//! resolver's own timeouts end it (5 s per try and name server by default, so tens of seconds
//! with several). A tenant whose provider names lead to a name server that never answers could
//! otherwise pile up hundreds of those threads, which the service's own lookups (PostgreSQL's
//! host, the operator's SMTP and SMS providers) and every other tenant share.
//!
//! A lookup lags once it has run for [`Limits::slow`] (names that answer do in milliseconds) or
//! every caller waiting for it stopped (its timeout, or cancelled requests), until the resolver
//! returns. A tenant with lagging lookups, or with one in the last [`Limits::cooldown`], is
//! slow: it may hold [`Limits::per_slow_tenant`] lookups, and while it has lagging ones it
//! starts none once [`Limits::lagging_in_all`] lag across tenants. Any tenant holds at most
//! [`Limits::per_tenant`]; past half of [`Limits::at_once`] every tenant is held to
//! [`Limits::per_slow_tenant`], and past [`Limits::at_once`] nothing starts, so that a few
//! tenants cannot take every place from the others, nor tenants together the blocking threads
//! from the service's own lookups.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures::FutureExt;
use tokio::time::Instant;

use twofold_domain::TenantId;

mod answers;

/// One lookup's answer, to come.
pub type Lookup = Pin<Box<dyn Future<Output = std::io::Result<Vec<SocketAddr>>> + Send>>;
/// Looks up a name and port.
pub type Resolve = Arc<dyn Fn(String, u16) -> Lookup + Send + Sync>;

/// How lookups are bounded.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// How long a caller waits for a name to resolve.
    pub timeout: Duration,
    /// How long a lookup runs before it lags.
    pub slow: Duration,
    /// How long a tenant stays slow after its last lagging lookup ended: a tenant that polls
    /// with silent names would otherwise get a fresh burst each time they drain.
    pub cooldown: Duration,
    /// Lookups any tenant may hold: twice the delivery worker's default of 32 sends at once,
    /// which one tenant's queue may fill.
    pub per_tenant: usize,
    /// Lookups a slow tenant may hold, and every tenant once half of `at_once` run.
    pub per_slow_tenant: usize,
    /// Lagging lookups of all tenants past which a tenant with lagging ones starts no other.
    pub lagging_in_all: usize,
    /// Tenant lookups running at once, past which none starts: half of Tokio's 512 blocking
    /// threads stay for the service's own lookups whatever tenants' callers ask.
    pub at_once: usize,
    /// How long an answer is kept for the tenant and name it was looked up for (see
    /// [`answers`]): a tenant's change of address reaches its sends this much later at most.
    pub remember: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(5),
            slow: Duration::from_secs(1),
            cooldown: Duration::from_secs(60),
            per_tenant: 64,
            per_slow_tenant: 4,
            lagging_in_all: 64,
            at_once: 256,
            remember: Duration::from_secs(30),
        }
    }
}

/// Why a lookup gave no addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LookupError {
    /// The tenant is slow and at its bound, or too many lookups run at once.
    Busy,
    /// The name did not resolve in time, or does not resolve.
    Failed,
}

/// A tenant's lookups still running, and until when it stays slow without any.
#[derive(Default, Clone, Copy)]
struct Held {
    prompt: usize,
    lagging: usize,
    slow_until: Option<Instant>,
}

impl Held {
    fn slow(&self, now: Instant) -> bool {
        self.lagging > 0 || self.slow_until.is_some_and(|until| now < until)
    }

    fn forgettable(&self, now: Instant) -> bool {
        self.prompt == 0 && self.lagging == 0 && !self.slow(now)
    }
}

#[derive(Default)]
struct Running {
    all: usize,
    lagging: usize,
    by_tenant: HashMap<TenantId, Held>,
    /// Tenants in the map past which it is pruned.
    prune_past: usize,
}

/// Where one lookup stands; changed only under the lock of [`Running`].
#[derive(Clone, Copy, PartialEq, Eq)]
enum Stage {
    Prompt,
    Lagging,
    Ended,
}

/// The bounded lookups of every tenant; one per process, shared by the senders and the
/// settings' check.
pub struct Lookups {
    running: Arc<Mutex<Running>>,
    limits: Limits,
    resolve: Resolve,
    answers: Arc<answers::Answers>,
}

impl std::fmt::Debug for Lookups {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lookups")
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

impl Default for Lookups {
    fn default() -> Self {
        Self::new()
    }
}

impl Lookups {
    /// The system resolver, with the default [`Limits`].
    pub fn new() -> Self {
        Self::with_resolver(
            Arc::new(|host: String, port: u16| -> Lookup {
                Box::pin(async move {
                    Ok(tokio::net::lookup_host((host.as_str(), port))
                        .await?
                        .collect())
                })
            }),
            Limits::default(),
        )
    }

    /// Another resolver (the tests' name server that never answers) and limits.
    pub fn with_resolver(resolve: Resolve, limits: Limits) -> Self {
        Self {
            running: Arc::default(),
            limits,
            resolve,
            answers: Arc::default(),
        }
    }

    /// The addresses of `host`, looked up for `tenant`: kept, being looked up for another
    /// caller, or looked up now.
    pub(crate) async fn resolve(
        &self,
        tenant: &TenantId,
        host: &str,
        port: u16,
    ) -> Result<Vec<SocketAddr>, LookupError> {
        let found = self.answers.find_or_start(tenant, host, |id| {
            let unstarted = Unstarted(self.start(tenant));
            let (answers, resolve, limits) =
                (self.answers.clone(), self.resolve.clone(), self.limits);
            let (tenant, host) = (tenant.clone(), host.to_owned());
            Box::pin(async move {
                // A panic would poison the shared future for every caller of this name while
                // any waits: it is a failed lookup instead.
                let lookup = look_up(unstarted, resolve, limits, host.clone());
                let answer = std::panic::AssertUnwindSafe(lookup)
                    .catch_unwind()
                    .await
                    .unwrap_or(Err(LookupError::Failed));
                answers.ended(
                    &tenant,
                    &host,
                    id,
                    &answer,
                    Instant::now() + limits.remember,
                );
                answer
            })
        });
        let addrs = match found {
            answers::Found::Answer(addrs) => addrs,
            answers::Found::Wait(lookup) => lookup.await?,
        };
        Ok(addrs
            .into_iter()
            .map(|addr| SocketAddr::new(addr.ip(), port))
            .collect())
    }

    fn start(&self, tenant: &TenantId) -> Option<Tracked> {
        let limits = &self.limits;
        let now = Instant::now();
        let mut running = self.running.lock().unwrap_or_else(PoisonError::into_inner);
        let (all, lagging) = (running.all, running.lagging);
        let held = running.by_tenant.get(tenant).copied().unwrap_or_default();
        let holds = held.prompt + held.lagging;
        let bound = if held.slow(now) || 2 * all >= limits.at_once {
            limits.per_slow_tenant
        } else {
            limits.per_tenant
        };
        let refused = all >= limits.at_once
            || holds >= bound
            || held.lagging > 0 && lagging >= limits.lagging_in_all;
        if refused {
            let slow = held.slow(now);
            drop(running);
            tracing::debug!(
                %tenant, holds, all, lagging, slow,
                "a lookup of a tenant's provider host refused"
            );
            return None;
        }
        running.all += 1;
        let held = running.by_tenant.entry(tenant.clone()).or_default();
        held.prompt += 1;
        // Tenants whose slowness lapsed are forgotten as others start: the map holds the
        // tenants with lookups running or slow within the cooldown, not every tenant seen. A
        // scan only once the map has doubled since the last, so a crowd in their cooldown does
        // not cost every start a scan.
        if running.by_tenant.len() > running.prune_past {
            running.by_tenant.retain(|_, held| !held.forgettable(now));
            running.prune_past = (2 * running.by_tenant.len()).max(2 * limits.at_once);
        }
        Some(Tracked {
            running: self.running.clone(),
            tenant: tenant.clone(),
            cooldown: limits.cooldown,
            stage: Arc::new(Mutex::new(Stage::Prompt)),
        })
    }

    #[cfg(test)]
    fn held(&self, tenant: &TenantId) -> (usize, usize, usize) {
        let running = self.running.lock().unwrap_or_else(PoisonError::into_inner);
        let held = running.by_tenant.get(tenant).copied().unwrap_or_default();
        (held.prompt, held.lagging, running.lagging)
    }
}

/// One lookup of `host`, counted in `unstarted` (`None` in it: refused at its bound).
async fn look_up(
    mut unstarted: Unstarted,
    resolve: Resolve,
    limits: Limits,
    host: String,
) -> answers::Answer {
    let tracked = unstarted.0.take().ok_or(LookupError::Busy)?;
    // The caller's side lags the lookup when the wait ends unanswered (its timeout, or every
    // caller waiting for it gone); the task's side, made right after, ends it in the counts
    // whatever happens from here (dropped first, should the resolver panic before the task
    // starts).
    let _caller = Caller(tracked.clone());
    let ends = Task(tracked.clone());
    let lookup = resolve(host, 0);
    // A task of its own: dropping its handle detaches it, it does not stop the resolver's
    // thread.
    let mut task = tokio::spawn(async move {
        let addrs = lookup.await;
        drop(ends);
        addrs
    });
    let answer = match tokio::time::timeout(limits.slow, &mut task).await {
        Ok(answer) => answer,
        Err(_) => {
            tracked.advance(Stage::Prompt, Stage::Lagging);
            let rest = limits.timeout.saturating_sub(limits.slow);
            match tokio::time::timeout(rest, task).await {
                Ok(answer) => answer,
                Err(_) => return Err(LookupError::Failed),
            }
        }
    };
    match answer {
        Ok(Ok(addrs)) => Ok(addrs),
        _ => Err(LookupError::Failed),
    }
}

/// One lookup, as counted in [`Running`].
#[derive(Clone)]
struct Tracked {
    running: Arc<Mutex<Running>>,
    tenant: TenantId,
    cooldown: Duration,
    stage: Arc<Mutex<Stage>>,
}

impl Tracked {
    /// Moves the lookup from `from` to `to` in the counts, if it is at `from`.
    fn advance(&self, from: Stage, to: Stage) {
        let mut running = self.running.lock().unwrap_or_else(PoisonError::into_inner);
        let mut stage = self.stage.lock().unwrap_or_else(PoisonError::into_inner);
        if *stage != from {
            return;
        }
        *stage = to;
        let running = &mut *running;
        let Some(held) = running.by_tenant.get_mut(&self.tenant) else {
            return;
        };
        match from {
            Stage::Prompt => held.prompt -= 1,
            Stage::Lagging => {
                held.lagging -= 1;
                running.lagging -= 1;
            }
            Stage::Ended => {}
        }
        match to {
            Stage::Lagging => {
                held.lagging += 1;
                running.lagging += 1;
            }
            Stage::Ended => {
                running.all -= 1;
                if from == Stage::Lagging && held.lagging == 0 {
                    held.slow_until = Some(Instant::now() + self.cooldown);
                }
            }
            Stage::Prompt => {}
        }
        if held.forgettable(Instant::now()) {
            running.by_tenant.remove(&self.tenant);
        }
    }

    fn end(&self) {
        self.advance(Stage::Prompt, Stage::Ended);
        self.advance(Stage::Lagging, Stage::Ended);
    }
}

/// A lookup counted but not yet under way: should its future be dropped before it is first
/// polled, the count ends with it.
struct Unstarted(Option<Tracked>);

impl Drop for Unstarted {
    fn drop(&mut self) {
        if let Some(tracked) = self.0.take() {
            tracked.end();
        }
    }
}

/// The task's side: the lookup ends with the task, whether the resolver returned or the task
/// was dropped unfinished (a panic in the resolver, the runtime shutting down).
struct Task(Tracked);

impl Drop for Task {
    fn drop(&mut self) {
        self.0.end();
    }
}

/// The caller's side: when it stops waiting, a lookup not yet ended lags.
struct Caller(Tracked);

impl Drop for Caller {
    fn drop(&mut self) {
        self.0.advance(Stage::Prompt, Stage::Lagging);
    }
}

#[cfg(test)]
mod tests;
