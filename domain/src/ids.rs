//! Identifiers. Tenant and key ids are minted by the server; user ids come from the tenant.
//!
//! Aggregate ids are always `{tenant_id}/{subject}` and built here from parsed ids, never from raw
//! client input, so every stream, view row and query is tenant-scoped by construction.

use serde::{Deserialize, Serialize};

/// Why an identifier was refused; safe to show to the caller.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    /// Not of the identifier's form.
    #[error("{what} must be {rule}")]
    Malformed {
        /// Which identifier.
        what: &'static str,
        /// The form it must have.
        rule: &'static str,
    },
}

/// A tenant: one customer organisation whose data is isolated from every other's.
///
/// Lowercase letters, digits and `-`, 2..=63 characters, starting with a letter or digit. The
/// absence of `/` is what makes `{tenant_id}/...` aggregate ids unambiguous.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TenantId(String);

impl TenantId {
    /// Parses a tenant id.
    pub fn parse(raw: &str) -> Result<Self, IdError> {
        let ok = (2..=63).contains(&raw.len())
            && raw
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !raw.starts_with('-');
        if ok {
            Ok(Self(raw.to_owned()))
        } else {
            Err(IdError::Malformed {
                what: "tenant id",
                rule: "2 to 63 lowercase letters, digits or '-', not starting with '-'",
            })
        }
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The id of this tenant's own aggregate (its policy and API keys).
    pub fn tenant_aggregate_id(&self) -> String {
        format!("{}/tenant", self.0)
    }

    /// The id of one end user's 2FA aggregate inside this tenant.
    pub fn user_aggregate_id(&self, user: &UserId) -> String {
        format!("{}/user/{}", self.0, user.as_str())
    }
}

impl std::fmt::Display for TenantId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// An API key's public id: shown in listings and audit records, and part of the key itself so a
/// leaked key can be traced to its record without revealing the secret half.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ApiKeyId(String);

impl ApiKeyId {
    /// Parses a key id: 8..=32 lowercase letters or digits.
    pub fn parse(raw: &str) -> Result<Self, IdError> {
        let ok = (8..=32).contains(&raw.len())
            && raw
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
        if ok {
            Ok(Self(raw.to_owned()))
        } else {
            Err(IdError::Malformed {
                what: "key id",
                rule: "8 to 32 lowercase letters or digits",
            })
        }
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for ApiKeyId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The tenant's own id for one of its end users: 1..=128 printable characters, taken as given.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct UserId(String);

impl UserId {
    /// The longest user id accepted, in characters.
    pub const MAX_CHARS: usize = 128;

    /// Parses a user id, exactly as given: no trimming and no Unicode normalisation, so two ids
    /// are the same user only if they are the same characters. Spaces at either end are refused
    /// rather than trimmed (` alice` and `alice` would otherwise be one user here and two in the
    /// tenant's own database).
    pub fn parse(raw: &str) -> Result<Self, IdError> {
        let len = raw.chars().count();
        let ok = (1..=Self::MAX_CHARS).contains(&len)
            && !raw.chars().any(char::is_control)
            && raw.trim() == raw;
        if ok {
            Ok(Self(raw.to_owned()))
        } else {
            Err(IdError::Malformed {
                what: "userId",
                rule: "1 to 128 printable characters, without spaces at either end",
            })
        }
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn tenant_ids_cannot_smuggle_a_separator() {
        assert!(TenantId::parse("acme").is_ok());
        assert!(TenantId::parse("acme/other").is_err());
        assert!(TenantId::parse("Acme").is_err());
        assert!(TenantId::parse("-acme").is_err());
        assert!(TenantId::parse("a").is_err());
    }

    #[test]
    fn tenant_ids_are_lowercase_letters_digits_and_hyphens() {
        for good in ["acme-2", "42", "a-b-c"] {
            let t = TenantId::parse(good).unwrap();
            assert_eq!(t.as_str(), good);
            assert_eq!(t.to_string(), good);
        }
        assert!(TenantId::parse(&"a".repeat(63)).is_ok());
        assert!(TenantId::parse(&"a".repeat(64)).is_err());
        assert!(TenantId::parse("acme_2").is_err());
    }

    #[test]
    fn key_ids_are_eight_to_thirty_two_lowercase_letters_or_digits() {
        let k = ApiKeyId::parse("admin0001").unwrap();
        assert_eq!(k.to_string(), "admin0001", "how audit records name the key");
        for bad in ["admin01", "ADMIN0001", "admin-0001", &"k".repeat(33)] {
            assert!(ApiKeyId::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn aggregate_ids_start_with_the_tenant() {
        let t = TenantId::parse("acme").unwrap();
        let u = UserId::parse("alice/../bob").unwrap();
        assert_eq!(t.tenant_aggregate_id(), "acme/tenant");
        assert_eq!(t.user_aggregate_id(&u), "acme/user/alice/../bob");
    }

    #[test]
    fn user_ids_are_bounded_and_printable() {
        assert!(UserId::parse("").is_err());
        assert!(UserId::parse("   ").is_err());
        assert!(UserId::parse("a\nb").is_err());
        assert!(UserId::parse(&"u".repeat(129)).is_err());
        assert!(UserId::parse(&"u".repeat(128)).is_ok());
        for padded in [" alice", "alice ", "\u{3000}alice"] {
            assert!(UserId::parse(padded).is_err(), "{padded:?}");
        }
        // Compared as given: the composed and decomposed forms of "é" are two users.
        assert_ne!(
            UserId::parse("\u{e9}").unwrap(),
            UserId::parse("e\u{301}").unwrap()
        );
    }

    proptest! {
        #[test]
        fn a_parsed_tenant_id_is_the_first_segment_of_its_aggregate_ids(s in "[a-z0-9-]{0,70}") {
            if let Ok(t) = TenantId::parse(&s) {
                let id = t.tenant_aggregate_id();
                prop_assert_eq!(id.split('/').next(), Some(s.as_str()));
            }
        }

        #[test]
        fn key_ids_round_trip(s in "[a-z0-9]{8,32}") {
            let id = ApiKeyId::parse(&s).unwrap();
            prop_assert_eq!(id.as_str(), s.as_str());
        }
    }
}
