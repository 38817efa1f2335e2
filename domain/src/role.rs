//! The role an API key carries; role guards on the API are checked against it.

use serde::{Deserialize, Serialize};

/// What a tenant key may do. One role per key, so a leaked auditor key can never change anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Role {
    /// The tenant's backend, acting for its end users.
    App,
    /// Organisation administrators: policy, keys, resets.
    Admin,
    /// Read-only access to the audit history and compliance.
    Auditor,
}

impl Role {
    /// The role's wire name, as stored in views and shown in audit records.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::App => "APP",
            Role::Admin => "ADMIN",
            Role::Auditor => "AUDITOR",
        }
    }

    /// Parses a wire name back (used when reading views).
    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "APP" => Some(Role::App),
            "ADMIN" => Some(Role::Admin),
            "AUDITOR" => Some(Role::Auditor),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_names_round_trip() {
        for r in [Role::App, Role::Admin, Role::Auditor] {
            assert_eq!(Role::parse(r.as_str()), Some(r));
            assert_eq!(serde_json::to_value(r).unwrap(), r.as_str());
        }
        assert_eq!(Role::parse("admin"), None);
    }
}
