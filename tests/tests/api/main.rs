//! End-to-end API tests: one binary, a module per feature.

mod audit;
mod bad_input;
mod channels;
mod compliance;
mod concurrency;
mod event_store;
mod health;
mod isolation;
mod keys;
mod metrics;
mod policy;
mod processor;
mod rate_limits;
mod roles;
mod secrets;
mod send_limits;
mod sign_in;
mod snapshots;
mod totp;
mod trusted_devices;
