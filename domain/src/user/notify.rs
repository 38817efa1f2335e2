//! Security notifications: the notices a user gets when their account's protection changes (a
//! factor added, replaced or removed, 2FA turned off or reset by an admin, a recovery code used,
//! a device trusted, a lockout). Decided here, from the events a command records and the state
//! before and after them, and recorded as `NotificationQueued` in the same commit, so a notice
//! exists exactly when its cause does.
//!
//! Where a notice goes: the user's verified email address, else their verified phone number, as
//! they were *before* the command; only when there was none before, the one the command just
//! verified. So a replaced or removed address still hears of the change (the old address is what
//! protects the account from a takeover, as Google, Microsoft and GitHub do), and an attacker who
//! swaps the address cannot silence the notice. The destination travels in the event, still
//! sealed for the user, because the change that triggered the notice may have removed it from
//! the state (an admin reset, the email removed).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{ContactFactor, User, UserEvent};
use crate::channel::Channel;
use crate::secrets::SealedSecret;
use crate::Method;

/// Queued notices kept in the state until their outcome is recorded; older ones are forgotten
/// (the worker then finds nothing to send), so a broken channel cannot grow the state forever.
pub(super) const KEPT_NOTIFICATIONS: usize = 32;

/// What a notice tells the user. Never a code, a secret or a full contact.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "SCREAMING_SNAKE_CASE")]
pub enum NotificationKind {
    /// A second factor was added.
    FactorAdded {
        /// TOTP, EMAIL, SMS or WEBAUTHN.
        method: Method,
        /// The new address or number, masked for a notice (`a•••@example.com`, `+995 •••• 56`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        masked: Option<String>,
    },
    /// A second factor was replaced by a new one (a new authenticator app, address or number).
    FactorReplaced {
        /// TOTP, EMAIL or SMS.
        method: Method,
        /// The new address or number, masked for a notice.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        masked: Option<String>,
    },
    /// A second factor was removed.
    FactorRemoved {
        /// TOTP, EMAIL, SMS or WEBAUTHN.
        method: Method,
    },
    /// The user turned 2FA off.
    TwoFactorDisabled,
    /// An administrator removed every factor.
    TwoFactorReset,
    /// A recovery code was used.
    RecoveryCodeUsed {
        /// Unused codes left.
        remaining: u32,
    },
    /// A device was trusted (sign-ins from it skip the second factor).
    DeviceTrusted,
    /// Too many wrong codes locked the account.
    LockedOut {
        /// End of the lockout.
        until: DateTime<Utc>,
        /// Only an administrator can end it.
        admin_required: bool,
    },
}

impl NotificationKind {
    /// The kind's stable name (audit, message catalogue ids, the queue).
    pub fn as_str(&self) -> &'static str {
        match self {
            NotificationKind::FactorAdded { .. } => "FACTOR_ADDED",
            NotificationKind::FactorReplaced { .. } => "FACTOR_REPLACED",
            NotificationKind::FactorRemoved { .. } => "FACTOR_REMOVED",
            NotificationKind::TwoFactorDisabled => "TWO_FACTOR_DISABLED",
            NotificationKind::TwoFactorReset => "TWO_FACTOR_RESET",
            NotificationKind::RecoveryCodeUsed { .. } => "RECOVERY_CODE_USED",
            NotificationKind::DeviceTrusted => "DEVICE_TRUSTED",
            NotificationKind::LockedOut { .. } => "LOCKED_OUT",
        }
    }
}

/// What a command needs to queue notices: the tenant's switch and a fresh id (the domain makes
/// no ids). The default queues none (the delivery worker's own commands, tests).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Notifications {
    /// The tenant's `securityNotifications` policy.
    pub enabled: bool,
    /// Random id of the command's first notice; the n-th (n ≥ 2) is `{id}-{n}`.
    pub id: String,
}

