//! Finding a server already running on the data folder, to reuse it, and telling a live one from
//! the stale `postmaster.pid` a crash leaves behind.

use std::fs;
use std::io;
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

use tracing::warn;

use super::{LocalPostgres, WAIT_SECS};
use crate::command::{combined_output, describe, log_tail, run};
use crate::error::LocalPgError;

/// A postmaster found through postmaster.pid.
#[derive(Debug)]
struct Postmaster {
    pid: u32,
    /// Not yet recorded while the server starts.
    port: Option<u16>,
}

impl LocalPostgres {
    /// Port of a live server already running on the data folder, waiting while it starts up.
    pub(super) fn reusable_port(&self) -> Result<Option<u16>, LocalPgError> {
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
    pub(crate) fn is_running(&self) -> Result<bool, LocalPgError> {
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
}

pub(crate) fn accepts_tcp(port: u16) -> bool {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_ok()
}

#[cfg(test)]
mod tests {
    use std::os::unix::process::CommandExt;
    use std::process::Command;

    use super::*;
    use crate::run_as::RunAs;
    use crate::test_support::{ephemeral, query, StopOnDrop, TestDir};

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
}
