//! `vnetsim demo`: the whole mission on the embedded default topology. It starts the gateway and
//! the echo backends on ephemeral loopback ports, sends real requests through the gateway and
//! decides ten checks (the tenth on the second embedded topology, the forced tunnel) from what happened on the wire — statuses, which backend answered,
//! backend request counters, the flow table, the request journal — each with its evidence.

use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::{json, Value};
use sim::fixture::{NetworkMode, RawRule};
use sim::{Access, Direction, RuleProtocol, ServiceTagTable};

use crate::client::Response;
use crate::harness::{FaultKind, FaultRule, HarnessError, Simulation};
use crate::loadgen::{self, ClientTls, LoadSpec};

/// The ten check names, in order (a contract of `--output json`).
pub const CHECKS: [&str; 10] = [
    "preflight",
    "public-backend-reachable",
    "private-backend-reachable",
    "nsg-deny-enforced",
    "private-unreachable-without-integration",
    "gateway-inbound-public",
    "live-rule-change",
    "throughput-sample",
    "seeded-fault",
    "forced-tunnel-firewall",
];

/// Header the built-in echo backend honours to answer late (bounded), used to hold a flow busy.
pub const ECHO_DELAY_HEADER: &str = gateway::echo::DELAY_HEADER;

/// Demo settings.
#[derive(Clone, Debug)]
pub struct DemoOptions {
    /// Length of each throughput sample (direct, then through the gateway).
    pub sample: Duration,
    /// Connections of the throughput sample.
    pub connections: usize,
}

impl Default for DemoOptions {
    fn default() -> Self {
        DemoOptions {
            sample: Duration::from_millis(1500),
            connections: 8,
        }
    }
}

/// One check's outcome.
#[derive(Clone, Debug, Serialize)]
pub struct Check {
    /// Stable name (see [`CHECKS`]).
    pub name: &'static str,
    /// Whether what happened on the wire matched the claim.
    pub passed: bool,
    /// One line for people.
    pub summary: String,
    /// What was observed.
    pub evidence: Value,
}

/// The demo's report (`--output json`).
#[derive(Clone, Debug, Serialize)]
pub struct DemoReport {
    /// Every check passed.
    pub passed: bool,
    /// Gateway, topology and instance facts.
    #[serde(skip_serializing_if = "Value::is_null")]
    pub setup: Value,
    /// The checks, in order.
    pub checks: Vec<Check>,
}

fn check(name: &'static str, passed: bool, summary: impl Into<String>, evidence: Value) -> Check {
    Check {
        name,
        passed,
        summary: summary.into(),
        evidence,
    }
}

fn response_evidence(path: &str, r: &Response) -> Value {
    let echo = r.echo();
    json!({
        "request": format!("GET {path}"),
        "status": r.status.as_u16(),
        "answered_by": echo.as_ref().map(|e| format!("{}:{}", e.host, e.port)),
        "backend_received": echo.as_ref().map(|e| json!({"path": e.path, "query": e.query, "tls": e.tls, "host_header": e.headers.get("host")})),
        "problem": r.problem(),
        "x-vnetsim-verdict": r.verdict_header(),
    })
}

fn chain(sim: &Simulation, to: &str) -> Value {
    match sim.verdict("apim", to) {
        Ok(v) => json!({
            "flow": format!("apim {} -> {to}", v.flow.source),
            "verdict": v.verdict,
            "code": v.code,
            "chain": v.evaluated.iter().map(|e| format!("{} ({}, {}): {} {}", e.nsg, e.applied_to, e.direction, e.matched_rule, e.access)).collect::<Vec<_>>(),
        }),
        Err(e) => json!({"error": e.to_string()}),
    }
}

