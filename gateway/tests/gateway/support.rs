//! Test support: the topology builder, starting a gateway with tiny limits, a small HTTP client
//! (HTTP/1.1, h2c, TLS with ALPN), raw sockets, and misbehaving backends.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use gateway::tls::{server_config, IssuedCert, LocalCa};
use gateway::{GatewayHandle, LimitOverrides, StartOptions};
use http::{HeaderMap, Request};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::Value;
use sim::fixture::{Fixture, Format};
use sim::{Built, ServiceTagTable, Topology};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::{TlsAcceptor, TlsConnector};

/// The gateway host name of the test topology.
pub const GATEWAY_HOST: &str = "apim-contoso.azure-api.net";

/// One security rule in fixture TOML.
pub fn rule(
    name: &str,
    priority: u32,
    direction: &str,
    access: &str,
    source: &str,
    destination: &str,
    port: &str,
) -> String {
    format!(
        r#"
  [[nsgs.security_rules]]
  name = "{name}"
  priority = {priority}
  direction = "{direction}"
  access = "{access}"
  protocol = "Tcp"
  source_address_prefix = "{source}"
  source_port_range = "*"
  destination_address_prefix = "{destination}"
  destination_port_range = "{port}"
"#
    )
}

/// `securityRules/deny-payments-out` (priority 100) for the integration subnet's NSG: the
/// payments backend (20.50.1.10:80) denied outbound. Arguments of [`rule`] / [`rule_json`].
const DENY_PAYMENTS_OUT: (&str, u32, &str, &str, &str, &str, &str) = (
    "deny-payments-out",
    100,
    "Outbound",
    "Deny",
    "*",
    "20.50.1.10",
    "80",
);

/// [`DENY_PAYMENTS_OUT`] as fixture TOML.
pub fn deny_payments_out() -> String {
    let (n, p, d, a, s, t, port) = DENY_PAYMENTS_OUT;
    rule(n, p, d, a, s, t, port)
}

/// [`DENY_PAYMENTS_OUT`] as JSON (the admin API's shape).
pub fn deny_payments_out_json() -> Value {
    let (n, p, d, a, s, t, port) = DENY_PAYMENTS_OUT;
    rule_json(n, p, d, a, s, t, port)
}

/// The same rule as JSON (the admin API's shape).
pub fn rule_json(
    name: &str,
    priority: u32,
    direction: &str,
    access: &str,
    source: &str,
    destination: &str,
    port: &str,
) -> Value {
    serde_json::json!({
        "name": name, "priority": priority, "direction": direction, "access": access,
        "protocol": "Tcp", "source_address_prefix": source, "source_port_range": "*",
        "destination_address_prefix": destination, "destination_port_range": port,
    })
}

/// The example topology of the gateway issue, with knobs for each scenario.
#[derive(Clone, Debug)]
pub struct Topo {
    /// Custom rules of nsg-apim (on the integration subnet), as TOML.
    pub apim_rules: String,
    /// Custom rules of nsg-backend (on the backend subnet), as TOML.
    pub backend_rules: String,
    /// `flush_connection` of nsg-apim.
    pub flush_apim: bool,
    /// Whether the instance is integrated with vnet-app.
    pub integrated: bool,
    /// Put the backend subnet in its own peered VNet `vnet-backend` (10.1.0.0/16) instead.
    pub split_vnets: bool,
    /// VNets linked to the private zone `internal.contoso.com`.
    pub zone_links: Vec<&'static str>,
    /// Extra lines for `[gateway]`.
    pub gateway_extra: String,
}

impl Default for Topo {
    fn default() -> Self {
        Topo {
            apim_rules: String::new(),
            backend_rules: String::new(),
            flush_apim: false,
            integrated: true,
            split_vnets: false,
            zone_links: vec!["vnet-app"],
            gateway_extra: String::new(),
        }
    }
}

