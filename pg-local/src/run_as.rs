//! Running PostgreSQL's commands as the `postgres` user when this process is root (PostgreSQL
//! refuses to run as root, and CI runs as root), on files handed to that user.

use std::ffi::{CString, OsString};
use std::fs;
use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::binaries::find_program;
use crate::command::run;
use crate::error::{io_err, LocalPgError};

/// System user that runs PostgreSQL when this process is root.
const OS_USER: &str = "postgres";

/// Who runs the PostgreSQL commands.
#[derive(Debug, Clone)]
pub(crate) enum RunAs {
    /// This process is not root: run them directly.
    CurrentUser { uid: u32 },
    /// This process is root: run them as the `postgres` user through `runuser`.
    Postgres {
        runuser: PathBuf,
        uid: u32,
        gid: u32,
    },
}

impl RunAs {
    pub(crate) fn detect() -> Result<Self, LocalPgError> {
        // SAFETY: geteuid has no preconditions and cannot fail.
        let euid = unsafe { libc::geteuid() };
        if euid != 0 {
            return Ok(Self::CurrentUser { uid: euid });
        }
        let (uid, gid) = lookup_user(OS_USER)
            .map_err(LocalPgError::UserLookup)?
            .ok_or(LocalPgError::NoPostgresUser)?;
        let runuser = find_program(
            "runuser",
            &["/usr/sbin/runuser", "/sbin/runuser", "/usr/bin/runuser"],
        )
        .ok_or(LocalPgError::RunuserNotFound)?;
        Ok(Self::Postgres { runuser, uid, gid })
    }

    pub(crate) fn is_postgres(&self) -> bool {
        matches!(self, Self::Postgres { .. })
    }

    /// Owner to give the server's files, when it differs from this process.
    pub(crate) fn owner(&self) -> Option<(u32, u32)> {
        match self {
            Self::CurrentUser { .. } => None,
            Self::Postgres { uid, gid, .. } => Some((*uid, *gid)),
        }
    }

    /// Arguments to put before a program to run it as the right user.
    pub(crate) fn prefix(&self) -> Vec<OsString> {
        match self {
            Self::CurrentUser { .. } => Vec::new(),
            Self::Postgres { runuser, .. } => vec![
                runuser.clone().into_os_string(),
                "-u".into(),
                OS_USER.into(),
                "--".into(),
            ],
        }
    }

    /// A command running `program` (an absolute path: runuser resets PATH) as the right user.
    pub(crate) fn command(&self, program: &Path) -> Command {
        let mut cmd = match self {
            Self::CurrentUser { .. } => Command::new(program),
            Self::Postgres { runuser, .. } => {
                let mut cmd = Command::new(runuser);
                cmd.args(["-u", OS_USER, "--"]).arg(program);
                cmd
            }
        };
        // A working folder everyone may enter, so the postgres user does not trip on ours.
        cmd.current_dir("/").stdin(Stdio::null());
        cmd
    }

    /// Whether the server's user may enter `dir` (and so every folder above it).
    fn can_enter(&self, dir: &Path) -> Result<bool, LocalPgError> {
        let mut cmd = self.command(Path::new("/bin/sh"));
        cmd.args(["-c", "test -x \"$1\"", "sh"]).arg(dir);
        Ok(run(cmd)?.status.success())
    }

    /// Fail clearly when the server's user cannot reach `dir`.
    pub(crate) fn check_reachable(&self, dir: &Path) -> Result<(), LocalPgError> {
        if self.can_enter(dir)? {
            return Ok(());
        }
        let mut blocker = dir.to_path_buf();
        let mut ancestors: Vec<&Path> = dir.ancestors().collect();
        ancestors.reverse();
        for ancestor in ancestors {
            if !self.can_enter(ancestor)? {
                blocker = ancestor.to_path_buf();
                break;
            }
        }
        Err(LocalPgError::NotTraversable {
            dir: dir.to_path_buf(),
            blocker,
        })
    }

