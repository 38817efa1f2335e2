//! An in-memory cache in front of the tenant directory: every request authenticates its key and
//! most read the tenant's policy, two round trips that this removes.
//!
//! Staleness is bounded three ways. Each change to `tenants` or `api_keys` is announced on the
//! `twofold_directory` channel when it commits (a trigger), and every instance drops what it
//! holds about that tenant; the instance that made a change drops it itself before answering;
//! and nothing is kept longer than [`TTL`]. While the instance is not listening (start-up, a
//! lost connection) the cache is bypassed entirely. A read that started before a drop is not
//! cached (a generation counter), so an old answer cannot be stored after the news of a change.
//! Unknown keys are never cached: a guessed key costs a query, and a new key works at once.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use sqlx::postgres::PgListener;
use sqlx::PgPool;
use twofold_domain::tenant::KeyedHash;
use twofold_domain::TenantId;
use twofold_services::ports::{ApiKeyView, TenantDirectory, TenantView};
use twofold_services::StoreError;

/// The channel the `tenants` and `api_keys` triggers notify, with the tenant id.
pub const CHANNEL: &str = "twofold_directory";

/// Longest an entry is used, even if no change is ever announced.
pub const TTL: Duration = Duration::from_secs(5);

/// Most entries of each kind; past it the cache starts afresh (it is only a cache).
const MAX_ENTRIES: usize = 10_000;

#[derive(Default)]
struct Entries {
    tenants: HashMap<TenantId, (TenantView, Instant)>,
    keys: HashMap<String, (ApiKeyView, Instant)>,
    /// Each tenant's keys, as an operation that waited for its tenant's share checks them.
    /// Shared, not copied, under the lock every request takes: a tenant may have many revoked
    /// keys.
    key_lists: HashMap<TenantId, (Arc<[ApiKeyView]>, Instant)>,
}

struct Inner {
    entries: Mutex<Entries>,
    generation: AtomicU64,
    listening: AtomicBool,
}

impl Inner {
    fn entries(&self) -> std::sync::MutexGuard<'_, Entries> {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }

    // The generation moves under the entries' lock, and `remember` checks it under the same
    // lock: a read that started before a drop can never be stored after it.
    fn drop_tenant(&self, tenant: &str) {
        let mut entries = self.entries();
        self.generation.fetch_add(1, Ordering::SeqCst);
        entries.tenants.retain(|id, _| id.as_str() != tenant);
        entries.key_lists.retain(|id, _| id.as_str() != tenant);
        entries
            .keys
            .retain(|_, (k, _)| k.tenant_id.as_str() != tenant);
    }

    fn drop_all(&self) {
        let mut entries = self.entries();
        self.generation.fetch_add(1, Ordering::SeqCst);
        *entries = Entries::default();
    }

    /// Stores `value` under `key` in the map `pick` selects, unless anything was dropped since
    /// `generation` was read (before the value was fetched).
    fn remember<K: std::hash::Hash + Eq, V>(
        &self,
        generation: u64,
        pick: impl FnOnce(&mut Entries) -> &mut HashMap<K, (V, Instant)>,
        key: K,
        value: V,
    ) {
        let mut entries = self.entries();
        if self.generation.load(Ordering::SeqCst) != generation {
            return;
        }
        let map = pick(&mut entries);
        if map.len() >= MAX_ENTRIES {
            map.clear();
        }
        map.insert(key, (value, Instant::now()));
    }
}

/// A [`TenantDirectory`] that remembers recent answers of another one.
pub struct CachedDirectory {
    inner: Arc<Inner>,
    source: Arc<dyn TenantDirectory>,
}

impl CachedDirectory {
    /// Caches `source`, listening for changes on `pool` (in a task that ends when the cache is
    /// dropped or the pool closed).
    pub fn new(source: Arc<dyn TenantDirectory>, pool: PgPool) -> Self {
        let inner = Arc::new(Inner {
            entries: Mutex::new(Entries::default()),
            generation: AtomicU64::new(0),
            listening: AtomicBool::new(false),
        });
        tokio::spawn(listen(Arc::downgrade(&inner), pool));
        Self { inner, source }
    }

    /// Whether this instance is currently told about changes (and so uses the cache).
    pub fn is_listening(&self) -> bool {
        self.inner.listening.load(Ordering::SeqCst)
    }
}

