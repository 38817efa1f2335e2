//! Name lookups for tenants' providers, bounded where they outlive their callers.
//!
//! The system resolver (`getaddrinfo`) runs on Tokio's blocking threads and cannot be
//! cancelled: a caller that gives up at its timeout leaves the lookup running until the
//! resolver's own timeouts end it (5 s per try and name server by default, so tens of seconds
//! with several). A tenant whose provider names lead to a name server that never answers could
//! otherwise pile up hundreds of those threads, which the service's own lookups (PostgreSQL's
//! host, the operator's SMTP and SMS providers) and every other tenant share.
//!
//! So a lookup whose caller stopped waiting (its timeout, or a cancelled request) is counted as
//! abandoned until it really ends. A tenant with abandoned lookups may hold at most
//! [`PER_TENANT`] lookups (waited for or abandoned), and none more while [`IN_ALL`] are
//! abandoned across tenants. A tenant with none abandoned is never refused: its lookups end
//! while their callers wait, and those callers are bounded already (the worker's sends in
//! flight, the tenant's share of requests), so a burst to a healthy provider never waits on
//! another tenant's silent one.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use twofold_domain::TenantId;

/// How long a caller waits for a name to resolve.
pub const LOOKUP_TIMEOUT: Duration = Duration::from_secs(5);

/// Lookups a tenant with abandoned ones may hold, waited for or abandoned.
pub const PER_TENANT: usize = 4;

/// Abandoned lookups of all tenants past which a tenant with abandoned ones starts no other:
/// well under Tokio's 512 blocking threads.
pub const IN_ALL: usize = 64;

/// One lookup's answer, to come.
pub type Lookup = Pin<Box<dyn Future<Output = std::io::Result<Vec<SocketAddr>>> + Send>>;
/// Looks up a name and port.
pub type Resolve = Arc<dyn Fn(String, u16) -> Lookup + Send + Sync>;

/// Why a lookup gave no addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LookupError {
    /// The tenant's lookups abandoned by their callers (or all tenants') are at their bound.
    Busy,
    /// The name did not resolve in time, or does not resolve.
    Failed,
}

/// A tenant's lookups still running.
#[derive(Default, Clone, Copy)]
struct Held {
    waited_for: usize,
    abandoned: usize,
}

#[derive(Default)]
struct Running {
    abandoned: usize,
    by_tenant: HashMap<TenantId, Held>,
}

/// Where one lookup stands; changed only under [`Lookups`]' lock.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Stage {
    WaitedFor,
    Abandoned,
    Ended,
}

/// The bounded lookups of every tenant; one per process, shared by the senders and the
/// settings' check.
pub struct Lookups {
    running: Arc<Mutex<Running>>,
    per_tenant: usize,
    in_all: usize,
    timeout: Duration,
    resolve: Resolve,
}

impl std::fmt::Debug for Lookups {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lookups")
            .field("per_tenant", &self.per_tenant)
            .field("in_all", &self.in_all)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl Default for Lookups {
    fn default() -> Self {
        Self::new()
    }
}

impl Lookups {
    /// The system resolver, with [`PER_TENANT`], [`IN_ALL`] and [`LOOKUP_TIMEOUT`].
    pub fn new() -> Self {
        Self::with_resolver(
            Arc::new(|host: String, port: u16| -> Lookup {
                Box::pin(async move {
                    Ok(tokio::net::lookup_host((host.as_str(), port))
                        .await?
                        .collect())
                })
            }),
            (PER_TENANT, IN_ALL),
            LOOKUP_TIMEOUT,
        )
    }

    /// Another resolver (the tests' name server that never answers), `(per tenant, in all)`
    /// bounds and a caller's `timeout`.
    pub fn with_resolver(
        resolve: Resolve,
        (per_tenant, in_all): (usize, usize),
        timeout: Duration,
    ) -> Self {
        Self {
            running: Arc::default(),
            per_tenant,
            in_all,
            timeout,
            resolve,
        }
    }

