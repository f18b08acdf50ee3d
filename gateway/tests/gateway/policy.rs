//! Policy outcomes: NSG denials on both sides, integration, private DNS zone links, and the
//! `drop` deny mode. Every denied flow is proven not to reach its backend.

use std::time::{Duration, Instant};

use wiremock::matchers::any;
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::support::*;

async fn mock_expecting(n: u64) -> MockServer {
    let m = MockServer::start().await;
    Mock::given(any())
        .respond_with(ResponseTemplate::new(200))
        .expect(n)
        .mount(&m)
        .await;
    m
}

#[tokio::test]
async fn deny_on_integration_subnet_outbound_never_reaches_the_backend() {
    let payments = mock_expecting(0).await;
    let topo = Topo {
        apim_rules: deny_payments_out(),
        ..Topo::default()
    };
    let gw = start(&topo, opts().upstream("payments", 80, *payments.address())).await;
    let r = get(&gw, "/payments/charges").await;
    assert_eq!(r.status, 502);
    assert_eq!(r.code(), "NSG_DENIED");
    assert_eq!(
        r.header("x-vnetsim-verdict").as_deref(),
        Some("Deny; code=NSG_DENIED; rule=securityRules/deny-payments-out")
    );
    let p = r.json();
    assert_eq!(p["nsg"], "nsg-apim");
    assert_eq!(p["rule"], "securityRules/deny-payments-out");
    assert_eq!(p["priority"], 100);
    assert_eq!(p["status"], 502);
    assert!(p["title"].is_string() && p["type"].is_string() && p["detail"].is_string());
    // The orders API is unaffected.
    assert_eq!(get(&gw, "/orders/1").await.status, 200);
    assert!(gw.metrics_text().contains(
        "vnetsim_gateway_flows_total{verdict=\"Deny\",code=\"NSG_DENIED\",nsg=\"nsg-apim\",rule=\"securityRules/deny-payments-out\"} 1"
    ));
    gw.shutdown().await;
    // `expect(0)` is verified when `payments` drops: nothing was forwarded.
}

#[tokio::test]
async fn deny_on_backend_subnet_inbound_never_reaches_the_backend() {
    let ca = ca();
    let orders = mock_expecting(0).await;
    let cert = ca.issue(&["orders.internal.contoso.com".into()]).unwrap();
    let terminator = tls_terminator(&cert, *orders.address()).await;
    let topo = Topo {
        backend_rules: rule(
            "deny-apim-in",
            200,
            "Inbound",
            "Deny",
            "10.0.1.0/24",
            "*",
            "443",
        ),
        ..Topo::default()
    };
    let gw = start(&topo, opts().ca(ca).upstream("orders", 443, terminator)).await;
    let r = get(&gw, "/orders/1").await;
    assert_eq!(r.status, 502);
    assert_eq!(r.code(), "NSG_DENIED");
    let p = r.json();
    assert_eq!(p["nsg"], "nsg-backend");
    assert_eq!(p["rule"], "securityRules/deny-apim-in");
    assert_eq!(p["priority"], 200);
    assert_eq!(
        r.header("x-vnetsim-verdict").as_deref(),
        Some("Deny; code=NSG_DENIED; rule=securityRules/deny-apim-in")
    );
    gw.shutdown().await;
}

#[tokio::test]
async fn without_integration_private_fails_and_public_works() {
    let topo = Topo {
        integrated: false,
        ..Topo::default()
    };
    let gw = start(&topo, opts()).await;
    let r = get(&gw, "/orders/1").await;
    assert_eq!(r.status, 502);
    let code = r.code();
    assert!(code == "DNS_FAILURE" || code == "NOT_INTEGRATED", "{code}");
    assert_eq!(echo_requests(&gw, "orders"), 0);
    let r = get(&gw, "/payments/1").await;
    assert_eq!(r.status, 200);
    // The flow left from the instance's public address, not a VNet address.
    let f = gw.flows();
    assert!(!f[0].source.to_string().starts_with("10."), "{f:?}");
    gw.shutdown().await;
}