/// Follows the change channel; the cache is used only while this runs connected.
async fn listen(inner: Weak<Inner>, pool: PgPool) {
    loop {
        if pool.is_closed() || inner.strong_count() == 0 {
            return;
        }
        let connected = async {
            let mut listener = PgListener::connect_with(&pool).await?;
            listener.listen(CHANNEL).await?;
            Ok::<_, sqlx::Error>(listener)
        }
        .await;
        let mut listener = match connected {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for directory changes; not caching");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        if let Some(inner) = inner.upgrade() {
            // Whatever changed while nobody listened is unknown: start afresh.
            inner.drop_all();
            inner.listening.store(true, Ordering::SeqCst);
        }
        loop {
            let received = listener.try_recv().await;
            let Some(inner) = inner.upgrade() else {
                return;
            };
            match received {
                Ok(Some(notification)) => inner.drop_tenant(notification.payload()),
                // The connection was lost (and may have missed notifications).
                Ok(None) | Err(_) => {
                    inner.listening.store(false, Ordering::SeqCst);
                    inner.drop_all();
                    break;
                }
            }
        }
    }
}

fn fresh<T: Clone>(entry: Option<&(T, Instant)>) -> Option<T> {
    entry
        .filter(|(_, at)| at.elapsed() < TTL)
        .map(|(v, _)| v.clone())
}

#[async_trait]
impl TenantDirectory for CachedDirectory {
    async fn tenant(&self, id: &TenantId) -> Result<Option<TenantView>, StoreError> {
        let listening = self.is_listening();
        if listening {
            if let Some(view) = fresh(self.inner.entries().tenants.get(id)) {
                return Ok(Some(view));
            }
        }
        let generation = self.inner.generation.load(Ordering::SeqCst);
        let view = self.source.tenant(id).await?;
        if let (true, Some(view)) = (listening, &view) {
            self.inner
                .remember(generation, |e| &mut e.tenants, id.clone(), view.clone());
        }
        Ok(view)
    }

    async fn api_keys(&self, id: &TenantId) -> Result<Vec<ApiKeyView>, StoreError> {
        let listening = self.is_listening();
        if listening {
            let cached = fresh(self.inner.entries().key_lists.get(id));
            if let Some(keys) = cached {
                return Ok(keys.to_vec());
            }
        }
        let generation = self.inner.generation.load(Ordering::SeqCst);
        let keys: Arc<[ApiKeyView]> = self.source.api_keys(id).await?.into();
        if listening {
            self.inner
                .remember(generation, |e| &mut e.key_lists, id.clone(), keys.clone());
        }
        Ok(keys.to_vec())
    }

    async fn key_by_hash(&self, hash: &KeyedHash) -> Result<Option<ApiKeyView>, StoreError> {
        let listening = self.is_listening();
        if listening {
            if let Some(key) = fresh(self.inner.entries().keys.get(hash.as_hex())) {
                return Ok(Some(key));
            }
        }
        let generation = self.inner.generation.load(Ordering::SeqCst);
        let key = self.source.key_by_hash(hash).await?;
        if let (true, Some(key)) = (listening, &key) {
            self.inner.remember(
                generation,
                |e| &mut e.keys,
                hash.as_hex().to_owned(),
                key.clone(),
            );
        }
        Ok(key)
    }

    fn invalidate(&self, tenant: &TenantId) {
        self.inner.drop_tenant(tenant.as_str());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inner() -> Inner {
        Inner {
            entries: Mutex::new(Entries::default()),
            generation: AtomicU64::new(0),
            listening: AtomicBool::new(true),
        }
    }

    fn key(tenant: &str, id: &str) -> ApiKeyView {
        ApiKeyView {
            id: twofold_domain::ApiKeyId::parse(id).unwrap(),
            tenant_id: TenantId::parse(tenant).unwrap(),
            role: twofold_domain::Role::App,
            label: "k".into(),
            created_at: chrono::Utc::now(),
            revoked_at: None,
        }
    }

    #[test]
    fn a_read_that_started_before_a_drop_is_not_stored() {
        let cache = inner();
        let before = cache.generation.load(Ordering::SeqCst);
        // The key is revoked (and dropped) while its old state is being fetched ...
        cache.drop_tenant("acme");
        cache.remember(
            before,
            |e| &mut e.keys,
            "h1".into(),
            key("acme", "abcdefgh"),
        );
        // ... so the stale answer is not kept; a read that starts afterwards is.
        assert!(cache.entries().keys.is_empty());
        let after = cache.generation.load(Ordering::SeqCst);
        cache.remember(after, |e| &mut e.keys, "h1".into(), key("acme", "abcdefgh"));
        assert_eq!(cache.entries().keys.len(), 1);
    }

    #[test]
    fn dropping_a_tenant_forgets_only_its_keys() {
        let cache = inner();
        let g = cache.generation.load(Ordering::SeqCst);
        cache.remember(g, |e| &mut e.keys, "a".into(), key("acme", "abcdefgh"));
        cache.remember(g, |e| &mut e.keys, "b".into(), key("globex", "ijklmnop"));
        cache.drop_tenant("acme");
        let keys: Vec<String> = cache.entries().keys.keys().cloned().collect();
        assert_eq!(keys, ["b"]);
    }
}
