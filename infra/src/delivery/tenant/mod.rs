//! Senders of tenants' own providers ([`TenantSenderCache`], the [`TenantSenders`] port): the
//! sealed settings are opened, and a sender built, once per tenant, settings version and
//! channel; later sends reuse it (one HTTP client per provider, not per message). A new version
//! replaces the tenant's entries, so a change takes effect at the next send.

pub mod guard;
pub mod lookups;
pub mod smtp;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use reqwest::Url;
use twofold_domain::channel::Channel;
use twofold_domain::provider::{check_address, ProviderSettings, SmsProvider};
use twofold_domain::tenant::TenantDelivery;
use twofold_domain::TenantId;
use twofold_services::delivery_settings::settings_context;
use twofold_services::ports::{CodeSender, Sealer, SendError, TenantSenders};
use zeroize::Zeroizing;

use guard::GuardedResolver;
use lookups::Lookups;

use super::{TwilioSender, TwilioSettings, WebhookSender, WebhookSettings, DEFAULT_TIMEOUT};

/// Most cached senders; past it the cache starts afresh (it is only a cache).
const MAX_ENTRIES: usize = 1024;

type Key = (TenantId, u64, Channel);

/// Builds and caches tenants' senders.
pub struct TenantSenderCache {
    sealer: Arc<dyn Sealer>,
    allow_private: bool,
    lookups: Arc<Lookups>,
    timeout: Duration,
    entries: Mutex<HashMap<Key, Option<Arc<dyn CodeSender>>>>,
}

impl TenantSenderCache {
    /// Opens settings with `sealer`; `allow_private` is the operator's development allowance;
    /// names resolve through `lookups`, shared with the settings' check.
    pub fn new(sealer: Arc<dyn Sealer>, allow_private: bool, lookups: Arc<Lookups>) -> Self {
        Self {
            sealer,
            allow_private,
            lookups,
            timeout: DEFAULT_TIMEOUT,
            entries: Mutex::new(HashMap::new()),
        }
    }

    fn unusable(what: &str) -> SendError {
        SendError::Permanent(format!(
            "the tenant's delivery settings cannot be used: {what}"
        ))
    }

    /// An http(s) URL of the settings, checked again under the current rules: the scheme, and
    /// an IP literal's class (names are checked at each connection by the resolver).
    fn checked_url(&self, raw: &str) -> Result<Url, SendError> {
        let url = Url::parse(raw).map_err(|_| Self::unusable("a URL does not parse"))?;
        if url.scheme() != "https" && !self.allow_private {
            return Err(Self::unusable("plain HTTP is not allowed"));
        }
        if let Some(url::Host::Ipv4(ip)) = url.host() {
            check_address(ip.into(), self.allow_private)
                .map_err(|why| Self::unusable(&format!("its provider address: {why}")))?;
        }
        if let Some(url::Host::Ipv6(ip)) = url.host() {
            check_address(ip.into(), self.allow_private)
                .map_err(|why| Self::unusable(&format!("its provider address: {why}")))?;
        }
        Ok(url)
    }

    fn build(
        &self,
        tenant: &TenantId,
        settings: ProviderSettings,
        channel: Channel,
    ) -> Result<Option<Arc<dyn CodeSender>>, SendError> {
        let resolver = GuardedResolver {
            lookups: self.lookups.clone(),
            tenant: tenant.clone(),
            allow_private: self.allow_private,
        };
        let client = || {
            guard::guarded_client(self.timeout, resolver.clone())
                .map_err(|_| Self::unusable("the HTTP client cannot be built"))
        };
        Ok(match channel {
            Channel::Email => match &settings.email {
                None => None,
                Some(provider) => Some(Arc::new(smtp::GuardedSmtpSender::new(
                    provider,
                    self.timeout,
                    resolver.clone(),
                )?)),
            },
            Channel::Sms => match settings.sms {
                None => None,
                Some(SmsProvider::Twilio {
                    account_sid,
                    auth_token,
                    from,
                    messaging_service_sid,
                    api_base,
                }) => {
                    let twilio = TwilioSettings {
                        api_base: self.checked_url(&api_base)?,
                        account_sid,
                        auth_token: Zeroizing::new(auth_token),
                        from: from.unwrap_or_default(),
                        messaging_service_sid,
                        timeout: self.timeout,
                    };
                    Some(Arc::new(
                        TwilioSender::with_client(&twilio, client()?)
                            .map_err(|_| Self::unusable("the Twilio API base"))?,
                    ))
                }
                Some(SmsProvider::Webhook { url, secret }) => {
                    let webhook = WebhookSettings {
                        url: self.checked_url(&url)?,
                        secret: Zeroizing::new(secret),
                        timeout: self.timeout,
                    };
                    Some(Arc::new(
                        WebhookSender::with_client(&webhook, client()?)
                            .map_err(|_| Self::unusable("the webhook"))?,
                    ))
                }
            },
        })
    }
}

#[async_trait]
impl TenantSenders for TenantSenderCache {
    async fn sender(
        &self,
        tenant: &TenantId,
        settings: &TenantDelivery,
        channel: Channel,
    ) -> Result<Option<Arc<dyn CodeSender>>, SendError> {
        let key = (tenant.clone(), settings.version, channel);
        if let Some(hit) = self
            .entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&key)
        {
            return Ok(hit.clone());
        }
        let opened = self
            .sealer
            .open(tenant, &settings_context(tenant), &settings.sealed)
            .await
            .map_err(|e| {
                tracing::error!(error = ?e, "the tenant's delivery settings do not open");
                Self::unusable("they do not open under the tenant's data key")
            })?;
        let provider: ProviderSettings =
            serde_json::from_slice(&opened).map_err(|_| Self::unusable("they are not readable"))?;
        let built = self.build(tenant, provider, channel)?;
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        entries.retain(|(t, v, _), _| t != tenant || *v == settings.version);
        if entries.len() >= MAX_ENTRIES {
            entries.clear();
        }
        entries.insert(key, built.clone());
        Ok(built)
    }
}
