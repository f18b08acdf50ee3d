//! Outbound round trips in one process, all on loopback: a hyper client → the gateway (plain
//! front door of the embedded default topology, `fixtures/default.toml`) → a built-in echo
//! backend over TLS. Two APIs: `orders` (a private backend in the VNet) and `payments` (an
//! allowed public backend). Two HTTP versions at the front door: HTTP/1.1 and HTTP/2 (h2c,
//! prior knowledge); the gateway speaks HTTP/1.1 over TLS to the backend either way.
//!
//! - `keep-alive`: one client connection, reused; the gateway reuses one pooled upstream
//!   connection, so a request asks `sim` nothing (an established flow).
//! - `new-flow`: a new client connection per request, and a gateway started with
//!   [`gateway::BenchKnobs::upstream_per_request`], which closes each upstream connection after
//!   its response instead of pooling it: every request dials the backend, is admitted by the
//!   NSG verdict as a new flow, and does a TLS handshake with it.
//!
//! Before measuring, a check proves each mode does what it says: 20 requests add at most one
//! admitted flow (`vnetsim_gateway_flows_total`) in keep-alive and exactly 20 in new-flow, and
//! the echo of the named API answered.
//!
//! Client, gateway and echo backends share one `current_thread` Tokio runtime built here: the
//! figures are the latency of a round trip with every party on one core, without cross-thread
//! wake-ups (the `vnetsim bench` command measures throughput in separate processes instead).
//!
//! Run: `cargo bench --bench outbound`. Criterion times requests one after another; a summary
//! at the end prints the median µs per request of keep-alive and new-flow measured alternately
//! in the same run, and their ratio.

use std::hint::black_box;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use gateway::echo::EchoReply;
use gateway::{BenchKnobs, GatewayHandle, StartOptions};
use http::{header, Request, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpStream;
use tokio::runtime::Runtime;
use vnetsim::harness::DEFAULT_FIXTURE;
use vnetsim::{load_str, TagSource};

/// `[gateway] hostname` of the default topology: the `Host` every request carries.
const GATEWAY_HOST: &str = "apim-contoso.azure-api.net";

/// An API of the default topology and the path a request takes through it.
#[derive(Clone, Copy)]
struct Api {
    /// The API name, also the `[[hosts]]` name of the echo backend that answers it.
    name: &'static str,
    /// Path at the front door.
    path: &'static str,
    /// The same as an absolute URI (HTTP/2 sends `:scheme` and `:authority`).
    uri: &'static str,
}

const APIS: [Api; 2] = [
    Api {
        name: "orders",
        path: "/orders/bench",
        uri: "http://apim-contoso.azure-api.net/orders/bench",
    },
    Api {
        name: "payments",
        path: "/payments/bench",
        uri: "http://apim-contoso.azure-api.net/payments/bench",
    },
];

#[derive(Clone, Copy, PartialEq, Eq)]
enum Proto {
    H1,
    H2,
}

impl Proto {
    fn label(self) -> &'static str {
        match self {
            Proto::H1 => "http1",
            Proto::H2 => "http2",
        }
    }
}

/// A client connection to the front door.
enum Sender {
    H1(http1::SendRequest<Empty<Bytes>>),
    H2(http2::SendRequest<Empty<Bytes>>),
}

/// Opens a client connection; its driver runs as a task on the bench runtime.
async fn connect(addr: SocketAddr, proto: Proto) -> Sender {
    let tcp = TcpStream::connect(addr)
        .await
        .expect("the gateway accepts on loopback");
    tcp.set_nodelay(true)
        .expect("TCP_NODELAY can be set on a connected socket");
    let io = TokioIo::new(tcp);
    match proto {
        Proto::H1 => {
            let (s, conn) = http1::handshake(io)
                .await
                .expect("HTTP/1.1 handshake with the gateway");
            tokio::spawn(conn);
            Sender::H1(s)
        }
        Proto::H2 => {
            let (s, conn) = http2::handshake(TokioExecutor::new(), io)
                .await
                .expect("HTTP/2 handshake with the gateway");
            tokio::spawn(conn);
            Sender::H2(s)
        }
    }
}

/// `GET` through the gateway; the whole body. Panics unless the answer is 200: a bench that
/// timed problem responses would measure the wrong path.
async fn round_trip(s: &mut Sender, api: Api) -> Bytes {
    let sent = match s {
        Sender::H1(s) => {
            let req = Request::get(api.path)
                .header(header::HOST, GATEWAY_HOST)
                .body(Empty::new())
                .expect("a static request is valid");
            s.ready().await.expect("the HTTP/1.1 connection is open");
            s.send_request(req).await
        }
        Sender::H2(s) => {
            let req = Request::get(api.uri)
                .body(Empty::new())
                .expect("a static request is valid");
            s.ready().await.expect("the HTTP/2 connection is open");
            s.send_request(req).await
        }
    };
    let resp = sent.expect("the gateway answers");
    assert_eq!(
        resp.status(),
        StatusCode::OK,
        "GET {} through the gateway",
        api.path
    );
    resp.into_body()
        .collect()
        .await
        .expect("the response body arrives")
        .to_bytes()
}

