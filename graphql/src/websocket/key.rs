//! The socket's key: given on the upgrade request or in `connection_init`, checked before
//! anything runs, and checked again periodically so that a revoked key closes the socket.

use twofold_services::{Principal, ServiceError};

use super::protocol::{self, Close};
use super::registry::SocketSlot;
use super::Connection;
use crate::http::MAX_CREDENTIAL_CHARS;

/// A key as presented, kept to check it again; never shown.
pub(super) struct Credential(pub(super) String);

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Credential(<redacted>)")
    }
}

/// The key a socket was accepted with.
pub(super) struct Accepted {
    pub(super) credential: Credential,
    pub(super) _slot: SocketSlot,
}

impl Connection {
    /// `connection_init`: the socket runs nothing until a valid key is given here or on the
    /// upgrade request. No key closes it with 4401, an invalid or revoked one with 4403.
    pub(super) async fn accept(&mut self, payload: &serde_json::Value) -> Result<String, Close> {
        if self.key.is_some() {
            return Err(Close::TooMany("too many initialisation requests"));
        }
        let credential = protocol::init_credential(payload)
            .map(Credential)
            .or(self.header_credential.take())
            .ok_or(Close::Unauthorized(
                "connection_init needs a key: {\"Authorization\": \"Bearer <API key>\"}",
            ));
        // The same budget as HTTP requests without a valid key: an address that spent it gets
        // nothing looked up, unless this instance has found the key valid before.
        if self.state.anonymous.refused(self.ip).is_some()
            && !credential
                .as_ref()
                .is_ok_and(|c| self.state.auth.is_known(&c.0))
        {
            return Err(Close::TooMany(
                "too many requests without a valid key from this address",
            ));
        }
        let credential = credential?;
        let principal = self.authenticate(&credential).await?;
        let limits = &self.state.websockets.limits;
        let counters = match &principal {
            Principal::Key(k) => vec![
                (format!("key:{}", k.key_id), limits.max_sockets_per_key),
                (
                    format!("tenant:{}", k.tenant_id),
                    limits.max_sockets_per_tenant,
                ),
            ],
            Principal::Operator => vec![("operator".to_owned(), limits.max_sockets_per_key)],
        };
        let slot = self.state.websockets.open(&counters).ok_or(Close::TooMany(
            "too many sockets are open with this key or organisation on this instance",
        ))?;
        crate::http::record_caller(&principal);
        self.pending = None;
        self.key = Some(Accepted {
            credential,
            _slot: slot,
        });
        Ok(self.protocol.ack())
    }

    /// The principal of `credential` now: 4403 when it is refused, 1011 when it cannot be
    /// checked.
    pub(super) async fn authenticate(&self, credential: &Credential) -> Result<Principal, Close> {
        if credential.0.chars().count() > MAX_CREDENTIAL_CHARS {
            return Err(Close::Forbidden);
        }
        match self.state.auth.authenticate(&credential.0).await {
            Ok(principal) => Ok(principal),
            Err(e @ ServiceError::Internal(_)) => {
                tracing::error!(error = ?e, "authentication failed internally");
                Err(Close::Internal)
            }
            Err(_) => Err(Close::Forbidden),
        }
    }

    /// The periodic check of the socket's key. A failure to check is not a refusal: the next
    /// operation checks again, and fails closed.
    pub(super) async fn recheck(&mut self) -> Result<(), Close> {
        let Some(accepted) = &self.key else {
            return Ok(());
        };
        match self.authenticate(&accepted.credential).await {
            Err(Close::Forbidden) => {
                tracing::info!("the socket's key was revoked; closing it");
                Err(Close::Forbidden)
            }
            Ok(_) | Err(_) => Ok(()),
        }
    }
}
