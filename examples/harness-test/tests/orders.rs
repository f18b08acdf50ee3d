//! My orders API behind API Management, tested from my own crate: a wiremock server plays the
//! private `orders` backend in plain HTTP although the topology says `tls = true` (wiremock has
//! no HTTPS), the harness proxies real HTTP through the simulated gateway, and a rule built with
//! `Rule` changes what the NSG lets through. Everything comes from `vnetsim::harness`.

use vnetsim::harness::{
    FaultKind, FaultRule, Method, Rule, Simulation, StatusCode, VerdictCode, VerdictKind,
};
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

#[tokio::test]
async fn my_api_through_apim_with_a_plain_http_double_for_a_tls_service() {
    let orders = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v1/42"))
        // The gateway sends the backend URL's authority, as APIM does.
        .and(header("host", "orders.internal.contoso.com"))
        .respond_with(ResponseTemplate::new(200).set_body_string(r#"{"id":42,"state":"shipped"}"#))
        .mount(&orders)
        .await;

    // The embedded default topology: orders:443 is `tls = true` behind `https://` backend URL.
    let sim = Simulation::default_topology()
        .unwrap()
        .bind_plain("orders", 443, *orders.address())
        .start()
        .await
        .unwrap();
    assert_eq!(sim.backend_addr("orders", 443), Some(*orders.address()));
    assert_eq!(
        sim.backend_addr("orders.internal.contoso.com", 443),
        Some(*orders.address())
    );
    assert_eq!(sim.api_backend_addr("orders"), Some(*orders.address()));
    // The other backends are the built-in echoes, on loopback.
    assert!(sim.backend_addr("legacy", 8080).unwrap().ip().is_loopback());

    // 1. My API answers through the gateway.
    let r = sim.get("/orders/42").await.unwrap();
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.text(), r#"{"id":42,"state":"shipped"}"#);
    assert_eq!(orders.received_requests().await.unwrap().len(), 1);

    // 2. Why: the flow apim -> orders:443 and the rule that allowed it.
    let v = sim.verdict("apim", "orders:443").unwrap();
    assert_eq!(
        (v.verdict, v.code),
        (VerdictKind::Allow, VerdictCode::Allowed)
    );

    // 3. A deny rule, built as a sentence, put on the integration subnet's NSG; after a flush
    //    the next request is a new flow, refused with the documented problem.
    let deny = Rule::deny("deny-orders")
        .outbound()
        .priority(120)
        .tcp()
        .to("10.0.2.0/24")
        .port(443);
    sim.put_security_rule("nsg-apim", deny).unwrap();
    sim.flush_flows();
    let r = sim
        .request(Method::GET, "/orders/42", &[], "")
        .await
        .unwrap();
    assert_eq!(r.status, StatusCode::BAD_GATEWAY);
    let problem = r.problem().expect("a problem+json body");
    assert_eq!(problem.code, "NSG_DENIED");
    assert_eq!(problem.rule.as_deref(), Some("securityRules/deny-orders"));
    let v = sim.verdict("apim", "orders:443").unwrap();
    assert_eq!(v.decided_by.unwrap().rule, "securityRules/deny-orders");
    // Nothing more reached my server.
    assert_eq!(orders.received_requests().await.unwrap().len(), 1);

    // 4. The rule removed: my API answers again.
    sim.delete_security_rule("nsg-apim", "deny-orders").unwrap();
    let r = sim.get("/orders/42").await.unwrap();
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(orders.received_requests().await.unwrap().len(), 2);

    // 5. A seeded fault on the backend leg: the connection to my server is reset, the client
    //    sees the documented 502 BACKEND_RESET, and the journal records it; dropping the guard
    //    removes the fault.
    sim.flush_flows();
    {
        let _reset = sim
            .add_fault(FaultRule::new(
                "reset-orders",
                "orders:443",
                FaultKind::Reset,
            ))
            .unwrap();
        let r = sim.get("/orders/42").await.unwrap();
        assert_eq!(r.status, StatusCode::BAD_GATEWAY);
        assert_eq!(r.problem().expect("problem+json").code, "BACKEND_RESET");
        let last = sim.expect_last_code("orders", "BACKEND_RESET");
        assert_eq!(last.fault.as_deref(), Some("reset-orders"));
    }
    let r = sim.get("/orders/42").await.unwrap();
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(orders.received_requests().await.unwrap().len(), 3);
    // Five requests reached the gateway for `orders`: 200, 502 (deny), 200, 502 (reset), 200.
    sim.expect_requests("orders", 5);
    sim.shutdown().await;
}

/// The point of this crate: `vnetsim::harness` is all it needs — no direct dependency on the
/// simulator's own crates or on `http`.
#[test]
fn this_crate_needs_no_sim_gateway_or_http_dependency() {
    let manifest = include_str!("../Cargo.toml");
    let keys: Vec<&str> = manifest
        .lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#') && !l.starts_with('['))
        .filter_map(|l| l.split(['=', '.']).next())
        .map(str::trim)
        .collect();
    for forbidden in ["sim", "gateway", "http", "hyper", "bytes"] {
        assert!(
            !keys.contains(&forbidden),
            "Cargo.toml depends on `{forbidden}`"
        );
    }
    assert!(keys.contains(&"vnetsim") && keys.contains(&"wiremock"));
}
