//! A private, throwaway PostgreSQL cluster run from the binaries installed on the machine.
//!
//! Twofold's zero-configuration mode and its test harness both need a database without asking
//! anyone to install, configure or share a server. This module gives each of them a cluster of
//! its own, in a folder of the caller's choosing, on a free port on 127.0.0.1, so it never
//! disturbs (or depends on) a system PostgreSQL that may already listen on 5432.
//!
//! PostgreSQL refuses to run as root, and CI runs as root: then every PostgreSQL command runs as
//! the `postgres` system user through `runuser`, on files that user owns.

use std::ffi::{CString, OsString};
use std::fmt::Write as _;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use tracing::{info, warn};

use super::local_auth::{self, Password};

/// System user that runs PostgreSQL when this process is root.
const OS_USER: &str = "postgres";
/// Database superuser created by initdb.
const DB_SUPERUSER: &str = "postgres";
/// Where Debian installs one `bin` folder per PostgreSQL major version.
const VERSIONED_BIN_ROOT: &str = "/usr/lib/postgresql";
/// Unix socket paths must fit in `sun_path` (108 bytes); stay well below it.
const MAX_SOCKET_PATH: usize = 100;
/// Longest name PostgreSQL gives the socket file inside the socket folder.
const SOCKET_FILE_SUFFIX: &str = "/.s.PGSQL.65535";
/// How long pg_ctl may wait for a start or stop, and we for a starting server.
const WAIT_SECS: u64 = 60;
/// How much of postgres.log an error quotes.
const LOG_TAIL_LINES: usize = 20;
/// How many free ports to try when another process takes the one we picked first.
const PORT_ATTEMPTS: usize = 3;
/// Settings that trade durability for speed (see [`LocalPgOptions::ephemeral`]).
const EPHEMERAL_SETTINGS: &str = " -c fsync=off -c synchronous_commit=off -c full_page_writes=off";

/// Detached watchdog: waits (as the caller, who may signal the process) until process `$1` is
/// gone or a zombie, then runs the rest of its arguments (the stop command). The subshell is
/// put in the background with its output closed so the caller does not wait for it.
const WATCHDOG_SCRIPT: &str = r#"pid=$1
shift
(
  trap '' HUP INT
  while kill -0 "$pid" 2>/dev/null &&
    [ "$(sed -n 's/.*) \([A-Za-z]\).*/\1/p' "/proc/$pid/stat" 2>/dev/null)" != Z ]; do
    sleep 1
  done
  exec "$@"
) </dev/null >/dev/null 2>&1 &
"#;

/// Why the private cluster could not be started or stopped. Whoever reads one is usually setting
/// up a machine or CI, so every message says what to do (e.g. "PostgreSQL binaries not found:
/// install them with `apt-get install -y postgresql`").
#[derive(Debug, thiserror::Error)]
pub enum LocalPgError {
    /// No PostgreSQL installation to run the cluster from.
    #[error(
        "PostgreSQL binaries (initdb, pg_ctl) not found on PATH or in {VERSIONED_BIN_ROOT}/*/bin: \
         install them with `apt-get install -y postgresql`"
    )]
    BinariesNotFound,

    /// The existing data folder was made by a PostgreSQL major version that is not installed.
    #[error(
        "the data in {} was created by PostgreSQL {data_version} but the installed binaries are \
         PostgreSQL {binary_version}: install the matching server with \
         `apt-get install -y postgresql-{data_version}`, or delete {} to start afresh",
        data_dir.display(), data_dir.display()
    )]
    VersionMismatch {
        /// The cluster's data folder.
        data_dir: PathBuf,
        /// Major version recorded in the data folder's PG_VERSION.
        data_version: String,
        /// Major version of the binaries found.
        binary_version: String,
    },

    /// Running as root, PostgreSQL needs the `postgres` user, which does not exist.
    #[error(
        "running as root, but there is no `postgres` system user to run PostgreSQL as (it refuses \
         to run as root): install the server with `apt-get install -y postgresql`, which creates \
         the user, or run as an unprivileged user"
    )]
    NoPostgresUser,

    /// The `postgres` user could not be looked up.
    #[error(
        "could not look up the `postgres` system user: {0}; check /etc/passwd and /etc/nsswitch.conf"
    )]
    UserLookup(#[source] io::Error),

    /// Running as root, `runuser` is needed to drop to the `postgres` user.
    #[error(
        "running as root, `runuser` is needed to run PostgreSQL as the `postgres` user, but it was \
         not found: install it with `apt-get install -y util-linux`"
    )]
    RunuserNotFound,

    /// Running as root, the `postgres` user cannot reach the cluster folder.
    #[error(
        "the `postgres` user (which runs PostgreSQL because this process is root) cannot reach {}: \
         it may not enter {}; put the cluster under a folder it can traverse (e.g. /tmp or \
         /var/lib), or allow it with `chmod o+x {}`",
        dir.display(), blocker.display(), blocker.display()
    )]
    NotTraversable {
        /// The cluster folder asked for.
        dir: PathBuf,
        /// The first folder on the way that the `postgres` user may not enter.
        blocker: PathBuf,
    },

    /// pg_ctl passes paths through a shell, which these characters would break.
    #[error(
        "cannot put the cluster in {}: its path contains {character:?}, which pg_ctl would pass \
         through a shell; choose a folder whose path has no quotes, `$`, backquotes, backslashes \
         or line breaks",
        path.display()
    )]
    UnsafePath {
        /// The offending path.
        path: PathBuf,
        /// The first offending character.
        character: char,
    },

    /// The data folder is in use for something other than a cluster.
    #[error(
        "{} exists and is not empty, but holds no PostgreSQL cluster (no PG_VERSION file), \
         perhaps after an interrupted initdb: remove it (`rm -rf {}`) or use another folder",
        data_dir.display(), data_dir.display()
    )]
    NotACluster {
        /// The cluster's data folder.
        data_dir: PathBuf,
    },

    /// A folder that must be private (data, socket) belongs to someone else or is writable by others.
    #[error(
        "{} exists but is not a private folder of this user (or of `postgres`): remove it \
         (`rm -rf {}`) or give it the right owner and `chmod 700` it, then try again",
        path.display(), path.display()
    )]
    PrivateDirUnsafe {
        /// The folder.
        path: PathBuf,
    },

    /// A file operation on the cluster's files failed.
    #[error(
        "could not {action} {}: {source}; check that folder's owner, permissions and free disk space",
        path.display()
    )]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file or folder concerned.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },

    /// No TCP port could be found for the server.
    #[error(
        "could not find a free TCP port on 127.0.0.1: {0}; check that the loopback interface is up"
    )]
    NoFreePort(#[source] io::Error),

    /// A program could not be run at all.
    #[error("could not run `{command}`: {source}; check that it is installed and executable")]
    Spawn {
        /// The command line.
        command: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },

    /// A helper command (pg_ctl --version or status, the watchdog) failed.
    #[error(
        "`{command}` failed ({status}): {output}; check the PostgreSQL installation \
         (`apt-get install --reinstall -y postgresql`) and the folder's permissions"
    )]
    CommandFailed {
        /// The command line.
        command: String,
        /// How it ended.
        status: String,
        /// What it printed.
        output: String,
    },

    /// initdb could not create the cluster.
    #[error(
        "initdb could not create the cluster in {} ({status}): {output}; fix the cause above, \
         then remove {} and try again",
        data_dir.display(), data_dir.display()
    )]
    InitFailed {
        /// The cluster's data folder.
        data_dir: PathBuf,
        /// How initdb ended.
        status: String,
        /// What initdb printed.
        output: String,
    },

    /// The server did not start.
    #[error(
        "PostgreSQL did not start on 127.0.0.1:{port} (pg_ctl: {output}); fix the cause shown in \
         {}, whose last lines are:\n{log_tail}",
        log.display()
    )]
    StartFailed {
        /// The port it was asked to use.
        port: u16,
        /// What pg_ctl printed.
        output: String,
        /// The server log.
        log: PathBuf,
        /// The last lines of the server log.
        log_tail: String,
    },

    /// A server runs on the data folder but does not answer.
    #[error(
        "a PostgreSQL server (PID {pid}) runs on {} but does not accept connections on \
         127.0.0.1:{port}: stop it (`kill {pid}`) and try again; last lines of {}:\n{log_tail}",
        data_dir.display(), log.display()
    )]
    NotResponding {
        /// The postmaster's PID.
        pid: u32,
        /// The port from postmaster.pid (0 if not recorded yet).
        port: u16,
        /// The cluster's data folder.
        data_dir: PathBuf,
        /// The server log.
        log: PathBuf,
        /// The last lines of the server log.
        log_tail: String,
    },

    /// The server would not stop.
    #[error(
        "could not stop PostgreSQL on {} (pg_ctl: {output}): kill its postmaster (PID on the first \
         line of {}/postmaster.pid); last lines of {}:\n{log_tail}",
        data_dir.display(), data_dir.display(), log.display()
    )]
    StopFailed {
        /// The cluster's data folder.
        data_dir: PathBuf,
        /// What pg_ctl printed.
        output: String,
        /// The server log.
        log: PathBuf,
        /// The last lines of the server log.
        log_tail: String,
    },

    /// The process to watch cannot be a real process.
    #[error("cannot watch process {0}: not a valid PID; pass the PID of a running process, normally std::process::id()")]
    InvalidPid(u32),
}

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
    binaries: Binaries,
    run_as: RunAs,
}