/// Runs the demo.
///
/// # Errors
/// [`HarnessError`] when the simulation cannot be set up (exit 2); failed checks are not errors.
pub async fn run(opts: &DemoOptions) -> Result<DemoReport, HarnessError> {
    let builder = Simulation::default_topology()?;
    let preflight = preflight_check(builder.findings(), builder.topology().service_tags());
    let sim = builder.allow_preflight_errors().start().await?;
    let setup = sim.gateway().with_topology(|t| {
        let apim = t.apim();
        json!({
            "fixture": "fixtures/default.toml (embedded)",
            "gateway_url": sim.gateway_url(),
            "admin_url": sim.gateway().admin_url(),
            "hostname": t.gateway().hostname,
            "apim": apim.map(|a| json!({"name": a.name, "sku": a.sku.as_str(), "mode": a.mode.as_str(),
                "subnet": a.subnet.map(|(v, s)| t.subnet_path(v, s)), "outbound_source": t.apim_source()})),
        })
    });
    let mut checks = vec![preflight];
    checks.push(public_reachable(&sim).await);
    checks.push(private_reachable(&sim).await);
    checks.push(deny_enforced(&sim).await);
    checks.push(without_integration(&sim).await);
    checks.push(inbound_public(&sim).await);
    checks.push(live_rule_change(&sim).await);
    checks.push(throughput(&sim, opts).await);
    checks.push(seeded_fault(&sim).await);
    sim.shutdown().await;
    checks.push(forced_tunnel().await);
    Ok(DemoReport {
        passed: checks.iter().all(|c| c.passed),
        setup,
        checks,
    })
}

fn preflight_check(findings: &[sim::Finding], tags: &ServiceTagTable) -> Check {
    let errors: Vec<&sim::Finding> = findings.iter().filter(|f| f.is_error()).collect();
    let warnings: Vec<&sim::Finding> = findings.iter().filter(|f| !f.is_error()).collect();
    check(
        "preflight",
        errors.is_empty(),
        format!(
            "{} errors, {} warnings (service tags: {})",
            errors.len(),
            warnings.len(),
            tags.info().describe()
        ),
        json!({"errors": errors, "warnings": warnings, "service_tags": tags.info()}),
    )
}

async fn public_reachable(sim: &Simulation) -> Check {
    let path = "/payments/status?probe=demo";
    match sim.get(path).await {
        Ok(r) => {
            let echo = r.echo();
            let ok = r.status == 200 && echo.as_ref().is_some_and(|e| e.host == "payments");
            let mut ev = response_evidence(path, &r);
            ev["verdict"] = chain(sim, "20.50.1.10:443");
            check(
                "public-backend-reachable",
                ok,
                format!(
                    "GET {path} -> {} answered by {}",
                    r.status,
                    echo.map_or("nobody".into(), |e| e.host)
                ),
                ev,
            )
        }
        Err(e) => check(
            "public-backend-reachable",
            false,
            format!("GET {path}: {e}"),
            json!({"error": e.to_string()}),
        ),
    }
}

async fn private_reachable(sim: &Simulation) -> Check {
    let path = "/orders/42";
    match sim.get(path).await {
        Ok(r) => {
            let echo = r.echo();
            let ok = r.status == 200
                && echo
                    .as_ref()
                    .is_some_and(|e| e.host == "orders" && e.path == "/v1/42" && e.tls);
            let mut ev = response_evidence(path, &r);
            ev["dns"] = json!({"name": "orders.internal.contoso.com", "resolved_from_apim": sim.gateway().with_topology(|t| t.resolve_from_apim("orders.internal.contoso.com").map(|ip| ip.to_string()).map_err(|e| e.to_string()))});
            ev["verdict"] = chain(sim, "10.0.2.4:443");
            check(
                "private-backend-reachable",
                ok,
                format!(
                    "GET {path} -> {} answered by {} over HTTPS via the integration subnet",
                    r.status,
                    echo.map_or("nobody".into(), |e| e.host)
                ),
                ev,
            )
        }
        Err(e) => check(
            "private-backend-reachable",
            false,
            format!("GET {path}: {e}"),
            json!({"error": e.to_string()}),
        ),
    }
}

