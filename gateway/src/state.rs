//! Gateway-wide state: the snapshot in force, changes to it (serialized, each refused whole
//! when the new topology has error findings), and the client connection cap. Rule changes are
//! typed [`sim::Change`]s that `sim` applies; the gateway only swaps in the result.

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use serde::Serialize;
use sim::{Built, Document, Fate, Finding, RawRule, RuleChanges, Topology};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::flows::FlowEntry;
use crate::lock;
use crate::policy::PolicyState;
use crate::reload::{ReloadBody, ReloadError};
use crate::resources::Resources;
use crate::tls::TlsError;

/// Why a change (a reload or a rule replacement) was refused; the running state is unchanged.
#[derive(Debug, thiserror::Error)]
pub enum ChangeError {
    /// The new topology has error findings.
    #[error("the change has {} error finding(s); nothing was applied", .findings.iter().filter(|f| f.is_error()).count())]
    Invalid {
        /// Every finding of the refused topology (errors first).
        findings: Vec<Finding>,
    },
    /// No NSG has that name.
    #[error("no NSG named `{0}`")]
    UnknownNsg(String),
    /// A rule does not have the fixture shape (a missing direction, two address forms, ...).
    #[error("{0}")]
    InvalidRules(String),
    /// The NSG has no custom rule of that name.
    #[error("NSG `{nsg}` has no custom rule named `{name}`")]
    UnknownRule {
        /// The NSG.
        nsg: String,
        /// The rule name asked for.
        name: String,
    },
    /// A single-rule change named one of Azure's default rules, which cannot be changed or
    /// deleted.
    #[error("`{name}` is a default rule of NSG `{nsg}`; default rules cannot be changed or deleted (override one with a custom rule of a lower priority number)")]
    DefaultRule {
        /// The NSG.
        nsg: String,
        /// The rule name asked for.
        name: String,
    },
    /// The owner's loader could not produce a topology (bad input, an unreadable file, or no
    /// reload hook given at start).
    #[error(transparent)]
    Load(#[from] ReloadError),
    /// A socket that plays a backend is not loopback.
    #[error("host `{host}` port {port} maps to {target}, which is not a loopback address (set `allow_non_loopback_upstreams = true` to allow it)")]
    NotLoopback {
        /// The `[[hosts]]` name.
        host: String,
        /// The service port.
        port: u16,
        /// The socket.
        target: SocketAddr,
    },
    /// A built-in echo backend could not start.
    #[error("starting the echo backend for `{host}` port {port}: {source}")]
    Echo {
        /// The `[[hosts]]` name.
        host: String,
        /// The service port.
        port: u16,
        /// The cause.
        source: io::Error,
    },
    /// A certificate could not be issued or loaded.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// An API's backend cannot be used as a `Host` header or TLS name.
    #[error("API `{api}`: {reason}")]
    Backend {
        /// The API.
        api: String,
        /// What is wrong.
        reason: String,
    },
}

impl ChangeError {
    /// The gateway's error for a change `sim` refused.
    fn from_sim(e: sim::ChangeError) -> ChangeError {
        match e {
            sim::ChangeError::UnknownNsg(n) => ChangeError::UnknownNsg(n),
            e @ sim::ChangeError::InvalidRule { .. } => ChangeError::InvalidRules(e.to_string()),
            sim::ChangeError::UnknownRule { nsg, name } => ChangeError::UnknownRule { nsg, name },
            sim::ChangeError::DefaultRule { nsg, name } => ChangeError::DefaultRule { nsg, name },
        }
    }

    /// The findings of a refused topology (empty for other refusals).
    pub fn findings(&self) -> &[Finding] {
        match self {
            ChangeError::Invalid { findings } => findings,
            _ => &[],
        }
    }
}

/// What an accepted change did.
#[derive(Clone, Debug, Serialize)]
pub struct ChangeReport {
    /// The new policy generation (1 at start, +1 per change).
    pub generation: u64,
    /// Every finding of the new topology (warnings, and APIM preflight errors, do not block).
    pub findings: Vec<Finding>,
    /// Established flows re-evaluated.
    pub flows_checked: usize,
    /// Established flows cut by `flush_connection`.
    pub flows_cut: usize,
    /// For a rule change, the custom rules it created, replaced and removed, by name
    /// (serialized beside the fields above: `"created"`, `"replaced"`, `"removed"`); `None`
    /// for a reload.
    #[serde(flatten)]
    pub rules: Option<RuleChanges>,
}

/// One NSG as `GET /admin/nsgs/{nsg}` and [`crate::GatewayHandle::nsg`] show it, from the
/// topology in force.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct NsgInfo {
    /// The NSG's name.
    pub name: String,
    /// Whether a rule change cuts the established flows it now denies.
    pub flush_connection: bool,
    /// The custom rules in the fixture's shape (the six default rules are implied).
    pub security_rules: Vec<RawRule>,
}

