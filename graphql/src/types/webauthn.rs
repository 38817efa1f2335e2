//! Passkeys and security keys (WebAuthn): the tenant's relying party, the ceremonies handed to
//! the browser, and a user's registered credentials.

use async_graphql::{Enum, InputObject, Object, SimpleObject, ID};
use chrono::{DateTime, Utc};
use twofold_domain::webauthn::{RelyingParty, RelyingPartyChange};
use twofold_services::users::{WebAuthnChallengeView, WebAuthnCredentialView};

/// Whether the authenticator must verify the user (PIN, biometrics) besides their presence.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
#[graphql(
    name = "UserVerification",
    remote = "twofold_domain::webauthn::UserVerification"
)]
pub enum UserVerificationGql {
    /// Asked for when the authenticator can (the default): a security key without a PIN still
    /// works as a second factor.
    Preferred,
    /// Refused unless the authenticator verified the user.
    Required,
}

pub struct WebAuthnRelyingParty(pub RelyingParty);

/// The tenant's WebAuthn relying party: the site whose users register passkeys and security
/// keys.
#[Object]
impl WebAuthnRelyingParty {
    /// The domain credentials are bound to, e.g. example.com.
    async fn rp_id(&self) -> &str {
        &self.0.rp_id
    }
    /// The name authenticators show.
    async fn rp_name(&self) -> &str {
        &self.0.rp_name
    }
    /// Origins ceremonies may come from, e.g. https://login.example.com.
    async fn origins(&self) -> &[String] {
        &self.0.origins
    }
    async fn user_verification(&self) -> UserVerificationGql {
        self.0.user_verification.into()
    }
}

/// The relying party of passkeys and security keys: every origin https:// (or http://localhost
/// for development), and rpId each origin's host or a registrable suffix of it.
#[derive(InputObject, Debug)]
pub struct WebAuthnInput {
    rp_id: String,
    rp_name: String,
    origins: Vec<String>,
    /// PREFERRED when null.
    user_verification: Option<UserVerificationGql>,
}

impl From<WebAuthnInput> for RelyingPartyChange {
    fn from(i: WebAuthnInput) -> Self {
        Self {
            rp_id: i.rp_id,
            rp_name: i.rp_name,
            origins: i.origins,
            user_verification: i.user_verification.map(Into::into),
        }
    }
}

/// A ceremony for the browser. `options` is the JSON of PublicKeyCredentialCreationOptions
/// (registration) or PublicKeyCredentialRequestOptions (sign-in) with base64url binary fields:
/// `PublicKeyCredential.parseCreationOptionsFromJSON(JSON.parse(options))` (or
/// `parseRequestOptionsFromJSON`) gives what `navigator.credentials.create({ publicKey })` (or
/// `get`) takes. Single use, valid for 5 minutes.
#[derive(SimpleObject)]
pub struct WebAuthnChallenge {
    challenge_id: ID,
    options: String,
}

impl From<WebAuthnChallengeView> for WebAuthnChallenge {
    fn from(v: WebAuthnChallengeView) -> Self {
        Self {
            challenge_id: ID(v.challenge_id),
            options: v.options,
        }
    }
}

/// A registered passkey or security key.
#[derive(SimpleObject)]
pub struct WebAuthnCredential {
    /// Pass it to removeFactor(method: WEBAUTHN, credentialId:) to remove this one.
    id: ID,
    label: Option<String>,
    created_at: DateTime<Utc>,
    last_used_at: Option<DateTime<Utc>>,
}

impl From<&WebAuthnCredentialView> for WebAuthnCredential {
    fn from(c: &WebAuthnCredentialView) -> Self {
        Self {
            id: ID(c.id.clone()),
            label: c.label.clone(),
            created_at: c.created_at,
            last_used_at: c.last_used_at,
        }
    }
}
