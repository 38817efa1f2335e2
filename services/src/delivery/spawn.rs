//! The worker's loop: several sends at once, each on its own claimed job, woken by the event
//! processor or a short poll.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{watch, Semaphore};
use tokio::task::{JoinHandle, JoinSet};

use super::DeliveryWorker;
use crate::ports::ProcessorProgress;

/// Sends in flight at once per instance by default (`TWOFOLD_DELIVERY_CONCURRENCY`). A send mostly
/// waits for the provider (an SMTP exchange, an HTTPS request), so sends overlap instead of
/// queueing behind each other: behind a provider that takes 300 ms, 8 at once delivered 27 codes
/// a second, 32 deliver about 100 (decision 166). A send holds a database connection only for its
/// own statements, never while the provider answers. Each send holds its own job's lease, so no
/// code is sent twice for this.
pub const DELIVERY_CONCURRENCY: usize = 32;

/// The most jobs one claim takes: the slots free at once, up to this many, share a round trip.
const CLAIM_AT_ONCE: usize = 16;

/// How long the worker waits for the processor before claiming again (a retry falls due).
const POLL: Duration = Duration::from_millis(200);

impl DeliveryWorker {
    /// Runs the worker until `shutdown`: it claims due jobs while it has a free slot (up to
    /// the policy's concurrency, [`DELIVERY_CONCURRENCY`] by default), then waits for the event processor to apply new
    /// events (a `CodeSent` queues a job) or for a short poll (a retry falls due). On shutdown it
    /// lets the sends in flight finish.
    pub fn spawn(
        self,
        progress: Arc<dyn ProcessorProgress>,
        mut shutdown: watch::Receiver<bool>,
    ) -> JoinHandle<()> {
        tokio::spawn(async move {
            let _running = self.stats.run_guard();
            let slots = Arc::new(Semaphore::new(self.policy.concurrency.max(1)));
            let mut sends = JoinSet::new();
            let mut pruned_at: Option<Instant> = None;
            loop {
                while sends.try_join_next().is_some() {}
                if *shutdown.borrow() {
                    break;
                }
                if pruned_at.is_none_or(|at| at.elapsed() >= self.policy.prune_every()) {
                    pruned_at = Some(Instant::now());
                    match self.prune().await {
                        Ok(0) => {}
                        Ok(n) => tracing::info!(pruned = n, "finished deliveries pruned"),
                        Err(e) => tracing::error!(error = ?e, "pruning finished deliveries failed"),
                    }
                }
                let slot = tokio::select! {
                    slot = slots.clone().acquire_owned() => match slot {
                        Ok(slot) => slot,
                        Err(_) => break,
                    },
                    // A dropped sender means nobody can stop the worker any more: stop now.
                    changed = shutdown.changed() => match changed {
                        Ok(()) => continue,
                        Err(_) => break,
                    },
                };
                // Every slot free now, up to a claim's worth, is filled by one claim.
                let mut free = vec![slot];
                while free.len() < CLAIM_AT_ONCE {
                    match slots.clone().try_acquire_owned() {
                        Ok(slot) => free.push(slot),
                        Err(_) => break,
                    }
                }
                let wanted = free.len();
                match self.claim_up_to(wanted).await {
                    Ok(jobs) => {
                        let claimed = jobs.len();
                        for (job, slot) in jobs.into_iter().zip(free.drain(..)) {
                            let worker = self.clone();
                            sends.spawn(async move {
                                if let Err(e) = worker.deliver_claimed(job).await {
                                    tracing::error!(error = ?e, "delivery failed; the job will be retried");
                                }
                                drop(slot);
                            });
                        }
                        // A full claim: more may be due now. Fewer: the due jobs are all
                        // taken, so wait for the processor to queue more.
                        if claimed == wanted {
                            continue;
                        }
                    }
                    Err(e) => tracing::error!(error = ?e, "delivery worker failed; will retry"),
                }
                drop(free);
                tokio::select! {
                    _ = progress.progressed() => {}
                    _ = tokio::time::sleep(POLL) => {}
                    _ = shutdown.changed() => {}
                }
            }
            while sends.join_next().await.is_some() {}
        })
    }
}
