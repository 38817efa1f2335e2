//! What [`super::Application::build`] is told about delivery: the operator's senders, retries,
//! ceilings and the lookups of tenants' provider names.

use std::sync::Arc;

use twofold_infra::delivery::tenant::lookups::Lookups;
use twofold_services::delivery::RetryPolicy;
use twofold_services::ports::CodeSender;
use twofold_services::BudgetCeilings;

/// Where codes go and how failed sends are retried.
#[derive(Clone)]
pub struct Delivery {
    /// The email channel.
    pub email: Arc<dyn CodeSender>,
    /// The SMS channel.
    pub sms: Arc<dyn CodeSender>,
    /// Retries of temporary failures.
    pub retry: RetryPolicy,
    /// Whether this instance runs the delivery worker (API-only replicas may not; queued
    /// codes wait for an instance that does).
    pub run_worker: bool,
    /// The operator's ceilings on tenants' hourly budgets.
    pub ceilings: BudgetCeilings,
    /// `TWOFOLD_ALLOW_PRIVATE_PROVIDER_URLS`: tenants' own providers may be on loopback or
    /// private addresses and speak plain SMTP or HTTP (development and tests only).
    pub allow_private_provider_urls: bool,
    /// Where tenants' provider names are looked up ([`Lookups::new`]: the system resolver).
    pub lookups: Arc<Lookups>,
}

impl std::fmt::Debug for Delivery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Delivery")
            .field("retry", &self.retry)
            .finish()
    }
}
