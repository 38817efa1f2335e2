//! A user's passkeys and security keys, and the WebAuthn ceremonies waiting for the browser's
//! answer, as the aggregate keeps them; folded from the `WebAuthn*` events.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{User, UserEvent};
use crate::secrets::SealedSecret;
use crate::DeviceLabel;

/// Passkeys and security keys one user may register.
pub const MAX_WEBAUTHN_CREDENTIALS: usize = 10;

/// How long a ceremony may wait for the browser (the W3C recommended timeout).
pub const WEBAUTHN_CHALLENGE_SECONDS: i64 = 300;

/// Ceremonies kept; a newer one pushes the oldest out, and expired ones go at the next start.
const KEPT_WEBAUTHN_CHALLENGES: usize = 16;

/// A registered passkey or security key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WebAuthnCredential {
    /// Our id for it (`removeFactor`, `webAuthnCredentials`).
    pub id: String,
    /// The authenticator's credential id (base64url): public, sent to browsers in
    /// `allowCredentials`, and how an assertion names its credential.
    pub credential_ref: String,
    /// What the user calls it.
    pub label: Option<DeviceLabel>,
    /// The credential (public key, algorithm, flags) as the WebAuthn library keeps it, sealed.
    pub sealed: SealedSecret,
    /// The last signature counter accepted (0: the authenticator keeps none).
    pub counter: u32,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
}

/// What a ceremony is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum WebAuthnPurpose {
    /// `startWebAuthnRegistration`.
    Register,
    /// `startWebAuthnAuthentication`.
    Authenticate,
}

/// A ceremony waiting for the browser: single use, for one purpose, until `expires_at`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WebAuthnChallenge {
    pub id: String,
    pub purpose: WebAuthnPurpose,
    /// The library's ceremony state (the challenge, allowed credentials), sealed.
    pub state: SealedSecret,
    pub expires_at: DateTime<Utc>,
    /// A registration started on an account that had a factor, with its proof: only such a
    /// registration may finish on an account that has one.
    pub proven: bool,
    /// Answered, rightly or wrongly.
    pub used: bool,
}

/// The user's WebAuthn part of the state (a snapshot field: older snapshots load empty).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WebAuthnState {
    pub(super) credentials: Vec<WebAuthnCredential>,
    pub(super) challenges: Vec<WebAuthnChallenge>,
}

impl User {
    /// The registered passkeys and security keys, oldest first.
    pub fn webauthn_credentials(&self) -> &[WebAuthnCredential] {
        &self.webauthn.credentials
    }

    /// A waiting ceremony by id.
    pub fn webauthn_challenge(&self, id: &str) -> Option<&WebAuthnChallenge> {
        self.webauthn.challenges.iter().find(|c| c.id == id)
    }

    pub(super) fn webauthn_credential(&self, id: &str) -> Option<&WebAuthnCredential> {
        self.webauthn.credentials.iter().find(|c| c.id == id)
    }

    /// Folds the WebAuthn events.
    pub(super) fn apply_webauthn(&mut self, event: UserEvent) {
        match event {
            UserEvent::WebAuthnRegistrationStarted {
                challenge_id,
                state,
                expires_at,
                proven,
                at,
            } => self.push_challenge(
                WebAuthnChallenge {
                    id: challenge_id,
                    purpose: WebAuthnPurpose::Register,
                    state,
                    expires_at,
                    proven,
                    used: false,
                },
                at,
            ),
            UserEvent::WebAuthnAuthenticationStarted {
                challenge_id,
                state,
                expires_at,
                at,
            } => self.push_challenge(
                WebAuthnChallenge {
                    id: challenge_id,
                    purpose: WebAuthnPurpose::Authenticate,
                    state,
                    expires_at,
                    proven: false,
                    used: false,
                },
                at,
            ),
            UserEvent::WebAuthnCredentialRegistered {
                credential_id,
                credential_ref,
                label,
                credential,
                counter,
                challenge_id,
                at,
            } => {
                self.webauthn_challenge_spent(&challenge_id);
                self.webauthn.credentials.push(WebAuthnCredential {
                    id: credential_id,
                    credential_ref,
                    label,
                    sealed: credential,
                    counter,
                    created_at: at,
                    last_used_at: None,
                });
                self.succeeded(at);
            }
            UserEvent::WebAuthnCredentialUsed {
                credential_id,
                counter,
                at,
                ..
            } => {
                if let Some(c) = self
                    .webauthn
                    .credentials
                    .iter_mut()
                    .find(|c| c.id == credential_id)
                {
                    c.counter = c.counter.max(counter);
                    c.last_used_at = Some(at);
                }
            }
            UserEvent::WebAuthnCounterRegressed { challenge_id, .. } => {
                self.webauthn_challenge_spent(&challenge_id);
            }
            UserEvent::WebAuthnCredentialRemoved { credential_id, .. } => {
                self.webauthn.credentials.retain(|c| c.id != credential_id);
            }
            _ => {}
        }
    }

    /// A ceremony answered (rightly or wrongly) is never answered again.
    pub(super) fn webauthn_challenge_spent(&mut self, id: &str) {
        if let Some(c) = self.webauthn.challenges.iter_mut().find(|c| c.id == id) {
            c.used = true;
        }
    }

    fn push_challenge(&mut self, challenge: WebAuthnChallenge, at: DateTime<Utc>) {
        let challenges = &mut self.webauthn.challenges;
        challenges.retain(|c| at < c.expires_at);
        challenges.push(challenge);
        let excess = challenges.len().saturating_sub(KEPT_WEBAUTHN_CHALLENGES);
        challenges.drain(..excess);
    }
}
