//! `vnetsim up FIXTURE`: starts the gateway and every `serve = "echo"` backend of a fixture on
//! loopback, prints where they are and the verdict of every API's backend flow, writes the ready
//! file once requests are accepted, and runs until Ctrl-C or SIGTERM, then shuts down gracefully.

use std::net::SocketAddr;
use std::path::PathBuf;

use crate::harness::Simulation;
use anyhow::Context as _;
use serde_json::json;
use sim::Topology;

use super::inputs::InputArgs;
use super::output::{findings_json_error, out};
use super::{Output, Status};

/// Arguments of `vnetsim up`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    #[command(flatten)]
    inputs: InputArgs,
    /// Play a backend `HOST:PORT` (a host name, DNS name or address of the topology) with your own local server instead of the built-in echo; repeatable. `http://127.0.0.1:N` is dialled in plain HTTP even when the service says `tls = true` (e.g. a wiremock server).
    #[arg(long, value_name = "HOST:PORT=[http://]127.0.0.1:N", value_parser = crate::azure::parse_upstream)]
    upstream: Vec<(String, String)>,
    /// Front door address (loopback; default: the fixture's `[gateway] listen`, else an ephemeral port).
    #[arg(long, value_name = "ADDR")]
    listen: Option<SocketAddr>,
    /// Admin listener address (loopback; default: ephemeral).
    #[arg(long, value_name = "ADDR")]
    admin_listen: Option<SocketAddr>,
    /// Write `{"gateway_url", "admin_url", "admin_token", "ca_cert", "backends"}` here (atomically) once ready.
    #[arg(long, value_name = "PATH")]
    ready_file: Option<PathBuf>,
    /// Proxy threads: 1 runs the gateway on one `current_thread` runtime (fastest on small machines); N > 1 a multi-thread runtime (default: one per free core, at least one).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=256))]
    threads: Option<u64>,
    /// Let a `POST /admin/reload` body name files (`[service_tags] file`, `[gateway] tls_cert`/`tls_key`), as relative paths inside FIXTURE's folder only; without it a body naming any file is refused (422).
    #[arg(long)]
    reload_body_files: bool,
    /// Output format: `json` prints the ready file's document on stdout once ready (and bad input as a JSON error).
    #[arg(long, value_enum, default_value_t, ignore_case = true)]
    output: Output,
}

impl Args {
    pub(crate) fn output(&self) -> Output {
        self.output
    }
}

/// One row per API: where its backend resolves from the instance and what the NSGs say about
/// a new flow to it right now.
fn backends(
    t: &Topology,
    upstream_of: impl Fn(&str, u16) -> Option<SocketAddr>,
) -> serde_json::Map<String, serde_json::Value> {
    let mut out = serde_json::Map::new();
    for (i, api) in t.apis().iter().enumerate() {
        let b = &api.backend;
        let host = api.host.map(|h| t.hosts()[h].name.clone());
        // The same question `check --from apim --to HOST:PORT` asks, answered by `sim`.
        let (address, verdict, code, rule) =
            match t.api_question(i, crate::query::DEFAULT_SOURCE_PORT) {
                Some(q) => {
                    let v = t.ask(&q);
                    let rule = match &v.decided_by {
                        Some(d) => Some(format!("{} {}", d.nsg, d.rule)),
                        None if v.code == sim::VerdictCode::DnsFailure => Some(v.detail.clone()),
                        None => None,
                    };
                    (
                        v.resolved.and_then(|r| r.address).map(|a| a.to_string()),
                        format!("{:?}", v.verdict),
                        v.code.as_str().to_string(),
                        rule,
                    )
                }
                None => (None, "Unknown".into(), "NO_APIM".into(), None),
            };
        // A configured upstream (`--upstream`, the fixture's `upstream`) or the echo playing it.
        let configured = api.host.and_then(|h| {
            t.hosts()[h]
                .services
                .iter()
                .find(|s| s.port == b.port)
                .and_then(|s| s.upstream)
        });
        let upstream = configured.or_else(|| host.as_deref().and_then(|h| upstream_of(h, b.port)));
        out.insert(
            api.name.clone(),
            json!({"path": api.path, "backend": format!("{}://{}{}", if b.https { "https" } else { "http" }, b.authority, b.path),
                   "host": host, "address": address, "port": b.port, "upstream": upstream,
                   "verdict": verdict, "code": code, "rule": rule}),
        );
    }
    out
}

