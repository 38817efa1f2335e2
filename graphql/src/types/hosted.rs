//! The hosted pages' link and result.

use async_graphql::{Enum, SimpleObject, ID};
use chrono::{DateTime, Utc};
use twofold_services::hosted::{LinkToPages, Redeemed};

use super::MethodGql;

/// Why a user is sent to the hosted pages.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
#[graphql(
    name = "UserSessionPurpose",
    remote = "twofold_domain::hosted::Purpose"
)]
pub enum UserSessionPurposeGql {
    /// Set up a first factor and save recovery codes.
    Enroll,
    /// Prove the second factor at sign-in.
    Verify,
    /// See, add and remove factors, regenerate recovery codes, turn 2FA off.
    Manage,
}

/// A single-use link to the hosted pages, bound to the tenant, the user and the purpose.
#[derive(SimpleObject, Debug)]
pub struct UserSessionLink {
    /// Keep it with your own user session; give it back as `redeemUserSession`'s `sessionId`.
    pub id: ID,
    /// Send the user's browser here.
    pub url: String,
    /// The link cannot be opened after this (10 minutes).
    pub expires_at: DateTime<Utc>,
}

impl From<LinkToPages> for UserSessionLink {
    fn from(l: LinkToPages) -> Self {
        Self {
            id: ID(l.id),
            url: l.url,
            expires_at: l.expires_at,
        }
    }
}

/// What happened on the hosted pages, redeemed once.
#[derive(SimpleObject)]
pub struct UserSessionResult {
    pub user_id: ID,
    pub purpose: UserSessionPurposeGql,
    /// Whether the user completed the flow (false: cancelled).
    pub completed: bool,
    /// The method the user proved or enrolled.
    pub method: Option<MethodGql>,
    /// A trusted-device token, when the user chose to trust the browser at sign-in: store it
    /// in the browser as for `verify(trustDevice: true)`. Given once: the stored copy is deleted
    /// as the result is redeemed.
    pub device_token: Option<String>,
}

impl From<Redeemed> for UserSessionResult {
    fn from(r: Redeemed) -> Self {
        let o = r.outcome;
        Self {
            user_id: ID(o.user_id.as_str().to_owned()),
            purpose: o.purpose.into(),
            completed: o.completed,
            method: o.method.map(Into::into),
            device_token: r.device_token.map(|t| t.to_string()),
        }
    }
}

impl std::fmt::Debug for UserSessionResult {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserSessionResult")
            .field("user_id", &self.user_id)
            .field("purpose", &self.purpose)
            .field("completed", &self.completed)
            .field("method", &self.method)
            .field(
                "device_token",
                &self.device_token.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}
