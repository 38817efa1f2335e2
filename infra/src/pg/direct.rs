//! A few PostgreSQL connections for the hot paths (aggregate loads, event appends), without
//! sqlx's ping on release.
//!
//! sqlx 0.8's pool sends a `Sync` and waits for the answer every time a connection goes back
//! to it (to catch connections left mid-query by a dropped future). On a machine where the
//! service and PostgreSQL share the cores, that round trip costs about as much CPU as the
//! query it follows, on both sides. Here a connection goes back only when its query finished;
//! if the future is dropped midway or the query fails without an answer, the connection is
//! closed with it instead, so a connection in an unknown state is never reused, which is what
//! the ping is for. A connection idle for a while is pinged before use instead: the server may
//! have restarted meanwhile.
//!
//! Every new connection takes the next number of an epoch counter, which the owner may share
//! between several sets (see `crate::event_store`): a state read before a connection was
//! opened may predate a restart of the server, which can lose recent commits.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::{ConnectOptions, Connection, PgPool};
use tokio::sync::{Semaphore, SemaphorePermit};

/// How long a caller waits for a free connection before failing (as the pool's acquire does).
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);

/// A connection idle longer than this is pinged before it is used again.
pub const IDLE_CHECK: Duration = Duration::from_secs(2);

struct Idle {
    conn: PgConnection,
    opened: u64,
    since: Instant,
}

/// The settings the hot path's connections ask for ([`DirectConnections::new`]), the one to
/// keep longest first.
pub const HOT_PATH_SETTINGS: [(&str, &str); 3] = [
    ("enable_seqscan", "off"),
    ("plan_cache_mode", "force_generic_plan"),
    ("jit", "off"),
];

/// Up to `size` connections, opened on demand, reused while healthy.
pub struct DirectConnections {
    /// Connect options with every setting, then with fewer (the first ones are kept longest),
    /// and last the pool's own, for a server or pooler that refuses settings.
    tiers: Vec<PgConnectOptions>,
    /// The tier new connections use: it only moves down, past tiers refused.
    tier: AtomicUsize,
    idle: Mutex<Vec<Idle>>,
    slots: Semaphore,
    epoch: Arc<AtomicU64>,
}

impl DirectConnections {
    /// Connections to the same database as `pool`, at most `size` at once.
    ///
    /// Their statements find rows by key. Without sequential scans, a connection that prepared
    /// one while a table was still small (a new deployment, the bench's first seconds) does not
    /// keep that plan's scan of the whole table once it has grown: PostgreSQL re-plans only
    /// after the next autoanalyze, and meanwhile an append took 5 to 40 ms instead of 0.1.
    ///
    /// Their plans are generic, made once per connection: PostgreSQL's own choice planned the
    /// append afresh at every call (its array arguments make each custom plan look cheaper),
    /// and planning cost more than running it. No JIT: a scan that cannot be avoided (a
    /// trigger's read of a one-row table) costs a disabled sequential scan's estimate, which
    /// would have every call compiled (decision 173).
    pub fn new(pool: &PgPool, size: usize) -> Self {
        Self::with_settings(pool, size, &HOT_PATH_SETTINGS)
    }

    /// Connections that ask for `settings` when they connect. A server or pooler that refuses
    /// them (PgBouncer refuses settings it does not track) gets connections with fewer: the
    /// last setting is dropped first, then the next, down to none; the log says so each time.
    /// An operator who lets only the first through a pooler keeps that one.
    pub fn with_settings(pool: &PgPool, size: usize, settings: &[(&str, &str)]) -> Self {
        let plain = (*pool.connect_options()).clone();
        let mut tiers: Vec<_> = (1..=settings.len())
            .rev()
            .map(|n| plain.clone().options(settings[..n].iter().copied()))
            .collect();
        tiers.push(plain);
        Self {
            tiers,
            tier: AtomicUsize::new(0),
            idle: Mutex::new(Vec::new()),
            slots: Semaphore::new(size.max(1)),
            epoch: Arc::default(),
        }
    }

    /// Whether its connections have at least their first setting: false once a server or
    /// pooler refused even that one (a sign of a transaction pooler, whose connections can
    /// outlive a failover).
    pub fn tuned(&self) -> bool {
        self.tiers.len() == 1 || self.tier.load(Ordering::Relaxed) + 1 < self.tiers.len()
    }

