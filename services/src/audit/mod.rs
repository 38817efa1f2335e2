//! The audit history auditors and admins read: the tenant's events in commit-safe order, with
//! secrets, codes, hashes and raw contact details removed ([`mask`]), as pages behind signed
//! cursors, as a one-pass export, and as a live stream of what is recorded next.

pub mod mask;

use crate::streams::{StreamSlot, StreamSlots};
pub use crate::streams::{MAX_EXPORTS_PER_TENANT, MAX_LIVE_PER_TENANT};

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::stream::{self, BoxStream, StreamExt};
use subtle::ConstantTimeEq;
use twofold_domain::{TenantId, UserId};

use crate::auth::KeyPrincipal;
use crate::encoding::{from_hex, hex_lower};
use crate::ports::{
    AuditLog, CommitSignal, LogFilter, LogOrder, LogPosition, LoggedEvent, SecretHasher,
    TenantDirectory,
};
use crate::ServiceError;

pub use mask::EVENT_TYPES;

/// Largest page of `auditEvents`.
pub const MAX_PAGE: i64 = 500;

/// Events read per database round trip by the export and the live stream.
const BATCH: u32 = 500;

/// Most event types one filter may name.
pub const MAX_EVENT_TYPES: usize = 64;

/// How often a live stream looks for new events when nothing wakes it (events committed while
/// an older transaction was open become readable without a new commit).
const LIVE_POLL: Duration = Duration::from_secs(1);

/// The filter as the caller gave it, before checking.
#[derive(Debug, Clone, Default)]
pub struct AuditFilterInput {
    /// Only this user's events.
    pub user_id: Option<String>,
    /// Only these event types.
    pub event_types: Option<Vec<String>>,
    /// Recorded at or after.
    pub from: Option<DateTime<Utc>>,
    /// Recorded before.
    pub to: Option<DateTime<Utc>>,
}

impl AuditFilterInput {
    /// Checks the filter: a known user id shape, known event types, a time range that is one.
    pub fn parse(self) -> Result<LogFilter, ServiceError> {
        let user = self
            .user_id
            .map(|u| UserId::parse(&u))
            .transpose()
            .map_err(|e| ServiceError::InvalidInput(e.to_string()))?;
        let event_types = match self.event_types {
            None => Vec::new(),
            Some(types) if types.is_empty() => {
                return Err(ServiceError::InvalidInput(
                    "eventTypes must name at least one event type (omit it for all)".into(),
                ))
            }
            Some(types) if types.len() > MAX_EVENT_TYPES => {
                return Err(ServiceError::InvalidInput(format!(
                    "eventTypes may name at most {MAX_EVENT_TYPES} event types"
                )))
            }
            Some(types) => {
                if let Some(unknown) = types.iter().find(|t| !EVENT_TYPES.contains(&t.as_str())) {
                    let shown: String = unknown.chars().take(64).collect();
                    return Err(ServiceError::InvalidInput(format!(
                        "unknown event type '{shown}'; known types: {}",
                        EVENT_TYPES.join(", ")
                    )));
                }
                types
            }
        };
        if let (Some(from), Some(to)) = (self.from, self.to) {
            if from >= to {
                return Err(ServiceError::InvalidInput(
                    "`from` must be before `to`".into(),
                ));
            }
        }
        Ok(LogFilter {
            user,
            event_types,
            from: self.from,
            to: self.to,
        })
    }
}

/// One event as an auditor sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditRecord {
    /// Global position.
    pub position: i64,
    /// e.g. `CodeSent`.
    pub event_type: String,
    /// The tenant's id for the user, for user events.
    pub user_id: Option<String>,
    /// When recorded.
    pub occurred_at: DateTime<Utc>,
    /// `{ keyId, role }`, `{ operator: true }` or `{ system: true }`.
    pub actor: serde_json::Value,
    /// The request that caused it.
    pub request_id: Option<String>,
    /// The event's fields an auditor may see.
    pub data: serde_json::Value,
}

impl AuditRecord {
    fn from_logged(tenant: &TenantId, event: LoggedEvent) -> Self {
        let user_prefix = format!("{}/user/", tenant.as_str());
        let user_id = (event.aggregate_type == "user")
            .then(|| event.aggregate_id.strip_prefix(&user_prefix))
            .flatten()
            .map(str::to_owned);
        let meta = |key: &str| {
            event
                .metadata
                .get(key)
                .and_then(serde_json::Value::as_str)
                .filter(|v| !v.is_empty())
                .map(str::to_owned)
        };
        // The actor is recorded as JSON text; anything else shows as unknown, never as is.
        let actor = meta("actor")
            .and_then(|a| serde_json::from_str::<serde_json::Value>(&a).ok())
            .filter(serde_json::Value::is_object)
            .unwrap_or_else(|| serde_json::json!({ "unknown": true }));
        Self {
            position: event.at.position,
            data: mask::audit_data(&event.aggregate_type, &event.payload),
            request_id: meta("request_id"),
            event_type: event.event_type,
            user_id,
            occurred_at: event.recorded_at,
            actor,
        }
    }

