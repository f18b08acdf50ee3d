//! Faults on the backend leg, end to end through the harness: each kind seen by the client as
//! its documented status/code and recorded in the journal with the fault's name; the seeded
//! determinism of the decisions; the guard removing its fault; the admin API (`/admin/faults`,
//! `/admin/journal`). Timing assertions are lower bounds only.

use std::time::{Duration, Instant};

use bytes::Bytes;
use gateway::LimitOverrides;
use http::Method;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use vnetsim::client::Client;
use vnetsim::harness::{
    FaultKind, FaultRule, HarnessError, JournalEntry, Simulation, DEFAULT_FIXTURE,
};

async fn start() -> Simulation {
    Simulation::default_topology()
        .unwrap()
        .start()
        .await
        .unwrap()
}

/// The last journal entry of `api`, asserting its fault and code.
#[track_caller]
fn last(sim: &Simulation, api: &str, fault: &str, code: Option<&str>) -> JournalEntry {
    let e = sim.requests_to(api).pop().expect("a journal entry");
    assert_eq!(e.fault.as_deref(), Some(fault), "{e:?}");
    assert_eq!(e.code.as_deref(), code, "{e:?}");
    e
}

#[tokio::test]
async fn connection_faults_answer_with_their_documented_codes() {
    let sim = start().await;
    // Each connection-level kind on orders:443 (TLS) turns into one gateway code.
    for (kind, status, code) in [
        (FaultKind::Reset, 502, "BACKEND_RESET"),
        (FaultKind::Refuse, 502, "BACKEND_REFUSED"),
        (FaultKind::TlsUntrusted, 502, "BACKEND_TLS"),
        (FaultKind::TlsWrongName, 502, "BACKEND_TLS"),
    ] {
        let name = format!("f-{kind}").replace('_', "-");
        let _guard = sim
            .add_fault(FaultRule::new(&name, "orders:443", kind))
            .unwrap();
        let r = sim.get("/orders/1").await.unwrap();
        let p = r
            .problem()
            .unwrap_or_else(|| panic!("{kind}: {}", r.text()));
        assert_eq!(
            (r.status.as_u16(), p.code.as_str()),
            (status, code),
            "{kind}"
        );
        let e = last(&sim, "orders", &name, Some(code));
        assert_eq!(e.status, status);
        // The flow was admitted (the NSGs allowed it); the fault broke it.
        assert_eq!(e.verdict.as_deref(), Some("Allow"));
        if kind == FaultKind::TlsWrongName {
            assert!(
                p.detail.contains("NotValidForName") || p.detail.contains("name"),
                "{}",
                p.detail
            );
        }
    }
    // The guards are gone: the backend answers again, and nothing faulty reached it.
    assert!(sim.faults().rules.is_empty());
    assert_eq!(sim.get("/orders/1").await.unwrap().status, 200);
    assert_eq!(sim.echo_requests("orders", 443), Some(1));
    sim.expect_requests("orders", 5);
    sim.shutdown().await;
}

#[tokio::test]
async fn a_timeout_fault_waits_for_the_response_timeout() {
    let sim = Simulation::default_topology()
        .unwrap()
        .limits(LimitOverrides {
            response_timeout: Some(Duration::from_millis(300)),
            ..LimitOverrides::default()
        })
        .start()
        .await
        .unwrap();
    let _g = sim
        .add_fault(FaultRule::new("hang", "payments:443", FaultKind::Timeout))
        .unwrap();
    let t = Instant::now();
    let r = sim.get("/payments/x").await.unwrap();
    assert!(t.elapsed() >= Duration::from_millis(300));
    assert_eq!(r.status, 504);
    assert_eq!(r.problem().unwrap().code, "BACKEND_TIMEOUT");
    let e = last(&sim, "payments", "hang", Some("BACKEND_TIMEOUT"));
    assert!(e.duration_ms >= 300.0, "{e:?}");
    sim.shutdown().await;
}

