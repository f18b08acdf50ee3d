//! `vnetsim bench`: the outbound path measured side by side on loopback — **direct** (client →
//! backend), **gateway** (client → gateway → backend, run exactly as `vnetsim up` runs it) and,
//! when `nginx` is on `PATH`, **nginx** as a plain keep-alive reverse proxy — plus the per-flow
//! policy cost and the NSG micro-measure.
//!
//! The backend, every gateway and nginx are **child processes** (module `child`), so each one's CPU
//! time is its own (`/proc/PID/stat`, every thread). The load generator ([`crate::loadgen`])
//! runs in this process on one thread. Variants run **alternately**, round after round. The
//! rows compared with each other run **interleaved** (the groups in `INTERLEAVED`): each round's
//! `duration` per row is cut into slices of ≤ 500 ms run in turn (a, b, a, b, …; which row
//! starts rotates per round), so every slice of one row has slices of the others on either
//! side and a drift of the shared machine within the round hits them alike. A round's gateway
//! run is divided by the same round's nginx run (the "paired ratio": the machines are noisy,
//! so only ratios of neighbouring runs are trusted), added latencies are differences of the
//! same round's p50s, and the median over the rounds is reported.
//!
//! Rows (each the median over the rounds; `errors` is the sum):
//! - `direct`, `nginx`, `gateway` — HTTP/1.1 keep-alive, `connections` connections;
//! - `gateway_new_flow`, `gateway_new_flow_no_policy` — the gateway opening a new upstream flow
//!   for every request ([`gateway::BenchKnobs::upstream_per_request`]) with and without the NSG
//!   verdict: one gateway process, loaded through its front door and through a second,
//!   bench-only front door whose new flows skip the check
//!   ([`gateway::BenchKnobs::unchecked_listen`]), so the two rows differ in the check alone;
//!   `policy_overhead = 1 − rps(with) / rps(without)`, paired per round (the pair runs
//!   interleaved);
//! - `direct_1conn`, `nginx_1conn`, `gateway_1conn` — one connection: the p50 latency each hop
//!   adds over direct (the three run interleaved);
//! - `direct_1conn_1cpu`, `nginx_1conn_1cpu`, `gateway_1conn_1cpu` — the same with the client
//!   (on a thread and runtime of its own), the proxy and the backend pinned to one CPU for the
//!   run (their affinity is restored after it). On a VM a wake-up across vCPUs goes through the
//!   hypervisor and can cost more than the whole proxy hop (a loopback round trip between two
//!   vCPUs took 140–420 µs p50 on the VM this was built on, 18–32 µs on one CPU), so the
//!   one-CPU rows are the ones that show what the proxy itself adds;
//! - `gateway_h2` — HTTP/2 (prior knowledge) from the client to the gateway;
//! - `gateway_tls_backend` — the API's backend over TLS, as the fixture says (the others speak
//!   clear text to the same host and port, to compare with nginx's clear-text proxy).

mod child;
mod nginx;
mod nsg;
mod serve;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde::Serialize;

use crate::loadgen::{self, ClientTls, LoadSpec, Proto};

pub use child::process_exists;
pub use nginx::find_on_path as find_nginx;
pub use nsg::NsgMeasure;
pub use serve::{
    default_proxy_threads, proxy_runtime, run_echo_child, run_gateway_child, EchoChild,
    GatewayChild, HELLO_BODY,
};

/// Why the bench could not run.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// The fixture could not be loaded.
    #[error("{0}")]
    Fixture(String),
    /// The fixture has error findings.
    #[error("the fixture has error findings: {0}")]
    Findings(String),
    /// No API of the fixture has an allowed backend flow to measure.
    #[error("no API of the fixture has a backend flow the NSGs allow (the bench measures an allowed path)")]
    NoAllowedApi,
    /// `--only` named a row that does not exist.
    #[error("unknown row `{0}` (expected one of: {rows})", rows = ROW_NAMES.join(", "))]
    UnknownRow(String),
    /// The gateway's front door speaks TLS; the bench compares clear-text front doors.
    #[error("the fixture's gateway front door speaks TLS (`[gateway] tls = true`); the bench compares clear-text proxies: set it to false")]
    TlsFrontDoor,
    /// An address is not loopback.
    #[error("{0} is not a loopback address")]
    NotLoopback(SocketAddr),
    /// An I/O operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The cause.
        source: std::io::Error,
    },
    /// A ready file could not be written.
    #[error(transparent)]
    Write(#[from] crate::atomic::WriteError),
    /// A child process failed.
    #[error("the {name} process {detail}")]
    ChildFailed {
        /// Which child.
        name: String,
        /// What happened, with its stderr.
        detail: String,
    },
    /// A ready file lacked a field.
    #[error("the {name} ready file has no valid `{field}`")]
    Ready {
        /// Which child.
        name: String,
        /// The field.
        field: &'static str,
    },
    /// TLS setup failed.
    #[error("TLS: {0}")]
    Tls(String),
    /// The gateway did not start.
    #[error("the gateway did not start: {0}")]
    Gateway(String),
    /// A load run failed entirely.
    #[error("{variant}: {source}")]
    Load {
        /// The row.
        variant: String,
        /// The cause.
        source: loadgen::LoadError,
    },
}

/// What to measure.
#[derive(Clone, Debug)]
pub struct BenchOptions {
    /// The `vnetsim` binary that runs the child processes (`__echo`, `__gateway`).
    pub exe: PathBuf,
    /// The fixture (`None`: the embedded default topology).
    pub fixture: Option<PathBuf>,
    /// Length of each run.
    pub duration: Duration,
    /// Connections of the multi-connection rows.
    pub connections: usize,
    /// Rounds (each variant runs once per round).
    pub rounds: usize,
    /// The nginx binary (`None`: no nginx rows).
    pub nginx: Option<PathBuf>,
    /// Proxy threads of the gateway children.
    pub gateway_threads: usize,
    /// Only these rows (names from [`ROW_NAMES`]); empty: every row.
    pub only: Vec<String>,
}

/// Every row `vnetsim bench` can measure, in table order (`--only` takes these names).
pub const ROW_NAMES: [&str; 13] = [
    "direct",
    "nginx",
    "gateway",
    "gateway_new_flow",
    "gateway_new_flow_no_policy",
    "direct_1conn",
    "nginx_1conn",
    "gateway_1conn",
    "direct_1conn_1cpu",
    "nginx_1conn_1cpu",
    "gateway_1conn_1cpu",
    "gateway_h2",
    "gateway_tls_backend",
];

/// Progress of a run, for a progress bar.
#[derive(Clone, Debug)]
pub struct Progress {
    /// Steps done.
    pub done: usize,
    /// Steps in total.
    pub total: usize,
    /// What runs now.
    pub label: String,
}