impl Topo {
    /// The backend subnet's prefix and the orders host address.
    pub fn orders_addr(&self) -> &'static str {
        if self.split_vnets {
            "10.1.2.4"
        } else {
            "10.0.2.4"
        }
    }

    /// The fixture text.
    pub fn toml(&self) -> String {
        let backend_subnet_prefix = if self.split_vnets {
            "10.1.2.0/24"
        } else {
            "10.0.2.0/24"
        };
        let backend_subnet = format!(
            r#"
  [[vnets.subnets]]
  name = "snet-backend"
  address_prefix = "{backend_subnet_prefix}"
  nsg = "nsg-backend"
"#
        );
        let vnets = if self.split_vnets {
            format!(
                r#"
[[vnets]]
name = "vnet-app"
region = "westeurope"
address_space = ["10.0.0.0/16"]
peerings = ["vnet-backend"]

  [[vnets.subnets]]
  name = "snet-apim"
  address_prefix = "10.0.1.0/24"
  delegations = ["Microsoft.Web/serverFarms"]
  nsg = "nsg-apim"

[[vnets]]
name = "vnet-backend"
region = "westeurope"
address_space = ["10.1.0.0/16"]
peerings = ["vnet-app"]
{backend_subnet}
"#
            )
        } else {
            format!(
                r#"
[[vnets]]
name = "vnet-app"
region = "westeurope"
address_space = ["10.0.0.0/16"]

  [[vnets.subnets]]
  name = "snet-apim"
  address_prefix = "10.0.1.0/24"
  delegations = ["Microsoft.Web/serverFarms"]
  nsg = "nsg-apim"
{backend_subnet}
"#
            )
        };
        let apim_network = if self.integrated {
            "virtual_network = \"integration\"\nsubnet = \"vnet-app/snet-apim\""
        } else {
            "virtual_network = \"none\""
        };
        let links = self
            .zone_links
            .iter()
            .map(|l| format!("\"{l}\""))
            .collect::<Vec<_>>()
            .join(", ");
        format!(
            r#"
{vnets}

[[nsgs]]
name = "nsg-apim"
flush_connection = {flush}
{apim_rules}

[[nsgs]]
name = "nsg-backend"
{backend_rules}

[[private_dns_zones]]
name = "internal.contoso.com"
links = [{links}]

[[hosts]]
name = "orders"
address = "{orders}"
dns = ["orders.internal.contoso.com"]

  [[hosts.services]]
  port = 443
  tls = true
  serve = "echo"

[[hosts]]
name = "payments"
address = "20.50.1.10"
dns = ["api.payments.example"]

  [[hosts.services]]
  port = 80
  serve = "echo"

[apim]
name = "apim-contoso"
sku = "StandardV2"
region = "westeurope"
{apim_network}

[gateway]
hostname = "{GATEWAY_HOST}"
{gateway_extra}

[[apis]]
name = "orders"
path = "/orders"
backend = "https://orders.internal.contoso.com/v1"

[[apis]]
name = "payments"
path = "/payments"
backend = "http://api.payments.example"
"#,
            flush = self.flush_apim,
            apim_rules = self.apim_rules,
            backend_rules = self.backend_rules,
            orders = self.orders_addr(),
            gateway_extra = self.gateway_extra,
        )
    }

    /// The built topology.
    pub fn built(&self) -> Built {
        built(&self.toml())
    }
}

/// Parses and builds fixture text; panics on load errors (tests write valid TOML).
pub fn built(toml: &str) -> Built {
    let f = Fixture::parse(toml, Format::Toml).unwrap_or_else(|e| panic!("{e}\n{toml}"));
    Topology::build(&f, ServiceTagTable::builtin())
}

/// Tiny limits so failure tests run in milliseconds.
pub fn fast_limits() -> LimitOverrides {
    LimitOverrides {
        header_read_timeout: Some(Duration::from_millis(300)),
        body_read_timeout: Some(Duration::from_millis(400)),
        connect_timeout: Some(Duration::from_millis(300)),
        response_timeout: Some(Duration::from_millis(1500)),
        shutdown_grace: Some(Duration::from_millis(2000)),
        ..LimitOverrides::default()
    }
}

/// A stand-in for the owner's loader (the gateway reads no files itself): a bodiless reload
/// reads `file` as TOML; a body is parsed as JSON, YAML or TOML by its media type.
pub struct TestReload {
    /// The file a bodiless reload reads.
    pub file: Option<std::path::PathBuf>,
}