async fn deny_enforced(sim: &Simulation) -> Check {
    let path = "/legacy/ping";
    let before = sim.echo_requests("legacy", 8080);
    let r = sim.get(path).await;
    let after = sim.echo_requests("legacy", 8080);
    match r {
        Ok(r) => {
            let p = r.problem();
            let ok = r.status == 502
                && p.as_ref().is_some_and(|p| {
                    p.code == "NSG_DENIED"
                        && p.rule.as_deref() == Some("securityRules/deny-legacy")
                        && p.nsg.as_deref() == Some("nsg-apim")
                        && p.priority == Some(150)
                })
                && before.is_some()
                && before == after;
            let mut ev = response_evidence(path, &r);
            ev["backend_requests_before"] = json!(before);
            ev["backend_requests_after"] = json!(after);
            ev["verdict"] = chain(sim, "10.0.2.5:8080");
            let who = p.as_ref().map_or("no problem body".into(), |p| {
                format!(
                    "{} by {} / {} (priority {})",
                    p.code,
                    p.nsg.clone().unwrap_or_default(),
                    p.rule.clone().unwrap_or_default(),
                    p.priority.unwrap_or(0)
                )
            });
            check(
                "nsg-deny-enforced",
                ok,
                format!(
                    "GET {path} -> {}: {who}; legacy received {} requests",
                    r.status,
                    after.unwrap_or(0).saturating_sub(before.unwrap_or(0))
                ),
                ev,
            )
        }
        Err(e) => check(
            "nsg-deny-enforced",
            false,
            format!("GET {path}: {e}"),
            json!({"error": e.to_string()}),
        ),
    }
}

async fn without_integration(sim: &Simulation) -> Check {
    let original = sim.gateway().with_document(|_, d| d.fixture().clone());
    let changed = sim.modify(|f| {
        if let Some(a) = f.apim.as_mut() {
            a.virtual_network = NetworkMode::None;
        }
    });
    if let Err(e) = changed {
        return check(
            "private-unreachable-without-integration",
            false,
            format!("turning integration off was refused: {e}"),
            json!({"error": e.to_string()}),
        );
    }
    let before = sim.echo_requests("orders", 443);
    let private = sim.get("/orders/1").await;
    let after = sim.echo_requests("orders", 443);
    let public = sim.get("/payments/status").await;
    let restore = sim.modify(|f| *f = original);
    let (Ok(private), Ok(public)) = (private, public) else {
        return check(
            "private-unreachable-without-integration",
            false,
            "a request got no response",
            json!({}),
        );
    };
    let code = private.problem().map(|p| p.code);
    let ok = private.status == 502
        && matches!(
            code.as_deref(),
            Some("DNS_FAILURE") | Some("NOT_INTEGRATED")
        )
        && before == after
        && public.status == 200
        && public.echo().is_some_and(|e| e.host == "payments")
        && restore.is_ok();
    check(
        "private-unreachable-without-integration",
        ok,
        format!(
            "integration off: GET /orders/1 -> {} {}; GET /payments/status -> {} (integration restored: {})",
            private.status,
            code.unwrap_or_default(),
            public.status,
            restore.is_ok()
        ),
        json!({"private": response_evidence("/orders/1", &private), "private_backend_requests_delta": after.unwrap_or(0).saturating_sub(before.unwrap_or(0)),
               "public": response_evidence("/payments/status", &public), "restored": restore.is_ok()}),
    )
}