/// One row of the table.
#[derive(Clone, Debug, Serialize)]
pub struct Row {
    /// The variant (see the module docs).
    pub name: String,
    /// Successful requests per second (median over the rounds).
    pub rps: f64,
    /// Median latency, µs (median over the rounds).
    pub p50_us: f64,
    /// 99th percentile latency, µs (median over the rounds).
    pub p99_us: f64,
    /// Proxy CPU time (user + system, every thread) per request, µs (median over the rounds);
    /// `null` for rows without a proxy.
    pub cpu_us_per_req: Option<f64>,
    /// Failed requests, summed over the rounds.
    pub errors: u64,
    /// Successful requests, summed over the rounds.
    pub requests: u64,
    /// Runs measured.
    pub runs: usize,
    /// Client connections.
    pub connections: usize,
    /// The first error seen, if any.
    pub first_error: Option<String>,
}

/// The ratios the targets are about.
#[derive(Clone, Debug, Serialize)]
pub struct Ratios {
    /// rps(gateway) / rps(direct), median of the per-round ratios (`null` when `--only` left
    /// either row out).
    pub gateway_vs_direct: Option<f64>,
    /// rps(gateway) / rps(nginx) of the same round (the two run interleaved), median over the
    /// rounds.
    pub gateway_vs_nginx: Option<f64>,
    /// CPU per request of the gateway / of nginx in the same round, median over the rounds.
    pub gateway_cpu_vs_nginx: Option<f64>,
    /// `1 − rps(gateway_new_flow) / rps(gateway_new_flow_no_policy)`, median over the rounds
    /// (`null` when `--only` left either row out).
    pub policy_overhead: Option<f64>,
    /// The same from CPU per request: `1 − cpu(no policy) / cpu(with policy)`.
    pub policy_overhead_cpu: Option<f64>,
    /// p50(gateway_1conn) − p50(direct_1conn) of the same round, median over the rounds, µs:
    /// the latency the gateway hop adds (`null` when `--only` left either row out).
    pub gateway_added_p50_us: Option<f64>,
    /// p50(nginx_1conn) − p50(direct_1conn), the same way, µs.
    pub nginx_added_p50_us: Option<f64>,
    /// p50(gateway_1conn_1cpu) − p50(direct_1conn_1cpu), the same way, µs: with the client, the
    /// proxy and the backend on one CPU, so no hop waits for another CPU to wake up.
    pub gateway_added_p50_us_1cpu: Option<f64>,
    /// p50(nginx_1conn_1cpu) − p50(direct_1conn_1cpu), the same way, µs.
    pub nginx_added_p50_us_1cpu: Option<f64>,
    /// The per-round paired ratios behind `gateway_vs_nginx`.
    pub gateway_vs_nginx_rounds: Vec<f64>,
}

/// One target of the issue and whether this run met it.
#[derive(Clone, Debug, Serialize)]
pub struct TargetCheck {
    /// What is measured.
    pub name: &'static str,
    /// The target, as text.
    pub target: &'static str,
    /// The measured value (`null` when not measured, e.g. without nginx).
    pub value: Option<f64>,
    /// Whether it was met (`null` when not measured).
    pub met: Option<bool>,
}

/// Memory figures.
#[derive(Clone, Debug, Serialize)]
pub struct Memory {
    /// Flows in the keep-alive gateway's flow table after its last run (one per pooled
    /// upstream connection).
    pub flows_tracked: Option<u64>,
    /// Heap bytes of that flow table (`vnetsim_gateway_flow_table_bytes`).
    pub flow_table_bytes: Option<u64>,
    /// `flow_table_bytes / flows_tracked`.
    pub bytes_per_tracked_flow: Option<f64>,
    /// Peak RSS of the keep-alive gateway child over the whole bench, KiB.
    pub gateway_peak_rss_kib: Option<u64>,
    /// Peak RSS of the nginx processes (master + worker), KiB.
    pub nginx_peak_rss_kib: Option<u64>,
}

/// Where the bench ran.
#[derive(Clone, Debug, Serialize)]
pub struct Machine {
    /// Logical CPUs available.
    pub nproc: usize,
    /// `model name` of `/proc/cpuinfo`.
    pub cpu_model: Option<String>,
    /// `/proc/sys/kernel/osrelease`.
    pub kernel: Option<String>,
}

/// The settings of the run.
#[derive(Clone, Debug, Serialize)]
pub struct Settings {
    /// Fixture measured (`embedded default` without one).
    pub fixture: String,
    /// The API whose path was loaded, and its backend host:port.
    pub api: String,
    /// Milliseconds per run.
    pub duration_ms: u64,
    /// Connections of the multi-connection rows.
    pub connections: usize,
    /// Rounds.
    pub rounds: usize,
    /// Proxy threads of the gateway.
    pub gateway_threads: usize,
    /// The nginx binary and its version line, when used.
    pub nginx: Option<String>,
    /// Process ids of every child the bench started (all stopped and reaped by the time the
    /// report exists).
    pub child_pids: Vec<u32>,
}

/// The whole result (`--output json` prints it).
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// One row per variant.
    pub rows: Vec<Row>,
    /// The ratios.
    pub ratios: Ratios,
    /// The NSG micro-measure.
    pub nsg: NsgMeasure,
    /// The targets, met or not.
    pub targets: Vec<TargetCheck>,
    /// Memory.
    pub memory: Memory,
    /// The machine.
    pub machine: Machine,
    /// The settings.
    pub settings: Settings,
}

/// Median of `v` (sorted in place); `None` when empty.
pub(crate) fn median(v: &mut [f64]) -> Option<f64> {
    let v: &mut [f64] = v;
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    Some(if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    })
}

/// A temp dir removed on drop.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn temp_dir() -> Result<TempDir, BenchError> {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let p = std::env::temp_dir().join(format!("vnetsim-bench-{}-{nanos}", std::process::id()));
    std::fs::create_dir_all(&p).map_err(|source| BenchError::Io {
        what: format!("creating {}", p.display()),
        source,
    })?;
    Ok(TempDir(p))
}

/// The API the bench loads: the first whose backend flow the NSGs allow.
struct Target {
    api: String,
    path: String,
    host: String,
    dns_name: String,
    port: u16,
    gateway_host: String,
}

