//! Finding PostgreSQL's programs, and the version that matches an existing data folder.

use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::command::{combined_output, describe, run};
use crate::error::LocalPgError;

/// Where Debian installs one `bin` folder per PostgreSQL major version.
pub(crate) const VERSIONED_BIN_ROOT: &str = "/usr/lib/postgresql";

/// The PostgreSQL programs used, by absolute path.
#[derive(Debug, Clone)]
pub(crate) struct Binaries {
    pub(crate) initdb: PathBuf,
    pub(crate) pg_ctl: PathBuf,
    pub(crate) postgres: PathBuf,
}

/// Another program of the PostgreSQL installation the cluster runs on (`pg_dump`,
/// `pg_restore`, `pg_basebackup`): from the folder `initdb` is found in.
pub fn program(name: &str) -> Result<PathBuf, LocalPgError> {
    let found = Binaries::find(None, Path::new("."))?;
    let path = found
        .initdb
        .parent()
        .map(|dir| dir.join(name))
        .filter(|path| is_executable(path))
        .ok_or(LocalPgError::BinariesNotFound)?;
    Ok(path)
}

impl Binaries {
    /// `initdb` and `pg_ctl` from PATH, else from the newest /usr/lib/postgresql/*/bin; but the
    /// version that made an existing data folder if the first choice is another one.
    pub(crate) fn find(data_version: Option<&str>, data_dir: &Path) -> Result<Self, LocalPgError> {
        let on_path = std::env::var_os("PATH")
            .map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
            .unwrap_or_default()
            .into_iter()
            .filter(|dir| is_executable(&dir.join("initdb")) && is_executable(&dir.join("pg_ctl")))
            .find_map(|dir| Self::in_dir(&dir));
        let found = on_path
            .or_else(Self::newest_versioned)
            .ok_or(LocalPgError::BinariesNotFound)?;
        let Some(data_version) = data_version else {
            return Ok(found);
        };
        let binary_version = found.major_version()?;
        if binary_version == data_version {
            return Ok(found);
        }
        let matching = Path::new(VERSIONED_BIN_ROOT).join(data_version).join("bin");
        if let Some(matching) = Self::in_dir(&matching) {
            if matching.major_version()? == data_version {
                return Ok(matching);
            }
        }
        Err(LocalPgError::VersionMismatch {
            data_dir: data_dir.to_path_buf(),
            data_version: data_version.to_owned(),
            binary_version,
        })
    }

    /// The programs in the real folder behind `dir/initdb` (following symlinks such as
    /// /usr/local/bin/initdb), which must also hold `pg_ctl` and `postgres`.
    fn in_dir(dir: &Path) -> Option<Self> {
        let initdb = fs::canonicalize(dir.join("initdb")).ok()?;
        let bin_dir = initdb.parent()?.to_path_buf();
        let complete = ["initdb", "pg_ctl", "postgres"]
            .iter()
            .all(|name| is_executable(&bin_dir.join(name)));
        complete.then(|| Self {
            pg_ctl: bin_dir.join("pg_ctl"),
            postgres: bin_dir.join("postgres"),
            initdb,
        })
    }

    fn newest_versioned() -> Option<Self> {
        let mut versions: Vec<(Vec<u32>, PathBuf)> = fs::read_dir(VERSIONED_BIN_ROOT)
            .ok()?
            .filter_map(Result::ok)
            .filter_map(|entry| {
                let name = entry.file_name().to_str()?.to_owned();
                let key = name
                    .split('.')
                    .map(|part| part.parse::<u32>().ok())
                    .collect::<Option<Vec<u32>>>()?;
                Some((key, entry.path().join("bin")))
            })
            .collect();
        versions.sort_by(|a, b| b.0.cmp(&a.0));
        versions.iter().find_map(|(_, bin)| Self::in_dir(bin))
    }

    /// Major version, as data/PG_VERSION writes it ("15", or "9.6" before 10).
    fn major_version(&self) -> Result<String, LocalPgError> {
        let mut cmd = Command::new(&self.pg_ctl);
        cmd.arg("--version").stdin(Stdio::null());
        let command = describe(&cmd);
        let out = run(cmd)?;
        let text = String::from_utf8_lossy(&out.stdout);
        match parse_major_version(&text) {
            Some(version) if out.status.success() => Ok(version),
            _ => Err(LocalPgError::CommandFailed {
                command,
                status: out.status.to_string(),
                output: combined_output(&out),
            }),
        }
    }
}

/// "pg_ctl (PostgreSQL) 15.20 (Debian ...)" -> "15"; "... 9.6.24" -> "9.6".
fn parse_major_version(text: &str) -> Option<String> {
    let version = text
        .split_whitespace()
        .find(|word| word.starts_with(|c: char| c.is_ascii_digit()))?;
    let mut numbers = version
        .split(|c: char| !c.is_ascii_digit())
        .filter(|part| !part.is_empty());
    let major: u32 = numbers.next()?.parse().ok()?;
    if major >= 10 {
        Some(major.to_string())
    } else {
        Some(format!("{major}.{}", numbers.next()?))
    }
}

/// Major version recorded in an existing data folder, if it holds a cluster.
pub(crate) fn read_pg_version(data_dir: &Path) -> Result<Option<String>, LocalPgError> {
    let path = data_dir.join("PG_VERSION");
    match fs::read_to_string(&path) {
        Ok(text) => Ok(Some(text.trim().to_owned())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(LocalPgError::Io {
            action: "read",
            path,
            source,
        }),
    }
}

pub(crate) fn find_program(name: &str, fallbacks: &[&str]) -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|dir| dir.join(name))
            .find(|candidate| candidate.is_absolute() && is_executable(candidate))
    });
    on_path.or_else(|| {
        fallbacks
            .iter()
            .map(PathBuf::from)
            .find(|candidate| is_executable(candidate))
    })
}

fn is_executable(path: &Path) -> bool {
    fs::metadata(path).is_ok_and(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn major_versions_as_pg_version_writes_them() {
        assert_eq!(
            parse_major_version("pg_ctl (PostgreSQL) 15.20 (Debian 15.20-0+deb12u1)").as_deref(),
            Some("15")
        );
        assert_eq!(
            parse_major_version("pg_ctl (PostgreSQL) 9.6.24").as_deref(),
            Some("9.6")
        );
        assert_eq!(
            parse_major_version("pg_ctl (PostgreSQL) 17devel").as_deref(),
            Some("17")
        );
    }
}
