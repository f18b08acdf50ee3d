//! `vnetsim bench [FIXTURE]`: the outbound path measured side by side (see [`crate::bench`]),
//! and the two hidden child commands it starts, `__gateway` and `__echo`.

use std::io::{IsTerminal as _, Write as _};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::bench::{self, BenchOptions, EchoChild, GatewayChild, Progress};
use anyhow::Context as _;

use super::{Output, Status};

/// The binary's global allocator (every command, not only the bench): mimalloc, which
/// PERF-NOTES and `vnetsim bench` profiles found cheaper than glibc malloc on the gateway's
/// per-request allocations (glibc's `_int_malloc`/`_int_free`/`malloc_consolidate` were ~4% of
/// the gateway's CPU).
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Arguments of `vnetsim bench`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The fixture (default: the embedded default topology); the first API whose backend flow the NSGs allow is loaded.
    fixture: Option<PathBuf>,
    /// Length of each run of each variant per round (e.g. 5s, 200ms).
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    duration: Duration,
    /// Client connections of the multi-connection rows.
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u64).range(1..=4096))]
    connections: u64,
    /// Rounds: every variant runs `--duration` once per round; rows compared with each other
    /// (nginx and gateway, the policy pair, the one-connection triples) run interleaved in
    /// slices of at most 500 ms.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u64).range(1..=1000))]
    rounds: u64,
    /// Output format (json is quiet: no progress bar).
    #[arg(long, value_enum, default_value_t)]
    output: Output,
    /// Proxy threads of the gateway (default: one per free core, at least one).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=256))]
    threads: Option<u64>,
    /// The nginx binary to compare with (default: `nginx` on PATH, if any).
    #[arg(long, value_name = "PATH", conflicts_with = "no_nginx")]
    nginx: Option<PathBuf>,
    /// Skip nginx even when it is on PATH (its rows and ratios are then null).
    #[arg(long)]
    no_nginx: bool,
    /// Measure only these rows (comma-separated: direct, nginx, gateway, gateway_new_flow,
    /// gateway_new_flow_no_policy, direct_1conn, nginx_1conn, gateway_1conn, direct_1conn_1cpu,
    /// nginx_1conn_1cpu, gateway_1conn_1cpu, gateway_h2, gateway_tls_backend); ratios whose rows
    /// are missing are null.
    #[arg(long, value_name = "ROWS", value_delimiter = ',')]
    only: Vec<String>,
}

impl Args {
    pub(crate) fn output(&self) -> Output {
        self.output
    }
}

/// `500ms`, `5s`, `2m`, or a bare number of seconds.
fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = match s.find(|c: char| !(c.is_ascii_digit() || c == '.')) {
        Some(i) => s.split_at(i),
        None => (s, "s"),
    };
    let v: f64 = num
        .parse()
        .map_err(|_| format!("`{s}`: expected a duration like 200ms, 5s or 1m"))?;
    let secs = match unit {
        "ms" => v / 1000.0,
        "s" => v,
        "m" => v * 60.0,
        _ => return Err(format!("`{s}`: unknown unit `{unit}` (ms, s or m)")),
    };
    if !(0.01..=3600.0).contains(&secs) {
        return Err(format!("`{s}`: between 10ms and 1h"));
    }
    Ok(Duration::from_secs_f64(secs))
}

pub(crate) fn run(a: &Args) -> anyhow::Result<Status> {
    let nginx = match (&a.nginx, a.no_nginx) {
        (_, true) => None,
        (Some(p), false) => Some(p.clone()),
        (None, false) => bench::find_nginx(),
    };
    let opts = BenchOptions {
        exe: std::env::current_exe().context("locating the vnetsim binary")?,
        fixture: a.fixture.clone(),
        duration: a.duration,
        connections: a.connections as usize,
        rounds: a.rounds as usize,
        nginx,
        gateway_threads: a
            .threads
            .map_or_else(bench::default_proxy_threads, |t| t as usize),
        only: a.only.clone(),
    };
    let show = a.output == Output::Text && std::io::stderr().is_terminal();
    let mut bar = |p: &Progress| {
        if show {
            draw(p);
        }
    };
    // The load generator is a single thread, like `wrk -t1`: the client takes one core's share.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the Tokio runtime")?;
    let result = rt.block_on(async {
        tokio::select! {
            r = bench::run(&opts, &mut bar) => Some(r),
            () = interrupted() => None,
        }
    });
    if show {
        eprint!("\r\x1b[2K");
    }
    // Every child process was stopped and reaped when the bench future was dropped.
    let Some(report) = result else {
        eprintln!("interrupted; every child process was stopped");
        return Ok(Status::BadInput);
    };
    let report = report?;
    match a.output {
        Output::Text => print!("{}", bench::render_text(&report)),
        Output::Json => println!(
            "{}",
            serde_json::to_string_pretty(&report).context("serializing the report")?
        ),
    }
    Ok(Status::Success)
}

