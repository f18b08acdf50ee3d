//! Misbehaving backends: each failure answers with its own code.

use std::net::SocketAddr;

use gateway::{LimitOverrides, StartOptions};

use crate::support::*;

fn with_payments(addr: SocketAddr) -> StartOptions {
    opts().upstream("payments", 80, addr)
}

#[tokio::test]
async fn refused_backend() {
    let (_socket, addr) = refusing_socket();
    let gw = start(&Topo::default(), with_payments(addr)).await;
    let r = get(&gw, "/payments/1").await;
    assert_eq!(r.status, 502);
    assert_eq!(r.code(), "BACKEND_REFUSED");
    // Not a policy outcome: no verdict header, no NSG fields.
    assert!(r.header("x-vnetsim-verdict").is_none());
    assert!(r.json().get("nsg").is_none());
    gw.shutdown().await;
}

#[tokio::test]
async fn reset_backend() {
    let addr = resetting_server().await;
    let gw = start(&Topo::default(), with_payments(addr)).await;
    let r = get(&gw, "/payments/1").await;
    assert_eq!(r.status, 502);
    assert_eq!(r.code(), "BACKEND_RESET");
    gw.shutdown().await;
}

#[tokio::test]
async fn silent_backend_times_out() {
    let addr = silent_server().await;
    let limits = LimitOverrides {
        response_timeout: Some(std::time::Duration::from_millis(200)),
        ..fast_limits()
    };
    let gw = start(&Topo::default(), with_payments(addr).limits(limits)).await;
    let r = get(&gw, "/payments/1").await;
    assert_eq!(r.status, 504);
    assert_eq!(r.code(), "BACKEND_TIMEOUT");
    // The timed-out connection is not reused.
    eventually("the flow to close", || gw.flows().is_empty()).await;
    gw.shutdown().await;
}

/// The response timeout holds per request on a pooled connection: an earlier request's
/// deadline (long past, or still ahead) neither cuts a later request short nor lets it wait
/// longer than its own limit.
#[tokio::test]
async fn the_response_timeout_holds_per_request_on_a_pooled_connection() {
    use std::time::{Duration, Instant};
    use wiremock::matchers::{method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};
    let mock = MockServer::start().await;
    for (p, delay) in [("/fast", 0), ("/slow200", 200), ("/slow900", 900)] {
        Mock::given(method("GET"))
            .and(path(p))
            .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_millis(delay)))
            .mount(&mock)
            .await;
    }
    let limits = LimitOverrides {
        response_timeout: Some(Duration::from_millis(400)),
        ..fast_limits()
    };
    let gw = start(
        &Topo::default(),
        with_payments(*mock.address()).limits(limits),
    )
    .await;
    assert_eq!(get(&gw, "/payments/fast").await.status, 200);
    // Idle past the first request's deadline: the pooled connection's clock fired unobserved.
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(get(&gw, "/payments/slow200").await.status, 200);
    // Right away: the previous deadline is still ahead and earlier than this one.
    assert_eq!(get(&gw, "/payments/slow200").await.status, 200);
    let flows = gw.flows();
    assert_eq!(flows.len(), 1, "one pooled flow carried them: {flows:?}");
    assert_eq!(flows[0].requests, 3);
    let t = Instant::now();
    let r = get(&gw, "/payments/slow900").await;
    let waited = t.elapsed();
    assert_eq!(r.status, 504);
    assert_eq!(r.code(), "BACKEND_TIMEOUT");
    assert!(
        waited >= Duration::from_millis(390) && waited < Duration::from_millis(850),
        "timed out after {waited:?} (limit 400 ms)"
    );
    gw.shutdown().await;
}

#[tokio::test]
async fn untrusted_or_misnamed_backend_certificates_fail_tls() {
    let ca = ca();
    let echo_behind = MockBackend::start().await;
    // A certificate from another CA.
    let stranger = gateway::LocalCa::new().unwrap();
    let untrusted = stranger
        .issue(&["orders.internal.contoso.com".into()])
        .unwrap();
    let t1 = tls_terminator(&untrusted, echo_behind.addr).await;
    let gw = start(
        &Topo::default(),
        opts().ca(ca.clone()).upstream("orders", 443, t1),
    )
    .await;
    let r = get(&gw, "/orders/1").await;
    assert_eq!(r.status, 502);
    assert_eq!(r.code(), "BACKEND_TLS");
    gw.shutdown().await;

    // The right CA, the wrong name.
    let misnamed = ca.issue(&["other.example".into()]).unwrap();
    let t2 = tls_terminator(&misnamed, echo_behind.addr).await;
    let gw = start(&Topo::default(), opts().ca(ca).upstream("orders", 443, t2)).await;
    let r = get(&gw, "/orders/1").await;
    assert_eq!(r.code(), "BACKEND_TLS");
    gw.shutdown().await;
    assert_eq!(echo_behind.hits().await, 0);
}

#[tokio::test]
async fn non_loopback_upstreams_are_refused() {
    let topo = Topo::default();
    let b = topo.built();
    let err = gateway::start(
        b,
        opts().upstream("payments", 80, "10.0.0.1:80".parse().unwrap()),
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("not a loopback address"), "{err}");
    // An override naming nothing in the topology is a mistake, not a silent no-op.
    let err = gateway::start(
        topo.built(),
        opts().upstream("nope", 80, "127.0.0.1:1".parse().unwrap()),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(err, gateway::StartError::UnknownUpstream { .. }),
        "{err}"
    );
}

/// A plain-HTTP wiremock backend that counts what it received.
struct MockBackend {
    server: wiremock::MockServer,
    addr: SocketAddr,
}

impl MockBackend {
    async fn start() -> MockBackend {
        let server = wiremock::MockServer::start().await;
        wiremock::Mock::given(wiremock::matchers::any())
            .respond_with(wiremock::ResponseTemplate::new(200))
            .mount(&server)
            .await;
        let addr = *server.address();
        MockBackend { server, addr }
    }

    async fn hits(&self) -> usize {
        self.server.received_requests().await.map_or(0, |r| r.len())
    }
}
