//! The WebSocket path holds the HTTP path's rules: a valid key for everything, checked again
//! for every operation and closed on revocation; the body size, time, depth and complexity
//! limits; and bounds on sockets, operations and idleness.

mod auth;
mod bounds;
mod limits;

const ISSUE_ADMIN: &str =
    r#"mutation { issueApiKey(role: ADMIN, label: "via socket") { secret } }"#;
