//! GraphQL object types, one module per area. Naming rule: a Rust type is named as its GraphQL
//! type; where a domain or service type of the same name is in scope, the GraphQL one takes a
//! `Gql` suffix and keeps its GraphQL name through `#[graphql(name = ...)]`.

mod audit;
mod compliance;
mod delivery;
mod hosted;
mod overview;
mod tenant;
mod user;
mod webauthn;

pub use audit::*;
pub use compliance::*;
pub use delivery::*;
pub use hosted::*;
pub use overview::*;
pub use tenant::*;
pub use user::*;
pub use webauthn::*;

use async_graphql::Enum;

/// Key roles.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
#[graphql(name = "Role", remote = "twofold_domain::Role")]
pub enum RoleGql {
    /// The tenant's backend, acting for its end users.
    App,
    /// Organisation administrators.
    Admin,
    /// Read-only auditors.
    Auditor,
}

/// Second-factor methods.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
#[graphql(name = "Method", remote = "twofold_domain::Method")]
pub enum MethodGql {
    /// Authenticator app.
    Totp,
    /// Code by email.
    Email,
    /// Code by SMS.
    Sms,
    /// Recovery code.
    RecoveryCode,
    /// Passkey or security key (WebAuthn).
    #[graphql(name = "WEBAUTHN")]
    WebAuthn,
}
