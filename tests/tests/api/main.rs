//! End-to-end API tests: one binary, a module per feature.

mod audit;
mod bad_input;
mod channels;
mod compliance;
mod concurrency;
mod connections;
mod event_store;
mod factor_changes;
mod graphiql;
mod health;
mod hostile_documents;
mod http_surface;
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
mod websocket;
mod ws_support;
