//! What `GET /metrics` shows (DESIGN.md section 4), kept and encoded by `prometheus-client`.
//!
//! What an operator watches: requests by status class, GraphQL errors by their stable code
//! (a rise in `INVALID_CODE` or `LOCKED_OUT` is a guessing attack, one in `INTERNAL` a fault),
//! how long requests take, and, read at each scrape, the database pool, the event processor's
//! lag and backlog, the delivery queue's depth and age, and the worker's outcomes per channel.
//! Every figure is a total over all tenants: no label carries a tenant, a user, a key or
//! anything a request sent, so the endpoint can leak nothing of a tenant's and its series never
//! grow with traffic.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;
use twofold_services::ports::{Backlog, InstanceState};
use twofold_services::ErrorCode;

/// Upper bounds of the latency histogram's buckets, in seconds.
const BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

const CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

/// The error codes of one response, left on it by the handler for the metrics layer.
#[derive(Debug, Clone, Default)]
pub struct ErrorCodes(pub Vec<ErrorCode>);

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ClassLabel {
    class: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CodeLabel {
    code: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabel {
    state: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DeliveryLabels {
    channel: &'static str,
    kind: &'static str,
    outcome: &'static str,
}

/// What a scrape read of the instance and its database, for [`Scraped`] to encode.
#[derive(Debug, Default)]
struct Snapshot {
    instance: InstanceState,
    /// `None`: the database did not answer within the scrape's time.
    backlog: Option<Backlog>,
}

/// Encodes the last [`Snapshot`] taken for this scrape, with the uptime.
#[derive(Debug)]
struct Scraped {
    started: Instant,
    snapshot: Mutex<Snapshot>,
}

fn encode_gauge(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    value: impl prometheus_client::encoding::EncodeGaugeValue + Clone,
) -> Result<(), std::fmt::Error> {
    let gauge = ConstGauge::new(value);
    gauge.encode(encoder.encode_descriptor(name, help, None, gauge.metric_type())?)
}

impl Collector for Scraped {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let snapshot = self.snapshot.lock().unwrap_or_else(PoisonError::into_inner);
        encode_gauge(
            &mut encoder,
            "twofold_uptime_seconds",
            "Seconds since this instance started.",
            self.started.elapsed().as_secs_f64(),
        )?;
        let i = &snapshot.instance;
        {
            let mut family = encoder.encode_descriptor(
                "twofold_db_pool_connections",
                "Connections the database pool holds, by state.",
                None,
                MetricType::Gauge,
            )?;
            let busy = i.pool_size.saturating_sub(i.pool_idle);
            for (state, n) in [("idle", i.pool_idle), ("busy", busy)] {
                ConstGauge::new(n).encode(family.encode_family(&StateLabel { state })?)?;
            }
        }
        encode_gauge(
            &mut encoder,
            "twofold_db_pool_max_connections",
            "The most connections the database pool opens.",
            i.pool_max,
        )?;
        encode_gauge(
            &mut encoder,
            "twofold_event_processor_lag_seconds",
            "Seconds since the event processor last committed a batch (or found nothing to do).",
            i.processor_lag.as_secs_f64(),
        )?;
        if let Some(running) = i.delivery_worker {
            encode_gauge(
                &mut encoder,
                "twofold_delivery_worker_up",
                "1 while this instance's delivery worker runs.",
                i64::from(running),
            )?;
            let mut family = encoder.encode_descriptor(
                "twofold_deliveries",
                "Delivery attempts of this instance, by channel, kind and outcome.",
                None,
                MetricType::Counter,
            )?;
            for c in &i.deliveries {
                let labels = DeliveryLabels {
                    channel: c.channel.as_str(),
                    kind: c.kind.as_str(),
                    outcome: c.result.as_str(),
                };
                ConstCounter::new(c.count).encode(family.encode_family(&labels)?)?;
            }
        }
        encode_gauge(
            &mut encoder,
            "twofold_database_up",
            "1 when the database answered this scrape's queries in time.",
            i64::from(snapshot.backlog.is_some()),
        )?;
        if let Some(b) = &snapshot.backlog {
            encode_gauge(
                &mut encoder,
                "twofold_events_unprocessed",
                "Events after the oldest projection checkpoint (counted up to 100000).",
                b.events_unprocessed,
            )?;
            encode_gauge(
                &mut encoder,
                "twofold_delivery_queue_pending",
                "Deliveries not finished yet, due now or waiting for a retry.",
                b.deliveries_pending,
            )?;
            encode_gauge(
                &mut encoder,
                "twofold_delivery_queue_due",
                "Deliveries due now.",
                b.deliveries_due,
            )?;
            encode_gauge(
                &mut encoder,
                "twofold_delivery_queue_oldest_due_seconds",
                "How long the oldest due delivery has been waiting (0 with none).",
                b.oldest_due.as_secs_f64(),
            )?;
        }
        Ok(())
    }
}

/// The service's metrics. One per process, shared by every request.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    responses: Family<ClassLabel, Counter>,
    errors: Family<CodeLabel, Counter>,
    latency: Histogram,
    scraped: Arc<Scraped>,
    /// One scrape at a time: each puts its snapshot in [`Scraped`] and encodes it.
    scraping: Mutex<()>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::default();
        let responses = Family::<ClassLabel, Counter>::default();
        let errors = Family::<CodeLabel, Counter>::default();
        let latency = Histogram::new(BUCKETS);
        // Every series from the start, at zero: one that appears with its first count
        // hides that count from `rate()`.
        for class in CLASSES {
            drop(responses.get_or_create(&ClassLabel { class }));
        }
        for code in ErrorCode::ALL {
            drop(errors.get_or_create(&CodeLabel {
                code: code.as_str(),
            }));
        }
        registry.register(
            "twofold_http_responses",
            "HTTP responses, by status class",
            responses.clone(),
        );
        registry.register(
            "twofold_graphql_errors",
            "GraphQL errors answered, by extensions.code",
            errors.clone(),
        );
        registry.register(
            "twofold_http_request_duration_seconds",
            "Time from a request's arrival to its response",
            latency.clone(),
        );
        let scraped = Arc::new(Scraped {
            started: Instant::now(),
            snapshot: Mutex::default(),
        });
        registry.register_collector(Box::new(scraped.clone()));
        Self {
            registry,
            responses,
            errors,
            latency,
            scraped,
            scraping: Mutex::default(),
        }
    }
}

impl Metrics {
    /// Records one answered request.
    pub fn record(&self, status: u16, took: Duration, codes: &[ErrorCode]) {
        let class = CLASSES[usize::from(status / 100).clamp(1, 5) - 1];
        self.responses.get_or_create(&ClassLabel { class }).inc();
        for code in codes {
            self.errors
                .get_or_create(&CodeLabel {
                    code: code.as_str(),
                })
                .inc();
        }
        self.latency.observe(took.as_secs_f64());
    }

    /// Everything, in Prometheus' text exposition format (version 0.0.4), with what this
    /// scrape read of the instance and (`None` when it did not answer) the database.
    pub fn render(&self, instance: InstanceState, backlog: Option<Backlog>) -> String {
        let _one = self.scraping.lock().unwrap_or_else(PoisonError::into_inner);
        *self
            .scraped
            .snapshot
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Snapshot { instance, backlog };
        let mut out = String::with_capacity(8192);
        // Writing to a String cannot fail; an encoder error would be a bug in a label.
        if let Err(e) =
            prometheus_client::encoding::prometheus_text::encode(&mut out, &self.registry)
        {
            tracing::error!(error = %e, "encoding the metrics failed");
        }
        out
    }
}

#[cfg(test)]
mod tests;
