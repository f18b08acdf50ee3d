//! How a gateway is started: [`StartOptions`] (listeners, upstream overrides, limits, the CA,
//! the owner's reload hook), the bench-only [`BenchKnobs`], and why a start fails.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use rustls_pki_types::CertificateDer;

use crate::config::LimitOverrides;
use crate::reload::{Reload, ReloadHook};
use crate::state::ChangeError;
use crate::tls::{self, LocalCa};

/// Maps one simulated `host:port` to a real socket that plays it (e.g. a wiremock server).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UpstreamOverride {
    /// A `[[hosts]]` name or one of its DNS names (case-insensitive).
    pub host: String,
    /// The service port on that host.
    pub port: u16,
    /// The socket to dial (loopback unless `allow_non_loopback_upstreams`).
    pub addr: SocketAddr,
    /// Dial it in plain HTTP even when the backend URL is `https://` and the service says
    /// `tls = true` (a test double such as wiremock, which has no HTTPS).
    pub plain: bool,
}

/// How to start a gateway. `Default` starts the built-in echo backends and takes everything
/// else from the fixture.
#[derive(Clone, Debug)]
pub struct StartOptions {
    /// Front door address (overrides `[gateway] listen`; default `127.0.0.1:0`).
    pub listen: Option<SocketAddr>,
    /// Admin address (overrides `[gateway] admin_listen`; default `127.0.0.1:0`).
    pub admin_listen: Option<SocketAddr>,
    /// Admin bearer token (overrides `[gateway] admin_token`; default random per start).
    pub admin_token: Option<String>,
    /// Sockets that play simulated `host:port`s; they win over `upstream` and `serve`.
    pub upstreams: Vec<UpstreamOverride>,
    /// Start a built-in echo backend for each `serve = "echo"` service (default true).
    pub start_echo: bool,
    /// The owner's loader: what a `POST /admin/reload` runs again (see [`reload`]); without
    /// one, a reload is refused (`400 NO_FIXTURE_PATH`).
    pub reload: Option<ReloadHook>,
    /// The folder relative paths of the topology (`[gateway] tls_cert`, `tls_key`) are read
    /// from (default: the current directory).
    pub base_dir: Option<PathBuf>,
    /// Start with, and apply changes to, topologies whose only error findings are the APIM
    /// preflight's (default false: any error finding refuses the start and every change, as
    /// `vnetsim up` refuses to start with them).
    pub accept_preflight_errors: bool,
    /// Limits that override the fixture's `[gateway]` values.
    pub limits: LimitOverrides,
    /// The CA to use (default: a new one). Pass one to issue certificates for your own TLS
    /// backends before starting.
    pub ca: Option<Arc<LocalCa>>,
    /// Extra roots trusted for upstream TLS, besides the local CA.
    pub extra_roots: Vec<CertificateDer<'static>>,
    /// Where to write the CA certificate (default: a fresh directory under the temp dir).
    pub ca_pem_path: Option<PathBuf>,
    /// Bench-only switches (all off by default); see [`BenchKnobs`]. Only with the `bench`
    /// cargo feature (which `vnetsim bench` enables).
    #[cfg(feature = "bench")]
    pub bench: BenchKnobs,
}

/// **Bench-only** switches (public with the `bench` cargo feature) that `vnetsim bench` uses to isolate the cost of the per-flow policy
/// check. All are off by default, and a real deployment never turns them on: connections to
/// the `unchecked_listen` front door are not held to the NSG verdicts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BenchKnobs {
    /// Close each upstream connection after one response instead of pooling it, so every
    /// request opens (and asks `sim` about) a new flow.
    pub upstream_per_request: bool,
    /// A second front door (loopback) whose connections admit new flows **without asking
    /// `sim`** (no verdict, no flow-verdict metric, no NSG hops on the flow), while the main
    /// front door keeps checking: the same process
    /// measured with and without its policy check ([`GatewayHandle::bench_unchecked_addr`]).
    /// Both front doors share the upstream pools, so pair it with `upstream_per_request`.
    pub unchecked_listen: Option<SocketAddr>,
}