    /// The record as one JSON object (the export's line, the API's field names).
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "position": self.position.to_string(),
            "eventType": self.event_type,
            "userId": self.user_id,
            // The same text as the API's DateTime scalar.
            "occurredAt": self.occurred_at.to_rfc3339(),
            "actor": self.actor,
            "requestId": self.request_id,
            "data": self.data,
        })
    }
}

/// One page of the history.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditPage {
    /// The events, in the requested order.
    pub records: Vec<AuditRecord>,
    /// Cursor after the last event of the page (continue with `after`).
    pub end_cursor: Option<String>,
    /// More events follow.
    pub has_next_page: bool,
}

/// Cursor prefix: a version, so the format can change without misreading old cursors.
const CURSOR_PREFIX: &str = "a1";
const CURSOR_PURPOSE: &str = "audit-cursor";
/// Bytes of the cursor's MAC (128 bits: forging one is out of reach).
const CURSOR_MAC_BYTES: usize = 16;

fn cursor_mac(hasher: &dyn SecretHasher, tenant: &TenantId, body: &[u8]) -> Vec<u8> {
    let mut message = tenant.as_str().as_bytes().to_vec();
    message.push(0);
    message.extend_from_slice(body);
    let hash = hasher.keyed_hash(CURSOR_PURPOSE, &message);
    from_hex(hash.as_hex())
        .unwrap_or_default()
        .into_iter()
        .take(CURSOR_MAC_BYTES)
        .collect()
}

/// A cursor for `at`, valid only for `tenant` and this direction: it carries the position
/// and a MAC over the tenant, the position and the direction.
fn encode_cursor(
    hasher: &dyn SecretHasher,
    tenant: &TenantId,
    order: LogOrder,
    at: LogPosition,
) -> String {
    let mut body = Vec::with_capacity(17);
    body.extend_from_slice(&at.tx.to_be_bytes());
    body.extend_from_slice(&at.position.to_be_bytes());
    body.push(direction_byte(order));
    let mac = cursor_mac(hasher, tenant, &body);
    format!("{CURSOR_PREFIX}{}{}", hex_lower(&body), hex_lower(&mac))
}

/// The order the API's `oldestFirst` flag asks for.
fn order_of(oldest_first: bool) -> LogOrder {
    if oldest_first {
        LogOrder::OldestFirst
    } else {
        LogOrder::NewestFirst
    }
}

/// The cursor byte that binds a cursor to its order.
fn direction_byte(order: LogOrder) -> u8 {
    match order {
        LogOrder::OldestFirst => 1,
        LogOrder::NewestFirst => 0,
    }
}

fn decode_cursor(
    hasher: &dyn SecretHasher,
    tenant: &TenantId,
    order: LogOrder,
    cursor: &str,
) -> Result<LogPosition, ServiceError> {
    let invalid = || {
        ServiceError::InvalidInput(
            "`after` is not a cursor of this tenant's audit log in this order".into(),
        )
    };
    let bytes = cursor
        .strip_prefix(CURSOR_PREFIX)
        .and_then(from_hex)
        .filter(|b| b.len() == 17 + CURSOR_MAC_BYTES)
        .ok_or_else(invalid)?;
    let (body, mac) = bytes.split_at(17);
    let expected = cursor_mac(hasher, tenant, body);
    if expected.len() != CURSOR_MAC_BYTES || !bool::from(expected.ct_eq(mac)) {
        return Err(invalid());
    }
    if body[16] != direction_byte(order) {
        return Err(invalid());
    }
    let mut tx = [0u8; 8];
    let mut position = [0u8; 8];
    tx.copy_from_slice(&body[..8]);
    position.copy_from_slice(&body[8..16]);
    Ok(LogPosition {
        tx: i64::from_be_bytes(tx),
        position: i64::from_be_bytes(position),
    })
}

/// The audit history.
#[derive(Clone)]
pub struct AuditService {
    log: Arc<dyn AuditLog>,
    signal: Arc<dyn CommitSignal>,
    hasher: Arc<dyn SecretHasher>,
    tenants: Arc<dyn TenantDirectory>,
    streams: StreamSlots,
}

impl AuditService {
    /// Wires the history to the event log.
    pub fn new(
        log: Arc<dyn AuditLog>,
        signal: Arc<dyn CommitSignal>,
        hasher: Arc<dyn SecretHasher>,
        tenants: Arc<dyn TenantDirectory>,
    ) -> Self {
        Self {
            log,
            signal,
            hasher,
            tenants,
            streams: StreamSlots::default(),
        }
    }

    /// One page of the tenant's history. Only events whose transaction is below the commit
    /// horizon are shown, so an event committing later always sorts after this page (newer
    /// than anything on it), never behind its cursor.
    pub async fn page(
        &self,
        tenant: &TenantId,
        filter: AuditFilterInput,
        first: i64,
        after: Option<&str>,
        oldest_first: bool,
    ) -> Result<AuditPage, ServiceError> {
        let limit = crate::error::page_size(first, MAX_PAGE)?;
        let order = order_of(oldest_first);
        let filter = filter.parse()?;
        let cursor = after
            .map(|c| decode_cursor(self.hasher.as_ref(), tenant, order, c))
            .transpose()?;
        let mut events = self
            .log
            .read(tenant, &filter, order, cursor, None, limit + 1)
            .await?;
        let has_next_page = events.len() > limit as usize;
        events.truncate(limit as usize);
        let end_cursor = events
            .last()
            .map(|e| encode_cursor(self.hasher.as_ref(), tenant, order, e.at));
        Ok(AuditPage {
            records: events
                .into_iter()
                .map(|e| AuditRecord::from_logged(tenant, e))
                .collect(),
            end_cursor,
            has_next_page,
        })
    }

