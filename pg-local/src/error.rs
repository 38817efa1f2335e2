//! The launcher's one error type.

use std::io;
use std::path::{Path, PathBuf};

use crate::binaries::VERSIONED_BIN_ROOT;

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

pub(crate) fn io_err(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> LocalPgError {
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

    #[test]
    fn messages_say_what_to_do() {
        let msg = LocalPgError::BinariesNotFound.to_string();
        assert!(msg.contains("apt-get install -y postgresql"));
    }
}