async fn inbound_public(sim: &Simulation) -> Check {
    let original = sim.current_rules("nsg-apim");
    let deny_in = RawRule::new(
        "deny-all-inbound",
        100,
        Direction::Inbound,
        Access::Deny,
        RuleProtocol::Any,
        "*",
        "*",
    );
    if let Err(e) = sim.add_security_rule("nsg-apim", deny_in) {
        return check(
            "gateway-inbound-public",
            false,
            format!("adding deny-all-inbound was refused: {e}"),
            json!({"error": e.to_string()}),
        );
    }
    let r = sim.get("/payments/status").await;
    let v = sim.verdict("203.0.114.10", "apim:443");
    let restore = sim.set_nsg_rules("nsg-apim", &original);
    let Ok(r) = r else {
        return check(
            "gateway-inbound-public",
            false,
            "the request got no response",
            json!({}),
        );
    };
    let sim_ok = v
        .as_ref()
        .is_ok_and(|v| v.verdict == sim::VerdictKind::Allow && v.evaluated.is_empty());
    let ok = r.status == 200 && sim_ok && restore.is_ok();
    check(
        "gateway-inbound-public",
        ok,
        format!("nsg-apim denies all inbound; GET /payments/status from the internet -> {}; no NSG applies to the gateway endpoint", r.status),
        json!({"rule_added": "nsg-apim securityRules/deny-all-inbound (priority 100, Inbound, Deny, * -> *)",
               "request": response_evidence("/payments/status", &r),
               "internet_to_gateway": v.map(|v| json!({"verdict": v.verdict, "code": v.code, "nsgs_evaluated": v.evaluated.len(), "detail": v.detail})).unwrap_or_else(|e| json!({"error": e.to_string()}))}),
    )
}

async fn wait_until(mut cond: impl FnMut() -> bool, limit: Duration) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if cond() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    cond()
}

async fn live_rule_change(sim: &Simulation) -> Check {
    const NAME: &str = "live-rule-change";
    let warm = sim.get("/orders/warm").await;
    let orders_flows = |s: &Simulation| {
        s.flows()
            .into_iter()
            .filter(|f| f.host == "orders")
            .collect::<Vec<_>>()
    };
    let established = orders_flows(sim);
    if !warm.as_ref().is_ok_and(|r| r.status == 200) || established.is_empty() {
        return check(
            NAME,
            false,
            "no established flow to orders before the change",
            json!({"flows": established}),
        );
    }
    let original = sim.current_rules("nsg-apim");
    let deny = RawRule::new(
        "deny-orders-now",
        120,
        Direction::Outbound,
        Access::Deny,
        RuleProtocol::Tcp,
        "10.0.2.4",
        "443",
    );
    if let Err(e) = sim.add_security_rule("nsg-apim", deny) {
        return check(
            NAME,
            false,
            format!("the rule change was refused: {e}"),
            json!({"error": e.to_string()}),
        );
    }
    // Hold every established flow busy with a slow request, so the next request needs a new flow.
    let mut held = Vec::new();
    for i in 0..established.len() {
        let client = sim.client().clone();
        held.push(tokio::spawn(async move {
            client
                .request(
                    http::Method::GET,
                    &format!("/orders/established-{i}"),
                    &[(ECHO_DELAY_HEADER, "600")],
                    bytes::Bytes::new(),
                )
                .await
        }));
    }
    let total_before: u64 = established.iter().map(|f| f.requests).sum();
    let target = total_before + established.len() as u64;
    let busy = wait_until(
        || orders_flows(sim).iter().map(|f| f.requests).sum::<u64>() >= target,
        Duration::from_secs(3),
    )
    .await;
    let fresh = sim.get("/orders/new-flow").await;
    let mut held_results = Vec::new();
    for h in held {
        held_results.push(h.await.ok().and_then(Result::ok));
    }
    let restore = sim.set_nsg_rules("nsg-apim", &original);
    let continued = held_results.iter().all(|r| {
        r.as_ref()
            .is_some_and(|r| r.status == 200 && r.echo().is_some_and(|e| e.host == "orders"))
    });
    let denied = fresh.as_ref().is_ok_and(|r| {
        r.status == 502
            && r.problem().is_some_and(|p| {
                p.code == "NSG_DENIED" && p.rule.as_deref() == Some("securityRules/deny-orders-now")
            })
    });
    let ok = busy && continued && denied && restore.is_ok();
    check(
        NAME,
        ok,
        format!(
            "added nsg-apim securityRules/deny-orders-now: {} established flow(s) kept working ({}), a new flow got {}",
            established.len(),
            if continued { "200" } else { "failed" },
            fresh.as_ref().map_or("no response".to_string(), |r| format!("{} {}", r.status, r.problem().map(|p| p.code).unwrap_or_default()))
        ),
        json!({
            "established_before_change": established,
            "rule_added": "nsg-apim securityRules/deny-orders-now (priority 120, Outbound, Deny, Tcp -> 10.0.2.4:443)",
            "established_requests": held_results.iter().map(|r| r.as_ref().map(|r| response_evidence("/orders/established", r))).collect::<Vec<_>>(),
            "new_flow_request": fresh.as_ref().map(|r| response_evidence("/orders/new-flow", r)).ok(),
            "flows_busy_before_new_request": busy,
            "rules_restored": restore.is_ok(),
        }),
    )
}