#[tokio::test]
async fn request_faults_shape_the_answer() {
    let sim = start().await;

    // status: the backend's answer is that status with Retry-After, the flow admitted.
    let g = sim
        .add_fault(
            FaultRule::new("busy", "orders.internal.contoso.com:443", FaultKind::Status)
                .status(503)
                .retry_after_s(7),
        )
        .unwrap();
    let r = sim.get("/orders/1").await.unwrap();
    assert_eq!(r.status, 503);
    assert_eq!(r.headers["retry-after"], "7");
    assert!(
        r.problem().is_none(),
        "the backend's answer, not a gateway problem"
    );
    let e = last(&sim, "orders", "busy", None);
    assert_eq!((e.status, e.bytes), (503, r.body.len() as u64));
    assert_eq!(
        sim.echo_requests("orders", 443),
        Some(0),
        "the request never reached it"
    );
    drop(g);

    // latency: at least latency_ms later, then the real answer.
    let g = sim
        .add_fault(
            FaultRule::new("slow", "orders:443", FaultKind::Latency)
                .latency_ms(150)
                .jitter_ms(20),
        )
        .unwrap();
    let t = Instant::now();
    assert_eq!(sim.get("/orders/1").await.unwrap().status, 200);
    assert!(t.elapsed() >= Duration::from_millis(150));
    let e = last(&sim, "orders", "slow", None);
    assert!(e.duration_ms >= 150.0, "{e:?}");
    assert_eq!(
        e.verdict.as_deref(),
        Some("Established"),
        "the status fault's flow is reused"
    );
    drop(g);

    // slow_body: pieces of 100 bytes, each after 20 ms; the whole real body arrives.
    let g = sim
        .add_fault(
            FaultRule::new("trickle", "orders:443", FaultKind::SlowBody)
                .latency_ms(20)
                .chunk_bytes(100),
        )
        .unwrap();
    let t = Instant::now();
    let r = sim.get("/orders/1").await.unwrap();
    let elapsed = t.elapsed();
    assert_eq!(r.echo().unwrap().host, "orders");
    let pieces = r.body.len().div_ceil(100) as u32;
    assert!(
        elapsed >= Duration::from_millis(20) * pieces,
        "{elapsed:?} for {pieces}"
    );
    let e = last(&sim, "orders", "trickle", None);
    assert_eq!(e.bytes, r.body.len() as u64);
    drop(g);

    // bandwidth: the body at 4000 bytes/s.
    let g = sim
        .add_fault(FaultRule::new("thin", "orders:443", FaultKind::Bandwidth).bytes_per_s(4000))
        .unwrap();
    let t = Instant::now();
    let r = sim.get("/orders/1").await.unwrap();
    let floor = Duration::from_secs_f64(r.body.len() as f64 / 4000.0 * 0.9);
    assert!(t.elapsed() >= floor, "{:?} < {floor:?}", t.elapsed());
    assert!(r.echo().is_some());
    last(&sim, "orders", "thin", None);
    drop(g);
    sim.shutdown().await;
}

/// `close_mid_body`: the raw client sees the head and part of the body, then the close.
#[tokio::test]
async fn close_mid_body_truncates_the_response() {
    let sim = start().await;
    let _g = sim
        .add_fault(FaultRule::new("cut", "orders:443", FaultKind::CloseMidBody).after_bytes(10))
        .unwrap();
    let mut s = tokio::net::TcpStream::connect(sim.gateway().addr())
        .await
        .unwrap();
    s.write_all(b"GET /orders/1 HTTP/1.1\r\nhost: apim\r\n\r\n")
        .await
        .unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut raw))
        .await
        .expect("the gateway closes the connection")
        .ok();
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text.split_once("\r\n\r\n").expect("a whole head");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let declared: usize = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length: ")
                .map(|v| v.trim().parse().unwrap())
        })
        .expect("the backend's content-length passes through");
    assert_eq!(body.len(), 10, "after_bytes of the body, then the close");
    assert!(declared > body.len());
    // The harness client sees the truncation as an error.
    assert!(sim.get("/orders/1").await.is_err());
    let e = last(&sim, "orders", "cut", None);
    assert_eq!((e.status, e.bytes), (200, 10));
    sim.shutdown().await;
}