pub(crate) fn run(a: &Args) -> anyhow::Result<Status> {
    let loaded = a.inputs.load_with(crate::LoadOptions {
        upstreams: a.upstream.clone(),
        reload_body_files: a.reload_body_files,
        ..a.inputs.azure.load_options()
    })?;
    if let Some(notes) = super::output::import_notes(
        &loaded.ignored,
        &loaded.unknowns,
        &loaded.import_assumptions,
    ) {
        eprintln!("{notes}\n");
    }
    let name = loaded.name.clone();
    let mut builder = Simulation::from_loaded(loaded);
    let errors: Vec<&sim::Finding> = builder.findings().iter().filter(|f| f.is_error()).collect();
    if !errors.is_empty() {
        if a.output == Output::Json {
            out(&findings_json_error(
                super::error::ErrorCode::ErrorFindings,
                &format!(
                    "{name} has {} error finding(s); nothing was started",
                    errors.len()
                ),
                &errors,
            ))?;
        }
        eprintln!(
            "error: {name} has {} error finding(s); nothing was started:",
            errors.len()
        );
        eprintln!("{}", super::output::findings_table(errors.iter().copied()));
        return Ok(Status::BadInput);
    }
    if let Some(l) = a.listen {
        builder = builder.listen(l);
    }
    if let Some(l) = a.admin_listen {
        builder = builder.admin_listen(l);
    }
    let threads = a
        .threads
        .map_or_else(crate::runtime::default_proxy_threads, |t| t as usize);
    let rt = crate::runtime::proxy_runtime(threads).context("starting the Tokio runtime")?;
    rt.block_on(async move {
        let sim = builder.start().await.context("starting the simulation")?;
        let gw = sim.gateway();
        let echo = gw.echo_servers();
        let rows = gw.with_topology(|t| {
            backends(t, |h, p| echo.iter().find(|e| e.host.eq_ignore_ascii_case(h) && e.port == p).map(|e| e.addr))
        });
        let doc = json!({"gateway_url": sim.gateway_url(), "admin_url": gw.admin_url(), "admin_token": gw.admin_token(),
                         "ca_cert": gw.ca_pem_path(), "backends": rows});
        if let Some(path) = &a.ready_file {
            let text = serde_json::to_string_pretty(&doc).context("serializing the ready file")?;
            crate::atomic::write(path, text.as_bytes())?;
        }
        if a.output == Output::Json {
            out(&serde_json::to_string(&doc)?)?;
            eprintln!("ready; Ctrl-C or SIGTERM stops it");
            crate::runtime::wait_for_signal()
                .await
                .context("waiting for Ctrl-C or SIGTERM")?;
            eprintln!("shutting down (in-flight requests may finish)");
            sim.shutdown().await;
            return Ok::<Status, anyhow::Error>(Status::Success);
        }
        println!("vnetsim up — {}", sim.name());
        println!("gateway   {}", sim.gateway_url());
        println!("admin     {}   (Authorization: Bearer {})", gw.admin_url(), gw.admin_token());
        println!("metrics   {}/metrics", gw.admin_url());
        println!("CA        {}", gw.ca_pem_path().display());
        println!();
        println!("{:<14} {:<12} {:<48} {:<12} {:<18} rule", "api", "path", "backend", "verdict", "code");
        for (name, r) in &rows {
            println!(
                "{:<14} {:<12} {:<48} {:<12} {:<18} {}",
                name,
                r["path"].as_str().unwrap_or(""),
                r["backend"].as_str().unwrap_or(""),
                r["verdict"].as_str().unwrap_or(""),
                r["code"].as_str().unwrap_or(""),
                r["rule"].as_str().unwrap_or("-")
            );
        }
        println!();
        println!("ready; Ctrl-C or SIGTERM stops it");
        crate::runtime::wait_for_signal()
            .await
            .context("waiting for Ctrl-C or SIGTERM")?;
        eprintln!("shutting down (in-flight requests may finish)");
        sim.shutdown().await;
        Ok::<Status, anyhow::Error>(Status::Success)
    })
}
