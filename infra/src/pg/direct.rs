//! A few PostgreSQL connections for the hot read path, without sqlx's ping on release.
//!
//! sqlx 0.8's pool sends a `Sync` and waits for the answer every time a connection goes back
//! to it (to catch connections left mid-query by a dropped future). On a machine where the
//! service and PostgreSQL share the cores, that round trip costs about as much CPU as the
//! query it follows, on both sides. Aggregate loads (one per command) take their connection
//! from here instead: a connection goes back only when its query finished; if the future is
//! dropped midway or the query fails, the connection is closed with it instead, so a
//! connection in an unknown state is never reused, which is what the ping is for.

use std::sync::Mutex;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::{ConnectOptions, PgPool};
use tokio::sync::{Semaphore, SemaphorePermit};

/// How long a caller waits for a free connection before failing (as the pool's acquire does).
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);

/// Up to `size` connections, opened on demand, reused while healthy.
pub struct DirectConnections {
    options: PgConnectOptions,
    idle: Mutex<Vec<PgConnection>>,
    slots: Semaphore,
}

impl DirectConnections {
    /// Connections to the same database as `pool`, at most `size` at once.
    pub fn new(pool: &PgPool, size: usize) -> Self {
        Self {
            options: (*pool.connect_options()).clone(),
            idle: Mutex::new(Vec::new()),
            slots: Semaphore::new(size.max(1)),
        }
    }

    /// A connection for one query: an idle one, or a new one.
    pub async fn acquire(&self) -> Result<Lease<'_>, sqlx::Error> {
        let slot = tokio::time::timeout(ACQUIRE_TIMEOUT, self.slots.acquire())
            .await
            .map_err(|_| sqlx::Error::PoolTimedOut)?
            .map_err(|_| sqlx::Error::PoolClosed)?;
        let reused = self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop();
        let conn = match reused {
            Some(conn) => conn,
            // Bounded like the wait for a slot: a database host that drops packets must not
            // hold a request for the kernel's connect timeout (minutes).
            None => tokio::time::timeout(ACQUIRE_TIMEOUT, self.options.connect())
                .await
                .map_err(|_| sqlx::Error::PoolTimedOut)??,
        };
        Ok(Lease {
            owner: self,
            conn,
            _slot: slot,
        })
    }
}

/// A connection on loan. [`Lease::finish`] gives it back; dropping the lease closes it.
pub struct Lease<'a> {
    owner: &'a DirectConnections,
    conn: PgConnection,
    _slot: SemaphorePermit<'a>,
}

impl Lease<'_> {
    pub fn conn(&mut self) -> &mut PgConnection {
        &mut self.conn
    }

    /// Gives the connection back for reuse: call only after its query completed.
    pub fn finish(self) {
        self.owner
            .idle
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(self.conn);
    }
}
