//! Where the cluster's files go: a socket path short enough for `sun_path`, a path pg_ctl can pass
//! through a shell, and the lock that serialises starts on one folder.

use std::fs::{File, OpenOptions};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use crate::error::{io_err, LocalPgError};

/// Unix socket paths must fit in `sun_path` (108 bytes); stay well below it.
const MAX_SOCKET_PATH: usize = 100;
/// Longest name PostgreSQL gives the socket file inside the socket folder.
const SOCKET_FILE_SUFFIX: &str = "/.s.PGSQL.65535";

/// The socket folder: `dir/run`, or a short private folder under /tmp when that path would be too
/// long for a unix socket (or holds characters the server's settings cannot carry).
pub(crate) fn socket_dir_for(dir: &Path) -> PathBuf {
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
pub(crate) fn check_shell_safe(path: &Path) -> Result<(), LocalPgError> {
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
pub(crate) fn lock_folder(dir: &Path) -> Result<File, LocalPgError> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_unsafe_paths_are_refused() {
        assert!(check_shell_safe(Path::new("/tmp/a b")).is_ok());
        assert!(check_shell_safe(Path::new("/tmp/a$b")).is_err());
    }

    #[test]
    fn long_paths_get_a_short_stable_socket_folder() {
        assert_eq!(
            socket_dir_for(Path::new("/tmp/x")),
            PathBuf::from("/tmp/x/run")
        );
        let long = PathBuf::from(format!("/tmp/{}", "x".repeat(90)));
        assert!(socket_dir_for(&long)
            .to_string_lossy()
            .starts_with("/tmp/twofold-pg-"));
        assert_eq!(socket_dir_for(&long), socket_dir_for(&long));
    }
}
