//! The console's own budgets, beside the API's per-key rate and the tenant's share.
//!
//! - **Sign-ins** write a tenant event each (decision 141), so they have a budget of their own
//!   per key and client address, and per key: far below an API key's rate (which an ADMIN may
//!   raise to thousands a second), and not the API's bucket, which a thief holding the same
//!   key could keep empty to keep the admin from signing in and revoking it.
//! - **Signing out and revoking a key** are not charged to the key's API rate (the same
//!   thief), but each costs a session read before its form is checked, so they have a small
//!   budget per key and client address.
//!
//! - **Hosted pages** are charged to the link's APP key like API requests; so that one end user
//!   looping on a page cannot spend the tenant's backend's whole rate, each browser session and
//!   each client address has a small budget of its own, taken first. A hosted session also has
//!   a small budget of codes sent by email or SMS, to numbers its user types.
//!
//! Per instance, like the API's buckets. Addresses are counted as the API's budget counts them
//! (an IPv4 address, or an IPv6 /64: [`budget_unit`]), so one client is not a budget per address
//! of its /64.

use std::hash::Hash;
use std::net::IpAddr;
use std::num::NonZeroU32;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};
use twofold_graphql::client_addr::budget_unit;
use twofold_services::KeyPrincipal;

/// Keys a limiter remembers before it forgets those whose bucket is full again.
const MAX_REMEMBERED: usize = 10_000;

pub struct ConsoleBudgets {
    sign_in_from: DefaultKeyedRateLimiter<(String, Option<IpAddr>)>,
    sign_in: DefaultKeyedRateLimiter<String>,
    exempt_from: DefaultKeyedRateLimiter<(String, Option<IpAddr>)>,
    hosted_session: DefaultKeyedRateLimiter<String>,
    hosted_from: DefaultKeyedRateLimiter<Option<IpAddr>>,
    hosted_sends: DefaultKeyedRateLimiter<String>,
    hosted_sends_for: DefaultKeyedRateLimiter<String>,
}

/// 5 codes, then one per 10 minutes.
fn sends() -> Quota {
    Quota::with_period(std::time::Duration::from_secs(600))
        .expect("a non-zero period")
        .allow_burst(NonZeroU32::new(5).unwrap_or(NonZeroU32::MIN))
}

fn per_minute(n: u32, burst: u32) -> Quota {
    Quota::per_minute(NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN))
        .allow_burst(NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN))
}

impl Default for ConsoleBudgets {
    fn default() -> Self {
        Self {
            sign_in_from: governor::RateLimiter::keyed(per_minute(30, 30)),
            sign_in: governor::RateLimiter::keyed(per_minute(120, 60)),
            exempt_from: governor::RateLimiter::keyed(per_minute(120, 10)),
            // A person reads and types: a page every two seconds, in bursts of 20.
            hosted_session: governor::RateLimiter::keyed(per_minute(30, 20)),
            // Many people behind one address (an office, a carrier's NAT).
            hosted_from: governor::RateLimiter::keyed(per_minute(600, 120)),
            // Codes by email or SMS a hosted visit may ask for: 5, then one every 10 minutes
            // (a visit lasts 30), whatever numbers it types.
            hosted_sends: governor::RateLimiter::keyed(sends()),
            // The same for all the visits of one user: a new link is not a new budget.
            hosted_sends_for: governor::RateLimiter::keyed(sends()),
        }
    }
}

/// Takes one from `limiter`'s bucket for `key`, or says how many seconds until there is one.
fn take<K: Hash + Eq + Clone>(limiter: &DefaultKeyedRateLimiter<K>, key: &K) -> Result<(), u64> {
    if limiter.len() > MAX_REMEMBERED {
        limiter.retain_recent();
    }
    limiter.check_key(key).map_err(|not_until| {
        let wait = not_until.wait_time_from(DefaultClock::default().now());
        (wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1)
    })
}

impl ConsoleBudgets {
    /// One sign-in of `key` from `ip`.
    pub(crate) fn sign_in(&self, key: &KeyPrincipal, ip: Option<IpAddr>) -> Result<(), u64> {
        let id = key.key_id.as_str().to_owned();
        take(&self.sign_in_from, &(id.clone(), ip.map(budget_unit)))?;
        take(&self.sign_in, &id)
    }

    /// One sign-out or key revocation by a session of `key` from `ip`.
    pub(crate) fn exempt(&self, key: &KeyPrincipal, ip: Option<IpAddr>) -> Result<(), u64> {
        let unit = ip.map(budget_unit);
        take(&self.exempt_from, &(key.key_id.as_str().to_owned(), unit))
    }

    /// One code sent by email or SMS for the hosted session `session` of `user` (tenant and
    /// user id): each costs the tenant a message, and the number is the user's to type (SMS
    /// pumping).
    pub(crate) fn hosted_send(&self, session: &str, user: &str) -> Result<(), u64> {
        take(&self.hosted_sends, &session.to_owned())?;
        take(&self.hosted_sends_for, &user.to_owned())
    }

    /// One hosted page of the session `session` (any stable name of it) from `ip`.
    pub(crate) fn hosted(&self, session: &str, ip: Option<IpAddr>) -> Result<(), u64> {
        // The session's own bucket first: a session past it does not go on spending what the
        // other visitors of its address (a /64 of an office or a hotel) share.
        take(&self.hosted_session, &session.to_owned())?;
        take(&self.hosted_from, &ip.map(budget_unit))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A client that moves through the addresses of its /64 keeps one budget.
    #[test]
    fn the_addresses_of_one_64_share_the_hosted_pages_budget() {
        let budgets = ConsoleBudgets::default();
        let address =
            |n: u32| -> Option<IpAddr> { Some(format!("2001:db8:9:1::{n:x}").parse().unwrap()) };
        let spent = (0..1_000).find(|&n| budgets.hosted(&format!("s{n}"), address(n)).is_err());
        assert!(spent.is_some_and(|n| n >= 120), "{spent:?}");
        let other_64: Option<IpAddr> = Some("2001:db8:9:2::1".parse().unwrap());
        assert!(budgets.hosted("another", other_64).is_ok());
    }

    /// One looping session spends its own budget, not its address's: the other visitors of
    /// its /64 still get their pages.
    #[test]
    fn a_looping_session_does_not_spend_its_neighbours_budget() {
        let budgets = ConsoleBudgets::default();
        let address =
            |n: u32| -> Option<IpAddr> { Some(format!("2001:db8:9:1::{n:x}").parse().unwrap()) };
        for _ in 0..1_000 {
            let _ = budgets.hosted("looping", address(1));
        }
        assert!(budgets.hosted("looping", address(1)).is_err());
        assert!(budgets.hosted("neighbour", address(2)).is_ok());
    }
}
