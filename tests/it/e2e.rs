//! The first nine claims of `vnetsim demo` (the tenth, the forced tunnel, is checked through `demo --output json` in `up.rs`), each as its own test through the public harness API, with
//! wiremock backends bound to the topology's hosts (deny cases assert the mock received nothing).

use std::time::{Duration, Instant};

use sim::fixture::{NetworkMode, RawRule};
use sim::{Access, Direction, RuleProtocol, VerdictKind};
use vnetsim::harness::{FaultKind, FaultRule, Simulation, DEFAULT_FIXTURE};
use vnetsim::testing::{loadgen_run, LoadSpec};
use wiremock::matchers::{method, path, path_regex};
use wiremock::{Mock, MockServer, ResponseTemplate};

/// The default topology with plain-HTTP backends on the same ports (wiremock speaks HTTP only),
/// so the NSG rules are exactly the default fixture's.
fn plain_http_topology() -> String {
    DEFAULT_FIXTURE
        .replace(
            "backend = \"https://orders.internal.contoso.com/v1\"",
            "backend = \"http://orders.internal.contoso.com:443/v1\"",
        )
        .replace(
            "backend = \"https://api.payments.example\"",
            "backend = \"http://api.payments.example:443\"",
        )
        .replace("port = 443\n  tls = true\n", "port = 443\n")
}

struct Backends {
    orders: MockServer,
    payments: MockServer,
    legacy: MockServer,
}

async fn start() -> (Simulation, Backends) {
    let b = Backends {
        orders: MockServer::start().await,
        payments: MockServer::start().await,
        legacy: MockServer::start().await,
    };
    let sim = Simulation::from_str("e2e.toml", &plain_http_topology())
        .expect("the e2e topology parses")
        .bind("orders", 443, *b.orders.address())
        .bind("payments", 443, *b.payments.address())
        .bind("legacy", 8080, *b.legacy.address())
        .start()
        .await
        .expect("the e2e topology starts");
    (sim, b)
}

#[tokio::test]
async fn claim_1_preflight_passes() {
    let b = Simulation::default_topology().unwrap();
    let errors: Vec<_> = b.findings().iter().filter(|f| f.is_error()).collect();
    // The default topology meets every integration requirement (R1–R8) and the dependency check.
    assert!(errors.is_empty(), "{errors:#?}");
    assert!(!b
        .findings()
        .iter()
        .any(|f| f.code.as_str() == "DEPENDENCY_BLOCKED"));
}

#[tokio::test]
async fn claim_2_public_backend_reachable() {
    let (sim, b) = start().await;
    Mock::given(method("GET"))
        .and(path("/status"))
        .respond_with(ResponseTemplate::new(200).set_body_string("pay-ok"))
        .expect(1)
        .mount(&b.payments)
        .await;
    let r = sim.get("/payments/status").await.unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "pay-ok", "the payments mock answered");
    sim.shutdown().await;
}