fn pick_target(t: &sim::Topology) -> Result<Target, BenchError> {
    if t.gateway().tls {
        return Err(BenchError::TlsFrontDoor);
    }
    let source = t.apim_source().ok_or(BenchError::NoAllowedApi)?;
    for api in t.apis() {
        let b = &api.backend;
        let (Some(h), Ok(ip)) = (api.host, t.resolve_from_apim(&b.host)) else {
            continue;
        };
        if t.decide(&sim::Flow::tcp(source, 60000, ip, b.port))
            .allowed()
        {
            return Ok(Target {
                api: api.name.clone(),
                path: format!("{}/bench", api.path.trim_end_matches('/')),
                host: t.hosts()[h].name.clone(),
                dns_name: b.host.clone(),
                port: b.port,
                gateway_host: t.gateway().hostname.clone(),
            });
        }
    }
    Err(BenchError::NoAllowedApi)
}

/// The admin socket of a gateway child (`admin_url` of its ready file).
fn admin_addr(doc: &serde_json::Value, name: &str) -> Result<SocketAddr, BenchError> {
    doc["admin_url"]
        .as_str()
        .and_then(|u| u.strip_prefix("http://"))
        .and_then(|u| u.trim_end_matches('/').parse().ok())
        .ok_or_else(|| BenchError::Ready {
            name: name.to_string(),
            field: "admin_url",
        })
}

/// The gateway child's flow table from its `GET /metrics`: (flows, bytes).
async fn flow_table(admin: SocketAddr) -> Result<(u64, u64), BenchError> {
    let io = |source| BenchError::Io {
        what: format!("reading the gateway's metrics at {admin}"),
        source,
    };
    let resp = crate::client::Client::new(admin, "admin", None)
        .with_timeout(Duration::from_secs(5))
        .get("/metrics")
        .await
        .map_err(|e| io(std::io::Error::other(e.to_string())))?;
    let text = String::from_utf8_lossy(&resp.body);
    let gauge = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
    };
    match (
        gauge("vnetsim_gateway_flows_established"),
        gauge("vnetsim_gateway_flow_table_bytes"),
    ) {
        (Some(f), Some(b)) => Ok((f, b)),
        _ => Err(io(std::io::Error::other(format!(
            "{}: no vnetsim_gateway_flows_established / vnetsim_gateway_flow_table_bytes gauges",
            resp.status
        )))),
    }
}

/// The socket address in `field` of child `name`'s ready file.
fn ready_addr(
    doc: &serde_json::Value,
    name: &str,
    field: &'static str,
) -> Result<SocketAddr, BenchError> {
    doc[field]
        .as_str()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| BenchError::Ready {
            name: name.to_string(),
            field,
        })
}

/// One run's figures.
#[derive(Clone, Debug)]
struct RunResult {
    rps: f64,
    p50: f64,
    p99: f64,
    cpu_us_per_req: Option<f64>,
    errors: u64,
    requests: u64,
    first_error: Option<String>,
}

/// One variant: where to send what, and whose CPU counts.
struct Variant {
    name: &'static str,
    addr: SocketAddr,
    host: String,
    connections: usize,
    proto: Proto,
    tls: Option<ClientTls>,
    /// The proxy processes (empty for direct rows).
    pids: Vec<u32>,
    /// One-CPU rows: the CPU that the client thread, the proxy's threads and the backend's
    /// threads (`also`) share for the run.
    pin: Option<OneCpu>,
    runs: Vec<RunResult>,
}

/// Where a one-CPU row runs.
#[derive(Clone, Debug)]
struct OneCpu {
    cpu: usize,
    /// Processes pinned with the proxy (the backend).
    also: Vec<u32>,
}

/// Runs the load on a new thread pinned to `cpu`, on a runtime of its own.
async fn load_on_cpu(
    spec: LoadSpec,
    proto: Proto,
    cpu: usize,
    name: &str,
) -> Result<loadgen::LoadResult, BenchError> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let spawned = std::thread::Builder::new()
        .name("bench-one-cpu".into())
        .spawn(move || {
            let res = child::pin_current_thread(cpu).and_then(|()| {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(|source| BenchError::Io {
                        what: "starting the one-CPU load generator's runtime".into(),
                        source,
                    })
            });
            let _ = tx.send(res.map(|rt| rt.block_on(loadgen::run_proto(spec, proto))));
        });
    spawned.map_err(|source| BenchError::Io {
        what: "starting the one-CPU load generator's thread".into(),
        source,
    })?;
    let res = rx.await.map_err(|_| BenchError::Io {
        what: "the one-CPU load generator's thread".into(),
        source: std::io::Error::other("ended without a result"),
    })?;
    res?.map_err(|source| BenchError::Load {
        variant: name.to_string(),
        source,
    })
}

/// One load run of `v` and the proxy CPU it cost, µs (`None` for rows without a proxy).
async fn load(
    v: &Variant,
    path: &str,
    duration: Duration,
) -> Result<(loadgen::LoadResult, Option<f64>), BenchError> {
    let spec = LoadSpec {
        addr: v.addr,
        host: v.host.clone(),
        path: path.to_string(),
        connections: v.connections,
        duration,
        max_requests: None,
        connection_per_request: false,
        tls: v.tls.clone(),
    };
    // One-CPU rows: the proxy and the backend stay pinned until the run's CPU is read.
    let _pinned = match &v.pin {
        Some(one) => {
            let pids: Vec<u32> = v.pids.iter().chain(&one.also).copied().collect();
            Some(child::Pinned::new(&pids, one.cpu)?)
        }
        None => None,
    };
    let before = child::cpu_us(&v.pids);
    let r = match &v.pin {
        Some(one) => load_on_cpu(spec, v.proto, one.cpu, v.name).await?,
        None => loadgen::run_proto(spec, v.proto)
            .await
            .map_err(|source| BenchError::Load {
                variant: v.name.to_string(),
                source,
            })?,
    };
    let after = child::cpu_us(&v.pids);
    let cpu = match (v.pids.is_empty(), before, after) {
        (false, Some(b), Some(a)) => Some(a - b),
        _ => None,
    };
    Ok((r, cpu))
}

impl RunResult {
    /// The figures of one or more load runs of one variant taken together: requests over
    /// their total time, percentiles of the merged latencies, CPU over all their requests.
    fn merge(parts: &[(loadgen::LoadResult, Option<f64>)]) -> RunResult {
        let requests: u64 = parts.iter().map(|(r, _)| r.requests).sum();
        let seconds: f64 = parts.iter().map(|(r, _)| r.seconds).sum();
        let mut hist = parts[0].0.latency_us.clone();
        for (r, _) in &parts[1..] {
            // Same bounds in every run, so adding cannot fail; a failure would only drop
            // that run's latencies from the percentiles.
            let _ = hist.add(&r.latency_us);
        }
        let cpu: Option<f64> = parts.iter().map(|(_, c)| *c).sum();
        RunResult {
            rps: requests as f64 / seconds.max(1e-9),
            p50: hist.value_at_quantile(0.50) as f64,
            p99: hist.value_at_quantile(0.99) as f64,
            cpu_us_per_req: cpu.filter(|_| requests > 0).map(|c| c / requests as f64),
            errors: parts.iter().map(|(r, _)| r.errors).sum(),
            requests,
            first_error: parts.iter().find_map(|(r, _)| r.first_error.clone()),
        }
    }
}

