//! Toll-fraud and mail-bombing caps on issued codes: the tenant's hourly SMS and email budgets,
//! and per destination (whichever user it is registered to) at most
//! [`SENDS_PER_WINDOW`] codes per [`SEND_WINDOW_MINUTES`] in the tenant and
//! [`SERVICE_WIDE_SENDS_PER_WINDOW`] across all tenants. A send reserves its slots before the
//! code is issued and gives them back if it is not, so the caps hold exactly under concurrency
//! (see [`SendLimiter`]).

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use twofold_domain::channel::{Channel, Purpose};
use twofold_domain::policy::bounds;
use twofold_domain::user::{UserEvent, SENDS_PER_WINDOW, SEND_WINDOW_MINUTES};

use crate::ports::{Reservation, SecretHasher, SendCap, SendLimiter, TenantView};
use crate::ServiceError;

/// The operator's ceilings on what a tenant's ADMIN may set as hourly budgets
/// (`TWOFOLD_MAX_SMS_HOURLY_BUDGET`, `TWOFOLD_MAX_EMAIL_HOURLY_BUDGET`). Codes go out on the
/// operator's provider accounts, so a tenant (or a stolen ADMIN key) must not be able to raise
/// its own toll-fraud budget without bound. A budget set before the ceiling was lowered counts
/// as the ceiling.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BudgetCeilings {
    /// Most SMS codes per hour a tenant may set.
    pub sms: u32,
    /// Most email codes per hour a tenant may set.
    pub email: u32,
}

impl Default for BudgetCeilings {
    fn default() -> Self {
        Self {
            sms: 10_000,
            email: 100_000,
        }
    }
}

impl BudgetCeilings {
    /// From `TWOFOLD_MAX_SMS_HOURLY_BUDGET` and `TWOFOLD_MAX_EMAIL_HOURLY_BUDGET` read through
    /// `get` (unset or blank: the default), each at most the policy's own bound.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, String> {
        let read = |var: &str, default: u32, bound: (&str, i64, i64)| match get(var)
            .filter(|v| !v.trim().is_empty())
        {
            None => Ok(default),
            Some(v) => v
                .trim()
                .parse::<u32>()
                .ok()
                .filter(|n| i64::from(*n) <= bound.2)
                .ok_or_else(|| format!("{var} must be a whole number from 0 to {}", bound.2)),
        };
        let defaults = Self::default();
        Ok(Self {
            sms: read(
                "TWOFOLD_MAX_SMS_HOURLY_BUDGET",
                defaults.sms,
                bounds::SMS_HOURLY_BUDGET,
            )?,
            email: read(
                "TWOFOLD_MAX_EMAIL_HOURLY_BUDGET",
                defaults.email,
                bounds::EMAIL_HOURLY_BUDGET,
            )?,
        })
    }

    /// The ceiling of `channel`'s budget.
    pub fn of(&self, channel: Channel) -> u32 {
        match channel {
            Channel::Sms => self.sms,
            Channel::Email => self.email,
        }
    }
}

/// Codes one destination may receive per window across every tenant of the service.
pub const SERVICE_WIDE_SENDS_PER_WINDOW: u32 = 10;

/// Keys a destination's count within one tenant: the tenant is part of the hashed message, so
/// these buckets cannot be linked across tenants.
const TENANT_DESTINATION_PURPOSE: &str = "send-destination";
/// Keys a destination's count across tenants. The same hash for every tenant is what makes a
/// service-wide count possible; the trade-off is that whoever reads the table sees that one
/// (unknown) destination got codes from several tenants within a window. The hash is keyed by
/// the server's pepper (a phone number has too little entropy for a plain hash), and the rows
/// name no tenant and are pruned once their window ends.
const SERVICE_DESTINATION_PURPOSE: &str = "send-destination-service";

