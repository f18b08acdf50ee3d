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
//!
//! This file starts the children and puts the rows together; the submodules own the rest:
//! `children` (the child processes of a run and what they report back), `schedule` (when each
//! row runs: rounds, interleaved groups, slices), `report` (medians, paired ratios, targets,
//! the text report), `child`, `nginx`, `serve` and `nsg` (one child process, nginx's config,
//! what the children run, the NSG micro-measure).

mod child;
mod children;
mod nginx;
mod nsg;
mod report;
mod schedule;
mod serve;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::loadgen::{self, ClientTls, Proto};
use children::Children;
use schedule::{OneCpu, Variant};

pub use crate::runtime::default_proxy_threads;
pub use child::process_exists;
pub use nginx::find_on_path as find_nginx;
pub use nsg::NsgMeasure;
pub use report::{render_text, Memory, Report, Settings};
pub use serve::{run_echo_child, run_gateway_child, EchoChild, GatewayChild};

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
    let mut kids = Children::new(dir.0.clone(), opts.exe.clone());

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
        schedule::run_once(var, &target.path, warm).await?;
    }
    // Each group runs interleaved in slices, at the place of its first row; which of its rows
    // starts rotates every round.
    let mut flows: Option<(u64, u64)> = None;
    for slot in schedule::plan(&vars, rounds) {
        let round = slot.round;
        let names: Vec<&'static str> = slot.rows.iter().map(|&j| vars[j].name).collect();
        step(
            format!("round {}/{rounds}: {}", round + 1, names.join(" ⇄ ")),
            progress,
        );
        schedule::run_slot(&mut vars, &slot, &target.path, opts.duration).await?;
        // One progress step per row of a group, as for rows run alone.
        for name in &names[1..] {
            step(format!("round {}/{rounds}: {name}", round + 1), progress);
        }
        // The keep-alive gateway's pool holds one flow per client connection now.
        if round + 1 == rounds && names.contains(&"gateway") {
            if let Some(admin) = kids.admin.get("gateway") {
                flows = Some(children::flow_table(*admin).await?);
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

    let ratios = report::ratios(&vars);
    let targets = report::targets(&ratios, &vars, &nsg);
    Ok(Report {
        rows: vars.iter().map(report::row).collect(),
        ratios,
        nsg,
        targets,
        memory,
        machine: report::machine(),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even_lengths() {
        assert_eq!(median(&mut []), None);
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&mut [4.0, 1.0, 3.0, 2.0]), Some(2.5));
    }
}
