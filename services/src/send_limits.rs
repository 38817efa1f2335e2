//! Toll-fraud and mail-bombing caps on issued codes: the tenant's hourly SMS and email budgets,
//! and per destination (whichever user it is registered to) at most
//! [`SENDS_PER_WINDOW`] codes per [`SEND_WINDOW_MINUTES`] in the tenant and
//! [`SERVICE_WIDE_SENDS_PER_WINDOW`] across all tenants. A send reserves its slots before the
//! code is issued and gives them back if it is not, so the caps hold exactly under concurrency
//! (see [`SendLimiter`]).

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use tracing::Instrument;
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
        match self
            .reserve_unless_abandoned(challenge_id, &caps, now)
            .await?
        {
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

    /// Reserves in a task of its own. The reservation commits by itself, so a request dropped
    /// while it waits for a bucket's lock (its client hung up, a proxy timed out) would still
    /// take the slots, with no code issued and nothing to give them back: an attacker could
    /// spend someone's caps without a trace. When nobody is left to use a granted reservation,
    /// the task gives it back.
    async fn reserve_unless_abandoned(
        &self,
        challenge_id: &str,
        caps: &[SendCap],
        now: DateTime<Utc>,
    ) -> Result<Reservation, ServiceError> {
        let (answer, answered) = tokio::sync::oneshot::channel();
        let limiter = self.limiter.clone();
        let (id, caps) = (challenge_id.to_owned(), caps.to_vec());
        tokio::spawn(
            async move {
                let reserved = limiter.reserve(&id, &caps, now).await;
                if let Err(Ok(Reservation::Granted)) = answer.send(reserved) {
                    tracing::info!("the send was abandoned while it waited: slots given back");
                    if let Err(e) = limiter.release(&id, &caps, now).await {
                        tracing::warn!(error = %e, "could not give back an abandoned send's slots");
                    }
                }
            }
            .in_current_span(),
        );
        let reserved = answered.await.map_err(|_| {
            ServiceError::Internal("the send reservation's task ended without an answer".into())
        })?;
        Ok(reserved?)
    }

    /// Keeps the slot when the code was issued, gives it back otherwise (the command failed, or
    /// a concurrent retry got the open challenge instead).
    pub(crate) async fn settle(&self, slot: Slot, issued: bool) {
        if issued {
            return;
        }
        if let Err(e) = self.limiter.release(&slot.id, &slot.caps, slot.at).await {
            // The slot stays counted until its window ends: the safe side for a cap.
            tracing::warn!(error = %e, "could not give back a send slot");
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
    use crate::ports::SendCap;
    use crate::testing::ports::FakeHasher;
    use crate::StoreError;

    /// Grants a reservation only when the test opens the gate, as a bucket's lock held
    /// elsewhere would; counts releases.
    struct Gated {
        entered: tokio::sync::Notify,
        gate: tokio::sync::Semaphore,
        released: tokio::sync::Notify,
        released_ids: std::sync::Mutex<Vec<String>>,
    }

    impl Default for Gated {
        fn default() -> Self {
            Self {
                entered: tokio::sync::Notify::new(),
                gate: tokio::sync::Semaphore::new(0),
                released: tokio::sync::Notify::new(),
                released_ids: std::sync::Mutex::default(),
            }
        }
    }

    #[async_trait::async_trait]
    impl SendLimiter for Gated {
        async fn reserve(
            &self,
            _id: &str,
            _caps: &[SendCap],
            _now: DateTime<Utc>,
        ) -> Result<Reservation, StoreError> {
            self.entered.notify_one();
            self.gate.acquire().await.unwrap().forget();
            Ok(Reservation::Granted)
        }

        async fn release(
            &self,
            id: &str,
            _caps: &[SendCap],
            _reserved_at: DateTime<Utc>,
        ) -> Result<(), StoreError> {
            self.released_ids.lock().unwrap().push(id.to_owned());
            self.released.notify_one();
            Ok(())
        }
    }

    #[tokio::test]
    async fn a_reservation_whose_send_was_dropped_while_it_waited_is_given_back() {
        let limiter = Arc::new(Gated::default());
        let limits = SendLimits::new(limiter.clone(), Arc::new(FakeHasher));
        let caps = vec![SendCap {
            bucket: "tenant/t/email".to_owned(),
            limit: 10,
            window: Duration::hours(1),
        }];
        let now = Utc::now();
        // The request goes away while its reservation waits (its client hung up).
        tokio::select! {
            _ = limits.reserve_unless_abandoned("dropped", &caps, now) => {
                panic!("granted before the gate opened")
            }
            () = limiter.entered.notified() => {}
        }
        limiter.gate.add_permits(1);
        tokio::time::timeout(
            std::time::Duration::from_secs(10),
            limiter.released.notified(),
        )
        .await
        .expect("the abandoned reservation is given back");
        // One that is waited for is kept for its send.
        limiter.gate.add_permits(1);
        let kept = limits
            .reserve_unless_abandoned("kept", &caps, now)
            .await
            .unwrap();
        assert_eq!(kept, Reservation::Granted);
        assert_eq!(*limiter.released_ids.lock().unwrap(), vec!["dropped"]);
    }

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
