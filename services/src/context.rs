//! Who is acting and through which request: recorded as metadata on every event so the audit
//! log can answer "who did this, from where".

use std::any::Any;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use twofold_domain::{ApiKeyId, Role, TenantId};

use crate::auth::KeyPrincipal;

/// Who performs a command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    /// The service operator (operator token or the CLI).
    Operator,
    /// The service itself (the delivery worker recording outcomes).
    System,
    /// A tenant API key.
    Key { key_id: ApiKeyId, role: Role },
}

impl Actor {
    /// The JSON shape auditors see: `{ "keyId", "role" }` or `{ "operator": true }`.
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            Actor::Operator => serde_json::json!({ "operator": true }),
            Actor::System => serde_json::json!({ "system": true }),
            Actor::Key { key_id, role } => {
                serde_json::json!({ "keyId": key_id.as_str(), "role": role.as_str() })
            }
        }
    }
}

/// Where a command came from.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RequestContext {
    /// Correlates the API response, the logs and the events.
    pub request_id: String,
    /// Client address as seen by the service.
    pub ip: Option<String>,
    /// Client software, truncated.
    pub user_agent: Option<String>,
}

impl RequestContext {
    /// Longest user agent kept, so a hostile client cannot bloat every event.
    pub const MAX_USER_AGENT: usize = 256;

    /// A context for commands issued by the service itself (CLI, zero-config bootstrap).
    pub fn system(request_id: impl Into<String>) -> Self {
        Self {
            request_id: request_id.into(),
            ip: None,
            user_agent: None,
        }
    }

    /// Event metadata: `tenant_id`, `actor`, `request_id`, `ip`, `user_agent` (always all five
    /// keys, empty when unknown, so readers need not guess).
    pub fn metadata(&self, tenant: &TenantId, actor: &Actor) -> HashMap<String, String> {
        let ua: String = self
            .user_agent
            .as_deref()
            .unwrap_or_default()
            .chars()
            .take(Self::MAX_USER_AGENT)
            .collect();
        HashMap::from([
            ("tenant_id".to_owned(), tenant.as_str().to_owned()),
            ("actor".to_owned(), actor.to_json().to_string()),
            ("request_id".to_owned(), self.request_id.clone()),
            ("ip".to_owned(), self.ip.clone().unwrap_or_default()),
            ("user_agent".to_owned(), ua),
        ])
    }
}

/// The place a request holds in its tenant's share of the instance (taken by the API's and the
/// pages' admission). Work the request leaves running once its caller is gone (a code's command
/// and the settling of its slot) takes the call with [`Call::keeping_place`] and holds the place
/// until it ends: a caller who hangs up cannot have more running than its share. A plain copy of
/// a call holds no place, so a call kept anywhere else (a stream, a cache) cannot pin one.
#[derive(Default)]
pub struct Admission(Mutex<Option<Arc<dyn Any + Send + Sync>>>);

impl Admission {
    fn place(&self) -> MutexGuard<'_, Option<Arc<dyn Any + Send + Sync>>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Holds `place` until [`Admission::let_go`] or the drop of this admission, and of every
    /// copy made meanwhile.
    pub fn hold(&self, place: impl Any + Send + Sync) {
        *self.place() = Some(Arc::new(place));
    }

    /// Stops holding the place here (copies made meanwhile keep it). The request's own call
    /// may outlive the request's work (a subscription keeps its call while it streams).
    pub fn let_go(&self) {
        *self.place() = None;
    }
}

impl Admission {
    /// Another holder of the place held now, if any.
    fn share(&self) -> Self {
        Self(Mutex::new(self.place().clone()))
    }
}

/// A copy holds no place: see [`Call::keeping_place`].
impl Clone for Admission {
    fn clone(&self) -> Self {
        Self::default()
    }
}

impl std::fmt::Debug for Admission {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Admission")
            .field("held", &self.place().is_some())
            .finish()
    }
}

/// Admissions do not tell calls apart.
impl PartialEq for Admission {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for Admission {}

/// A tenant key's call of a use-case: the key (its tenant, id and role) and the request it came
/// with. Built once per request, after authentication, and passed whole to the use-cases.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    /// The authenticated key: its tenant is the only one the call can see.
    pub key: KeyPrincipal,
    /// Where the call came from.
    pub request: RequestContext,
    /// The request's place in its tenant's share of the instance, if it took one.
    admission: Admission,
}

impl Call {
    /// The call of `key`, made through `request`.
    pub fn new(key: KeyPrincipal, request: RequestContext) -> Self {
        Self {
            key,
            request,
            admission: Admission::default(),
        }
    }

    /// Where the request's place in its tenant's share is held.
    pub fn admission(&self) -> &Admission {
        &self.admission
    }

    /// A copy for work the request leaves running once its caller may be gone: it holds the
    /// request's place in its tenant's share until it is dropped.
    pub fn keeping_place(&self) -> Self {
        Self {
            key: self.key.clone(),
            request: self.request.clone(),
            admission: self.admission.share(),
        }
    }

    /// The caller's tenant.
    pub fn tenant(&self) -> &TenantId {
        &self.key.tenant_id
    }

    /// The metadata of the events this call records, in the caller's tenant.
    pub fn metadata(&self) -> HashMap<String, String> {
        self.request
            .metadata(&self.key.tenant_id, &self.key.actor())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_copy_for_work_left_running_keeps_the_request_s_place() {
        let place = Arc::new(());
        let call = Call::new(
            KeyPrincipal {
                tenant_id: TenantId::parse("acme").unwrap(),
                key_id: ApiKeyId::parse("abcdefgh").unwrap(),
                role: Role::App,
            },
            RequestContext::system("test"),
        );
        call.admission().hold(place.clone());
        let copy = call.clone();
        let kept = call.keeping_place();
        call.admission().let_go();
        assert_eq!(Arc::strong_count(&place), 2, "held by the work's copy only");
        drop(copy);
        assert_eq!(Arc::strong_count(&place), 2);
        drop(kept);
        assert_eq!(Arc::strong_count(&place), 1, "let go with the work");
    }

    #[test]
    fn metadata_has_every_key_and_a_bounded_user_agent() {
        let ctx = RequestContext {
            request_id: "req-1".into(),
            ip: Some("127.0.0.1".into()),
            user_agent: Some("x".repeat(1000)),
        };
        let actor = Actor::Key {
            key_id: ApiKeyId::parse("abcdefgh").unwrap(),
            role: Role::Admin,
        };
        let m = ctx.metadata(&TenantId::parse("acme").unwrap(), &actor);
        assert_eq!(m["tenant_id"], "acme");
        assert_eq!(m["request_id"], "req-1");
        assert_eq!(m["user_agent"].len(), RequestContext::MAX_USER_AGENT);
        let actor: serde_json::Value = serde_json::from_str(&m["actor"]).unwrap();
        assert_eq!(actor["role"], "ADMIN");
        let m = RequestContext::system("cli")
            .metadata(&TenantId::parse("acme").unwrap(), &Actor::Operator);
        assert_eq!(m["ip"], "");
        assert_eq!(m["actor"], r#"{"operator":true}"#);
    }
}
