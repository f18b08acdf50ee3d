//! HTTP at the edge, on raw sockets (hyper clients will not send malformed framing): request
//! bodies that are the client's fault, dot-segments, `Host`, heads hyper refuses itself,
//! `TRACE`, `Expect: 100-continue`, transfer codings. Each test checks the answer, what the
//! backend received, and the metrics.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use wiremock::matchers::any;
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::support::*;

/// A raw HTTP/1.1 answer: status, lower-cased head, body.
struct RawAnswer {
    status: u16,
    head: String,
    body: String,
}

impl RawAnswer {
    fn parse(out: &str) -> RawAnswer {
        let (head, body) = out.split_once("\r\n\r\n").unwrap_or((out, ""));
        let status = head
            .get(9..12)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("not an HTTP answer: {out:?}"));
        RawAnswer {
            status,
            head: head.to_ascii_lowercase(),
            body: body.to_string(),
        }
    }

    /// The problem document's `code`, checking the media type.
    fn code(&self) -> String {
        assert!(
            self.head.contains("content-type: application/problem+json"),
            "{}\n{}",
            self.head,
            self.body
        );
        let v: Value = serde_json::from_str(&self.body).expect("a problem document");
        v["code"].as_str().unwrap_or_default().to_string()
    }
}

/// Writes `bytes`, optionally half-closes, and reads until the gateway closes. Write errors
/// are ignored: the gateway may answer and close before the client is done sending.
async fn exchange(addr: SocketAddr, bytes: &[u8], half_close: bool) -> RawAnswer {
    let mut tcp = TcpStream::connect(addr).await.expect("connect");
    let _ = tcp.write_all(bytes).await;
    if half_close {
        let _ = tcp.shutdown().await;
    }
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), tcp.read_to_end(&mut out)).await;
    RawAnswer::parse(&String::from_utf8_lossy(&out))
}

/// A wiremock backend that answers 200 to anything, playing the payments API.
async fn payments_mock() -> MockServer {
    let mock = MockServer::start().await;
    Mock::given(any())
        .respond_with(ResponseTemplate::new(200).set_body_string("ok"))
        .mount(&mock)
        .await;
    mock
}

async fn mock_requests(mock: &MockServer) -> usize {
    mock.received_requests().await.map_or(0, |r| r.len())
}

/// Whether `/metrics` has this exact sample line.
fn has_metric(gw: &gateway::GatewayHandle, line: &str) -> bool {
    gw.metrics_text().lines().any(|l| l == line)
}

// === request bodies: the client's fault ===

#[tokio::test]
async fn malformed_chunked_bodies_are_the_clients_fault() {
    let mock = payments_mock().await;
    let gw = start(
        &Topo::default(),
        opts().upstream("payments", 80, *mock.address()),
    )
    .await;
    let head = "POST /payments/upload HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n";
    let cases: [(&str, &str, bool); 4] = [
        ("a bad chunk size", "zz\r\nhello\r\n0\r\n\r\n", false),
        (
            "data longer than declared",
            "5\r\nhelloEXTRA\r\n0\r\n\r\n",
            false,
        ),
        ("bare LF in the framing", "5\nhello\n0\n\n", false),
        ("a body cut short", "a\r\nhel", true),
    ];
    for (what, body, half_close) in cases {
        let a = exchange(gw.addr(), format!("{head}{body}").as_bytes(), half_close).await;
        assert_eq!(a.status, 400, "{what}: {}\n{}", a.head, a.body);
        assert_eq!(a.code(), "BAD_REQUEST_BODY", "{what}");
        // The framing cannot be trusted: the connection closes.
        assert!(a.head.contains("connection: close"), "{what}: {}", a.head);
    }
    // No complete request reached the backend.
    assert_eq!(mock_requests(&mock).await, 0);
    // Counted as the client's, not as a backend failure.
    assert!(has_metric(
        &gw,
        "vnetsim_gateway_client_faults_total{code=\"BAD_REQUEST_BODY\"} 4"
    ));
    assert!(has_metric(
        &gw,
        "vnetsim_gateway_requests_total{api=\"payments\",status=\"400\"} 4"
    ));
    assert!(
        !gw.metrics_text().contains("status=\"502\""),
        "{}",
        gw.metrics_text()
    );
    // The backend connections that carried half a request are closed, not pooled...
    eventually("the half-used flows to close", || gw.flows().is_empty()).await;
    // ...and the next well-formed request is served normally.
    let ok = exchange(
        gw.addr(),
        b"POST /payments/upload HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        false,
    )
    .await;
    assert_eq!(ok.status, 200, "{}", ok.body);
    assert_eq!(mock_requests(&mock).await, 1);
    gw.shutdown().await;
}

