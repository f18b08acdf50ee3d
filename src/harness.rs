//! The test harness: start a simulated VNet with its gateway and backends on loopback from your
//! own `#[tokio::test]`, in the spirit of wiremock.
//!
//! ```
//! use vnetsim::harness::Simulation;
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // The embedded default topology; bind any host:port to your own loopback server with
//! // `.bind("orders", 443, addr)` (e.g. a wiremock MockServer), else built-in echoes answer.
//! let sim = Simulation::default_topology()?.start().await?;
//! let ok = sim.get("/orders/42").await?;
//! assert_eq!(ok.status, 200);
//! assert_eq!(ok.echo().unwrap().host, "orders"); // the private backend answered
//! let denied = sim.get("/legacy/ping").await?;
//! let problem = denied.problem().unwrap();
//! assert_eq!((problem.code.as_str(), problem.rule.as_deref()), ("NSG_DENIED", Some("securityRules/deny-legacy")));
//! assert_eq!(sim.echo_requests("legacy", 8080), Some(0)); // nothing reached it
//! sim.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! Dropping a [`Simulation`] only signals shutdown; `shutdown().await` also waits for it.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use gateway::StartOptions;
/// The gateway's answers the harness hands back: change reports, flows with what the rules in
/// force would decide for them now, NSGs, flushes, and whether a put created or replaced.
pub use gateway::{ChangeReport, FlowInfo, FlowNow, FlushReport, NsgInfo, RulePut};
use sim::{Built, Topology};

// === What a test crate needs, re-exported (no direct `sim`, `gateway` or `http` dependency) ===

mod rule;

/// The client's types: requests ([`Method`], [`Bytes`] bodies), responses ([`StatusCode`],
/// [`HeaderMap`]) and the gateway's problem+json bodies.
pub use crate::client::{Client, ClientError, Problem, Response};
pub use bytes::Bytes;
/// Limits and timeouts a test overrides ([`SimulationBuilder::limits`]), and why a change was
/// refused.
pub use gateway::{ChangeError, EchoInfo, GatewayHandle, LimitOverrides};
pub use http::{HeaderMap, HeaderValue, Method, StatusCode};
pub use rule::Rule;
/// A rule in the fixture's shape (what [`Rule`] builds) and the whole fixture ([`Simulation::modify`]).
pub use sim::fixture::{Fixture, RawRule};
/// Verdicts as `vnetsim check` explains them, and the words of a rule.
pub use sim::{Access, Direction, Protocol, RuleProtocol, Verdict, VerdictCode, VerdictKind};
/// Findings of a topology ([`SimulationBuilder::findings`]).
pub use sim::{Finding, FindingCode, Severity};

/// Faults on the backend leg and the request journal.
pub use gateway::{FaultError, FaultsInfo, JournalEntry, JournalPage};
pub use sim::{FaultKind, FaultRule};

// === end of re-exports ===

use crate::load::{load_path, load_str, LoadError, Loaded, TagSource};
use crate::query::{FlowQuery, QueryError};

/// The embedded default topology (`fixtures/default.toml`): what `vnetsim demo` runs.
pub const DEFAULT_FIXTURE: &str = include_str!("../fixtures/default.toml");

/// The embedded forced-tunnel hub and spoke (route table 0.0.0.0/0 → Azure Firewall), which
/// `vnetsim demo` also checks.
pub const FORCED_TUNNEL_FIXTURE: &str = include_str!("../fixtures/forced-tunnel.toml");

