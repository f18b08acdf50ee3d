//! The question engine's front door: every answer about a flow that `check`, `test`,
//! `validate`, `up`'s table, the harness and the gateway give comes from here.
//!
//! * [`Topology::ask`] — a [`Question`] whose destination may be a name: the name is resolved
//!   from the source's side ([`Topology::resolver_of`], the same resolver the gateway uses),
//!   then the flow is walked ([`Topology::evaluate`]). A name that does not resolve is verdict
//!   `Unreachable`, code `DNS_FAILURE`.
//! * [`Topology::api_endpoints`] / [`Topology::api_question`] — an API's backend flow as the
//!   instance sees it: its outbound source and its backend name resolved by its DNS.
//! * [`Topology::established_fate`] — what becomes of an *established* flow when the topology
//!   changes (keep, or cut and why).

use std::fmt;
use std::net::IpAddr;

use crate::dns::{Resolved, Via};
use crate::finding::{Assumption, Finding, FindingCode};
use crate::flow::{Flow, FlowView, RuleRef, Verdict, VerdictCode, VerdictKind};
use crate::proto::Protocol;
use crate::topology::Topology;

/// A flow's destination as asked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Destination {
    /// An address.
    Address(IpAddr),
    /// A DNS name, resolved from the source's side. With `host_names`, a `[[hosts]]` name is
    /// that host's address and wins over a DNS name of another host (`check`'s words).
    Name {
        /// The name.
        name: String,
        /// Whether `[[hosts]]` names count.
        host_names: bool,
    },
}

/// The question: a flow whose destination may be a name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Question {
    /// Protocol.
    pub protocol: Protocol,
    /// Source address.
    pub source: IpAddr,
    /// Source port (`None` for port-less protocols).
    pub source_port: Option<u16>,
    /// Destination.
    pub destination: Destination,
    /// Destination port (`None` for port-less protocols).
    pub destination_port: Option<u16>,
}

impl Question {
    /// The flow once the destination is an address.
    pub fn flow(&self, destination: IpAddr) -> Flow {
        let ports = self.protocol.has_ports();
        Flow {
            protocol: self.protocol,
            source: self.source,
            source_port: if ports { self.source_port } else { None },
            destination,
            destination_port: if ports { self.destination_port } else { None },
        }
    }
}

/// An API's backend flow as the instance sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiEndpoints {
    /// The instance's outbound source address (`None` without `[apim]`).
    pub source: Option<IpAddr>,
    /// The backend host resolved by the instance's DNS.
    pub resolved: Resolved,
    /// The backend port.
    pub port: u16,
}

/// What becomes of an established flow after a change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fate {
    /// It continues: rules apply to new flows only, unless a denying NSG flushes.
    Keep,
    /// The instance's outbound address is no longer the flow's source
    /// (`ASSUMPTION_NETWORK_CHANGE_RESETS_FLOWS`).
    SourceChanged {
        /// The instance's outbound address now.
        now: Option<IpAddr>,
    },
    /// A rule of an NSG with `flush_connection = true` now denies it.
    Flushed(RuleRef),
    /// The topology no longer routes it (a peering removed, the destination left the VNets
    /// the source reaches): its packets have nowhere to go, whatever the NSGs say
    /// (`ASSUMPTION_NETWORK_CHANGE_RESETS_FLOWS`).
    Unrouted(VerdictCode),
    /// A stateful Azure Firewall on its path now drops it: the firewall denies it, or the
    /// routes changed so that the firewall sees a flow it holds no state for, or only one of
    /// its directions (`FIREWALL_DENIED`, `ASYMMETRIC_ROUTE`;
    /// `ASSUMPTION_NETWORK_CHANGE_RESETS_FLOWS`).
    Dropped(VerdictCode),
}

/// [`Fate`] with the topology's names, for messages.
pub struct FateText<'a> {
    topology: &'a Topology,
    flow: &'a Flow,
    fate: Fate,
}

