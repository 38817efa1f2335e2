//! Preparing a cluster before its server starts: its folders and log, initdb on first use, and
//! the password on every way in.

use std::fs::{self, OpenOptions};
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::process::Stdio;

use tracing::info;

use super::{LocalPgOptions, LocalPostgres, DB_SUPERUSER};
use crate::auth;
use crate::command::{combined_output, describe, run};
use crate::error::{io_err, LocalPgError};
use crate::run_as::{chown_recursive, lchown};

impl LocalPostgres {
    /// Create the folders and log file the server needs, owned by whoever runs it.
    pub(super) fn prepare_files(&self, dir_was_created: bool) -> Result<(), LocalPgError> {
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
    pub(super) fn init(&self, options: &LocalPgOptions) -> Result<(), LocalPgError> {
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
    pub(super) fn set_password_offline(&self) -> Result<(), LocalPgError> {
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
            stdin
                .write_all(auth::set_password_sql(DB_SUPERUSER, &self.password).as_bytes())
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
    pub(super) fn write_hba(&self) -> Result<(), LocalPgError> {
        self.write_private(&self.data_dir.join("pg_hba.conf"), auth::HBA_CONF)
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
        file.write_all(text.as_bytes())
            .map_err(io_err("write", path))?;
        if let Some((uid, gid)) = self.run_as.owner() {
            lchown(path, uid, gid)?;
        }
        Ok(())
    }
}
