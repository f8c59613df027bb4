//! Prometheus metrics of the operator: what reconciles do, and where the
//! DeviceLinks stand (counted from the cache at scrape time, so the numbers
//! can never drift from what the operator sees).

use std::{collections::BTreeMap, sync::Arc, time::Instant};

use devicelink_api::DeviceLink;
use kube::runtime::reflector::Store;
use prometheus_client::{
    collector::Collector,
    encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric},
    metrics::{
        counter::Counter,
        family::Family,
        gauge::{ConstGauge, Gauge},
        histogram::Histogram,
    },
    registry::Registry,
};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabels {
    /// What failed: "kube", "finalizer", ...
    pub kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// HTTP method: GET (reads and watches), POST, PUT, PATCH, DELETE.
    pub method: String,
}

/// Everything the operator counts.
#[derive(Clone)]
pub struct Metrics {
    pub reconciles: Counter,
    pub reconcile_errors: Family<ErrorLabels, Counter>,
    pub reconcile_duration: Histogram,
    pub leader: Gauge,
    pub api_requests: Family<RequestLabels, Counter>,
    registry: Arc<Registry>,
}

impl Metrics {
    pub fn new(links: Store<DeviceLink>) -> Metrics {
        let mut registry = Registry::with_prefix("devicelink_operator");
        let reconciles = Counter::default();
        registry.register(
            "reconciles",
            "DeviceLink reconciles run",
            reconciles.clone(),
        );
        let reconcile_errors = Family::<ErrorLabels, Counter>::default();
        registry.register(
            "reconcile_errors",
            "DeviceLink reconciles that failed and were retried, by kind of failure",
            reconcile_errors.clone(),
        );
        // From 1 ms to about 8 s: a reconcile is a few API calls at most.
        let reconcile_duration = Histogram::new(
            prometheus_client::metrics::histogram::exponential_buckets(0.001, 2.0, 14),
        );
        registry.register(
            "reconcile_duration_seconds",
            "How long one DeviceLink reconcile took",
            reconcile_duration.clone(),
        );
        let leader = Gauge::default();
        registry.register(
            "leader",
            "1 while this replica holds the leader lease and reconciles, else 0",
            leader.clone(),
        );
        let api_requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "api_requests",
            "Requests sent to the Kubernetes API server, by HTTP method (GET includes watches)",
            api_requests.clone(),
        );
        registry.register_collector(Box::new(PhaseCollector { links }));
        Metrics {
            reconciles,
            reconcile_errors,
            reconcile_duration,
            leader,
            api_requests,
            registry: Arc::new(registry),
        }
    }

    /// Times one reconcile; the duration is recorded when the guard drops.
    pub fn reconcile_started(&self) -> ReconcileTimer<'_> {
        self.reconciles.inc();
        ReconcileTimer {
            histogram: &self.reconcile_duration,
            start: Instant::now(),
        }
    }

    pub fn reconcile_failed(&self, kind: &str) {
        self.reconcile_errors
            .get_or_create(&ErrorLabels { kind: kind.into() })
            .inc();
    }

    /// A kube client that counts every request it sends in `api_requests`,
    /// so that the cost of reconciling (and writes at rest) can be read off.
    pub async fn counting_client(&self) -> Result<kube::Client, kube::Error> {
        let config = kube::Config::infer()
            .await
            .map_err(kube::Error::InferConfig)?;
        let requests = self.api_requests.clone();
        let count =
            tower::util::MapRequestLayer::new(move |req: ::http::Request<kube::client::Body>| {
                requests
                    .get_or_create(&RequestLabels {
                        method: req.method().as_str().to_string(),
                    })
                    .inc();
                req
            });
        Ok(kube::client::ClientBuilder::try_from(config)?
            .with_layer(&count)
            .build())
    }

    /// The text exposition format Prometheus scrapes.
    pub fn render(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String cannot fail");
        out
    }
}

pub struct ReconcileTimer<'a> {
    histogram: &'a Histogram,
    start: Instant,
}

impl Drop for ReconcileTimer<'_> {
    fn drop(&mut self) {
        self.histogram.observe(self.start.elapsed().as_secs_f64());
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, PartialOrd, Ord, EncodeLabelSet)]
struct PhaseLabels {
    /// The last condition in the pipeline (the PHASE column).
    phase: String,
    /// Its status: True, False or Unknown.
    status: String,
}

/// Counts the cached DeviceLinks by phase on every scrape.
struct PhaseCollector {
    links: Store<DeviceLink>,
}

impl std::fmt::Debug for PhaseCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PhaseCollector")
    }
}

impl Collector for PhaseCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let mut counts: BTreeMap<PhaseLabels, i64> = BTreeMap::new();
        for link in self.links.state() {
            let labels = match link.conditions().last() {
                Some(c) => PhaseLabels {
                    phase: c.type_.clone(),
                    status: c.status.clone(),
                },
                None => PhaseLabels {
                    phase: "Pending".into(),
                    status: "Unknown".into(),
                },
            };
            *counts.entry(labels).or_default() += 1;
        }
        let mut family = encoder.encode_descriptor(
            "devicelinks",
            "DeviceLinks by phase (last condition of the pipeline) and its status",
            None,
            prometheus_client::metrics::MetricType::Gauge,
        )?;
        for (labels, count) in &counts {
            ConstGauge::new(*count).encode(family.encode_family(labels)?)?;
        }
        Ok(())
    }
}