impl gateway::Reload for TestReload {
    fn reload(&self, body: Option<&gateway::ReloadBody>) -> Result<Built, gateway::ReloadError> {
        let (text, format) = match body {
            Some(b) => {
                let format = match b.media_type.as_deref().unwrap_or("") {
                    m if m.contains("json") => Format::Json,
                    m if m.contains("yaml") => Format::Yaml,
                    _ => Format::Toml,
                };
                (b.text.clone(), format)
            }
            None => {
                let file = self
                    .file
                    .as_ref()
                    .ok_or_else(|| gateway::ReloadError::NoInputs("no fixture file".into()))?;
                let text = std::fs::read_to_string(file)
                    .map_err(|e| gateway::ReloadError::Unreadable(e.to_string()))?;
                (text, Format::Toml)
            }
        };
        let f = Fixture::parse(&text, format)
            .map_err(|e| gateway::ReloadError::Invalid(e.to_string()))?;
        Ok(Topology::build(&f, ServiceTagTable::builtin()))
    }
}

/// Options with [`fast_limits`], and [`TestReload`] for reload bodies.
pub fn opts() -> StartOptions {
    StartOptions::default()
        .limits(fast_limits())
        .reload_with(std::sync::Arc::new(TestReload { file: None }))
}

/// Starts a gateway for `topo` with `opts`, asserting the topology is usable (APIM preflight
/// errors are accepted: these tests watch misconfigured instances fail on the wire).
pub async fn start(topo: &Topo, mut opts: StartOptions) -> GatewayHandle {
    let b = topo.built();
    let errors = b.structural_errors();
    assert!(errors.is_empty(), "fixture has errors: {errors:#?}");
    opts.accept_preflight_errors = b.has_errors();
    gateway::start(b, opts).await.expect("gateway starts")
}

/// A response, fully read.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Bytes,
    pub version: http::Version,
}

impl Resp {
    /// The body as JSON.
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "not JSON ({e}): {} {:?}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    /// The problem document's `code`, checking the media type.
    pub fn code(&self) -> String {
        assert_eq!(
            self.headers
                .get("content-type")
                .map(|v| v.to_str().unwrap()),
            Some("application/problem+json"),
            "status {} body {:?}",
            self.status,
            String::from_utf8_lossy(&self.body)
        );
        self.json()["code"].as_str().unwrap_or_default().to_string()
    }

    /// A header as a string.
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .map(|v| v.to_str().unwrap().to_string())
    }
}

async fn collect(resp: http::Response<hyper::body::Incoming>) -> Resp {
    let (parts, body) = resp.into_parts();
    let body = body.collect().await.expect("response body").to_bytes();
    Resp {
        status: parts.status.as_u16(),
        headers: parts.headers,
        body,
        version: parts.version,
    }
}

async fn send_h1<I>(io: I, req: Request<Full<Bytes>>) -> Resp
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .expect("h1 handshake");
    tokio::spawn(conn);
    collect(sender.send_request(req).await.expect("h1 response")).await
}

async fn send_h2<I>(io: I, req: Request<Full<Bytes>>) -> Resp
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(io))
            .await
            .expect("h2 handshake");
    tokio::spawn(conn);
    collect(sender.send_request(req).await.expect("h2 response")).await
}

/// A request for `path` with the gateway's host name.
pub fn req(method: &str, path: &str) -> Request<Full<Bytes>> {
    Request::builder()
        .method(method)
        .uri(path)
        .header("host", GATEWAY_HOST)
        .body(Full::new(Bytes::new()))
        .unwrap()
}

/// Sends `req` over a new HTTP/1.1 connection to `addr`.
pub async fn send(addr: SocketAddr, req: Request<Full<Bytes>>) -> Resp {
    let tcp = TcpStream::connect(addr).await.expect("connect");
    send_h1(tcp, req).await
}

/// `GET path` over a new HTTP/1.1 connection.
pub async fn get(gw: &GatewayHandle, path: &str) -> Resp {
    send(gw.addr(), req("GET", path)).await
}

/// `GET path` over HTTP/2 with prior knowledge (h2c).
pub async fn get_h2c(gw: &GatewayHandle, path: &str) -> Resp {
    let tcp = TcpStream::connect(gw.addr()).await.expect("connect");
    let r = Request::builder()
        .uri(format!("http://{GATEWAY_HOST}{path}"))
        .body(Full::new(Bytes::new()))
        .unwrap();
    send_h2(tcp, r).await
}

