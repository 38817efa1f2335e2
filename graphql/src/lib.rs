//! Twofold's GraphQL API: the schema of `shared/api.graphql` (as far as it is built), bearer-key
//! authentication, role guards, the stable error codes, and the HTTP router around it.

pub mod admission;
pub mod anonymous;
pub mod client_addr;
pub mod error;
pub mod extension;
pub mod fallback;
pub mod graphiql;
pub mod guard;
pub mod http;
pub mod input_check;
pub mod introspection;
pub mod limits;
pub mod metrics;
pub mod proof_input;
pub mod rate_limit;
pub mod revocation;
pub mod schema;
pub mod syntax_error;
pub mod types;
pub mod websocket;

pub use http::{router, ApiParts, ApiState, QueryCache};
pub use metrics::Metrics;
pub use schema::{build_schema, schema_builder, ApiServices, TwofoldSchema};
pub use websocket::{Websockets, WsLimits};
