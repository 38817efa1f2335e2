//! How many long-lived reads one tenant may hold open on an instance.
//!
//! A live audit stream polls the log every second and on every commit; an audit export reads
//! the tenant's whole history; a compliance CSV reads every user without 2FA. None passes the
//! per-operation tenant share (they outlive any operation), so without a cap of their own one
//! tenant's many AUDITOR sockets or parallel downloads kept the pool busy for every other
//! tenant.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use twofold_domain::TenantId;

use crate::ServiceError;

/// Live audit streams one tenant may hold open on an instance.
pub const MAX_LIVE_PER_TENANT: usize = 32;

/// Exports one tenant may run at once on an instance.
pub const MAX_EXPORTS_PER_TENANT: usize = 2;

/// Compliance CSVs one tenant may download at once on an instance.
pub const MAX_COMPLIANCE_CSVS_PER_TENANT: usize = 2;

/// How long a refused caller is told to wait: a place comes back when a stream ends, which
/// cannot be foreseen.
const RETRY_AFTER_SECONDS: i64 = 5;

#[derive(Clone, Copy, PartialEq, Eq, Hash)]
enum Kind {
    Live,
    Export,
    ComplianceCsv,
}

/// The open streams, per tenant and kind.
#[derive(Clone, Default)]
pub(crate) struct StreamSlots {
    open: Arc<Mutex<HashMap<(TenantId, Kind), usize>>>,
}

/// One open stream; its place is given back when the stream is dropped.
pub(crate) struct StreamSlot {
    slots: StreamSlots,
    key: (TenantId, Kind),
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        let mut open = self.slots.open.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = open.get_mut(&self.key) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                open.remove(&self.key);
            }
        }
    }
}

impl StreamSlots {
    pub(crate) fn live(&self, tenant: &TenantId) -> Result<StreamSlot, ServiceError> {
        self.take(
            tenant,
            Kind::Live,
            MAX_LIVE_PER_TENANT,
            "live audit streams",
        )
    }

    pub(crate) fn export(&self, tenant: &TenantId) -> Result<StreamSlot, ServiceError> {
        self.take(
            tenant,
            Kind::Export,
            MAX_EXPORTS_PER_TENANT,
            "audit exports",
        )
    }

    pub(crate) fn compliance_csv(&self, tenant: &TenantId) -> Result<StreamSlot, ServiceError> {
        self.take(
            tenant,
            Kind::ComplianceCsv,
            MAX_COMPLIANCE_CSVS_PER_TENANT,
            "compliance CSV downloads",
        )
    }

    fn take(
        &self,
        tenant: &TenantId,
        kind: Kind,
        max: usize,
        what: &str,
    ) -> Result<StreamSlot, ServiceError> {
        let key = (tenant.clone(), kind);
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let n = open.entry(key.clone()).or_insert(0);
        if *n >= max {
            return Err(ServiceError::RateLimited {
                message: format!(
                    "the organisation already has {max} {what} open on this server: close one \
                     and try again"
                ),
                retry_after_seconds: RETRY_AFTER_SECONDS,
            });
        }
        *n += 1;
        Ok(StreamSlot {
            slots: self.clone(),
            key,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tenant_holds_at_most_its_streams_and_gets_them_back() {
        let slots = StreamSlots::default();
        let acme = TenantId::parse("acme").unwrap();
        let other = TenantId::parse("other").unwrap();
        let held: Vec<StreamSlot> = (0..MAX_EXPORTS_PER_TENANT)
            .map(|_| slots.export(&acme).unwrap())
            .collect();
        assert!(matches!(
            slots.export(&acme),
            Err(ServiceError::RateLimited { .. })
        ));
        assert!(
            slots.export(&other).is_ok(),
            "another tenant is not affected"
        );
        assert!(slots.live(&acme).is_ok(), "live streams are counted apart");
        let csvs: Vec<StreamSlot> = (0..MAX_COMPLIANCE_CSVS_PER_TENANT)
            .map(|_| slots.compliance_csv(&acme).unwrap())
            .collect();
        assert!(slots.compliance_csv(&acme).is_err());
        drop(held);
        assert!(slots.export(&acme).is_ok());
        assert!(slots.compliance_csv(&acme).is_err(), "counted apart");
        drop(csvs);
        assert!(slots.compliance_csv(&acme).is_ok());
    }
}