impl LocalPostgres {
    /// Initialise (on first use) and start a cluster whose files live in `dir` (data in `dir/data`, socket in `dir/run`, log in `dir/postgres.log`). If a server from a previous start is still running on that data folder, reuse it (read its port from data/postmaster.pid, line 4). If the data folder exists but the server is not running (e.g. after a crash, stale postmaster.pid), start it again on a new free port. Blocking; call from start-up code or spawn_blocking.
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
        let stored = local_auth::load(&dir).map_err(io_err("read the password file in", &dir))?;
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
            local_auth::store(&pg.dir, &pg.password)
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
        let _lock = lock_folder(&self.dir)?;
        let mut cmd = self.run_as.command(&self.binaries.pg_ctl);
        cmd.arg("stop")
            .arg("-D")
            .arg(&self.data_dir)
            .args(["-m", "fast", "-w", "-t"])
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

    /// Make sure the server stops when process `pid` (normally std::process::id()) exits, even if it is killed or panics: spawn a small detached watchdog (e.g. `sh -c 'while kill -0 PID 2>/dev/null; do sleep 1; done; <pg_ctl stop -m immediate ...>'`, run as the right user) so a test run never leaves a server behind.
    ///
    /// The watchdog runs as the caller (so it may signal `pid`, which the `postgres` user could
    /// not when the caller is root) and only the stop command runs as the `postgres` user. It
    /// stops whatever server runs on this data folder at that time.
    pub fn stop_when_process_exits(&self, pid: u32) -> Result<(), LocalPgError> {
        if pid == 0 || i32::try_from(pid).is_err() {
            return Err(LocalPgError::InvalidPid(pid));
        }
        let mut cmd = Command::new("/bin/sh");
        cmd.arg("-c")
            .arg(WATCHDOG_SCRIPT)
            .arg("twofold-pg-watchdog")
            .arg(pid.to_string())
            .args(self.run_as.prefix())
            .arg(&self.binaries.pg_ctl)
            .arg("stop")
            .arg("-D")
            .arg(&self.data_dir)
            .args(["-m", "immediate", "-w", "-t"])
            .arg(WAIT_SECS.to_string())
            .current_dir("/")
            .stdin(Stdio::null())
            // Its own process group, so a Ctrl-C aimed at the test run does not kill it.
            .process_group(0);
        let out = run(cmd)?;
        if !out.status.success() {
            return Err(LocalPgError::CommandFailed {
                command: "sh -c <watchdog>".to_owned(),
                status: out.status.to_string(),
                output: combined_output(&out),
            });
        }
        info!(
            pid,
            data_dir = %self.data_dir.display(),
            "the private PostgreSQL server will be stopped when process {pid} exits"
        );
        Ok(())
    }

    /// The data directory.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// Port of a live server already running on the data folder, waiting while it starts up.
    fn reusable_port(&self) -> Result<Option<u16>, LocalPgError> {
        let deadline = Instant::now() + Duration::from_secs(WAIT_SECS);
        loop {
            let Some(postmaster) = self.live_postmaster()? else {
                return Ok(None);
            };
            if let Some(port) = postmaster.port.filter(|&port| accepts_tcp(port)) {
                return Ok(Some(port));
            }
            if Instant::now() >= deadline {
                return Err(LocalPgError::NotResponding {
                    pid: postmaster.pid,
                    port: postmaster.port.unwrap_or(0),
                    data_dir: self.data_dir.clone(),
                    log: self.log_path.clone(),
                    log_tail: log_tail(&self.log_path),
                });
            }
            thread::sleep(Duration::from_millis(250));
        }
    }

