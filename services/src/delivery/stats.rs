//! What the worker did, counted in this process for `/metrics`: never a tenant, a user or an
//! address, only the channel, the kind of message and the outcome, so the series are fixed.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use twofold_domain::channel::Channel;

use crate::ports::DeliveryKind;

/// How one attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptResult {
    /// The provider accepted it.
    Delivered,
    /// A temporary failure; the job is retried later.
    Retried,
    /// The attempts ran out or the failure was permanent: recorded as failed.
    Failed,
    /// Nothing to send any more (spent, expired, replaced or already recorded).
    Obsolete,
}

impl AttemptResult {
    const ALL: [AttemptResult; 4] = [
        AttemptResult::Delivered,
        AttemptResult::Retried,
        AttemptResult::Failed,
        AttemptResult::Obsolete,
    ];

    /// The metric's label value.
    pub fn as_str(self) -> &'static str {
        match self {
            AttemptResult::Delivered => "delivered",
            AttemptResult::Retried => "retried",
            AttemptResult::Failed => "failed",
            AttemptResult::Obsolete => "obsolete",
        }
    }
}

/// One series of [`DeliveryStats::snapshot`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeliveryCount {
    pub channel: Channel,
    pub kind: DeliveryKind,
    pub result: AttemptResult,
    pub count: u64,
}

const CHANNELS: [Channel; 2] = [Channel::Email, Channel::Sms];
const KINDS: [DeliveryKind; 2] = [DeliveryKind::Code, DeliveryKind::Notification];

/// Counters shared by the worker's sends, and whether its loop runs.
#[derive(Debug, Default)]
pub struct DeliveryStats {
    counts: [[[AtomicU64; 4]; 2]; 2],
    running: AtomicBool,
}

impl DeliveryStats {
    pub(crate) fn record(&self, channel: Channel, kind: DeliveryKind, result: AttemptResult) {
        let c = CHANNELS.iter().position(|x| *x == channel).unwrap_or(0);
        let k = KINDS.iter().position(|x| *x == kind).unwrap_or(0);
        let r = AttemptResult::ALL
            .iter()
            .position(|x| *x == result)
            .unwrap_or(0);
        self.counts[c][k][r].fetch_add(1, Ordering::Relaxed);
    }

    /// Every series, zeros included (a series that appears only after its first count
    /// breaks `rate()` over the first one).
    pub fn snapshot(&self) -> Vec<DeliveryCount> {
        let mut out = Vec::with_capacity(16);
        for (c, channel) in CHANNELS.iter().enumerate() {
            for (k, kind) in KINDS.iter().enumerate() {
                for (r, result) in AttemptResult::ALL.iter().enumerate() {
                    out.push(DeliveryCount {
                        channel: *channel,
                        kind: *kind,
                        result: *result,
                        count: self.counts[c][k][r].load(Ordering::Relaxed),
                    });
                }
            }
        }
        out
    }

    /// Whether the worker's loop is running (it stops only on shutdown, or by a panic).
    pub fn running(&self) -> bool {
        self.running.load(Ordering::Relaxed)
    }

    /// Marks the loop running until the guard drops, which a panic does too.
    pub(crate) fn run_guard(self: &std::sync::Arc<Self>) -> RunGuard {
        self.running.store(true, Ordering::Relaxed);
        RunGuard(self.clone())
    }
}

/// Clears [`DeliveryStats::running`] when the loop ends, however it ends.
pub(crate) struct RunGuard(std::sync::Arc<DeliveryStats>);

impl Drop for RunGuard {
    fn drop(&mut self) {
        self.0.running.store(false, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_outcome_is_counted_under_its_own_channel_and_kind() {
        let stats = std::sync::Arc::new(DeliveryStats::default());
        stats.record(Channel::Sms, DeliveryKind::Code, AttemptResult::Delivered);
        stats.record(Channel::Sms, DeliveryKind::Code, AttemptResult::Delivered);
        stats.record(
            Channel::Email,
            DeliveryKind::Notification,
            AttemptResult::Failed,
        );
        let all = stats.snapshot();
        assert_eq!(all.len(), 16);
        let count = |channel, kind, result| {
            all.iter()
                .find(|c| c.channel == channel && c.kind == kind && c.result == result)
                .unwrap()
                .count
        };
        assert_eq!(
            count(Channel::Sms, DeliveryKind::Code, AttemptResult::Delivered),
            2
        );
        assert_eq!(
            count(
                Channel::Email,
                DeliveryKind::Notification,
                AttemptResult::Failed
            ),
            1
        );
        assert_eq!(
            count(Channel::Email, DeliveryKind::Code, AttemptResult::Delivered),
            0
        );
        assert!(!stats.running());
        let guard = stats.run_guard();
        assert!(stats.running());
        drop(guard);
        assert!(!stats.running());
    }
}