impl fmt::Display for FateText<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let flow = self.flow;
        match self.fate {
            Fate::Keep => write!(f, "flow {flow} continues"),
            Fate::SourceChanged { now } => write!(
                f,
                "flow {flow} was cut: the instance's outbound address changed to {} ({})",
                now.map_or_else(|| "no outbound address".to_string(), |s| s.to_string()),
                Assumption::NetworkChangeResetsFlows.code()
            ),
            Fate::Unrouted(code) => write!(
                f,
                "flow {flow} was cut: the topology no longer routes it ({code}; {})",
                Assumption::NetworkChangeResetsFlows.code()
            ),
            Fate::Dropped(code) => write!(
                f,
                "flow {flow} was cut: a stateful Azure Firewall on its path now drops it ({code}; {})",
                Assumption::NetworkChangeResetsFlows.code()
            ),
            Fate::Flushed(r) => {
                let info = self.topology.rule_info(r);
                write!(
                    f,
                    "flow {flow} was cut: nsgs/{}/{} (priority {}) now denies it and the NSG has flush_connection = true",
                    info.nsg, info.rule, info.priority
                )
            }
        }
    }
}

// === impl Topology (questions) ===

impl Topology {
    /// Resolves a question's destination from its source's side; `None` for an address.
    pub fn resolve_destination(&self, source: IpAddr, d: &Destination) -> Option<Resolved> {
        let Destination::Name { name, host_names } = d else {
            return None;
        };
        if *host_names {
            if let Some(h) = self.host_index(name) {
                return Some(Resolved {
                    name: crate::topology::normalize_dns(name),
                    address: Some(self.hosts[h].address),
                    zone: None,
                    via: Via::HostName,
                    failure: None,
                });
            }
        }
        Some(self.lookup(name, self.resolver_of(source)))
    }

    /// The explained answer to a question: the name resolved as the gateway resolves it, then
    /// the flow walked. An unresolvable name is `Unreachable` / `DNS_FAILURE`.
    pub fn ask(&self, q: &Question) -> Verdict {
        let resolved = self.resolve_destination(q.source, &q.destination);
        let address = match (&q.destination, &resolved) {
            (Destination::Address(a), _) => Some(*a),
            (_, Some(r)) => r.address,
            (_, None) => None,
        };
        let private_name = resolved.as_ref().is_some_and(|r| r.via == Via::VnetName);
        let mut v = match address {
            Some(a) => self.evaluate(&q.flow(a)),
            None => self.dns_failure(q, resolved.as_ref()),
        };
        if private_name && !v.assumptions.contains(&Assumption::PrivateNameScope) {
            v.assumptions.push(Assumption::PrivateNameScope);
            v.assumptions.sort();
        }
        v.resolved = resolved;
        v
    }

    fn dns_failure(&self, q: &Question, r: Option<&Resolved>) -> Verdict {
        let ports = q.protocol.has_ports();
        Verdict {
            verdict: VerdictKind::Unreachable,
            code: VerdictCode::DnsFailure,
            flow: FlowView {
                protocol: q.protocol,
                source: q.source.to_string(),
                source_port: if ports { q.source_port } else { None },
                destination: None,
                destination_port: if ports { q.destination_port } else { None },
            },
            evaluated: Vec::new(),
            hops: Vec::new(),
            return_hops: Vec::new(),
            egress_source: None,
            decided_by: None,
            detail: r
                .and_then(|r| r.failure.clone())
                .unwrap_or_else(|| "the name does not resolve".to_string()),
            assumptions: Vec::new(),
            service_tags: self.tags.info().clone(),
            resolved: None,
            dnat: None,
        }
    }

