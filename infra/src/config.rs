//! Configuration from the environment (`TWOFOLD_*`, `DATABASE_URL`).
//!
//! Secrets are parsed at start-up and a missing or malformed one stops the service with a message
//! that says which variable and what form it must have. Only the zero-configuration default (no
//! `DATABASE_URL`) generates secrets it lacks, and keeps them in its data folder so a restart
//! finds the same keys.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use rand::RngCore;

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

/// A configuration problem, named precisely enough to fix.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A required variable is not set.
    #[error("{var} is not set: {expected}")]
    Missing {
        var: &'static str,
        /// What it must hold.
        expected: &'static str,
    },
    /// A variable is set but not of the right form (its value is never echoed).
    #[error("{var} is malformed: expected {expected}")]
    Malformed {
        var: &'static str,
        /// What it must hold.
        expected: &'static str,
    },
    /// A production start (`DATABASE_URL` set) would print codes instead of sending them.
    #[error(
        "no {channels} configured while DATABASE_URL is set: codes would be printed to the \
         console instead of sent. Configure TWOFOLD_SMTP_URL and TWOFOLD_SMS_PROVIDER, or set \
         TWOFOLD_DELIVERY=console to print them on purpose (development only)"
    )]
    ConsoleDelivery {
        /// What is missing, e.g. "SMTP server or SMS provider".
        channels: &'static str,
    },
    /// Reading or writing the zero-config secrets file failed.
    #[error("cannot use dev secrets file {path}: {source}")]
    DevSecrets {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
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

/// Everything read from the environment.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `DATABASE_URL`; `None` selects the zero-config private PostgreSQL.
    pub database_url: Option<String>,
    /// `TWOFOLD_BIND`, default `127.0.0.1:8080`.
    pub bind: SocketAddr,
    /// `TWOFOLD_DATA_DIR`, default `.twofold`.
    pub data_dir: PathBuf,
    /// `TWOFOLD_DB_POOL_SIZE`: most PostgreSQL connections of this instance, default 8.
    pub db_pool_size: u32,
    /// `TWOFOLD_HTTP_*`: slow-client timeouts and the connection cap.
    pub http: crate::http_limits::HttpLimits,
    /// `TWOFOLD_GRAPHIQL`: `on` (default) or `off`, whether `GET /graphql` serves GraphiQL.
    pub graphiql: bool,
    /// `TWOFOLD_CONSOLE`: `on` (default) or `off`, whether the console is served at `/console`.
    pub console: bool,
    /// `TWOFOLD_PUBLIC_URL`: where browsers reach the service (`https://2fa.example.com`), for
    /// the hosted pages' links; by default `http://` and the bound address.
    pub public_url: Option<String>,
    /// `TWOFOLD_DRAIN_SECONDS`: after SIGTERM, how long the instance keeps serving while
    /// `/health/ready` already answers 503, so a load balancer takes it out of rotation before
    /// it stops accepting connections. Default 5 s with `DATABASE_URL`, 0 in zero-config mode;
    /// SIGINT (Ctrl-C) never waits.
    pub drain_delay: std::time::Duration,
    /// Set secrets; in zero-config mode the missing ones are generated by [`Settings::secrets`].
    operator_token: Option<OperatorToken>,
    master_key: Option<Key32>,
    previous_master_key: Option<Key32>,
    hash_pepper: Option<Key32>,
}

/// An `http(s)://host[:port]` origin, kept without a trailing slash.
fn public_url(raw: &str) -> Result<String, ConfigError> {
    let bad = || ConfigError::Malformed {
        var: "TWOFOLD_PUBLIC_URL",
        expected: "an https origin such as https://2fa.example.com (no path, query or \
                   credentials; http only for localhost)",
    };
    let url = url::Url::parse(raw.trim()).map_err(|_| bad())?;
    // Plain http only on this machine: a link sent in clear elsewhere can be read and opened
    // first by anyone on the path.
    let loopback = match url.host() {
        Some(url::Host::Domain(d)) => d == "localhost",
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    };
    let ok = (url.scheme() == "https" || (url.scheme() == "http" && loopback))
        && url.host().is_some()
        && url.username().is_empty()
        && url.password().is_none()
        && url.path() == "/"
        && url.query().is_none()
        && url.fragment().is_none();
    if !ok {
        return Err(bad());
    }
    Ok(url.origin().ascii_serialization())
}

