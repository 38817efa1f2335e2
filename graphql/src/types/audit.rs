//! The audit history.

use async_graphql::{InputObject, Object, ID};
use chrono::{DateTime, Utc};

/// Which audit events to show. The tenant is always the key's own.
#[derive(InputObject, Debug, Default, Clone)]
#[graphql(name = "AuditFilter")]
pub struct AuditFilterGql {
    /// Only this user's events.
    pub user_id: Option<ID>,
    /// Only these event types (e.g. `CodeSent`); unknown names are INVALID_INPUT.
    pub event_types: Option<Vec<String>>,
    /// Recorded at or after.
    pub from: Option<DateTime<Utc>>,
    /// Recorded before.
    pub to: Option<DateTime<Utc>>,
}

impl From<AuditFilterGql> for twofold_services::audit::AuditFilterInput {
    fn from(f: AuditFilterGql) -> Self {
        Self {
            user_id: f.user_id.map(|id| id.0),
            event_types: f.event_types,
            from: f.from,
            to: f.to,
        }
    }
}

/// One recorded event, as an auditor may see it.
pub struct AuditEvent(pub twofold_services::audit::AuditRecord);

#[Object]
impl AuditEvent {
    /// The event's global position (a decimal number). Events come in commit-safe order
    /// (transaction, then position): an event that commits after a page was read never appears
    /// behind that page's cursor.
    async fn position(&self) -> String {
        self.0.position.to_string()
    }
    async fn event_type(&self) -> &str {
        &self.0.event_type
    }
    async fn user_id(&self) -> Option<ID> {
        self.0.user_id.clone().map(ID)
    }
    async fn occurred_at(&self) -> DateTime<Utc> {
        self.0.occurred_at
    }
    /// { keyId, role } or { operator: true }; { system: true } for what the service records
    /// itself (the delivery worker's CodeDelivered and CodeDeliveryFailed).
    async fn actor(&self) -> async_graphql::Json<serde_json::Value> {
        async_graphql::Json(self.0.actor.clone())
    }
    async fn request_id(&self) -> Option<&str> {
        self.0.request_id.as_deref()
    }
    /// Event fields with secrets, codes, hashes and raw PII removed or masked.
    async fn data(&self) -> async_graphql::Json<serde_json::Value> {
        async_graphql::Json(self.0.data.clone())
    }
}

/// A page of audit events.
pub struct AuditEventConnection(pub twofold_services::audit::AuditPage);

#[Object]
impl AuditEventConnection {
    async fn nodes(&self) -> Vec<AuditEvent> {
        self.0.records.iter().cloned().map(AuditEvent).collect()
    }
    async fn end_cursor(&self) -> Option<&str> {
        self.0.end_cursor.as_deref()
    }
    async fn has_next_page(&self) -> bool {
        self.0.has_next_page
    }
}