async fn throughput(sim: &Simulation, opts: &DemoOptions) -> Check {
    const NAME: &str = "throughput-sample";
    let Some(echo) = sim
        .gateway()
        .echo_servers()
        .into_iter()
        .find(|e| e.host == "orders" && e.port == 443)
    else {
        return check(
            NAME,
            false,
            "the orders echo backend is not running",
            json!({}),
        );
    };
    let tls = ClientTls {
        config: std::sync::Arc::new(
            rustls::ClientConfig::builder()
                .with_root_certificates(sim.gateway().ca().root_store())
                .with_no_client_auth(),
        ),
        server_name: "orders.internal.contoso.com".into(),
    };
    let direct = loadgen::run(LoadSpec {
        addr: echo.addr,
        host: "orders.internal.contoso.com".into(),
        path: "/v1/bench".into(),
        connections: opts.connections,
        duration: opts.sample,
        max_requests: None,
        connection_per_request: false,
        tls: Some(tls),
    })
    .await;
    let hostname = sim
        .gateway()
        .with_topology(|t| t.gateway().hostname.clone());
    let through = loadgen::run(LoadSpec {
        addr: sim.gateway().addr(),
        host: hostname,
        path: "/orders/bench".into(),
        connections: opts.connections,
        duration: opts.sample,
        max_requests: None,
        connection_per_request: false,
        tls: None,
    })
    .await;
    match (direct, through) {
        (Ok(d), Ok(g)) => {
            let ratio = g.rps / d.rps.max(1e-9);
            let ok = d.errors == 0 && g.errors == 0 && d.rps > 0.0 && g.rps > 0.0;
            check(
                NAME,
                ok,
                format!("direct {:.0} req/s, through the gateway {:.0} req/s (ratio {ratio:.2}; p50 {:.0} µs vs {:.0} µs)", d.rps, g.rps, d.p50_us, g.p50_us),
                json!({"direct": d, "gateway": g, "gateway_vs_direct": ratio, "connections": opts.connections, "seconds_each": opts.sample.as_secs_f64(),
                       "note": "client, gateway and backend share this machine's cores; the ratio is evidence, not a target"}),
            )
        }
        (d, g) => check(
            NAME,
            false,
            "a throughput sample failed",
            json!({"direct": d.map_err(|e| e.to_string()).err(), "gateway": g.map_err(|e| e.to_string()).err()}),
        ),
    }
}