async fn run_once(v: &Variant, path: &str, duration: Duration) -> Result<RunResult, BenchError> {
    Ok(RunResult::merge(&[load(v, path, duration).await?]))
}

/// Rows measured interleaved ([`run_interleaved`]), group by group: gateway against nginx,
/// the policy pair (the same gateway process with and without the check), and each
/// one-connection triple whose p50s are subtracted from each other.
const INTERLEAVED: [&[&str]; 4] = [
    &["nginx", "gateway"],
    &["gateway_new_flow", "gateway_new_flow_no_policy"],
    &["direct_1conn", "nginx_1conn", "gateway_1conn"],
    &[
        "direct_1conn_1cpu",
        "nginx_1conn_1cpu",
        "gateway_1conn_1cpu",
    ],
];

/// Slices of at most this length when rows run interleaved.
const SLICE: Duration = Duration::from_millis(500);

/// Rows measured interleaved: `duration` each, cut into slices of at most [`SLICE`] run in
/// turn (a, b, c, a, b, c, …), so a drift of the shared machine during the round hits them
/// alike. Results in the order of `group`.
async fn run_interleaved(
    group: &[&Variant],
    path: &str,
    duration: Duration,
) -> Result<Vec<RunResult>, BenchError> {
    let slices = duration.as_nanos().div_ceil(SLICE.as_nanos()).max(1);
    let slice = duration / u32::try_from(slices).unwrap_or(u32::MAX);
    let mut parts: Vec<Vec<_>> = group.iter().map(|_| Vec::new()).collect();
    for _ in 0..slices {
        for (v, p) in group.iter().zip(&mut parts) {
            p.push(load(v, path, slice).await?);
        }
    }
    Ok(parts.iter().map(|p| RunResult::merge(p)).collect())
}

/// The groups of [`INTERLEAVED`] with two or more rows present, as indices into `vars`.
fn interleaved_groups(vars: &[Variant]) -> Vec<Vec<usize>> {
    INTERLEAVED
        .iter()
        .map(|g| {
            g.iter()
                .filter_map(|n| vars.iter().position(|v| v.name == *n))
                .collect::<Vec<usize>>()
        })
        .filter(|g| g.len() > 1)
        .collect()
}

struct Children {
    dir: PathBuf,
    exe: PathBuf,
    /// Every child, stopped in reverse order on drop.
    procs: Vec<child::ChildProc>,
    /// Admin sockets of the gateway children, by name.
    admin: std::collections::BTreeMap<String, SocketAddr>,
}

impl Children {
    async fn echo(
        &mut self,
        name: &str,
        tls_name: Option<&str>,
    ) -> Result<(SocketAddr, Option<PathBuf>), BenchError> {
        let ready = self.dir.join(format!("{name}.json"));
        let mut cmd = Command::new(&self.exe);
        cmd.args(["__echo", "--listen", "127.0.0.1:0", "--ready-file"])
            .arg(&ready);
        if let Some(n) = tls_name {
            cmd.args(["--tls-name", n]);
        }
        let mut p = child::ChildProc::spawn(name, cmd, &self.dir)?;
        let doc = p.wait_ready_file(&ready).await;
        self.procs.push(p);
        let doc = doc?;
        let ca = doc["ca_pem"].as_str().map(PathBuf::from);
        Ok((ready_addr(&doc, name, "addr")?, ca))
    }

    async fn gateway(
        &mut self,
        name: &str,
        args: &[String],
    ) -> Result<(SocketAddr, u32, Option<SocketAddr>), BenchError> {
        let ready = self.dir.join(format!("{name}.json"));
        let mut cmd = Command::new(&self.exe);
        cmd.arg("__gateway")
            .args(args)
            .arg("--ready-file")
            .arg(&ready);
        let mut p = child::ChildProc::spawn(name, cmd, &self.dir)?;
        let doc = p.wait_ready_file(&ready).await;
        let pid = p.pid();
        self.procs.push(p);
        let doc = doc?;
        self.admin.insert(name.to_string(), admin_addr(&doc, name)?);
        let unchecked = match doc["unchecked_addr"].as_str() {
            Some(_) => Some(ready_addr(&doc, name, "unchecked_addr")?),
            None => None,
        };
        Ok((ready_addr(&doc, name, "addr")?, pid, unchecked))
    }

    async fn nginx(
        &mut self,
        bin: &Path,
        backend: SocketAddr,
    ) -> Result<(SocketAddr, Vec<u32>), BenchError> {
        let dir = self.dir.join("nginx");
        std::fs::create_dir_all(&dir).map_err(|source| BenchError::Io {
            what: format!("creating {}", dir.display()),
            source,
        })?;
        let listen = SocketAddr::from(([127, 0, 0, 1], child::free_port()?));
        let conf = dir.join("nginx.conf");
        std::fs::write(&conf, nginx::config(&dir, listen, backend)).map_err(|source| {
            BenchError::Io {
                what: format!("writing {}", conf.display()),
                source,
            }
        })?;
        let mut cmd = Command::new(bin);
        cmd.arg("-p")
            .arg(&dir)
            .arg("-c")
            .arg(&conf)
            .arg("-e")
            .arg(dir.join("error.log"));
        let mut p = child::ChildProc::spawn("nginx", cmd, &self.dir)?;
        let up = p.wait_listening(listen).await;
        let master = p.pid();
        self.procs.push(p);
        up?;
        // The master accepts into the backlog before its worker exists: wait for the worker,
        // whose CPU is the one that matters.
        let start = std::time::Instant::now();
        let mut workers = child::children_of(master);
        while workers.is_empty() && start.elapsed() < Duration::from_secs(10) {
            tokio::time::sleep(Duration::from_millis(10)).await;
            workers = child::children_of(master);
        }
        if workers.is_empty() {
            return Err(BenchError::ChildFailed {
                name: "nginx".into(),
                detail: "started no worker process".into(),
            });
        }
        let mut pids = vec![master];
        pids.extend(workers);
        Ok((listen, pids))
    }
}

impl Drop for Children {
    fn drop(&mut self) {
        while let Some(mut p) = self.procs.pop() {
            p.stop();
        }
    }
}

fn machine() -> Machine {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    Machine {
        nproc: std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get),
        cpu_model: cpuinfo
            .lines()
            .find_map(|l| l.strip_prefix("model name"))
            .and_then(|v| v.split_once(':'))
            .map(|(_, v)| v.trim().to_string()),
        kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .ok()
            .map(|s| s.trim().to_string()),
    }
}