impl NsgInfo {
    /// Every NSG of the document in force, in fixture order.
    pub(crate) fn all(document: &Document) -> Vec<NsgInfo> {
        document
            .nsgs()
            .into_iter()
            .map(|(name, flush_connection, security_rules)| NsgInfo {
                name,
                flush_connection,
                security_rules,
            })
            .collect()
    }

    /// The NSG named `name` (case-insensitive) in the document in force.
    pub(crate) fn named(document: &Document, name: &str) -> Option<NsgInfo> {
        NsgInfo::all(document)
            .into_iter()
            .find(|n| n.name.eq_ignore_ascii_case(name.trim()))
    }
}

/// What a single-rule put did: the NSG had no rule of that name, or had one and it was
/// replaced (`PUT /admin/nsgs/{nsg}/security_rules/{rule}` answers 201 or 200).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RulePut {
    /// A new rule.
    Created,
    /// An existing rule, written again in its place.
    Replaced,
}

/// Asks `sim` what becomes of every established flow in `topology`
/// ([`Topology::established_fate`]) and cuts those it says to cut. Returns (checked, cut).
fn reevaluate(flows: &[Arc<FlowEntry>], topology: &Topology) -> (usize, usize) {
    let mut cut = 0;
    for f in flows {
        if f.is_cut() {
            continue;
        }
        let fate = topology.established_fate(&f.flow);
        if fate == Fate::Keep {
            continue;
        }
        let why = topology.fate_text(&f.flow, fate).to_string();
        tracing::info!(flow = %f.describe(), reason = %why, "established flow cut");
        f.cut(why);
        cut += 1;
    }
    (flows.len(), cut)
}

struct ChangeState {
    generation: u64,
    conn_limit: usize,
}

/// Gateway-wide state: the current snapshot, the resources, the connection cap.
pub(crate) struct Shared {
    pub(crate) res: Resources,
    state: RwLock<Arc<PolicyState>>,
    /// Serializes changes (each builds on the snapshot it replaces).
    change: Mutex<ChangeState>,
    /// Client connection permits (`max_connections`).
    pub(crate) conn_limit: Arc<Semaphore>,
    /// Permits to retire when they come back (a lowered `max_connections`).
    permit_debt: AtomicUsize,
}

// === impl Shared ===

impl Shared {
    /// Builds the first snapshot.
    pub(crate) fn new(res: Resources, built: Built) -> Result<Shared, ChangeError> {
        if refused(&built, res.options.accept_preflight_errors) {
            return Err(ChangeError::Invalid {
                findings: built.findings,
            });
        }
        res.faults.replace(built.topology.faults());
        let state = PolicyState::build(&res, built.topology, built.document, 1)?;
        let conn_limit = state.limits.max_connections;
        Ok(Shared {
            res,
            state: RwLock::new(Arc::new(state)),
            change: Mutex::new(ChangeState {
                generation: 1,
                conn_limit,
            }),
            conn_limit: Arc::new(Semaphore::new(conn_limit)),
            permit_debt: AtomicUsize::new(0),
        })
    }