    /// The postmaster named by data/postmaster.pid, if it is alive. A file left by a dead server
    /// (or naming a PID since reused by another program) is removed, so the next start is clean.
    fn live_postmaster(&self) -> Result<Option<Postmaster>, LocalPgError> {
        let pid_file = self.data_dir.join("postmaster.pid");
        let text = match fs::read_to_string(&pid_file) {
            Ok(text) => text,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(LocalPgError::Io {
                    action: "read",
                    path: pid_file,
                    source,
                })
            }
        };
        let lines: Vec<&str> = text.lines().collect();
        let Some(pid) = lines
            .first()
            .and_then(|line| line.trim().parse::<u32>().ok())
            .filter(|&pid| pid > 0)
        else {
            // Empty or garbled: leave it for postgres, whose error says what to do.
            return Ok(None);
        };
        let port = lines
            .get(3)
            .and_then(|line| line.trim().parse::<u16>().ok())
            .filter(|&port| port > 0);
        let alive = match self.process_runs_in_data_dir(pid) {
            Some(true) => true,
            Some(false) => {
                warn!(
                    pid,
                    file = %pid_file.display(),
                    "removing a stale postmaster.pid left by a server that is no longer running"
                );
                if let Err(e) = fs::remove_file(&pid_file) {
                    warn!(error = %e, "could not remove the stale postmaster.pid");
                }
                false
            }
            None => self.is_running()?,
        };
        Ok(alive.then_some(Postmaster { pid, port }))
    }

    /// Whether process `pid` is alive and working in our data folder (a postmaster's working
    /// folder is its data folder), or `None` when /proc cannot tell (e.g. another user's process).
    fn process_runs_in_data_dir(&self, pid: u32) -> Option<bool> {
        if !Path::new("/proc/self/cwd").exists() {
            return None;
        }
        match fs::read_link(format!("/proc/{pid}/cwd")) {
            Ok(cwd) => {
                let data_dir =
                    fs::canonicalize(&self.data_dir).unwrap_or_else(|_| self.data_dir.clone());
                Some(cwd == data_dir)
            }
            // Gone, or a zombie (whose cwd can no longer be read).
            Err(e) if e.kind() == io::ErrorKind::NotFound => Some(false),
            Err(_) => None,
        }
    }

    /// `pg_ctl status`: whether a server runs on the data folder.
    fn is_running(&self) -> Result<bool, LocalPgError> {
        let mut cmd = self.run_as.command(&self.binaries.pg_ctl);
        cmd.arg("status").arg("-D").arg(&self.data_dir);
        let command = describe(&cmd);
        let out = run(cmd)?;
        match out.status.code() {
            Some(0) => Ok(true),
            // 3: no server running; 4: no accessible data folder.
            Some(3) | Some(4) => Ok(false),
            _ => Err(LocalPgError::CommandFailed {
                command,
                status: out.status.to_string(),
                output: combined_output(&out),
            }),
        }
    }

    /// Create the folders and log file the server needs, owned by whoever runs it.
    fn prepare_files(&self, dir_was_created: bool) -> Result<(), LocalPgError> {
        if let Some((uid, gid)) = self.run_as.owner() {
            // Only a folder we created is handed over: a pre-existing one (maybe /tmp or a home
            // folder) keeps its owner, and the postgres user only needs to traverse it.
            if dir_was_created {
                lchown(&self.dir, uid, gid)?;
            }
        }
        let data_is_new = !self.data_dir.exists();
        self.run_as.ensure_private_dir(&self.data_dir)?;
        if data_is_new {
            info!(data_dir = %self.data_dir.display(), "creating a private PostgreSQL cluster");
        }
        self.run_as.ensure_private_dir(&self.socket_dir)?;
        OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(&self.log_path)
            .map_err(io_err("create the server log", &self.log_path))?;
        if let Some((uid, gid)) = self.run_as.owner() {
            chown_recursive(&self.data_dir, uid, gid)?;
            chown_recursive(&self.socket_dir, uid, gid)?;
            lchown(&self.log_path, uid, gid)?;
        }
        Ok(())
    }

    /// Run initdb on the (empty) data folder.
    fn init(&self, options: &LocalPgOptions) -> Result<(), LocalPgError> {
        let not_empty = fs::read_dir(&self.data_dir)
            .map_err(io_err("list", &self.data_dir))?
            .next()
            .is_some();
        if not_empty {
            return Err(LocalPgError::NotACluster {
                data_dir: self.data_dir.clone(),
            });
        }
        // initdb reads the password from a file the server's user can read: a copy in the
        // socket folder, which only that user may enter, removed straight after.
        let pwfile = self.socket_dir.join("initdb-password");
        self.write_private(&pwfile, self.password.expose())?;
        let mut cmd = self.run_as.command(&self.binaries.initdb);
        cmd.arg("-D")
            .arg(&self.data_dir)
            .arg("--auth=scram-sha-256")
            .arg("--pwfile")
            .arg(&pwfile)
            .arg(format!("--username={DB_SUPERUSER}"))
            .arg("--encoding=UTF8")
            // The same collation everywhere, whatever LANG says (and even if it names a locale
            // that is not generated on this machine).
            .arg("--locale=C")
            .arg("--no-instructions");
        if options.ephemeral {
            cmd.arg("--no-sync");
        }
        let out = run(cmd);
        let _ = fs::remove_file(&pwfile);
        let out = out?;
        if !out.status.success() {
            return Err(LocalPgError::InitFailed {
                data_dir: self.data_dir.clone(),
                status: out.status.to_string(),
                output: combined_output(&out),
            });
        }
        Ok(())
    }

    /// Gives a cluster made before passwords (trust authentication) its password, in
    /// single-user mode so that nothing can connect while it is still open.
    fn set_password_offline(&self) -> Result<(), LocalPgError> {
        info!(data_dir = %self.data_dir.display(), "giving the private PostgreSQL cluster a password");
        let mut cmd = self.run_as.command(&self.binaries.postgres);
        cmd.arg("--single")
            .arg("-D")
            .arg(&self.data_dir)
            .arg(DB_SUPERUSER)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let command = describe(&cmd);
        let mut child = cmd.spawn().map_err(|source| LocalPgError::Spawn {
            command: command.clone(),
            source,
        })?;
        if let Some(mut stdin) = child.stdin.take() {
            use std::io::Write as _;
            stdin
                .write_all(local_auth::set_password_sql(DB_SUPERUSER, &self.password).as_bytes())
                .map_err(|source| LocalPgError::Spawn {
                    command: command.clone(),
                    source,
                })?;
        }
        let out = child
            .wait_with_output()
            .map_err(|source| LocalPgError::Spawn {
                command: command.clone(),
                source,
            })?;
        if !out.status.success() {
            return Err(LocalPgError::CommandFailed {
                command,
                status: out.status.to_string(),
                output: combined_output(&out),
            });
        }
        Ok(())
    }

    /// Replaces `pg_hba.conf` with one that asks every connection for the password.
    fn write_hba(&self) -> Result<(), LocalPgError> {
        self.write_private(&self.data_dir.join("pg_hba.conf"), local_auth::HBA_CONF)
    }

    /// Writes `text` to `path`, mode 0600, owned by the server's user.
    fn write_private(&self, path: &Path, text: &str) -> Result<(), LocalPgError> {
        let _ = fs::remove_file(path);
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .map_err(io_err("create", path))?;
        use std::io::Write as _;
        file.write_all(text.as_bytes())
            .map_err(io_err("write", path))?;
        if let Some((uid, gid)) = self.run_as.owner() {
            lchown(path, uid, gid)?;
        }
        Ok(())
    }

    /// Start the server on a free port, trying another one if the port is taken in between.
    fn launch(&self, options: &LocalPgOptions) -> Result<u16, LocalPgError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let port = free_port()?;
            let log_start = fs::metadata(&self.log_path).map_or(0, |m| m.len());
            let mut settings = format!(
                "-c listen_addresses=127.0.0.1 -c port={port} -c 'unix_socket_directories={}' \
                 -c max_connections=300",
                self.socket_dir.display()
            );
            if options.ephemeral {
                settings.push_str(EPHEMERAL_SETTINGS);
            }
            if options.statement_stats {
                settings.push_str(
                    " -c shared_preload_libraries=pg_stat_statements -c pg_stat_statements.track=all",
                );
            }
            let mut cmd = self.run_as.command(&self.binaries.pg_ctl);
            cmd.arg("-D")
                .arg(&self.data_dir)
                .arg("-l")
                .arg(&self.log_path)
                .args(["-w", "-t"])
                .arg(WAIT_SECS.to_string())
                .arg("-o")
                .arg(settings)
                .arg("start");
            let out = run(cmd)?;
            if out.status.success() {
                return Ok(port);
            }
            let new_log = read_log_from(&self.log_path, log_start).unwrap_or_default();
            let port_taken =
                new_log.contains("could not bind") || new_log.contains("Address already in use");
            if port_taken && attempt < PORT_ATTEMPTS {
                warn!(
                    port,
                    "port was taken before PostgreSQL could use it; trying another"
                );
                continue;
            }
            return Err(LocalPgError::StartFailed {
                port,
                output: combined_output(&out),
                log: self.log_path.clone(),
                log_tail: log_tail(&self.log_path),
            });
        }
    }
}