fn nginx_version(bin: &Path) -> String {
    let v = Command::new(bin)
        .arg("-v")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stderr).trim().to_string())
        .unwrap_or_default();
    format!("{} ({v})", bin.display())
}

/// Runs the bench (see the module docs). `progress` is called before each step.
///
/// # Errors
/// [`BenchError`] when the fixture has no allowed API, a child does not start, or a whole run
/// fails (a run with some errors is reported, not an error).
pub async fn run(
    opts: &BenchOptions,
    progress: &mut dyn FnMut(&Progress),
) -> Result<Report, BenchError> {
    if let Some(bad) = opts.only.iter().find(|n| !ROW_NAMES.contains(&n.as_str())) {
        return Err(BenchError::UnknownRow(bad.clone()));
    }
    let loaded = match &opts.fixture {
        Some(p) => crate::load_path(p, &crate::TagSource::Fixture),
        None => crate::load_str(
            "fixtures/default.toml",
            crate::harness::DEFAULT_FIXTURE,
            None,
            &crate::TagSource::Fixture,
        ),
    }
    .map_err(|e| BenchError::Fixture(e.to_string()))?;
    let target = pick_target(loaded.topology())?;
    let dir = temp_dir()?;
    let mut kids = Children {
        dir: dir.0.clone(),
        exe: opts.exe.clone(),
        procs: Vec::new(),
        admin: std::collections::BTreeMap::new(),
    };

    let (backend, _) = kids.echo("backend", None).await?;
    let backend_pid = kids.procs.last().map(child::ChildProc::pid);
    let (tls_backend, tls_ca) = kids.echo("backend-tls", Some(&target.dns_name)).await?;
    let mut base: Vec<String> = Vec::new();
    if let Some(f) = &opts.fixture {
        base.push(f.display().to_string());
    }
    base.extend(["--threads".to_string(), opts.gateway_threads.to_string()]);
    let upstream = |addr: SocketAddr| {
        vec![
            "--upstream".to_string(),
            format!("{}:{}={addr}", target.host, target.port),
        ]
    };
    let plain = [
        base.clone(),
        upstream(backend),
        vec!["--plain-upstreams".into()],
    ]
    .concat();
    let (gw, gw_pid, _) = kids.gateway("gateway", &plain).await?;
    // One process for both policy rows: its main front door checks every new flow, its second
    // one does not, so the pair differs in the check alone (not in process, memory layout or
    // CPU placement).
    let per_flow = [
        plain.clone(),
        vec![
            "--bench-upstream-per-request".into(),
            "--bench-unchecked-listen".into(),
            "127.0.0.1:0".into(),
        ],
    ]
    .concat();
    let (gw_flow, gw_flow_pid, gw_unchecked) = kids.gateway("gateway-new-flow", &per_flow).await?;
    let gw_unchecked = gw_unchecked.ok_or(BenchError::Ready {
        name: "gateway-new-flow".into(),
        field: "unchecked_addr",
    })?;
    let tls_ca = tls_ca.ok_or(BenchError::Ready {
        name: "backend-tls".into(),
        field: "ca_pem",
    })?;
    let tls_args = [
        base.clone(),
        upstream(tls_backend),
        vec!["--extra-root-pem".into(), tls_ca.display().to_string()],
    ]
    .concat();
    let (gw_tls, gw_tls_pid, _) = kids.gateway("gateway-tls-backend", &tls_args).await?;
    let nginx = match &opts.nginx {
        Some(bin) => Some(kids.nginx(bin, backend).await?),
        None => None,
    };

    let n = opts.connections.max(1);
    let v = |name, addr, host: &str, connections, pids: Vec<u32>| Variant {
        name,
        addr,
        host: host.to_string(),
        connections,
        proto: Proto::Http1,
        tls: None,
        pids,
        pin: None,
        runs: Vec::new(),
    };
    let gh = target.gateway_host.as_str();
    let mut vars: Vec<Variant> = vec![v("direct", backend, "localhost", n, vec![])];
    if let Some((addr, pids)) = &nginx {
        vars.push(v("nginx", *addr, "localhost", n, pids.clone()));
    }
    vars.push(v("gateway", gw, gh, n, vec![gw_pid]));
    vars.push(v("gateway_new_flow", gw_flow, gh, n, vec![gw_flow_pid]));
    // The same process as `gateway_new_flow`, through its unchecked front door.
    vars.push(v(
        "gateway_new_flow_no_policy",
        gw_unchecked,
        gh,
        n,
        vec![gw_flow_pid],
    ));
    vars.push(v("direct_1conn", backend, "localhost", 1, vec![]));
    if let Some((addr, pids)) = &nginx {
        vars.push(v("nginx_1conn", *addr, "localhost", 1, pids.clone()));
    }
    vars.push(v("gateway_1conn", gw, gh, 1, vec![gw_pid]));
    let mut one_cpu = vec![v("direct_1conn_1cpu", backend, "localhost", 1, vec![])];
    if let Some((addr, pids)) = &nginx {
        one_cpu.push(v("nginx_1conn_1cpu", *addr, "localhost", 1, pids.clone()));
    }
    one_cpu.push(v("gateway_1conn_1cpu", gw, gh, 1, vec![gw_pid]));
    let wants_one_cpu = one_cpu
        .iter()
        .any(|v| opts.only.is_empty() || opts.only.iter().any(|n| n == v.name));
    // Where pinning is unavailable the one-CPU rows are left out, unless `--only` asked for
    // them (then that is an error).
    let cpu = match child::pin_cpu() {
        Ok(cpu) => Some(cpu),
        Err(e) if !opts.only.is_empty() && wants_one_cpu => return Err(e),
        Err(_) => None,
    };
    if let (true, Some(cpu)) = (wants_one_cpu, cpu) {
        let pin = OneCpu {
            cpu,
            also: backend_pid.into_iter().collect(),
        };
        for mut var in one_cpu {
            var.pin = Some(pin.clone());
            vars.push(var);
        }
    }
    let mut h2 = v("gateway_h2", gw, gh, n, vec![gw_pid]);
    h2.proto = Proto::Http2;
    vars.push(h2);
    vars.push(v("gateway_tls_backend", gw_tls, gh, n, vec![gw_tls_pid]));
    let _ = tls_client(&tls_ca, &target.dns_name)?; // validates the CA file early
    if !opts.only.is_empty() {
        vars.retain(|v| opts.only.iter().any(|n| n == v.name));
    }

    let rounds = opts.rounds.max(1);
    let total = vars.len() * (rounds + 1) + 1;
    let mut done = 0;
    let mut step = |label: String, progress: &mut dyn FnMut(&Progress)| {
        progress(&Progress { done, total, label });
        done += 1;
    };
    let warm = opts.duration.min(Duration::from_millis(500));
    for var in &vars {
        step(format!("warm-up {}", var.name), progress);
        run_once(var, &target.path, warm).await?;
    }
    // Each group runs interleaved in slices, at the place of its first row; which of its rows
    // starts rotates every round.
    let groups = interleaved_groups(&vars);
    let mut flows: Option<(u64, u64)> = None;
    for round in 0..rounds {
        for i in 0..vars.len() {
            let group = groups.iter().find(|g| g.contains(&i));
            if group.is_some_and(|g| g.iter().min() != Some(&i)) {
                continue;
            }
            let ran: Vec<usize> = match group {
                Some(g) => {
                    let mut order = g.clone();
                    order.rotate_left(round % g.len());
                    let names: Vec<&str> = order.iter().map(|&j| vars[j].name).collect();
                    step(
                        format!("round {}/{rounds}: {}", round + 1, names.join(" ⇄ ")),
                        progress,
                    );
                    let group_vars: Vec<&Variant> = order.iter().map(|&j| &vars[j]).collect();
                    let results = run_interleaved(&group_vars, &target.path, opts.duration).await?;
                    for (&j, r) in order.iter().zip(results) {
                        vars[j].runs.push(r);
                    }
                    // One progress step per row, as for rows run alone.
                    for name in &names[1..] {
                        step(format!("round {}/{rounds}: {name}", round + 1), progress);
                    }
                    order
                }
                None => {
                    step(
                        format!("round {}/{rounds}: {}", round + 1, vars[i].name),
                        progress,
                    );
                    let r = run_once(&vars[i], &target.path, opts.duration).await?;
                    vars[i].runs.push(r);
                    vec![i]
                }
            };
            // The keep-alive gateway's pool holds one flow per client connection now.
            if round + 1 == rounds && ran.iter().any(|&j| vars[j].name == "gateway") {
                if let Some(admin) = kids.admin.get("gateway") {
                    flows = Some(flow_table(*admin).await?);
                }
            }
        }
    }
    let memory = Memory {
        flows_tracked: flows.map(|(f, _)| f),
        flow_table_bytes: flows.map(|(_, b)| b),
        bytes_per_tracked_flow: flows
            .filter(|(f, _)| *f > 0)
            .map(|(f, b)| b as f64 / f as f64),
        gateway_peak_rss_kib: child::peak_rss_kib(gw_pid),
        nginx_peak_rss_kib: nginx.as_ref().and_then(|(_, pids)| {
            pids.iter()
                .map(|p| child::peak_rss_kib(*p))
                .sum::<Option<u64>>()
        }),
    };
    let mut child_pids: Vec<u32> = kids.procs.iter().map(child::ChildProc::pid).collect();
    if let Some((_, pids)) = &nginx {
        child_pids.extend(pids.iter().skip(1));
    }
    drop(kids);
    drop(dir);

    step("NSG micro-measure".into(), progress);
    let nsg = tokio::task::spawn_blocking(nsg::measure)
        .await
        .map_err(|e| BenchError::Io {
            what: "the NSG micro-measure".into(),
            source: std::io::Error::other(e.to_string()),
        })?;

    let ratios = ratios(&vars);
    let targets = targets(&ratios, &vars, &nsg);
    Ok(Report {
        rows: vars.iter().map(row).collect(),
        ratios,
        nsg,
        targets,
        memory,
        machine: machine(),
        settings: Settings {
            fixture: opts.fixture.as_ref().map_or_else(
                || "embedded default".to_string(),
                |p| p.display().to_string(),
            ),
            api: format!("{} ({}:{})", target.api, target.dns_name, target.port),
            duration_ms: u64::try_from(opts.duration.as_millis()).unwrap_or(u64::MAX),
            connections: n,
            rounds,
            gateway_threads: opts.gateway_threads,
            nginx: opts.nginx.as_deref().map(nginx_version),
            child_pids,
        },
    })
}

