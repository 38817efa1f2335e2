//! A budget per client address for requests that present no valid key.
//!
//! Per-key rate limits (`rate_limit.rs`) need a key. Without one, a flood of anonymous
//! requests, or of well-formed unknown keys (each costs a database look-up, since unknown keys
//! are never cached), reached the pool and the cores of every tenant. Each request from an
//! address that presents no key or a refused one takes a token of that address's bucket; once
//! the bucket is empty, the address is refused outright, before any look-up, until it refills,
//! whatever key it presents then. A tenant's backend with its valid keys never spends from it.

use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::client_addr::budget_unit;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};

/// Requests without a valid key per second and address.
pub const PER_SECOND: u32 = 50;

/// How many of them may come at once.
pub const BURST: u32 = 100;

/// Addresses remembered before the state starts afresh: a flood from many addresses must not
/// grow it without bound.
const MAX_ADDRESSES: usize = 100_000;

/// The budget of one service instance.
pub struct AnonymousBudget {
    limiter: DefaultKeyedRateLimiter<IpAddr>,
    blocked: Mutex<HashMap<IpAddr, Instant>>,
    pruned: Mutex<Instant>,
}

impl Default for AnonymousBudget {
    fn default() -> Self {
        let per_second = NonZeroU32::new(PER_SECOND).unwrap_or(NonZeroU32::MIN);
        let burst = NonZeroU32::new(BURST).unwrap_or(per_second);
        Self {
            limiter: governor::RateLimiter::keyed(Quota::per_second(per_second).allow_burst(burst)),
            blocked: Mutex::new(HashMap::new()),
            pruned: Mutex::new(Instant::now()),
        }
    }
}

impl AnonymousBudget {
    /// Seconds until `ip` may send again, when its budget is spent.
    pub fn refused(&self, ip: Option<IpAddr>) -> Option<u64> {
        let ip = budget_unit(ip?);
        let mut blocked = self.blocked.lock().unwrap_or_else(|e| e.into_inner());
        let until = *blocked.get(&ip)?;
        let now = Instant::now();
        if now >= until {
            blocked.remove(&ip);
            return None;
        }
        Some(seconds(until - now))
    }

    /// Spends one request without a valid key from `ip`; an empty bucket blocks the address
    /// until a token is back.
    pub fn spend(&self, ip: Option<IpAddr>) {
        let Some(ip) = ip.map(budget_unit) else {
            return;
        };
        if self.limiter.len() > MAX_ADDRESSES {
            // A scan of every address: at most once a second, however many addresses flood.
            let mut pruned = self.pruned.lock().unwrap_or_else(|e| e.into_inner());
            if pruned.elapsed() >= Duration::from_secs(1) {
                self.limiter.retain_recent();
                *pruned = Instant::now();
            }
        }
        if let Err(not_until) = self.limiter.check_key(&ip) {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            let mut blocked = self.blocked.lock().unwrap_or_else(|e| e.into_inner());
            if blocked.len() > MAX_ADDRESSES {
                // Lapsed blocks go; live ones (the flooders') stay.
                let now = Instant::now();
                blocked.retain(|_, until| *until > now);
            }
            blocked.insert(ip, Instant::now() + wait.max(Duration::from_secs(1)));
        }
    }
}

fn seconds(wait: Duration) -> u64 {
    (wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_that_spends_its_budget_is_refused_and_others_are_not() {
        let budget = AnonymousBudget::default();
        let flooding: Option<IpAddr> = Some("192.0.2.1".parse().unwrap());
        let other: Option<IpAddr> = Some("192.0.2.2".parse().unwrap());
        for _ in 0..BURST {
            assert_eq!(budget.refused(flooding), None);
            budget.spend(flooding);
        }
        budget.spend(flooding);
        assert!(budget.refused(flooding).is_some_and(|s| s >= 1));
        assert_eq!(budget.refused(other), None);
        assert_eq!(budget.refused(None), None);
    }
}