/// A postmaster found through postmaster.pid.
#[derive(Debug)]
struct Postmaster {
    pid: u32,
    /// Not yet recorded while the server starts.
    port: Option<u16>,
}

/// Who runs the PostgreSQL commands.
#[derive(Debug, Clone)]
enum RunAs {
    /// This process is not root: run them directly.
    CurrentUser { uid: u32 },
    /// This process is root: run them as the `postgres` user through `runuser`.
    Postgres {
        runuser: PathBuf,
        uid: u32,
        gid: u32,
    },
}

impl RunAs {
    fn detect() -> Result<Self, LocalPgError> {
        // SAFETY: geteuid has no preconditions and cannot fail.
        let euid = unsafe { libc::geteuid() };
        if euid != 0 {
            return Ok(Self::CurrentUser { uid: euid });
        }
        let (uid, gid) = lookup_user(OS_USER)
            .map_err(LocalPgError::UserLookup)?
            .ok_or(LocalPgError::NoPostgresUser)?;
        let runuser = find_program(
            "runuser",
            &["/usr/sbin/runuser", "/sbin/runuser", "/usr/bin/runuser"],
        )
        .ok_or(LocalPgError::RunuserNotFound)?;
        Ok(Self::Postgres { runuser, uid, gid })
    }

    fn is_postgres(&self) -> bool {
        matches!(self, Self::Postgres { .. })
    }

    /// Owner to give the server's files, when it differs from this process.
    fn owner(&self) -> Option<(u32, u32)> {
        match self {
            Self::CurrentUser { .. } => None,
            Self::Postgres { uid, gid, .. } => Some((*uid, *gid)),
        }
    }

    /// Arguments to put before a program to run it as the right user.
    fn prefix(&self) -> Vec<OsString> {
        match self {
            Self::CurrentUser { .. } => Vec::new(),
            Self::Postgres { runuser, .. } => vec![
                runuser.clone().into_os_string(),
                "-u".into(),
                OS_USER.into(),
                "--".into(),
            ],
        }
    }

    /// A command running `program` (an absolute path: runuser resets PATH) as the right user.
    fn command(&self, program: &Path) -> Command {
        let mut cmd = match self {
            Self::CurrentUser { .. } => Command::new(program),
            Self::Postgres { runuser, .. } => {
                let mut cmd = Command::new(runuser);
                cmd.args(["-u", OS_USER, "--"]).arg(program);
                cmd
            }
        };
        // A working folder everyone may enter, so the postgres user does not trip on ours.
        cmd.current_dir("/").stdin(Stdio::null());
        cmd
    }

    /// Whether the server's user may enter `dir` (and so every folder above it).
    fn can_enter(&self, dir: &Path) -> Result<bool, LocalPgError> {
        let mut cmd = self.command(Path::new("/bin/sh"));
        cmd.args(["-c", "test -x \"$1\"", "sh"]).arg(dir);
        Ok(run(cmd)?.status.success())
    }

    /// Fail clearly when the server's user cannot reach `dir`.
    fn check_reachable(&self, dir: &Path) -> Result<(), LocalPgError> {
        if self.can_enter(dir)? {
            return Ok(());
        }
        let mut blocker = dir.to_path_buf();
        let mut ancestors: Vec<&Path> = dir.ancestors().collect();
        ancestors.reverse();
        for ancestor in ancestors {
            if !self.can_enter(ancestor)? {
                blocker = ancestor.to_path_buf();
                break;
            }
        }
        Err(LocalPgError::NotTraversable {
            dir: dir.to_path_buf(),
            blocker,
        })
    }

