//! Live rule changes: rules apply to new flows only; `flush_connection` cuts established flows
//! that the new rules deny.

use std::time::Duration;

use sim::RawRule;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::support::*;

async fn payments_mock() -> MockServer {
    let m = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/fast"))
        .respond_with(ResponseTemplate::new(200).set_body_string("fast"))
        .mount(&m)
        .await;
    Mock::given(method("GET"))
        .and(path("/slow"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_string("slow")
                .set_delay(Duration::from_millis(600)),
        )
        .mount(&m)
        .await;
    m
}

fn deny_payments() -> Vec<RawRule> {
    vec![serde_json::from_value(deny_payments_out_json()).unwrap()]
}

#[tokio::test]
async fn established_flow_survives_a_deny_and_new_flows_are_denied() {
    let mock = payments_mock().await;
    let gw = start(
        &Topo::default(),
        opts().upstream("payments", 80, *mock.address()),
    )
    .await;
    assert_eq!(get(&gw, "/payments/fast").await.status, 200);
    eventually("one pooled flow", || gw.flows().len() == 1).await;

    // The deny goes in through the admin API, as an operator would do it.
    let body = serde_json::to_string(&deny_payments()).unwrap();
    let r = admin(
        &gw,
        "PUT",
        "/admin/nsgs/nsg-apim/security_rules",
        Some(gw.admin_token()),
        Some(body),
    )
    .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.json()["flows_cut"], 0);
    assert_eq!(r.json()["generation"], 2);

    // The established (pooled) flow keeps working: no new verdict for it.
    let r = get(&gw, "/payments/fast").await;
    assert_eq!(r.status, 200);
    assert_eq!(&r.body[..], b"fast");

    // Hold the established flow busy; the next request needs a new flow, which is denied.
    let addr = gw.addr();
    let slow = tokio::spawn(async move { send(addr, req("GET", "/payments/slow")).await });
    received(&mock, 3).await;
    let r = get(&gw, "/payments/fast").await;
    assert_eq!(r.status, 502);
    assert_eq!(r.code(), "NSG_DENIED");
    assert_eq!(r.json()["rule"], "securityRules/deny-payments-out");
    let slow = slow.await.unwrap();
    assert_eq!(slow.status, 200);
    assert_eq!(gw.flows().len(), 1);
    gw.shutdown().await;
}

#[tokio::test]
async fn flush_connection_cuts_the_established_flow() {
    let mock = payments_mock().await;
    let topo = Topo {
        flush_apim: true,
        ..Topo::default()
    };
    let gw = start(&topo, opts().upstream("payments", 80, *mock.address())).await;
    assert_eq!(get(&gw, "/payments/fast").await.status, 200);

    // A request in flight on the established flow when the deny lands gets BACKEND_RESET.
    let addr = gw.addr();
    let slow = tokio::spawn(async move { send(addr, req("GET", "/payments/slow")).await });
    received(&mock, 2).await;
    let report = gw
        .set_nsg_rules("nsg-apim", &deny_payments())
        .expect("accepted");
    assert_eq!(report.flows_cut, 1);
    let slow = slow.await.unwrap();
    assert_eq!(slow.status, 502);
    assert_eq!(slow.code(), "BACKEND_RESET");
    assert!(slow.json()["detail"]
        .as_str()
        .unwrap()
        .contains("flush_connection"));

    // The flow is gone; a new one is denied.
    eventually("the cut flow to close", || gw.flows().is_empty()).await;
    let r = get(&gw, "/payments/fast").await;
    assert_eq!(r.code(), "NSG_DENIED");
    assert!(gw
        .metrics_text()
        .contains("vnetsim_gateway_flows_cut_total 1"));
    gw.shutdown().await;
}

#[tokio::test]
async fn flush_leaves_flows_the_new_rules_still_allow() {
    let topo = Topo {
        flush_apim: true,
        ..Topo::default()
    };
    let gw = start(&topo, opts()).await;
    assert_eq!(get(&gw, "/orders/1").await.status, 200);
    assert_eq!(get(&gw, "/payments/1").await.status, 200);
    eventually("two flows", || gw.flows().len() == 2).await;
    let report = gw.set_nsg_rules("nsg-apim", &deny_payments()).unwrap();
    // Only the payments flow is denied by the new rule.
    assert_eq!((report.flows_checked, report.flows_cut), (2, 1));
    eventually("one flow left", || gw.flows().len() == 1).await;
    assert_eq!(gw.flows()[0].host, "orders");
    assert_eq!(get(&gw, "/orders/2").await.status, 200);
    gw.shutdown().await;
}
