//! How the event stores wait and what they keep: one value for `Wiring::new`.

use std::time::Duration;

use twofold_infra::group_commit::WriterLimits;
use twofold_infra::processor::DEFAULT_SETTLE_TIMEOUT;

/// How the event stores wait and what they keep.
#[derive(Clone, Copy, Debug)]
pub struct StoreOptions {
    /// How long a command waits for its write to reach the read models.
    pub settle_timeout: Duration,
    /// Aggregates kept in memory per store (`TWOFOLD_AGGREGATE_CACHE`).
    pub aggregate_cache: usize,
    /// How each store's writer waits on PostgreSQL.
    pub writer: WriterLimits,
}

impl Default for StoreOptions {
    /// What a one-shot command needs: nothing kept between commands.
    fn default() -> Self {
        Self {
            settle_timeout: DEFAULT_SETTLE_TIMEOUT,
            aggregate_cache: 0,
            writer: WriterLimits::default(),
        }
    }
}
