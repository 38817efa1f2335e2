//! The worker's settings from the environment: concurrency, retries, retention of finished jobs.

use std::time::Duration;

use super::RetryPolicy;

/// Bounds of `TWOFOLD_DELIVERY_RETENTION`: at least a minute, at most ten years.
const RETENTION_BOUNDS: (u64, u64) = (60, 10 * 365 * 86_400);

impl RetryPolicy {
    /// Reads `TWOFOLD_DELIVERY_CONCURRENCY` (1 to 256), `TWOFOLD_DELIVERY_MAX_ATTEMPTS` (1 to
    /// 20), `TWOFOLD_DELIVERY_FIRST_BACKOFF_SECONDS` (1 to 3600) and
    /// `TWOFOLD_DELIVERY_RETENTION` (a number and a unit, `s`, `m`, `h` or `d`, e.g. `7d`; one
    /// minute to ten years) through `get`; unset or blank: the default. A bad value is an error
    /// naming the variable and its form (it stops start-up).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, String> {
        let defaults = Self::default();
        let value = |var: &str| {
            get(var)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        let number = |var: &str, low: u64, high: u64, default: u64| match value(var) {
            None => Ok(default),
            Some(v) => v
                .parse::<u64>()
                .ok()
                .filter(|n| (low..=high).contains(n))
                .ok_or_else(|| format!("{var} must be a whole number from {low} to {high}")),
        };
        let concurrency = number(
            "TWOFOLD_DELIVERY_CONCURRENCY",
            1,
            256,
            defaults.concurrency as u64,
        )?;
        let max_attempts = number(
            "TWOFOLD_DELIVERY_MAX_ATTEMPTS",
            1,
            20,
            u64::from(defaults.max_attempts),
        )?;
        let first_backoff = number(
            "TWOFOLD_DELIVERY_FIRST_BACKOFF_SECONDS",
            1,
            3600,
            defaults.first_backoff.as_secs(),
        )?;
        let retention = match value("TWOFOLD_DELIVERY_RETENTION") {
            None => defaults.retention,
            Some(v) => parse_duration(&v)
                .filter(|d| (RETENTION_BOUNDS.0..=RETENTION_BOUNDS.1).contains(&d.as_secs()))
                .ok_or_else(|| {
                    "TWOFOLD_DELIVERY_RETENTION must be a number and a unit (s, m, h or d), \
                     e.g. 7d or 12h, from one minute to ten years"
                        .to_owned()
                })?,
        };
        Ok(Self {
            concurrency: usize::try_from(concurrency).unwrap_or(1),
            max_attempts: u32::try_from(max_attempts).unwrap_or(1),
            first_backoff: Duration::from_secs(first_backoff),
            retention,
            ..defaults
        })
    }
}

fn parse_duration(raw: &str) -> Option<Duration> {
    let unit = raw.chars().last()?;
    let seconds = match unit {
        's' => 1,
        'm' => 60,
        'h' => 3600,
        'd' => 86_400,
        _ => return None,
    };
    let n: u64 = raw[..raw.len() - 1].trim().parse().ok()?;
    n.checked_mul(seconds).map(Duration::from_secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(pairs: &[(&str, &str)]) -> Result<RetryPolicy, String> {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        RetryPolicy::from_lookup(|k| pairs.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone()))
    }

    #[test]
    fn defaults_and_values() {
        let d = read(&[]).unwrap();
        assert_eq!(d.concurrency, 32);
        assert_eq!(d.max_attempts, 5);
        assert_eq!(d.first_backoff, Duration::from_secs(2));
        assert_eq!(d.retention, Duration::from_secs(7 * 86_400));
        let p = read(&[
            ("TWOFOLD_DELIVERY_CONCURRENCY", "12"),
            ("TWOFOLD_DELIVERY_MAX_ATTEMPTS", " 3 "),
            ("TWOFOLD_DELIVERY_FIRST_BACKOFF_SECONDS", "10"),
            ("TWOFOLD_DELIVERY_RETENTION", "12h"),
        ])
        .unwrap();
        assert_eq!(
            (p.concurrency, p.max_attempts, p.first_backoff, p.retention),
            (
                12,
                3,
                Duration::from_secs(10),
                Duration::from_secs(12 * 3600)
            )
        );
    }

    #[test]
    fn bad_values_name_the_variable() {
        for (var, value) in [
            ("TWOFOLD_DELIVERY_CONCURRENCY", "0"),
            ("TWOFOLD_DELIVERY_CONCURRENCY", "many"),
            ("TWOFOLD_DELIVERY_MAX_ATTEMPTS", "21"),
            ("TWOFOLD_DELIVERY_FIRST_BACKOFF_SECONDS", "-1"),
            ("TWOFOLD_DELIVERY_RETENTION", "7"),
            ("TWOFOLD_DELIVERY_RETENTION", "30s"),
            ("TWOFOLD_DELIVERY_RETENTION", "7w"),
        ] {
            let e = read(&[(var, value)]).unwrap_err();
            assert!(e.starts_with(var), "{var}={value}: {e}");
        }
    }
}