impl Notifications {
    /// Notices on, with `id` for the first.
    pub fn on(id: impl Into<String>) -> Self {
        Self {
            enabled: true,
            id: id.into(),
        }
    }
}

/// A notice waiting for its outcome.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueuedNotification {
    /// Its id (the provider's idempotency key).
    pub id: String,
    /// What it says.
    pub kind: NotificationKind,
    /// Email or SMS.
    pub channel: Channel,
    /// The address or number, sealed for the user as the contact was.
    pub destination: SealedSecret,
    /// When the change happened.
    pub at: DateTime<Utc>,
}

/// A contact's display mask (`j***@example.com`, `+995 *** ** 34 56`) shortened for a notice:
/// `j•••@example.com`, `+995 •••• 56` (two digits of a number, not four: the notice may go to
/// someone other than the number's owner).
pub fn notice_mask(channel: Channel, masked: &str) -> String {
    match channel {
        Channel::Email => match masked.rsplit_once('@') {
            Some((local, domain)) => {
                let first: String = local.chars().take(1).filter(|c| *c != '*').collect();
                format!("{first}•••@{domain}")
            }
            None => "•••".to_owned(),
        },
        Channel::Sms => {
            let cc = masked
                .split_whitespace()
                .next()
                .filter(|p| p.starts_with('+'))
                .unwrap_or("");
            let digits: Vec<char> = masked
                .chars()
                .skip(cc.len())
                .filter(char::is_ascii_digit)
                .collect();
            let tail: String = digits[digits.len().saturating_sub(2)..].iter().collect();
            format!("{cc} •••• {tail}").trim().to_owned()
        }
    }
}

impl User {
    /// The notices `events` (just decided on this state) call for, each with its destination;
    /// none when the tenant turned them off or the user has no verified contact to send to.
    pub(super) fn notices(
        &self,
        events: &[UserEvent],
        notifications: &Notifications,
        at: DateTime<Utc>,
    ) -> Vec<UserEvent> {
        if !notifications.enabled || events.is_empty() {
            return vec![];
        }
        let mut after = self.clone();
        for e in events {
            after.evolve(e.clone());
        }
        let mut kinds: Vec<NotificationKind> = events
            .iter()
            .filter_map(|e| self.notice_of(&after, e))
            .collect();
        // Turning 2FA off (by removing the last factor, or an admin reset) says it all in one
        // notice, not one per factor that went with it.
        let whole = |k: &NotificationKind| {
            matches!(
                k,
                NotificationKind::TwoFactorDisabled | NotificationKind::TwoFactorReset
            )
        };
        if kinds.iter().any(whole) {
            kinds.retain(whole);
        }
        let Some((channel, contact)) = self
            .notice_contact()
            .or_else(|| after.notice_contact())
            .map(|(ch, c)| (ch, c.clone()))
        else {
            return vec![];
        };
        // A notice the same as one still waiting for its send says nothing new. Without this,
        // a change an attacker can repeat at will (a device trusted at each sign-in) would push
        // a waiting notice (an address replaced) out of the kept list before it is sent.
        kinds.retain(|kind| {
            !self
                .notifications
                .iter()
                .any(|n| n.kind == *kind && n.channel == channel && n.destination == contact.sealed)
        });
        kinds
            .into_iter()
            .enumerate()
            .map(|(n, kind)| UserEvent::NotificationQueued {
                notification_id: match n {
                    0 => notifications.id.clone(),
                    n => format!("{}-{}", notifications.id, n + 1),
                },
                kind,
                channel,
                destination: contact.sealed.clone(),
                sent_to: contact.masked.clone(),
                at,
            })
            .collect()
    }

    /// The verified email address, else the verified phone number.
    fn notice_contact(&self) -> Option<(Channel, &ContactFactor)> {
        [Channel::Email, Channel::Sms]
            .into_iter()
            .find_map(|ch| self.contact(ch).filter(|c| c.verified).map(|c| (ch, c)))
    }

