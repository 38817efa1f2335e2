//! One chromedriver process per browser: on a free loopback port, in a process group of its own
//! (Chromium runs in that group too), killed as a group when dropped, and by a detached watchdog
//! when the test process dies without running destructors (a Ctrl-C, a SIGKILL).

use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long chromedriver may take to answer `/status` as ready.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// A running chromedriver.
pub(super) struct Driver {
    child: Child,
    port: u16,
}

impl Driver {
    /// Starts `binary` on a free port and waits until its `/status` says it is ready.
    /// `profile` is Chromium's profile folder: the watchdog removes it after a kill.
    pub(super) async fn start(binary: &Path, profile: &Path) -> Driver {
        // The port is free when we look and may be taken before chromedriver binds it: then
        // chromedriver exits, and another port is tried.
        let mut last_error = String::new();
        for _ in 0..3 {
            let port = free_port();
            let mut driver = Driver::spawn(binary, port);
            match driver.wait_until_ready().await {
                Ok(()) => {
                    driver.arm_watchdog(profile);
                    return driver;
                }
                Err(error) => last_error = error,
            }
        }
        panic!(
            "chromedriver ({}) did not start: {last_error}",
            binary.display()
        );
    }

    fn spawn(binary: &Path, port: u16) -> Driver {
        let verbose = std::env::var_os("TEST_LOG").is_some();
        let output = || {
            if verbose {
                Stdio::inherit()
            } else {
                Stdio::null()
            }
        };
        let child = Command::new(binary)
            .arg(format!("--port={port}"))
            // No --allowed-ips or --allowed-origins: by default chromedriver answers loopback
            // clients only and refuses requests from a page's origin, which matters because
            // the WebDriver endpoint has no authentication.
            .stdin(Stdio::null())
            .stdout(output())
            .stderr(output())
            // Its own group, which Chromium's processes join: one signal ends them all.
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "starting {}: {e} (scripts/ensure-deps installs it)",
                    binary.display()
                )
            });
        Driver { child, port }
    }

    /// The WebDriver URL.
    pub(super) fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Polls `/status` until chromedriver says it is ready; fails early if it exited.
    async fn wait_until_ready(&mut self) -> Result<(), String> {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()
            .expect("an HTTP client");
        let status = format!("{}/status", self.url());
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(exit) = self.child.try_wait().expect("polling chromedriver") {
                return Err(format!("it exited ({exit}) on port {}", self.port));
            }
            if let Ok(response) = client.get(&status).send().await {
                let body: serde_json::Value = response.json().await.unwrap_or_default();
                if body["value"]["ready"] == serde_json::Value::Bool(true) {
                    return Ok(());
                }
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "/status on port {} was not ready after {START_TIMEOUT:?}",
                    self.port
                ));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// A detached shell that kills the group and removes `profile` once this test process is
    /// gone, if the group's leader is still a chromedriver (it is not once this driver was
    /// dropped: then the watchdog has nothing to do and leaves at its next look).
    fn arm_watchdog(&self, profile: &Path) {
        const SCRIPT: &str = r#"parent=$1 group=$2 profile=$3
(
  trap '' HUP INT
  leader_is_driver() { [ "$(cat "/proc/$group/comm" 2>/dev/null)" = chromedriver ]; }
  parent_alive() {
    kill -0 "$parent" 2>/dev/null &&
      [ "$(sed -n 's/.*) \([A-Za-z]\).*/\1/p' "/proc/$parent/stat" 2>/dev/null)" != Z ]
  }
  while parent_alive && leader_is_driver; do sleep 1; done
  # dash's kill takes no "--"; a negative number after the signal is a group.
  if leader_is_driver; then
    kill -KILL "-$group"
    # Killed processes may still be closing files for a moment.
    sleep 1
    rm -rf "$profile"
  fi
) </dev/null >/dev/null 2>&1 &
"#;
        let spawned = Command::new("/bin/sh")
            .arg("-c")
            .arg(SCRIPT)
            .arg("twofold-browser-watchdog")
            .arg(std::process::id().to_string())
            .arg(self.child.id().to_string())
            .arg(profile)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            // Out of the test run's group, so the Ctrl-C that ends the run does not end it.
            .process_group(0)
            .status();
        assert!(
            matches!(spawned, Ok(status) if status.success()),
            "starting the browser watchdog: {spawned:?}"
        );
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let group = self.child.id() as libc::pid_t;
        // SAFETY: kill(2) with a negative pid signals the process group; the group is ours
        // (chromedriver leads it and is not reaped yet, so the id cannot have been reused).
        unsafe {
            libc::kill(-group, libc::SIGKILL);
        }
        let _ = self.child.wait();
        // Chromium's processes are not our children: wait (bounded) until none of them runs,
        // so the profile folder is not written to while it is removed.
        let deadline = Instant::now() + Duration::from_secs(5);
        while group_has_live_process(group) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// Whether a process of group `group` exists that is not a zombie.
fn group_has_live_process(group: libc::pid_t) -> bool {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return false;
    };
    entries.flatten().any(|entry| {
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            return false;
        };
        // Fields after the command name (which may hold spaces and parentheses).
        let Some((_, rest)) = stat.rsplit_once(") ") else {
            return false;
        };
        let mut fields = rest.split(' ');
        let state = fields.next();
        let process_group = fields.nth(1);
        state != Some("Z") && process_group == Some(group.to_string().as_str())
    })
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free loopback port")
        .port()
}
