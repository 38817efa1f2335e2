//! The tenant's decisions: who may register, which keys may be issued or revoked, which policy
//! changes are accepted, which keys may sign in to the console.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use cqrs_es::event_sink::EventSink;
use cqrs_es::Aggregate;
use serde::{Deserialize, Serialize};

use super::{KeyedHash, NewApiKey, TenantCommand, TenantEvent};
use crate::provider::DeliveryFacts;
use crate::secrets::SealedSecret;
use crate::{ApiKeyId, KeyLabel, Policy, PolicyError, Role, TenantId, TenantName};

/// Most active keys a tenant may hold at once: keeps the aggregate small and key sprawl visible.
pub const MAX_ACTIVE_KEYS: usize = 100;

/// Why a tenant command was refused. Messages are safe to show to the caller.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TenantError {
    /// Register on an id that exists.
    #[error("a tenant with this id already exists")]
    AlreadyRegistered,
    /// Any command but Register on a tenant that does not exist.
    #[error("tenant not found")]
    NotFound,
    /// Revoke of a key the tenant does not have.
    #[error("API key {0} not found")]
    KeyNotFound(ApiKeyId),
    /// Issue with an id already used (astronomically unlikely; refused rather than overwritten).
    #[error("API key id {0} is already in use")]
    DuplicateKeyId(ApiKeyId),
    /// Revoking the last active ADMIN key would leave nobody able to manage the tenant.
    #[error("cannot revoke the last active ADMIN key: issue another ADMIN key first")]
    LastAdminKey,
    /// Too many active keys.
    #[error("the tenant already has {MAX_ACTIVE_KEYS} active API keys: revoke one first")]
    TooManyKeys,
    /// Console sign-in with a revoked key.
    #[error("API key {0} is revoked")]
    KeyRevoked(ApiKeyId),
    /// Console sign-in with a key whose role has no console.
    #[error("keys with role {} cannot sign in to the console; use an ADMIN or AUDITOR key", .0.as_str())]
    NoConsoleRole(Role),
    /// The policy change is out of bounds.
    #[error(transparent)]
    Policy(#[from] PolicyError),
    /// Anything but another erasure, on an erased tenant.
    #[error("the tenant was erased")]
    Erased,
}

/// A key as the tenant remembers it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApiKeyState {
    pub role: Role,
    pub label: KeyLabel,
    /// Keyed hash of the key.
    pub hash: KeyedHash,
    /// When issued.
    pub created_at: DateTime<Utc>,
    /// When revoked, if it was.
    pub revoked_at: Option<DateTime<Utc>>,
}

/// The tenant's own delivery providers, as recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TenantDelivery {
    /// Which change this is (senders are cached by it).
    pub version: u64,
    /// What may be shown.
    pub facts: DeliveryFacts,
    /// The settings with their credentials, sealed under the tenant's data key.
    pub sealed: SealedSecret,
    /// When set.
    pub changed_at: DateTime<Utc>,
}

/// The tenant aggregate's state, rebuilt from its events.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Tenant {
    id: Option<TenantId>,
    name: Option<TenantName>,
    policy: Policy,
    keys: BTreeMap<ApiKeyId, ApiKeyState>,
    created_at: Option<DateTime<Utc>>,
    /// The tenant's own providers; `None`: the service's.
    #[serde(default)]
    delivery: Option<TenantDelivery>,
    /// Changes of the delivery settings so far (clearing counts too).
    #[serde(default)]
    delivery_version: u64,
    /// Erased by the operator: every key revoked, nothing accepted any more.
    #[serde(default)]
    erased: bool,
}

impl Tenant {
    /// Whether the tenant has been registered.
    pub fn exists(&self) -> bool {
        self.id.is_some()
    }

    /// The current policy (the default until one is set).
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// The tenant's name, once registered.
    pub fn name(&self) -> Option<&TenantName> {
        self.name.as_ref()
    }

    /// Every key ever issued, by id.
    pub fn keys(&self) -> &BTreeMap<ApiKeyId, ApiKeyState> {
        &self.keys
    }