    /// API `api`'s backend flow: the instance's outbound source and the backend name as the
    /// instance's DNS answers it. `None` when there is no such API.
    pub fn api_endpoints(&self, api: usize) -> Option<ApiEndpoints> {
        let b = &self.apis.get(api)?.backend;
        let resolved = match self.apim_resolver() {
            Some(from) => self.lookup(&b.host, from),
            None => Resolved {
                name: b.host.clone(),
                address: None,
                zone: None,
                via: Via::Public,
                failure: Some("the topology has no [apim] instance to resolve from".into()),
            },
        };
        Some(ApiEndpoints {
            source: self.apim_source(),
            resolved,
            port: b.port,
        })
    }

    /// API `api`'s backend flow as a question from `source_port` (`None` without `[apim]` or
    /// without such an API): what `check --from apim --to HOST:PORT` asks.
    pub fn api_question(&self, api: usize, source_port: u16) -> Option<Question> {
        let b = &self.apis.get(api)?.backend;
        Some(Question {
            protocol: Protocol::Tcp,
            source: self.apim_source()?,
            source_port: Some(source_port),
            destination: Destination::Name {
                name: b.host.clone(),
                host_names: false,
            },
            destination_port: Some(b.port),
        })
    }

    /// What becomes of an established `flow` in this (new) topology: it is cut when its
    /// source is no longer the instance's outbound address, when the topology no longer
    /// routes it (an `Unreachable` verdict), when an NSG with `flush_connection = true` now
    /// denies it, or when a stateful firewall on its path now drops it; otherwise it continues (a non-flushing NSG's deny applies to new flows only:
    /// "Network security groups overview", flush connection).
    pub fn established_fate(&self, flow: &Flow) -> Fate {
        let source = self.apim_source();
        if source != Some(flow.source) {
            return Fate::SourceChanged { now: source };
        }
        // No route first: a packet without one is lost whatever an NSG on the way would say.
        let path = self.path(flow.source, flow.destination);
        if let Some(code) = path.unroutable() {
            return Fate::Unrouted(code);
        }
        let d = self.decide_on(&path, flow);
        match d.decided_by {
            Some(r) if d.verdict == VerdictKind::Deny && self.nsg_flush_connection(r.nsg) => {
                Fate::Flushed(r)
            }
            // NSGs keep established flows unless they flush; a stateful firewall does not: it
            // drops packets of a session it does not hold ("Azure Firewall is a … stateful
            // firewall", Azure Firewall overview), and a denied session it held is gone.
            _ if matches!(
                d.code,
                VerdictCode::FirewallDenied | VerdictCode::AsymmetricRoute
            ) =>
            {
                Fate::Dropped(d.code)
            }
            _ => Fate::Keep,
        }
    }

    /// A [`Fate`] with names, for messages.
    pub fn fate_text<'a>(&'a self, flow: &'a Flow, fate: Fate) -> FateText<'a> {
        FateText {
            topology: self,
            flow,
            fate,
        }
    }
}