#[tokio::test]
async fn a_body_trickled_past_its_deadline_gets_408_not_504() {
    let mock = payments_mock().await;
    // fast_limits: body_read_timeout 400 ms, response_timeout 1500 ms.
    let gw = start(
        &Topo::default(),
        opts().upstream("payments", 80, *mock.address()),
    )
    .await;
    let mut tcp = TcpStream::connect(gw.addr()).await.unwrap();
    let t = Instant::now();
    tcp.write_all(b"POST /payments/upload HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\n")
        .await
        .unwrap();
    // Ten bytes every 100 ms: every gap is shorter than the limit, the whole body is not.
    for _ in 0..3 {
        tcp.write_all(&[b'x'; 10]).await.unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), tcp.read_to_end(&mut out)).await;
    let waited = t.elapsed();
    let a = RawAnswer::parse(&String::from_utf8_lossy(&out));
    assert_eq!(a.status, 408, "{}\n{}", a.head, a.body);
    assert_eq!(a.code(), "CLIENT_TIMEOUT");
    assert!(a.body.contains("request body"), "{}", a.body);
    assert!(a.head.contains("connection: close"), "{}", a.head);
    assert!(waited >= Duration::from_millis(400), "{waited:?}");
    assert_eq!(mock_requests(&mock).await, 0);
    assert!(has_metric(
        &gw,
        "vnetsim_gateway_client_faults_total{code=\"CLIENT_TIMEOUT\"} 1"
    ));
    assert!(has_metric(
        &gw,
        "vnetsim_gateway_requests_total{api=\"payments\",status=\"408\"} 1"
    ));
    // The backend connection is let go at once.
    eventually("the flow to close", || gw.flows().is_empty()).await;
    gw.shutdown().await;
}

// === paths ===

#[tokio::test]
async fn dot_segments_are_removed_before_routing() {
    let gw = start(&Topo::default(), opts()).await;
    // `..` out of /orders lands on /payments: routed there, with a clean path.
    let r = get(&gw, "/orders/../payments/x").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["host"], "payments");
    assert_eq!(r.json()["path"], "/x");
    // `.` and percent-encoded dots inside an API never reach its backend.
    let r = get(&gw, "/orders/./a/%2e%2E/1").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["host"], "orders");
    assert_eq!(r.json()["path"], "/v1/1");
    // Climbing above the root is refused, whatever the spelling.
    for p in ["/payments/../../admin", "/payments/%2e%2e/%2E%2e/x", "/.."] {
        let r = get(&gw, p).await;
        assert_eq!(r.status, 400, "{p}");
        assert_eq!(r.code(), "PATH_TRAVERSAL", "{p}");
    }
    // One request each reached the backends: the two that resolved.
    assert_eq!(echo_requests(&gw, "payments"), 1);
    assert_eq!(echo_requests(&gw, "orders"), 1);
    assert!(has_metric(
        &gw,
        "vnetsim_gateway_client_faults_total{code=\"PATH_TRAVERSAL\"} 3"
    ));
    gw.shutdown().await;
}

// === heads ===

#[tokio::test]
async fn host_must_be_present_once_and_valid() {
    let gw = start(&Topo::default(), opts()).await;
    let cases: [(&str, &[u8]); 3] = [
        (
            "no Host in HTTP/1.1",
            b"GET /payments/x HTTP/1.1\r\nConnection: close\r\n\r\n",
        ),
        (
            "two Host headers",
            b"GET /payments/x HTTP/1.1\r\nHost: a\r\nHost: b\r\nConnection: close\r\n\r\n",
        ),
        (
            "a Host that is no authority",
            b"GET /payments/x HTTP/1.1\r\nHost: a/b\r\nConnection: close\r\n\r\n",
        ),
    ];
    for (what, bytes) in cases {
        let a = exchange(gw.addr(), bytes, false).await;
        assert_eq!(a.status, 400, "{what}: {}", a.body);
        assert_eq!(a.code(), "BAD_HOST_HEADER", "{what}");
    }
    assert_eq!(echo_requests(&gw, "payments"), 0);
    // HTTP/1.0 may omit it.
    let a = exchange(gw.addr(), b"GET /payments/x HTTP/1.0\r\n\r\n", false).await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(echo_requests(&gw, "payments"), 1);
    assert!(has_metric(
        &gw,
        "vnetsim_gateway_client_faults_total{code=\"BAD_HOST_HEADER\"} 3"
    ));
    gw.shutdown().await;
}

/// A head of `fields` header fields (`Host` included).
fn head_with_fields(fields: usize) -> Vec<u8> {
    let mut h = b"GET /payments/x HTTP/1.1\r\nHost: a\r\nConnection: close\r\n".to_vec();
    for i in 2..fields {
        h.extend_from_slice(format!("x-f{i}: 1\r\n").as_bytes());
    }
    h.extend_from_slice(b"\r\n");
    h
}