    /// The notice one event calls for (`self` before the command, `after` after it).
    fn notice_of(&self, after: &User, event: &UserEvent) -> Option<NotificationKind> {
        Some(match event {
            UserEvent::TotpEnabled { .. } => {
                if self.totp.is_some() {
                    NotificationKind::FactorReplaced {
                        method: Method::Totp,
                        masked: None,
                    }
                } else {
                    NotificationKind::FactorAdded {
                        method: Method::Totp,
                        masked: None,
                    }
                }
            }
            UserEvent::ChannelVerified { channel, .. } => {
                let before = self.contact(*channel).filter(|c| c.verified);
                let now = after.contact(*channel).filter(|c| c.verified)?;
                let masked = Some(notice_mask(*channel, &now.masked));
                let method = channel.method();
                match before {
                    None => NotificationKind::FactorAdded { method, masked },
                    Some(old) if old.sealed != now.sealed => {
                        NotificationKind::FactorReplaced { method, masked }
                    }
                    Some(_) => return None,
                }
            }
            UserEvent::WebAuthnCredentialRegistered { .. } => NotificationKind::FactorAdded {
                method: Method::WebAuthn,
                masked: None,
            },
            UserEvent::FactorRemoved { method, .. } => {
                NotificationKind::FactorRemoved { method: *method }
            }
            UserEvent::WebAuthnCredentialRemoved { .. } => NotificationKind::FactorRemoved {
                method: Method::WebAuthn,
            },
            UserEvent::TwoFactorDisabled { .. } => NotificationKind::TwoFactorDisabled,
            UserEvent::TwoFactorReset { .. } => NotificationKind::TwoFactorReset,
            UserEvent::RecoveryCodeUsed { remaining, .. } => NotificationKind::RecoveryCodeUsed {
                remaining: *remaining,
            },
            UserEvent::DeviceTrusted { .. } => NotificationKind::DeviceTrusted,
            UserEvent::UserLockedOut {
                until,
                admin_required,
                ..
            } => NotificationKind::LockedOut {
                until: *until,
                admin_required: *admin_required,
            },
            _ => return None,
        })
    }

    /// A queued notice still waiting for its outcome.
    pub fn notification(&self, id: &str) -> Option<&QueuedNotification> {
        self.notifications.iter().find(|n| n.id == id)
    }

    /// `RecordNotification`: the outcome of a queued notice, recorded once.
    pub(super) fn decide_record_notification(
        &self,
        notification_id: String,
        outcome: super::DeliveryOutcome,
        at: DateTime<Utc>,
    ) -> Vec<UserEvent> {
        if self.notification(&notification_id).is_none() {
            return vec![];
        }
        vec![match outcome {
            super::DeliveryOutcome::Delivered {
                provider_message_id,
            } => UserEvent::NotificationDelivered {
                notification_id,
                provider_message_id,
                at,
            },
            super::DeliveryOutcome::Failed { error, attempts } => {
                UserEvent::NotificationDeliveryFailed {
                    notification_id,
                    error,
                    attempts,
                    at,
                }
            }
        }]
    }

    /// Folds the notice events.
    pub(super) fn apply_notification(&mut self, event: UserEvent) {
        match event {
            UserEvent::NotificationQueued {
                notification_id,
                kind,
                channel,
                destination,
                at,
                ..
            } => {
                self.notifications.push(QueuedNotification {
                    id: notification_id,
                    kind,
                    channel,
                    destination,
                    at,
                });
                let excess = self.notifications.len().saturating_sub(KEPT_NOTIFICATIONS);
                self.notifications.drain(..excess);
            }
            UserEvent::NotificationDelivered {
                notification_id, ..
            }
            | UserEvent::NotificationDeliveryFailed {
                notification_id, ..
            } => self.notifications.retain(|n| n.id != notification_id),
            _ => {}
        }
    }
}
