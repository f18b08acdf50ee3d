//! Counters for `GET /metrics`, rendered in the Prometheus text format (version 0.0.4).
//!
//! The per-request path only touches atomics: each API's counters live in an [`ApiMetrics`]
//! that the policy snapshot resolves once (by API name), so a request increments a status
//! counter and a latency bucket without a lock or a map lookup. Flow verdicts (once per new
//! backend connection) are counters keyed by verdict, code, NSG and rule; the policy snapshot
//! looks a counter up once per distinct decision and then only increments it. Requests refused
//! for the client's own fault (4xx codes: a malformed body, a slow head or body, a bad path...)
//! are also counted by code, so they never read as backend failures.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::error::ErrorCode;
use crate::flows::FlowTableMemory;
use crate::lock;

/// Upper bounds of the latency histogram buckets, in seconds.
pub const LATENCY_BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// The label used for requests that matched no API.
pub const NO_API_LABEL: &str = "";

/// Counters of one API.
#[derive(Debug)]
pub(crate) struct ApiMetrics {
    /// Requests by status, indexed by `status - 100`.
    by_status: Box<[AtomicU64; 500]>,
    buckets: [AtomicU64; LATENCY_BUCKETS.len()],
    sum_micros: AtomicU64,
    count: AtomicU64,
}

impl ApiMetrics {
    fn new() -> ApiMetrics {
        ApiMetrics {
            by_status: Box::new(std::array::from_fn(|_| AtomicU64::new(0))),
            buckets: std::array::from_fn(|_| AtomicU64::new(0)),
            sum_micros: AtomicU64::new(0),
            count: AtomicU64::new(0),
        }
    }