/// A destination as counted: an E.164 number, or an email address trimmed and lowercased (the
/// local part is case-insensitive at every provider that matters, and an attacker would use
/// case to dodge the cap).
/// The mailbox a destination reaches, for counting only (codes still go to the address as
/// given). Case and spacing aside, the aliases every large provider delivers to one mailbox
/// count as that mailbox: a `+tag` or quotes around the local part anywhere, and dots in
/// Gmail's local parts. Without this, `victim+1@`, `victim+2@`... each had caps of their own.
fn normalized(channel: Channel, destination: &str) -> String {
    match channel {
        Channel::Email => {
            let address = destination.trim().to_lowercase();
            let Some((local, domain)) = address.rsplit_once('@') else {
                return address;
            };
            // `"v\ictim"` is `victim` (RFC 5321 quoted pairs): quotes and backslashes go.
            let local: String = local.chars().filter(|c| !matches!(c, '"' | '\\')).collect();
            let local = local.as_str();
            let local = local.split_once('+').map_or(local, |(base, _)| base);
            let (local, domain) = match domain {
                "gmail.com" | "googlemail.com" => (local.replace('.', ""), "gmail.com"),
                _ => (local.to_owned(), domain),
            };
            format!("{local}@{domain}")
        }
        Channel::Sms => destination.trim().to_owned(),
    }
}

fn channel_name(channel: Channel) -> String {
    channel.as_str().to_ascii_lowercase()
}

/// How long giving back a slot may take before it is left counted.
const SETTLE_DEADLINE: std::time::Duration = std::time::Duration::from_secs(10);

/// Slots taken for one code; given back unless the code was issued.
#[must_use = "a slot must be settled: kept if the code was issued, released otherwise"]
pub(crate) struct Slot {
    id: String,
    caps: Vec<SendCap>,
    at: DateTime<Utc>,
}

/// Applies the caps through a [`SendLimiter`].
#[derive(Clone)]
pub(crate) struct SendLimits {
    limiter: Arc<dyn SendLimiter>,
    hasher: Arc<dyn SecretHasher>,
    pub(crate) ceilings: BudgetCeilings,
}

impl SendLimits {
    pub(crate) fn new(limiter: Arc<dyn SendLimiter>, hasher: Arc<dyn SecretHasher>) -> Self {
        Self {
            limiter,
            hasher,
            ceilings: BudgetCeilings::default(),
        }
    }

    /// The caps a code to `destination` by `channel` counts toward, in the order a refusal is
    /// reported: the destination's caps first.
    ///
    /// Verification codes (to an address someone registered, proven by no one yet) and sign-in
    /// codes (to the address its owner proved) count in buckets of their own: anyone can
    /// register someone else's number and spend its verification caps, but that must not leave
    /// the owner without sign-in codes.
    fn caps(
        &self,
        tenant: &TenantView,
        channel: Channel,
        purpose: Purpose,
        destination: &str,
    ) -> Vec<SendCap> {
        let channel_name = channel_name(channel);
        let kind = match purpose {
            Purpose::SignIn => "",
            Purpose::VerifyChannel => "-verify",
        };
        let destination = zeroize::Zeroizing::new(normalized(channel, destination));
        let in_tenant =
            zeroize::Zeroizing::new(format!("{}\0{channel_name}\0{}", tenant.id, *destination));
        let service_wide = zeroize::Zeroizing::new(format!("{channel_name}\0{}", *destination));
        let window = Duration::minutes(SEND_WINDOW_MINUTES);
        let budget = match channel {
            Channel::Sms => tenant.policy.sms_hourly_budget,
            Channel::Email => tenant.policy.email_hourly_budget,
        }
        .min(self.ceilings.of(channel));
        vec![
            SendCap {
                bucket: format!(
                    "dest{kind}/{}",
                    self.hasher
                        .keyed_hash(TENANT_DESTINATION_PURPOSE, in_tenant.as_bytes())
                        .as_hex()
                ),
                limit: u32::try_from(SENDS_PER_WINDOW).unwrap_or(u32::MAX),
                window,
            },
            SendCap {
                bucket: format!(
                    "dest-all{kind}/{}",
                    self.hasher
                        .keyed_hash(SERVICE_DESTINATION_PURPOSE, service_wide.as_bytes())
                        .as_hex()
                ),
                limit: SERVICE_WIDE_SENDS_PER_WINDOW,
                window,
            },
            SendCap {
                bucket: format!("tenant/{}/{channel_name}", tenant.id),
                limit: budget,
                window: Duration::hours(1),
            },
        ]
    }

