//! The service under test, as a child process of the benchmark (`twofold serve` from the same
//! executable), so its CPU time and memory are its own and the load generator competes with it
//! for the cores as a real client would.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context};

use super::procfs;

/// A running `twofold serve`.
pub struct ServiceProcess {
    child: tokio::process::Child,
    pid: u32,
    /// `http://127.0.0.1:PORT`.
    pub base_url: String,
}

impl ServiceProcess {
    /// Starts `exe serve` with `env` (every other `TWOFOLD_*` variable removed), logging to
    /// `log`, and waits until `/health` answers.
    pub async fn start(exe: &Path, env: &[(String, String)], log: &Path) -> anyhow::Result<Self> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        Self::start_on(exe, env, log, port, "/health").await
    }

    /// Like [`ServiceProcess::start`] on a given port (a restarted instance keeps its address),
    /// appending to `log`, and waiting for `ready_path` to answer 200.
    pub async fn start_on(
        exe: &Path,
        env: &[(String, String)],
        log: &Path,
        port: u16,
        ready_path: &str,
    ) -> anyhow::Result<Self> {
        let log_file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)?;
        let mut command = tokio::process::Command::new(exe);
        command.arg("serve");
        for (k, _) in std::env::vars() {
            if k.starts_with("TWOFOLD_") || k == "DATABASE_URL" {
                command.env_remove(k);
            }
        }
        command
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .env("TWOFOLD_BIND", format!("127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(log_file)
            .kill_on_drop(true);
        // SAFETY: prctl(2) in the child between fork and exec only sets the signal it gets
        // when its parent dies: a harness killed or timed out leaves no service running.
        unsafe {
            command.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let child = command.spawn().context("starting the service")?;
        let pid = child
            .id()
            .ok_or_else(|| anyhow!("the service exited at once"))?;
        let mut service = Self {
            child,
            pid,
            base_url: format!("http://127.0.0.1:{port}"),
        };
        let http = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(r) = http
                .get(format!("{}{ready_path}", service.base_url))
                .send()
                .await
            {
                if r.status().is_success() {
                    return Ok(service);
                }
            }
            if let Ok(Some(status)) = service.child.try_wait() {
                return Err(anyhow!(
                    "the service exited ({status}) before it was ready; see {}",
                    log.display()
                ));
            }
            if Instant::now() > deadline {
                return Err(anyhow!(
                    "the service did not become healthy within 60 s; see {}",
                    log.display()
                ));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// CPU time used so far.
    pub fn cpu(&self) -> Duration {
        procfs::cpu_of(self.pid).unwrap_or_default()
    }

    /// Resident memory now, bytes.
    pub fn rss(&self) -> u64 {
        procfs::rss_of(self.pid).unwrap_or(0)
    }

    /// Stops the service.
    pub async fn stop(mut self) {
        let _ = self.child.start_kill();
        let _ = self.child.wait().await;
    }

    /// Sends SIGTERM (a supervisor's stop: the service drains, then exits) and waits for the
    /// exit, at most `timeout` (then SIGKILL).
    pub async fn terminate(mut self, timeout: Duration) {
        // SAFETY: kill(2) on our own child's pid, which `wait` below has not reaped yet.
        unsafe {
            libc::kill(self.pid as i32, libc::SIGTERM);
        }
        if tokio::time::timeout(timeout, self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.start_kill();
            let _ = self.child.wait().await;
        }
    }
}
