//! The cluster's lifecycle: start (initialise on first use, or reuse a running server, or start
//! again after a crash) and stop.

mod init;
mod launch;
mod reuse;
mod standby;
#[cfg(test)]
mod tests;

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};

use tracing::{info, warn};

use crate::auth::{self, Password};
use crate::binaries::{read_pg_version, Binaries};
use crate::command::{combined_output, log_tail, run};
use crate::error::{io_err, LocalPgError};
use crate::paths::{check_shell_safe, lock_folder, socket_dir_for};
use crate::run_as::RunAs;

#[cfg(test)]
pub(crate) use reuse::accepts_tcp;

/// Database superuser created by initdb.
const DB_SUPERUSER: &str = "postgres";

/// How long pg_ctl may wait for a start or stop, and we for a starting server.
pub(crate) const WAIT_SECS: u64 = 60;

/// Options for the cluster.
#[derive(Debug, Clone, Default)]
pub struct LocalPgOptions {
    /// Trade durability for speed (fsync=off, synchronous_commit=off, full_page_writes=off): for tests only.
    pub ephemeral: bool,
    /// Load `pg_stat_statements` (the benchmark's `--statement-stats`: where PostgreSQL's
    /// time goes, statement by statement).
    pub statement_stats: bool,
}

/// A private PostgreSQL server that this process started or found running on its folder.
///
/// It exists so callers get a database without any configuration. Dropping it does not stop the
/// server, because another handle (in this process or another one) may be reusing it: call
/// [`LocalPostgres::stop`], or [`LocalPostgres::stop_when_process_exits`] for a safety net.
#[derive(Debug)]
pub struct LocalPostgres {
    dir: PathBuf,
    data_dir: PathBuf,
    log_path: PathBuf,
    socket_dir: PathBuf,
    port: u16,
    password: Password,
    pub(crate) binaries: Binaries,
    pub(crate) run_as: RunAs,
}

impl LocalPostgres {
    /// Initialise (on first use) and start a cluster whose files live in `dir` (data in
    /// `dir/data`, socket in `dir/run`, log in `dir/postgres.log`). If a server from a previous
    /// start is still running on that data folder, reuse it (read its port from
    /// data/postmaster.pid, line 4). If the data folder exists but the server is not running (e.g.
    /// after a crash, stale postmaster.pid), start it again on a new free port. Blocking; call
    /// from start-up code or spawn_blocking.
    pub fn start(dir: &Path, options: &LocalPgOptions) -> Result<LocalPostgres, LocalPgError> {
        let run_as = RunAs::detect()?;
        let dir_existed = dir.exists();
        fs::create_dir_all(dir).map_err(io_err("create the cluster folder", dir))?;
        let dir = fs::canonicalize(dir).map_err(io_err("resolve the cluster folder", dir))?;
        check_shell_safe(&dir)?;
        if run_as.is_postgres() {
            run_as.check_reachable(&dir)?;
        }

        // Serialise concurrent starts (threads or processes) on this folder.
        let _lock = lock_folder(&dir)?;
        let stored = auth::load(&dir).map_err(io_err("read the password file in", &dir))?;
        let new_password = stored.is_none();

        let data_dir = dir.join("data");
        let data_version = read_pg_version(&data_dir)?;
        let binaries = Binaries::find(data_version.as_deref(), &data_dir)?;
        let mut pg = LocalPostgres {
            socket_dir: socket_dir_for(&dir),
            log_path: dir.join("postgres.log"),
            data_dir,
            dir,
            port: 0,
            password: stored.unwrap_or_else(Password::generate),
            binaries,
            run_as,
        };

        if let Some(port) = pg.reusable_port()? {
            pg.port = port;
            if new_password {
                // Started by an older Twofold with trust authentication: the URL's password is
                // ignored until the next start, which sets it while the server is stopped.
                warn!(
                    data_dir = %pg.data_dir.display(),
                    "the running private PostgreSQL server was started by an older Twofold and \
                     accepts connections without a password until it is restarted"
                );
            }
            info!(
                data_dir = %pg.data_dir.display(),
                port,
                "reusing the private PostgreSQL server already running on this folder"
            );
            return Ok(pg);
        }

        pg.prepare_files(!dir_existed)?;
        if data_version.is_none() {
            pg.init(options)?;
        } else if new_password {
            pg.set_password_offline()?;
        }
        if new_password {
            auth::store(&pg.dir, &pg.password)
                .map_err(io_err("write the password file in", &pg.dir))?;
        }
        pg.write_hba()?;
        pg.port = pg.launch(options)?;
        info!(
            data_dir = %pg.data_dir.display(),
            port = pg.port,
            log = %pg.log_path.display(),
            ephemeral = options.ephemeral,
            "started a private PostgreSQL server"
        );
        Ok(pg)
    }

    /// TCP port the server listens on (127.0.0.1 only).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Connection URL for a database on this cluster, user `postgres` with its password, e.g.
    /// postgres://postgres:PASSWORD@127.0.0.1:PORT/DB. Holds the password: never log it.
    pub fn url(&self, database: &str) -> String {
        format!(
            "postgres://{DB_SUPERUSER}:{}@127.0.0.1:{}/{}",
            self.password.expose(),
            self.port,
            percent_encode(database)
        )
    }

    /// Connection URL for a database on this cluster over its Unix-domain socket: the same
    /// server as [`LocalPostgres::url`], without the TCP/IP stack on every round trip.
    pub fn socket_url(&self, database: &str) -> String {
        format!(
            "postgres://{DB_SUPERUSER}:{}@localhost:{}/{}?host={}",
            self.password.expose(),
            self.port,
            percent_encode(database),
            percent_encode(&self.socket_dir.to_string_lossy())
        )
    }

    /// The superuser's password (for tools such as `pgbench`, through `PGPASSWORD`).
    pub fn password(&self) -> &Password {
        &self.password
    }

    /// The directory holding the server's Unix-domain socket (`.s.PGSQL.<port>`).
    pub fn socket_dir(&self) -> &Path {
        &self.socket_dir
    }

    /// Stop the server (pg_ctl stop -m fast, waiting). Idempotent.
    pub fn stop(&self) -> Result<(), LocalPgError> {
        self.stop_in("fast")
    }

    /// Stops the server the way a crash does (`pg_ctl stop -m immediate`): no checkpoint, the
    /// next start runs crash recovery. For fault-injection runs (`twofold chaos`).
    pub fn stop_immediately(&self) -> Result<(), LocalPgError> {
        self.stop_in("immediate")
    }

    fn stop_in(&self, mode: &str) -> Result<(), LocalPgError> {
        let _lock = lock_folder(&self.dir)?;
        let mut cmd = self.run_as.command(&self.binaries.pg_ctl);
        cmd.arg("stop")
            .arg("-D")
            .arg(&self.data_dir)
            .args(["-m", mode, "-w", "-t"])
            .arg(WAIT_SECS.to_string());
        let out = run(cmd)?;
        if out.status.success() {
            info!(data_dir = %self.data_dir.display(), "stopped the private PostgreSQL server");
        } else if self.is_running()? {
            return Err(LocalPgError::StopFailed {
                data_dir: self.data_dir.clone(),
                output: combined_output(&out),
                log: self.log_path.clone(),
                log_tail: log_tail(&self.log_path),
            });
        }
        if self.socket_dir != self.dir.join("run") {
            // Best effort: only succeeds once the server has removed its socket.
            let _ = fs::remove_dir(&self.socket_dir);
        }
        Ok(())
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }
}

/// Encode a database name for the path of a URL.
fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}