    /// Records one answered request (latency up to the response head).
    pub(crate) fn record(&self, status: u16, elapsed: Duration) {
        if let Some(c) = status
            .checked_sub(100)
            .and_then(|i| self.by_status.get(usize::from(i)))
        {
            c.fetch_add(1, Ordering::Relaxed);
        }
        let secs = elapsed.as_secs_f64();
        if let Some(i) = LATENCY_BUCKETS.iter().position(|b| secs <= *b) {
            self.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        self.sum_micros.fetch_add(micros, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }
}

/// Labels of one flow-verdict counter.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct FlowLabels {
    pub(crate) verdict: &'static str,
    pub(crate) code: String,
    pub(crate) nsg: String,
    pub(crate) rule: String,
}

/// A snapshot of one backend pool, for rendering.
#[derive(Clone, Debug)]
pub(crate) struct PoolGauge {
    pub(crate) backend: String,
    pub(crate) idle: usize,
    pub(crate) open: usize,
}

/// Every counter of one gateway.
#[derive(Debug, Default)]
pub(crate) struct Metrics {
    apis: Mutex<BTreeMap<String, Arc<ApiMetrics>>>,
    flows: Mutex<BTreeMap<FlowLabels, Arc<AtomicU64>>>,
    /// Established flows closed by a `flush_connection` re-evaluation.
    pub(crate) flows_cut: AtomicU64,
    /// Established flows flushed by `POST /admin/flows/flush`.
    pub(crate) flows_flushed: AtomicU64,
    /// Client connections open now.
    pub(crate) client_connections: AtomicUsize,
    /// Client connections accepted since start.
    pub(crate) client_connections_total: AtomicU64,
    /// Accepted changes (reloads and rule replacements).
    pub(crate) changes_applied: AtomicU64,
    /// Refused changes.
    pub(crate) changes_refused: AtomicU64,
    /// Requests refused for the client's fault, indexed like [`ErrorCode::ALL`] (only the
    /// client-fault codes are ever counted).
    client_faults: PerCode,
}

/// One counter per [`ErrorCode::ALL`] entry (`Default` is derived only for arrays up to 32).
#[derive(Debug)]
struct PerCode([AtomicU64; ErrorCode::ALL.len()]);

impl Default for PerCode {
    fn default() -> Self {
        PerCode(std::array::from_fn(|_| AtomicU64::new(0)))
    }
}

fn esc(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

// === impl Metrics ===

impl Metrics {
    /// The counters of API `name` (created on first use; kept across reloads).
    pub(crate) fn api(&self, name: &str) -> Arc<ApiMetrics> {
        lock(&self.apis)
            .entry(name.to_string())
            .or_insert_with(|| Arc::new(ApiMetrics::new()))
            .clone()
    }

    /// The counter of new-flow verdicts with these labels (created at 0; kept across reloads).
    pub(crate) fn flow_counter(&self, labels: FlowLabels) -> Arc<AtomicU64> {
        lock(&self.flows).entry(labels).or_default().clone()
    }

    /// Counts one request refused for the client's fault.
    pub(crate) fn client_fault(&self, code: ErrorCode) {
        if let Some(i) = ErrorCode::ALL.iter().position(|c| *c == code) {
            self.client_faults.0[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Counts one new-flow verdict.
    #[cfg(test)]
    pub(crate) fn flow(&self, labels: FlowLabels) {
        self.flow_counter(labels).fetch_add(1, Ordering::Relaxed);
    }

    /// Renders everything in the Prometheus text format.
    pub(crate) fn render(&self, pools: &[PoolGauge], flows: FlowTableMemory) -> String {
        let mut out = String::with_capacity(4096);
        let apis: Vec<(String, Arc<ApiMetrics>)> = lock(&self.apis)
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();

        out.push_str(
            "# HELP vnetsim_gateway_requests_total Requests answered, by API and status.\n",
        );
        out.push_str("# TYPE vnetsim_gateway_requests_total counter\n");
        for (name, m) in &apis {
            for (i, c) in m.by_status.iter().enumerate() {
                let v = c.load(Ordering::Relaxed);
                if v > 0 {
                    let _ = writeln!(
                        out,
                        "vnetsim_gateway_requests_total{{api=\"{}\",status=\"{}\"}} {v}",
                        esc(name),
                        i + 100
                    );
                }
            }
        }

        out.push_str(
            "# HELP vnetsim_gateway_request_duration_seconds Time to the response head, by API.\n",
        );
        out.push_str("# TYPE vnetsim_gateway_request_duration_seconds histogram\n");
        for (name, m) in &apis {
            let name = esc(name);
            let mut cum = 0u64;
            for (i, b) in LATENCY_BUCKETS.iter().enumerate() {
                cum += m.buckets[i].load(Ordering::Relaxed);
                let _ = writeln!(
                    out,
                    "vnetsim_gateway_request_duration_seconds_bucket{{api=\"{name}\",le=\"{b}\"}} {cum}"
                );
            }
            let count = m.count.load(Ordering::Relaxed);
            let _ = writeln!(
                out,
                "vnetsim_gateway_request_duration_seconds_bucket{{api=\"{name}\",le=\"+Inf\"}} {count}"
            );
            let sum = m.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
            let _ = writeln!(
                out,
                "vnetsim_gateway_request_duration_seconds_sum{{api=\"{name}\"}} {sum}"
            );
            let _ = writeln!(
                out,
                "vnetsim_gateway_request_duration_seconds_count{{api=\"{name}\"}} {count}"
            );
        }

        out.push_str("# HELP vnetsim_gateway_flows_total New backend flows, by verdict, code and the deciding NSG rule.\n");
        out.push_str("# TYPE vnetsim_gateway_flows_total counter\n");
        for (l, v) in lock(&self.flows).iter() {
            let v = v.load(Ordering::Relaxed);
            let _ = writeln!(
                out,
                "vnetsim_gateway_flows_total{{verdict=\"{}\",code=\"{}\",nsg=\"{}\",rule=\"{}\"}} {v}",
                l.verdict,
                esc(&l.code),
                esc(&l.nsg),
                esc(&l.rule)
            );
        }

        let gauges: [(&str, &str, &str, u64); 8] = [
            (
                "vnetsim_gateway_flows_established",
                "Established backend flows (open upstream connections).",
                "gauge",
                flows.flows as u64,
            ),
            (
                "vnetsim_gateway_flow_table_bytes",
                "Heap bytes of the flow table (entries, slots and free list; names shared between flows are interned and not counted per flow).",
                "gauge",
                flows.bytes as u64,
            ),
            (
                "vnetsim_gateway_flows_cut_total",
                "Established flows closed by a flush_connection re-evaluation.",
                "counter",
                self.flows_cut.load(Ordering::Relaxed),
            ),
            (
                "vnetsim_gateway_flows_flushed_total",
                "Established flows flushed by POST /admin/flows/flush.",
                "counter",
                self.flows_flushed.load(Ordering::Relaxed),
            ),
            (
                "vnetsim_gateway_client_connections",
                "Client connections open now.",
                "gauge",
                self.client_connections.load(Ordering::Relaxed) as u64,
            ),
            (
                "vnetsim_gateway_client_connections_total",
                "Client connections accepted.",
                "counter",
                self.client_connections_total.load(Ordering::Relaxed),
            ),
            (
                "vnetsim_gateway_changes_applied_total",
                "Topology changes applied.",
                "counter",
                self.changes_applied.load(Ordering::Relaxed),
            ),
            (
                "vnetsim_gateway_changes_refused_total",
                "Topology changes refused.",
                "counter",
                self.changes_refused.load(Ordering::Relaxed),
            ),
        ];
        for (name, help, kind, v) in gauges {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v}"
            );
        }

        out.push_str("# HELP vnetsim_gateway_client_faults_total Requests refused for the client's fault (4xx), by code; never counted as backend failures.\n");
        out.push_str("# TYPE vnetsim_gateway_client_faults_total counter\n");
        for (code, c) in ErrorCode::ALL.iter().zip(&self.client_faults.0) {
            if code.is_client_fault() {
                let _ = writeln!(
                    out,
                    "vnetsim_gateway_client_faults_total{{code=\"{code}\"}} {}",
                    c.load(Ordering::Relaxed)
                );
            }
        }

        out.push_str(
            "# HELP vnetsim_gateway_pool_connections Upstream connections by backend and state.\n",
        );
        out.push_str("# TYPE vnetsim_gateway_pool_connections gauge\n");
        for p in pools {
            let b = esc(&p.backend);
            let _ = writeln!(
                out,
                "vnetsim_gateway_pool_connections{{backend=\"{b}\",state=\"idle\"}} {}",
                p.idle
            );
            let _ = writeln!(
                out,
                "vnetsim_gateway_pool_connections{{backend=\"{b}\",state=\"open\"}} {}",
                p.open
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_cumulative_buckets() {
        let m = Metrics::default();
        let orders = m.api("orders");
        orders.record(200, Duration::from_micros(300));
        orders.record(200, Duration::from_millis(3));
        orders.record(502, Duration::from_millis(3));
        m.flow(FlowLabels {
            verdict: "Deny",
            code: "NSG_DENIED".into(),
            nsg: "nsg-apim".into(),
            rule: "securityRules/deny".into(),
        });
        let text = m.render(
            &[PoolGauge {
                backend: "https://orders".into(),
                idle: 1,
                open: 2,
            }],
            FlowTableMemory {
                flows: 2,
                bytes: 640,
            },
        );
        assert!(
            text.contains("vnetsim_gateway_requests_total{api=\"orders\",status=\"200\"} 2"),
            "{text}"
        );
        assert!(text.contains("vnetsim_gateway_requests_total{api=\"orders\",status=\"502\"} 1"));
        // Buckets are cumulative: 1 request ≤ 0.5 ms, all 3 ≤ 5 ms.
        assert!(text.contains("_bucket{api=\"orders\",le=\"0.0005\"} 1"));
        assert!(text.contains("_bucket{api=\"orders\",le=\"0.005\"} 3"));
        assert!(text.contains("_bucket{api=\"orders\",le=\"+Inf\"} 3"));
        assert!(text.contains("vnetsim_gateway_flows_total{verdict=\"Deny\",code=\"NSG_DENIED\",nsg=\"nsg-apim\",rule=\"securityRules/deny\"} 1"));
        assert!(text.contains(
            "vnetsim_gateway_pool_connections{backend=\"https://orders\",state=\"open\"} 2"
        ));
        assert!(text.contains("vnetsim_gateway_flows_established 2"));
        assert!(text.contains("vnetsim_gateway_flow_table_bytes 640"));
    }

    #[test]
    fn client_faults_are_counted_by_code() {
        let m = Metrics::default();
        m.client_fault(ErrorCode::BadRequestBody);
        m.client_fault(ErrorCode::BadRequestBody);
        let text = m.render(&[], FlowTableMemory { flows: 0, bytes: 0 });
        assert!(
            text.contains("vnetsim_gateway_client_faults_total{code=\"BAD_REQUEST_BODY\"} 2"),
            "{text}"
        );
        // Every client-fault code is a series from the start; backend codes never are.
        assert!(text.contains("vnetsim_gateway_client_faults_total{code=\"CLIENT_TIMEOUT\"} 0"));
        assert!(!text.contains("client_faults_total{code=\"BACKEND_RESET\"}"));
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(esc("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