    /// Create `path` as a folder only the server's user may use, or check that an existing one is.
    fn ensure_private_dir(&self, path: &Path) -> Result<(), LocalPgError> {
        match fs::DirBuilder::new().mode(0o700).create(path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                let meta =
                    fs::symlink_metadata(path).map_err(io_err("inspect the folder", path))?;
                let owner_ok = match self {
                    Self::CurrentUser { uid } => meta.uid() == *uid,
                    Self::Postgres { uid, .. } => meta.uid() == *uid || meta.uid() == 0,
                };
                if !meta.is_dir() || !owner_ok || meta.mode() & 0o022 != 0 {
                    return Err(LocalPgError::PrivateDirUnsafe {
                        path: path.to_path_buf(),
                    });
                }
            }
            Err(source) => {
                return Err(LocalPgError::Io {
                    action: "create the folder",
                    path: path.to_path_buf(),
                    source,
                })
            }
        }
        if let Some((uid, gid)) = self.owner() {
            lchown(path, uid, gid)?;
        }
        fs::set_permissions(path, fs::Permissions::from_mode(0o700))
            .map_err(io_err("restrict the permissions of", path))
    }
}

/// The PostgreSQL programs used, by absolute path.
#[derive(Debug, Clone)]
struct Binaries {
    initdb: PathBuf,
    pg_ctl: PathBuf,
    postgres: PathBuf,
}

impl Binaries {
    /// `initdb` and `pg_ctl` from PATH, else from the newest /usr/lib/postgresql/*/bin; but the
    /// version that made an existing data folder if the first choice is another one.
    fn find(data_version: Option<&str>, data_dir: &Path) -> Result<Self, LocalPgError> {
        let on_path = std::env::var_os("PATH")
            .map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
            .unwrap_or_default()
            .into_iter()
            .filter(|dir| is_executable(&dir.join("initdb")) && is_executable(&dir.join("pg_ctl")))
            .find_map(|dir| Self::in_dir(&dir));
        let found = on_path
            .or_else(Self::newest_versioned)
            .ok_or(LocalPgError::BinariesNotFound)?;
        let Some(data_version) = data_version else {
            return Ok(found);
        };
        let binary_version = found.major_version()?;
        if binary_version == data_version {
            return Ok(found);
        }
        let matching = Path::new(VERSIONED_BIN_ROOT).join(data_version).join("bin");
        if let Some(matching) = Self::in_dir(&matching) {
            if matching.major_version()? == data_version {
                return Ok(matching);
            }
        }
        Err(LocalPgError::VersionMismatch {
            data_dir: data_dir.to_path_buf(),
            data_version: data_version.to_owned(),
            binary_version,
        })
    }

    /// The programs in the real folder behind `dir/initdb` (following symlinks such as
    /// /usr/local/bin/initdb), which must also hold `pg_ctl` and `postgres`.
    fn in_dir(dir: &Path) -> Option<Self> {
        let initdb = fs::canonicalize(dir.join("initdb")).ok()?;
        let bin_dir = initdb.parent()?.to_path_buf();
        let complete = ["initdb", "pg_ctl", "postgres"]
            .iter()
            .all(|name| is_executable(&bin_dir.join(name)));
        complete.then(|| Self {
            pg_ctl: bin_dir.join("pg_ctl"),
            postgres: bin_dir.join("postgres"),
            initdb,
        })
    }

    fn newest_versioned() -> Option<Self> {
        let mut versions: Vec<(Vec<u32>, PathBuf)> = fs::read_dir(VERSIONED_BIN_ROOT)
            .ok()?
            .filter_map(Result::ok)
            .filter_map(|entry| {
                let name = entry.file_name().to_str()?.to_owned();
                let key = name
                    .split('.')
                    .map(|part| part.parse::<u32>().ok())
                    .collect::<Option<Vec<u32>>>()?;
                Some((key, entry.path().join("bin")))
            })
            .collect();
        versions.sort_by(|a, b| b.0.cmp(&a.0));
        versions.iter().find_map(|(_, bin)| Self::in_dir(bin))
    }

    /// Major version, as data/PG_VERSION writes it ("15", or "9.6" before 10).
    fn major_version(&self) -> Result<String, LocalPgError> {
        let mut cmd = Command::new(&self.pg_ctl);
        cmd.arg("--version").stdin(Stdio::null());
        let command = describe(&cmd);
        let out = run(cmd)?;
        let text = String::from_utf8_lossy(&out.stdout);
        match parse_major_version(&text) {
            Some(version) if out.status.success() => Ok(version),
            _ => Err(LocalPgError::CommandFailed {
                command,
                status: out.status.to_string(),
                output: combined_output(&out),
            }),
        }
    }
}

/// "pg_ctl (PostgreSQL) 15.20 (Debian ...)" -> "15"; "... 9.6.24" -> "9.6".
fn parse_major_version(text: &str) -> Option<String> {
    let version = text
        .split_whitespace()
        .find(|word| word.starts_with(|c: char| c.is_ascii_digit()))?;
    let mut numbers = version
        .split(|c: char| !c.is_ascii_digit())
        .filter(|part| !part.is_empty());
    let major: u32 = numbers.next()?.parse().ok()?;
    if major >= 10 {
        Some(major.to_string())
    } else {
        Some(format!("{major}.{}", numbers.next()?))
    }
}