#[tokio::test]
async fn zone_linked_only_to_the_backend_vnet_fails_dns_until_linked() {
    let topo = Topo {
        split_vnets: true,
        zone_links: vec!["vnet-backend"],
        ..Topo::default()
    };
    let gw = start(&topo, opts()).await;
    let r = get(&gw, "/orders/1").await;
    assert_eq!(r.status, 502);
    assert_eq!(r.code(), "DNS_FAILURE");
    // Since the one-answer change a name that does not resolve is `sim`'s verdict
    // (Unreachable, DNS_FAILURE), as `check` prints it.
    assert_eq!(
        r.header("x-vnetsim-verdict"),
        Some("Unreachable; code=DNS_FAILURE".to_string())
    );
    assert_eq!(echo_requests(&gw, "orders"), 0);

    // Linking the zone to the APIM VNet fixes the request, without a restart.
    let fixed = Topo {
        zone_links: vec!["vnet-backend", "vnet-app"],
        ..topo
    };
    gw.reload(fixed.built()).expect("reload accepted");
    let r = get(&gw, "/orders/1").await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.json()["host"], "orders");
    gw.shutdown().await;
}

#[tokio::test]
async fn integration_subnet_denying_all_inbound_does_not_affect_the_gateway() {
    let topo = Topo {
        apim_rules: rule("deny-all-inbound", 100, "Inbound", "Deny", "*", "*", "*"),
        ..Topo::default()
    };
    let gw = start(&topo, opts()).await;
    // Integration is outbound only: inbound rules of its subnet never see gateway traffic.
    assert_eq!(get(&gw, "/orders/1").await.status, 200);
    assert_eq!(get(&gw, "/payments/1").await.status, 200);
    gw.shutdown().await;
}

#[tokio::test]
async fn drop_mode_waits_for_the_connect_timeout() {
    let topo = Topo {
        apim_rules: deny_payments_out(),
        gateway_extra: "deny_mode = \"drop\"".into(),
        ..Topo::default()
    };
    let gw = start(&topo, opts()).await;
    let t = Instant::now();
    let r = get(&gw, "/payments/1").await;
    // Like a dropped SYN: nothing answers until the connect timeout (300 ms here).
    assert!(
        t.elapsed() >= Duration::from_millis(300),
        "{:?}",
        t.elapsed()
    );
    assert_eq!(r.status, 504);
    assert_eq!(r.code(), "BACKEND_TIMEOUT");
    assert_eq!(echo_requests(&gw, "payments"), 0);
    gw.shutdown().await;
}

/// The bench's unchecked front door: the same process admits through it what its main front
/// door denies (the check alone differs), and only when the knob asks for it.
#[cfg(feature = "bench")]
#[tokio::test]
async fn the_bench_unchecked_front_door_skips_only_its_own_checks() {
    let payments = mock_expecting(1).await;
    let topo = Topo {
        apim_rules: deny_payments_out(),
        ..Topo::default()
    };
    let mut o = opts().upstream("payments", 80, *payments.address());
    o.bench.upstream_per_request = true;
    o.bench.unchecked_listen = Some("127.0.0.1:0".parse().unwrap());
    let gw = start(&topo, o).await;
    let unchecked = gw.bench_unchecked_addr().expect("an unchecked front door");
    assert_ne!(unchecked, gw.addr());
    assert!(unchecked.ip().is_loopback());
    let denied = get(&gw, "/payments/charges").await;
    assert_eq!((denied.status, denied.code().as_str()), (502, "NSG_DENIED"));
    let r = send(unchecked, req("GET", "/payments/charges")).await;
    assert_eq!(r.status, 200);
    // Still denied on the main front door after the unchecked flow.
    assert_eq!(get(&gw, "/payments/charges").await.status, 502);
    gw.shutdown().await;

    // Without the knob there is no second front door.
    let plain = start(&Topo::default(), opts()).await;
    assert_eq!(plain.bench_unchecked_addr(), None);
    plain.shutdown().await;
}