/// `GET path` over TLS, trusting `ca`, offering `alpn` (`h2` or `http/1.1`).
pub async fn get_tls(gw: &GatewayHandle, ca: &LocalCa, alpn: &[u8], path: &str) -> Resp {
    let cfg = ca.client_config(&[], &[alpn]).unwrap();
    let tcp = TcpStream::connect(gw.addr()).await.expect("connect");
    let name = rustls_pki_types::ServerName::try_from(GATEWAY_HOST).unwrap();
    let tls = TlsConnector::from(cfg)
        .connect(name, tcp)
        .await
        .expect("TLS to the front door");
    let negotiated_h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2");
    assert_eq!(negotiated_h2, alpn == b"h2", "ALPN");
    if negotiated_h2 {
        let r = Request::builder()
            .uri(format!("https://{GATEWAY_HOST}{path}"))
            .body(Full::new(Bytes::new()))
            .unwrap();
        send_h2(tls, r).await
    } else {
        send_h1(tls, req("GET", path)).await
    }
}

/// Writes `bytes` on a new connection and reads until EOF (or `limit`), returning the text.
pub async fn raw(addr: SocketAddr, bytes: &[u8], limit: Duration) -> String {
    let mut tcp = TcpStream::connect(addr).await.expect("connect");
    tcp.write_all(bytes).await.expect("write");
    let mut out = Vec::new();
    let _ = tokio::time::timeout(limit, tcp.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

/// An admin request with an optional bearer token and body.
pub async fn admin(
    gw: &GatewayHandle,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<String>,
) -> Resp {
    let mut b = Request::builder()
        .method(method)
        .uri(path)
        .header("host", "admin");
    if let Some(t) = token {
        b = b.header("authorization", format!("Bearer {t}"));
    }
    let body = body.map(Bytes::from).unwrap_or_default();
    send(gw.admin_addr(), b.body(Full::new(body)).unwrap()).await
}

/// Requests received so far by the echo backend playing `host`.
pub fn echo_requests(gw: &GatewayHandle, host: &str) -> u64 {
    gw.echo_servers()
        .iter()
        .filter(|e| e.host == host)
        .map(|e| e.requests)
        .sum()
}

/// A TLS terminator presenting `cert` in front of the plain-HTTP server at `target`.
pub async fn tls_terminator(cert: &IssuedCert, target: SocketAddr) -> SocketAddr {
    let acceptor = TlsAcceptor::from(server_config(cert, &[b"http/1.1"]).unwrap());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let Ok(mut up) = TcpStream::connect(target).await else {
                    return;
                };
                let _ = tokio::io::copy_bidirectional(&mut tls, &mut up).await;
            });
        }
    });
    addr
}

/// A socket that is bound but never listens: connecting to it is refused.
pub fn refusing_socket() -> (socket2::Socket, SocketAddr) {
    let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    s.bind(&"127.0.0.1:0".parse::<SocketAddr>().unwrap().into())
        .unwrap();
    let addr = s.local_addr().unwrap().as_socket().unwrap();
    (s, addr)
}

/// A server that reads the request and resets the connection (`SO_LINGER` 0).
pub async fn resetting_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut tcp, _)) = listener.accept().await else {
                return;
            };
            let mut buf = [0u8; 1024];
            let _ = tcp.read(&mut buf).await;
            let _ = socket2::SockRef::from(&tcp).set_linger(Some(Duration::ZERO));
            drop(tcp);
        }
    });
    addr
}

/// A server that accepts and never answers.
pub async fn silent_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            held.push(tcp);
        }
    });
    addr
}

/// Polls `cond` every few ms until it holds (at most 5 s).
pub async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    for _ in 0..1000 {
        if cond() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("timed out waiting for {what}");
}

/// Waits until the mock server has received `n` requests.
pub async fn received(mock: &wiremock::MockServer, n: usize) {
    for _ in 0..1000 {
        if mock.received_requests().await.map_or(0, |r| r.len()) >= n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("the mock did not receive {n} requests");
}

/// A CA shared by a test and its gateway.
pub fn ca() -> Arc<LocalCa> {
    Arc::new(LocalCa::new().unwrap())
}
