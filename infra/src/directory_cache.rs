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

    fn drop_tenant(&self, tenant: &str) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        let mut entries = self.entries();
        entries.tenants.retain(|id, _| id.as_str() != tenant);
        entries
            .keys
            .retain(|_, (k, _)| k.tenant_id.as_str() != tenant);
    }

    fn drop_all(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        *self.entries() = Entries::default();
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
        if let Some(view) = &view {
            if listening && self.inner.generation.load(Ordering::SeqCst) == generation {
                let mut entries = self.inner.entries();
                if entries.tenants.len() >= MAX_ENTRIES {
                    entries.tenants.clear();
                }
                entries
                    .tenants
                    .insert(id.clone(), (view.clone(), Instant::now()));
            }
        }
        Ok(view)
    }

    async fn api_keys(&self, id: &TenantId) -> Result<Vec<ApiKeyView>, StoreError> {
        self.source.api_keys(id).await
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
        if let Some(key) = &key {
            if listening && self.inner.generation.load(Ordering::SeqCst) == generation {
                let mut entries = self.inner.entries();
                if entries.keys.len() >= MAX_ENTRIES {
                    entries.keys.clear();
                }
                entries
                    .keys
                    .insert(hash.as_hex().to_owned(), (key.clone(), Instant::now()));
            }
        }
        Ok(key)
    }

    fn invalidate(&self, tenant: &TenantId) {
        self.inner.drop_tenant(tenant.as_str());
    }
}
