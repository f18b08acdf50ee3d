//! The report of `vnetsim bench`: each row as the median over its rounds, the paired ratios
//! (a round's runs divided by, or subtracted from, the same round's runs of another row), the
//! issue's targets met or not, memory and machine, and the text rendering (`--output json`
//! serializes [`Report`] as it is). Only arithmetic over finished runs: which rows run when is
//! [`super::schedule`]'s.

use serde::Serialize;

use super::schedule::{RunResult, Variant};
use super::{median, NsgMeasure};

/// One row of the table.
#[derive(Clone, Debug, Serialize)]
pub struct Row {
    /// The variant (see the [`crate::bench`] module docs).
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

pub(super) fn machine() -> Machine {
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

pub(super) fn row(v: &Variant) -> Row {
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

pub(super) fn ratios(vars: &[Variant]) -> Ratios {
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

pub(super) fn targets(r: &Ratios, vars: &[Variant], nsg: &NsgMeasure) -> Vec<TargetCheck> {
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

    fn variant(name: &'static str) -> Variant {
        Variant::for_test(name)
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
