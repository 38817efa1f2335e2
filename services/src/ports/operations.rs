//! What `/health/ready` and `/metrics` read about this instance and its database.

use std::time::Duration;

use async_trait::async_trait;

use crate::delivery::DeliveryCount;
use crate::StoreError;

/// The instance's own state, read without a query.
#[derive(Debug, Clone, Default)]
pub struct InstanceState {
    /// Connections the pool holds now, idle ones included.
    pub pool_size: u32,
    /// Of those, the idle ones.
    pub pool_idle: u32,
    /// The most the pool opens.
    pub pool_max: u32,
    /// Time since the event processor last committed a batch: it grows while batches fail or
    /// wait, and stays near its poll interval when all is well.
    pub processor_lag: Duration,
    /// `None` when this instance runs no delivery worker; else whether its loop is running.
    pub delivery_worker: Option<bool>,
    /// Sends and their outcomes since the instance started.
    pub deliveries: Vec<DeliveryCount>,
}

/// Figures that need the database: how far behind its readers are.
#[derive(Debug, Clone, Default)]
pub struct Backlog {
    /// Events after the oldest projection checkpoint, counted up to [`Backlog::COUNT_CAP`].
    pub events_unprocessed: u64,
    /// Jobs in the delivery queue not finished yet, due or waiting for a retry.
    pub deliveries_pending: u64,
    /// Of those, the ones due now.
    pub deliveries_due: u64,
    /// How long the oldest due job has been due (zero with none).
    pub oldest_due: Duration,
}

impl Backlog {
    /// Counting stops here: the figure is for an alert, and a deeper count would make each
    /// scrape as slow as the backlog is long.
    pub const COUNT_CAP: u64 = 100_000;
}

/// The probes' and the metrics' view of the instance.
#[async_trait]
pub trait Operations: Send + Sync {
    /// `Ok` when the database answers a trivial query.
    async fn database(&self) -> Result<(), StoreError>;
    /// The pool, the processor and the worker as this process sees them.
    fn instance(&self) -> InstanceState;
    /// The processor's and the delivery queue's backlogs.
    async fn backlog(&self) -> Result<Backlog, StoreError>;
}