    /// The snapshot in force.
    pub(crate) fn snapshot(&self) -> Arc<PolicyState> {
        self.state
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Applies a new topology (see the module docs).
    pub(crate) fn apply(&self, built: Built) -> Result<ChangeReport, ChangeError> {
        let report = self.change_with(|_| Ok((built, None)))?;
        self.res.faults.replace_from(&self.snapshot().topology);
        Ok(report)
    }

    /// Applies a rule change: `sim` builds the new topology from the one in force.
    fn rule_change(&self, change: &sim::Change) -> Result<ChangeReport, ChangeError> {
        self.change_with(|current| {
            let applied = current
                .document
                .apply_change(&current.topology, change)
                .map_err(ChangeError::from_sim)?;
            Ok((applied.built, Some(applied.rules)))
        })
    }

    /// Replaces one NSG's custom rules (rules not in `rules` are removed).
    pub(crate) fn set_nsg_rules(
        &self,
        nsg: &str,
        rules: &[RawRule],
    ) -> Result<ChangeReport, ChangeError> {
        self.rule_change(&sim::Change::SetRules {
            nsg: nsg.to_string(),
            rules: rules.to_vec(),
        })
    }

    /// Adds one custom rule to an NSG, or replaces the rule of the same name.
    pub(crate) fn put_nsg_rule(
        &self,
        nsg: &str,
        rule: RawRule,
    ) -> Result<(ChangeReport, RulePut), ChangeError> {
        let report = self.rule_change(&sim::Change::PutRule {
            nsg: nsg.to_string(),
            rule: Box::new(rule),
        })?;
        let put = match &report.rules {
            Some(r) if !r.created.is_empty() => RulePut::Created,
            _ => RulePut::Replaced,
        };
        Ok((report, put))
    }

    /// Removes one custom rule from an NSG.
    pub(crate) fn delete_nsg_rule(
        &self,
        nsg: &str,
        name: &str,
    ) -> Result<ChangeReport, ChangeError> {
        self.rule_change(&sim::Change::DeleteRule {
            nsg: nsg.to_string(),
            name: name.to_string(),
        })
    }

    /// Asks the owner's loader for a topology — the start's inputs and options again, or
    /// `body` in place of the inputs — and applies it.
    pub(crate) fn reload(&self, body: Option<&ReloadBody>) -> Result<ChangeReport, ChangeError> {
        let hook = self
            .res
            .options
            .reload
            .clone()
            .ok_or_else(|| ReloadError::NoInputs("no reload hook was given at start (the gateway was started from a topology in memory); send nothing or use GatewayHandle::reload".into()))?;
        let report = self.change_with(|_| Ok((hook.0.reload(body)?, None)))?;
        // A reloaded fixture's `[faults]` replaces the fixture's rules; rules added live stay.
        self.res.faults.replace_from(&self.snapshot().topology);
        Ok(report)
    }

    /// Checks `rule` against the topology in force and adds it (see
    /// [`crate::GatewayHandle::add_fault`]).
    pub(crate) fn add_fault(&self, rule: &sim::FaultRule) -> Result<bool, crate::FaultError> {
        let fault = self
            .snapshot()
            .topology
            .check_fault(rule)
            .map_err(|problems| crate::FaultError {
                name: rule.name.clone(),
                problems,
            })?;
        Ok(self.res.faults.add(fault))
    }

    /// Makes and applies one change; `make` returns the new topology and, for a rule change,
    /// what it did to the rules.
    fn change_with(
        &self,
        make: impl FnOnce(&PolicyState) -> Result<(Built, Option<RuleChanges>), ChangeError>,
    ) -> Result<ChangeReport, ChangeError> {
        let mut cs = lock(&self.change);
        let result = self.change_locked(&mut cs, make);
        match &result {
            Ok(r) => {
                self.res
                    .metrics
                    .changes_applied
                    .fetch_add(1, Ordering::Relaxed);
                tracing::info!(
                    generation = r.generation,
                    flows_cut = r.flows_cut,
                    "policy change applied"
                );
            }
            Err(e) => {
                self.res
                    .metrics
                    .changes_refused
                    .fetch_add(1, Ordering::Relaxed);
                tracing::warn!(cause = %e, "policy change refused");
            }
        }
        result
    }

    fn change_locked(
        &self,
        cs: &mut ChangeState,
        make: impl FnOnce(&PolicyState) -> Result<(Built, Option<RuleChanges>), ChangeError>,
    ) -> Result<ChangeReport, ChangeError> {
        let current = self.snapshot();
        let (built, rules) = make(&current)?;
        if refused(&built, self.res.options.accept_preflight_errors) {
            return Err(ChangeError::Invalid {
                findings: built.findings,
            });
        }
        let findings = built.findings;
        let next = Arc::new(PolicyState::build(
            &self.res,
            built.topology,
            built.document,
            cs.generation + 1,
        )?);
        cs.generation += 1;
        *self
            .state
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = next.clone();
        self.resize_conn_limit(cs, next.limits.max_connections);
        let (checked, cut) = reevaluate(&self.res.flows.snapshot(), &next.topology);
        self.res
            .metrics
            .flows_cut
            .fetch_add(cut as u64, Ordering::Relaxed);
        Ok(ChangeReport {
            generation: cs.generation,
            findings,
            flows_checked: checked,
            flows_cut: cut,
            rules,
        })
    }

    fn resize_conn_limit(&self, cs: &mut ChangeState, new: usize) {
        if new > cs.conn_limit {
            let mut grow = new - cs.conn_limit;
            // Cancel pending retirements first.
            while grow > 0 {
                let debt = self.permit_debt.load(Ordering::Acquire);
                if debt == 0 {
                    break;
                }
                let pay = debt.min(grow);
                if self
                    .permit_debt
                    .compare_exchange(debt, debt - pay, Ordering::AcqRel, Ordering::Acquire)
                    .is_ok()
                {
                    grow -= pay;
                }
            }
            self.conn_limit.add_permits(grow);
        } else if new < cs.conn_limit {
            let shrink = cs.conn_limit - new;
            let forgotten = self.conn_limit.forget_permits(shrink);
            self.permit_debt
                .fetch_add(shrink - forgotten, Ordering::AcqRel);
        }
        cs.conn_limit = new;
    }

    /// Returns a client connection's permit, retiring it if `max_connections` was lowered.
    pub(crate) fn release_permit(&self, permit: OwnedSemaphorePermit) {
        let mut debt = self.permit_debt.load(Ordering::Acquire);
        while debt > 0 {
            match self.permit_debt.compare_exchange(
                debt,
                debt - 1,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => {
                    permit.forget();
                    return;
                }
                Err(d) => debt = d,
            }
        }
        drop(permit);
    }
}

/// Whether a topology is refused: any error finding (structural or APIM preflight), as `up`
/// refuses to start with; preflight errors pass only when the start allowed them.
fn refused(built: &Built, accept_preflight_errors: bool) -> bool {
    if accept_preflight_errors {
        !built.structural_errors().is_empty()
    } else {
        built.has_errors()
    }
}
