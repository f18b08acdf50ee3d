//! The validated model: [`Topology`] is built from a [`Fixture`] once, reporting every finding at
//! once ([`Built`]). Invalid pieces are left out of the model (a rule that does not parse cannot
//! decide a flow), which is why callers that evaluate flows refuse a topology with structural
//! error findings ([`Built::structural_errors`]).
//!
//! Building also compiles each NSG once per VNet it is applied in, so that flow evaluation
//! ([`crate::flow`]) does no parsing, no tag resolution and no allocation on its verdict path.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};

use crate::api::{self, Api};
use crate::cidr::Cidr;
use crate::finding::{sort_findings, Finding, FindingCode};
use crate::fixture::{
    DnsZoneFile, Fixture, GatewayFile, HostKind, NetworkMode, PrivateEndpointPolicies, RawRule,
    RuleFile, ServeKind, Sku,
};
use crate::nsg::{parse_unknown_marker, CompiledNsg, Context, Nsg, ReferenceNsg};
use crate::tags::ServiceTagTable;

pub use crate::dns_name::{normalize_dns, valid_dns_name};

/// Default public address of a non-integrated instance (*assumption* `ASSUMPTION_APIM_PUBLIC_ADDRESS`).
pub const DEFAULT_APIM_PUBLIC_ADDRESS: &str = "20.105.0.10";

/// Ranges a VNet address space may not use. Source: VNet FAQ ("Are there any restrictions on
/// using IP addresses within these subnets?").
pub const FORBIDDEN_ADDRESS_SPACE: &[&str] = &[
    "224.0.0.0/4",
    "255.255.255.255/32",
    "127.0.0.0/8",
    "169.254.0.0/16",
    "168.63.129.16/32",
];

/// Addresses Azure reserves at the start of every subnet (network, gateway, two DNS), plus the last.
pub const RESERVED_AT_START: u128 = 4;

/// A topology and every finding about it.
#[derive(Clone, Debug)]
#[must_use]
pub struct Built {
    /// The model (invalid pieces left out).
    pub topology: Topology,
    /// Every finding, sorted (errors first).
    pub findings: Vec<Finding>,
}

impl Built {
    /// Whether any finding is an error.
    pub fn has_errors(&self) -> bool {
        self.findings.iter().any(Finding::is_error)
    }

    /// Error findings that make flow evaluation untrustworthy: everything except the APIM
    /// preflight (a failing preflight is what `check` and the gateway demonstrate).
    pub fn structural_errors(&self) -> Vec<&Finding> {
        self.findings
            .iter()
            .filter(|f| f.is_error() && !f.code.is_preflight())
            .collect()
    }
}

/// A VNet.
#[derive(Clone, Debug)]
pub struct Vnet {
    /// Name as written.
    pub name: String,
    /// Region (as written).
    pub region: String,
    /// Subscription id.
    pub subscription: String,
    /// Address space (valid prefixes).
    pub address_space: Vec<Cidr>,
    /// Indices of VNets connected by a two-sided peering.
    pub connected: Vec<usize>,
    /// Subnets.
    pub subnets: Vec<Subnet>,
    /// Prefixes of the `VirtualNetwork` tag here: own space plus connected peers'.
    pub virtual_network_tag: Vec<Cidr>,
}

/// A subnet.
#[derive(Clone, Debug)]
pub struct Subnet {
    /// Name as written.
    pub name: String,
    /// Valid prefixes.
    pub prefixes: Vec<Cidr>,
    /// Delegation service names as written.
    pub delegations: Vec<String>,
    /// Associated NSG.
    pub nsg: Option<usize>,
    /// Other resources deployed in it.
    pub resources: Vec<String>,
    /// Private endpoint network policies.
    pub private_endpoint_network_policies: PrivateEndpointPolicies,
}

impl Subnet {
    /// Whether the subnet is delegated to `service` (case-insensitive).
    pub fn delegated_to(&self, service: &str) -> bool {
        self.delegations
            .iter()
            .any(|d| d.eq_ignore_ascii_case(service))
    }
    /// The prefix containing `addr`.
    pub fn prefix_of(&self, addr: IpAddr) -> Option<Cidr> {
        self.prefixes.iter().copied().find(|p| p.contains(addr))
    }
}

/// A backend service on a host.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Service {
    /// Port on the simulated host.
    pub port: u16,
    /// Speaks HTTPS.
    pub tls: bool,
    /// Built-in backend to start.
    pub serve: Option<ServeKind>,
    /// Existing loopback server that plays this host:port.
    pub upstream: Option<SocketAddr>,
}

/// A VM NIC, private endpoint or external host.
#[derive(Clone, Debug)]
pub struct Host {
    /// Name as written.
    pub name: String,
    /// Private address (or, outside every VNet, its own address).
    pub address: IpAddr,
    /// Public address through which the internet reaches it.
    pub public_address: Option<IpAddr>,
    /// NIC NSG.
    pub nsg: Option<usize>,
    /// ASG memberships (lower-cased).
    pub asgs: Vec<String>,
    /// DNS names (lower-cased, no trailing dot).
    pub dns: Vec<String>,
    /// NIC or private endpoint.
    pub kind: HostKind,
    /// Services.
    pub services: Vec<Service>,
    /// `(vnet, subnet)` when the address lies in a subnet.
    pub placement: Option<(usize, usize)>,
}