#[tokio::test]
async fn claim_3_private_backend_reachable() {
    let (sim, b) = start().await;
    Mock::given(method("GET"))
        .and(path("/v1/orders/7"))
        .respond_with(ResponseTemplate::new(200).set_body_string("order-7"))
        .expect(1)
        .mount(&b.orders)
        .await;
    let r = sim.get("/orders/orders/7").await.unwrap();
    // Reached through the private DNS name, the integration subnet and both NSGs.
    assert_eq!((r.status.as_u16(), r.text().as_str()), (200, "order-7"));
    let flows = sim.flows();
    assert!(
        flows
            .iter()
            .any(|f| f.host == "orders" && f.source.to_string() == "10.0.1.4"),
        "{flows:#?}"
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn claim_4_nsg_deny_enforced_and_explained() {
    let (sim, b) = start().await;
    Mock::given(path_regex(".*"))
        .respond_with(ResponseTemplate::new(200))
        .expect(0)
        .mount(&b.legacy)
        .await;
    let r = sim.get("/legacy/ping").await.unwrap();
    assert_eq!(r.status, 502);
    let p = r.problem().expect("problem+json body");
    assert_eq!(p.code, "NSG_DENIED");
    assert_eq!(
        (p.nsg.as_deref(), p.rule.as_deref(), p.priority),
        (
            Some("nsg-apim"),
            Some("securityRules/deny-legacy"),
            Some(150)
        )
    );
    assert_eq!(
        r.verdict_header(),
        Some("Deny; code=NSG_DENIED; rule=securityRules/deny-legacy")
    );
    sim.shutdown().await;
    // `expect(0)` is verified when `b.legacy` drops: nothing reached the backend.
}

#[tokio::test]
async fn claim_5_private_unreachable_without_integration() {
    let (sim, b) = start().await;
    Mock::given(path("/v1/after"))
        .respond_with(ResponseTemplate::new(200))
        .expect(0)
        .mount(&b.orders)
        .await;
    Mock::given(path("/status"))
        .respond_with(ResponseTemplate::new(200))
        .expect(1)
        .mount(&b.payments)
        .await;
    sim.modify(|f| f.apim.as_mut().unwrap().virtual_network = NetworkMode::None)
        .unwrap();
    let r = sim.get("/orders/after").await.unwrap();
    assert_eq!(r.status, 502);
    let code = r.problem().unwrap().code;
    // The private zone does not resolve from public DNS; either way the backend is not reached.
    assert!(code == "DNS_FAILURE" || code == "NOT_INTEGRATED", "{code}");
    assert_eq!(
        sim.get("/payments/status").await.unwrap().status,
        200,
        "the public backend still works"
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn claim_6_gateway_inbound_stays_public() {
    let (sim, b) = start().await;
    Mock::given(path("/status"))
        .respond_with(ResponseTemplate::new(200))
        .expect(1)
        .mount(&b.payments)
        .await;
    sim.add_security_rule(
        "nsg-apim",
        RawRule::new(
            "deny-all-inbound",
            100,
            Direction::Inbound,
            Access::Deny,
            RuleProtocol::Any,
            "*",
            "*",
        ),
    )
    .unwrap();
    assert_eq!(sim.get("/payments/status").await.unwrap().status, 200);
    // The model agrees: no NSG is evaluated for internet traffic to the gateway endpoint.
    let v = sim.verdict("203.0.114.10", "apim:443").unwrap();
    assert_eq!(v.verdict, VerdictKind::Allow);
    assert!(v.evaluated.is_empty());
    sim.shutdown().await;
}

#[tokio::test]
async fn claim_7_live_rule_change_keeps_established_flows() {
    let (sim, b) = start().await;
    Mock::given(path("/v1/warm"))
        .respond_with(ResponseTemplate::new(200))
        .expect(1)
        .mount(&b.orders)
        .await;
    Mock::given(path("/v1/slow"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_string("slow")
                .set_delay(Duration::from_millis(400)),
        )
        .expect(1)
        .mount(&b.orders)
        .await;
    Mock::given(path("/v1/new"))
        .respond_with(ResponseTemplate::new(200))
        .expect(0)
        .mount(&b.orders)
        .await;
    assert_eq!(sim.get("/orders/warm").await.unwrap().status, 200);
    let established: Vec<_> = sim
        .flows()
        .into_iter()
        .filter(|f| f.host == "orders")
        .collect();
    assert_eq!(established.len(), 1, "one pooled flow to orders");
    sim.add_security_rule(
        "nsg-apim",
        RawRule::new(
            "deny-orders",
            120,
            Direction::Outbound,
            Access::Deny,
            RuleProtocol::Any,
            "10.0.2.4",
            "443",
        ),
    )
    .unwrap();
    // The established flow carries a slow request…
    let client = sim.client().clone();
    let slow = tokio::spawn(async move { client.get("/orders/slow").await });
    let start = Instant::now();
    while sim
        .flows()
        .iter()
        .find(|f| f.id == established[0].id)
        .map_or(0, |f| f.requests)
        < 2
    {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "the slow request never reached the established flow"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // …so this one needs a new flow, which the new rule denies.
    let fresh = sim.get("/orders/new").await.unwrap();
    assert_eq!(fresh.status, 502);
    assert_eq!(
        fresh.problem().unwrap().rule.as_deref(),
        Some("securityRules/deny-orders")
    );
    let slow = slow.await.unwrap().unwrap();
    assert_eq!(
        (slow.status.as_u16(), slow.text().as_str()),
        (200, "slow"),
        "the established flow continued"
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn claim_8_throughput_sample() {
    let (sim, b) = start().await;
    Mock::given(path("/v1/bench"))
        .respond_with(ResponseTemplate::new(200).set_body_string("ok"))
        .mount(&b.orders)
        .await;
    let spec = |addr, host: &str, p: &str| LoadSpec {
        addr,
        host: host.into(),
        path: p.into(),
        connections: 4,
        duration: Duration::from_millis(300),
        max_requests: Some(2000),
        connection_per_request: false,
        tls: None,
    };
    let direct = loadgen_run(spec(
        *b.orders.address(),
        "orders.internal.contoso.com",
        "/v1/bench",
    ))
    .await
    .unwrap();
    let gw = loadgen_run(spec(
        sim.gateway().addr(),
        "apim-contoso.azure-api.net",
        "/orders/bench",
    ))
    .await
    .unwrap();
    // Both samples complete with zero errors and a non-zero rate; the ratio is evidence only.
    assert_eq!((direct.errors, gw.errors), (0, 0), "{direct:?} {gw:?}");
    assert!(direct.rps > 0.0 && gw.rps > 0.0);
    sim.shutdown().await;
}

/// Claim 9 on a plain-HTTP backend: a seeded reset reaches the client as `502 BACKEND_RESET`
/// (the TCP reset comes from the fault, the mock receives nothing), the journal records it, and
/// once the guard is dropped the mock answers.
#[tokio::test]
async fn claim_9_seeded_fault_seen_recorded_and_cleared() {
    let (sim, b) = start().await;
    Mock::given(method("GET"))
        .and(path("/charge"))
        .respond_with(ResponseTemplate::new(200).set_body_string("charged"))
        .expect(1)
        .mount(&b.payments)
        .await;
    let guard = sim
        .add_fault(FaultRule::new(
            "reset-payments",
            "api.payments.example:443",
            FaultKind::Reset,
        ))
        .unwrap();
    let r = sim.get("/payments/charge").await.unwrap();
    assert_eq!(r.status, 502);
    assert_eq!(r.problem().unwrap().code, "BACKEND_RESET");
    let e = sim.expect_last_code("payments", "BACKEND_RESET");
    assert_eq!(e.fault.as_deref(), Some("reset-payments"));
    drop(guard);
    let r = sim.get("/payments/charge").await.unwrap();
    assert_eq!(r.text(), "charged");
    sim.expect_requests("payments", 2);
    sim.shutdown().await;
    // `expect(1)`: only the request after the fault reached the mock.
}

#[tokio::test]
async fn an_indeterminate_flow_is_never_dialled() {
    let (sim, b) = start().await;
    Mock::given(path_regex(".*"))
        .respond_with(ResponseTemplate::new(200))
        .expect(0)
        .mount(&b.orders)
        .await;
    // A rule whose destination is only known at deployment time, before the rule that allows
    // the backend subnet: whether orders is reachable depends on that value.
    let mut maybe = RawRule::new(
        "deny-maybe",
        120,
        Direction::Outbound,
        Access::Deny,
        RuleProtocol::Any,
        "*",
        "443",
    );
    maybe.destination_address_prefix = Some(
        "<unknown:/resources/1/properties/securityRules/0/properties/destinationAddressPrefix>"
            .into(),
    );
    sim.add_security_rule("nsg-apim", maybe).unwrap();
    let r = sim.get("/orders/1").await.unwrap();
    assert_eq!(r.status, 502);
    let p = r.problem().expect("problem+json");
    assert_eq!(
        (p.code.as_str(), p.rule.as_deref()),
        ("UNKNOWN_VALUE", Some("securityRules/deny-maybe"))
    );
    assert!(
        r.verdict_header()
            .is_some_and(|h| h.starts_with("Indeterminate; code=UNKNOWN_VALUE")),
        "{:?}",
        r.verdict_header()
    );
    sim.shutdown().await;
}
