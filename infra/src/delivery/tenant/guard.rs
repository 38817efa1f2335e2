//! The connection half of the SSRF rule for tenants' own providers: every name is resolved here
//! and every address it resolves to is checked against [`check_address`] before a connection
//! is made, at each connection (a DNS answer can change between the check when the settings
//! were set and the send: rebinding). HTTP clients get [`GuardedResolver`] as their resolver,
//! no proxy and no redirects; SMTP resolves with [`GuardedResolver::resolve_checked`] and connects to the
//! checked address itself.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use twofold_domain::provider::{check_address, AddressRefusal};
use twofold_domain::TenantId;
use twofold_services::ports::{HostRefusal, ProviderHosts};

use super::lookups::{LookupError, Lookups};

/// A host that resolves to an address providers may not use. Its text is safe to show and to
/// store: it names the class of address, never the host or the address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("its host resolves to an address providers may not use ({})", .0 .0)]
pub struct Refused(pub AddressRefusal);

/// Why resolving failed.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    /// Some address is not allowed.
    #[error(transparent)]
    Refused(#[from] Refused),
    /// The name does not resolve (now).
    #[error("its host does not resolve")]
    Unresolved,
    /// The tenant's lookups lag at their bound, or too many run at once (see [`Lookups`]).
    #[error("lookups of provider hosts are at their bound (the tenant's go unanswered, or too many run at once)")]
    Busy,
}

/// Resolves names for one tenant's providers and checks every address: the whole answer is
/// refused when any address is not allowed (a mixed answer is how rebinding hides). As a
/// `reqwest` resolver, it refuses connections to such names.
#[derive(Clone)]
pub struct GuardedResolver {
    pub lookups: Arc<Lookups>,
    pub tenant: TenantId,
    pub allow_private: bool,
}

impl std::fmt::Debug for GuardedResolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GuardedResolver")
            .field("tenant", &self.tenant)
            .field("allow_private", &self.allow_private)
            .finish_non_exhaustive()
    }
}

impl GuardedResolver {
    /// The checked addresses of `host` (a name or an IP literal).
    pub async fn resolve_checked(
        &self,
        host: &str,
        port: u16,
    ) -> Result<Vec<SocketAddr>, ResolveError> {
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        let addrs: Vec<SocketAddr> = match bare.parse::<IpAddr>() {
            Ok(ip) => vec![SocketAddr::new(ip, port)],
            Err(_) => self
                .lookups
                .resolve(&self.tenant, bare, port)
                .await
                .map_err(|e| match e {
                    LookupError::Busy => ResolveError::Busy,
                    LookupError::Failed => ResolveError::Unresolved,
                })?,
        };
        if addrs.is_empty() {
            return Err(ResolveError::Unresolved);
        }
        for addr in &addrs {
            check_address(addr.ip(), self.allow_private).map_err(Refused)?;
        }
        Ok(addrs)
    }
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let host = name.as_str().to_owned();
        let resolver = self.clone();
        Box::pin(async move {
            let addrs = resolver
                .resolve_checked(&host, 0)
                .await
                .map_err(|e| -> Box<dyn std::error::Error + Send + Sync> { Box::new(e) })?;
            Ok(Box::new(addrs.into_iter()) as Addrs)
        })
    }
}