/// The API Management instance.
#[derive(Clone, Debug)]
pub struct Apim {
    /// Name.
    pub name: String,
    /// Tier.
    pub sku: Sku,
    /// Scale units.
    pub capacity: u32,
    /// Region.
    pub region: String,
    /// Subscription id.
    pub subscription: String,
    /// Network mode.
    pub mode: NetworkMode,
    /// `(vnet, subnet)` for integration/injection, when the reference resolved.
    pub subnet: Option<(usize, usize)>,
    /// The mode before this change.
    pub previous_mode: Option<NetworkMode>,
    /// Address in the subnet (integration: outbound source; injection: the gateway's private VIP).
    pub private_address: Option<IpAddr>,
    /// Public address (inbound endpoint; outbound source when not integrated).
    pub public_address: IpAddr,
}

/// A private DNS zone.
#[derive(Clone, Debug)]
pub struct DnsZone {
    /// Zone name, lower-cased.
    pub name: String,
    /// Linked VNets.
    pub links: Vec<usize>,
}

/// The validated model.
#[derive(Clone, Debug)]
pub struct Topology {
    pub(crate) fixture: Fixture,
    pub(crate) tags: ServiceTagTable,
    pub(crate) subscription_id: String,
    pub(crate) registered_providers: Vec<String>,
    pub(crate) principal_actions: Vec<String>,
    pub(crate) vnets: Vec<Vnet>,
    pub(crate) nsgs: Vec<Nsg>,
    pub(crate) hosts: Vec<Host>,
    pub(crate) apim: Option<Apim>,
    pub(crate) zones: Vec<DnsZone>,
    pub(crate) apis: Vec<Api>,
    pub(crate) gateway: GatewayFile,
    pub(crate) asg_members: BTreeMap<String, Vec<IpAddr>>,
    /// `compiled[nsg * vnets.len() + vnet]`, present where the NSG is applied in that VNet.
    pub(crate) compiled: Vec<Option<CompiledNsg>>,
    pub(crate) host_by_addr: BTreeMap<IpAddr, usize>,
    pub(crate) host_by_public: BTreeMap<IpAddr, usize>,
}

fn find_ci<'a, T>(items: &'a [T], name: &str, key: impl Fn(&T) -> &str) -> Option<(usize, &'a T)> {
    items
        .iter()
        .enumerate()
        .find(|(_, t)| key(t).eq_ignore_ascii_case(name.trim()))
}

// === impl Topology ===

impl Topology {
    /// Builds the model from a fixture, collecting every finding.
    ///
    /// ```
    /// use sim::{fixture::{Fixture, Format}, topology::Topology, ServiceTagTable};
    /// let f = Fixture::parse(r#"
    /// [[vnets]]
    /// name = "v"
    /// region = "westeurope"
    /// address_space = ["10.0.0.0/16"]
    ///   [[vnets.subnets]]
    ///   name = "a"
    ///   address_prefix = "10.1.0.0/24"
    /// "#, Format::Toml).unwrap();
    /// let built = Topology::build(&f, ServiceTagTable::builtin());
    /// assert_eq!(built.findings[0].code.as_str(), "SUBNET_OUTSIDE_ADDRESS_SPACE");
    /// ```
    pub fn build(fixture: &Fixture, tags: ServiceTagTable) -> Built {
        Builder::new(fixture, tags).build()
    }

    /// A new topology with one NSG's custom rules replaced (a live rule change). The result
    /// carries the findings of the whole new topology.
    ///
    /// # Errors
    /// When no NSG has that name.
    pub fn with_nsg_rules(&self, nsg: &str, rules: &[RawRule]) -> Result<Built, String> {
        let mut fixture = self.fixture.clone();
        let Some(target) = fixture
            .nsgs
            .iter_mut()
            .find(|n| n.name.eq_ignore_ascii_case(nsg.trim()))
        else {
            return Err(format!("no NSG named `{nsg}`"));
        };
        let mut parsed = Vec::with_capacity(rules.len());
        for r in rules {
            parsed.push(
                RuleFile::try_from(r.clone()).map_err(|e| format!("nsgs/{}: {e}", target.name))?,
            );
        }
        target.security_rules = parsed;
        Ok(Topology::build(&fixture, self.tags.clone()))
    }

