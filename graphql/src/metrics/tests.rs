use std::time::Duration;

use twofold_domain::channel::Channel;
use twofold_services::delivery::{AttemptResult, DeliveryCount};
use twofold_services::ports::{Backlog, DeliveryKind, InstanceState};
use twofold_services::ErrorCode;

use super::Metrics;

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
    let text = metrics.render(InstanceState::default(), None);
    // Buckets are cumulative: 0.5 ms, then two of 3 ms, then one past the last bound.
    let expected = [
        ("twofold_http_responses_total{class=\"2xx\"}", 2.0),
        ("twofold_http_responses_total{class=\"4xx\"}", 1.0),
        ("twofold_http_responses_total{class=\"5xx\"}", 1.0),
        ("twofold_http_responses_total{class=\"1xx\"}", 0.0),
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
        ("twofold_database_up", 0.0),
    ];
    for (series, want) in expected {
        assert_eq!(value(&text, series), want, "{series} in\n{text}");
    }
    let sum = value(&text, "twofold_http_request_duration_seconds_sum");
    assert!((sum - 30.0065).abs() < 1e-6, "{sum}");
    // Without the database's answer, no figure read from it is shown (a stale one would lie).
    assert!(!text.contains("twofold_delivery_queue_due"), "{text}");
}

#[test]
fn the_instance_and_its_backlogs_are_shown_with_fixed_labels_only() {
    let metrics = Metrics::default();
    let instance = InstanceState {
        pool_size: 5,
        pool_idle: 2,
        pool_max: 8,
        processor_lag: Duration::from_millis(250),
        delivery_worker: Some(true),
        deliveries: vec![DeliveryCount {
            channel: Channel::Sms,
            kind: DeliveryKind::Code,
            result: AttemptResult::Delivered,
            count: 7,
        }],
    };
    let backlog = Backlog {
        events_unprocessed: 12,
        deliveries_pending: 4,
        deliveries_due: 3,
        oldest_due: Duration::from_secs(9),
    };
    let text = metrics.render(instance, Some(backlog));
    let expected = [
        ("twofold_db_pool_connections{state=\"idle\"}", 2.0),
        ("twofold_db_pool_connections{state=\"busy\"}", 3.0),
        ("twofold_db_pool_max_connections", 8.0),
        ("twofold_event_processor_lag_seconds", 0.25),
        ("twofold_delivery_worker_up", 1.0),
        (
            "twofold_deliveries_total{channel=\"SMS\",kind=\"code\",outcome=\"delivered\"}",
            7.0,
        ),
        ("twofold_database_up", 1.0),
        ("twofold_events_unprocessed", 12.0),
        ("twofold_delivery_queue_pending", 4.0),
        ("twofold_delivery_queue_due", 3.0),
        ("twofold_delivery_queue_oldest_due_seconds", 9.0),
    ];
    for (series, want) in expected {
        assert_eq!(value(&text, series), want, "{series} in\n{text}");
    }
    assert!(value(&text, "twofold_uptime_seconds") >= 0.0);
    // Every sample line's labels are among the fixed ones.
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        if let Some((_, labels)) = line.split_once('{') {
            for pair in labels.split('}').next().unwrap().split(',') {
                let name = pair.split('=').next().unwrap();
                assert!(
                    ["class", "code", "le", "state", "channel", "kind", "outcome"].contains(&name),
                    "unexpected label {name} in {line}"
                );
            }
        }
    }
}