/// A seeded `reset` fault on the payments backend: the client gets the documented
/// `502 BACKEND_RESET`, the journal records the request with the fault's name, and once the
/// fault is removed the backend answers again.
async fn seeded_fault(sim: &Simulation) -> Check {
    const NAME: &str = "seeded-fault";
    const PATH: &str = "/payments/charge";
    let rule = FaultRule::new("reset-payments", "payments:443", FaultKind::Reset);
    // A reset acts on new connections: end the pooled flows so the next request opens one.
    sim.flush_flows();
    let seed = sim.faults().seed;
    let (faulted, entry) = match sim.add_fault(rule) {
        Ok(guard) => {
            let r = sim.get(PATH).await;
            let entry = sim.requests_to("payments").pop();
            drop(guard);
            (r, entry)
        }
        Err(e) => {
            return check(
                NAME,
                false,
                format!("the fault was refused: {e}"),
                json!({"error": e.to_string()}),
            )
        }
    };
    let cleared = sim.get(PATH).await;
    let reset = faulted
        .as_ref()
        .is_ok_and(|r| r.status == 502 && r.problem().is_some_and(|p| p.code == "BACKEND_RESET"));
    let recorded = entry.as_ref().is_some_and(|e| {
        e.fault.as_deref() == Some("reset-payments")
            && e.code.as_deref() == Some("BACKEND_RESET")
            && e.status == 502
    });
    let back = cleared.as_ref().is_ok_and(|r| r.status == 200);
    let ok = reset && recorded && back && sim.faults().rules.is_empty();
    check(
        NAME,
        ok,
        format!(
            "fault reset-payments (reset, payments:443, seed {seed}): the client got {}, the journal recorded it{}; cleared, the backend answered {}",
            status_text(&faulted),
            if recorded { "" } else { " NOT" },
            status_text(&cleared)
        ),
        json!({
            "fault": {"name": "reset-payments", "target": "payments:443", "kind": "reset", "probability": 1.0, "seed": seed},
            "faulted_request": faulted.as_ref().map(|r| response_evidence(PATH, r)).ok(),
            "journal_entry": entry,
            "after_clear": cleared.as_ref().map(|r| response_evidence(PATH, r)).ok(),
        }),
    )
}

/// The second embedded topology, `fixtures/forced-tunnel.toml`: the integration subnet's route
/// table sends everything through the hub's Azure Firewall. A request its network rule allows
/// reaches the backend; one to a destination no rule allows is the firewall's default deny,
/// `502 FIREWALL_DENIED`, and the backend receives nothing. Both agree with `check`.
async fn forced_tunnel() -> Check {
    const NAME: &str = "forced-tunnel-firewall";
    let sim = match Simulation::forced_tunnel_topology() {
        Ok(b) => b.start().await,
        Err(e) => Err(e),
    };
    let sim = match sim {
        Ok(s) => s,
        Err(e) => {
            return check(
                NAME,
                false,
                format!("the forced-tunnel topology did not start: {e}"),
                json!({"error": e.to_string()}),
            )
        }
    };
    let code = |to: &str| {
        sim.verdict("apim", to)
            .map(|v| v.code.to_string())
            .unwrap_or_else(|e| e.to_string())
    };
    let (allowed_to, denied_to) = ("10.0.2.4:443", "20.50.1.20:443");
    let (check_allowed, check_denied) = (code(allowed_to), code(denied_to));
    let allowed = sim.get("/orders/7").await;
    let before = sim.echo_requests("blocked", 443);
    let denied = sim.get("/blocked/x").await;
    let after = sim.echo_requests("blocked", 443);
    sim.shutdown().await;
    let allowed_ok = allowed
        .as_ref()
        .is_ok_and(|r| r.status == 200 && r.echo().is_some_and(|e| e.host == "orders"))
        && check_allowed == "ALLOWED";
    let denied_ok = denied
        .as_ref()
        .is_ok_and(|r| r.status == 502 && r.problem().is_some_and(|p| p.code == "FIREWALL_DENIED"))
        && check_denied == "FIREWALL_DENIED"
        && before.is_some()
        && before == after;
    check(
        NAME,
        allowed_ok && denied_ok,
        format!(
            "forced tunnel through fw-hub: GET /orders/7 -> {} (check: {check_allowed}), GET /blocked/x -> {} (check: {check_denied})",
            status_text(&allowed),
            status_text(&denied)
        ),
        json!({
            "fixture": "fixtures/forced-tunnel.toml (embedded)",
            "allowed": allowed.as_ref().map(|r| response_evidence("/orders/7", r)).ok(),
            "allowed_check": {"to": allowed_to, "code": check_allowed},
            "denied": denied.as_ref().map(|r| response_evidence("/blocked/x", r)).ok(),
            "denied_check": {"to": denied_to, "code": check_denied},
            "blocked_requests_before": before,
            "blocked_requests_after": after,
        }),
    )
}

