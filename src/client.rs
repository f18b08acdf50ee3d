//! A small HTTP(S) client for talking to a simulated gateway from tests: one connection per
//! request (so every request is independent), HTTP/1.1, TLS trusting the local CA when the front
//! door speaks HTTPS. Responses are read whole; problem+json bodies and the
//! `x-vnetsim-verdict` header have typed accessors.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use serde::de::DeserializeOwned;
use tokio::net::TcpStream;

/// Why a request got no HTTP response.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The TCP connection failed.
    #[error("connecting to {addr}: {source}")]
    Connect {
        /// The gateway socket.
        addr: SocketAddr,
        /// The cause.
        source: std::io::Error,
    },
    /// The TLS handshake failed.
    #[error("TLS handshake with {addr}: {source}")]
    Tls {
        /// The gateway socket.
        addr: SocketAddr,
        /// The cause.
        source: std::io::Error,
    },
    /// The request could not be built (bad path or header).
    #[error("building the request: {0}")]
    Request(String),
    /// The HTTP exchange failed.
    #[error("HTTP exchange with {addr}: {source}")]
    Http {
        /// The gateway socket.
        addr: SocketAddr,
        /// The cause.
        source: hyper::Error,
    },
    /// No response within the client's timeout.
    #[error("no response from {addr} within {timeout:?}")]
    Timeout {
        /// The gateway socket.
        addr: SocketAddr,
        /// The timeout.
        timeout: Duration,
    },
}

/// A whole HTTP response.
#[derive(Clone, Debug)]
pub struct Response {
    /// Status code.
    pub status: StatusCode,
    /// Headers.
    pub headers: HeaderMap,
    /// Body bytes.
    pub body: Bytes,
}

/// An `application/problem+json` body as the gateway writes it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
pub struct Problem {
    /// Problem type URI.
    #[serde(rename = "type")]
    pub kind: String,
    /// Short title.
    pub title: String,
    /// HTTP status.
    pub status: u16,
    /// Stable code (`NSG_DENIED`, `DNS_FAILURE`, ...).
    pub code: String,
    /// What happened.
    pub detail: String,
    /// NSG that decided (policy outcomes).
    #[serde(default)]
    pub nsg: Option<String>,
    /// Rule that decided (`securityRules/<name>`).
    #[serde(default)]
    pub rule: Option<String>,
    /// The rule's priority.
    #[serde(default)]
    pub priority: Option<u32>,
}

// === impl Response ===

impl Response {
    /// The body as text (lossy UTF-8).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as JSON.
    ///
    /// # Errors
    /// When the body is not that JSON.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_slice(&self.body)
    }

    /// The problem+json body, when the response is a gateway failure.
    pub fn problem(&self) -> Option<Problem> {
        let ct = self
            .headers
            .get(http::header::CONTENT_TYPE)?
            .to_str()
            .ok()?;
        ct.starts_with("application/problem+json")
            .then(|| self.json().ok())
            .flatten()
    }

    /// The echo backend's reply, when a built-in echo answered.
    pub fn echo(&self) -> Option<gateway::echo::EchoReply> {
        self.json().ok()
    }

    /// The `x-vnetsim-verdict` header (`Deny; code=NSG_DENIED; rule=securityRules/<name>`).
    pub fn verdict_header(&self) -> Option<&str> {
        self.headers.get("x-vnetsim-verdict")?.to_str().ok()
    }
}

/// A client bound to one gateway.
#[derive(Clone, Debug)]
pub struct Client {
    addr: SocketAddr,
    host: String,
    tls: Option<Arc<rustls::ClientConfig>>,
    timeout: Duration,
}

/// Default time a request may take before [`ClientError::Timeout`].
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

// === impl Client ===

impl Client {
    /// A client for the gateway at `addr`, sending `Host: host`; with `tls`, HTTPS trusting the
    /// given configuration's roots and verifying `host`.
    pub fn new(
        addr: SocketAddr,
        host: impl Into<String>,
        tls: Option<Arc<rustls::ClientConfig>>,
    ) -> Client {
        Client {
            addr,
            host: host.into(),
            tls,
            timeout: DEFAULT_TIMEOUT,
        }
    }

    /// The same client with another request timeout.
    pub fn with_timeout(mut self, timeout: Duration) -> Client {
        self.timeout = timeout;
        self
    }

    /// `GET path`.
    ///
    /// # Errors
    /// [`ClientError`] when no HTTP response arrived.
    pub async fn get(&self, path: &str) -> Result<Response, ClientError> {
        self.request(Method::GET, path, &[], Bytes::new()).await
    }

    /// Any request, on a new connection.
    ///
    /// # Errors
    /// [`ClientError`] when no HTTP response arrived.
    pub async fn request(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Bytes,
    ) -> Result<Response, ClientError> {
        let fut = self.exchange(method, path, headers, body);
        match tokio::time::timeout(self.timeout, fut).await {
            Ok(r) => r,
            Err(_) => Err(ClientError::Timeout {
                addr: self.addr,
                timeout: self.timeout,
            }),
        }
    }

    async fn exchange(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Bytes,
    ) -> Result<Response, ClientError> {
        let addr = self.addr;
        let mut req = http::Request::builder()
            .method(method)
            .uri(path)
            .header(http::header::HOST, &self.host);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let req = req
            .body(Full::new(body))
            .map_err(|e| ClientError::Request(e.to_string()))?;
        let tcp = TcpStream::connect(addr)
            .await
            .map_err(|source| ClientError::Connect { addr, source })?;
        let _ = tcp.set_nodelay(true);
        let resp = match &self.tls {
            None => {
                let (mut s, conn) = http1::handshake(TokioIo::new(tcp))
                    .await
                    .map_err(|source| ClientError::Http { addr, source })?;
                tokio::spawn(conn);
                s.send_request(req)
                    .await
                    .map_err(|source| ClientError::Http { addr, source })?
            }
            Some(cfg) => {
                let name = ServerName::try_from(self.host.clone()).map_err(|e| {
                    ClientError::Request(format!("TLS server name `{}`: {e}", self.host))
                })?;
                let tls = tokio_rustls::TlsConnector::from(cfg.clone())
                    .connect(name, tcp)
                    .await
                    .map_err(|source| ClientError::Tls { addr, source })?;
                let (mut s, conn) = http1::handshake(TokioIo::new(tls))
                    .await
                    .map_err(|source| ClientError::Http { addr, source })?;
                tokio::spawn(conn);
                s.send_request(req)
                    .await
                    .map_err(|source| ClientError::Http { addr, source })?
            }
        };
        let (parts, body) = resp.into_parts();
        let body = body
            .collect()
            .await
            .map_err(|source| ClientError::Http { addr, source })?
            .to_bytes();
        Ok(Response {
            status: parts.status,
            headers: parts.headers,
            body,
        })
    }
}
