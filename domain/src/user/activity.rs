//! What a user's events count for in the tenant's activity figures (the admin overview):
//! completed sign-ins, wrong codes, and lockouts. The rules live here, beside the events, so the
//! read model that counts them does not reinvent them.
//!
//! A code that passes is recorded the same way (`CodeVerified`, `RecoveryCodeUsed`) whether it
//! completed a sign-in (`verify`) or proved a change (a factor added, replaced or removed, new
//! recovery codes, 2FA disabled). What tells them apart is the rest of the command's commit: a
//! proof is always recorded together with the change it allowed. So a commit is a sign-in when it
//! holds a passing code and nothing but what `verify` records beside one.

use chrono::{DateTime, Utc};

use super::UserEvent;

/// What `verify` may record: the passing code, the credential a passkey used (recorded beside
/// its `CodeVerified`, so never counted on its own), the device trusted with the sign-in and the
/// oldest devices it pushed out, and security notices. Anything else in a commit is a change.
const SIGN_IN_EVENTS: [&str; 6] = [
    "CodeVerified",
    "RecoveryCodeUsed",
    "WebAuthnCredentialUsed",
    "DeviceTrusted",
    "DeviceTrustRevoked",
    "NotificationQueued",
];

/// The events that complete a second factor (one of them is in every sign-in).
const PASSING_CODES: [&str; 2] = ["CodeVerified", "RecoveryCodeUsed"];

/// Whether the events one command recorded on one user (their types, in any order) complete a
/// sign-in. Enrollment and confirmation (`TotpEnabled`, `ChannelVerified`,
/// `WebAuthnCredentialRegistered`) are never sign-ins; a code that proved a change is not one
/// either.
pub fn completes_sign_in<'a>(commit: impl IntoIterator<Item = &'a str>) -> bool {
    let mut passed = false;
    for event_type in commit {
        if !SIGN_IN_EVENTS.contains(&event_type) {
            return false;
        }
        passed |= is_passing_code(event_type);
    }
    passed
}

/// Whether an event of this type is a passing code: only a commit holding one can be a sign-in.
pub fn is_passing_code(event_type: &str) -> bool {
    PASSING_CODES.contains(&event_type)
}

/// Whether an event of this type is a wrong code (each one counts, wherever it was typed:
/// sign-in, proof of a change or confirmation of a new factor).
pub fn is_failed_code(event_type: &str) -> bool {
    event_type == "VerificationFailed"
}

/// What an event does to the user's lockout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockoutChange {
    /// Locked until then (an admin-only lock ends far in the future).
    Until(DateTime<Utc>),
    /// Any lockout ended: an admin cleared it, reset the user, or a code passed.
    Ended,
}

impl UserEvent {
    /// The change this event makes to the lockout, if any; mirrors how the aggregate folds it.
    pub fn lockout_change(&self) -> Option<LockoutChange> {
        match self {
            UserEvent::UserLockedOut { until, .. } => Some(LockoutChange::Until(*until)),
            // Every success resets the failure count and the lockout (`User::succeeded`).
            UserEvent::LockoutCleared { .. }
            | UserEvent::TwoFactorReset { .. }
            | UserEvent::UserErased { .. }
            | UserEvent::CodeVerified { .. }
            | UserEvent::RecoveryCodeUsed { .. }
            | UserEvent::TotpEnabled { .. }
            | UserEvent::ChannelVerified { .. }
            | UserEvent::WebAuthnCredentialRegistered { .. } => Some(LockoutChange::Ended),
            _ => None,
        }
    }
}

/// Which users without 2FA are inside their grace period at some moment. The grace end grows
/// with the first sighting, so they are those first seen after a bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GraceCohort {
    /// 2FA is not enforced: nobody has a grace period.
    Nobody,
    /// Everyone without 2FA.
    Everyone,
    /// Those first seen strictly after this.
    FirstSeenAfter(DateTime<Utc>),
}

/// The users without 2FA still in grace at `now`, by [`super::grace_ends_at`]'s rule: a grace
/// period runs `grace_days` from the later of `enforced_since` and the first sighting.
pub fn grace_cohort(
    enforced_since: Option<DateTime<Utc>>,
    grace_days: u16,
    now: DateTime<Utc>,
) -> GraceCohort {
    let Some(since) = enforced_since else {
        return GraceCohort::Nobody;
    };
    let days = chrono::Duration::days(i64::from(grace_days));
    if since + days > now {
        GraceCohort::Everyone
    } else {
        GraceCohort::FirstSeenAfter(now - days)
    }
}
