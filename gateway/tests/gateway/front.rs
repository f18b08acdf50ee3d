//! The front door: open-proxy refusals, size limits, slow clients, HTTP/2 (h2c and ALPN over
//! TLS), graceful shutdown.

use std::time::{Duration, Instant};

use bytes::Bytes;
use gateway::LimitOverrides;
use http_body_util::Full;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::support::*;

#[tokio::test]
async fn open_proxy_attempts_are_refused() {
    let gw = start(&Topo::default(), opts()).await;
    let out = raw(
        gw.addr(),
        b"GET http://api.payments.example/x HTTP/1.1\r\nHost: api.payments.example\r\nConnection: close\r\n\r\n",
        Duration::from_secs(3),
    )
    .await;
    assert!(out.starts_with("HTTP/1.1 400"), "{out}");
    assert!(out.contains("ABSOLUTE_FORM_REFUSED"), "{out}");
    let out = raw(
        gw.addr(),
        b"CONNECT orders.internal.contoso.com:443 HTTP/1.1\r\nHost: orders.internal.contoso.com:443\r\nConnection: close\r\n\r\n",
        Duration::from_secs(3),
    )
    .await;
    assert!(out.starts_with("HTTP/1.1 405"), "{out}");
    assert!(out.contains("CONNECT_REFUSED"), "{out}");
    assert!(out.to_ascii_lowercase().contains("allow: "), "{out}");
    // A WebSocket upgrade is not tunnelled either.
    let mut r = req("GET", "/payments/ws");
    r.headers_mut()
        .insert("connection", "upgrade".parse().unwrap());
    r.headers_mut()
        .insert("upgrade", "websocket".parse().unwrap());
    let r = send(gw.addr(), r).await;
    assert_eq!(r.code(), "UPGRADE_REFUSED");
    // Nothing reached a backend.
    assert_eq!(
        echo_requests(&gw, "payments") + echo_requests(&gw, "orders"),
        0
    );
    gw.shutdown().await;
}

#[tokio::test]
async fn oversized_heads_and_bodies_get_431_and_413() {
    let limits = LimitOverrides {
        max_header_bytes: Some(4096),
        max_body_bytes: Some(1024),
        ..fast_limits()
    };
    let gw = start(&Topo::default(), opts().limits(limits)).await;

    let mut r = req("GET", "/payments/x");
    r.headers_mut()
        .insert("x-big", "a".repeat(6000).parse().unwrap());
    let r = send(gw.addr(), r).await;
    assert_eq!(r.status, 431);
    assert_eq!(r.code(), "HEADERS_TOO_LARGE");

    // Declared too large: refused before any backend connection.
    let big = http::Request::builder()
        .method("POST")
        .uri("/payments/upload")
        .header("host", GATEWAY_HOST)
        .body(Full::new(Bytes::from(vec![b'x'; 2048])))
        .unwrap();
    let r = send(gw.addr(), big).await;
    assert_eq!(r.status, 413);
    assert_eq!(r.code(), "BODY_TOO_LARGE");
    assert_eq!(echo_requests(&gw, "payments"), 0);

    // Chunked (no length): cut off while streaming.
    let mut chunked =
        b"POST /payments/upload HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
            .to_vec();
    chunked.extend_from_slice(format!("{:x}\r\n", 2000).as_bytes());
    chunked.extend_from_slice(&[b'y'; 2000]);
    chunked.extend_from_slice(b"\r\n0\r\n\r\n");
    let out = raw(gw.addr(), &chunked, Duration::from_secs(3)).await;
    assert!(out.starts_with("HTTP/1.1 413"), "{out}");
    assert!(out.contains("BODY_TOO_LARGE"), "{out}");

    // Within the limits all is well.
    let ok = http::Request::builder()
        .method("POST")
        .uri("/payments/upload")
        .header("host", GATEWAY_HOST)
        .body(Full::new(Bytes::from(vec![b'x'; 1000])))
        .unwrap();
    let r = send(gw.addr(), ok).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["body_bytes"], 1000);
    gw.shutdown().await;
}

/// Reads one HTTP/1.1 response (head and `content-length` body) from `tcp`.
async fn read_response(tcp: &mut tokio::net::TcpStream) -> String {
    use tokio::io::AsyncReadExt;
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = tokio::time::timeout(Duration::from_secs(3), tcp.read(&mut buf))
            .await
            .expect("a response within 3 s")
            .expect("read");
        assert!(
            n > 0,
            "closed before a full response: {:?}",
            String::from_utf8_lossy(&out)
        );
        out.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&out).into_owned();
        if let Some(end) = text.find("\r\n\r\n") {
            let len: usize = text[..end]
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().parse().unwrap())
                })
                .unwrap_or(0);
            if out.len() >= end + 4 + len {
                return text;
            }
        }
    }
}

#[tokio::test]
async fn the_idle_limit_runs_from_the_end_of_the_last_request() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    // Header-read timeout 300 ms: a connection may live far longer than that as long as it is
    // never idle for 300 ms.
    let gw = start(&Topo::default(), opts()).await;
    let mut tcp = tokio::net::TcpStream::connect(gw.addr()).await.unwrap();
    let get = b"GET /payments/x HTTP/1.1\r\nHost: a\r\n\r\n";
    tokio::time::sleep(Duration::from_millis(150)).await;
    for _ in 0..4 {
        tcp.write_all(get).await.unwrap();
        let out = read_response(&mut tcp).await;
        assert!(out.starts_with("HTTP/1.1 200"), "{out}");
        // 4 × 200 ms after connecting is well past 300 ms; each gap is shorter than the limit.
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Then idle: closed about 300 ms after the last response, without a 408.
    let idle = Instant::now();
    let mut rest = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(3), tcp.read_to_end(&mut rest)).await;
    assert!(rest.is_empty(), "{}", String::from_utf8_lossy(&rest));
    let waited = idle.elapsed();
    assert!(
        waited < Duration::from_secs(2),
        "closed by the idle limit ({waited:?})"
    );
    gw.shutdown().await;
}

