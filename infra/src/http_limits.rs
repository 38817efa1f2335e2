//! How long the HTTP server waits for slow clients and how many connections it keeps open
//! (`TWOFOLD_HTTP_*`). The server itself is `src/server.rs` of the binary.

use std::time::Duration;

use crate::config::ConfigError;

/// Bounds on slow, idle and numerous connections.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpLimits {
    /// `TWOFOLD_HTTP_HEADER_TIMEOUT_SECS`: longest wait for a request's complete header, counted
    /// from the first byte of a new connection and from the end of the previous response on a
    /// kept-alive one (so it is also the idle keep-alive bound).
    pub header_timeout: Duration,
    /// `TWOFOLD_HTTP_BODY_TIMEOUT_SECS`: longest wait for a request's whole body, counted from
    /// the end of its header.
    pub body_timeout: Duration,
    /// `TWOFOLD_HTTP_MAX_CONNECTIONS`: most connections open at once (WebSockets included);
    /// `None` for the default, derived from the file-descriptor limit at start-up. Either way
    /// the server keeps it well below that limit.
    pub max_connections: Option<usize>,
    /// `TWOFOLD_TRUSTED_PROXIES`: the proxies (addresses or CIDR networks, comma-separated)
    /// whose `X-Forwarded-For` names the client. Empty by default: the peer is the client.
    pub trusted_proxies: Vec<ipnet::IpNet>,
}

impl HttpLimits {
    /// Default header (and idle keep-alive) timeout.
    pub const DEFAULT_HEADER_TIMEOUT: Duration = Duration::from_secs(10);
    /// Default body timeout: 64 KiB in 30 s is 2 KiB/s, slower than any working link.
    pub const DEFAULT_BODY_TIMEOUT: Duration = Duration::from_secs(30);

    /// Reads the `TWOFOLD_HTTP_*` variables through `get` (unset or blank means default).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let set = |k: &str| get(k).filter(|v| !v.trim().is_empty());
        let secs = |var: &'static str, default: Duration| match set(var) {
            None => Ok(default),
            Some(v) => v
                .trim()
                .parse::<u64>()
                .ok()
                .filter(|s| (1..=600).contains(s))
                .map(Duration::from_secs)
                .ok_or(ConfigError::Malformed {
                    var,
                    expected: "a whole number of seconds from 1 to 600",
                }),
        };
        let max_connections = set("TWOFOLD_HTTP_MAX_CONNECTIONS")
            .map(|v| {
                v.trim()
                    .parse::<usize>()
                    .ok()
                    .filter(|n| (16..=1_000_000).contains(n))
                    .ok_or(ConfigError::Malformed {
                        var: "TWOFOLD_HTTP_MAX_CONNECTIONS",
                        expected: "a number of connections from 16 to 1000000",
                    })
            })
            .transpose()?;
        let trusted_proxies = set("TWOFOLD_TRUSTED_PROXIES")
            .map(|v| parse_networks(&v))
            .transpose()?
            .unwrap_or_default();
        Ok(Self {
            trusted_proxies,
            header_timeout: secs(
                "TWOFOLD_HTTP_HEADER_TIMEOUT_SECS",
                Self::DEFAULT_HEADER_TIMEOUT,
            )?,
            body_timeout: secs("TWOFOLD_HTTP_BODY_TIMEOUT_SECS", Self::DEFAULT_BODY_TIMEOUT)?,
            max_connections,
        })
    }
}

impl Default for HttpLimits {
    fn default() -> Self {
        Self {
            header_timeout: Self::DEFAULT_HEADER_TIMEOUT,
            body_timeout: Self::DEFAULT_BODY_TIMEOUT,
            max_connections: None,
            trusted_proxies: Vec::new(),
        }
    }
}

/// `10.0.0.0/8, 192.0.2.7, 2001:db8::/32`: a bare address is a network of one.
fn parse_networks(list: &str) -> Result<Vec<ipnet::IpNet>, ConfigError> {
    list.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<ipnet::IpNet>()
                .or_else(|_| s.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                .map(|n| n.trunc())
                .map_err(|_| ConfigError::Malformed {
                    var: "TWOFOLD_TRUSTED_PROXIES",
                    expected: "addresses or networks such as 10.0.0.0/8, comma-separated",
                })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(vars: &[(&str, &str)]) -> Result<HttpLimits, ConfigError> {
        HttpLimits::from_lookup(|k| {
            vars.iter()
                .find(|(name, _)| *name == k)
                .map(|(_, v)| v.to_string())
        })
    }

    #[test]
    fn defaults_and_bounds() {
        assert_eq!(limits(&[]).unwrap(), HttpLimits::default());
        let l = limits(&[
            ("TWOFOLD_HTTP_HEADER_TIMEOUT_SECS", "5"),
            ("TWOFOLD_HTTP_BODY_TIMEOUT_SECS", " 12 "),
            ("TWOFOLD_HTTP_MAX_CONNECTIONS", "2000"),
        ])
        .unwrap();
        assert_eq!(l.header_timeout, Duration::from_secs(5));
        assert_eq!(l.body_timeout, Duration::from_secs(12));
        assert_eq!(l.max_connections, Some(2000));
        let l = limits(&[(
            "TWOFOLD_TRUSTED_PROXIES",
            "10.0.0.7/8, 192.0.2.7,2001:db8::/32",
        )])
        .unwrap();
        let nets: Vec<String> = l.trusted_proxies.iter().map(|n| n.to_string()).collect();
        assert_eq!(nets, ["10.0.0.0/8", "192.0.2.7/32", "2001:db8::/32"]);
        for (var, bad) in [
            ("TWOFOLD_TRUSTED_PROXIES", "10.0.0.0/33"),
            ("TWOFOLD_TRUSTED_PROXIES", "proxy.internal"),
            ("TWOFOLD_HTTP_HEADER_TIMEOUT_SECS", "0"),
            ("TWOFOLD_HTTP_HEADER_TIMEOUT_SECS", "forever"),
            ("TWOFOLD_HTTP_BODY_TIMEOUT_SECS", "601"),
            ("TWOFOLD_HTTP_MAX_CONNECTIONS", "3"),
            ("TWOFOLD_HTTP_MAX_CONNECTIONS", "-1"),
        ] {
            let e = limits(&[(var, bad)]).unwrap_err().to_string();
            assert!(e.contains(var), "{e}");
        }
    }
}