/// `n` requests on one connection opened beforehand (the caller keeps it warm).
async fn keep_alive(s: &mut Sender, api: Api, n: u64) -> Duration {
    let t = Instant::now();
    for _ in 0..n {
        black_box(round_trip(s, api).await);
    }
    t.elapsed()
}

/// `n` requests, each on a new client connection.
async fn new_flow(addr: SocketAddr, proto: Proto, api: Api, n: u64) -> Duration {
    let t = Instant::now();
    for _ in 0..n {
        let mut s = connect(addr, proto).await;
        black_box(round_trip(&mut s, api).await);
    }
    t.elapsed()
}

/// Starts a gateway for the embedded default topology on the bench runtime.
fn start(rt: &Runtime, upstream_per_request: bool) -> GatewayHandle {
    let loaded = load_str(
        "fixtures/default.toml",
        DEFAULT_FIXTURE,
        None,
        &TagSource::Fixture,
    )
    .expect("the embedded default topology loads");
    let opts = StartOptions {
        bench: BenchKnobs {
            upstream_per_request,
            ..BenchKnobs::default()
        },
        ..StartOptions::default()
    };
    rt.block_on(gateway::start(loaded.built, opts))
        .expect("the gateway starts on loopback")
}

/// New backend flows admitted so far (every `vnetsim_gateway_flows_total` series).
fn admitted_flows(gw: &GatewayHandle) -> u64 {
    gw.metrics_text()
        .lines()
        .filter(|l| {
            l.starts_with("vnetsim_gateway_flows_total{") && l.contains("verdict=\"Allow\"")
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

/// Proves each gateway measures the path its group names: the echo of `api` answers, and 20
/// requests admit at most one new flow with pooling and one per request without.
fn check_modes(rt: &Runtime, pooled: &GatewayHandle, per_request: &GatewayHandle, api: Api) {
    const N: u64 = 20;
    rt.block_on(async {
        let mut s = connect(pooled.addr(), Proto::H1).await;
        let echo: EchoReply = serde_json::from_slice(&round_trip(&mut s, api).await)
            .expect("an echo backend answers with its JSON reply");
        assert_eq!(echo.host, api.name, "the {} backend answered", api.name);
        let before = admitted_flows(pooled);
        keep_alive(&mut s, api, N).await;
        let added = admitted_flows(pooled) - before;
        assert!(
            added <= 1,
            "keep-alive admitted {added} flows for {N} requests"
        );

        let before = admitted_flows(per_request);
        new_flow(per_request.addr(), Proto::H1, api, N).await;
        let added = admitted_flows(per_request) - before;
        assert_eq!(added, N, "new-flow admits one backend flow per request");
    });
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Median µs per request of keep-alive and new-flow, alternated for 7 rounds.
fn paired(
    rt: &Runtime,
    pooled: &GatewayHandle,
    per_request: &GatewayHandle,
    proto: Proto,
    api: Api,
) -> (f64, f64) {
    const KEEP_ALIVE_N: u64 = 300;
    const NEW_FLOW_N: u64 = 60;
    rt.block_on(async {
        let mut s = connect(pooled.addr(), proto).await;
        keep_alive(&mut s, api, 20).await;
        let (mut ka, mut nf) = (Vec::new(), Vec::new());
        for _ in 0..7 {
            let d = keep_alive(&mut s, api, KEEP_ALIVE_N).await;
            ka.push(d.as_secs_f64() * 1e6 / KEEP_ALIVE_N as f64);
            let d = new_flow(per_request.addr(), proto, api, NEW_FLOW_N).await;
            nf.push(d.as_secs_f64() * 1e6 / NEW_FLOW_N as f64);
        }
        (median(ka), median(nf))
    })
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a current-thread Tokio runtime builds");
    let pooled = start(&rt, false);
    let per_request = start(&rt, true);
    for api in APIS {
        check_modes(&rt, &pooled, &per_request, api);
    }

    let mut g = c.benchmark_group("keep-alive");
    g.sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    for proto in [Proto::H1, Proto::H2] {
        for api in APIS {
            let mut s = rt.block_on(connect(pooled.addr(), proto));
            g.bench_function(BenchmarkId::new(proto.label(), api.name), |b| {
                b.iter_custom(|iters| rt.block_on(keep_alive(&mut s, api, iters)))
            });
        }
    }
    g.finish();

    let mut g = c.benchmark_group("new-flow");
    g.sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
    for proto in [Proto::H1, Proto::H2] {
        for api in APIS {
            g.bench_function(BenchmarkId::new(proto.label(), api.name), |b| {
                b.iter_custom(|iters| rt.block_on(new_flow(per_request.addr(), proto, api, iters)))
            });
        }
    }
    g.finish();

    println!();
    println!("Outbound round trip summary (median µs per request; keep-alive and new-flow alternated in this run)");
    println!("| api | front door | keep-alive µs | new-flow µs | new-flow ÷ keep-alive |");
    println!("|-----|------------|--------------:|------------:|----------------------:|");
    for proto in [Proto::H1, Proto::H2] {
        for api in APIS {
            let (ka, nf) = paired(&rt, &pooled, &per_request, proto, api);
            println!(
                "| {} | {} | {ka:.1} | {nf:.1} | {:.1}× |",
                api.name,
                proto.label(),
                nf / ka
            );
        }
    }
    rt.block_on(async {
        pooled.shutdown().await;
        per_request.shutdown().await;
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
