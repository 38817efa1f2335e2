//! Moving what a user's state holds sealed to another key (`twofold keys reseal`, from the
//! tenant's first-format key to the user's own, so an erasure reaches it). The values do not
//! change, only their seals: the service opens and seals again, and this records the new seals
//! in the places that still hold the old ones.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{User, UserEvent};
use crate::channel::Channel;
use crate::secrets::SealedSecret;

/// A place in the state that holds a seal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum SealSlot {
    Totp,
    PendingTotp,
    Email,
    PendingEmail,
    Phone,
    PendingPhone,
    /// A passkey or security key, by our id for it.
    WebAuthnCredential(String),
    /// A security notice still queued, by its id: its destination, sealed as the contact was.
    Notification {
        id: String,
        channel: Channel,
    },
}

/// A new seal for the value a slot holds now.
#[derive(Debug, Clone, PartialEq)]
pub struct Resealed {
    pub slot: SealSlot,
    /// The seal it replaces: a slot that changed meanwhile is left as it is.
    pub old: SealedSecret,
    pub new: SealedSecret,
}

impl User {
    /// Every seal the state holds, where it is: factors, passkeys, and queued notices (which
    /// may wait out a provider's outage). WebAuthn ceremonies are left out: they last five
    /// minutes, and a user whose ceremony fails starts another.
    pub fn seals(&self) -> Vec<(SealSlot, &SealedSecret)> {
        let places = [
            (SealSlot::Totp, self.totp.as_ref().map(|t| &t.secret)),
            (
                SealSlot::PendingTotp,
                self.pending_totp.as_ref().map(|t| &t.secret),
            ),
            (SealSlot::Email, self.email.as_ref().map(|c| &c.sealed)),
            (
                SealSlot::PendingEmail,
                self.email_pending.as_ref().map(|c| &c.sealed),
            ),
            (SealSlot::Phone, self.phone.as_ref().map(|c| &c.sealed)),
            (
                SealSlot::PendingPhone,
                self.phone_pending.as_ref().map(|c| &c.sealed),
            ),
        ];
        let credentials = self
            .webauthn
            .credentials
            .iter()
            .map(|c| (SealSlot::WebAuthnCredential(c.id.clone()), Some(&c.sealed)));
        let notices = self.notifications.iter().map(|n| {
            (
                SealSlot::Notification {
                    id: n.id.clone(),
                    channel: n.channel,
                },
                Some(&n.destination),
            )
        });
        places
            .into_iter()
            .chain(credentials)
            .chain(notices)
            .filter_map(|(slot, sealed)| sealed.map(|s| (slot, s)))
            .collect()
    }

    fn seal_in(&mut self, slot: &SealSlot) -> Option<&mut SealedSecret> {
        match slot {
            SealSlot::Totp => self.totp.as_mut().map(|t| &mut t.secret),
            SealSlot::PendingTotp => self.pending_totp.as_mut().map(|t| &mut t.secret),
            SealSlot::Email => self.email.as_mut().map(|c| &mut c.sealed),
            SealSlot::PendingEmail => self.email_pending.as_mut().map(|c| &mut c.sealed),
            SealSlot::Phone => self.phone.as_mut().map(|c| &mut c.sealed),
            SealSlot::PendingPhone => self.phone_pending.as_mut().map(|c| &mut c.sealed),
            SealSlot::WebAuthnCredential(id) => self
                .webauthn
                .credentials
                .iter_mut()
                .find(|c| &c.id == id)
                .map(|c| &mut c.sealed),
            SealSlot::Notification { id, .. } => self
                .notifications
                .iter_mut()
                .find(|n| &n.id == id)
                .map(|n| &mut n.destination),
        }
    }

    /// `Reseal`: the new seals of the slots that still hold what was resealed; nothing when
    /// none does (a retry, or every slot changed meanwhile).
    pub(super) fn decide_reseal(&self, seals: Vec<Resealed>, at: DateTime<Utc>) -> Vec<UserEvent> {
        let mut current = self.clone();
        let kept: Vec<(SealSlot, SealedSecret)> = seals
            .into_iter()
            .filter(|r| current.seal_in(&r.slot).is_some_and(|s| *s == r.old))
            .map(|r| (r.slot, r.new))
            .collect();
        if kept.is_empty() {
            return vec![];
        }
        vec![UserEvent::SecretsResealed { seals: kept, at }]
    }

    pub(super) fn apply_resealed(&mut self, seals: Vec<(SealSlot, SealedSecret)>) {
        for (slot, sealed) in seals {
            if let Some(place) = self.seal_in(&slot) {
                *place = sealed;
            }
        }
    }
}