    /// Takes a slot for the code `challenge_id` to `destination`, or says which cap is full.
    /// The refusal for a destination is the same whichever cap (tenant or service-wide) is
    /// full, and names no one: it must not tell a caller that someone else, in this tenant or
    /// another, uses that address.
    #[tracing::instrument(skip_all, fields(channel = channel.as_str()))]
    pub(crate) async fn reserve(
        &self,
        tenant: &TenantView,
        channel: Channel,
        purpose: Purpose,
        destination: &str,
        challenge_id: &str,
        now: DateTime<Utc>,
    ) -> Result<Slot, ServiceError> {
        let caps = self.caps(tenant, channel, purpose, destination);
        match self.limiter.reserve(challenge_id, &caps, now).await? {
            Reservation::Granted => Ok(Slot {
                id: challenge_id.to_owned(),
                caps,
                at: now,
            }),
            Reservation::Refused {
                cap,
                retry_after_seconds,
            } => {
                let what = match channel {
                    Channel::Sms => "phone number",
                    Channel::Email => "email address",
                };
                Err(if cap < 2 {
                    tracing::info!("destination cap reached");
                    ServiceError::RateLimited {
                        message: format!(
                            "too many codes were sent to this {what} recently: try again later \
                             or use another method"
                        ),
                        // The whole window, not when the oldest send leaves it: that moment
                        // could tell a caller about sends it did not make.
                        retry_after_seconds: SEND_WINDOW_MINUTES * 60,
                    }
                } else {
                    tracing::info!("tenant send budget used up");
                    let kind = match channel {
                        Channel::Sms => "SMS",
                        Channel::Email => "email",
                    };
                    ServiceError::RateLimited {
                        message: format!(
                            "the organisation's hourly {kind} budget is used up: try again later \
                             or use another method"
                        ),
                        retry_after_seconds: retry_after_seconds.max(1),
                    }
                })
            }
        }
    }

    /// Keeps the slot when the code was issued, gives it back otherwise (the command failed, or
    /// a concurrent retry got the open challenge instead).
    pub(crate) async fn settle(&self, slot: Slot, issued: bool) {
        if issued {
            return;
        }
        // Bounded: the caller holds its request's place in the tenant's share, which a stalled
        // database must not pin. A slot not given back stays counted until its window ends:
        // the safe side for a cap.
        let release = self.limiter.release(&slot.id, &slot.caps, slot.at);
        match tokio::time::timeout(SETTLE_DEADLINE, release).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "could not give back a send slot"),
            Err(_) => tracing::warn!("giving back a send slot did not finish within its deadline"),
        }
    }
}

/// Whether `events` issued the challenge `id`.
pub(crate) fn issued(events: &[UserEvent], id: &str) -> bool {
    events
        .iter()
        .any(|e| matches!(e, UserEvent::CodeSent { challenge_id, .. } if challenge_id == id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_ceilings_default_and_stay_within_the_policy_bounds() {
        assert_eq!(
            BudgetCeilings::from_lookup(|_| None).unwrap(),
            BudgetCeilings::default()
        );
        let set = BudgetCeilings::from_lookup(|k| {
            (k == "TWOFOLD_MAX_SMS_HOURLY_BUDGET").then(|| " 50 ".to_owned())
        })
        .unwrap();
        assert_eq!((set.sms, set.email), (50, BudgetCeilings::default().email));
        let e = BudgetCeilings::from_lookup(|k| {
            (k == "TWOFOLD_MAX_EMAIL_HOURLY_BUDGET").then(|| "2000000".to_owned())
        })
        .unwrap_err();
        assert!(e.contains("TWOFOLD_MAX_EMAIL_HOURLY_BUDGET"), "{e}");
    }

    #[test]
    fn addresses_are_counted_whatever_their_case_and_spacing() {
        assert_eq!(
            normalized(Channel::Email, " Mail.Box@Example.COM "),
            "mail.box@example.com"
        );
        assert_eq!(normalized(Channel::Sms, "+995555123456"), "+995555123456");
        for alias in [
            "victim+1@example.com",
            "Victim+anything@EXAMPLE.com",
            "\"victim\"@example.com",
            "\"v\\ictim\"@example.com",
            "\"vic\\tim+1\"@example.com",
        ] {
            assert_eq!(
                normalized(Channel::Email, alias),
                "victim@example.com",
                "{alias}"
            );
        }
        for alias in ["v.ic.tim@gmail.com", "victim+x@googlemail.com"] {
            assert_eq!(
                normalized(Channel::Email, alias),
                "victim@gmail.com",
                "{alias}"
            );
        }
        // Dots matter elsewhere.
        assert_eq!(
            normalized(Channel::Email, "a.b@example.com"),
            "a.b@example.com"
        );
    }
}