    /// Every matching event, read in batches (memory stays constant however long the history)
    /// up to the commit horizon at the start: a consistent cut, whatever commits meanwhile.
    pub async fn export(
        &self,
        tenant: &TenantId,
        filter: AuditFilterInput,
        oldest_first: bool,
    ) -> Result<BoxStream<'static, Result<AuditRecord, ServiceError>>, ServiceError> {
        let filter = filter.parse()?;
        let slot = self.streams.export(tenant)?;
        let order = order_of(oldest_first);
        let below = self.log.horizon().await?;
        let log = self.log.clone();
        let tenant = tenant.clone();
        struct State {
            cursor: Option<LogPosition>,
            done: bool,
            _slot: StreamSlot,
        }
        let batches = stream::unfold(
            State {
                cursor: None,
                done: false,
                _slot: slot,
            },
            move |mut state| {
                let log = log.clone();
                let tenant = tenant.clone();
                let filter = filter.clone();
                async move {
                    if state.done {
                        return None;
                    }
                    let read = log
                        .read(&tenant, &filter, order, state.cursor, Some(below), BATCH)
                        .await;
                    let batch = match read {
                        Ok(batch) => batch,
                        Err(e) => {
                            state.done = true;
                            return Some((vec![Err(ServiceError::from(e))], state));
                        }
                    };
                    state.done = batch.len() < BATCH as usize;
                    state.cursor = batch.last().map(|e| e.at).or(state.cursor);
                    let records = batch
                        .into_iter()
                        .map(|e| Ok(AuditRecord::from_logged(&tenant, e)))
                        .collect::<Vec<_>>();
                    Some((records, state))
                }
            },
        );
        Ok(batches.flat_map(stream::iter).boxed())
    }

    /// The tenant's events recorded from now on, oldest first, as they become readable. Ends
    /// when the key is revoked or the log cannot be read (after logging why).
    pub async fn live(
        &self,
        key: &KeyPrincipal,
        filter: AuditFilterInput,
    ) -> Result<BoxStream<'static, AuditRecord>, ServiceError> {
        let filter = filter.parse()?;
        let slot = self.streams.live(&key.tenant_id)?;
        // Everything below the horizon now is history; everything else is news.
        let horizon = self.log.horizon().await?;
        let start = LogPosition {
            tx: horizon - 1,
            position: i64::MAX,
        };
        struct State {
            service: AuditService,
            key: KeyPrincipal,
            filter: LogFilter,
            cursor: LogPosition,
            signal: tokio::sync::watch::Receiver<u64>,
            _slot: StreamSlot,
        }
        let state = State {
            service: self.clone(),
            key: key.clone(),
            filter,
            cursor: start,
            signal: self.signal.subscribe(),
            _slot: slot,
        };
        let batches = stream::unfold(state, |mut state| async move {
            loop {
                let tenant = &state.key.tenant_id;
                let read = state
                    .service
                    .log
                    .read(
                        tenant,
                        &state.filter,
                        LogOrder::OldestFirst,
                        Some(state.cursor),
                        None,
                        BATCH,
                    )
                    .await;
                let batch = match read {
                    Ok(batch) => batch,
                    Err(e) => {
                        tracing::error!(error = %e, "live audit stream cannot read the log; ending it");
                        return None;
                    }
                };
                if let Some(last) = batch.last() {
                    match state.service.key_active(&state.key).await {
                        Ok(true) => {}
                        Ok(false) => {
                            tracing::info!(key = %state.key.key_id, "key revoked; ending its live audit stream");
                            return None;
                        }
                        Err(e) => {
                            tracing::error!(error = %e, "live audit stream cannot check its key; ending it");
                            return None;
                        }
                    }
                    state.cursor = last.at;
                    let records: Vec<AuditRecord> = batch
                        .into_iter()
                        .map(|e| AuditRecord::from_logged(tenant, e))
                        .collect();
                    return Some((records, state));
                }
                tokio::select! {
                    changed = state.signal.changed() => {
                        if changed.is_err() {
                            return None; // the processor is gone: the service is stopping
                        }
                    }
                    _ = tokio::time::sleep(LIVE_POLL) => {}
                }
            }
        });
        Ok(batches.flat_map(stream::iter).boxed())
    }

    async fn key_active(&self, key: &KeyPrincipal) -> Result<bool, ServiceError> {
        Ok(self
            .tenants
            .api_keys(&key.tenant_id)
            .await?
            .iter()
            .any(|k| k.id == key.key_id && k.revoked_at.is_none()))
    }
}

#[cfg(test)]
mod tests;
