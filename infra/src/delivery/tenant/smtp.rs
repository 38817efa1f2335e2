//! Email through a tenant's own SMTP server: the host is resolved and checked at each send, the
//! connection goes to the checked address, and TLS is verified against the host's name.

use std::time::Duration;

use async_trait::async_trait;
use lettre::message::Mailbox;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use lettre::Address;
use twofold_domain::provider::{SmtpProvider, SmtpSecurity};
use twofold_services::ports::{
    CodeSender, DeliveryReceipt, NoticeSender, OutgoingCode, OutgoingNotice, SendError,
};

use super::guard::{GuardedResolver, ResolveError};
use crate::delivery::smtp::pool;
use crate::delivery::SmtpSender;

/// Sends through one tenant's SMTP server.
pub struct GuardedSmtpSender {
    host: String,
    port: u16,
    /// `None` for plain SMTP (development allowance only).
    tls: Option<(SmtpSecurity, TlsParameters)>,
    credentials: Option<Credentials>,
    from: Mailbox,
    timeout: Duration,
    resolver: GuardedResolver,
}

impl std::fmt::Debug for GuardedSmtpSender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GuardedSmtpSender")
            .field("port", &self.port)
            .finish_non_exhaustive()
    }
}

impl GuardedSmtpSender {
    /// A sender for `provider`; the TLS parameters (verified against the host's name) are
    /// built once here.
    pub fn new(
        provider: &SmtpProvider,
        timeout: Duration,
        resolver: GuardedResolver,
    ) -> Result<Self, SendError> {
        let unusable = |what: &str| {
            SendError::Permanent(format!("the tenant's SMTP settings cannot be used: {what}"))
        };
        if provider.security == SmtpSecurity::Plain && !resolver.allow_private {
            return Err(unusable("plain SMTP is not allowed"));
        }
        let tls = match provider.security {
            SmtpSecurity::Plain => None,
            security => Some((
                security,
                TlsParameters::new(provider.host.clone())
                    .map_err(|_| unusable("TLS cannot be set up for its host"))?,
            )),
        };
        let address: Address = provider
            .from
            .parse()
            .map_err(|_| unusable("the From address"))?;
        Ok(Self {
            host: provider.host.clone(),
            port: provider.port,
            tls,
            credentials: provider
                .username
                .clone()
                .zip(provider.password.clone())
                .map(|(user, password)| Credentials::new(user, password)),
            from: Mailbox::new(provider.from_name.clone(), address),
            timeout,
            resolver,
        })
    }
}

impl GuardedSmtpSender {
    /// A sender connected to an address checked just now: every send resolves and checks
    /// again (a DNS answer can change between sends), and connects to the address it checked,
    /// never to a fresh lookup.
    async fn checked(&self) -> Result<SmtpSender, SendError> {
        let addrs = self
            .resolver
            .resolve_checked(&self.host, self.port)
            .await
            .map_err(|e| match e {
                ResolveError::Refused(refused) => {
                    SendError::Permanent(format!("the SMTP server is not reachable: {refused}"))
                }
                ResolveError::Unresolved => {
                    SendError::Retryable("the SMTP server's host does not resolve".to_owned())
                }
                ResolveError::Busy => {
                    SendError::Retryable(format!("the SMTP server's host: {}", ResolveError::Busy))
                }
            })?;
        // The connection goes to the checked address; TLS is verified against the host's
        // name. The greeting names the From domain, not this instance's host name: a tenant's
        // server is the tenant's, and the operator's host names are none of its business.
        let server = pool::Server {
            host: addrs[0].ip().to_string(),
            port: self.port,
            tls: match &self.tls {
                None => Tls::None,
                Some((SmtpSecurity::StartTls, params)) => Tls::Required(params.clone()),
                Some((_, params)) => Tls::Wrapper(params.clone()),
            },
            hello_name: ClientId::Domain(self.from.email.domain().to_owned()),
            credentials: self.credentials.clone(),
            timeout: self.timeout,
        };
        Ok(SmtpSender::once(server, self.from.clone(), self.timeout))
    }
}

#[async_trait]
impl CodeSender for GuardedSmtpSender {
    async fn send(&self, message: &OutgoingCode) -> Result<DeliveryReceipt, SendError> {
        self.checked().await?.send(message).await
    }
}

#[async_trait]
impl NoticeSender for GuardedSmtpSender {
    async fn send_notice(&self, notice: &OutgoingNotice) -> Result<DeliveryReceipt, SendError> {
        self.checked().await?.send_notice(notice).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::delivery::tenant::lookups::Lookups;

    fn resolver() -> GuardedResolver {
        GuardedResolver {
            lookups: std::sync::Arc::new(Lookups::new()),
            tenant: twofold_domain::TenantId::parse("acme").unwrap(),
            allow_private: false,
        }
    }

    fn provider(host: &str, security: SmtpSecurity) -> SmtpProvider {
        SmtpProvider {
            host: host.into(),
            port: 2525,
            security,
            username: Some("u".into()),
            password: Some("hunter2pw".into()),
            from: "no-reply@acme.example".into(),
            from_name: Some("Acme".into()),
        }
    }

    #[test]
    fn tls_is_verified_against_the_host_name_and_plain_needs_the_allowance() {
        let s = GuardedSmtpSender::new(
            &provider("smtp.acme.example", SmtpSecurity::Tls),
            Duration::from_secs(5),
            resolver(),
        )
        .unwrap();
        let (_, params) = s.tls.as_ref().unwrap();
        assert_eq!(params.domain(), "smtp.acme.example");
        assert!(!format!("{s:?}").contains("hunter2pw"));
        assert!(GuardedSmtpSender::new(
            &provider("127.0.0.1", SmtpSecurity::Plain),
            Duration::from_secs(5),
            resolver()
        )
        .is_err());
    }

    #[tokio::test]
    async fn a_host_resolving_to_loopback_is_never_connected_to() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut p = provider("localhost", SmtpSecurity::StartTls);
        p.port = listener.local_addr().unwrap().port();
        let sender = GuardedSmtpSender::new(&p, Duration::from_secs(5), resolver()).unwrap();
        let message = OutgoingCode {
            challenge_id: "c1".into(),
            tenant_name: "Acme".into(),
            channel: twofold_domain::channel::Channel::Email,
            purpose: twofold_domain::channel::Purpose::SignIn,
            destination: zeroize::Zeroizing::new("amy@example.com".into()),
            code: zeroize::Zeroizing::new("123456".into()),
            valid_seconds: 600,
            language: twofold_domain::Language::En,
            web_host: None,
        };
        let e = sender.send(&message).await.unwrap_err();
        assert!(matches!(e, SendError::Permanent(_)), "{e}");
        assert!(e.to_string().contains("loopback"), "{e}");
        let accepted = tokio::time::timeout(Duration::from_millis(200), listener.accept()).await;
        assert!(accepted.is_err(), "a connection was made");
    }
}