    /// Numbers new connections from `epoch`, shared with other sets.
    pub fn sharing_epoch(mut self, epoch: Arc<AtomicU64>) -> Self {
        self.epoch = epoch;
        self
    }

    /// A connection for one query: an idle one, or a new one.
    pub async fn acquire(&self) -> Result<Lease<'_>, sqlx::Error> {
        let slot = tokio::time::timeout(ACQUIRE_TIMEOUT, self.slots.acquire())
            .await
            .map_err(|_| sqlx::Error::PoolTimedOut)?
            .map_err(|_| sqlx::Error::PoolClosed)?;
        let reused = self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop();
        if let Some(mut idle) = reused {
            let alive = idle.since.elapsed() < IDLE_CHECK
                || tokio::time::timeout(ACQUIRE_TIMEOUT, idle.conn.ping())
                    .await
                    .is_ok_and(|pinged| pinged.is_ok());
            if alive {
                return Ok(Lease {
                    owner: self,
                    conn: idle.conn,
                    opened: idle.opened,
                    _slot: slot,
                });
            }
        }
        let conn = self.connect().await?;
        let opened = self.epoch.fetch_add(1, Ordering::SeqCst) + 1;
        Ok(Lease {
            owner: self,
            conn,
            opened,
            _slot: slot,
        })
    }
}

impl DirectConnections {
    /// A new connection, with as many settings as were not refused before. Bounded like the
    /// wait for a slot: a database host that drops packets must not hold a request for the
    /// kernel's connect timeout (minutes).
    async fn connect(&self) -> Result<PgConnection, sqlx::Error> {
        let from = self.tier.load(Ordering::Relaxed);
        let mut tier = from;
        let mut first_refusal = None;
        loop {
            match bounded_connect(&self.tiers[tier]).await {
                Err(sqlx::Error::Database(refused))
                    if tier + 1 < self.tiers.len() && refuses_settings(&*refused) =>
                {
                    first_refusal.get_or_insert_with(|| refused.to_string());
                    tier += 1;
                }
                // Fewer settings connect: the refusal was of settings, and this instance keeps
                // to those from now on. Only a connection made proves it; an outage refuses
                // every tier alike and moves nothing.
                Ok(conn) if tier > from => {
                    let moved = self.tier.fetch_max(tier, Ordering::Relaxed) < tier;
                    if moved {
                        tracing::warn!(
                            error = first_refusal.unwrap_or_default(),
                            settings_kept = self.tiers.len() - tier - 1,
                            "the database refused this instance's connection settings (a \
                             pooler?): hot-path statements run with fewer (docs/operations.md)"
                        );
                    }
                    return Ok(conn);
                }
                connected => return connected,
            }
        }
    }
}

/// Whether PostgreSQL refused a setting (by name, value or timing), or a pooler refused it as
/// a start-up parameter. PgBouncer answers 08P01 for its own failures too (a server it cannot
/// log in to, too many clients): only its message tells a refused parameter apart.
fn refuses_settings(error: &dyn sqlx::error::DatabaseError) -> bool {
    match error.code().as_deref() {
        Some("42704" | "22023" | "55P02") => true,
        Some("08P01") => error.message().contains("unsupported startup parameter"),
        _ => false,
    }
}

async fn bounded_connect(options: &PgConnectOptions) -> Result<PgConnection, sqlx::Error> {
    tokio::time::timeout(ACQUIRE_TIMEOUT, options.connect())
        .await
        .map_err(|_| sqlx::Error::PoolTimedOut)?
}

/// A connection on loan. [`Lease::finish`] gives it back; dropping the lease closes it.
pub struct Lease<'a> {
    owner: &'a DirectConnections,
    conn: PgConnection,
    opened: u64,
    _slot: SemaphorePermit<'a>,
}

impl Lease<'_> {
    pub fn conn(&mut self) -> &mut PgConnection {
        &mut self.conn
    }

    /// The epoch number this connection took when it was opened.
    pub fn opened(&self) -> u64 {
        self.opened
    }

    /// Gives the connection back for reuse: call only after its query completed.
    pub fn finish(self) {
        self.owner
            .idle
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(Idle {
                conn: self.conn,
                opened: self.opened,
                since: Instant::now(),
            });
    }
}
