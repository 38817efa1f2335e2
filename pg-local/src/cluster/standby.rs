//! A standby of a running cluster, kept by streaming replication, and its promotion: what
//! `twofold chaos` fails over to.

use std::fs;
use std::path::Path;

use super::{LocalPgOptions, LocalPostgres, DB_SUPERUSER};
use crate::auth;
use crate::command::{combined_output, run};
use crate::error::{io_err, LocalPgError};
use crate::paths::{check_shell_safe, socket_dir_for};

impl LocalPostgres {
    /// Makes a standby of this server in `dir` with `pg_basebackup` and starts it, streaming
    /// from this server as `application_name` `name` (so the primary can wait for it with
    /// `synchronous_standby_names`). Blocking.
    pub fn start_standby(
        &self,
        dir: &Path,
        name: &str,
        options: &LocalPgOptions,
    ) -> Result<LocalPostgres, LocalPgError> {
        fs::create_dir_all(dir).map_err(io_err("create the standby folder", dir))?;
        let dir = fs::canonicalize(dir).map_err(io_err("resolve the standby folder", dir))?;
        check_shell_safe(&dir)?;
        // The same password: the standby's start then finds it and sets none.
        auth::store(&dir, &self.password).map_err(io_err("write the password file in", &dir))?;
        let standby = LocalPostgres {
            socket_dir: socket_dir_for(&dir),
            log_path: dir.join("postgres.log"),
            data_dir: dir.join("data"),
            dir: dir.clone(),
            port: 0,
            password: self.password.clone(),
            binaries: self.binaries.clone(),
            run_as: self.run_as.clone(),
        };
        standby.prepare_files(true)?;
        let basebackup = crate::binaries::program("pg_basebackup")?;
        let mut cmd = self.run_as.command(&basebackup);
        cmd.arg("-D")
            .arg(&standby.data_dir)
            .args([
                "--write-recovery-conf",
                "--wal-method=stream",
                "--checkpoint=fast",
            ])
            .arg("--dbname")
            .arg(format!(
                "host=127.0.0.1 port={} user={DB_SUPERUSER} application_name={name}",
                self.port
            ))
            // In the environment, not the arguments: `ps` shows every user the arguments.
            // `--write-recovery-conf` still writes it into the standby's configuration (0600).
            .env("PGPASSWORD", self.password.expose());
        let out = run(cmd)?;
        if !out.status.success() {
            return Err(LocalPgError::CommandFailed {
                command: "pg_basebackup".to_owned(),
                status: out.status.to_string(),
                output: combined_output(&out),
            });
        }
        LocalPostgres::start(&dir, options)
    }

    /// Ends a standby's recovery: it becomes a primary (`pg_ctl promote`, waiting until it
    /// accepts writes).
    pub fn promote(&self) -> Result<(), LocalPgError> {
        let mut cmd = self.run_as.command(&self.binaries.pg_ctl);
        cmd.arg("promote")
            .arg("-D")
            .arg(&self.data_dir)
            .args(["-w", "-t"])
            .arg(super::WAIT_SECS.to_string());
        let out = run(cmd)?;
        if !out.status.success() {
            return Err(LocalPgError::CommandFailed {
                command: "pg_ctl promote".to_owned(),
                status: out.status.to_string(),
                output: combined_output(&out),
            });
        }
        Ok(())
    }
}
