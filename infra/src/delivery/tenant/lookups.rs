//! Name lookups for tenants' providers, bounded in flight per tenant and in all.
//!
//! The system resolver (`getaddrinfo`) runs on Tokio's blocking threads and cannot be
//! cancelled: a caller that gives up at its timeout leaves the lookup running until the
//! resolver's own timeouts end it (5 s per try and name server by default, so tens of seconds
//! with several). A tenant whose provider names lead to a name server that never answers could
//! otherwise pile up hundreds of those threads, which the service's own lookups (PostgreSQL's
//! host, the operator's SMTP and SMS providers) and every other tenant share. So each lookup
//! holds a place until it really ends, not until its caller gives up, and a tenant whose
//! places are all taken is told to try again instead of starting another.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use twofold_domain::TenantId;

/// How long a caller waits for a name to resolve.
pub const LOOKUP_TIMEOUT: Duration = Duration::from_secs(5);

/// Lookups one tenant may have running, finished or abandoned by their callers: enough for a
/// burst of sends to one provider (its client caches nothing, each connection resolves).
pub const PER_TENANT: usize = 4;

/// Lookups all tenants may have running: well under Tokio's 512 blocking threads.
pub const IN_ALL: usize = 64;

/// One lookup's answer, to come.
pub type Lookup = Pin<Box<dyn Future<Output = std::io::Result<Vec<SocketAddr>>> + Send>>;
/// Looks up a name and port.
pub type Resolve = Arc<dyn Fn(String, u16) -> Lookup + Send + Sync>;

/// Why a lookup gave no addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LookupError {
    /// The tenant's places (or all places) are taken by lookups still running.
    Busy,
    /// The name did not resolve in time, or does not resolve.
    Failed,
}

#[derive(Default)]
struct Running {
    all: usize,
    by_tenant: HashMap<TenantId, usize>,
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
    /// places and a caller's `timeout`.
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
        let place = self.take_place(tenant).ok_or(LookupError::Busy)?;
        let lookup = (self.resolve)(host.to_owned(), port);
        // The lookup runs in a task of its own that keeps the place until it ends: dropping the
        // handle at the timeout detaches it, it does not stop the resolver's thread.
        let task = tokio::spawn(async move {
            let addrs = lookup.await;
            drop(place);
            addrs
        });
        match tokio::time::timeout(self.timeout, task).await {
            Ok(Ok(Ok(addrs))) => Ok(addrs),
            _ => Err(LookupError::Failed),
        }
    }

    fn take_place(&self, tenant: &TenantId) -> Option<Place> {
        let mut running = self.running.lock().unwrap_or_else(PoisonError::into_inner);
        let mine = running.by_tenant.get(tenant).copied().unwrap_or(0);
        if mine >= self.per_tenant || running.all >= self.in_all {
            return None;
        }
        running.all += 1;
        running.by_tenant.insert(tenant.clone(), mine + 1);
        Some(Place {
            running: self.running.clone(),
            tenant: tenant.clone(),
        })
    }

    #[cfg(test)]
    fn running(&self, tenant: &TenantId) -> (usize, usize) {
        let running = self.running.lock().unwrap_or_else(PoisonError::into_inner);
        (
            running.by_tenant.get(tenant).copied().unwrap_or(0),
            running.all,
        )
    }
}

/// One running lookup's place, given back when the lookup ends.
struct Place {
    running: Arc<Mutex<Running>>,
    tenant: TenantId,
}

impl Drop for Place {
    fn drop(&mut self) {
        let mut running = self.running.lock().unwrap_or_else(PoisonError::into_inner);
        running.all -= 1;
        if let Some(mine) = running.by_tenant.get_mut(&self.tenant) {
            *mine -= 1;
            if *mine == 0 {
                running.by_tenant.remove(&self.tenant);
            }
        }
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

    #[tokio::test]
    async fn a_tenant_s_abandoned_lookups_keep_their_places_until_they_end() {
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
        assert_eq!(lookups.running(&acme), (2, 2), "both are still running");
        // A third from the same tenant is refused at once, not started.
        let got = lookups.resolve(&acme, "n2.silent.example", 25).await;
        assert_eq!(got, Err(LookupError::Busy));
        assert_eq!(lookups.running(&acme).1, 2);

        // Other tenants still resolve, until the places of all are taken.
        assert!(lookups
            .resolve(&globex, "smtp.globex.example", 25)
            .await
            .is_ok());
        let got = lookups.resolve(&globex, "x.silent.example", 25).await;
        assert_eq!(got, Err(LookupError::Failed));
        assert_eq!(
            lookups.resolve(&initech, "smtp.initech.example", 25).await,
            Err(LookupError::Busy),
            "three lookups run in all"
        );

        // When the name server answers, the lookups end and give their places back.
        answer.send(true).unwrap();
        tokio::time::timeout(Duration::from_secs(5), async {
            while lookups.running(&acme).1 > 0 {
                tokio::task::yield_now().await;
            }
        })
        .await
        .expect("the places come back when the lookups end");
        assert_eq!(lookups.running(&acme), (0, 0));
        assert!(lookups
            .resolve(&acme, "smtp.acme.example", 25)
            .await
            .is_ok());
        assert!(lookups
            .resolve(&initech, "smtp.initech.example", 25)
            .await
            .is_ok());
    }
}
