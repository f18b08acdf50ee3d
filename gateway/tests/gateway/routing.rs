//! Reachability and routing: public and private backends through an integrated gateway,
//! over HTTP and HTTPS, and what arrives at the backend.

use wiremock::matchers::{header, headers, method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::support::*;

#[tokio::test]
async fn public_http_and_private_https_echo_backends_are_reachable() {
    let gw = start(&Topo::default(), opts()).await;

    let r = get(&gw, "/payments/charges/7?currency=EUR&x=%20y").await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let echo = r.json();
    // The public backend answered, with the rest of the path and the query verbatim.
    assert_eq!(echo["host"], "payments");
    assert_eq!(echo["port"], 80);
    assert_eq!(echo["tls"], false);
    assert_eq!(echo["path"], "/charges/7");
    assert_eq!(echo["query"], "currency=EUR&x=%20y");
    assert_eq!(echo["headers"]["host"], "api.payments.example");

    let r = get(&gw, "/orders/42").await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let echo = r.json();
    // The private HTTPS backend answered (TLS verified against the local CA, SNI = its name),
    // with the API path joined to the backend URL's path `/v1`.
    assert_eq!(echo["host"], "orders");
    assert_eq!(echo["port"], 443);
    assert_eq!(echo["tls"], true);
    assert_eq!(echo["path"], "/v1/42");
    assert_eq!(echo["headers"]["host"], "orders.internal.contoso.com");
    assert_eq!(echo["headers"]["x-forwarded-for"], "127.0.0.1");
    assert_eq!(
        echo["headers"]["forwarded"],
        format!("for=127.0.0.1;proto=http;host={GATEWAY_HOST}")
    );
    gw.shutdown().await;
}

#[tokio::test]
async fn wiremock_backends_over_http_and_https() {
    let ca = ca();
    let payments = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/charges"))
        .and(query_param("id", "9"))
        .and(header("host", "api.payments.example"))
        // The client's x-forwarded-for list, with the client's address appended.
        .and(headers("x-forwarded-for", vec!["10.9.9.9", "127.0.0.1"]))
        .respond_with(ResponseTemplate::new(201).set_body_string("charged"))
        .expect(1)
        .mount(&payments)
        .await;
    let orders = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v1/items/3"))
        .and(header("host", "orders.internal.contoso.com"))
        .respond_with(ResponseTemplate::new(200).set_body_string("item 3"))
        .expect(1)
        .mount(&orders)
        .await;
    let cert = ca.issue(&["orders.internal.contoso.com".into()]).unwrap();
    let terminator = tls_terminator(&cert, *orders.address()).await;

    let gw = start(
        &Topo::default(),
        opts()
            .ca(ca.clone())
            .upstream("payments", 80, *payments.address())
            .upstream("orders.internal.contoso.com", 443, terminator),
    )
    .await;

    let mut r = req("POST", "/payments/charges?id=9");
    r.headers_mut()
        .insert("x-forwarded-for", "10.9.9.9".parse().unwrap());
    let r = send(gw.addr(), r).await;
    assert_eq!(r.status, 201);
    assert_eq!(&r.body[..], b"charged");

    let r = get(&gw, "/orders/items/3").await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(&r.body[..], b"item 3");
    gw.shutdown().await;
    // `expect(1)` is verified when the mocks drop.
}

#[tokio::test]
async fn routing_is_by_path_prefix_only() {
    let gw = start(&Topo::default(), opts()).await;
    // Whole segments only.
    let r = get(&gw, "/ordersX/1").await;
    assert_eq!(r.status, 404);
    assert_eq!(r.code(), "NO_API");
    // Case-insensitive prefix; the rest keeps its case.
    let r = get(&gw, "/PAYMENTS/Mixed").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["path"], "/Mixed");
    // The prefix alone maps to the backend path (here the root).
    let r = get(&gw, "/payments").await;
    assert_eq!(r.json()["path"], "/");
    // The Host header never selects an upstream: the path does.
    let mut evil = req("GET", "/payments/x");
    evil.headers_mut()
        .insert("host", "orders.internal.contoso.com".parse().unwrap());
    let r = send(gw.addr(), evil).await;
    assert_eq!(r.json()["host"], "payments");
    // ... and it is what `forwarded` reports as the original host.
    assert!(r.json()["headers"]["forwarded"]
        .as_str()
        .unwrap()
        .ends_with("host=orders.internal.contoso.com"));
    gw.shutdown().await;
}

#[tokio::test]
async fn hop_by_hop_headers_are_stripped_both_ways() {
    let backend = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("x-backend", "1")
                .insert_header("keep-alive", "timeout=5")
                .insert_header("proxy-authenticate", "Basic"),
        )
        .mount(&backend)
        .await;
    let gw = start(
        &Topo::default(),
        opts().upstream("payments", 80, *backend.address()),
    )
    .await;
    let mut r = req("GET", "/payments/h");
    let h = r.headers_mut();
    h.insert("connection", "x-private".parse().unwrap());
    h.insert("x-private", "secret".parse().unwrap());
    h.insert("proxy-authorization", "Basic abc".parse().unwrap());
    h.insert("x-end-to-end", "kept".parse().unwrap());
    let resp = send(gw.addr(), r).await;
    assert_eq!(resp.status, 200);
    assert_eq!(resp.header("x-backend").as_deref(), Some("1"));
    assert!(resp.header("keep-alive").is_none());
    assert!(resp.header("proxy-authenticate").is_none());
    let got = &backend.received_requests().await.unwrap()[0];
    assert!(
        got.headers.get("x-private").is_none(),
        "named in Connection"
    );
    assert!(got.headers.get("proxy-authorization").is_none());
    assert_eq!(got.headers.get("x-end-to-end").unwrap(), "kept");
    gw.shutdown().await;
}

#[tokio::test]
async fn upstream_connections_are_pooled_and_listed_as_flows() {
    let gw = start(&Topo::default(), opts()).await;
    for _ in 0..3 {
        assert_eq!(get(&gw, "/orders/1").await.status, 200);
    }
    eventually("the flow to return to the pool", || {
        gw.flows().first().is_some_and(|f| f.requests == 3)
    })
    .await;
    let flows = gw.flows();
    // Three sequential requests rode one established flow.
    assert_eq!(flows.len(), 1, "{flows:#?}");
    let f = &flows[0];
    assert_eq!(f.destination.to_string(), "10.0.2.4");
    assert_eq!(f.destination_port, 443);
    assert!(f.source.to_string().starts_with("10.0.1."), "{f:?}");
    assert!(f.source_port >= 49152);
    assert_eq!(f.host, "orders");
    // Both NSGs on the path are named with the rule that allowed the flow.
    let nsgs: Vec<&str> = f.allowed_by.iter().map(|h| h.nsg.as_str()).collect();
    assert_eq!(nsgs, vec!["nsg-apim", "nsg-backend"]);
    gw.shutdown().await;
}
