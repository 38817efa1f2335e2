//! Twofold's adapters: PostgreSQL (event store, projections, the event processor, a private
//! cluster for zero-config and tests), crypto, configuration.

pub mod append;
pub mod audit_log;
pub mod config;
pub mod console_sessions;
pub mod crypto;
pub mod delivery;
pub mod delivery_queue;
pub mod directory_cache;
pub mod event_store;
pub mod group_commit;
pub mod hosted;
pub mod http_limits;
pub mod operations;
pub mod pg;
pub mod processor;
pub mod projections;
pub mod send_limiter;
