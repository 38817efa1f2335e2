//! Who is calling: the operator token, or a tenant API key looked up by its keyed hash.
//!
//! API keys look like `tfk_<key id>_<secret>`: the prefix lets secret scanners recognise a leaked
//! key, the id names the key in audit records, and the 256-bit secret is what makes it a key. Only
//! the keyed hash of the whole key is stored, so a database dump yields no usable key.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use subtle::ConstantTimeEq;
use twofold_domain::tenant::KeyedHash;
use twofold_domain::{ApiKeyId, Role, TenantId};

use crate::context::Actor;
use crate::encoding::base32_lower;
use crate::ports::{Entropy, SecretHasher, TenantDirectory};
use crate::ServiceError;

const KEY_PREFIX: &str = "tfk_";
const KEY_HASH_PURPOSE: &str = "api-key";
const OPERATOR_HASH_PURPOSE: &str = "operator-token";

/// An authenticated tenant key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyPrincipal {
    /// The key's tenant: the only tenant this request can see.
    pub tenant_id: TenantId,
    pub key_id: ApiKeyId,
    /// The key's role.
    pub role: Role,
}

impl KeyPrincipal {
    /// The actor recorded on events this key causes.
    pub fn actor(&self) -> Actor {
        Actor::Key {
            key_id: self.key_id.clone(),
            role: self.role,
        }
    }
}

/// A caller that presented valid credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// The service operator.
    Operator,
    /// A tenant key.
    Key(KeyPrincipal),
}

/// A freshly minted key: the secret exists only here and in the one response that shows it.
pub struct MintedKey {
    /// Public id.
    pub id: ApiKeyId,
    /// The whole key, shown once.
    pub secret: String,
    /// What is stored.
    pub hash: KeyedHash,
}

impl std::fmt::Debug for MintedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MintedKey")
            .field("id", &self.id)
            .field("secret", &"<redacted>")
            .finish()
    }
}

/// Authenticates bearer credentials and mints new API keys.
pub struct Authenticator {
    directory: Arc<dyn TenantDirectory>,
    hasher: Arc<dyn SecretHasher>,
    entropy: Arc<dyn Entropy>,
    operator: Option<KeyedHash>,
    /// Whether the operator token looks like a tenant key (starts with [`KEY_PREFIX`]); when it
    /// does not, a credential that does cannot be it, and its hash is not computed.
    operator_key_shaped: bool,
    /// Keys found valid (see [`Authenticator::is_known`]).
    known: Mutex<Known>,
}

/// How long a key found valid stays known after its last use.
pub const KNOWN_FOR: Duration = Duration::from_secs(3600);

/// Keys remembered per tenant: a tenant holds at most 100 active keys, so more are keys it
/// minted and revoked, and must not crowd other tenants' keys out.
const KNOWN_PER_TENANT: usize = 200;

/// Keyed hashes of keys found valid, when last, and per tenant in the order they were first
/// remembered (the oldest goes when a tenant is at [`KNOWN_PER_TENANT`]).
#[derive(Default)]
struct Known {
    /// Hash -> (last found valid, generation).
    entries: HashMap<String, (Instant, u64)>,
    /// Per tenant: (hash, generation) in the order remembered.
    order: HashMap<TenantId, VecDeque<(String, u64)>>,
    generation: u64,
}

impl Known {
    fn remember(&mut self, tenant: &TenantId, hash: &str) {
        if let Some((seen, _)) = self.entries.get_mut(hash) {
            *seen = Instant::now();
            return;
        }
        self.generation += 1;
        let order = self.order.entry(tenant.clone()).or_default();
        if order.len() >= KNOWN_PER_TENANT {
            if let Some((oldest, generation)) = order.pop_front() {
                // Only if that entry is the one queued (it may have been forgotten and
                // remembered again since).
                if self
                    .entries
                    .get(&oldest)
                    .is_some_and(|(_, g)| *g == generation)
                {
                    self.entries.remove(&oldest);
                }
            }
        }
        order.push_back((hash.to_owned(), self.generation));
        self.entries
            .insert(hash.to_owned(), (Instant::now(), self.generation));
    }
}

pub(crate) fn unauthenticated() -> ServiceError {
    ServiceError::Unauthenticated("invalid or revoked credentials".into())
}

impl Authenticator {
    /// `operator_token`: the configured operator token, if any (none disables operator access).
    pub fn new(
        directory: Arc<dyn TenantDirectory>,
        hasher: Arc<dyn SecretHasher>,
        entropy: Arc<dyn Entropy>,
        operator_token: Option<&str>,
    ) -> Self {
        let operator =
            operator_token.map(|t| hasher.keyed_hash(OPERATOR_HASH_PURPOSE, t.as_bytes()));
        Self {
            directory,
            hasher,
            entropy,
            operator,
            operator_key_shaped: operator_token.is_some_and(|t| t.starts_with(KEY_PREFIX)),
            known: Mutex::default(),
        }
    }

    /// Mints a new key: 80-bit id, 256-bit secret.
    pub fn mint_key(&self) -> Result<MintedKey, ServiceError> {
        let mut id = [0u8; 10];
        self.entropy.fill(&mut id);
        let mut secret = [0u8; 32];
        self.entropy.fill(&mut secret);
        let id = base32_lower(&id);
        let token = format!("{KEY_PREFIX}{id}_{}", base32_lower(&secret));
        let hash = self.hasher.keyed_hash(KEY_HASH_PURPOSE, token.as_bytes());
        Ok(MintedKey {
            id: ApiKeyId::parse(&id).map_err(|e| ServiceError::Internal(Box::new(e)))?,
            secret: token,
            hash,
        })
    }