fn tls_client(ca: &Path, name: &str) -> Result<ClientTls, BenchError> {
    Ok(ClientTls {
        config: serve::client_tls(ca)?,
        server_name: name.to_string(),
    })
}

fn row(v: &Variant) -> Row {
    let col = |f: fn(&RunResult) -> f64| {
        let mut xs: Vec<f64> = v.runs.iter().map(f).collect();
        median(&mut xs).unwrap_or(0.0)
    };
    let mut cpu: Vec<f64> = v.runs.iter().filter_map(|r| r.cpu_us_per_req).collect();
    Row {
        name: v.name.to_string(),
        rps: col(|r| r.rps),
        p50_us: col(|r| r.p50),
        p99_us: col(|r| r.p99),
        cpu_us_per_req: median(&mut cpu),
        errors: v.runs.iter().map(|r| r.errors).sum(),
        requests: v.runs.iter().map(|r| r.requests).sum(),
        runs: v.runs.len(),
        connections: v.connections,
        first_error: v.runs.iter().find_map(|r| r.first_error.clone()),
    }
}

fn runs<'a>(vars: &'a [Variant], name: &str) -> &'a [RunResult] {
    vars.iter()
        .find(|v| v.name == name)
        .map_or(&[], |v| v.runs.as_slice())
}

/// Per-round `f(a[i], b[i])`, in round order.
fn per_round(
    a: &[RunResult],
    b: &[RunResult],
    f: impl Fn(&RunResult, &RunResult) -> Option<f64>,
) -> Vec<f64> {
    a.iter().zip(b).filter_map(|(x, y)| f(x, y)).collect()
}

/// Per-round `f(a[i], b[i])`, median.
fn paired(
    a: &[RunResult],
    b: &[RunResult],
    f: impl Fn(&RunResult, &RunResult) -> Option<f64>,
) -> Option<f64> {
    median(&mut per_round(a, b, f))
}