    /// The fixture this topology was built from.
    pub fn fixture(&self) -> &Fixture {
        &self.fixture
    }
    /// The service tag table in use.
    pub fn service_tags(&self) -> &ServiceTagTable {
        &self.tags
    }
    /// VNets.
    pub fn vnets(&self) -> &[Vnet] {
        &self.vnets
    }
    /// NSGs.
    pub fn nsgs(&self) -> &[Nsg] {
        &self.nsgs
    }
    /// Hosts.
    pub fn hosts(&self) -> &[Host] {
        &self.hosts
    }
    /// The APIM instance.
    pub fn apim(&self) -> Option<&Apim> {
        self.apim.as_ref()
    }
    /// Private DNS zones.
    pub fn dns_zones(&self) -> &[DnsZone] {
        &self.zones
    }
    /// APIs.
    pub fn apis(&self) -> &[Api] {
        &self.apis
    }
    /// The gateway settings (defaults when the fixture has no `[gateway]`).
    pub fn gateway(&self) -> &GatewayFile {
        &self.gateway
    }
    /// Subscription id of `[subscription]`.
    pub fn subscription_id(&self) -> &str {
        &self.subscription_id
    }
    /// NSG index by name (case-insensitive).
    pub fn nsg_index(&self, name: &str) -> Option<usize> {
        find_ci(&self.nsgs, name, |n| &n.name).map(|(i, _)| i)
    }
    /// Whether an NSG re-evaluates established flows on rule changes.
    pub fn nsg_flush_connection(&self, nsg: usize) -> bool {
        self.nsgs.get(nsg).is_some_and(|n| n.flush_connection)
    }
    /// Host index by name (case-insensitive).
    pub fn host_index(&self, name: &str) -> Option<usize> {
        find_ci(&self.hosts, name, |h| &h.name).map(|(i, _)| i)
    }
    /// The host whose private address is `addr`.
    pub fn host_at(&self, addr: IpAddr) -> Option<usize> {
        self.host_by_addr.get(&addr).copied()
    }
    /// The host whose public address is `addr`.
    pub fn host_with_public(&self, addr: IpAddr) -> Option<usize> {
        self.host_by_public.get(&addr).copied()
    }

    /// The service that answers at `addr:port`: a host's service, by its private or public address.
    pub fn service_at(&self, addr: IpAddr, port: u16) -> Option<(usize, usize)> {
        let h = self.host_at(addr).or_else(|| self.host_with_public(addr))?;
        let s = self.hosts[h].services.iter().position(|s| s.port == port)?;
        Some((h, s))
    }

    /// The subnet containing `addr`, as `(vnet, subnet)`.
    pub fn subnet_of(&self, addr: IpAddr) -> Option<(usize, usize)> {
        for (vi, v) in self.vnets.iter().enumerate() {
            for (si, s) in v.subnets.iter().enumerate() {
                if s.prefixes.iter().any(|p| p.contains(addr)) {
                    return Some((vi, si));
                }
            }
        }
        None
    }

    /// The VNet whose address space contains `addr`.
    pub fn vnet_of(&self, addr: IpAddr) -> Option<usize> {
        self.vnets
            .iter()
            .position(|v| v.address_space.iter().any(|p| p.contains(addr)))
    }

    /// Whether VNets `a` and `b` are the same or connected by a two-sided peering.
    pub fn connected(&self, a: usize, b: usize) -> bool {
        a == b || self.vnets.get(a).is_some_and(|v| v.connected.contains(&b))
    }

    /// The compiled NSG for `(nsg, vnet)`, when the NSG is applied in that VNet.
    pub fn compiled(&self, nsg: usize, vnet: usize) -> Option<&CompiledNsg> {
        self.compiled
            .get(nsg * self.vnets.len() + vnet)
            .and_then(Option::as_ref)
    }

    /// The evaluation context of an NSG applied in `vnet`.
    pub fn context(&self, vnet: usize) -> Context<'_> {
        Context {
            virtual_network: self
                .vnets
                .get(vnet)
                .map_or(&[][..], |v| v.virtual_network_tag.as_slice()),
            tags: &self.tags,
            asg_members: &self.asg_members,
        }
    }

    /// The reference evaluator of an NSG in `vnet`'s context (for tests and benchmarks).
    pub fn reference(&self, nsg: usize, vnet: usize) -> Option<ReferenceNsg> {
        self.nsgs.get(nsg).map(|n| n.reference(&self.context(vnet)))
    }

    /// Resource path of a subnet: `vnets/<v>/subnets/<s>`.
    pub fn subnet_path(&self, vnet: usize, subnet: usize) -> String {
        format!(
            "vnets/{}/subnets/{}",
            self.vnets[vnet].name, self.vnets[vnet].subnets[subnet].name
        )
    }

    /// The route for an API path: `(api index, rest of path)`.
    pub fn route<'p>(&self, path: &'p str) -> Option<(usize, &'p str)> {
        api::route(&self.apis, path)
    }
}

// === Builder ===

struct Builder<'a> {
    fx: &'a Fixture,
    tags: ServiceTagTable,
    f: Vec<Finding>,
}

impl<'a> Builder<'a> {
    fn new(fx: &'a Fixture, tags: ServiceTagTable) -> Self {
        Builder {
            fx,
            tags,
            f: Vec::new(),
        }
    }

    fn push(&mut self, code: FindingCode, subject: impl Into<String>, msg: impl Into<String>) {
        self.f.push(Finding::new(code, subject, msg));
    }