/// The first of a `reqwest` error's causes that `pick` recognises.
fn first_cause<T>(
    error: &reqwest::Error,
    pick: impl Fn(&(dyn std::error::Error + 'static)) -> Option<T>,
) -> Option<T> {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = cause {
        if let Some(found) = pick(e) {
            return Some(found);
        }
        cause = e.source();
    }
    None
}

/// The refusal somewhere in a `reqwest` error's causes, if the guard refused the connection.
pub fn refusal_in(error: &reqwest::Error) -> Option<Refused> {
    first_cause(error, |e| match e.downcast_ref::<ResolveError>() {
        Some(ResolveError::Refused(refused)) => Some(*refused),
        _ => e.downcast_ref::<Refused>().copied(),
    })
}

/// Whether a `reqwest` error comes from a lookup refused as busy (see [`Lookups`]).
pub fn busy_in(error: &reqwest::Error) -> bool {
    first_cause(error, |e| {
        matches!(e.downcast_ref::<ResolveError>(), Some(ResolveError::Busy)).then_some(())
    })
    .is_some()
}

/// An HTTP client for a tenant's own provider: the guarded resolver, no proxy (a proxy would
/// resolve the name itself), no redirects, bounded time.
pub fn guarded_client(
    timeout: Duration,
    resolver: GuardedResolver,
) -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout.min(Duration::from_secs(5)))
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .dns_resolver(Arc::new(resolver))
        .user_agent(concat!("twofold/", env!("CARGO_PKG_VERSION")))
        .build()
}

/// [`ProviderHosts`] by resolving: the check made when settings are set, with the lookups the
/// senders use.
#[derive(Clone)]
pub struct DnsProviderHosts {
    pub lookups: Arc<Lookups>,
    pub allow_private: bool,
}

#[async_trait]
impl ProviderHosts for DnsProviderHosts {
    async fn check(&self, tenant: &TenantId, host: &str) -> Result<(), HostRefusal> {
        let resolver = GuardedResolver {
            lookups: self.lookups.clone(),
            tenant: tenant.clone(),
            allow_private: self.allow_private,
        };
        match resolver.resolve_checked(host, 443).await {
            Ok(_) | Err(ResolveError::Unresolved) => Ok(()),
            Err(ResolveError::Refused(refused)) => {
                Err(HostRefusal::NotAllowed(refused.to_string()))
            }
            Err(ResolveError::Busy) => Err(HostRefusal::Busy),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolver(allow_private: bool) -> GuardedResolver {
        GuardedResolver {
            lookups: Arc::new(Lookups::new()),
            tenant: TenantId::parse("acme").unwrap(),
            allow_private,
        }
    }

    #[tokio::test]
    async fn names_resolving_to_loopback_are_refused_unless_allowed() {
        let e = resolver(false)
            .resolve_checked("localhost", 25)
            .await
            .unwrap_err();
        assert!(matches!(e, ResolveError::Refused(_)), "{e}");
        assert!(e.to_string().contains("loopback"), "{e}");
        assert!(!e.to_string().contains("localhost"), "{e}");
        resolver(true)
            .resolve_checked("localhost", 25)
            .await
            .unwrap();
        let metadata = resolver(true).resolve_checked("169.254.169.254", 80).await;
        assert!(metadata.is_err());
        let hosts = DnsProviderHosts {
            lookups: Arc::new(Lookups::new()),
            allow_private: false,
        };
        let acme = TenantId::parse("acme").unwrap();
        assert!(hosts.check(&acme, "localhost").await.is_err());
        assert!(hosts.check(&acme, "[::ffff:127.0.0.1]").await.is_err());
    }

    /// A send to a name that resolves to loopback never connects: the listener gets nothing.
    #[tokio::test]
    async fn the_http_client_does_not_connect_to_refused_addresses() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let client = guarded_client(Duration::from_secs(5), resolver(false)).unwrap();
        let error = client
            .post(format!("http://localhost:{port}/hook"))
            .send()
            .await
            .unwrap_err();
        assert!(refusal_in(&error).is_some(), "{error:?}");
        let accepted = tokio::time::timeout(Duration::from_millis(200), listener.accept()).await;
        assert!(accepted.is_err(), "a connection was made");
        // With the development allowance the same request connects.
        let client = guarded_client(Duration::from_secs(5), resolver(true)).unwrap();
        let request = tokio::spawn(async move {
            let _ = client
                .post(format!("http://localhost:{port}/hook"))
                .send()
                .await;
        });
        let accepted = tokio::time::timeout(Duration::from_secs(5), listener.accept()).await;
        assert!(accepted.is_ok(), "no connection with the allowance");
        request.abort();
    }
}