    /// The addresses of `host`, looked up for `tenant`.
    pub async fn resolve(
        &self,
        tenant: &TenantId,
        host: &str,
        port: u16,
    ) -> Result<Vec<SocketAddr>, LookupError> {
        let stage = self.start(tenant).ok_or(LookupError::Busy)?;
        // Whatever ends the wait below (its timeout, or this future dropped) leaves the lookup
        // abandoned if it has not ended.
        let _caller = Caller(stage.clone());
        let lookup = (self.resolve)(host.to_owned(), port);
        // The lookup runs in a task of its own, which records its end: dropping the handle
        // detaches the task, it does not stop the resolver's thread.
        let ends = Task(stage);
        let task = tokio::spawn(async move {
            let addrs = lookup.await;
            drop(ends);
            addrs
        });
        match tokio::time::timeout(self.timeout, task).await {
            Ok(Ok(Ok(addrs))) => Ok(addrs),
            _ => Err(LookupError::Failed),
        }
    }

    fn start(&self, tenant: &TenantId) -> Option<Tracked> {
        let mut running = self.running.lock().unwrap_or_else(PoisonError::into_inner);
        let all_abandoned = running.abandoned;
        let held = running.by_tenant.entry(tenant.clone()).or_default();
        if held.abandoned > 0
            && (held.waited_for + held.abandoned >= self.per_tenant || all_abandoned >= self.in_all)
        {
            if held.waited_for == 0 && held.abandoned == 0 {
                running.by_tenant.remove(tenant);
            }
            return None;
        }
        held.waited_for += 1;
        Some(Tracked {
            running: self.running.clone(),
            tenant: tenant.clone(),
            stage: Arc::new(Mutex::new(Stage::WaitedFor)),
        })
    }

    #[cfg(test)]
    fn held(&self, tenant: &TenantId) -> (usize, usize, usize) {
        let running = self.running.lock().unwrap_or_else(PoisonError::into_inner);
        let held = running.by_tenant.get(tenant).copied().unwrap_or_default();
        (held.waited_for, held.abandoned, running.abandoned)
    }
}

/// One lookup, as counted in [`Running`].
#[derive(Clone)]
struct Tracked {
    running: Arc<Mutex<Running>>,
    tenant: TenantId,
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
        let mut all = running.abandoned;
        let Some(held) = running.by_tenant.get_mut(&self.tenant) else {
            return;
        };
        match from {
            Stage::WaitedFor => held.waited_for -= 1,
            Stage::Abandoned => {
                held.abandoned -= 1;
                all -= 1;
            }
            Stage::Ended => {}
        }
        if to == Stage::Abandoned {
            held.abandoned += 1;
            all += 1;
        }
        if held.waited_for == 0 && held.abandoned == 0 {
            running.by_tenant.remove(&self.tenant);
        }
        running.abandoned = all;
    }