    fn dup_names<'n>(&mut self, kind: &str, names: impl Iterator<Item = &'n str>) {
        let mut seen = BTreeSet::new();
        for n in names {
            if !seen.insert(n.to_ascii_lowercase()) {
                self.push(
                    FindingCode::NameDuplicate,
                    format!("{kind}/{n}"),
                    format!("two {kind} are named `{n}` (names compare case-insensitively)"),
                );
            }
        }
    }

    fn build(mut self) -> Built {
        let fx = self.fx;
        let subscription_id = fx
            .subscription
            .as_ref()
            .map_or_else(|| "default".to_string(), |s| s.id.clone());
        let registered_providers = fx
            .subscription
            .as_ref()
            .and_then(|s| s.registered_providers.clone())
            .unwrap_or_else(|| vec!["Microsoft.Web".into(), "Microsoft.Network".into()]);
        let principal_actions = fx.principal.as_ref().map_or_else(
            || {
                vec![
                    "Microsoft.Network/virtualNetworks/read".into(),
                    "Microsoft.Network/virtualNetworks/subnets/read".into(),
                    "Microsoft.Network/virtualNetworks/subnets/join/action".into(),
                ]
            },
            |p| p.actions.clone(),
        );

        // --- NSGs (rules need the set of ASG names) ---
        self.dup_names("nsgs", fx.nsgs.iter().map(|n| n.name.as_str()));
        let mut known_asgs: BTreeSet<String> = fx
            .application_security_groups
            .iter()
            .map(|a| a.to_ascii_lowercase())
            .collect();
        for h in &fx.hosts {
            known_asgs.extend(
                h.application_security_groups
                    .iter()
                    .map(|a| a.to_ascii_lowercase()),
            );
        }
        let mut nsgs = Vec::new();
        for n in &fx.nsgs {
            let (nsg, mut fs) = Nsg::from_rules(
                &n.name,
                n.flush_connection,
                &n.security_rules,
                &self.tags,
                &known_asgs,
            );
            self.f.append(&mut fs);
            nsgs.push(nsg);
        }
        let nsg_ref =
            |b: &mut Builder<'_>, name: &Option<String>, subject: &str| -> Option<usize> {
                let name = name.as_ref()?;
                match find_ci(&nsgs, name, |n| &n.name) {
                    Some((i, _)) => Some(i),
                    None => {
                        b.push(
                            FindingCode::ReferenceUnknown,
                            subject,
                            format!("NSG `{name}` is not defined in [[nsgs]]"),
                        );
                        None
                    }
                }
            };

        // --- VNets and subnets ---
        self.dup_names("vnets", fx.vnets.iter().map(|v| v.name.as_str()));
        let forbidden: Vec<Cidr> = FORBIDDEN_ADDRESS_SPACE
            .iter()
            .map(|s| s.parse().expect("constant prefix"))
            .collect();
        let mut vnets = Vec::new();
        for v in &fx.vnets {
            let vpath = format!("vnets/{}", v.name);
            let mut space: Vec<Cidr> = Vec::new();
            if v.address_space.is_empty() {
                self.push(
                    FindingCode::AddressPrefixInvalid,
                    &vpath,
                    "the address space is empty; a VNet needs at least one prefix",
                );
            }
            for p in &v.address_space {
                if let Some(ptr) = parse_unknown_marker(p) {
                    self.push(
                        FindingCode::UnknownAddress,
                        &vpath,
                        unknown_address_message("an address space prefix", ptr),
                    );
                    continue;
                }
                match p.parse::<Cidr>() {
                    Err(e) => self.push(
                        FindingCode::AddressPrefixInvalid,
                        &vpath,
                        format!("address space: {e}"),
                    ),
                    Ok(c) => {
                        if let Some(bad) = forbidden.iter().find(|fb| fb.overlaps(&c)) {
                            self.push(FindingCode::AddressSpaceForbidden, &vpath, format!("address space {c} overlaps {bad}, which Azure reserves (multicast, broadcast, loopback, link-local or the internal DNS address)"));
                            continue;
                        }
                        if let Some(o) = space.iter().find(|o| o.overlaps(&c)) {
                            self.push(
                                FindingCode::AddressSpaceOverlap,
                                &vpath,
                                format!("address space prefixes {o} and {c} overlap"),
                            );
                            continue;
                        }
                        space.push(c);
                    }
                }
            }
            let mut seen_subnets = BTreeSet::new();
            let mut subnets: Vec<Subnet> = Vec::new();
            for s in &v.subnets {
                let spath = format!("{vpath}/subnets/{}", s.name);
                if !seen_subnets.insert(s.name.to_ascii_lowercase()) {
                    self.push(
                        FindingCode::NameDuplicate,
                        &spath,
                        format!("two subnets of `{}` are named `{}`", v.name, s.name),
                    );
                    continue;
                }
                let mut prefixes = Vec::new();
                for p in &s.address_prefixes {
                    if let Some(ptr) = parse_unknown_marker(p) {
                        self.push(
                            FindingCode::UnknownAddress,
                            &spath,
                            unknown_address_message("the subnet prefix", ptr),
                        );
                        continue;
                    }
                    let c = match p.parse::<Cidr>() {
                        Ok(c) => c,
                        Err(e) => {
                            self.push(
                                FindingCode::AddressPrefixInvalid,
                                &spath,
                                format!("address prefix: {e}"),
                            );
                            continue;
                        }
                    };
                    let size_ok = if c.is_ipv4() {
                        (2..=29).contains(&c.prefix_len())
                    } else {
                        c.prefix_len() == 64
                    };
                    if !size_ok {
                        self.push(FindingCode::SubnetSizeInvalid, &spath, format!("{c}: IPv4 subnets must be /29 (smallest) to /2 (largest), IPv6 subnets exactly /64"));
                        continue;
                    }
                    if !space.iter().any(|a| a.covers(&c)) {
                        let list: Vec<String> = space.iter().map(Cidr::to_string).collect();
                        self.push(
                            FindingCode::SubnetOutsideAddressSpace,
                            &spath,
                            format!(
                                "{c} is outside the address space of `{}` ({})",
                                v.name,
                                list.join(", ")
                            ),
                        );
                        continue;
                    }
                    let mut clash = None;
                    for o in &subnets {
                        if let Some(op) = o.prefixes.iter().find(|op| op.overlaps(&c)) {
                            clash = Some((o.name.clone(), *op));
                            break;
                        }
                    }
                    if let Some(op) = prefixes.iter().find(|op: &&Cidr| op.overlaps(&c)) {
                        clash = Some((s.name.clone(), *op));
                    }
                    if let Some((other, op)) = clash {
                        self.push(FindingCode::SubnetOverlap, &spath, format!("{c} overlaps {op} of subnet `{other}`; subnet ranges can't overlap"));
                        continue;
                    }
                    prefixes.push(c);
                }
                let nsg = nsg_ref(&mut self, &s.nsg, &spath);
                subnets.push(Subnet {
                    name: s.name.clone(),
                    prefixes,
                    delegations: s.delegations.clone(),
                    nsg,
                    resources: s.resources.clone(),
                    private_endpoint_network_policies: s.private_endpoint_network_policies,
                });
            }
            vnets.push(Vnet {
                name: v.name.clone(),
                region: v.region.clone(),
                subscription: v
                    .subscription
                    .clone()
                    .unwrap_or_else(|| subscription_id.clone()),
                address_space: space,
                connected: Vec::new(),
                subnets,
                virtual_network_tag: Vec::new(),
            });
        }

        // --- Peerings ---
        let mut reported_overlap = BTreeSet::new();
        for (vi, v) in fx.vnets.iter().enumerate() {
            for p in &v.peerings {
                let vpath = format!("vnets/{}", v.name);
                let Some((pi, peer)) = find_ci(&fx.vnets, p, |x| &x.name) else {
                    self.push(
                        FindingCode::ReferenceUnknown,
                        &vpath,
                        format!("peering to `{p}`: no such VNet"),
                    );
                    continue;
                };
                if pi == vi {
                    self.push(
                        FindingCode::ReferenceUnknown,
                        &vpath,
                        "a VNet cannot peer with itself",
                    );
                    continue;
                }
                let back = peer
                    .peerings
                    .iter()
                    .any(|b| b.eq_ignore_ascii_case(&v.name));
                if !back {
                    self.push(FindingCode::PeeringNotConnected, format!("{vpath}/peerings/{}", peer.name), format!("`{}` lists `{}` but `{}` does not list `{}`: the peering stays Initiated and carries no traffic until both sides create it", v.name, peer.name, peer.name, v.name));
                    continue;
                }
                let key = (vi.min(pi), vi.max(pi));
                if let Some((a, b)) =
                    first_overlap(&vnets[vi].address_space, &vnets[pi].address_space)
                {
                    if reported_overlap.insert(key) {
                        self.push(FindingCode::PeeringAddressOverlap, &vpath, format!("peered VNets `{}` ({a}) and `{}` ({b}) overlap; connected VNets' address spaces must not overlap", v.name, peer.name));
                    }
                    continue;
                }
                if !vnets[vi].connected.contains(&pi) {
                    vnets[vi].connected.push(pi);
                }
            }
        }
        for vi in 0..vnets.len() {
            vnets[vi].connected.sort_unstable();
            let mut tag = vnets[vi].address_space.clone();
            for &pi in &vnets[vi].connected.clone() {
                tag.extend_from_slice(&vnets[pi].address_space);
            }
            vnets[vi].virtual_network_tag = tag;
        }

        // --- Hosts ---
        self.dup_names("hosts", fx.hosts.iter().map(|h| h.name.as_str()));
        let mut hosts = Vec::new();
        let mut host_by_addr: BTreeMap<IpAddr, usize> = BTreeMap::new();
        let mut host_by_public: BTreeMap<IpAddr, usize> = BTreeMap::new();
        let mut dns_owner: BTreeMap<String, String> = BTreeMap::new();
        for h in &fx.hosts {
            let hpath = format!("hosts/{}", h.name);
            if let Some(ptr) = parse_unknown_marker(&h.address) {
                self.push(
                    FindingCode::UnknownAddress,
                    &hpath,
                    unknown_address_message("the host address", ptr),
                );
                continue;
            }
            let Ok(address) = h.address.trim().parse::<IpAddr>() else {
                self.push(
                    FindingCode::HostAddressInvalid,
                    &hpath,
                    format!("address `{}` is not an IPv4 or IPv6 address", h.address),
                );
                continue;
            };
            let public_address = match &h.public_address {
                None => None,
                Some(p) => match p.trim().parse::<IpAddr>() {
                    Ok(ip) if crate::cidr::is_public(ip) => Some(ip),
                    Ok(ip) => {
                        self.push(
                            FindingCode::HostAddressInvalid,
                            &hpath,
                            format!("public_address {ip} is not a public address"),
                        );
                        None
                    }
                    Err(_) => {
                        self.push(
                            FindingCode::HostAddressInvalid,
                            &hpath,
                            format!("public_address `{p}` is not an IP address"),
                        );
                        None
                    }
                },
            };
            let mut placement = None;
            for (vi, v) in vnets.iter().enumerate() {
                if !v.address_space.iter().any(|p| p.contains(address)) {
                    continue;
                }
                match v
                    .subnets
                    .iter()
                    .position(|s| s.prefixes.iter().any(|p| p.contains(address)))
                {
                    None => self.push(
                        FindingCode::HostNotInSubnet,
                        &hpath,
                        format!(
                            "{address} is in the address space of `{}` but in none of its subnets",
                            v.name
                        ),
                    ),
                    Some(si) => {
                        let prefix = v.subnets[si]
                            .prefix_of(address)
                            .expect("position found a containing prefix");
                        let off = crate::cidr::addr_to_u128(address)
                            - crate::cidr::addr_to_u128(prefix.first());
                        if off < RESERVED_AT_START || address == prefix.last() {
                            self.push(FindingCode::HostAddressReserved, &hpath, format!("{address} is one of the five addresses Azure reserves in {prefix} (the first four and the last)"));
                        }
                        placement = Some((vi, si));
                    }
                }
                break;
            }
            if h.kind == HostKind::PrivateEndpoint {
                if let Some((vi, si)) = placement {
                    let subnet = &vnets[vi].subnets[si];
                    let nsgs_present = h.nsg.is_some() || subnet.nsg.is_some();
                    if nsgs_present && !subnet.private_endpoint_network_policies.nsg_applies() {
                        self.push(FindingCode::PrivateEndpointNsgInert, &hpath, format!(
                            "inbound NSG rules do not filter traffic to this private endpoint: subnet `{}` has private_endpoint_network_policies = {} (set Enabled or NetworkSecurityGroupEnabled to apply them)",
                            subnet.name, subnet.private_endpoint_network_policies
                        ));
                    }
                }
            }
            if let Some(prev) = host_by_addr.get(&address) {
                let prev_name: &String = &fx.hosts[*prev].name;
                self.push(
                    FindingCode::HostAddressDuplicate,
                    &hpath,
                    format!("{address} is already used by host `{prev_name}`"),
                );
            }
            let nsg = nsg_ref(&mut self, &h.nsg, &hpath);
            let mut dns = Vec::new();
            for d in &h.dns {
                let n = normalize_dns(d);
                if !valid_dns_name(&n) {
                    self.push(
                        FindingCode::DnsNameInvalid,
                        &hpath,
                        format!("`{d}` is not a valid DNS name"),
                    );
                    continue;
                }
                if let Some(owner) = dns_owner.get(&n) {
                    self.push(
                        FindingCode::DnsNameInvalid,
                        &hpath,
                        format!("DNS name `{d}` already belongs to host `{owner}`"),
                    );
                    continue;
                }
                dns_owner.insert(n.clone(), h.name.clone());
                dns.push(n);
            }
            let mut services = Vec::new();
            let mut ports = BTreeSet::new();
            for s in &h.services {
                let spath = format!("{hpath}/services/{}", s.port);
                if !ports.insert(s.port) {
                    self.push(
                        FindingCode::ServicePortDuplicate,
                        &spath,
                        format!("port {} is declared twice", s.port),
                    );
                    continue;
                }
                let upstream = match (&s.serve, &s.upstream) {
                    (Some(_), None) => None,
                    (None, Some(u)) => {
                        match u.trim().parse::<SocketAddr>() {
                            Ok(sa)
                                if sa.ip().is_loopback()
                                    || fx
                                        .gateway
                                        .as_ref()
                                        .is_some_and(|g| g.allow_non_loopback_upstreams) =>
                            {
                                Some(sa)
                            }
                            Ok(sa) => {
                                self.push(FindingCode::ServiceUpstreamNotLoopback, &spath, format!("upstream {sa} is not a loopback socket; the gateway only dials loopback unless [gateway] allow_non_loopback_upstreams = true"));
                                continue;
                            }
                            Err(_) => {
                                self.push(FindingCode::ServiceInvalid, &spath, format!("upstream `{u}` is not a socket address like 127.0.0.1:9443"));
                                continue;
                            }
                        }
                    }
                    (None, None) => {
                        self.push(FindingCode::ServiceInvalid, &spath, "give `serve = \"echo\"` or `upstream = \"127.0.0.1:PORT\"` (a harness can also bind it at start)");
                        None
                    }
                    (Some(_), Some(_)) => {
                        self.push(
                            FindingCode::ServiceInvalid,
                            &spath,
                            "give either `serve` or `upstream`, not both",
                        );
                        continue;
                    }
                };
                services.push(Service {
                    port: s.port,
                    tls: s.tls,
                    serve: s.serve,
                    upstream,
                });
            }
            let idx = hosts.len();
            host_by_addr.entry(address).or_insert(idx);
            if let Some(p) = public_address {
                host_by_public.entry(p).or_insert(idx);
            }
            hosts.push(Host {
                name: h.name.clone(),
                address,
                public_address,
                nsg,
                asgs: h
                    .application_security_groups
                    .iter()
                    .map(|a| a.to_ascii_lowercase())
                    .collect(),
                dns,
                kind: h.kind,
                services,
                placement,
            });
        }
        let mut asg_members: BTreeMap<String, Vec<IpAddr>> =
            known_asgs.iter().map(|a| (a.clone(), Vec::new())).collect();
        for h in &hosts {
            for a in &h.asgs {
                asg_members.entry(a.clone()).or_default().push(h.address);
            }
        }

        // --- APIM ---
        let apim = fx.apim.as_ref().map(|a| {
            let subscription = a
                .subscription
                .clone()
                .unwrap_or_else(|| subscription_id.clone());
            let mut subnet = None;
            if let Some(sref) = &a.subnet {
                match sref.split_once('/') {
                    Some((vn, sn)) => match find_ci(&vnets, vn, |v| &v.name) {
                        Some((vi, v)) => match find_ci(&v.subnets, sn, |s| &s.name) {
                            Some((si, _)) => subnet = Some((vi, si)),
                            None => self.push(
                                FindingCode::ReferenceUnknown,
                                "apim",
                                format!("subnet `{sref}`: VNet `{vn}` has no subnet `{sn}`"),
                            ),
                        },
                        None => self.push(
                            FindingCode::ReferenceUnknown,
                            "apim",
                            format!("subnet `{sref}`: no VNet named `{vn}`"),
                        ),
                    },
                    None => self.push(
                        FindingCode::ReferenceUnknown,
                        "apim",
                        format!("subnet `{sref}` must be written `vnet/subnet`"),
                    ),
                }
            } else if a.virtual_network != NetworkMode::None {
                self.push(
                    FindingCode::ApimSubnetRequired,
                    "apim",
                    format!(
                        "virtual_network = \"{}\" needs `subnet = \"vnet/subnet\"`",
                        a.virtual_network
                    ),
                );
            }
            let mut private_address = None;
            if a.virtual_network != NetworkMode::None {
                if let Some((vi, si)) = subnet {
                    let s = &vnets[vi].subnets[si];
                    match &a.address {
                        Some(text) => match text.trim().parse::<IpAddr>() {
                            Ok(ip) => match s.prefix_of(ip) {
                                Some(p)
                                    if crate::cidr::addr_to_u128(ip)
                                        - crate::cidr::addr_to_u128(p.first())
                                        >= RESERVED_AT_START
                                        && ip != p.last() =>
                                {
                                    private_address = Some(ip)
                                }
                                _ => self.push(
                                    FindingCode::ApimAddressInvalid,
                                    "apim",
                                    format!(
                                        "address {ip} is not a usable address of subnet `{}`",
                                        s.name
                                    ),
                                ),
                            },
                            Err(_) => self.push(
                                FindingCode::ApimAddressInvalid,
                                "apim",
                                format!("address `{text}` is not an IP address"),
                            ),
                        },
                        None => {
                            private_address =
                                s.prefixes.first().and_then(|p| p.nth(RESERVED_AT_START))
                        }
                    }
                }
            }
            if let Some(ip) = private_address {
                if let Some(&h) = host_by_addr.get(&ip) {
                    self.push(
                        FindingCode::HostAddressDuplicate,
                        format!("hosts/{}", hosts[h].name),
                        format!("{ip} is the APIM instance's address in its subnet"),
                    );
                }
            }
            let public_address = match &a.public_address {
                Some(p) => match p.trim().parse::<IpAddr>() {
                    Ok(ip) if crate::cidr::is_public(ip) => ip,
                    _ => {
                        self.push(
                            FindingCode::ApimAddressInvalid,
                            "apim",
                            format!("public_address `{p}` is not a public IP address"),
                        );
                        DEFAULT_APIM_PUBLIC_ADDRESS
                            .parse()
                            .expect("constant address")
                    }
                },
                None => DEFAULT_APIM_PUBLIC_ADDRESS
                    .parse()
                    .expect("constant address"),
            };
            Apim {
                name: a.name.clone(),
                sku: a.sku,
                capacity: a.capacity,
                region: a.region.clone(),
                subscription,
                mode: a.virtual_network,
                subnet,
                previous_mode: a.previous_virtual_network,
                private_address,
                public_address,
            }
        });

        // --- Private DNS zones ---
        self.dup_names(
            "private_dns_zones",
            fx.private_dns_zones.iter().map(|z| z.name.as_str()),
        );
        let zones = fx
            .private_dns_zones
            .iter()
            .map(|z| self.zone(z, &vnets))
            .collect();

        // --- Gateway and APIs ---
        let gateway = fx.gateway.clone().unwrap_or_default();
        for (key, value) in [
            ("listen", &gateway.listen),
            ("admin_listen", &gateway.admin_listen),
        ] {
            if let Some(v) = value {
                match v.trim().parse::<SocketAddr>() {
                    Ok(sa) if sa.ip().is_loopback() => {}
                    _ => self.push(
                        FindingCode::GatewayListenInvalid,
                        "gateway",
                        format!(
                            "{key} `{v}` must be a loopback socket address such as 127.0.0.1:0"
                        ),
                    ),
                }
            }
        }
        let (apis, mut api_findings) = api::build_apis(&fx.apis, &hosts);
        self.f.append(&mut api_findings);

        let mut t = Topology {
            fixture: fx.clone(),
            tags: self.tags.clone(),
            subscription_id,
            registered_providers,
            principal_actions,
            vnets,
            nsgs,
            hosts,
            apim,
            zones,
            apis,
            gateway,
            asg_members,
            compiled: Vec::new(),
            host_by_addr,
            host_by_public,
        };
        t.compile_all();
        let mut findings = self.f;
        findings.extend(crate::apim::preflight(&t));
        sort_findings(&mut findings);
        Built {
            topology: t,
            findings,
        }
    }

    fn zone(&mut self, z: &DnsZoneFile, vnets: &[Vnet]) -> DnsZone {
        let zpath = format!("private_dns_zones/{}", z.name);
        if !valid_dns_name(&z.name) {
            self.push(
                FindingCode::DnsNameInvalid,
                &zpath,
                format!("`{}` is not a valid zone name", z.name),
            );
        }
        let mut links = Vec::new();
        for l in &z.links {
            match find_ci(vnets, l, |v| &v.name) {
                Some((i, _)) => links.push(i),
                None => self.push(
                    FindingCode::ReferenceUnknown,
                    &zpath,
                    format!("link to `{l}`: no such VNet"),
                ),
            }
        }
        DnsZone {
            name: normalize_dns(&z.name),
            links,
        }
    }
}

