//! Counters behind `GET /metrics` (DESIGN.md section 4), in Prometheus' text format.
//!
//! What an operator watches: requests by status class, GraphQL errors by their stable code
//! (a rise in `INVALID_CODE` or `LOCKED_OUT` is a guessing attack, one in `INTERNAL` a fault),
//! and how long requests take. Every figure is a total over all tenants: no label carries a
//! tenant, a user, a key or anything else a request sent, so the endpoint can leak nothing of
//! a tenant's and its series never grow with traffic.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use twofold_services::ErrorCode;

/// Upper bounds of the latency histogram's buckets, in seconds.
const BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

/// The codes counted, in the order they are reported.
const CODES: [ErrorCode; 11] = ErrorCode::ALL;

/// The error codes of one response, left on it by the handler for the metrics layer.
#[derive(Debug, Clone, Default)]
pub struct ErrorCodes(pub Vec<ErrorCode>);

/// The service's counters. One per process, shared by every request.
#[derive(Debug)]
pub struct Metrics {
    started: Instant,
    /// Responses by status class: 1xx to 5xx.
    responses: [AtomicU64; 5],
    errors: [AtomicU64; CODES.len()],
    /// Requests per bucket of [`BUCKETS`] (not cumulative), then the ones above the last.
    latency: [AtomicU64; BUCKETS.len() + 1],
    latency_sum_micros: AtomicU64,
}

impl Default for Metrics {
    fn default() -> Self {
        Self {
            started: Instant::now(),
            responses: Default::default(),
            errors: Default::default(),
            latency: Default::default(),
            latency_sum_micros: AtomicU64::new(0),
        }
    }
}

impl Metrics {
    /// Records one answered request.
    pub fn record(&self, status: u16, took: Duration, codes: &[ErrorCode]) {
        let class = usize::from(status / 100).clamp(1, 5) - 1;
        self.responses[class].fetch_add(1, Ordering::Relaxed);
        for code in codes {
            if let Some(i) = CODES.iter().position(|c| c == code) {
                self.errors[i].fetch_add(1, Ordering::Relaxed);
            }
        }
        let seconds = took.as_secs_f64();
        let bucket = BUCKETS
            .iter()
            .position(|&bound| seconds <= bound)
            .unwrap_or(BUCKETS.len());
        self.latency[bucket].fetch_add(1, Ordering::Relaxed);
        self.latency_sum_micros.fetch_add(
            u64::try_from(took.as_micros()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
    }

    /// Everything, in Prometheus' text exposition format (version 0.0.4).
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(4096);
        let _ = writeln!(
            out,
            "# HELP twofold_uptime_seconds Seconds since this instance started.\n\
             # TYPE twofold_uptime_seconds gauge\n\
             twofold_uptime_seconds {:.3}",
            self.started.elapsed().as_secs_f64()
        );
        out.push_str(
            "# HELP twofold_http_responses_total HTTP responses, by status class.\n\
             # TYPE twofold_http_responses_total counter\n",
        );
        for (i, count) in self.responses.iter().enumerate() {
            let _ = writeln!(
                out,
                "twofold_http_responses_total{{class=\"{}xx\"}} {}",
                i + 1,
                count.load(Ordering::Relaxed)
            );
        }
        out.push_str(
            "# HELP twofold_graphql_errors_total GraphQL errors answered, by extensions.code.\n\
             # TYPE twofold_graphql_errors_total counter\n",
        );
        for (code, count) in CODES.iter().zip(&self.errors) {
            let _ = writeln!(
                out,
                "twofold_graphql_errors_total{{code=\"{}\"}} {}",
                code.as_str(),
                count.load(Ordering::Relaxed)
            );
        }
        out.push_str(
            "# HELP twofold_http_request_duration_seconds Time from a request's arrival to its \
             response.\n\
             # TYPE twofold_http_request_duration_seconds histogram\n",
        );
        let mut cumulative = 0;
        for (bound, count) in BUCKETS.iter().zip(&self.latency) {
            cumulative += count.load(Ordering::Relaxed);
            let _ = writeln!(
                out,
                "twofold_http_request_duration_seconds_bucket{{le=\"{bound}\"}} {cumulative}"
            );
        }
        cumulative += self.latency[BUCKETS.len()].load(Ordering::Relaxed);
        let _ = writeln!(
            out,
            "twofold_http_request_duration_seconds_bucket{{le=\"+Inf\"}} {cumulative}\n\
             twofold_http_request_duration_seconds_sum {:.6}\n\
             twofold_http_request_duration_seconds_count {cumulative}",
            self.latency_sum_micros.load(Ordering::Relaxed) as f64 / 1e6
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(text: &str, series: &str) -> f64 {
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or_else(|| panic!("no {series} in\n{text}"))
    }

    #[test]
    fn requests_are_counted_by_class_code_and_latency_bucket() {
        let metrics = Metrics::default();
        metrics.record(200, Duration::from_millis(3), &[]);
        metrics.record(200, Duration::from_millis(3), &[ErrorCode::InvalidCode]);
        metrics.record(
            401,
            Duration::from_micros(500),
            &[ErrorCode::Unauthenticated],
        );
        metrics.record(503, Duration::from_secs(30), &[ErrorCode::Internal]);
        let text = metrics.render();
        // Buckets are cumulative: 0.5 ms, then two of 3 ms, then one past the last bound.
        let expected = [
            ("twofold_http_responses_total{class=\"2xx\"}", 2.0),
            ("twofold_http_responses_total{class=\"4xx\"}", 1.0),
            ("twofold_http_responses_total{class=\"5xx\"}", 1.0),
            ("twofold_graphql_errors_total{code=\"INVALID_CODE\"}", 1.0),
            ("twofold_graphql_errors_total{code=\"LOCKED_OUT\"}", 0.0),
            (
                "twofold_http_request_duration_seconds_bucket{le=\"0.001\"}",
                1.0,
            ),
            (
                "twofold_http_request_duration_seconds_bucket{le=\"0.005\"}",
                3.0,
            ),
            (
                "twofold_http_request_duration_seconds_bucket{le=\"5\"}",
                3.0,
            ),
            (
                "twofold_http_request_duration_seconds_bucket{le=\"+Inf\"}",
                4.0,
            ),
            ("twofold_http_request_duration_seconds_count", 4.0),
        ];
        for (series, want) in expected {
            assert_eq!(value(&text, series), want, "{series} in\n{text}");
        }
        let sum = value(&text, "twofold_http_request_duration_seconds_sum");
        assert!((sum - 30.0065).abs() < 1e-6, "{sum}");
    }
}