/// Same seed and the same sequence of requests: the same decisions; another seed differs.
#[tokio::test]
async fn seeded_decisions_repeat() {
    async fn run(seed: u64) -> Vec<u16> {
        let text = format!(
            "{DEFAULT_FIXTURE}\n[faults]\nseed = {seed}\n\n  [[faults.rules]]\n  name = \"flaky\"\n  target = \"orders:443\"\n  kind = \"status\"\n  status = 503\n  probability = 0.5\n"
        );
        let sim = Simulation::from_str("flaky.toml", &text)
            .unwrap()
            .start()
            .await
            .unwrap();
        assert_eq!(sim.faults().seed, seed);
        let mut statuses = Vec::new();
        for _ in 0..24 {
            statuses.push(sim.get("/orders/1").await.unwrap().status.as_u16());
        }
        let journal: Vec<u16> = sim.journal().entries.iter().map(|e| e.status).collect();
        assert_eq!(journal, statuses, "the journal saw the same sequence");
        sim.shutdown().await;
        statuses
    }
    let a = run(42).await;
    assert!(a.contains(&200) && a.contains(&503), "{a:?}");
    assert_eq!(run(42).await, a);
    assert_ne!(run(43).await, a);
}

#[tokio::test]
async fn a_bad_rule_is_refused_with_its_codes_and_the_guard_removes_its_fault() {
    let sim = start().await;
    let bad = FaultRule::new("x", "nowhere:443", FaultKind::Latency).probability(2.0);
    match sim.add_fault(bad) {
        Err(HarnessError::Fault(e)) => {
            let codes: Vec<&str> = e.problems.iter().map(|p| p.code.as_str()).collect();
            assert_eq!(
                codes,
                [
                    "FAULT_TARGET_UNKNOWN",
                    "FAULT_PROBABILITY_INVALID",
                    "FAULT_PARAMETER_MISSING"
                ]
            );
        }
        Err(e) => panic!("{e}"),
        Ok(_) => panic!("a bad rule was accepted"),
    }
    {
        let g = sim
            .add_fault(FaultRule::new("r", "orders:443", FaultKind::Reset))
            .unwrap();
        assert_eq!(g.name(), "r");
        assert_eq!(sim.faults().rules.len(), 1);
    }
    assert!(sim.faults().rules.is_empty(), "dropped guard, no fault");
    let _a = sim
        .add_fault(FaultRule::new("a", "orders:443", FaultKind::Reset))
        .unwrap();
    sim.clear_faults();
    assert_eq!(sim.get("/orders/1").await.unwrap().status, 200);
    sim.shutdown().await;
}