fn ratios(vars: &[Variant]) -> Ratios {
    let gw = runs(vars, "gateway");
    let ngx = runs(vars, "nginx");
    let rounds = per_round(gw, ngx, |g, n| Some(g.rps / n.rps));
    let with = runs(vars, "gateway_new_flow");
    let without = runs(vars, "gateway_new_flow_no_policy");
    // p50(a) − p50(b) of the same round (the rows run interleaved), median over the rounds.
    let added = |a, b| paired(runs(vars, a), runs(vars, b), |x, y| Some(x.p50 - y.p50));
    Ratios {
        gateway_vs_direct: paired(gw, runs(vars, "direct"), |g, d| Some(g.rps / d.rps)),
        gateway_vs_nginx: median(&mut rounds.clone()),
        gateway_cpu_vs_nginx: paired(gw, ngx, |g, n| Some(g.cpu_us_per_req? / n.cpu_us_per_req?)),
        policy_overhead: paired(with, without, |w, o| Some(1.0 - w.rps / o.rps)),
        policy_overhead_cpu: paired(with, without, |w, o| {
            Some(1.0 - o.cpu_us_per_req? / w.cpu_us_per_req?)
        }),
        gateway_added_p50_us: added("gateway_1conn", "direct_1conn"),
        nginx_added_p50_us: added("nginx_1conn", "direct_1conn"),
        gateway_added_p50_us_1cpu: added("gateway_1conn_1cpu", "direct_1conn_1cpu"),
        nginx_added_p50_us_1cpu: added("nginx_1conn_1cpu", "direct_1conn_1cpu"),
        gateway_vs_nginx_rounds: rounds,
    }
}

fn targets(r: &Ratios, vars: &[Variant], nsg: &NsgMeasure) -> Vec<TargetCheck> {
    let check = |name, target, value: Option<f64>, ok: fn(f64) -> bool| TargetCheck {
        name,
        target,
        value,
        met: value.map(ok),
    };
    let errors: u64 = ["direct", "gateway", "nginx"]
        .iter()
        .flat_map(|n| runs(vars, n))
        .map(|r| r.errors)
        .sum();
    vec![
        check("gateway_vs_nginx", "≥ 0.90", r.gateway_vs_nginx, |v| {
            v >= 0.90
        }),
        check(
            "gateway_cpu_vs_nginx",
            "≤ 1.10",
            r.gateway_cpu_vs_nginx,
            |v| v <= 1.10,
        ),
        check(
            "errors (direct, gateway, nginx)",
            "= 0",
            Some(errors as f64),
            |v| v == 0.0,
        ),
        check("policy_overhead", "≤ 3%", r.policy_overhead, |v| {
            v <= 0.03
        }),
        check(
            "gateway_added_p50_us (1 connection)",
            "≤ 60 µs",
            r.gateway_added_p50_us,
            |v| v <= 60.0,
        ),
        check(
            "gateway_added_p50_us_1cpu (1 connection, one CPU)",
            "≤ 60 µs",
            r.gateway_added_p50_us_1cpu,
            |v| v <= 60.0,
        ),
        check(
            "nsg compiled_ns (1,000 rules, median)",
            "≤ 50 ns",
            Some(nsg.compiled_ns),
            |v| v <= 50.0,
        ),
        check(
            "nsg speedup vs reference (1,000 rules)",
            "≥ 10×",
            Some(nsg.speedup),
            |v| v >= 10.0,
        ),
    ]
}

/// The report as text: the table, the ratios against their targets, the NSG measure.
pub fn render_text(r: &Report) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    let opt =
        |v: Option<f64>, prec: usize| v.map_or_else(|| "-".to_string(), |v| format!("{v:.prec$}"));
    let _ = writeln!(
        s,
        "{:<28} {:>5} {:>10} {:>9} {:>9} {:>12} {:>7}",
        "row", "conns", "req/s", "p50 µs", "p99 µs", "CPU µs/req", "errors"
    );
    for row in &r.rows {
        let _ = writeln!(
            s,
            "{:<28} {:>5} {:>10.0} {:>9.0} {:>9.0} {:>12} {:>7}",
            row.name,
            row.connections,
            row.rps,
            row.p50_us,
            row.p99_us,
            opt(row.cpu_us_per_req, 1),
            row.errors
        );
    }
    let _ = writeln!(s);
    let x = &r.ratios;
    let _ = writeln!(
        s,
        "gateway vs direct           {}",
        opt(x.gateway_vs_direct, 3)
    );
    let _ = writeln!(
        s,
        "gateway vs nginx (paired)   {}",
        opt(x.gateway_vs_nginx, 3)
    );
    let _ = writeln!(
        s,
        "gateway CPU vs nginx        {}",
        opt(x.gateway_cpu_vs_nginx, 3)
    );
    let _ = writeln!(
        s,
        "policy overhead (req/s)     {}",
        x.policy_overhead
            .map_or("-".into(), |v| format!("{:.1}%", v * 100.0))
    );
    let _ = writeln!(
        s,
        "policy overhead (CPU)       {}",
        x.policy_overhead_cpu
            .map_or("-".into(), |v| format!("{:.1}%", v * 100.0))
    );
    let _ = writeln!(
        s,
        "added p50, 1 connection     gateway {} µs, nginx {} µs",
        opt(x.gateway_added_p50_us, 0),
        opt(x.nginx_added_p50_us, 0)
    );
    let _ = writeln!(
        s,
        "added p50, 1 conn, one CPU  gateway {} µs, nginx {} µs",
        opt(x.gateway_added_p50_us_1cpu, 0),
        opt(x.nginx_added_p50_us_1cpu, 0)
    );
    let _ = writeln!(s);
    for t in &r.targets {
        let verdict = match t.met {
            Some(true) => "met",
            Some(false) => "NOT met",
            None => "not measured",
        };
        let _ = writeln!(
            s,
            "target {:<50} {:<9} {:>10}  {verdict}",
            t.name,
            t.target,
            target_value(t)
        );
    }
    let _ = writeln!(s);
    let n = &r.nsg;
    let _ = writeln!(
        s,
        "NSG {} rules ({} prefixes/side, {} flows): compiled {:.1} ns/flow, reference {:.1} ns/flow, {:.1}× faster",
        n.rules, n.prefixes_per_side, n.flows, n.compiled_ns, n.reference_ns, n.speedup
    );
    let _ = writeln!(
        s,
        "memory: gateway peak RSS {} KiB, nginx peak RSS {} KiB",
        r.memory
            .gateway_peak_rss_kib
            .map_or("-".into(), |v| v.to_string()),
        r.memory
            .nginx_peak_rss_kib
            .map_or("-".into(), |v| v.to_string())
    );
    let _ = writeln!(
        s,
        "flow table: {} flows tracked, {} bytes, {} bytes per tracked flow",
        r.memory.flows_tracked.map_or("-".into(), |v| v.to_string()),
        r.memory
            .flow_table_bytes
            .map_or("-".into(), |v| v.to_string()),
        opt(r.memory.bytes_per_tracked_flow, 0)
    );
    let m = &r.machine;
    let _ = writeln!(
        s,
        "machine: {} CPUs, {}, Linux {}; {} rounds × {} ms, {} connections, gateway threads {}, API {}",
        m.nproc,
        m.cpu_model.as_deref().unwrap_or("?"),
        m.kernel.as_deref().unwrap_or("?"),
        r.settings.rounds,
        r.settings.duration_ms,
        r.settings.connections,
        r.settings.gateway_threads,
        r.settings.api
    );
    if let Some(n) = &r.settings.nginx {
        let _ = writeln!(s, "nginx: {n}");
    }
    s
}

