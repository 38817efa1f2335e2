//! Which roles may do what, in one place for every surface (the GraphQL guards and the
//! console's pages): a page must not allow what the API refuses.

use twofold_domain::Role;

use crate::auth::KeyPrincipal;
use crate::ServiceError;

/// Every tenant role.
pub const ANY_KEY: &[Role] = &[Role::App, Role::Admin, Role::Auditor];

/// The tenant's backend, acting for its end users.
pub const APP: &[Role] = &[Role::App];

/// The tenant's backend and administrators.
pub const APP_ADMIN: &[Role] = &[Role::App, Role::Admin];

/// Changes to the tenant and admin actions on its users.
pub const ADMIN: &[Role] = &[Role::Admin];

/// Reading the tenant's policy, users, compliance and history.
pub const ADMIN_AUDITOR: &[Role] = &[Role::Admin, Role::Auditor];

/// `FORBIDDEN` unless `key` has one of `allowed`, naming the roles that may.
pub fn require(key: &KeyPrincipal, allowed: &[Role]) -> Result<(), ServiceError> {
    if allowed.contains(&key.role) {
        return Ok(());
    }
    Err(ServiceError::Forbidden(format!(
        "keys with role {} may not do this; allowed: {}",
        key.role.as_str(),
        allowed
            .iter()
            .map(|r| r.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use twofold_domain::{ApiKeyId, TenantId};

    fn key(role: Role) -> KeyPrincipal {
        KeyPrincipal {
            tenant_id: TenantId::parse("acme").unwrap(),
            key_id: ApiKeyId::parse("abcdefgh").unwrap(),
            role,
        }
    }

    #[test]
    fn a_role_outside_the_list_is_forbidden_and_told_who_may() {
        assert!(require(&key(Role::Admin), ADMIN).is_ok());
        assert!(require(&key(Role::Auditor), ADMIN_AUDITOR).is_ok());
        let e = require(&key(Role::Auditor), ADMIN).unwrap_err();
        assert!(matches!(e, ServiceError::Forbidden(_)));
        assert_eq!(
            e.to_string(),
            "keys with role AUDITOR may not do this; allowed: ADMIN"
        );
        assert!(require(&key(Role::App), ADMIN_AUDITOR).is_err());
    }
}