    /// When the tenant was registered.
    pub fn created_at(&self) -> Option<DateTime<Utc>> {
        self.created_at
    }

    /// The tenant's own delivery providers, if it set any.
    pub fn delivery(&self) -> Option<&TenantDelivery> {
        self.delivery.as_ref()
    }

    fn active_keys(&self) -> impl Iterator<Item = (&ApiKeyId, &ApiKeyState)> {
        self.keys.iter().filter(|(_, k)| k.revoked_at.is_none())
    }

    fn key(&self, key_id: &ApiKeyId) -> Result<&ApiKeyState, TenantError> {
        self.keys
            .get(key_id)
            .ok_or_else(|| TenantError::KeyNotFound(key_id.clone()))
    }

    fn issued(key: NewApiKey, at: DateTime<Utc>) -> TenantEvent {
        TenantEvent::ApiKeyIssued {
            key_id: key.id,
            role: key.role,
            label: key.label,
            key_hash: key.hash,
            issued_at: at,
        }
    }

    fn decide(&self, command: TenantCommand) -> Result<Vec<TenantEvent>, TenantError> {
        if let TenantCommand::Register {
            tenant_id,
            name,
            first_admin_key,
            at,
        } = command
        {
            if self.exists() {
                return Err(TenantError::AlreadyRegistered);
            }
            let first_admin_key = NewApiKey {
                role: Role::Admin,
                ..first_admin_key
            };
            return Ok(vec![
                TenantEvent::TenantRegistered {
                    tenant_id,
                    name,
                    policy: Policy::default(),
                    registered_at: at,
                },
                Self::issued(first_admin_key, at),
            ]);
        }
        if !self.exists() {
            return Err(TenantError::NotFound);
        }
        if let TenantCommand::Erase { reason, at } = command {
            // Every key goes, the last ADMIN key too. Erasing again records it again: the
            // service destroys the keys each time, so a retry finishes a failed destruction.
            let mut events: Vec<TenantEvent> = self
                .active_keys()
                .map(|(id, _)| TenantEvent::ApiKeyRevoked {
                    key_id: id.clone(),
                    revoked_at: at,
                })
                .collect();
            events.push(TenantEvent::TenantErased {
                reason,
                erased_at: at,
            });
            return Ok(events);
        }
        if self.erased {
            return Err(TenantError::Erased);
        }
        match command {
            TenantCommand::Register { .. } => Err(TenantError::AlreadyRegistered),
            TenantCommand::Erase { .. } => unreachable!("decided above"),
            TenantCommand::IssueApiKey { key, at } => {
                if self.keys.contains_key(&key.id) {
                    return Err(TenantError::DuplicateKeyId(key.id));
                }
                if self.active_keys().count() >= MAX_ACTIVE_KEYS {
                    return Err(TenantError::TooManyKeys);
                }
                Ok(vec![Self::issued(key, at)])
            }
            TenantCommand::RevokeApiKey { key_id, at } => {
                let key = self.key(&key_id)?;
                if key.revoked_at.is_some() {
                    // Revoking twice is a retry, not a new fact: nothing to record.
                    return Ok(vec![]);
                }
                let other_admins = self
                    .active_keys()
                    .filter(|(id, k)| k.role == Role::Admin && **id != key_id)
                    .count();
                if key.role == Role::Admin && other_admins == 0 {
                    return Err(TenantError::LastAdminKey);
                }
                Ok(vec![TenantEvent::ApiKeyRevoked {
                    key_id,
                    revoked_at: at,
                }])
            }
            TenantCommand::SetPolicy { change, at } => {
                let policy = self.policy.apply(&change)?;
                if policy == self.policy {
                    return Ok(vec![]);
                }
                Ok(vec![TenantEvent::TwoFactorPolicySet {
                    previous: self.policy.clone(),
                    policy,
                    set_at: at,
                }])
            }
            TenantCommand::SetDeliverySettings { settings, at } => {
                if settings.is_none() && self.delivery.is_none() {
                    // Clearing what is not set is a retry, not a new fact.
                    return Ok(vec![]);
                }
                let (settings, sealed) = match settings {
                    Some((facts, sealed)) => (Some(facts), Some(sealed)),
                    None => (None, None),
                };
                Ok(vec![TenantEvent::DeliverySettingsChanged {
                    version: self.delivery_version + 1,
                    settings,
                    sealed,
                    changed_at: at,
                }])
            }
            TenantCommand::RecordDeliveryTest { test, at } => {
                Ok(vec![TenantEvent::DeliveryTested {
                    channel: test.channel,
                    destination: test.destination,
                    delivered: test.delivered,
                    provider_message_id: test.provider_message_id,
                    error: test.error,
                    retryable: test.retryable,
                    at,
                }])
            }
            TenantCommand::SignInToConsole {
                key_id,
                session,
                at,
            } => {
                let key = self.key(&key_id)?;
                if key.revoked_at.is_some() {
                    return Err(TenantError::KeyRevoked(key_id));
                }
                if !matches!(key.role, Role::Admin | Role::Auditor) {
                    return Err(TenantError::NoConsoleRole(key.role));
                }
                Ok(vec![TenantEvent::ConsoleSignedIn {
                    key_id,
                    role: key.role,
                    session,
                    signed_in_at: at,
                }])
            }
            TenantCommand::SignOutOfConsole {
                key_id,
                session,
                at,
            } => {
                let key = self.key(&key_id)?;
                if key.revoked_at.is_some() {
                    // The revocation ended the session already, and the history says so.
                    return Ok(vec![]);
                }
                Ok(vec![TenantEvent::ConsoleSignedOut {
                    key_id,
                    session,
                    signed_out_at: at,
                }])
            }
        }
    }
}