/// A target's value in the unit its goal is written in (`≤ 3%` → `7.8%`, `≤ 60 µs` → `61.0 µs`).
fn target_value(t: &TargetCheck) -> String {
    match t.value {
        None => "-".into(),
        Some(v) if t.target.ends_with('%') => format!("{:.1}%", v * 100.0),
        Some(v) if t.target.ends_with("µs") => format!("{v:.1} µs"),
        Some(v) if t.target.ends_with("ns") => format!("{v:.1} ns"),
        Some(v) if t.target.ends_with('×') => format!("{v:.0}×"),
        Some(v) if t.target == "= 0" => format!("{v:.0}"),
        Some(v) => format!("{v:.3}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(rps: f64, cpu: f64) -> RunResult {
        RunResult {
            rps,
            p50: 0.0,
            p99: 0.0,
            cpu_us_per_req: Some(cpu),
            errors: 0,
            requests: 1,
            first_error: None,
        }
    }

    fn load_result(requests: u64, seconds: f64, latency_us: u64) -> loadgen::LoadResult {
        let mut h = hdrhistogram::Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).unwrap();
        h.record_n(latency_us, requests).unwrap();
        loadgen::LoadResult {
            requests,
            errors: 0,
            seconds,
            rps: requests as f64 / seconds,
            p50_us: latency_us as f64,
            p99_us: latency_us as f64,
            first_error: None,
            latency_us: h,
        }
    }

    /// Interleaved slices add up: requests over the total time, merged latencies, CPU over
    /// all requests; a slice without a CPU reading leaves the CPU unknown, not smaller.
    #[test]
    fn merged_slices_count_requests_over_their_total_time() {
        let m = RunResult::merge(&[
            (load_result(100, 0.5, 10), Some(1_000.0)),
            (load_result(300, 0.5, 30), Some(1_000.0)),
        ]);
        assert_eq!(m.requests, 400);
        assert_eq!(m.rps, 400.0);
        assert_eq!(m.p50, 30.0);
        assert_eq!(m.cpu_us_per_req, Some(5.0));
        let m = RunResult::merge(&[
            (load_result(100, 0.5, 10), Some(1_000.0)),
            (load_result(300, 0.5, 30), None),
        ]);
        assert_eq!(m.cpu_us_per_req, None);
        assert_eq!(m.p50, 30.0);
    }

    /// The text report shows each target's value in the unit of its goal.
    #[test]
    fn target_values_are_shown_in_their_goals_unit() {
        let t = |target, value| TargetCheck {
            name: "x",
            target,
            value,
            met: None,
        };
        assert_eq!(target_value(&t("≤ 3%", Some(0.078))), "7.8%");
        assert_eq!(target_value(&t("≤ 60 µs", Some(61.0))), "61.0 µs");
        assert_eq!(target_value(&t("= 0", Some(0.0))), "0");
        assert_eq!(target_value(&t("≤ 50 ns", Some(27.64))), "27.6 ns");
        assert_eq!(target_value(&t("≥ 10×", Some(182.3))), "182×");
        assert_eq!(target_value(&t("≥ 0.90", Some(0.9675))), "0.968");
        assert_eq!(target_value(&t("≥ 0.90", None)), "-");
    }

    #[test]
    fn median_of_odd_and_even_lengths() {
        assert_eq!(median(&mut []), None);
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&mut [4.0, 1.0, 3.0, 2.0]), Some(2.5));
    }

    fn variant(name: &'static str) -> Variant {
        Variant {
            name,
            addr: SocketAddr::from(([127, 0, 0, 1], 1)),
            host: "localhost".into(),
            connections: 1,
            proto: Proto::Http1,
            tls: None,
            pids: Vec::new(),
            pin: None,
            runs: Vec::new(),
        }
    }

    /// Rows compared with each other run interleaved, whatever `--only` left of their group;
    /// a row left alone runs alone.
    #[test]
    fn rows_compared_with_each_other_are_grouped() {
        let names = [
            "direct",
            "nginx",
            "gateway",
            "gateway_new_flow",
            "direct_1conn",
            "gateway_1conn",
            "direct_1conn_1cpu",
            "nginx_1conn_1cpu",
            "gateway_1conn_1cpu",
        ];
        let vars: Vec<Variant> = names.into_iter().map(variant).collect();
        assert_eq!(
            interleaved_groups(&vars),
            vec![vec![1, 2], vec![4, 5], vec![6, 7, 8]]
        );
        let vars: Vec<Variant> = ["gateway", "gateway_h2"].into_iter().map(variant).collect();
        assert!(interleaved_groups(&vars).is_empty());
    }

    /// Added latency: the same round's p50s subtracted, median over the rounds.
    #[test]
    fn added_latency_pairs_the_rounds() {
        let p50 = |p| RunResult {
            p50: p,
            ..run(1.0, 1.0)
        };
        let mut gw = variant("gateway_1conn_1cpu");
        gw.runs = vec![p50(100.0), p50(90.0), p50(200.0)];
        let mut direct = variant("direct_1conn_1cpu");
        direct.runs = vec![p50(40.0), p50(85.0), p50(120.0)];
        let r = ratios(&[gw, direct]);
        // Per round 60, 5, 80 → 60; the difference of the rows' medians would be 100 − 85.
        assert_eq!(r.gateway_added_p50_us_1cpu, Some(60.0));
        assert_eq!(r.nginx_added_p50_us_1cpu, None);
        assert_eq!(r.gateway_added_p50_us, None);
    }

    #[test]
    fn gateway_runs_are_divided_by_the_nginx_run_of_their_round() {
        let gw = [run(45.0, 2.0), run(45.0, 3.0), run(90.0, 2.0)];
        let ngx = [run(90.0, 1.0), run(50.0, 2.0), run(100.0, 2.0)];
        let r = per_round(&gw, &ngx, |g, n| Some(g.rps / n.rps));
        assert_eq!(r, vec![0.5, 0.9, 0.9]);
        assert_eq!(paired(&gw, &ngx, |g, n| Some(g.rps / n.rps)), Some(0.9));
        let cpu = paired(&gw, &ngx, |g, n| {
            Some(g.cpu_us_per_req? / n.cpu_us_per_req?)
        });
        assert_eq!(cpu, Some(1.5));
        // A missing row gives no ratio, not a ratio against nothing.
        assert_eq!(paired(&gw, &[], |g, n| Some(g.rps / n.rps)), None);
    }
}