/// Major version recorded in an existing data folder, if it holds a cluster.
fn read_pg_version(data_dir: &Path) -> Result<Option<String>, LocalPgError> {
    let path = data_dir.join("PG_VERSION");
    match fs::read_to_string(&path) {
        Ok(text) => Ok(Some(text.trim().to_owned())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(LocalPgError::Io {
            action: "read",
            path,
            source,
        }),
    }
}

/// The socket folder: `dir/run`, or a short private folder under /tmp when that path would be too
/// long for a unix socket (or holds characters the server's settings cannot carry).
fn socket_dir_for(dir: &Path) -> PathBuf {
    let run = dir.join("run");
    let bytes = run.as_os_str().as_bytes();
    let usable = bytes.len() + SOCKET_FILE_SUFFIX.len() < MAX_SOCKET_PATH
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || b"/._-+".contains(b));
    if usable {
        run
    } else {
        // Stable per cluster folder, so every start on it agrees.
        PathBuf::from(format!(
            "/tmp/twofold-pg-{:016x}",
            fnv1a(dir.as_os_str().as_bytes())
        ))
    }
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &b| {
        (hash ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// pg_ctl builds a shell command line with the data and log paths in double quotes.
fn check_shell_safe(path: &Path) -> Result<(), LocalPgError> {
    let bad = path
        .as_os_str()
        .as_bytes()
        .iter()
        .find(|b| matches!(b, b'"' | b'$' | b'`' | b'\\' | b'\n' | b'\r'));
    match bad {
        Some(&b) => Err(LocalPgError::UnsafePath {
            path: path.to_path_buf(),
            character: char::from(b),
        }),
        None => Ok(()),
    }
}

/// Hold an exclusive lock on `dir/.lock` until the returned file is dropped.
fn lock_folder(dir: &Path) -> Result<File, LocalPgError> {
    let path = dir.join(".lock");
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(&path)
        .map_err(io_err("open the lock file", &path))?;
    file.lock().map_err(io_err("lock", &path))?;
    Ok(file)
}

fn lookup_user(name: &str) -> io::Result<Option<(u32, u32)>> {
    let cname = CString::new(name).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    let mut buf: Vec<libc::c_char> = vec![0; 4096];
    loop {
        // SAFETY: an all-zero passwd (integers and null pointers) is a valid value to overwrite.
        let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
        let mut result: *mut libc::passwd = std::ptr::null_mut();
        // SAFETY: every pointer is valid for the call and `buf.len()` is the buffer's real size;
        // `pwd`'s strings point into `buf`, but only its integer fields are read afterwards.
        let rc = unsafe {
            libc::getpwnam_r(
                cname.as_ptr(),
                &mut pwd,
                buf.as_mut_ptr(),
                buf.len(),
                &mut result,
            )
        };
        if rc == libc::ERANGE && buf.len() < (1 << 20) {
            buf.resize(buf.len() * 4, 0);
            continue;
        }
        if rc != 0 {
            return Err(io::Error::from_raw_os_error(rc));
        }
        return Ok((!result.is_null()).then_some((pwd.pw_uid, pwd.pw_gid)));
    }
}

fn find_program(name: &str, fallbacks: &[&str]) -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|dir| dir.join(name))
            .find(|candidate| candidate.is_absolute() && is_executable(candidate))
    });
    on_path.or_else(|| {
        fallbacks
            .iter()
            .map(PathBuf::from)
            .find(|candidate| is_executable(candidate))
    })
}

fn is_executable(path: &Path) -> bool {
    fs::metadata(path).is_ok_and(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
}

fn lchown(path: &Path, uid: u32, gid: u32) -> Result<(), LocalPgError> {
    std::os::unix::fs::lchown(path, Some(uid), Some(gid))
        .map_err(io_err("give the postgres user", path))
}

/// Hand `path` and everything under it to `uid:gid`, without following symlinks.
fn chown_recursive(path: &Path, uid: u32, gid: u32) -> Result<(), LocalPgError> {
    let meta = fs::symlink_metadata(path).map_err(io_err("inspect", path))?;
    if meta.uid() != uid || meta.gid() != gid {
        lchown(path, uid, gid)?;
    }
    if meta.is_dir() {
        for entry in fs::read_dir(path).map_err(io_err("list", path))? {
            let entry = entry.map_err(io_err("list", path))?;
            chown_recursive(&entry.path(), uid, gid)?;
        }
    }
    Ok(())
}

/// Pick a TCP port on 127.0.0.1 that nobody listens on right now.
fn free_port() -> Result<u16, LocalPgError> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).map_err(LocalPgError::NoFreePort)?;
    let port = listener
        .local_addr()
        .map_err(LocalPgError::NoFreePort)?
        .port();
    Ok(port)
}

fn accepts_tcp(port: u16) -> bool {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_ok()
}

/// Run a command to completion, capturing what it prints.
fn run(mut cmd: Command) -> Result<Output, LocalPgError> {
    cmd.output().map_err(|source| LocalPgError::Spawn {
        command: describe(&cmd),
        source,
    })
}