#[tokio::test]
async fn admin_api_adds_lists_and_deletes_faults_and_shows_the_journal() {
    let sim = start().await;
    let admin = Client::new(sim.gateway().admin_addr(), "admin", None);
    let auth = format!("Bearer {}", sim.gateway().admin_token());
    let call = |method: Method, path: &'static str, body: &'static str| {
        let admin = admin.clone();
        let auth = auth.clone();
        async move {
            admin
                .request(
                    method,
                    path,
                    &[
                        ("authorization", &auth),
                        ("content-type", "application/json"),
                    ],
                    Bytes::from_static(body.as_bytes()),
                )
                .await
                .unwrap()
        }
    };
    let r = call(
        Method::POST,
        "/admin/faults",
        r#"{"name": "r", "target": "orders:443", "kind": "reset", "probability": 1.0}"#,
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let again = call(
        Method::POST,
        "/admin/faults",
        r#"{"name": "r", "target": "orders:443", "kind": "reset"}"#,
    )
    .await;
    assert_eq!(again.status, 200, "same name: replaced");
    let listed: serde_json::Value = call(Method::GET, "/admin/faults", "").await.json().unwrap();
    assert_eq!(listed["seed"], 0);
    assert_eq!(listed["rules"][0]["kind"], "reset");
    assert_eq!(sim.get("/orders/1").await.unwrap().status, 502);

    let bad = call(
        Method::POST,
        "/admin/faults",
        r#"{"name": "s", "target": "orders:443", "kind": "status"}"#,
    )
    .await;
    assert_eq!(bad.status, 422);
    assert_eq!(bad.headers["content-type"], "application/problem+json");
    let doc: serde_json::Value = bad.json().unwrap();
    assert_eq!(doc["problems"][0]["code"], "FAULT_PARAMETER_MISSING");
    let unknown_key = call(
        Method::POST,
        "/admin/faults",
        r#"{"name": "s", "target": "orders:443", "kind": "reset", "speed": 1}"#,
    )
    .await;
    assert_eq!(unknown_key.status, 422, "{}", unknown_key.text());

    assert_eq!(
        call(Method::DELETE, "/admin/faults/r", "").await.status,
        200
    );
    assert_eq!(
        call(Method::DELETE, "/admin/faults/r", "").await.status,
        404
    );
    assert_eq!(sim.get("/orders/1").await.unwrap().status, 200);

    let j: serde_json::Value = call(Method::GET, "/admin/journal", "")
        .await
        .json()
        .unwrap();
    let entries = j["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 2);
    assert_eq!(j["dropped"], 0);
    let first = &entries[0];
    assert_eq!(
        (
            &first["api"],
            &first["status"],
            &first["code"],
            &first["fault"]
        ),
        (
            &"orders".into(),
            &502.into(),
            &"BACKEND_RESET".into(),
            &"r".into()
        )
    );
    assert_eq!(entries[1]["status"], 200);
    assert_eq!(entries[1]["fault"], serde_json::Value::Null);
    for key in ["time", "backend", "verdict", "rule", "bytes", "duration_ms"] {
        assert!(first.get(key).is_some(), "{key}");
    }
    sim.shutdown().await;
}

#[tokio::test]
async fn the_journal_is_a_bounded_ring_and_names_refusals() {
    let text = DEFAULT_FIXTURE.replace(
        "hostname = \"apim-contoso.azure-api.net\"\n",
        "hostname = \"apim-contoso.azure-api.net\"\njournal_size = 2\n",
    );
    let sim = Simulation::from_str("small-journal.toml", &text)
        .unwrap()
        .start()
        .await
        .unwrap();
    assert_eq!(sim.get("/nothing").await.unwrap().status, 404);
    assert_eq!(sim.get("/legacy/ping").await.unwrap().status, 502);
    assert_eq!(sim.get("/orders/1").await.unwrap().status, 200);
    let j = sim.journal();
    assert_eq!(j.dropped, 1, "NO_API was pushed out");
    let codes: Vec<Option<&str>> = j.entries.iter().map(|e| e.code.as_deref()).collect();
    assert_eq!(codes, [Some("NSG_DENIED"), None]);
    let deny = &j.entries[0];
    assert_eq!(deny.api.as_deref(), Some("legacy"));
    assert_eq!(deny.verdict.as_deref(), Some("Deny"));
    assert_eq!(deny.rule.as_deref(), Some("securityRules/deny-legacy"));
    assert_eq!(j.entries[1].verdict.as_deref(), Some("Allow"));
    assert!(j.entries[1].rule.is_some(), "the allowing rule");
    // The message of a failed expectation carries the journal.
    let msg = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        sim.expect_requests("orders", 3)
    }))
    .expect_err("one request, not three");
    let msg = msg.downcast_ref::<String>().unwrap();
    assert!(
        msg.contains("expected 3 request(s) to API `orders`") && msg.contains("NSG_DENIED"),
        "{msg}"
    );
    sim.shutdown().await;
}

/// A reload takes the fixture's `[faults]` (and seed); rules added live stay.
#[tokio::test]
async fn a_reload_takes_the_fixtures_faults_and_keeps_live_ones() {
    let sim = start().await;
    let _live = sim
        .add_fault(FaultRule::new("live", "orders:443", FaultKind::Reset))
        .unwrap();
    sim.modify(|f| {
        f.faults = Some(sim::FaultsFile {
            seed: 5,
            rules: vec![FaultRule::new("fixture", "payments:443", FaultKind::Refuse)],
        });
    })
    .unwrap();
    let info = sim.faults();
    assert_eq!(info.seed, 5);
    let names: Vec<&str> = info.rules.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["fixture", "live"]);
    let r = sim.get("/payments/x").await.unwrap();
    assert_eq!(r.problem().unwrap().code, "BACKEND_REFUSED");
    let r = sim.get("/orders/x").await.unwrap();
    assert_eq!(r.problem().unwrap().code, "BACKEND_RESET");
    sim.shutdown().await;
}