#[tokio::test]
async fn slow_clients_are_timed_out() {
    let gw = start(&Topo::default(), opts()).await;
    // Half a head, then silence: 408 after the header-read timeout (300 ms), then close.
    let t = Instant::now();
    let out = raw(
        gw.addr(),
        b"GET /payments/x HTTP/1.1\r\nHost: a\r\n",
        Duration::from_secs(5),
    )
    .await;
    assert!(t.elapsed() >= Duration::from_millis(300));
    assert!(
        t.elapsed() < Duration::from_secs(4),
        "closed after the answer"
    );
    assert!(out.starts_with("HTTP/1.1 408"), "{out}");
    assert!(out.contains("CLIENT_TIMEOUT"), "{out}");
    assert!(out.contains("application/problem+json"), "{out}");

    // A client that connects and sends nothing gets the same answer.
    let out = raw(gw.addr(), b"", Duration::from_secs(5)).await;
    assert!(out.starts_with("HTTP/1.1 408"), "{out}");

    // After a complete exchange, an idle keep-alive connection is closed without a 408.
    let t = Instant::now();
    let out = raw(
        gw.addr(),
        b"GET /payments/x HTTP/1.1\r\nHost: a\r\n\r\n",
        Duration::from_secs(5),
    )
    .await;
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    assert!(!out.contains("408"), "{out}");
    assert!(
        t.elapsed() < Duration::from_secs(4),
        "closed by the idle limit"
    );

    // HTTP/2: a client that does not complete the connection preface is disconnected.
    let t = Instant::now();
    let out = raw(gw.addr(), b"PRI * HTTP/2.0\r\n", Duration::from_secs(5)).await;
    assert!(out.is_empty(), "{out}");
    assert!(t.elapsed() < Duration::from_secs(4));
    gw.shutdown().await;
}

#[tokio::test]
async fn http2_with_prior_knowledge() {
    let gw = start(&Topo::default(), opts()).await;
    let r = get_h2c(&gw, "/payments/h2").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.version, http::Version::HTTP_2);
    let echo = r.json();
    assert_eq!(echo["path"], "/h2");
    // Upstream is HTTP/1.1 with the backend's Host, whatever the client spoke.
    assert_eq!(echo["version"], "HTTP/1.1");
    assert_eq!(echo["headers"]["host"], "api.payments.example");
    // Failures are problem documents over HTTP/2 too.
    let r = get_h2c(&gw, "/nothing").await;
    assert_eq!(r.code(), "NO_API");
    gw.shutdown().await;
}

#[tokio::test]
async fn tls_front_door_with_alpn() {
    let ca = ca();
    let topo = Topo {
        gateway_extra: "tls = true".into(),
        ..Topo::default()
    };
    let gw = start(&topo, opts().ca(ca.clone())).await;
    assert!(gw.url().starts_with("https://"));
    // The CA is exported so clients can trust the front door.
    assert_eq!(
        std::fs::read_to_string(gw.ca_pem_path()).unwrap(),
        gw.ca_pem()
    );
    let r = get_tls(&gw, &ca, b"h2", "/orders/1").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.version, http::Version::HTTP_2);
    let echo = r.json();
    assert_eq!(echo["host"], "orders");
    assert!(echo["headers"]["forwarded"]
        .as_str()
        .unwrap()
        .contains("proto=https"));
    let r = get_tls(&gw, &ca, b"http/1.1", "/payments/1").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.version, http::Version::HTTP_11);
    gw.shutdown().await;
}

#[tokio::test]
async fn graceful_shutdown_completes_an_in_flight_request() {
    let mock = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/slow"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_string("done")
                .set_delay(Duration::from_millis(500)),
        )
        .mount(&mock)
        .await;
    let gw = start(
        &Topo::default(),
        opts().upstream("payments", 80, *mock.address()),
    )
    .await;
    let addr = gw.addr();
    let inflight = tokio::spawn(async move { send(addr, req("GET", "/payments/slow")).await });
    received(&mock, 1).await;
    let t = Instant::now();
    gw.shutdown().await;
    let r = inflight.await.unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(&r.body[..], b"done");
    assert!(
        t.elapsed() < Duration::from_secs(2),
        "drained, not waited out"
    );
    // The listener is closed.
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}

#[tokio::test]
async fn connection_cap_holds_further_clients_in_the_backlog() {
    let limits = LimitOverrides {
        max_connections: Some(1),
        ..fast_limits()
    };
    let gw = start(&Topo::default(), opts().limits(limits)).await;
    // The only permit is taken by a client that sends nothing...
    let idle = tokio::net::TcpStream::connect(gw.addr()).await.unwrap();
    eventually("the idle client to hold the permit", || {
        gw.metrics_text()
            .contains("vnetsim_gateway_client_connections 1\n")
    })
    .await;
    // ...so the next client is served only once that one is timed out (300 ms).
    let t = Instant::now();
    let r = get(&gw, "/payments/1").await;
    assert_eq!(r.status, 200);
    assert!(
        t.elapsed() >= Duration::from_millis(200),
        "{:?}",
        t.elapsed()
    );
    drop(idle);
    gw.shutdown().await;
}
