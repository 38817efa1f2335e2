//! The `twofold` binary's wiring: it builds the application from its parts and runs it. No
//! business logic lives here.

pub mod bench;
pub mod chaos;
pub mod databases;
pub mod output;
pub mod reseal;
pub mod server;
pub mod startup;
pub mod store_options;
pub mod telemetry;
pub mod zero_config;