fn describe(cmd: &Command) -> String {
    std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|part| part.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

/// stdout and stderr, trimmed to their last lines.
fn combined_output(out: &Output) -> String {
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let tail = last_lines(&text, 2 * LOG_TAIL_LINES);
    if tail.is_empty() {
        "no output".to_owned()
    } else {
        tail
    }
}

fn last_lines(text: &str, count: usize) -> String {
    let lines: Vec<&str> = text.trim().lines().collect();
    lines[lines.len().saturating_sub(count)..].join("\n")
}

/// The log from byte `offset` on (at most its last 64 KiB).
fn read_log_from(path: &Path, offset: u64) -> io::Result<String> {
    let mut file = File::open(path)?;
    let len = file.metadata()?.len();
    let start = offset.max(len.saturating_sub(64 * 1024)).min(len);
    file.seek(SeekFrom::Start(start))?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

fn log_tail(path: &Path) -> String {
    match read_log_from(path, 0) {
        Ok(text) if text.trim().is_empty() => "(the log is empty)".to_owned(),
        Ok(text) => last_lines(&text, LOG_TAIL_LINES),
        Err(e) => format!("(could not read the log: {e})"),
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

fn io_err(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> LocalPgError {
    let path = path.to_path_buf();
    move |source| LocalPgError::Io {
        action,
        path,
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{SystemTime, UNIX_EPOCH};

    /// A folder under the temp folder that the postgres user can traverse; removed on drop.
    struct TestDir(PathBuf);

    impl TestDir {
        fn new(tag: &str) -> Self {
            let nanos = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos());
            let path = std::env::temp_dir().join(format!(
                "twofold-localpg-{tag}-{}-{nanos}",
                std::process::id()
            ));
            fs::create_dir_all(&path).unwrap();
            fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
            TestDir(path)
        }

        fn path(&self) -> &Path {
            &self.0
        }
    }

    impl Drop for TestDir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    /// Stops the server even when an assertion fails.
    struct StopOnDrop<'a>(&'a LocalPostgres);

    impl Drop for StopOnDrop<'_> {
        fn drop(&mut self) {
            let _ = self.0.stop();
        }
    }

    fn ephemeral() -> LocalPgOptions {
        LocalPgOptions {
            ephemeral: true,
            statement_stats: false,
        }
    }

    /// psql, never prompting; with `password` in `PGPASSWORD` when given.
    fn psql(password: Option<&str>, args: &[&str]) -> Output {
        let mut cmd = Command::new("psql");
        cmd.env_remove("PGPASSWORD")
            .args(["-X", "-w", "-A", "-t", "-v", "ON_ERROR_STOP=1"])
            .args(args);
        if let Some(password) = password {
            cmd.env("PGPASSWORD", password);
        }
        cmd.output().unwrap()
    }

    fn query(pg: &LocalPostgres, sql: &str) -> String {
        let port = pg.port().to_string();
        let out = psql(
            Some(pg.password().expose()),
            &["-h", "127.0.0.1", "-p", &port, "-U", "postgres", "-c", sql],
        );
        assert!(
            out.status.success(),
            "psql failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    fn wait_until_stopped(pg: &LocalPostgres, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if !pg.is_running().unwrap() {
                return true;
            }
            thread::sleep(Duration::from_millis(200));
        }
        false
    }

    #[test]
    fn starts_reuses_stops_and_restarts() {
        let dir = TestDir::new("lifecycle");
        let first = LocalPostgres::start(dir.path(), &ephemeral()).unwrap();
        let _stop = StopOnDrop(&first);
        // Safety net: even if this test binary is killed, the server goes away with it.
        first.stop_when_process_exits(std::process::id()).unwrap();

        assert_eq!(
            first.data_dir(),
            fs::canonicalize(dir.path()).unwrap().join("data")
        );
        assert_ne!(first.port(), 0);
        TcpStream::connect((Ipv4Addr::LOCALHOST, first.port())).unwrap();
        assert_eq!(query(&first, "select 1"), "1");
        assert_eq!(query(&first, "show fsync"), "off");
        assert_eq!(query(&first, "show max_connections"), "300");
        assert_eq!(query(&first, "show listen_addresses"), "127.0.0.1");

        // The unix socket is in the private run folder.
        let socket = first.socket_dir.to_string_lossy().into_owned();
        assert_eq!(
            socket,
            format!("{}/run", fs::canonicalize(dir.path()).unwrap().display())
        );
        let port = first.port().to_string();
        let socket_args = [
            "-h", &socket, "-p", &port, "-U", "postgres", "-c", "select 2",
        ];
        let out = psql(Some(first.password().expose()), &socket_args);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );

        // Without the password, neither way in is open (it used to trust any local user).
        let tcp_args = [
            "-h",
            "127.0.0.1",
            "-p",
            &port,
            "-U",
            "postgres",
            "-c",
            "select 3",
        ];
        for args in [&socket_args[..], &tcp_args[..]] {
            let out = psql(None, args);
            assert!(
                !out.status.success(),
                "connected without a password: {args:?}"
            );
            let out = psql(Some("wrong-password"), args);
            assert!(
                !out.status.success(),
                "connected with a wrong password: {args:?}"
            );
        }
        let password_file = fs::metadata(dir.path().join(local_auth::PASSWORD_FILE)).unwrap();
        assert_eq!(password_file.permissions().mode() & 0o777, 0o600);

        // The URL works as given.
        let out = psql(None, &[&first.url("postgres"), "-c", "select current_user"]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "postgres");

        // A second start on the same folder reuses the running server.
        let second = LocalPostgres::start(dir.path(), &ephemeral()).unwrap();
        assert_eq!(second.port(), first.port());

        first.stop().unwrap();
        assert!(!first.is_running().unwrap());
        assert!(!accepts_tcp(first.port()));
        // Idempotent.
        first.stop().unwrap();
        second.stop().unwrap();

        // A cluster made before passwords (trust, no password file) gets one on its next start.
        fs::write(
            first.data_dir().join("pg_hba.conf"),
            "local all all trust\nhost all all 127.0.0.1/32 trust\n",
        )
        .unwrap();
        fs::remove_file(dir.path().join(local_auth::PASSWORD_FILE)).unwrap();

        // Restart on the existing data, this time durable.
        let third = LocalPostgres::start(dir.path(), &LocalPgOptions::default()).unwrap();
        assert_ne!(third.password(), first.password());
        let third_port = third.port().to_string();
        let out = psql(
            None,
            &[
                "-h",
                "127.0.0.1",
                "-p",
                &third_port,
                "-U",
                "postgres",
                "-c",
                "select 4",
            ],
        );
        assert!(!out.status.success(), "still trusting after an upgrade");
        assert_eq!(query(&third, "select 1"), "1");
        assert_eq!(query(&third, "show fsync"), "on");

        // An old server still running with trust when a new Twofold first meets it: reused as
        // it is (it ignores the password), and given its password at the next start, not
        // locked out by a password file naming one it never got.
        fs::write(
            third.data_dir().join("pg_hba.conf"),
            "local all all trust\nhost all all 127.0.0.1/32 trust\n",
        )
        .unwrap();
        let mut reload = third.run_as.command(&third.binaries.pg_ctl);
        reload.arg("reload").arg("-D").arg(third.data_dir());
        assert!(run(reload).unwrap().status.success());
        fs::remove_file(dir.path().join(local_auth::PASSWORD_FILE)).unwrap();
        let reused = LocalPostgres::start(dir.path(), &LocalPgOptions::default()).unwrap();
        assert_eq!(reused.port(), third.port());
        assert_eq!(query(&reused, "select 5"), "5");
        reused.stop().unwrap();
        let fourth = LocalPostgres::start(dir.path(), &LocalPgOptions::default()).unwrap();
        assert_eq!(query(&fourth, "select 6"), "6");
        let fourth_port = fourth.port().to_string();
        let out = psql(
            None,
            &[
                "-h",
                "127.0.0.1",
                "-p",
                &fourth_port,
                "-U",
                "postgres",
                "-c",
                "select 7",
            ],
        );
        assert!(
            !out.status.success(),
            "still trusting after the second start"
        );
        fourth.stop().unwrap();
        assert!(!fourth.is_running().unwrap());
    }

    /// Kill the postmaster outright, as a crash would, and wait until it and its children are gone.
    fn crash(pg: &LocalPostgres) -> String {
        let pid_file = pg.data_dir().join("postmaster.pid");
        let pid_text = fs::read_to_string(&pid_file).unwrap();
        let pid: u32 = pid_text.lines().next().unwrap().trim().parse().unwrap();
        let killed = Command::new("kill")
            .args(["-9", &pid.to_string()])
            .status()
            .unwrap();
        assert!(killed.success());
        let deadline = Instant::now() + Duration::from_secs(15);
        while pg.process_runs_in_data_dir(pid) == Some(true) && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(100));
        }
        // The other server processes notice the postmaster's death and exit soon after.
        while accepts_tcp(pg.port()) && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(100));
        }
        thread::sleep(Duration::from_secs(1));
        assert!(pid_file.exists(), "a crash leaves postmaster.pid behind");
        pid_text
    }

    #[test]
    fn restarts_after_a_crash_with_a_stale_pid_file() {
        let dir = TestDir::new("crash");
        let pg = LocalPostgres::start(dir.path(), &ephemeral()).unwrap();
        let _stop = StopOnDrop(&pg);
        pg.stop_when_process_exits(std::process::id()).unwrap();
        crash(&pg);

        // postmaster.pid names a dead process.
        let again = LocalPostgres::start(dir.path(), &ephemeral()).unwrap();
        assert_eq!(query(&again, "select 1"), "1");
        assert_eq!(query(&again, "show fsync"), "off");

        // postmaster.pid names a live process that is not a server: its PID was reused. Run it
        // as the server's user, so that postgres itself would take it for a live server.
        let pid_text = crash(&again);
        let mut impostor = Command::new("sleep");
        impostor.arg("30");
        if let Some((uid, gid)) = RunAs::detect().unwrap().owner() {
            impostor.uid(uid).gid(gid);
        }
        let mut impostor = impostor.spawn().unwrap();
        let mut lines: Vec<String> = pid_text.lines().map(str::to_owned).collect();
        lines[0] = impostor.id().to_string();
        fs::write(
            again.data_dir().join("postmaster.pid"),
            lines.join("\n") + "\n",
        )
        .unwrap();
        let third = LocalPostgres::start(dir.path(), &ephemeral());
        let _ = impostor.kill();
        let _ = impostor.wait();
        let third = third.unwrap();
        assert_ne!(third.port(), again.port());
        assert_eq!(query(&third, "select 1"), "1");
        third.stop().unwrap();
    }

    #[test]
    fn stops_when_the_watched_process_exits() {
        let dir = TestDir::new("watchdog");
        let pg = LocalPostgres::start(dir.path(), &ephemeral()).unwrap();
        let _stop = StopOnDrop(&pg);
        assert!(pg.is_running().unwrap());

        let mut child = Command::new("sleep").arg("2").spawn().unwrap();
        pg.stop_when_process_exits(child.id()).unwrap();
        assert!(child.wait().unwrap().success());

        assert!(
            wait_until_stopped(&pg, Duration::from_secs(15)),
            "the server still runs 15 s after the watched process exited"
        );
        assert!(!accepts_tcp(pg.port()));
    }

    #[test]
    fn watchdog_treats_an_unreaped_zombie_as_exited() {
        let dir = TestDir::new("zombie");
        let pg = LocalPostgres::start(dir.path(), &ephemeral()).unwrap();
        let _stop = StopOnDrop(&pg);

        let mut child = Command::new("true").spawn().unwrap();
        pg.stop_when_process_exits(child.id()).unwrap();
        // Not reaped yet: `kill -0` still succeeds on the zombie.
        let stopped = wait_until_stopped(&pg, Duration::from_secs(15));
        child.wait().unwrap();
        assert!(stopped, "the watchdog waited on a zombie");
    }

    #[test]
    fn concurrent_starts_share_one_server_and_long_paths_get_a_short_socket() {
        let dir = TestDir::new("concurrent");
        let deep = dir.path().join("a".repeat(60)).join("b".repeat(60));
        fs::create_dir_all(&deep).unwrap();
        for folder in [dir.path().join("a".repeat(60)), deep.clone()] {
            fs::set_permissions(&folder, fs::Permissions::from_mode(0o755)).unwrap();
        }

        let handles: Vec<_> = (0..2)
            .map(|_| {
                let deep = deep.clone();
                thread::spawn(move || LocalPostgres::start(&deep, &ephemeral()))
            })
            .collect();
        let started: Vec<LocalPostgres> = handles
            .into_iter()
            .map(|handle| handle.join().unwrap().unwrap())
            .collect();
        let _stop = StopOnDrop(&started[0]);
        started[0]
            .stop_when_process_exits(std::process::id())
            .unwrap();

        assert_eq!(started[0].port(), started[1].port());
        assert!(started[0]
            .socket_dir
            .to_string_lossy()
            .starts_with("/tmp/twofold-pg-"));
        assert_eq!(query(&started[0], "select 1"), "1");
        started[0].stop().unwrap();
        assert!(!started[0].socket_dir.exists());
    }

    #[test]
    fn unreachable_folder_is_reported() {
        let run_as = RunAs::detect().unwrap();
        if !run_as.is_postgres() {
            return; // Only root hands the cluster to another user.
        }
        let dir = TestDir::new("private");
        let hidden = dir.path().join("hidden");
        fs::create_dir(&hidden).unwrap();
        fs::set_permissions(&hidden, fs::Permissions::from_mode(0o700)).unwrap();
        let err = LocalPostgres::start(&hidden.join("cluster"), &ephemeral()).unwrap_err();
        match &err {
            LocalPgError::NotTraversable { blocker, .. } => {
                assert_eq!(blocker, &fs::canonicalize(&hidden).unwrap())
            }
            other => panic!("unexpected error: {other}"),
        }
        assert!(err.to_string().contains("chmod o+x"));
    }

    #[test]
    fn helpers() {
        assert_eq!(
            parse_major_version("pg_ctl (PostgreSQL) 15.20 (Debian 15.20-0+deb12u1)").as_deref(),
            Some("15")
        );
        assert_eq!(
            parse_major_version("pg_ctl (PostgreSQL) 9.6.24").as_deref(),
            Some("9.6")
        );
        assert_eq!(
            parse_major_version("pg_ctl (PostgreSQL) 17devel").as_deref(),
            Some("17")
        );
        assert_eq!(percent_encode("twofold_test-1"), "twofold_test-1");
        assert_eq!(percent_encode("a b/c?"), "a%20b%2Fc%3F");
        assert!(check_shell_safe(Path::new("/tmp/a b")).is_ok());
        assert!(check_shell_safe(Path::new("/tmp/a$b")).is_err());
        assert_eq!(
            socket_dir_for(Path::new("/tmp/x")),
            PathBuf::from("/tmp/x/run")
        );
        let long = PathBuf::from(format!("/tmp/{}", "x".repeat(90)));
        assert!(socket_dir_for(&long)
            .to_string_lossy()
            .starts_with("/tmp/twofold-pg-"));
        assert_eq!(socket_dir_for(&long), socket_dir_for(&long));
        assert_eq!(last_lines("a\nb\nc\n", 2), "b\nc");
        let msg = LocalPgError::BinariesNotFound.to_string();
        assert!(msg.contains("apt-get install -y postgresql"));
    }
}
