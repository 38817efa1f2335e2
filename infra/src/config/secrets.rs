//! The three secrets: parsed from the environment, or generated once and kept in the data
//! folder in zero-config mode.

use std::path::Path;

use rand::RngCore;

use super::{ConfigError, Settings, HEX32, MASTER_VAR, PEPPER_VAR, TOKEN_VAR};

/// A 32-byte secret key (master key, hash pepper). Its `Debug` never shows the bytes, and its
/// bytes are wiped when it is dropped.
#[derive(Clone, PartialEq, Eq, zeroize::ZeroizeOnDrop)]
pub struct Key32([u8; 32]);

impl Key32 {
    /// Wraps raw key bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// Parses 64 hex characters.
    pub fn from_hex(var: &'static str, raw: &str) -> Result<Self, ConfigError> {
        let malformed = || ConfigError::Malformed {
            var,
            expected: "32 random bytes written as 64 hex characters (e.g. `openssl rand -hex 32`)",
        };
        let decoded = zeroize::Zeroizing::new(hex::decode(raw.trim()).map_err(|_| malformed())?);
        let mut key = Self([0u8; 32]);
        if decoded.len() != key.0.len() {
            return Err(malformed());
        }
        key.0.copy_from_slice(&decoded);
        Ok(key)
    }

    /// A new random key from the OS CSPRNG.
    pub fn generate() -> Self {
        let mut bytes = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        Self(bytes)
    }

    /// The key bytes, for the crypto adapter only.
    pub fn expose(&self) -> &[u8; 32] {
        &self.0
    }

    fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl std::fmt::Debug for Key32 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Key32(<redacted>)")
    }
}

/// The operator token (at least 32 characters). Its `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct OperatorToken(String);

impl OperatorToken {
    /// Shortest accepted token.
    pub const MIN_LEN: usize = 32;

    /// Parses a token.
    pub fn parse(raw: &str) -> Result<Self, ConfigError> {
        let raw = raw.trim();
        if raw.chars().count() < Self::MIN_LEN || raw.chars().any(char::is_whitespace) {
            return Err(ConfigError::Malformed {
                var: "TWOFOLD_OPERATOR_TOKEN",
                expected: "a string of at least 32 characters without spaces",
            });
        }
        Ok(Self(raw.to_owned()))
    }

    /// A new random token.
    pub fn generate() -> Self {
        let mut bytes = [0u8; 24];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        Self(format!("tfo_{}", hex::encode(bytes)))
    }

    /// The token, to configure the authenticator and to print in zero-config mode.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for OperatorToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OperatorToken(<redacted>)")
    }
}

/// The three secrets the service needs.
#[derive(Debug, Clone)]
pub struct Secrets {
    /// Creates tenants.
    pub operator_token: OperatorToken,
    /// Wraps the per-tenant data keys that seal secrets and PII.
    pub master_key: Key32,
    /// `TWOFOLD_MASTER_KEY_PREVIOUS`: during a rotation, the master key being replaced; data keys
    /// still wrapped under it keep opening until `twofold keys rotate` has rewrapped them.
    pub previous_master_key: Option<Key32>,
    /// Keys the hashes of API keys, codes and tokens.
    pub hash_pepper: Key32,
}

impl Settings {
    /// The secrets: all three must be set, except in zero-config mode, where the missing ones
    /// are generated once and kept in `<data dir>/dev-secrets.env` (mode 0600).
    pub fn secrets(&self) -> Result<Secrets, ConfigError> {
        if !self.zero_config() {
            return Ok(Secrets {
                operator_token: self.operator_token.clone().ok_or(ConfigError::Missing {
                    var: TOKEN_VAR,
                    expected: "a string of at least 32 characters",
                })?,
                master_key: self.master_key.clone().ok_or(ConfigError::Missing {
                    var: MASTER_VAR,
                    expected: HEX32,
                })?,
                previous_master_key: self.previous_master_key.clone(),
                hash_pepper: self.hash_pepper.clone().ok_or(ConfigError::Missing {
                    var: PEPPER_VAR,
                    expected: HEX32,
                })?,
            });
        }
        if let (Some(operator_token), Some(master_key), Some(hash_pepper)) = (
            self.operator_token.clone(),
            self.master_key.clone(),
            self.hash_pepper.clone(),
        ) {
            return Ok(Secrets {
                operator_token,
                master_key,
                previous_master_key: self.previous_master_key.clone(),
                hash_pepper,
            });
        }
        let stored = DevSecrets::load_or_create(&self.data_dir)?;
        Ok(Secrets {
            operator_token: self.operator_token.clone().unwrap_or(stored.operator_token),
            master_key: self.master_key.clone().unwrap_or(stored.master_key),
            previous_master_key: self.previous_master_key.clone(),
            hash_pepper: self.hash_pepper.clone().unwrap_or(stored.hash_pepper),
        })
    }
}

/// The zero-config secrets file.
struct DevSecrets;

impl DevSecrets {
    fn load_or_create(dir: &Path) -> Result<Secrets, ConfigError> {
        let path = dir.join("dev-secrets.env");
        let io = |source| ConfigError::DevSecrets {
            path: path.clone(),
            source,
        };
        if let Ok(text) = std::fs::read_to_string(&path) {
            let get = |k: &str| {
                text.lines()
                    .filter_map(|l| l.split_once('='))
                    .find(|(name, _)| name.trim() == k)
                    .map(|(_, v)| v.trim().to_owned())
            };
            let missing = |var| ConfigError::Missing {
                var,
                expected: "a value in the dev secrets file; delete the file to regenerate it",
            };
            return Ok(Secrets {
                operator_token: OperatorToken::parse(&get(TOKEN_VAR).ok_or(missing(TOKEN_VAR))?)?,
                master_key: Key32::from_hex(
                    MASTER_VAR,
                    &get(MASTER_VAR).ok_or(missing(MASTER_VAR))?,
                )?,
                previous_master_key: None,
                hash_pepper: Key32::from_hex(
                    PEPPER_VAR,
                    &get(PEPPER_VAR).ok_or(missing(PEPPER_VAR))?,
                )?,
            });
        }
        let secrets = Secrets {
            operator_token: OperatorToken::generate(),
            master_key: Key32::generate(),
            previous_master_key: None,
            hash_pepper: Key32::generate(),
        };
        std::fs::create_dir_all(dir).map_err(io)?;
        let text = format!(
            "# Generated by `twofold serve` for local development only. Never use in production.\n\
             {TOKEN_VAR}={}\n{MASTER_VAR}={}\n{PEPPER_VAR}={}\n",
            secrets.operator_token.expose(),
            secrets.master_key.to_hex(),
            secrets.hash_pepper.to_hex(),
        );
        write_private(&path, &text).map_err(io)?;
        Ok(secrets)
    }
}

/// Writes a file readable by its owner only.
pub fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(text.as_bytes())
}
