//! The safety net: a detached shell that stops the server once the process that started it is
//! gone, even when that process was killed or panicked, so a test run never leaves a server behind.

use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};

use tracing::info;

use crate::cluster::WAIT_SECS;
use crate::command::{combined_output, run};
use crate::{LocalPgError, LocalPostgres};

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

impl LocalPostgres {
    /// Make sure the server stops when process `pid` (normally std::process::id()) exits, even if
    /// it is killed or panics: spawn a small detached watchdog (e.g. `sh -c 'while kill -0 PID
    /// 2>/dev/null; do sleep 1; done; <pg_ctl stop -m immediate ...>'`, run as the right user) so
    /// a test run never leaves a server behind.
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
            .arg(self.data_dir())
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
            data_dir = %self.data_dir().display(),
            "the private PostgreSQL server will be stopped when process {pid} exits"
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::cluster::accepts_tcp;
    use crate::test_support::{ephemeral, wait_until_stopped, StopOnDrop, TestDir};

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
}