impl Aggregate for Tenant {
    const TYPE: &'static str = "tenant";
    type Command = TenantCommand;
    type Event = TenantEvent;
    type Error = TenantError;
    type Services = ();

    async fn handle(
        &mut self,
        command: Self::Command,
        _services: &Self::Services,
        sink: &EventSink<Self>,
    ) -> Result<(), Self::Error> {
        for event in self.decide(command)? {
            sink.write(event, self).await;
        }
        Ok(())
    }

    fn apply(&mut self, event: Self::Event) {
        match event {
            TenantEvent::TenantRegistered {
                tenant_id,
                name,
                policy,
                registered_at,
            } => {
                self.id = Some(tenant_id);
                self.name = Some(name);
                self.policy = policy;
                self.created_at = Some(registered_at);
            }
            TenantEvent::ApiKeyIssued {
                key_id,
                role,
                label,
                key_hash,
                issued_at,
            } => {
                self.keys.insert(
                    key_id,
                    ApiKeyState {
                        role,
                        label,
                        hash: key_hash,
                        created_at: issued_at,
                        revoked_at: None,
                    },
                );
            }
            TenantEvent::ApiKeyRevoked { key_id, revoked_at } => {
                if let Some(key) = self.keys.get_mut(&key_id) {
                    key.revoked_at = Some(revoked_at);
                }
            }
            TenantEvent::TwoFactorPolicySet { policy, .. } => self.policy = policy,
            TenantEvent::DeliverySettingsChanged {
                version,
                settings,
                sealed,
                changed_at,
            } => {
                self.delivery_version = version;
                self.delivery = settings.zip(sealed).map(|(facts, sealed)| TenantDelivery {
                    version,
                    facts,
                    sealed,
                    changed_at,
                });
            }
            TenantEvent::TenantErased { .. } => {
                self.erased = true;
                // Sealed under a destroyed key: nothing could send with them any more.
                self.delivery = None;
            }
            // Sessions are rows, not state: the tenant decides nothing by them.
            TenantEvent::DeliveryTested { .. }
            | TenantEvent::ConsoleSignedIn { .. }
            | TenantEvent::ConsoleSignedOut { .. } => {}
        }
    }
}

#[cfg(test)]
#[path = "aggregate_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "delivery_tests.rs"]
mod delivery_tests;

#[cfg(test)]
#[path = "console_tests.rs"]
mod console_tests;
