//! A tenant's WebAuthn relying party: the site whose users register passkeys and security keys
//! (`Policy.webAuthn`). Browsers bind every credential to an `rpId` and every ceremony to an
//! origin, so a wrong value here makes every credential unusable or, worse, usable from a site
//! the tenant does not own: both are checked before a policy is accepted.

use serde::{Deserialize, Serialize};
use url::{Host, Url};

use crate::PolicyError;

/// Whether the authenticator must verify the user (PIN, biometrics) besides their presence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum UserVerification {
    /// Asked for when the authenticator can; a security key without a PIN still works (it is a
    /// second factor after the tenant's password).
    #[default]
    Preferred,
    /// Refused unless the authenticator verified the user.
    Required,
}

/// The relying party as the policy holds it, every value checked and origins normalised.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RelyingParty {
    /// The domain credentials are bound to (`example.com`).
    pub rp_id: String,
    /// What authenticators show.
    pub rp_name: String,
    /// Origins ceremonies may come from, as `scheme://host[:port]`.
    pub origins: Vec<String>,
    /// See [`UserVerification`].
    pub user_verification: UserVerification,
}

/// A requested relying party, raw caller input (`WebAuthnInput`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct RelyingPartyChange {
    pub rp_id: String,
    pub rp_name: String,
    pub origins: Vec<String>,
    /// `None`: [`UserVerification::Preferred`].
    pub user_verification: Option<UserVerification>,
}

/// Most origins one relying party may list.
pub const MAX_ORIGINS: usize = 10;
/// Longest `rpName`, in characters.
pub const MAX_RP_NAME_CHARS: usize = 64;
/// Longest origin or `rpId` accepted (a DNS name is at most 253 characters).
const MAX_NAME_BYTES: usize = 253;

fn refuse(message: impl Into<String>) -> PolicyError {
    PolicyError::WebAuthn(message.into())
}

impl RelyingParty {
    /// Checks `change`: every origin `https://` (or `http://localhost` for development), and
    /// `rpId` each origin's host or a registrable suffix of it, never a public suffix such as
    /// `com` or `co.uk` (which would let any site under it use the tenant's credentials).
    pub fn parse(change: &RelyingPartyChange) -> Result<Self, PolicyError> {
        let rp_name = change.rp_name.trim();
        if rp_name.is_empty()
            || rp_name.chars().count() > MAX_RP_NAME_CHARS
            || rp_name.chars().any(char::is_control)
        {
            return Err(refuse(format!(
                "webAuthn.rpName must be 1 to {MAX_RP_NAME_CHARS} printable characters"
            )));
        }
        let rp_id = parse_rp_id(&change.rp_id)?;
        if change.origins.is_empty() || change.origins.len() > MAX_ORIGINS {
            return Err(refuse(format!(
                "webAuthn.origins must list 1 to {MAX_ORIGINS} origins"
            )));
        }
        let mut origins: Vec<String> = Vec::with_capacity(change.origins.len());
        for raw in &change.origins {
            let (origin, host) = parse_origin(raw)?;
            if host != rp_id && !host.ends_with(&format!(".{rp_id}")) {
                return Err(refuse(format!(
                    "webAuthn.rpId must be the host of every origin or a suffix of it: \
                     {origin} is not under {rp_id}"
                )));
            }
            if !origins.contains(&origin) {
                origins.push(origin);
            }
        }
        Ok(Self {
            rp_id,
            rp_name: rp_name.to_owned(),
            origins,
            user_verification: change.user_verification.unwrap_or_default(),
        })
    }

    /// Whether a page at `url` may run this relying party's ceremonies: its origin, as
    /// browsers serialise it, is one of [`Self::origins`].
    pub fn admits_page_at(&self, url: &str) -> bool {
        Url::parse(url.trim())
            .is_ok_and(|u| self.origins.contains(&u.origin().ascii_serialization()))
    }
}

/// A lower-case DNS name that is `localhost` or has a registrable domain of its own.
fn parse_rp_id(raw: &str) -> Result<String, PolicyError> {
    let rp_id = raw.trim().to_ascii_lowercase();
    let shape_ok = !rp_id.is_empty()
        && rp_id.len() <= MAX_NAME_BYTES
        && rp_id.split('.').all(|label| {
            !label.is_empty()
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
    if !shape_ok {
        return Err(refuse(
            "webAuthn.rpId must be a domain name such as example.com (no scheme, port or path; \
             internationalised names in their xn-- form)",
        ));
    }
    if rp_id.parse::<std::net::Ipv4Addr>().is_ok() {
        return Err(refuse(
            "webAuthn.rpId must be a domain name, not an IP address",
        ));
    }
    if rp_id != "localhost" && psl::domain(rp_id.as_bytes()).is_none() {
        return Err(refuse(format!(
            "webAuthn.rpId {rp_id} is a public suffix: use a domain the organisation owns"
        )));
    }
    Ok(rp_id)
}

/// The origin as browsers serialise it, and its host.
fn parse_origin(raw: &str) -> Result<(String, String), PolicyError> {
    let shown: String = raw.chars().take(64).collect();
    let bad = || {
        refuse(format!(
            "webAuthn.origins: {shown:?} is not an origin such as https://login.example.com \
             (http only for localhost; no path, query or credentials)"
        ))
    };
    if raw.len() > MAX_NAME_BYTES + 16 {
        return Err(bad());
    }
    let url = Url::parse(raw.trim()).map_err(|_| bad())?;
    let host = match url.host() {
        Some(Host::Domain(d)) => d.to_owned(),
        _ => return Err(bad()),
    };
    let scheme_ok = match url.scheme() {
        "https" => true,
        "http" => host == "localhost",
        _ => false,
    };
    if !scheme_ok
        || !url.username().is_empty()
        || url.password().is_some()
        || url.path() != "/"
        || url.query().is_some()
        || url.fragment().is_some()
    {
        return Err(bad());
    }
    Ok((url.origin().ascii_serialization(), host))
}

#[cfg(test)]
#[path = "webauthn_tests.rs"]
mod tests;
