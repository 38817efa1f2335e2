//! A tenant's own delivery providers: set, clear and read back by its administrators, and tested
//! with a message sent at once ([`DeliverySettingsService::test`], in `test.rs`).
//!
//! The request is validated by the domain; the names it holds are resolved here (through
//! [`ProviderHosts`]) so a name pointing at a private address is refused when set, and again by
//! the senders at each connection. The validated settings, credentials included, are sealed
//! under the tenant's data key as one value; only their non-secret facts are recorded in clear
//! (`DeliverySettingsChanged`).

mod test;

use std::net::IpAddr;
use std::sync::Arc;

use twofold_domain::provider::{self, DeliverySettingsRequest, ProviderRules};
use twofold_domain::tenant::{Tenant, TenantCommand, TenantDelivery};
use twofold_domain::TenantId;

use crate::commands::Commands;
use crate::ports::{
    Clock, Entropy, HostRefusal, ProviderHosts, Sealer, SendLimiter, TenantDirectory, TenantSenders,
};
use crate::{Call, ServiceError};

pub use test::{TestOutcome, TESTS_PER_HOUR};

/// When to try again after lookups reached their bound: about how long the system resolver may
/// keep trying one name (5 s per try, two tries, three name servers); a hint, not a promise.
const BUSY_RETRY_SECONDS: i64 = 30;

/// The seal context of a tenant's delivery settings.
pub fn settings_context(tenant: &TenantId) -> String {
    format!("{}/delivery-settings", tenant.tenant_aggregate_id())
}

/// What the use-cases need.
pub struct DeliverySettingsPorts {
    pub commands: Commands<Tenant>,
    pub directory: Arc<dyn TenantDirectory>,
    pub sealer: Arc<dyn Sealer>,
    pub hosts: Arc<dyn ProviderHosts>,
    pub senders: Arc<dyn TenantSenders>,
    pub limiter: Arc<dyn SendLimiter>,
    pub clock: Arc<dyn Clock>,
    pub entropy: Arc<dyn Entropy>,
    /// The operator's rule on private addresses and plain protocols.
    pub rules: ProviderRules,
}

/// The use-cases.
#[derive(Clone)]
pub struct DeliverySettingsService {
    ports: Arc<DeliverySettingsPorts>,
}

impl DeliverySettingsService {
    /// Wires the use-cases.
    pub fn new(ports: DeliverySettingsPorts) -> Self {
        Self {
            ports: Arc::new(ports),
        }
    }

    /// Validates, checks the hosts, seals and records new settings for the caller's tenant.
    /// Nothing changes when any of it is refused.
    pub async fn set(
        &self,
        call: &Call,
        request: DeliverySettingsRequest,
    ) -> Result<TenantDelivery, ServiceError> {
        let p = &self.ports;
        let settings = provider::validate(&request, p.rules).map_err(ServiceError::invalid)?;
        for (field, host) in settings.hosts() {
            if host.parse::<IpAddr>().is_ok() {
                continue; // an address, checked by the domain
            }
            p.hosts
                .check(call.tenant(), &host)
                .await
                .map_err(|refusal| match refusal {
                    HostRefusal::NotAllowed(why) => {
                        ServiceError::InvalidInput(format!("{field}: {why}"))
                    }
                    HostRefusal::Busy => ServiceError::RateLimited {
                        message: format!(
                            "{field}: lookups of provider hosts are at their bound (this \
                             tenant's go unanswered, or too many run at once); try again later"
                        ),
                        retry_after_seconds: BUSY_RETRY_SECONDS,
                    },
                })?;
        }
        let json = zeroize::Zeroizing::new(
            serde_json::to_vec(&settings).map_err(|e| ServiceError::Internal(Box::new(e)))?,
        );
        let tenant = call.tenant();
        let sealed = p
            .sealer
            .seal(tenant, &settings_context(tenant), &json)
            .await?;
        let state = self
            .run(
                call,
                TenantCommand::SetDeliverySettings {
                    settings: Some((settings.facts(), sealed)),
                    at: p.clock.now(),
                },
            )
            .await?;
        state
            .delivery()
            .cloned()
            .ok_or_else(|| ServiceError::Internal("settings not recorded".into()))
    }

    /// Back to the service's providers for every channel.
    pub async fn clear(&self, call: &Call) -> Result<(), ServiceError> {
        let at = self.ports.clock.now();
        self.run(
            call,
            TenantCommand::SetDeliverySettings { settings: None, at },
        )
        .await?;
        Ok(())
    }

    /// The tenant's settings as recorded (the read model), `None` when it uses the service's.
    pub async fn current(&self, tenant: &TenantId) -> Result<Option<TenantDelivery>, ServiceError> {
        Ok(self
            .ports
            .directory
            .tenant(tenant)
            .await?
            .ok_or_else(|| ServiceError::NotFound("tenant not found".into()))?
            .delivery)
    }

    async fn run(&self, call: &Call, command: TenantCommand) -> Result<Tenant, ServiceError> {
        let tenant = call.tenant();
        let executed = self
            .ports
            .commands
            .execute(&tenant.tenant_aggregate_id(), command, call.metadata())
            .await;
        self.ports.directory.invalidate(tenant);
        Ok(Arc::unwrap_or_clone(executed?.state))
    }
}
