//! When each row of `vnetsim bench` runs, and how one run is measured: the load of one row
//! (on this thread's runtime, or on a thread of its own pinned to one CPU), the rows that run
//! interleaved in slices (`INTERLEAVED`, [`SLICE`]), and the order of a round ([`plan`]:
//! every row once, each group at the place of its first row, the group's first row rotating
//! per round). Starting the processes is `bench.rs`'s; what the runs add up to is
//! [`super::report`]'s.

use std::net::SocketAddr;
use std::time::Duration;

use crate::loadgen::{self, ClientTls, LoadSpec, Proto};

use super::{child, BenchError};

/// One run's figures.
#[derive(Clone, Debug)]
pub(super) struct RunResult {
    pub(super) rps: f64,
    pub(super) p50: f64,
    pub(super) p99: f64,
    pub(super) cpu_us_per_req: Option<f64>,
    pub(super) errors: u64,
    pub(super) requests: u64,
    pub(super) first_error: Option<String>,
}

/// One variant: where to send what, and whose CPU counts.
pub(super) struct Variant {
    pub(super) name: &'static str,
    pub(super) addr: SocketAddr,
    pub(super) host: String,
    pub(super) connections: usize,
    pub(super) proto: Proto,
    pub(super) tls: Option<ClientTls>,
    /// The proxy processes (empty for direct rows).
    pub(super) pids: Vec<u32>,
    /// One-CPU rows: the CPU that the client thread, the proxy's threads and the backend's
    /// threads (`also`) share for the run.
    pub(super) pin: Option<OneCpu>,
    pub(super) runs: Vec<RunResult>,
}

/// Where a one-CPU row runs.
#[derive(Clone, Debug)]
pub(super) struct OneCpu {
    pub(super) cpu: usize,
    /// Processes pinned with the proxy (the backend).
    pub(super) also: Vec<u32>,
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

pub(super) async fn run_once(
    v: &Variant,
    path: &str,
    duration: Duration,
) -> Result<RunResult, BenchError> {
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

/// What runs at one place of a round: one row alone, or a group of rows interleaved (in
/// this order).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Slot {
    /// The round, from 0.
    pub(super) round: usize,
    /// Indices into the rows; more than one: they run interleaved ([`run_interleaved`]).
    pub(super) rows: Vec<usize>,
}

/// Every slot of `rounds` rounds, in order. Each group of [`INTERLEAVED`] runs at the place of
/// its first row; which of its rows starts rotates every round.
pub(super) fn plan(vars: &[Variant], rounds: usize) -> Vec<Slot> {
    let groups = interleaved_groups(vars);
    let mut slots = Vec::new();
    for round in 0..rounds {
        for i in 0..vars.len() {
            let group = groups.iter().find(|g| g.contains(&i));
            if group.is_some_and(|g| g.iter().min() != Some(&i)) {
                continue;
            }
            let rows = match group {
                Some(g) => {
                    let mut order = g.clone();
                    order.rotate_left(round % g.len());
                    order
                }
                None => vec![i],
            };
            slots.push(Slot { round, rows });
        }
    }
    slots
}

/// Runs one slot for `duration` per row and adds each row's result to its runs.
pub(super) async fn run_slot(
    vars: &mut [Variant],
    slot: &Slot,
    path: &str,
    duration: Duration,
) -> Result<(), BenchError> {
    if let [i] = slot.rows[..] {
        let r = run_once(&vars[i], path, duration).await?;
        vars[i].runs.push(r);
        return Ok(());
    }
    let group_vars: Vec<&Variant> = slot.rows.iter().map(|&j| &vars[j]).collect();
    let results = run_interleaved(&group_vars, path, duration).await?;
    for (&j, r) in slot.rows.iter().zip(results) {
        vars[j].runs.push(r);
    }
    Ok(())
}

#[cfg(test)]
impl Variant {
    /// A row with no runs, for tests.
    pub(super) fn for_test(name: &'static str) -> Variant {
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
}

#[cfg(test)]
mod tests {
    use super::*;

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

    fn variant(name: &'static str) -> Variant {
        Variant::for_test(name)
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

    /// A round runs every row once: a group at the place of its first row, with the row that
    /// starts it rotating per round; rows outside a group keep their place.
    #[test]
    fn a_round_runs_each_group_at_its_first_row_and_rotates_it() {
        let vars: Vec<Variant> = ["direct", "nginx", "gateway", "gateway_h2"]
            .into_iter()
            .map(variant)
            .collect();
        let slot = |round, rows: &[usize]| Slot {
            round,
            rows: rows.to_vec(),
        };
        assert_eq!(
            plan(&vars, 2),
            vec![
                slot(0, &[0]),
                slot(0, &[1, 2]),
                slot(0, &[3]),
                slot(1, &[0]),
                slot(1, &[2, 1]),
                slot(1, &[3]),
            ]
        );
    }
}
