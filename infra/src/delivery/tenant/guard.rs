//! The connection half of the SSRF rule for tenants' own providers: every name is resolved here
//! and every address it resolves to is checked against [`check_address`] before a connection
//! is made, at each connection (a DNS answer can change between the check when the settings
//! were set and the send: rebinding). HTTP clients get [`GuardedResolver`] as their resolver,
//! no proxy and no redirects; SMTP resolves with [`resolve_checked`] and connects to the
//! checked address itself.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use twofold_domain::provider::{check_address, AddressRefusal};
use twofold_services::ports::ProviderHosts;

/// How long a name may take to resolve.
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(5);

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
}

/// Resolves `host` (a name or an IP literal) and checks every address; refuses the whole answer
/// when any address is not allowed (a mixed answer is how rebinding hides).
pub async fn resolve_checked(
    host: &str,
    port: u16,
    allow_private: bool,
) -> Result<Vec<SocketAddr>, ResolveError> {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let addrs: Vec<SocketAddr> = match bare.parse::<IpAddr>() {
        Ok(ip) => vec![SocketAddr::new(ip, port)],
        Err(_) => tokio::time::timeout(LOOKUP_TIMEOUT, tokio::net::lookup_host((bare, port)))
            .await
            .map_err(|_| ResolveError::Unresolved)?
            .map_err(|_| ResolveError::Unresolved)?
            .collect(),
    };
    if addrs.is_empty() {
        return Err(ResolveError::Unresolved);
    }
    for addr in &addrs {
        check_address(addr.ip(), allow_private).map_err(Refused)?;
    }
    Ok(addrs)
}

/// A `reqwest` resolver that refuses names resolving to addresses providers may not use.
#[derive(Debug, Clone, Copy)]
pub struct GuardedResolver {
    pub allow_private: bool,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let host = name.as_str().to_owned();
        let allow_private = self.allow_private;
        Box::pin(async move {
            let addrs = resolve_checked(&host, 0, allow_private)
                .await
                .map_err(|e| -> Box<dyn std::error::Error + Send + Sync> { Box::new(e) })?;
            Ok(Box::new(addrs.into_iter()) as Addrs)
        })
    }
}

/// The refusal somewhere in a `reqwest` error's causes, if the guard refused the connection.
pub fn refusal_in(error: &reqwest::Error) -> Option<Refused> {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = cause {
        if let Some(ResolveError::Refused(refused)) = e.downcast_ref::<ResolveError>() {
            return Some(*refused);
        }
        if let Some(refused) = e.downcast_ref::<Refused>() {
            return Some(*refused);
        }
        cause = e.source();
    }
    None
}

/// An HTTP client for a tenant's own provider: the guarded resolver, no proxy (a proxy would
/// resolve the name itself), no redirects, bounded time.
pub fn guarded_client(
    timeout: Duration,
    allow_private: bool,
) -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout.min(Duration::from_secs(5)))
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .dns_resolver(Arc::new(GuardedResolver { allow_private }))
        .user_agent(concat!("twofold/", env!("CARGO_PKG_VERSION")))
        .build()
}

/// [`ProviderHosts`] by resolving: the check made when settings are set.
#[derive(Debug, Clone, Copy)]
pub struct DnsProviderHosts {
    pub allow_private: bool,
}

#[async_trait]
impl ProviderHosts for DnsProviderHosts {
    async fn check(&self, host: &str) -> Result<(), String> {
        match resolve_checked(host, 443, self.allow_private).await {
            Ok(_) | Err(ResolveError::Unresolved) => Ok(()),
            Err(ResolveError::Refused(refused)) => Err(refused.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn names_resolving_to_loopback_are_refused_unless_allowed() {
        let e = resolve_checked("localhost", 25, false).await.unwrap_err();
        assert!(matches!(e, ResolveError::Refused(_)), "{e}");
        assert!(e.to_string().contains("loopback"), "{e}");
        assert!(!e.to_string().contains("localhost"), "{e}");
        resolve_checked("localhost", 25, true).await.unwrap();
        assert!(resolve_checked("169.254.169.254", 80, true).await.is_err());
        let hosts = DnsProviderHosts {
            allow_private: false,
        };
        assert!(hosts.check("localhost").await.is_err());
        assert!(hosts.check("[::ffff:127.0.0.1]").await.is_err());
    }

    /// A send to a name that resolves to loopback never connects: the listener gets nothing.
    #[tokio::test]
    async fn the_http_client_does_not_connect_to_refused_addresses() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let client = guarded_client(Duration::from_secs(5), false).unwrap();
        let error = client
            .post(format!("http://localhost:{port}/hook"))
            .send()
            .await
            .unwrap_err();
        assert!(refusal_in(&error).is_some(), "{error:?}");
        let accepted = tokio::time::timeout(Duration::from_millis(200), listener.accept()).await;
        assert!(accepted.is_err(), "a connection was made");
        // With the development allowance the same request connects.
        let client = guarded_client(Duration::from_secs(5), true).unwrap();
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
