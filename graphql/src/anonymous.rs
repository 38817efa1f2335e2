//! A budget per client address for requests that present no valid key.
//!
//! Per-key rate limits (`rate_limit.rs`) need a key. Without one, a flood of anonymous
//! requests, or of well-formed unknown keys (each costs a database look-up, since unknown keys
//! are never cached), reached the pool and the cores of every tenant. Each request from an
//! address that presents no key or a refused one takes a token of that address's bucket; once
//! the bucket is empty, the address is refused outright, before any look-up, until it refills,
//! whatever key it presents then. A tenant's backend with its valid keys never spends from it.
//!
//! An IPv6 client also spends from its /48's bucket, [`PER_SITE`] times larger: a /48 has
//! 65,536 /64s, each a bucket of its own, and tunnel brokers hand out /48s for free. Large
//! enough that one /64 alone (a rented server among a hosting provider's others) cannot empty
//! it: an empty /48 bucket refuses everyone in the /48, hosted pages' visitors too.

use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::client_addr::{budget_site, budget_unit};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};

/// Requests without a valid key per second and address.
pub const PER_SECOND: u32 = 50;

/// How many of them may come at once.
pub const BURST: u32 = 100;

/// How many /64 buckets a /48's bucket is worth (its rate and its burst).
pub const PER_SITE: u32 = 64;

/// Addresses remembered before the state starts afresh: a flood from many addresses must not
/// grow it without bound.
const MAX_ADDRESSES: usize = 100_000;

/// The budget of one service instance.
pub struct AnonymousBudget {
    /// Per IPv4 address or IPv6 /64.
    limiter: DefaultKeyedRateLimiter<IpAddr>,
    /// Per IPv6 /48.
    sites: DefaultKeyedRateLimiter<IpAddr>,
    /// Blocked units and sites, apart: a /48 and its first /64 are written alike.
    blocked: Mutex<HashMap<Unit, Instant>>,
    pruned: Mutex<Instant>,
}

/// What a block applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Unit {
    Address(IpAddr),
    Site(IpAddr),
}

fn quota(per_second: u32, burst: u32) -> Quota {
    let per_second = NonZeroU32::new(per_second).unwrap_or(NonZeroU32::MIN);
    let burst = NonZeroU32::new(burst).unwrap_or(per_second);
    Quota::per_second(per_second).allow_burst(burst)
}

impl Default for AnonymousBudget {
    fn default() -> Self {
        Self::with_quotas(
            (PER_SECOND, BURST),
            (PER_SECOND * PER_SITE, BURST * PER_SITE),
        )
    }
}

impl AnonymousBudget {
    /// Buckets of `(per second, at once)` per address or /64, and per /48.
    fn with_quotas(unit: (u32, u32), site: (u32, u32)) -> Self {
        Self {
            limiter: governor::RateLimiter::keyed(quota(unit.0, unit.1)),
            sites: governor::RateLimiter::keyed(quota(site.0, site.1)),
            blocked: Mutex::new(HashMap::new()),
            pruned: Mutex::new(Instant::now()),
        }
    }

    /// Seconds until `ip` may send again, when its budget is spent.
    pub fn refused(&self, ip: Option<IpAddr>) -> Option<u64> {
        let ip = ip?;
        let units = [
            Some(Unit::Address(budget_unit(ip))),
            budget_site(ip).map(Unit::Site),
        ];
        let mut blocked = self.blocked.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        let mut wait = None;
        for unit in units.into_iter().flatten() {
            let Some(&until) = blocked.get(&unit) else {
                continue;
            };
            if now >= until {
                blocked.remove(&unit);
            } else {
                wait = wait.max(Some(seconds(until - now)));
            }
        }
        wait
    }

    /// Spends one request without a valid key from `ip`; an empty bucket blocks the address
    /// until a token is back.
    pub fn spend(&self, ip: Option<IpAddr>) {
        let Some(ip) = ip else {
            return;
        };
        if self.limiter.len() + self.sites.len() > MAX_ADDRESSES {
            // A scan of every address: at most once a second, however many addresses flood.
            let mut pruned = self.pruned.lock().unwrap_or_else(|e| e.into_inner());
            if pruned.elapsed() >= Duration::from_secs(1) {
                self.limiter.retain_recent();
                self.sites.retain_recent();
                *pruned = Instant::now();
            }
        }
        let unit = budget_unit(ip);
        // Only what the /64 may still spend reaches its /48: one /64 alone (a rented server
        // among a provider's others, sending on past its own refusals) adds at most its own
        // rate, so emptying a /48's bucket takes [`PER_SITE`] of them.
        if self.spend_from(&self.limiter, unit, Unit::Address(unit)) {
            if let Some(site) = budget_site(ip) {
                self.spend_from(&self.sites, site, Unit::Site(site));
            }
        }
    }

    /// Takes a token from `key`'s bucket; an empty bucket blocks `unit` (and says `false`).
    fn spend_from(
        &self,
        limiter: &DefaultKeyedRateLimiter<IpAddr>,
        key: IpAddr,
        unit: Unit,
    ) -> bool {
        let Err(not_until) = limiter.check_key(&key) else {
            return true;
        };
        {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            let mut blocked = self.blocked.lock().unwrap_or_else(|e| e.into_inner());
            if blocked.len() > MAX_ADDRESSES {
                // Lapsed blocks go; live ones (the flooders') stay.
                let now = Instant::now();
                blocked.retain(|_, until| *until > now);
            }
            blocked.insert(unit, Instant::now() + wait.max(Duration::from_secs(1)));
        }
        false
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

    /// A flood spread over the /64s of one /48, each within its own budget, is refused once
    /// the /48's budget is spent; another /48 is not. (Buckets refill at one token a second
    /// here, so the loop has a second before a token comes back.)
    #[test]
    fn a_flood_across_the_64s_of_one_48_spends_the_48_s_budget() {
        let sent = 400;
        let budget = AnonymousBudget::with_quotas((1, 2), (1, sent));
        let in_site =
            |n: u32| -> Option<IpAddr> { Some(format!("2001:db8:77:{n:x}::1").parse().unwrap()) };
        for n in 0..sent {
            assert_eq!(budget.refused(in_site(n)), None, "request {n}");
            budget.spend(in_site(n));
        }
        budget.spend(in_site(sent));
        let fresh_64 = in_site(sent + 1);
        assert!(budget.refused(fresh_64).is_some_and(|s| s >= 1));
        let other_site: Option<IpAddr> = Some("2001:db8:78::1".parse().unwrap());
        assert_eq!(budget.refused(other_site), None);
        assert_eq!(budget.refused(Some("192.0.2.9".parse().unwrap())), None);
    }

    /// One /64 sending on past its own refusals (paths that spend without asking first) does
    /// not empty its /48's bucket: the rest of the /48 is served.
    #[test]
    fn one_64_alone_cannot_empty_its_48_s_budget() {
        let budget = AnonymousBudget::default();
        let flooding: Option<IpAddr> = Some("2001:db8:77:1::1".parse().unwrap());
        for _ in 0..10 * BURST * PER_SITE {
            budget.spend(flooding);
        }
        assert!(budget.refused(flooding).is_some());
        let neighbour: Option<IpAddr> = Some("2001:db8:77:2::1".parse().unwrap());
        assert_eq!(budget.refused(neighbour), None);
    }
}
