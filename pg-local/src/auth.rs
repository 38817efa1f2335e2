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
pub(crate) const PASSWORD_FILE: &str = "password";

/// What `pg_hba.conf` says, whatever it said before: the password, on every way in.
pub(crate) const HBA_CONF: &str = "\
# Written by Twofold at every start: every connection needs the password kept in the file
# `password` beside this cluster's data folder.
local all all scram-sha-256
host  all all 127.0.0.1/32 scram-sha-256
host  all all ::1/128 scram-sha-256
host  replication all 127.0.0.1/32 scram-sha-256
";

/// The superuser's password. Hex, so it goes into a URL as it is; never shown in `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(String);

impl Password {
    /// The password itself, for a connection URL or `PGPASSWORD`.
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub(crate) fn generate() -> Self {
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

/// The password kept in `dir`, if there is one.
pub(crate) fn load(dir: &Path) -> io::Result<Option<Password>> {
    let path = dir.join(PASSWORD_FILE);
    match fs::read_to_string(&path) {
        Ok(text) if is_password(text.trim()) => Ok(Some(Password(text.trim().to_owned()))),
        Ok(_) => Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{} is not a password this program wrote", path.display()),
        )),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Keeps `password` in `dir` (mode 0600), written whole or not at all. Called only once the
/// cluster knows it: a file naming a password the cluster never got would lock Twofold out.
pub(crate) fn store(dir: &Path, password: &Password) -> io::Result<()> {
    let temporary = dir.join(format!("{PASSWORD_FILE}.new"));
    let _ = fs::remove_file(&temporary);
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&temporary)?;
    file.write_all(password.0.as_bytes())?;
    file.sync_all()?;
    fs::rename(&temporary, dir.join(PASSWORD_FILE))
}

fn is_password(text: &str) -> bool {
    text.len() >= 32 && text.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The statements that set the superuser's password as a SCRAM verifier (an old cluster may
/// default to md5, which `scram-sha-256` authentication cannot check). Hex needs no quoting.
pub(crate) fn set_password_sql(user: &str, password: &Password) -> String {
    format!(
        "SET password_encryption = 'scram-sha-256';\nALTER ROLE \"{user}\" PASSWORD '{}';\n",
        password.0
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_is_kept_private_and_redacted() {
        let dir = std::env::temp_dir().join(format!("twofold-pw-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let _ = fs::remove_file(dir.join(PASSWORD_FILE));
        assert_eq!(load(&dir).unwrap(), None);
        let password = Password::generate();
        store(&dir, &password).unwrap();
        assert_eq!(load(&dir).unwrap(), Some(password.clone()));
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(dir.join(PASSWORD_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        assert!(!format!("{password:?}").contains(password.expose()));
        fs::write(dir.join(PASSWORD_FILE), "not hex").unwrap();
        assert!(load(&dir).is_err());
        fs::remove_dir_all(&dir).unwrap();
    }
}
