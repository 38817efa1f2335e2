//! A private, throwaway PostgreSQL cluster run from the binaries installed on the machine.
//!
//! Twofold's zero-configuration mode, its test harness and its benchmark all need a database
//! without asking anyone to install, configure or share a server. This crate gives each of them a
//! cluster of its own, in a folder of the caller's choosing, on a free port on 127.0.0.1, so it
//! never disturbs (or depends on) a system PostgreSQL that may already listen on 5432.
//!
//! PostgreSQL refuses to run as root, and CI runs as root: then every PostgreSQL command runs as
//! the `postgres` system user through `runuser`, on files that user owns.
//!
//! It knows nothing of Twofold's domain: it depends on no other crate of the workspace.

mod auth;
mod binaries;
mod cluster;
mod command;
mod error;
mod paths;
mod run_as;
#[cfg(test)]
mod test_support;
mod watchdog;

pub use auth::Password;
pub use binaries::program;
pub use cluster::{LocalPgOptions, LocalPostgres};
pub use error::LocalPgError;