fn unknown_address_message(what: &str, pointer: &str) -> String {
    format!("{what} is only known at deployment time (<unknown:{pointer}>); flows cannot be evaluated without it — give the value as a parameter or write it into the fixture")
}

fn first_overlap(a: &[Cidr], b: &[Cidr]) -> Option<(Cidr, Cidr)> {
    a.iter()
        .find_map(|x| b.iter().find(|y| x.overlaps(y)).map(|y| (*x, *y)))
}

impl Topology {
    fn compile_all(&mut self) {
        let nv = self.vnets.len();
        let mut used = vec![false; self.nsgs.len() * nv];
        for (vi, v) in self.vnets.iter().enumerate() {
            for s in &v.subnets {
                if let Some(n) = s.nsg {
                    used[n * nv + vi] = true;
                }
            }
        }
        for h in &self.hosts {
            if let (Some(n), Some((vi, _))) = (h.nsg, h.placement) {
                used[n * nv + vi] = true;
            }
        }
        let mut compiled = Vec::with_capacity(used.len());
        for (i, u) in used.iter().enumerate() {
            compiled.push(if *u {
                Some(self.nsgs[i / nv].compile(&self.context(i % nv)))
            } else {
                None
            });
        }
        self.compiled = compiled;
    }

    /// Whether the instance's mode attaches it to a subnet.
    pub(crate) fn apim_in_subnet(&self) -> Option<(&Apim, usize, usize, IpAddr)> {
        let a = self.apim.as_ref()?;
        if a.mode == NetworkMode::None {
            return None;
        }
        let (vi, si) = a.subnet?;
        Some((a, vi, si, a.private_address?))
    }

    /// Address that the instance's outbound flows leave from: the subnet address when
    /// integrated or injected, else its public address.
    pub fn apim_source(&self) -> Option<IpAddr> {
        match self.apim_in_subnet() {
            Some((_, _, _, ip)) => Some(ip),
            None => self.apim.as_ref().map(|a| a.public_address),
        }
    }

    /// Address of the instance's gateway endpoint: public, except with injection (the private VIP).
    pub fn apim_endpoint(&self) -> Option<IpAddr> {
        let a = self.apim.as_ref()?;
        match (a.mode, a.private_address) {
            (NetworkMode::Injection, Some(ip)) => Some(ip),
            _ => Some(a.public_address),
        }
    }
}

#[cfg(test)]
mod tests;