    /// Whether `credential` is the operator token (compared by keyed hash, in constant time).
    /// A tenant key is not hashed for it (every API request presents one): the prefix that
    /// tells them apart is no secret.
    fn is_operator(&self, credential: &str) -> bool {
        if credential.starts_with(KEY_PREFIX) && !self.operator_key_shaped {
            return false;
        }
        self.operator.as_ref().is_some_and(|operator| {
            let presented = self
                .hasher
                .keyed_hash(OPERATOR_HASH_PURPOSE, credential.as_bytes());
            bool::from(
                presented
                    .as_hex()
                    .as_bytes()
                    .ct_eq(operator.as_hex().as_bytes()),
            )
        })
    }

    /// Whether `credential` may be looked up even for an address that spent its budget of
    /// requests without a valid key: the operator token, or a key this instance found valid
    /// within [`KNOWN_FOR`]. A guessed key never is, so a flood of them gets no look-up; a
    /// known key is still looked up, so its revocation holds.
    ///
    /// Not the directory's cache: its entries last seconds, and a flood that kept an address
    /// refused for longer locked out every tenant behind that address.
    pub fn is_known(&self, credential: &str) -> bool {
        if self.is_operator(credential) {
            return true;
        }
        if !credential.starts_with(KEY_PREFIX) {
            return false;
        }
        let hash = self
            .hasher
            .keyed_hash(KEY_HASH_PURPOSE, credential.as_bytes());
        let known = self.known.lock().unwrap_or_else(|e| e.into_inner());
        known
            .entries
            .get(hash.as_hex())
            .is_some_and(|(seen, _)| seen.elapsed() < KNOWN_FOR)
    }

    fn remember(&self, tenant: &TenantId, hash: &KeyedHash) {
        self.known
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remember(tenant, hash.as_hex());
    }

    fn forget(&self, hash: &KeyedHash) {
        self.known
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entries
            .remove(hash.as_hex());
    }

    /// Checks a bearer credential. Unknown, malformed and revoked credentials get the same
    /// answer, so a caller learns nothing about which keys exist.
    pub async fn authenticate(&self, credential: &str) -> Result<Principal, ServiceError> {
        if self.is_operator(credential) {
            return Ok(Principal::Operator);
        }
        let Some(rest) = credential.strip_prefix(KEY_PREFIX) else {
            return Err(unauthenticated());
        };
        let Some((id, _secret)) = rest.split_once('_') else {
            return Err(unauthenticated());
        };
        let id = ApiKeyId::parse(id).map_err(|_| unauthenticated())?;
        let hash = self
            .hasher
            .keyed_hash(KEY_HASH_PURPOSE, credential.as_bytes());
        let key = self.directory.key_by_hash(&hash).await?;
        let Some(key) = key.filter(|k| k.id == id && k.revoked_at.is_none()) else {
            self.forget(&hash);
            return Err(unauthenticated());
        };
        self.remember(&key.tenant_id, &hash);
        Ok(Principal::Key(KeyPrincipal {
            tenant_id: key.tenant_id,
            key_id: key.id,
            role: key.role,
        }))
    }
}

#[cfg(test)]
mod known_tests {
    use super::*;

    #[test]
    fn one_tenant_minting_keys_cannot_crowd_out_another_tenants_known_keys() {
        let mut known = Known::default();
        let quiet = TenantId::parse("quiet").unwrap();
        let busy = TenantId::parse("busy").unwrap();
        known.remember(&quiet, "quiet-key");
        for i in 0..10 * KNOWN_PER_TENANT {
            known.remember(&busy, &format!("busy-{i}"));
        }
        assert!(known.entries.contains_key("quiet-key"));
        assert_eq!(known.entries.len(), KNOWN_PER_TENANT + 1);
        // The busy tenant keeps its most recent keys.
        assert!(known
            .entries
            .contains_key(&format!("busy-{}", 10 * KNOWN_PER_TENANT - 1)));
        // A key forgotten and remembered again is not evicted by its stale queue entry.
        known.entries.remove("busy-1999");
        known.remember(&busy, "busy-1999");
        assert!(known.entries.contains_key("busy-1999"));
    }
}

#[cfg(test)]
mod operator_tests {
    use super::*;
    use crate::testing::ports::{FakeDirectory, FakeEntropy, FakeHasher};

    fn authenticator(operator_token: &str) -> Authenticator {
        Authenticator::new(
            Arc::new(FakeDirectory::default()),
            Arc::new(FakeHasher),
            Arc::new(FakeEntropy::default()),
            Some(operator_token),
        )
    }

    #[tokio::test]
    async fn the_operator_token_is_recognised_whatever_it_starts_with() {
        for token in [
            "op-secret-1",
            "tfk_looks_like_a_key",
            "TFK_looks_like_a_key",
        ] {
            let auth = authenticator(token);
            assert!(
                matches!(auth.authenticate(token).await, Ok(Principal::Operator)),
                "{token}"
            );
            assert!(auth.is_known(token), "{token}");
            let key_shaped = format!("tfk_{}", &token[4..]);
            let others = [
                "tfk_abcdefgh_secret",
                "op-secret-2",
                "tfk_looks_like_a_kez",
                key_shaped.as_str(),
            ];
            for other in others.into_iter().filter(|o| *o != token) {
                assert!(auth.authenticate(other).await.is_err(), "{token} / {other}");
            }
        }
    }
}
