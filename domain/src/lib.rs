//! Twofold's domain: what a tenant, an API key and a 2FA policy *are*, and the rules that decide
//! which events a command produces.
//!
//! This crate is pure: it performs no I/O and reads no clock or random source. Time, identifiers
//! and secrets are decided by the application layer and passed in with each command, so every
//! decision here is a deterministic function of (state, command) and can be tested as such.

pub mod calling_codes;
pub mod channel;
pub mod console_session;
pub mod contact;
pub mod hosted;
pub mod ids;
pub mod locale;
pub mod policy;
pub mod provider;
pub mod role;
pub mod secrets;
pub mod tenant;
pub mod text;
pub mod user;
pub mod web_origin;
pub mod webauthn;

pub use ids::{ApiKeyId, TenantId, UserId};
pub use locale::{Language, Locale, LocaleError};
pub use policy::{Method, Policy, PolicyChange, PolicyError, TotpAlgorithm};
pub use role::Role;
pub use text::{DeviceLabel, KeyLabel, Reason, TenantName, TextError};
pub use web_origin::WebOrigin;