    /// Create `path` as a folder only the server's user may use, or check that an existing one is.
    pub(crate) fn ensure_private_dir(&self, path: &Path) -> Result<(), LocalPgError> {
        match fs::DirBuilder::new().mode(0o700).create(path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                let meta =
                    fs::symlink_metadata(path).map_err(io_err("inspect the folder", path))?;
                let owner_ok = match self {
                    Self::CurrentUser { uid } => meta.uid() == *uid,
                    Self::Postgres { uid, .. } => meta.uid() == *uid || meta.uid() == 0,
                };
                if !meta.is_dir() || !owner_ok || meta.mode() & 0o022 != 0 {
                    return Err(LocalPgError::PrivateDirUnsafe {
                        path: path.to_path_buf(),
                    });
                }
            }
            Err(source) => {
                return Err(LocalPgError::Io {
                    action: "create the folder",
                    path: path.to_path_buf(),
                    source,
                })
            }
        }
        if let Some((uid, gid)) = self.owner() {
            lchown(path, uid, gid)?;
        }
        fs::set_permissions(path, fs::Permissions::from_mode(0o700))
            .map_err(io_err("restrict the permissions of", path))
    }
}

fn lookup_user(name: &str) -> io::Result<Option<(u32, u32)>> {
    let cname = CString::new(name).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    let mut buf: Vec<libc::c_char> = vec![0; 4096];
    loop {
        // SAFETY: an all-zero passwd (integers and null pointers) is a valid value to overwrite.
        let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
        let mut result: *mut libc::passwd = std::ptr::null_mut();
        // SAFETY: every pointer is valid for the call and `buf.len()` is the buffer's real size;
        // `pwd`'s strings point into `buf`, but only its integer fields are read afterwards.
        let rc = unsafe {
            libc::getpwnam_r(
                cname.as_ptr(),
                &mut pwd,
                buf.as_mut_ptr(),
                buf.len(),
                &mut result,
            )
        };
        if rc == libc::ERANGE && buf.len() < (1 << 20) {
            buf.resize(buf.len() * 4, 0);
            continue;
        }
        if rc != 0 {
            return Err(io::Error::from_raw_os_error(rc));
        }
        return Ok((!result.is_null()).then_some((pwd.pw_uid, pwd.pw_gid)));
    }
}

pub(crate) fn lchown(path: &Path, uid: u32, gid: u32) -> Result<(), LocalPgError> {
    std::os::unix::fs::lchown(path, Some(uid), Some(gid))
        .map_err(io_err("give the postgres user", path))
}

/// Hand `path` and everything under it to `uid:gid`, without following symlinks.
pub(crate) fn chown_recursive(path: &Path, uid: u32, gid: u32) -> Result<(), LocalPgError> {
    let meta = fs::symlink_metadata(path).map_err(io_err("inspect", path))?;
    if meta.uid() != uid || meta.gid() != gid {
        lchown(path, uid, gid)?;
    }
    if meta.is_dir() {
        for entry in fs::read_dir(path).map_err(io_err("list", path))? {
            let entry = entry.map_err(io_err("list", path))?;
            chown_recursive(&entry.path(), uid, gid)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{ephemeral, TestDir};
    use crate::LocalPostgres;

    #[test]
    fn unreachable_folder_is_reported() {
        let run_as = RunAs::detect().unwrap();
        if !run_as.is_postgres() {
            return; // Only root hands the cluster to another user.
        }
        let dir = TestDir::new("private");
        let hidden = dir.path().join("hidden");
        fs::create_dir(&hidden).unwrap();
        fs::set_permissions(&hidden, fs::Permissions::from_mode(0o700)).unwrap();
        let err = LocalPostgres::start(&hidden.join("cluster"), &ephemeral()).unwrap_err();
        match &err {
            LocalPgError::NotTraversable { blocker, .. } => {
                assert_eq!(blocker, &fs::canonicalize(&hidden).unwrap())
            }
            other => panic!("unexpected error: {other}"),
        }
        assert!(err.to_string().contains("chmod o+x"));
    }
}