/// `API_BACKEND_UNRESOLVABLE` for every API whose backend name does not resolve from the APIM
/// instance, with the resolver's reason (the same words `check` and the gateway give).
pub(crate) fn unresolvable_backends(t: &Topology) -> Vec<Finding> {
    (0..t.apis.len())
        .filter_map(|i| {
            let e = t.api_endpoints(i)?;
            let why = e.resolved.failure?;
            let api = &t.apis[i];
            Some(
                Finding::new(
                    FindingCode::ApiBackendUnresolvable,
                    format!("apis/{}", api.name),
                    format!(
                        "backend `{}` does not resolve from the API Management instance: {why}",
                        api.backend.authority
                    ),
                )
                .at(t.locate(&format!("/apis/{}", api.index))),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixture::{Fixture, Format};
    use crate::ServiceTagTable;

    const BASE: &str = r#"
[[vnets]]
name = "app"
region = "westeurope"
address_space = ["10.0.0.0/16"]
peerings = ["hub"]
  [[vnets.subnets]]
  name = "snet-apim"
  address_prefix = "10.0.1.0/24"
  delegations = ["Microsoft.Web/serverFarms"]
  nsg = "nsg-apim"
[[vnets]]
name = "hub"
region = "westeurope"
address_space = ["10.1.0.0/16"]
peerings = ["app"]
  [[vnets.subnets]]
  name = "s"
  address_prefix = "10.1.1.0/24"
[[nsgs]]
name = "nsg-apim"
flush_connection = FLUSH
RULES
[apim]
name = "a"
sku = "StandardV2"
region = "westeurope"
virtual_network = "integration"
subnet = "app/snet-apim"
"#;

    const DENY: &str = "[[nsgs.security_rules]]\nname = \"deny-hub\"\npriority = 100\ndirection = \"Outbound\"\naccess = \"Deny\"\nprotocol = \"*\"\nsource_address_prefix = \"*\"\nsource_port_range = \"*\"\ndestination_address_prefix = \"10.1.0.0/16\"\ndestination_port_range = \"*\"\n";

    fn topo(flush: bool, rules: &str, edit: impl Fn(String) -> String) -> Topology {
        let text = edit(
            BASE.replace("FLUSH", if flush { "true" } else { "false" })
                .replace("RULES", rules),
        );
        let f = Fixture::parse(&text, Format::Toml).unwrap();
        Topology::build(&f, ServiceTagTable::builtin()).topology
    }

    #[test]
    fn established_flows_keep_unless_source_route_or_a_flushing_deny_says_otherwise() {
        let before = topo(false, "", |s| s);
        let flow = Flow::tcp(
            before.apim_source().unwrap(),
            50000,
            "10.1.1.4".parse().unwrap(),
            443,
        );
        assert!(before.decide(&flow).allowed());
        assert_eq!(before.established_fate(&flow), Fate::Keep);
        // A deny without flush_connection applies to new flows only.
        assert_eq!(topo(false, DENY, |s| s).established_fate(&flow), Fate::Keep);
        // With flush_connection the deny cuts it, naming the rule.
        let flushing = topo(true, DENY, |s| s);
        let fate = flushing.established_fate(&flow);
        assert!(matches!(fate, Fate::Flushed(_)), "{fate:?}");
        let text = flushing.fate_text(&flow, fate).to_string();
        assert!(
            text.contains("nsgs/nsg-apim/securityRules/deny-hub"),
            "{text}"
        );
        // The peering removed: no route, whatever the NSGs say.
        let unpeered = topo(false, "", |s| {
            s.replace("peerings = [\"app\"]", "peerings = []")
        });
        assert_eq!(
            unpeered.established_fate(&flow),
            Fate::Unrouted(VerdictCode::NoRoute)
        );
        // Integration turned off: the flow's source is no longer the instance's.
        let off = topo(false, "", |s| {
            s.replace(
                "virtual_network = \"integration\"",
                "virtual_network = \"none\"",
            )
            .replace("subnet = \"app/snet-apim\"\n", "")
        });
        assert!(matches!(
            off.established_fate(&flow),
            Fate::SourceChanged { now: Some(_) }
        ));
    }

    /// A stateful firewall drops an established flow it now denies (a non-flushing NSG would
    /// keep it): the forced tunnel's firewall has no rule for api.blocked.example (20.50.1.20).
    #[test]
    fn a_stateful_firewall_drops_established_flows_it_denies() {
        let text = include_str!("../../fixtures/forced-tunnel.toml");
        let f = Fixture::parse(text, Format::Toml).unwrap();
        let t = Topology::build(&f, ServiceTagTable::builtin()).topology;
        let flow = Flow::tcp(
            t.apim_source().unwrap(),
            50000,
            "20.50.1.20".parse().unwrap(),
            443,
        );
        assert_eq!(t.decide(&flow).code, VerdictCode::FirewallDenied);
        let fate = t.established_fate(&flow);
        assert_eq!(fate, Fate::Dropped(VerdictCode::FirewallDenied));
        let text = t.fate_text(&flow, fate).to_string();
        assert!(
            text.contains("stateful Azure Firewall") && text.contains("FIREWALL_DENIED"),
            "{text}"
        );
    }
}