impl Default for StartOptions {
    fn default() -> Self {
        StartOptions {
            listen: None,
            admin_listen: None,
            admin_token: None,
            upstreams: Vec::new(),
            start_echo: true,
            reload: None,
            base_dir: None,
            accept_preflight_errors: false,
            limits: LimitOverrides::default(),
            ca: None,
            extra_roots: Vec::new(),
            ca_pem_path: None,
            #[cfg(feature = "bench")]
            bench: BenchKnobs::default(),
        }
    }
}

// === impl StartOptions ===

impl StartOptions {
    /// Adds an upstream override: `host:port` of the topology is played by `addr`.
    pub fn upstream(mut self, host: &str, port: u16, addr: SocketAddr) -> Self {
        self.upstreams.push(UpstreamOverride {
            host: host.to_string(),
            port,
            addr,
            plain: false,
        });
        self
    }

    /// Adds an upstream override dialled in plain HTTP whatever the service's `tls` says.
    pub fn upstream_plain(mut self, host: &str, port: u16, addr: SocketAddr) -> Self {
        self.upstreams.push(UpstreamOverride {
            host: host.to_string(),
            port,
            addr,
            plain: true,
        });
        self
    }

    /// The owner's loader, run again by `POST /admin/reload`.
    pub fn reload_with(mut self, hook: Arc<dyn Reload>) -> Self {
        self.reload = Some(ReloadHook(hook));
        self
    }

    /// The folder relative paths of the topology are read from.
    pub fn base_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.base_dir = Some(dir.into());
        self
    }

    /// Sets the limit overrides.
    pub fn limits(mut self, limits: LimitOverrides) -> Self {
        self.limits = limits;
        self
    }

    /// Uses `ca` as the local CA.
    pub fn ca(mut self, ca: Arc<LocalCa>) -> Self {
        self.ca = Some(ca);
        self
    }

    /// Sets the admin token.
    pub fn admin_token(mut self, token: impl Into<String>) -> Self {
        self.admin_token = Some(token.into());
        self
    }
}

/// Why the gateway did not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// `start` was not called inside a Tokio runtime.
    #[error("gateway::start must run inside a Tokio runtime")]
    NoRuntime,
    /// The topology was refused (error findings, non-loopback upstream, ...).
    #[error("the topology was refused: {0}")]
    Refused(#[from] ChangeError),
    /// A listen address is not valid or not loopback.
    #[error("{what} `{addr}`: {reason}")]
    Listen {
        /// `listen` or `admin_listen`.
        what: &'static str,
        /// The address as given.
        addr: String,
        /// What is wrong.
        reason: String,
    },
    /// A listener could not be bound.
    #[error("binding {what} {addr}: {source}")]
    Bind {
        /// `listen` or `admin_listen`.
        what: &'static str,
        /// The address.
        addr: SocketAddr,
        /// The cause.
        source: std::io::Error,
    },
    /// An upstream override names no `host:port` of the topology.
    #[error("upstream override {host}:{port}: no [[hosts]] entry named `{host}` (or with that DNS name) has a service on port {port}")]
    UnknownUpstream {
        /// The host as given.
        host: String,
        /// The port.
        port: u16,
    },
    /// The CA or a TLS configuration could not be made.
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    /// The random admin token could not be generated.
    #[error("generating the admin token: {0}")]
    Random(rustls::Error),
}

impl StartOptions {
    /// The bench knobs in force (all off without the `bench` feature).
    pub(crate) fn bench_knobs(&self) -> BenchKnobs {
        #[cfg(feature = "bench")]
        return self.bench;
        #[cfg(not(feature = "bench"))]
        BenchKnobs::default()
    }
}
