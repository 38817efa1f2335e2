//! Where console sessions are kept: server-side rows, found by a keyed hash of the cookie's
//! token, so a copy of the table signs no one in.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use twofold_domain::console_session::SessionTimes;
use twofold_domain::tenant::KeyedHash;

use crate::auth::KeyPrincipal;
use crate::StoreError;

/// A session as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredSession {
    /// The key that signed in: its tenant, id and role.
    pub key: KeyPrincipal,
    pub times: SessionTimes,
}

/// Console sessions.
#[async_trait]
pub trait ConsoleSessionStore: Send + Sync {
    /// Records a new session of `key`, ending the key's oldest beyond
    /// [`MAX_PER_KEY`](twofold_domain::console_session::MAX_PER_KEY).
    async fn create(
        &self,
        token_hash: &KeyedHash,
        key: &KeyPrincipal,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError>;

    /// The session with this token hash, unless the key behind it has been revoked (checked in
    /// the same read, against the revocations written with the revoking event).
    async fn find(&self, token_hash: &KeyedHash) -> Result<Option<StoredSession>, StoreError>;

    /// Records a use of the session.
    async fn touch(&self, token_hash: &KeyedHash, at: DateTime<Utc>) -> Result<(), StoreError>;

    /// Ends one session; returns it as it was, or `None` if there was none (so of two
    /// sign-outs at once, one finds it).
    async fn delete(&self, token_hash: &KeyedHash) -> Result<Option<StoredSession>, StoreError>;

    /// Deletes every session that has ended by `now`; returns how many.
    async fn prune(&self, now: DateTime<Utc>) -> Result<u64, StoreError>;
}
