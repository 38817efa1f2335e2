//! What the tests that run real clusters share.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::{LocalPgOptions, LocalPostgres};

/// A folder under the temp folder that the postgres user can traverse; removed on drop.
pub(crate) struct TestDir(PathBuf);

impl TestDir {
    pub(crate) fn new(tag: &str) -> Self {
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

    pub(crate) fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TestDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// Stops the server even when an assertion fails.
pub(crate) struct StopOnDrop<'a>(pub(crate) &'a LocalPostgres);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        let _ = self.0.stop();
    }
}

pub(crate) fn ephemeral() -> LocalPgOptions {
    LocalPgOptions {
        ephemeral: true,
        statement_stats: false,
    }
}

/// psql, never prompting; with `password` in `PGPASSWORD` when given.
pub(crate) fn psql(password: Option<&str>, args: &[&str]) -> Output {
    let mut cmd = Command::new("psql");
    cmd.env_remove("PGPASSWORD")
        .args(["-X", "-w", "-A", "-t", "-v", "ON_ERROR_STOP=1"])
        .args(args);
    if let Some(password) = password {
        cmd.env("PGPASSWORD", password);
    }
    cmd.output().unwrap()
}

pub(crate) fn query(pg: &LocalPostgres, sql: &str) -> String {
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

pub(crate) fn wait_until_stopped(pg: &LocalPostgres, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if !pg.is_running().unwrap() {
            return true;
        }
        thread::sleep(Duration::from_millis(200));
    }
    false
}