/// Connections per instance by default. On the 2-core benchmark machine 4 to 20 gave the same
/// throughput within run-to-run noise (decision 68); 8 leaves headroom for the event processor and
/// the delivery worker next to the requests, and can be raised on bigger machines.
pub const DEFAULT_POOL_SIZE: u32 = 8;

/// Long enough for a load balancer or Kubernetes' endpoints to see a failing readiness probe
/// (a probe every second or two) and stop sending new connections.
pub const DEFAULT_DRAIN_DELAY: std::time::Duration = std::time::Duration::from_secs(5);

const TOKEN_VAR: &str = "TWOFOLD_OPERATOR_TOKEN";
const MASTER_VAR: &str = "TWOFOLD_MASTER_KEY";
const PREVIOUS_MASTER_VAR: &str = "TWOFOLD_MASTER_KEY_PREVIOUS";
const PEPPER_VAR: &str = "TWOFOLD_HASH_PEPPER";
const HEX32: &str = "32 random bytes written as 64 hex characters (e.g. `openssl rand -hex 32`)";

impl Settings {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// Reads settings through `get` (the environment, or a map in tests).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let set = |k: &str| get(k).filter(|v| !v.trim().is_empty());
        let bind = match set("TWOFOLD_BIND") {
            Some(v) => v.trim().parse().map_err(|_| ConfigError::Malformed {
                var: "TWOFOLD_BIND",
                expected: "an address and port such as 127.0.0.1:8080",
            })?,
            None => SocketAddr::from(([127, 0, 0, 1], 8080)),
        };
        let db_pool_size = match set("TWOFOLD_DB_POOL_SIZE") {
            Some(v) => v
                .trim()
                .parse::<u32>()
                .ok()
                .filter(|n| (2..=1000).contains(n))
                .ok_or(ConfigError::Malformed {
                    var: "TWOFOLD_DB_POOL_SIZE",
                    expected: "a number of connections from 2 to 1000",
                })?,
            None => DEFAULT_POOL_SIZE,
        };
        let switch = |var: &'static str| match set(var).as_deref().map(str::trim) {
            None | Some("on") => Ok(true),
            Some("off") => Ok(false),
            Some(_) => Err(ConfigError::Malformed {
                var,
                expected: "`on` or `off`",
            }),
        };
        let drain_delay = match set("TWOFOLD_DRAIN_SECONDS") {
            Some(v) => v
                .trim()
                .parse::<u64>()
                .ok()
                .filter(|n| *n <= 300)
                .map(std::time::Duration::from_secs)
                .ok_or(ConfigError::Malformed {
                    var: "TWOFOLD_DRAIN_SECONDS",
                    expected: "a number of seconds from 0 to 300",
                })?,
            None if set("DATABASE_URL").is_some() => DEFAULT_DRAIN_DELAY,
            None => std::time::Duration::ZERO,
        };
        Ok(Self {
            drain_delay,
            graphiql: switch("TWOFOLD_GRAPHIQL")?,
            console: switch("TWOFOLD_CONSOLE")?,
            database_url: set("DATABASE_URL"),
            public_url: set("TWOFOLD_PUBLIC_URL")
                .map(|v| public_url(&v))
                .transpose()?,
            bind,
            db_pool_size,
            http: crate::http_limits::HttpLimits::from_lookup(&get)?,
            data_dir: set("TWOFOLD_DATA_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from(".twofold")),
            operator_token: set(TOKEN_VAR)
                .map(|v| OperatorToken::parse(&v))
                .transpose()?,
            master_key: set(MASTER_VAR)
                .map(|v| Key32::from_hex(MASTER_VAR, &v))
                .transpose()?,
            previous_master_key: set(PREVIOUS_MASTER_VAR)
                .map(|v| Key32::from_hex(PREVIOUS_MASTER_VAR, &v))
                .transpose()?,
            hash_pepper: set(PEPPER_VAR)
                .map(|v| Key32::from_hex(PEPPER_VAR, &v))
                .transpose()?,
        })
    }

    /// Whether this is the zero-configuration default (no `DATABASE_URL`).
    pub fn zero_config(&self) -> bool {
        self.database_url.is_none()
    }

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

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::time::Duration;

    fn settings(vars: &[(&str, &str)]) -> Result<Settings, ConfigError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Settings::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn defaults_are_local_and_zero_config() {
        let s = settings(&[]).unwrap();
        assert!(s.zero_config());
        assert_eq!(s.bind.to_string(), "127.0.0.1:8080");
        assert_eq!(s.data_dir, PathBuf::from(".twofold"));
    }

    #[test]
    fn with_a_database_every_secret_is_required() {
        let s = settings(&[("DATABASE_URL", "postgres://x/y")]).unwrap();
        let e = s.secrets().unwrap_err().to_string();
        assert!(e.contains("TWOFOLD_OPERATOR_TOKEN is not set"), "{e}");
    }

    #[test]
    fn malformed_secrets_are_named_but_never_echoed() {
        let e = settings(&[("TWOFOLD_MASTER_KEY", "deadbeef-not-a-key")])
            .unwrap_err()
            .to_string();
        assert!(e.contains("TWOFOLD_MASTER_KEY is malformed"), "{e}");
        assert!(!e.contains("deadbeef"), "{e}");
        let e = settings(&[("TWOFOLD_OPERATOR_TOKEN", "short")])
            .unwrap_err()
            .to_string();
        assert!(e.contains("at least 32"), "{e}");
        assert!(settings(&[("TWOFOLD_BIND", "nonsense")]).is_err());
        assert!(settings(&[("TWOFOLD_DB_POOL_SIZE", "1")]).is_err());
        assert!(settings(&[("TWOFOLD_DB_POOL_SIZE", "many")]).is_err());
        assert!(settings(&[("TWOFOLD_GRAPHIQL", "no")]).is_err());
        assert!(settings(&[("TWOFOLD_DRAIN_SECONDS", "301")]).is_err());
        assert!(settings(&[("TWOFOLD_DRAIN_SECONDS", "-1")]).is_err());
        assert_eq!(settings(&[]).unwrap().drain_delay, Duration::ZERO);
        assert_eq!(
            settings(&[("DATABASE_URL", "postgres://x/y")])
                .unwrap()
                .drain_delay,
            DEFAULT_DRAIN_DELAY
        );
        assert_eq!(
            settings(&[
                ("TWOFOLD_DRAIN_SECONDS", "0"),
                ("DATABASE_URL", "postgres://x/y")
            ])
            .unwrap()
            .drain_delay,
            Duration::ZERO
        );
        assert!(!settings(&[("TWOFOLD_GRAPHIQL", "off")]).unwrap().graphiql);
        assert!(settings(&[]).unwrap().graphiql);
        assert!(!settings(&[("TWOFOLD_CONSOLE", "off")]).unwrap().console);
        assert_eq!(
            settings(&[("TWOFOLD_PUBLIC_URL", "https://2FA.example.com/")])
                .unwrap()
                .public_url
                .as_deref(),
            Some("https://2fa.example.com")
        );
        assert_eq!(
            settings(&[("TWOFOLD_PUBLIC_URL", "http://127.0.0.1:8080")])
                .unwrap()
                .public_url
                .as_deref(),
            Some("http://127.0.0.1:8080")
        );
        for bad in [
            "2fa.example.com",
            "https://2fa.example.com/x",
            "ftp://h",
            "https://u@h",
            "http://2fa.example.com",
        ] {
            assert!(settings(&[("TWOFOLD_PUBLIC_URL", bad)]).is_err(), "{bad}");
        }
        assert!(settings(&[]).unwrap().console);
        assert!(settings(&[("TWOFOLD_CONSOLE", "yes")]).is_err());
        assert_eq!(
            settings(&[("TWOFOLD_DB_POOL_SIZE", "12")])
                .unwrap()
                .db_pool_size,
            12
        );
        assert!(format!("{:?}", Key32::generate()).contains("redacted"));
    }

    #[test]
    fn zero_config_generates_secrets_once_and_reuses_them() {
        let dir = std::env::temp_dir().join(format!("twofold-cfg-{}", uuid::Uuid::new_v4()));
        let s = settings(&[("TWOFOLD_DATA_DIR", dir.to_str().unwrap())]).unwrap();
        let first = s.secrets().unwrap();
        let second = s.secrets().unwrap();
        assert_eq!(first.master_key, second.master_key);
        assert_eq!(first.operator_token, second.operator_token);
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.join("dev-secrets.env"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        std::fs::remove_dir_all(dir).unwrap();
    }
}
