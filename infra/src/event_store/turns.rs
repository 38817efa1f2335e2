//! One command at a time per aggregate on an instance: commands on the same aggregate take turns.
//!
//! Two commands on one user that overlap here (an email and an SMS code sent at once, a code sent
//! while the worker records another's delivery) used to race: the first took the cached state,
//! the second found none and loaded, decided on the state before the first's commit, and its
//! append was refused, which also failed the group-commit batch it shared and had every command
//! of that batch written again alone. Taking turns, the second waits for the first's commit and
//! decides on the state it left in the cache: no load, no refused append.
//!
//! This is only about cost, never about correctness: another instance (or the command line)
//! still writes without asking, and the append's key check stays what keeps a stream whole.
//!
//! Turns are striped by a hash of the aggregate id (keyed per process, so no caller can aim at
//! a stripe), so memory stays fixed whatever the number of aggregates; two aggregates that share
//! a stripe only wait for each other, which at the service's concurrency (tens of commands in
//! flight, 1,024 stripes) is rare and costs one command's time. A turn is waited for at most
//! [`TURN_WAIT`]: a caller that floods one user with commands queues behind itself, and delays
//! the few users that share the stripe by no more than that before they race as they used to.

use std::hash::BuildHasher;
use std::time::Duration;

use tokio::sync::{Mutex, MutexGuard};

const STRIPES: usize = 1024;

/// The longest a command waits for its turn before it goes ahead anyway (and may conflict).
/// Tens of times a command's usual time under load.
pub const TURN_WAIT: Duration = Duration::from_millis(100);

pub struct Turns {
    stripes: Box<[Mutex<()>]>,
    hasher: std::collections::hash_map::RandomState,
    wait_at_most: Duration,
}

impl Default for Turns {
    fn default() -> Self {
        Self::waiting_at_most(TURN_WAIT)
    }
}

impl Turns {
    /// Turns waited for at most `wait` instead of [`TURN_WAIT`].
    pub fn waiting_at_most(wait: Duration) -> Self {
        Self {
            stripes: (0..STRIPES).map(|_| Mutex::new(())).collect(),
            hasher: std::collections::hash_map::RandomState::new(),
            wait_at_most: wait,
        }
    }

    /// Waits for the aggregate's turn, which ends when the guard is dropped; `None` when it
    /// did not come in time (a request that retries after a conflict may wait again, so a
    /// request is delayed by up to [`TURN_WAIT`] per attempt). Never held across another aggregate's turn of the
    /// same store, so turns cannot deadlock.
    pub async fn wait(&self, aggregate_id: &str) -> Option<MutexGuard<'_, ()>> {
        let stripe = &self.stripes[(self.hasher.hash_one(aggregate_id) as usize) % STRIPES];
        if let Ok(turn) = stripe.try_lock() {
            return Some(turn);
        }
        tokio::time::timeout(self.wait_at_most, stripe.lock())
            .await
            .ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_turn_waits_for_the_one_before_but_never_past_the_bound() {
        let turns = Turns::default();
        let first = turns.wait("tenant/user/amy").await.expect("free");
        // Waiting on Amy: the turn comes as soon as the first is over.
        let waiting = turns.wait("tenant/user/amy");
        tokio::pin!(waiting);
        assert!(futures::poll!(&mut waiting).is_pending());
        drop(first);
        let second = waiting.await.expect("the turn after the first");
        // A turn held for longer than the bound: the next goes ahead without one.
        let started = tokio::time::Instant::now();
        assert!(turns.wait("tenant/user/amy").await.is_none());
        assert_eq!(started.elapsed(), TURN_WAIT);
        drop(second);
        assert!(turns.wait("tenant/user/amy").await.is_some());
    }
}
