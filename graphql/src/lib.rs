//! Twofold's GraphQL API: the schema of `shared/api.graphql` (as far as it is built), bearer-key
//! authentication, role guards, the stable error codes, and the HTTP router around it.

pub mod error;
pub mod guard;
pub mod http;
pub mod input_check;
pub mod metrics;
pub mod schema;
pub mod types;

pub use http::{router, ApiState, QueryCache};
pub use metrics::Metrics;
pub use schema::{build_schema, schema_builder, ApiServices, TwofoldSchema};
