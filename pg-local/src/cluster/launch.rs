//! Starting the server on a free port of 127.0.0.1.

use std::fs;
use std::net::{Ipv4Addr, TcpListener};

use tracing::warn;

use super::{LocalPgOptions, LocalPostgres, WAIT_SECS};
use crate::command::{combined_output, log_tail, read_log_from, run};
use crate::error::LocalPgError;

/// How many free ports to try when another process takes the one we picked first.
const PORT_ATTEMPTS: usize = 3;
/// Settings that trade durability for speed (see [`LocalPgOptions::ephemeral`]).
const EPHEMERAL_SETTINGS: &str = " -c fsync=off -c synchronous_commit=off -c full_page_writes=off";

impl LocalPostgres {
    /// Start the server on a free port, trying another one if the port is taken in between.
    pub(super) fn launch(&self, options: &LocalPgOptions) -> Result<u16, LocalPgError> {
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

/// Pick a TCP port on 127.0.0.1 that nobody listens on right now.
fn free_port() -> Result<u16, LocalPgError> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).map_err(LocalPgError::NoFreePort)?;
    let port = listener
        .local_addr()
        .map_err(LocalPgError::NoFreePort)?
        .port();
    Ok(port)
}