#[tokio::test]
async fn heads_hyper_refuses_get_the_same_431_problem() {
    let limits = gateway::LimitOverrides {
        max_header_bytes: Some(4096),
        ..fast_limits()
    };
    let gw = start(&Topo::default(), opts().limits(limits)).await;
    // A head near MAX_HEADER_FIELDS (100) passes. (98: the forwarded request loses
    // `Connection` and gains `x-forwarded-for` and `forwarded`, and the echo backend's own
    // parser has the same limit.)
    let a = exchange(gw.addr(), &head_with_fields(98), false).await;
    assert_eq!(a.status, 200, "{}\n{}", a.head, a.body);
    // ...one more is refused by hyper's parser, with the gateway's problem document.
    let a = exchange(gw.addr(), &head_with_fields(101), false).await;
    assert_eq!(a.status, 431, "{}", a.head);
    assert_eq!(a.code(), "HEADERS_TOO_LARGE");
    assert!(a.head.contains("connection: close"), "{}", a.head);
    // A head larger than hyper's read buffer (here 24 KiB) likewise.
    let mut big = b"GET /payments/x HTTP/1.1\r\nHost: a\r\nx-big: ".to_vec();
    big.extend(std::iter::repeat_n(b'a', 40 * 1024));
    big.extend_from_slice(b"\r\n\r\n");
    let a = exchange(gw.addr(), &big, false).await;
    assert_eq!(a.status, 431, "{}", a.head);
    assert_eq!(a.code(), "HEADERS_TOO_LARGE");
    assert_eq!(echo_requests(&gw, "payments"), 1);
    eventually("the refusals to be counted", || {
        has_metric(
            &gw,
            "vnetsim_gateway_client_faults_total{code=\"HEADERS_TOO_LARGE\"} 2",
        )
    })
    .await;
    gw.shutdown().await;
}

#[tokio::test]
async fn trace_is_refused_with_allow() {
    let gw = start(&Topo::default(), opts()).await;
    let a = exchange(
        gw.addr(),
        b"TRACE /payments/x HTTP/1.1\r\nHost: a\r\nCookie: secret=1\r\nConnection: close\r\n\r\n",
        false,
    )
    .await;
    assert_eq!(a.status, 405);
    assert_eq!(a.code(), "TRACE_REFUSED");
    assert!(a.head.contains("allow: get, head, post"), "{}", a.head);
    assert!(!a.body.contains("secret"), "nothing is reflected");
    assert_eq!(echo_requests(&gw, "payments"), 0);
    assert!(has_metric(
        &gw,
        "vnetsim_gateway_client_faults_total{code=\"TRACE_REFUSED\"} 1"
    ));
    gw.shutdown().await;
}

#[tokio::test]
async fn expect_100_continue_is_answered_here_not_forwarded() {
    let gw = start(&Topo::default(), opts()).await;
    let mut tcp = TcpStream::connect(gw.addr()).await.unwrap();
    tcp.write_all(
        b"POST /payments/x HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n",
    )
    .await
    .unwrap();
    // The gateway says 100 before the body is sent...
    let mut buf = vec![0u8; 256];
    let n = tokio::time::timeout(Duration::from_secs(3), tcp.read(&mut buf))
        .await
        .expect("an interim answer")
        .unwrap();
    let interim = String::from_utf8_lossy(&buf[..n]).into_owned();
    assert!(interim.starts_with("HTTP/1.1 100 Continue"), "{interim}");
    tcp.write_all(b"hello").await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(3), tcp.read_to_end(&mut out)).await;
    let text = String::from_utf8_lossy(&out).into_owned();
    let a = RawAnswer::parse(text.trim_start_matches("\r\n"));
    assert_eq!(a.status, 200, "{text}");
    let echo: Value = serde_json::from_str(&a.body).unwrap();
    // ...and the backend got the body without being asked to expect anything.
    assert_eq!(echo["body_bytes"], 5);
    assert!(echo["headers"].get("expect").is_none(), "{echo}");
    gw.shutdown().await;
}

#[tokio::test]
async fn transfer_codings_other_than_chunked_get_501() {
    let gw = start(&Topo::default(), opts()).await;
    for te in ["gzip, chunked", "chunked, chunked"] {
        let req = format!(
            "POST /payments/x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: {te}\r\nConnection: close\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
        );
        let a = exchange(gw.addr(), req.as_bytes(), false).await;
        assert_eq!(a.status, 501, "{te}: {}", a.body);
        assert_eq!(a.code(), "TRANSFER_CODING_UNSUPPORTED", "{te}");
    }
    assert_eq!(echo_requests(&gw, "payments"), 0);
    // Plain chunked is fine.
    let a = exchange(
        gw.addr(),
        b"POST /payments/x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        false,
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.body);
    // 501 is a server-side refusal (counted before routing, so under no API), not a
    // client fault.
    assert!(has_metric(
        &gw,
        "vnetsim_gateway_requests_total{api=\"\",status=\"501\"} 2"
    ));
    gw.shutdown().await;
}