/// Renders the report for people.
pub fn render_text(report: &DemoReport) -> String {
    let mut out = String::new();
    out.push_str("vnetsim demo — fixtures/default.toml (embedded)\n");
    if let Some(url) = report.setup.get("gateway_url").and_then(Value::as_str) {
        let apim = &report.setup["apim"];
        out.push_str(&format!(
            "gateway {url}  {} ({}, {} via {}, outbound source {})\n\n",
            apim["name"].as_str().unwrap_or("?"),
            apim["sku"].as_str().unwrap_or("?"),
            apim["mode"].as_str().unwrap_or("?"),
            apim["subnet"].as_str().unwrap_or("-"),
            apim["outbound_source"].as_str().unwrap_or("-"),
        ));
    }
    for (i, c) in report.checks.iter().enumerate() {
        out.push_str(&format!(
            "[{}] {} {:<40} {}\n",
            if c.passed { "PASS" } else { "FAIL" },
            i + 1,
            c.name,
            c.summary
        ));
        for line in evidence_lines(&c.evidence) {
            out.push_str(&format!("         {line}\n"));
        }
    }
    let passed = report.checks.iter().filter(|c| c.passed).count();
    out.push_str(&format!(
        "\n{passed}/{} checks passed\n",
        report.checks.len()
    ));
    out
}

fn evidence_lines(ev: &Value) -> Vec<String> {
    let mut lines = Vec::new();
    let mut push_verdict = |v: &Value| {
        if let Some(chain) = v.get("chain").and_then(Value::as_array) {
            let steps: Vec<&str> = chain.iter().filter_map(Value::as_str).collect();
            lines.push(format!(
                "verdict {} {}: {}",
                v["verdict"].as_str().unwrap_or("?"),
                v["code"].as_str().unwrap_or(""),
                if steps.is_empty() {
                    "no NSG on the path".into()
                } else {
                    steps.join(" -> ")
                }
            ));
        }
    };
    if let Some(v) = ev.get("verdict") {
        push_verdict(v);
    }
    if let Some(e) = ev.get("journal_entry").filter(|e| !e.is_null()) {
        lines.push(format!(
            "journal: {} {} {} {} fault={} {} bytes {:.1} ms",
            e["time"].as_str().unwrap_or("?"),
            e["api"].as_str().unwrap_or("-"),
            e["status"],
            e["code"].as_str().unwrap_or("-"),
            e["fault"].as_str().unwrap_or("-"),
            e["bytes"],
            e["duration_ms"].as_f64().unwrap_or(0.0)
        ));
    }
    if let Some(h) = ev.get("x-vnetsim-verdict").and_then(Value::as_str) {
        lines.push(format!("x-vnetsim-verdict: {h}"));
    }
    if let Some(w) = ev.get("warnings").and_then(Value::as_array) {
        for f in w {
            lines.push(format!(
                "warning {} {}: {}",
                f["code"].as_str().unwrap_or(""),
                f["subject"].as_str().unwrap_or(""),
                f["message"].as_str().unwrap_or("")
            ));
        }
    }
    if let Some(e) = ev.get("errors").and_then(Value::as_array) {
        for f in e {
            lines.push(format!(
                "error {} {}: {}",
                f["code"].as_str().unwrap_or(""),
                f["subject"].as_str().unwrap_or(""),
                f["message"].as_str().unwrap_or("")
            ));
        }
    }
    if let Some(d) = ev
        .get("internet_to_gateway")
        .and_then(|v| v.get("detail"))
        .and_then(Value::as_str)
    {
        lines.push(format!("sim: internet -> gateway endpoint: {d}"));
    }
    lines
}

/// `502 BACKEND_RESET`, `200`, or `no response`: a demo answer for evidence lines.
fn status_text(r: &Result<Response, crate::client::ClientError>) -> String {
    r.as_ref().map_or("no response".to_string(), |r| {
        format!(
            "{} {}",
            r.status.as_u16(),
            r.problem().map(|p| p.code).unwrap_or_default()
        )
        .trim_end()
        .to_string()
    })
}
