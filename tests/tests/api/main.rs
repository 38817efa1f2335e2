//! End-to-end API tests: one binary, a module per feature.

mod audit;
mod bad_input;
mod channels;
mod compliance;
mod concurrency;
mod event_store;
mod health;
mod input_check;
mod input_fuzz;
mod isolation;
mod keys;
mod metrics;
mod policy;
mod processor;
mod roles;
mod secrets;
mod sign_in;
mod snapshots;
mod totp;
mod trusted_devices;