fn draw(p: &Progress) {
    const WIDTH: usize = 30;
    let filled = (p.done * WIDTH)
        .checked_div(p.total)
        .unwrap_or(0)
        .min(WIDTH);
    let mut e = std::io::stderr().lock();
    let _ = write!(
        e,
        "\r\x1b[2K[{}{}] {}/{} {}",
        "#".repeat(filled),
        "-".repeat(WIDTH - filled),
        p.done,
        p.total,
        p.label
    );
    let _ = e.flush();
}

#[cfg(unix)]
async fn interrupted() {
    let term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate());
    match term {
        Ok(mut term) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

#[cfg(not(unix))]
async fn interrupted() {
    let _ = tokio::signal::ctrl_c().await;
}

/// Arguments of the hidden `vnetsim __gateway` (the bench's gateway child).
#[derive(Debug, clap::Args)]
pub(crate) struct GatewayArgs {
    /// The fixture (default: the embedded default topology).
    fixture: Option<PathBuf>,
    /// Write `{"gateway_url", "addr", "admin_url"}` here once ready.
    #[arg(long)]
    ready_file: PathBuf,
    /// `HOST:PORT=ADDR`: the loopback socket that plays a simulated host:port (repeatable).
    #[arg(long, value_parser = parse_upstream)]
    upstream: Vec<(String, u16, SocketAddr)>,
    /// Speak clear-text HTTP to every backend (same host and port, so the same verdicts).
    #[arg(long)]
    plain_upstreams: bool,
    /// Trust this PEM certificate for upstream TLS.
    #[arg(long)]
    extra_root_pem: Option<PathBuf>,
    /// Proxy threads (default: one per free core).
    #[arg(long)]
    threads: Option<usize>,
    /// Bench only: a new upstream connection (flow) for every request.
    #[arg(long)]
    bench_upstream_per_request: bool,
    /// Bench only: a second loopback front door whose new flows skip the NSG check.
    #[arg(long, value_name = "ADDR")]
    bench_unchecked_listen: Option<SocketAddr>,
}

fn parse_upstream(s: &str) -> Result<(String, u16, SocketAddr), String> {
    let err = || format!("`{s}`: expected HOST:PORT=ADDR, e.g. orders:443=127.0.0.1:8080");
    let (hp, addr) = s.split_once('=').ok_or_else(err)?;
    let (host, port) = hp.rsplit_once(':').ok_or_else(err)?;
    Ok((
        host.to_string(),
        port.parse().map_err(|_| err())?,
        addr.parse().map_err(|_| err())?,
    ))
}

pub(crate) fn run_gateway(a: &GatewayArgs) -> anyhow::Result<Status> {
    bench::run_gateway_child(&GatewayChild {
        fixture: a.fixture.clone(),
        ready_file: a.ready_file.clone(),
        upstreams: a.upstream.clone(),
        plain_upstreams: a.plain_upstreams,
        extra_root_pem: a.extra_root_pem.clone(),
        threads: a.threads.unwrap_or_else(bench::default_proxy_threads),
        knobs: gateway::BenchKnobs {
            upstream_per_request: a.bench_upstream_per_request,
            unchecked_listen: a.bench_unchecked_listen,
        },
    })?;
    Ok(Status::Success)
}

/// Arguments of the hidden `vnetsim __echo` (the bench's hello backend).
#[derive(Debug, clap::Args)]
pub(crate) struct EchoArgs {
    /// Loopback address to listen on.
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// Write `{"addr", "ca_pem"}` here once listening.
    #[arg(long)]
    ready_file: PathBuf,
    /// Serve TLS with a certificate for this name (repeatable).
    #[arg(long)]
    tls_name: Vec<String>,
}

pub(crate) fn run_echo(a: &EchoArgs) -> anyhow::Result<Status> {
    bench::run_echo_child(&EchoChild {
        listen: a.listen,
        ready_file: a.ready_file.clone(),
        tls_names: a.tls_name.clone(),
    })?;
    Ok(Status::Success)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_upstreams_parse() {
        assert_eq!(parse_duration("200ms"), Ok(Duration::from_millis(200)));
        assert_eq!(parse_duration("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("2"), Ok(Duration::from_secs(2)));
        assert!(parse_duration("5h").is_err());
        assert!(parse_duration("1ms").is_err());
        let (h, p, a) = parse_upstream("orders:443=127.0.0.1:9").unwrap();
        assert_eq!((h.as_str(), p, a.port()), ("orders", 443, 9));
        assert!(parse_upstream("orders=127.0.0.1:9").is_err());
    }
}