    fn end(&self) {
        self.advance(Stage::WaitedFor, Stage::Ended);
        self.advance(Stage::Abandoned, Stage::Ended);
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

/// The caller's side: when it stops waiting, a lookup not yet ended is abandoned.
struct Caller(Tracked);

impl Drop for Caller {
    fn drop(&mut self) {
        self.0.advance(Stage::WaitedFor, Stage::Abandoned);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::sync::watch;

    /// A resolver whose `silent.example` names never answer until the test says so, as a name
    /// server that drops every query; every other name answers at once.
    fn resolver() -> (Resolve, watch::Sender<bool>) {
        let (answer, answered) = watch::channel(false);
        let resolve: Resolve = Arc::new(move |host: String, port: u16| -> Lookup {
            let mut answered = answered.clone();
            Box::pin(async move {
                if host.ends_with("silent.example") {
                    let _ = answered.wait_for(|a| *a).await;
                }
                Ok(vec![SocketAddr::from(([192, 0, 2, 1], port))])
            })
        });
        (resolve, answer)
    }

    fn tenant(name: &str) -> TenantId {
        TenantId::parse(name).unwrap()
    }

    /// Waits (bounded) until `tenant` holds no lookup and none is abandoned in all.
    async fn all_ended(lookups: &Lookups, tenant: &TenantId) {
        tokio::time::timeout(Duration::from_secs(5), async {
            while lookups.held(tenant) != (0, 0, 0) {
                tokio::task::yield_now().await;
            }
        })
        .await
        .expect("the lookups end when the name server answers");
    }

    #[tokio::test]
    async fn a_tenant_s_abandoned_lookups_count_until_they_end() {
        let (resolve, answer) = resolver();
        let lookups = Lookups::with_resolver(resolve, (2, 3), Duration::from_millis(50));
        let (acme, globex, initech) = (tenant("acme"), tenant("globex"), tenant("initech"));

        for i in 0..2 {
            let host = format!("n{i}.silent.example");
            let got = lookups.resolve(&acme, &host, 25).await;
            assert_eq!(
                got,
                Err(LookupError::Failed),
                "its caller gives up at the timeout"
            );
        }
        assert_eq!(lookups.held(&acme), (0, 2, 2), "both still run, abandoned");
        // A third from the same tenant is refused at once, not started.
        let got = lookups.resolve(&acme, "smtp.acme.example", 25).await;
        assert_eq!(got, Err(LookupError::Busy));
        assert_eq!(lookups.held(&acme), (0, 2, 2));

        // Another tenant with a silent name reaches the bound of all abandoned lookups: then
        // it may start no other, but a tenant with none abandoned still may.
        let got = lookups.resolve(&globex, "x.silent.example", 25).await;
        assert_eq!(got, Err(LookupError::Failed));
        assert_eq!(lookups.held(&globex), (0, 1, 3));
        let got = lookups.resolve(&globex, "smtp.globex.example", 25).await;
        assert_eq!(got, Err(LookupError::Busy), "three are abandoned in all");
        assert!(lookups
            .resolve(&initech, "smtp.initech.example", 25)
            .await
            .is_ok());

        // When the name server answers, the lookups end and count no more.
        answer.send(true).unwrap();
        all_ended(&lookups, &acme).await;
        assert_eq!(lookups.held(&globex), (0, 0, 0));
        assert!(lookups
            .resolve(&acme, "smtp.acme.example", 25)
            .await
            .is_ok());
    }

    /// A burst of sends to a provider that answers: as many lookups at once as the callers
    /// want, none refused, whatever other tenants' silent names hold.
    #[tokio::test]
    async fn a_burst_to_a_name_that_answers_is_never_refused() {
        let (answer, answered) = watch::channel(false);
        let resolve: Resolve = Arc::new(move |host: String, port: u16| -> Lookup {
            let mut answered = answered.clone();
            Box::pin(async move {
                if host.ends_with("silent.example") {
                    std::future::pending::<()>().await;
                }
                // Every lookup of the burst is running before the first answers.
                let _ = answered.wait_for(|a| *a).await;
                Ok(vec![SocketAddr::from(([192, 0, 2, 1], port))])
            })
        });
        let lookups = Arc::new(Lookups::with_resolver(
            resolve,
            (4, 2),
            Duration::from_millis(500),
        ));
        let (acme, globex) = (tenant("acme"), tenant("globex"));
        for i in 0..2 {
            let host = format!("n{i}.silent.example");
            let short = tokio::time::timeout(
                Duration::from_millis(20),
                lookups.resolve(&globex, &host, 443),
            )
            .await;
            assert!(short.is_err(), "the silent name does not answer");
        }
        assert_eq!(
            lookups.held(&globex),
            (0, 2, 2),
            "cancelled callers abandon"
        );

        let burst: Vec<_> = (0..16)
            .map(|_| {
                let (lookups, acme) = (lookups.clone(), acme.clone());
                tokio::spawn(async move { lookups.resolve(&acme, "smtp.acme.example", 25).await })
            })
            .collect();
        tokio::time::timeout(Duration::from_secs(5), async {
            while lookups.held(&acme).0 < 16 {
                tokio::task::yield_now().await;
            }
        })
        .await
        .expect("all sixteen lookups start");
        answer.send(true).unwrap();
        for send in burst {
            assert!(send.await.unwrap().is_ok());
        }
        assert_eq!(lookups.held(&acme), (0, 0, 2));
    }
}
