//! Read models kept by the event processor.

pub mod activity;
pub mod compliance;
pub mod delivery_outbox;
pub mod tenants;

use std::sync::Arc;

use crate::processor::Projection;

/// Every projection the service runs, in the order the processor drives them.
pub fn all() -> Vec<Arc<dyn Projection>> {
    vec![
        Arc::new(tenants::TenantsProjection),
        Arc::new(delivery_outbox::DeliveryOutbox),
        Arc::new(compliance::ComplianceProjection),
        Arc::new(activity::ActivityProjection),
    ]
}