/// Why a simulation could not be set up or changed.
#[derive(Debug, thiserror::Error)]
pub enum HarnessError {
    /// The fixture could not be loaded.
    #[error(transparent)]
    Load(#[from] LoadError),
    /// The fixture has error findings (structural or preflight): nothing was started.
    #[error("{name} has error findings:\n{}", list(.findings))]
    Findings {
        /// The fixture's name.
        name: String,
        /// Every error finding.
        findings: Vec<Finding>,
    },
    /// The gateway did not start.
    #[error("starting the gateway: {0}")]
    Start(#[from] gateway::StartError),
    /// A change was refused; the running state is unchanged.
    #[error(transparent)]
    Change(#[from] ChangeError),
    /// A verdict lookup was malformed.
    #[error(transparent)]
    Query(#[from] QueryError),
    /// The TLS client configuration could not be built.
    #[error("TLS client configuration: {0}")]
    Tls(String),
    /// A fault rule was refused (every problem, each with its finding code).
    #[error(transparent)]
    Fault(#[from] gateway::FaultError),
}

fn list(findings: &[Finding]) -> String {
    findings
        .iter()
        .map(|f| format!("  {f}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// A topology loaded and ready to start; configure bindings and limits, then [`start`](Self::start).
#[must_use]
pub struct SimulationBuilder {
    loaded: Loaded,
    path: Option<PathBuf>,
    options: StartOptions,
    allow_preflight_errors: bool,
}

/// A running simulation: gateway, admin listener and backends on loopback.
pub struct Simulation {
    gateway: GatewayHandle,
    client: Client,
    name: String,
}

// === impl Simulation (constructors) ===

impl Simulation {
    /// Loads a fixture file (TOML, JSON or YAML by extension), or Azure inputs (an ARM template,
    /// exported resources, a folder of them; see [`crate::load::load_inputs`]).
    ///
    /// # Errors
    /// [`HarnessError::Load`] when it cannot be read or parsed.
    pub fn from_file(path: impl AsRef<Path>) -> Result<SimulationBuilder, HarnessError> {
        let path = path.as_ref();
        let loaded = load_path(path, &TagSource::Fixture)?;
        Ok(Simulation::from_loaded(loaded))
    }

    /// Loads a fixture file with a service tag table of your choice (`--service-tags FILE`).
    ///
    /// # Errors
    /// [`HarnessError::Load`] when the fixture or the tag file cannot be read or parsed.
    pub fn from_file_with_tags(
        path: impl AsRef<Path>,
        tags: &TagSource,
    ) -> Result<SimulationBuilder, HarnessError> {
        let path = path.as_ref();
        let loaded = load_path(path, tags)?;
        Ok(Simulation::from_loaded(loaded))
    }

    /// A topology already loaded (e.g. by [`crate::load::load_inputs`] from Azure inputs, with
    /// `--upstream` mappings applied). A fixture file's folder is where relative paths in it
    /// are read from, and what the gateway reloads.
    ///
    /// ```no_run
    /// use vnetsim::{harness::Simulation, load_inputs, LoadOptions};
    /// let loaded = load_inputs(&["fixtures/arm/apim-integration.json".into()], &LoadOptions::default())?;
    /// let builder = Simulation::from_loaded(loaded);
    /// # Ok::<(), vnetsim::LoadError>(())
    /// ```
    pub fn from_loaded(loaded: Loaded) -> SimulationBuilder {
        let path = loaded.fixture_path.clone();
        SimulationBuilder::new(loaded, path)
    }

    /// Loads a fixture from text; `name` chooses the syntax by extension (`x.json`) and appears
    /// in messages. Relative service tag files are read from the current directory.
    ///
    /// # Errors
    /// [`HarnessError::Load`] when it does not parse.
    pub fn from_str(name: &str, text: &str) -> Result<SimulationBuilder, HarnessError> {
        Ok(SimulationBuilder::new(
            load_str(name, text, None, &TagSource::Fixture)?,
            None,
        ))
    }

    /// The embedded default topology.
    ///
    /// # Errors
    /// Never in practice (the embedded fixture is tested); typed for uniformity.
    pub fn default_topology() -> Result<SimulationBuilder, HarnessError> {
        Simulation::from_str("fixtures/default.toml", DEFAULT_FIXTURE)
    }

    /// The embedded forced-tunnel topology.
    ///
    /// # Errors
    /// Never in practice (the embedded fixture is tested); typed for uniformity.
    pub fn forced_tunnel_topology() -> Result<SimulationBuilder, HarnessError> {
        Simulation::from_str("fixtures/forced-tunnel.toml", FORCED_TUNNEL_FIXTURE)
    }
}

// === impl SimulationBuilder ===

impl SimulationBuilder {
    fn new(loaded: Loaded, path: Option<PathBuf>) -> SimulationBuilder {
        let mut options = StartOptions::default().reload_with(Arc::new(loaded.recipe.clone()));
        if let Some(dir) = loaded.recipe.base_dir() {
            options = options.base_dir(dir);
        }
        SimulationBuilder {
            loaded,
            path,
            options,
            allow_preflight_errors: false,
        }
    }

    /// Every finding of the loaded topology.
    pub fn findings(&self) -> &[Finding] {
        self.loaded.findings()
    }

    /// The topology that will start.
    pub fn topology(&self) -> &Topology {
        self.loaded.topology()
    }

    /// Plays the topology's `host:port` with your own loopback server (e.g. a wiremock
    /// `MockServer`); `host` is a `[[hosts]]` name or one of its DNS names.
    pub fn bind(mut self, host: &str, port: u16, addr: SocketAddr) -> SimulationBuilder {
        self.options = self.options.upstream(host, port, addr);
        self
    }

    /// Plays the topology's `host:port` with your own loopback server speaking **plain HTTP**,
    /// even where the service says `tls = true` and the API's backend is `https://` (a wiremock
    /// `MockServer` has no HTTPS): the gateway dials it without TLS; flows, verdicts and NSG
    /// decisions are those of the topology as written.
    pub fn bind_plain(mut self, host: &str, port: u16, addr: SocketAddr) -> SimulationBuilder {
        self.options = self.options.upstream_plain(host, port, addr);
        self
    }

    /// Whether to start the built-in echo backends for `serve = "echo"` services (default yes).
    pub fn start_echo(mut self, yes: bool) -> SimulationBuilder {
        self.options.start_echo = yes;
        self
    }

    /// Overrides limits and timeouts (tests make them milliseconds).
    pub fn limits(mut self, limits: LimitOverrides) -> SimulationBuilder {
        self.options = self.options.limits(limits);
        self
    }

    /// Fixes the front door address (default: an ephemeral loopback port).
    pub fn listen(mut self, addr: SocketAddr) -> SimulationBuilder {
        self.options.listen = Some(addr);
        self
    }

    /// Fixes the admin listener address (default: an ephemeral loopback port).
    pub fn admin_listen(mut self, addr: SocketAddr) -> SimulationBuilder {
        self.options.admin_listen = Some(addr);
        self
    }

    /// Starts even when the APIM preflight reports errors (structural errors still refuse):
    /// useful to watch a misconfigured instance fail on the wire.
    pub fn allow_preflight_errors(mut self) -> SimulationBuilder {
        self.allow_preflight_errors = true;
        self.options.accept_preflight_errors = true;
        self
    }

    /// Starts the gateway, its admin listener and the echo backends.
    ///
    /// # Errors
    /// [`HarnessError::Findings`] when the topology has error findings (nothing is started),
    /// [`HarnessError::Start`] when a listener cannot be bound.
    pub async fn start(self) -> Result<Simulation, HarnessError> {
        let errors: Vec<Finding> = if self.allow_preflight_errors {
            self.loaded
                .structural_errors()
                .into_iter()
                .cloned()
                .collect()
        } else {
            self.loaded
                .findings()
                .iter()
                .filter(|f| f.is_error())
                .cloned()
                .collect()
        };
        if !errors.is_empty() {
            return Err(HarnessError::Findings {
                name: self.loaded.name.clone(),
                findings: errors,
            });
        }
        let name = self
            .path
            .as_ref()
            .map_or_else(|| self.loaded.name.clone(), |p| p.display().to_string());
        let hostname = self.loaded.topology().gateway().hostname.clone();
        let gateway = gateway::start(self.loaded.built, self.options).await?;
        let tls = if gateway.is_tls() {
            let config = rustls::ClientConfig::builder()
                .with_root_certificates(gateway.ca().root_store())
                .with_no_client_auth();
            Some(Arc::new(config))
        } else {
            None
        };
        let client = Client::new(gateway.addr(), hostname, tls);
        Ok(Simulation {
            gateway,
            client,
            name,
        })
    }
}

// === impl Simulation ===

impl Simulation {
    /// The fixture's name or path.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// `http://127.0.0.1:PORT` of the gateway (https when the front door speaks TLS).
    pub fn gateway_url(&self) -> String {
        self.gateway.url()
    }

    /// A client for the gateway (one connection per request).
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// `GET path` through the gateway.
    ///
    /// # Errors
    /// [`ClientError`] when no HTTP response arrived (gateway failures are responses).
    pub async fn get(&self, path: &str) -> Result<Response, ClientError> {
        self.client.get(path).await
    }

    /// The gateway handle (admin URL and token, metrics, reloads, ...).
    pub fn gateway(&self) -> &GatewayHandle {
        &self.gateway
    }

    /// The local CA certificate (PEM) that issued every TLS certificate of the simulation.
    pub fn ca_cert_pem(&self) -> &str {
        self.gateway.ca_pem()
    }

    /// Where the CA certificate is written.
    pub fn ca_cert_path(&self) -> &Path {
        self.gateway.ca_pem_path()
    }

    /// Replaces an NSG's custom rules live: new flows see them, established flows continue
    /// (unless the NSG has `flush_connection = true`). Rules not in `rules` are removed; the
    /// report's `rules` says which were created, replaced and removed.
    ///
    /// # Errors
    /// [`HarnessError::Change`] when refused (unknown NSG, error findings); nothing changes.
    pub fn set_nsg_rules(
        &self,
        nsg: &str,
        rules: &[RawRule],
    ) -> Result<ChangeReport, HarnessError> {
        Ok(self.gateway.set_nsg_rules(nsg, rules)?)
    }

    /// Adds one rule to an NSG's custom rules, live.
    ///
    /// # Errors
    /// As [`Simulation::set_nsg_rules`].
    pub fn add_security_rule(
        &self,
        nsg: &str,
        rule: impl Into<RawRule>,
    ) -> Result<ChangeReport, HarnessError> {
        let mut rules = self.current_rules(nsg);
        rules.push(rule.into());
        self.set_nsg_rules(nsg, &rules)
    }

    /// Adds one custom rule to an NSG, or replaces the rule of the same name in place (as
    /// `PUT /admin/nsgs/{nsg}/security_rules/{rule}`); the NSG's other rules stay. New flows
    /// see it; established flows continue unless the NSG has `flush_connection = true` (or
    /// until [`Simulation::flush_flows`]).
    ///
    /// ```
    /// use vnetsim::harness::{RulePut, Simulation};
    /// use sim::{fixture::RawRule, Access, Direction, RuleProtocol};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let sim = Simulation::default_topology()?.start().await?;
    /// let deny = RawRule::new("deny-orders", 120, Direction::Outbound, Access::Deny, RuleProtocol::Tcp, "10.0.2.4", "443");
    /// let (report, put) = sim.put_security_rule("nsg-apim", deny.clone())?;
    /// assert_eq!((put, report.rules.unwrap().created), (RulePut::Created, vec!["deny-orders".to_string()]));
    /// assert_eq!(sim.put_security_rule("nsg-apim", deny)?.1, RulePut::Replaced);
    /// assert_eq!(sim.get("/orders/1").await?.problem().unwrap().code, "NSG_DENIED");
    /// sim.delete_security_rule("nsg-apim", "deny-orders")?;
    /// assert_eq!(sim.get("/orders/1").await?.status, 200);
    /// sim.shutdown().await;
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`HarnessError::Change`] when refused (unknown NSG, a malformed rule, a default rule's
    /// name, error findings such as a priority already taken); nothing changes.
    pub fn put_security_rule(
        &self,
        nsg: &str,
        rule: impl Into<RawRule>,
    ) -> Result<(ChangeReport, RulePut), HarnessError> {
        Ok(self.gateway.put_security_rule(nsg, rule.into())?)
    }

    /// Removes one custom rule from an NSG, live (as
    /// `DELETE /admin/nsgs/{nsg}/security_rules/{rule}`).
    ///
    /// # Errors
    /// [`HarnessError::Change`] when refused: no such custom rule, a default rule's name
    /// (`AllowVnetOutBound`), an unknown NSG, or error findings; nothing changes.
    pub fn delete_security_rule(
        &self,
        nsg: &str,
        rule: &str,
    ) -> Result<ChangeReport, HarnessError> {
        Ok(self.gateway.delete_security_rule(nsg, rule)?)
    }

    /// One NSG in force: its name, `flush_connection` and custom rules (`None` when unknown).
    pub fn nsg(&self, name: &str) -> Option<NsgInfo> {
        self.gateway.nsg(name)
    }

    /// Every NSG in force.
    pub fn nsgs(&self) -> Vec<NsgInfo> {
        self.gateway.nsgs()
    }

    /// Ends the established flows (as `POST /admin/flows/flush`), so the next request opens a
    /// new flow that the rules in force decide: idle pooled connections close now, busy ones
    /// when their response ends.
    pub fn flush_flows(&self) -> FlushReport {
        self.gateway.flush_flows()
    }

    /// The custom rules of an NSG as they are in force (file shape), empty when unknown.
    pub fn current_rules(&self, nsg: &str) -> Vec<RawRule> {
        self.gateway.with_document(|_, d| {
            d.nsgs()
                .into_iter()
                .find(|(name, _, _)| name.eq_ignore_ascii_case(nsg))
                .map(|(_, _, rules)| rules)
                .unwrap_or_default()
        })
    }

    /// Changes the topology live by editing its fixture (e.g. turn integration off).
    ///
    /// # Errors
    /// [`HarnessError::Change`] when the result is refused; nothing changes.
    pub fn modify(&self, edit: impl FnOnce(&mut Fixture)) -> Result<ChangeReport, HarnessError> {
        let built: Built = self.gateway.with_document(|t, d| {
            let mut fixture = d.fixture().clone();
            edit(&mut fixture);
            Topology::build(&fixture, t.service_tags().clone())
        });
        Ok(self.gateway.reload(built)?)
    }

    /// The established flows (gateway → backend connections), the rules that allowed them, and
    /// what the rules in force would decide for each as a new flow ([`FlowInfo::now`]).
    pub fn flows(&self) -> Vec<FlowInfo> {
        self.gateway.flows()
    }

    /// The explained verdict of a flow in the topology in force, written as for `vnetsim check`
    /// (`"apim"`, a host name or an IP; `"host:port"` or `"[v6]:port"` for the destination).
    ///
    /// # Errors
    /// [`HarnessError::Query`] when the words do not name a flow of the topology.
    pub fn verdict(&self, from: &str, to: &str) -> Result<Verdict, HarnessError> {
        let q = FlowQuery::parse(from, to, None, None)?;
        Ok(self.gateway.with_topology(|t| q.explain(t))?)
    }

    /// Requests received so far by the built-in echo backend playing `host:port`.
    pub fn echo_requests(&self, host: &str, port: u16) -> Option<u64> {
        self.gateway
            .echo_servers()
            .into_iter()
            .find(|e| e.host.eq_ignore_ascii_case(host) && e.port == port)
            .map(|e| e.requests)
    }

    // === faults and the journal ===

    /// Adds a fault rule on the backend leg (checked like the fixture's `[faults]`; a rule of
    /// the same name is replaced). The guard removes it when dropped.
    ///
    /// ```
    /// use vnetsim::harness::{FaultKind, FaultRule, Simulation};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let sim = Simulation::default_topology()?.start().await?;
    /// {
    ///     let _reset = sim.add_fault(FaultRule::new("r", "orders:443", FaultKind::Reset))?;
    ///     let r = sim.get("/orders/1").await?;
    ///     assert_eq!((r.status.as_u16(), r.problem().unwrap().code.as_str()), (502, "BACKEND_RESET"));
    /// } // dropped: the fault is gone
    /// assert_eq!(sim.get("/orders/1").await?.status, 200);
    /// sim.expect_requests("orders", 2);
    /// sim.shutdown().await;
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`HarnessError::Fault`] with every problem of the rule.
    pub fn add_fault(&self, rule: FaultRule) -> Result<FaultGuard, HarnessError> {
        let name = rule.name.clone();
        let control = self.gateway.fault_control();
        control.add(&rule)?;
        Ok(FaultGuard { control, name })
    }

    /// Removes every fault rule.
    pub fn clear_faults(&self) {
        self.gateway.clear_faults();
    }

    /// The fault rules in force and their seed.
    pub fn faults(&self) -> FaultsInfo {
        self.gateway.faults()
    }

    /// Every request through the gateway so far, oldest first.
    pub fn journal(&self) -> JournalPage {
        self.gateway.journal()
    }

    /// The journal entries of the API `api` (case-insensitive), oldest first.
    pub fn requests_to(&self, api: &str) -> Vec<JournalEntry> {
        self.journal()
            .entries
            .into_iter()
            .filter(|e| {
                e.api
                    .as_deref()
                    .is_some_and(|a| a.eq_ignore_ascii_case(api))
            })
            .collect()
    }

    /// Asserts that exactly `n` requests went to the API `api`.
    ///
    /// # Panics
    /// When another number did, with the whole journal in the message.
    #[track_caller]
    pub fn expect_requests(&self, api: &str, n: usize) {
        let got = self.requests_to(api).len();
        if got != n {
            panic!(
                "expected {n} request(s) to API `{api}`, the journal has {got}:\n{}",
                journal_table(&self.journal())
            );
        }
    }

    /// Asserts that the journal's last entry for `api` carries the gateway code `code` (e.g.
    /// `BACKEND_RESET`) and returns it.
    ///
    /// # Panics
    /// When there is no such entry or its code differs, with the whole journal in the message.
    #[track_caller]
    pub fn expect_last_code(&self, api: &str, code: &str) -> JournalEntry {
        let last = self.requests_to(api).pop();
        match last {
            Some(e) if e.code.as_deref() == Some(code) => e,
            _ => panic!(
                "expected the last request to API `{api}` to end with {code}:\n{}",
                journal_table(&self.journal())
            ),
        }
    }

    /// Stops the gateway gracefully (in-flight requests finish) and every backend it started.
    pub async fn shutdown(self) {
        self.gateway.shutdown().await;
    }
}

// === impl Simulation (backend addresses) ===

impl Simulation {
    /// The loopback socket that plays `host:port` (a `[[hosts]]` name or one of its DNS names):
    /// your bound server, the service's `upstream`, or the built-in echo; `None` when nothing
    /// plays it.
    pub fn backend_addr(&self, host: &str, port: u16) -> Option<SocketAddr> {
        self.gateway.backend_addr(host, port)
    }

    /// The loopback socket that plays API `api`'s backend (by API name), as the gateway dials
    /// it; `None` for an unknown API or a backend nothing plays.
    pub fn api_backend_addr(&self, api: &str) -> Option<SocketAddr> {
        self.gateway.api_backend_addr(api)
    }

    /// The admin listener's URL (`http://127.0.0.1:PORT`); requests need
    /// `Authorization: Bearer {admin_token}`.
    pub fn admin_url(&self) -> String {
        self.gateway.admin_url()
    }

    /// The admin listener's bearer token.
    pub fn admin_token(&self) -> &str {
        self.gateway.admin_token()
    }

    /// Any request through the gateway, on a new connection.
    ///
    /// # Errors
    /// [`ClientError`] when no HTTP response arrived (gateway failures are responses).
    pub async fn request(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: impl Into<Bytes>,
    ) -> Result<Response, ClientError> {
        self.client
            .request(method, path, headers, body.into())
            .await
    }
}

/// A fault rule added by [`Simulation::add_fault`]; dropping it removes the rule.
#[must_use = "dropping the guard removes the fault at once"]
#[derive(Debug)]
pub struct FaultGuard {
    control: gateway::FaultControl,
    name: String,
}

impl FaultGuard {
    /// The rule's name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Drop for FaultGuard {
    fn drop(&mut self) {
        self.control.remove(&self.name);
    }
}

/// The journal as a table, one request a line (for assertion messages).
pub fn journal_table(page: &JournalPage) -> String {
    let mut out = format!(
        "{:24} {:10} {:6} {:11} {:16} {:8} {:>8} {:>9}  rule\n",
        "time", "api", "status", "verdict", "code", "fault", "bytes", "ms"
    );
    for e in &page.entries {
        out.push_str(&format!(
            "{:24} {:10} {:6} {:11} {:16} {:8} {:>8} {:>9.1}  {}\n",
            e.time,
            e.api.as_deref().unwrap_or("-"),
            e.status,
            e.verdict.as_deref().unwrap_or("-"),
            e.code.as_deref().unwrap_or("-"),
            e.fault.as_deref().unwrap_or("-"),
            e.bytes,
            e.duration_ms,
            e.rule.as_deref().unwrap_or("-"),
        ));
    }
    if page.entries.is_empty() {
        out.push_str("(no requests)\n");
    }
    if page.dropped > 0 {
        out.push_str(&format!("({} older entries dropped)\n", page.dropped));
    }
    out
}
