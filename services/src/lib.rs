//! Twofold's application layer: the use-cases the API offers, written against ports (traits) for
//! storage, read models, time, randomness and hashing, so they can be wired to PostgreSQL in
//! production and still read as plain business steps.

pub mod audit;
pub mod auth;
pub mod commands;
pub mod compliance;
pub mod console_sessions;
pub mod context;
pub mod delivery;
pub mod delivery_settings;
pub mod encoding;
pub mod error;
pub mod hosted;
pub mod overview;
pub mod ports;
pub mod roles;
mod send_limits;
pub use send_limits::BudgetCeilings;
pub mod streams;
pub mod tenants;
#[cfg(test)]
mod testing;
pub mod users;
pub mod webauthn_port;

pub use auth::{Authenticator, KeyPrincipal, Principal};
pub use context::{Actor, Admission, Call, RequestContext};
pub use error::{recognise_refused, recognise_unavailable, ErrorCode, ServiceError, StoreError};
