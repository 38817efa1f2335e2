//! The private cluster accepts no connection without its password.
//!
//! It used to be initialised with `--auth=trust`: any local user could connect over TCP on
//! 127.0.0.1 as the superuser and read or rewrite every tenant's events. Now a random password is
//! generated once, kept beside the data in `password` (mode 0600, readable only by whoever runs
//! Twofold), and every connection, TCP or Unix socket, must present it with `scram-sha-256`.
//! A cluster made by an older version (trust, no password file) gets a password on its next
//! start, set in single-user mode before the server listens.

use std::fs::{self, OpenOptions};
use std::io::{self, Write as _};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use rand::RngCore;

/// The file beside `data/` that holds the password.
pub(super) const PASSWORD_FILE: &str = "password";

/// What `pg_hba.conf` says, whatever it said before: the password, on every way in.
pub(super) const HBA_CONF: &str = "\
# Written by Twofold at every start: every connection needs the password kept in the file
# `password` beside this cluster's data folder.
local all all scram-sha-256
host  all all 127.0.0.1/32 scram-sha-256
host  all all ::1/128 scram-sha-256
";

/// The superuser's password. Hex, so it goes into a URL as it is; never shown in `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(String);

impl Password {
    /// The password itself, for a connection URL or `PGPASSWORD`.
    pub fn expose(&self) -> &str {
        &self.0
    }

    fn generate() -> Self {
        let mut bytes = [0u8; 24];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        Self(hex::encode(bytes))
    }
}

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password(<redacted>)")
    }
}

/// Reads the password kept in `dir`, or makes and keeps a new one (then `true`: the cluster, if
/// it exists, does not know it yet).
pub(super) fn load_or_create(dir: &Path) -> io::Result<(Password, bool)> {
    let path = dir.join(PASSWORD_FILE);
    match fs::read_to_string(&path) {
        Ok(text) if is_password(text.trim()) => {
            return Ok((Password(text.trim().to_owned()), false))
        }
        Ok(_) => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{} is not a password this program wrote", path.display()),
            ))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let password = Password::generate();
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)?;
    file.write_all(password.0.as_bytes())?;
    file.sync_all()?;
    Ok((password, true))
}

fn is_password(text: &str) -> bool {
    text.len() >= 32 && text.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The statement that sets the superuser's password (hex needs no quoting).
pub(super) fn set_password_sql(user: &str, password: &Password) -> String {
    format!("ALTER ROLE \"{user}\" PASSWORD '{}';\n", password.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_is_made_once_private_and_redacted() {
        let dir = std::env::temp_dir().join(format!("twofold-pw-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let _ = fs::remove_file(dir.join(PASSWORD_FILE));
        let (first, created) = load_or_create(&dir).unwrap();
        assert!(created);
        let (again, created) = load_or_create(&dir).unwrap();
        assert!(!created);
        assert_eq!(first, again);
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(dir.join(PASSWORD_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        assert!(!format!("{first:?}").contains(first.expose()));
        fs::write(dir.join(PASSWORD_FILE), "not hex").unwrap();
        assert!(load_or_create(&dir).is_err());
        fs::remove_dir_all(&dir).unwrap();
    }
}
