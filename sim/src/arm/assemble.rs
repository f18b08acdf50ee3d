//! Merging mapped resources from every input into one [`Fixture`]: the same resource twice is
//! fine when identical and an error when not; child resources join their parents; references
//! (a subnet's NSG, a NIC's subnet, the instance's subnet) must resolve among the inputs;
//! dynamic NIC addresses are allocated; API backends get a built-in echo service.

use std::collections::BTreeSet;
use std::net::IpAddr;

use super::error::{ImportError, Location};
use super::map::{
    Addr, ApiDef, ApimDef, Mapped, Mapper, NicDef, NsgDef, PeeringEntry, SubnetEntry, VnetDef,
};
use super::resource::{parse_id, Res};
use super::{is_marker, IgnoredResource};
use crate::api::BackendUrl;
use crate::cidr::{is_public, Cidr};
use crate::finding::{Assumption, Finding, FindingCode};
use crate::fixture::{
    ApiFile, Fixture, HostFile, HostKind, NetworkMode, NsgFile, RuleFile, ServeKind, ServiceFile,
    SubscriptionFile, VnetFile,
};
use crate::topology::RESERVED_AT_START;

struct VnetAcc {
    name: String,
    def: Option<(VnetDef, Location)>,
    subnets: Vec<SubnetEntry>,
    peerings: Vec<PeeringEntry>,
    /// Where a child first referred to this VNet (for "not among the inputs").
    child_at: Option<Location>,
}

struct NsgAcc {
    name: String,
    def: Option<(NsgDef, Location)>,
    rules: Vec<(RuleFile, Location)>,
    child_at: Option<Location>,
}

/// Everything mapped so far.
pub(crate) struct Assembler {
    pub mapper: Mapper,
    vnets: Vec<VnetAcc>,
    nsgs: Vec<NsgAcc>,
    asgs: Vec<String>,
    nics: Vec<(NicDef, Location)>,
    apim: Option<(ApimDef, Location)>,
    apis: Vec<(ApiDef, Location)>,
    pub ignored: Vec<IgnoredResource>,
    pub assumptions: BTreeSet<Assumption>,
    /// Where each entry of the finished fixture came from: fixture pointer → input location.
    pub origins: Vec<(String, Location)>,
}

fn conflict(kind: &str, name: &str, first: &Location, second: &Location) -> ImportError {
    ImportError::Conflict {
        kind: kind.to_string(),
        name: name.to_string(),
        first: first.clone(),
        second: second.clone(),
    }
}

fn find_ci<'a, T>(items: &'a mut [T], name: &str, key: impl Fn(&T) -> &str) -> Option<&'a mut T> {
    items.iter_mut().find(|t| key(t).eq_ignore_ascii_case(name))
}

fn merge_subnet(acc: &mut VnetAcc, e: SubnetEntry) -> Result<(), ImportError> {
    match acc
        .subnets
        .iter()
        .find(|s| s.file.name.eq_ignore_ascii_case(&e.file.name))
    {
        Some(s) if s == &e => Ok(()),
        Some(s) => Err(conflict(
            "subnet",
            &format!("{}/{}", acc.name, e.file.name),
            &s.at,
            &e.at,
        )),
        None => {
            acc.subnets.push(e);
            Ok(())
        }
    }
}

fn merge_rule(acc: &mut NsgAcc, rule: RuleFile, at: Location) -> Result<(), ImportError> {
    match acc
        .rules
        .iter()
        .find(|(r, _)| r.name.eq_ignore_ascii_case(&rule.name))
    {
        Some((r, _)) if r == &rule => Ok(()),
        Some((_, first)) => Err(conflict(
            "security rule",
            &format!("{}/{}", acc.name, rule.name),
            first,
            &at,
        )),
        None => {
            acc.rules.push((rule, at));
            Ok(())
        }
    }
}

// === impl Assembler ===

impl Assembler {
    pub fn new(mapper: Mapper) -> Assembler {
        Assembler {
            mapper,
            vnets: Vec::new(),
            nsgs: Vec::new(),
            asgs: Vec::new(),
            nics: Vec::new(),
            apim: None,
            apis: Vec::new(),
            ignored: Vec::new(),
            assumptions: BTreeSet::new(),
            origins: Vec::new(),
        }
    }

    fn vnet_acc(&mut self, name: &str) -> &mut VnetAcc {
        if let Some(i) = self
            .vnets
            .iter()
            .position(|v| v.name.eq_ignore_ascii_case(name))
        {
            return &mut self.vnets[i];
        }
        self.vnets.push(VnetAcc {
            name: name.to_string(),
            def: None,
            subnets: Vec::new(),
            peerings: Vec::new(),
            child_at: None,
        });
        self.vnets.last_mut().expect("just pushed")
    }

    fn nsg_acc(&mut self, name: &str) -> &mut NsgAcc {
        if let Some(i) = self
            .nsgs
            .iter()
            .position(|v| v.name.eq_ignore_ascii_case(name))
        {
            return &mut self.nsgs[i];
        }
        self.nsgs.push(NsgAcc {
            name: name.to_string(),
            def: None,
            rules: Vec::new(),
            child_at: None,
        });
        self.nsgs.last_mut().expect("just pushed")
    }

    /// Maps and adds one resource.
    pub fn add(&mut self, r: &Res) -> Result<(), ImportError> {
        let at = r.at.clone();
        match self.mapper.map(r)? {
            Mapped::Vnet(def) => {
                let acc = self.vnet_acc(&def.name);
                if let Some((d0, at0)) = &acc.def {
                    return if d0 == &def { Ok(()) } else { Err(conflict("VNet", &def.name, at0, &at)) };
                }
                for s in def.subnets.clone() {
                    merge_subnet(acc, s)?;
                }
                for p in def.peerings.clone() {
                    if !acc.peerings.contains(&p) {
                        acc.peerings.push(p);
                    }
                }
                acc.def = Some((def, at));
            }
            Mapped::Subnet { vnet, entry } => {
                let acc = self.vnet_acc(&vnet);
                acc.child_at.get_or_insert_with(|| entry.at.clone());
                merge_subnet(acc, entry)?;
            }
            Mapped::Peering { vnet, entry } => {
                let acc = self.vnet_acc(&vnet);
                acc.child_at.get_or_insert_with(|| at.clone());
                if let Some(p) = entry {
                    if !acc.peerings.contains(&p) {
                        acc.peerings.push(p);
                    }
                }
            }
            Mapped::Nsg(def) => {
                let acc = self.nsg_acc(&def.name);
                if let Some((d0, at0)) = &acc.def {
                    return if d0 == &def { Ok(()) } else { Err(conflict("NSG", &def.name, at0, &at)) };
                }
                for (i, rule) in def.rules.iter().enumerate() {
                    let rat = Location::new(at.input.clone(), format!("{}/properties/securityRules/{i}", at.pointer));
                    merge_rule(acc, rule.clone(), rat)?;
                }
                acc.def = Some((def, at));
            }
            Mapped::Rule { nsg, rule } => {
                let acc = self.nsg_acc(&nsg);
                acc.child_at.get_or_insert_with(|| at.clone());
                merge_rule(acc, rule, at)?;
            }
            Mapped::Asg(name) => {
                if !self.asgs.iter().any(|a| a.eq_ignore_ascii_case(&name)) {
                    self.asgs.push(name);
                }
            }
            Mapped::Nic(def) => match find_ci(&mut self.nics, &def.name, |(n, _)| &n.name) {
                Some((d0, _)) if *d0 == def => {}
                Some((_, at0)) => return Err(conflict("NIC", &def.name, at0, &at)),
                None => self.nics.push((def, at)),
            },
            Mapped::Apim(def) => match &self.apim {
                Some((d0, _)) if *d0 == def => {}
                Some((d0, at0)) if d0.file.name.eq_ignore_ascii_case(&def.file.name) => {
                    return Err(conflict("API Management instance", &def.file.name, at0, &at))
                }
                Some((d0, at0)) => {
                    return Err(ImportError::Invalid {
                        at,
                        message: format!(
                            "a topology holds one API Management instance, but the inputs define `{}` ({at0}) and `{}`",
                            d0.file.name, def.file.name
                        ),
                    })
                }
                None => self.apim = Some((def, at)),
            },
            Mapped::Api(def) => match find_ci(&mut self.apis, &def.file.name, |(a, _)| &a.file.name) {
                Some((d0, _)) if *d0 == def => {}
                Some((_, at0)) => return Err(conflict("API", &def.file.name, at0, &at)),
                None => self.apis.push((def, at)),
            },
            Mapped::Ignored(i) => self.ignored.push(i),
        }
        Ok(())
    }

    fn has_vnet_subnet(&self, reference: &str) -> bool {
        let Some((v, s)) = reference.split_once('/') else {
            return false;
        };
        self.vnets.iter().any(|a| {
            a.name.eq_ignore_ascii_case(v)
                && a.subnets
                    .iter()
                    .any(|x| x.file.name.eq_ignore_ascii_case(s))
        })
    }

    fn has_nsg(&self, name: &str) -> bool {
        is_marker(name) || self.nsgs.iter().any(|n| n.name.eq_ignore_ascii_case(name))
    }

    /// Checks references and builds the fixture.
    pub fn finish(mut self, subscription: &str) -> Result<(Fixture, Assembler), ImportError> {
        for v in &self.vnets {
            if v.def.is_none() {
                let at = v.child_at.clone().unwrap_or_default();
                return Err(ImportError::MissingReference {
                    at,
                    message: format!(
                        "this belongs to VNet `{}`, which is not among the inputs; add the template that deploys it or the output of `az network vnet show --name {}`",
                        v.name, v.name
                    ),
                });
            }
        }
        for n in &self.nsgs {
            if n.def.is_none() {
                return Err(ImportError::MissingReference {
                    at: n.child_at.clone().unwrap_or_default(),
                    message: format!(
                        "this rule belongs to NSG `{}`, which is not among the inputs; add the template that deploys it or the output of `az network nsg show --name {}`",
                        n.name, n.name
                    ),
                });
            }
        }
        for v in &self.vnets {
            for s in &v.subnets {
                if let Some(n) = &s.file.nsg {
                    if !self.has_nsg(n) {
                        return Err(ImportError::MissingReference {
                            at: s.at.clone(),
                            message: format!(
                                "subnet `{}/{}` is associated with NSG `{n}`, which is not among the inputs; add the template that deploys it or the output of `az network nsg show --name {n}`",
                                v.name, s.file.name
                            ),
                        });
                    }
                }
            }
        }
        for (nic, at) in &self.nics {
            if let Some(n) = &nic.nsg {
                if !self.has_nsg(n) {
                    return Err(ImportError::MissingReference {
                        at: at.clone(),
                        message: format!("NIC `{}` uses NSG `{n}`, which is not among the inputs; add its template or the output of `az network nsg show --name {n}`", nic.name),
                    });
                }
            }
            for c in &nic.ip_configs {
                if !is_marker(&c.subnet) && !self.has_vnet_subnet(&c.subnet) {
                    return Err(ImportError::MissingReference {
                        at: at.clone(),
                        message: format!("NIC `{}` is in subnet `{}`, which is not among the inputs; add the VNet's template or the output of `az network vnet show`", nic.name, c.subnet),
                    });
                }
            }
        }
        if let Some((a, at)) = &self.apim {
            if let Some(s) = &a.file.subnet {
                if !is_marker(s) && !self.has_vnet_subnet(s) {
                    return Err(ImportError::MissingReference {
                        at: at.clone(),
                        message: format!("API Management instance `{}` uses subnet `{s}`, which is not among the inputs; add the VNet's template or the output of `az network vnet show`", a.file.name),
                    });
                }
            }
        }
        for (api, at) in &self.apis {
            let ok = self
                .apim
                .as_ref()
                .is_some_and(|(a, _)| a.file.name.eq_ignore_ascii_case(&api.service));
            if !ok {
                return Err(ImportError::MissingReference {
                    at: at.clone(),
                    message: format!("API `{}` belongs to API Management instance `{}`, which is not among the inputs; add its template or the output of `az apim show --name {}`", api.file.name, api.service, api.service),
                });
            }
        }

        // Peerings to VNets outside the inputs carry nothing the model can see.
        let names: Vec<String> = self
            .vnets
            .iter()
            .map(|v| v.name.to_ascii_lowercase())
            .collect();
        let mut findings = Vec::new();
        for v in &mut self.vnets {
            v.peerings.retain(|p| {
                let keep = is_marker(&p.remote) || names.contains(&p.remote.to_ascii_lowercase());
                if !keep {
                    findings.push(Finding::new(
                        FindingCode::PeeringNotConnected,
                        format!("vnets/{}/peerings/{}", v.name, p.remote),
                        format!("`{}` peers with `{}`, which is not among the inputs; the peering is left out of the model", v.name, p.remote),
                    ).at(Some((&p.at).into())));
                }
                keep
            });
        }
        self.mapper.findings.extend(findings);

        let hosts = self.hosts()?;
        self.record_origins();
        let mut fixture = Fixture {
            subscription: Some(SubscriptionFile {
                id: subscription.to_string(),
                registered_providers: None,
            }),
            ..Fixture::default()
        };
        let nic_names: Vec<String> = self
            .nics
            .iter()
            .map(|(n, _)| n.name.to_ascii_lowercase())
            .collect();
        for v in &self.vnets {
            let (def, _) = v.def.as_ref().expect("checked above");
            let subnets = v
                .subnets
                .iter()
                .map(|s| {
                    let mut f = s.file.clone();
                    for id in &s.attached {
                        let p = parse_id(id);
                        let nic = p
                            .segments
                            .iter()
                            .find(|(t, _)| t.eq_ignore_ascii_case("networkInterfaces"));
                        if nic.is_some_and(|(_, n)| nic_names.contains(&n.to_ascii_lowercase())) {
                            continue;
                        }
                        let short = id
                            .to_ascii_lowercase()
                            .find("/providers/")
                            .map_or(id.as_str(), |i| &id[i + "/providers/".len()..]);
                        if !f.resources.iter().any(|r| r == short) {
                            f.resources.push(short.to_string());
                        }
                    }
                    f
                })
                .collect();
            fixture.vnets.push(VnetFile {
                name: def.name.clone(),
                region: def.region.clone(),
                subscription: def.subscription.clone(),
                address_space: def.address_space.clone(),
                peerings: v
                    .peerings
                    .iter()
                    .map(|p| crate::fixture::PeeringFile {
                        remote: p.remote.clone(),
                        allow_forwarded_traffic: p.allow_forwarded_traffic,
                        allow_virtual_network_access: true,
                    })
                    .collect(),
                bgp_routes: Vec::new(),
                subnets,
            });
        }
        for n in &self.nsgs {
            let (def, _) = n.def.as_ref().expect("checked above");
            fixture.nsgs.push(NsgFile {
                name: def.name.clone(),
                flush_connection: def.flush_connection,
                security_rules: n.rules.iter().map(|(r, _)| r.clone()).collect(),
            });
        }
        let mut asgs = self.asgs.clone();
        for a in &self.mapper.referenced_asgs {
            if !asgs.iter().any(|x| x.eq_ignore_ascii_case(a)) {
                asgs.push(a.clone());
            }
        }
        fixture.application_security_groups = asgs;
        fixture.hosts = hosts;
        fixture.apim = self.apim.as_ref().map(|(a, _)| a.file.clone());
        fixture.apis = self.apis.iter().map(|(a, _)| a.file.clone()).collect();
        Ok((fixture, self))
    }

    /// Where each fixture entry came from, in the order [`Assembler::finish`] writes them.
    fn record_origins(&mut self) {
        let mut o = Vec::new();
        for (vi, v) in self.vnets.iter().enumerate() {
            if let Some((_, at)) = &v.def {
                o.push((format!("/vnets/{vi}"), at.clone()));
            }
            for (si, s) in v.subnets.iter().enumerate() {
                o.push((format!("/vnets/{vi}/subnets/{si}"), s.at.clone()));
            }
            for (pi, p) in v.peerings.iter().enumerate() {
                o.push((format!("/vnets/{vi}/peerings/{pi}"), p.at.clone()));
            }
        }
        for (ni, n) in self.nsgs.iter().enumerate() {
            if let Some((_, at)) = &n.def {
                o.push((format!("/nsgs/{ni}"), at.clone()));
            }
            for (ri, (_, at)) in n.rules.iter().enumerate() {
                o.push((format!("/nsgs/{ni}/security_rules/{ri}"), at.clone()));
            }
        }
        // One host per IP configuration, in the order `hosts` writes them.
        let mut hi = 0;
        for (nic, at) in &self.nics {
            for _ in &nic.ip_configs {
                o.push((format!("/hosts/{hi}"), at.clone()));
                hi += 1;
            }
        }
        if let Some((_, at)) = &self.apim {
            o.push(("/apim".to_string(), at.clone()));
        }
        for (ai, (_, at)) in self.apis.iter().enumerate() {
            o.push((format!("/apis/{ai}"), at.clone()));
        }
        self.origins = o;
    }

    /// NICs → hosts, with dynamic addresses allocated in resource order.
    fn hosts(&mut self) -> Result<Vec<HostFile>, ImportError> {
        let mut used: BTreeSet<IpAddr> = BTreeSet::new();
        for (nic, _) in &self.nics {
            for c in &nic.ip_configs {
                if let Addr::Static(a) = &c.address {
                    if let Ok(ip) = a.trim().parse() {
                        used.insert(ip);
                    }
                }
            }
        }
        if let Some((ApimDef { file, .. }, _)) = &self.apim {
            if file.virtual_network != NetworkMode::None && file.address.is_none() {
                if let Some(p) = file
                    .subnet
                    .as_deref()
                    .and_then(|s| self.first_prefix(s, false))
                {
                    used.extend(p.nth(RESERVED_AT_START));
                }
            }
        }
        let mut hosts = Vec::new();
        let nics = self.nics.clone();
        for (nic, at) in &nics {
            let primary = nic.ip_configs.iter().position(|c| c.primary).unwrap_or(0);
            for (i, c) in nic.ip_configs.iter().enumerate() {
                let name = if i == primary {
                    nic.name.clone()
                } else {
                    format!("{}.{}", nic.name, c.name)
                };
                let address = match &c.address {
                    Addr::Static(a) => a.clone(),
                    Addr::Dynamic => self.allocate(&nic.name, c, &name, at, &mut used)?,
                };
                hosts.push(HostFile {
                    name,
                    address,
                    public_address: None,
                    nsg: nic.nsg.clone(),
                    application_security_groups: c.asgs.clone(),
                    dns: Vec::new(),
                    kind: HostKind::Nic,
                    services: Vec::new(),
                    subnet: None,
                    ip_forwarding: nic.ip_forwarding,
                    public_network_access: None,
                    private_link_fqdn: None,
                });
            }
        }
        Ok(hosts)
    }

    fn subnet_prefixes(&self, reference: &str) -> Vec<String> {
        let Some((v, s)) = reference.split_once('/') else {
            return Vec::new();
        };
        self.vnets
            .iter()
            .filter(|a| a.name.eq_ignore_ascii_case(v))
            .flat_map(|a| a.subnets.iter())
            .filter(|x| x.file.name.eq_ignore_ascii_case(s))
            .flat_map(|x| x.file.address_prefixes.clone())
            .collect()
    }

    fn first_prefix(&self, reference: &str, ipv6: bool) -> Option<Cidr> {
        self.subnet_prefixes(reference)
            .iter()
            .filter_map(|p| p.parse::<Cidr>().ok())
            .find(|c| c.is_ipv4() != ipv6)
    }

    fn allocate(
        &mut self,
        nic: &str,
        c: &super::map::IpConfig,
        host: &str,
        at: &Location,
        used: &mut BTreeSet<IpAddr>,
    ) -> Result<String, ImportError> {
        if is_marker(&c.subnet) {
            return Ok(c.subnet.clone());
        }
        let Some(prefix) = self.first_prefix(&c.subnet, c.ipv6) else {
            // The subnet's prefix is itself unknown: so is the address.
            if let Some(m) = self
                .subnet_prefixes(&c.subnet)
                .into_iter()
                .find(|p| is_marker(p))
            {
                if let Some(u) = self.mapper.unknowns.iter().find(|u| u.marker == m).cloned() {
                    let mut u = u;
                    u.subject = format!("hosts/{host}/address");
                    self.mapper.unknowns.push(u);
                }
                return Ok(m);
            }
            return Err(ImportError::Invalid {
                at: at.clone(),
                message: format!(
                    "cannot give NIC `{nic}` a dynamic address: subnet `{}` has no valid {} prefix",
                    c.subnet,
                    if c.ipv6 { "IPv6" } else { "IPv4" }
                ),
            });
        };
        let mut off = RESERVED_AT_START;
        while off + 1 < prefix.size() {
            let Some(ip) = prefix.nth(off) else { break };
            if used.insert(ip) {
                self.assumptions.insert(Assumption::DynamicPrivateAddress);
                return Ok(ip.to_string());
            }
            off += 1;
        }
        Err(ImportError::Invalid {
            at: at.clone(),
            message: format!("cannot give NIC `{nic}` a dynamic address: subnet `{}` ({prefix}) has no free usable address left", c.subnet),
        })
    }
}

/// Gives each API backend a built-in echo service on its host (matched by address, name or DNS
/// name), so the imported fixture can be served by `vnetsim up` as is; a backend at an IP
/// address outside every VNet becomes an external host. A backend named by the public name a
/// private endpoint serves (`private_link_fqdn`) is that endpoint: the name resolves through the
/// linked `privatelink` zone, so it is not added to the host's own names. Backends whose host is
/// a DNS name no imported host carries stay unresolved (`API_BACKEND_UNKNOWN_HOST` when the
/// topology is built). Runs after the private endpoints are mapped ([`super::private_link`]).
pub(crate) fn attach_backends(f: &mut Fixture) {
    let apis: Vec<ApiFile> = f.apis.clone();
    for api in apis {
        let Ok(url) = BackendUrl::parse(&api.backend) else {
            continue;
        };
        let ip = url.host.parse::<IpAddr>().ok();
        let idx = f.hosts.iter().position(|h| match ip {
            Some(ip) => {
                h.address.trim().parse::<IpAddr>() == Ok(ip)
                    || h.public_address
                        .as_deref()
                        .and_then(|p| p.trim().parse::<IpAddr>().ok())
                        == Some(ip)
            }
            None => {
                h.name.eq_ignore_ascii_case(&url.host)
                    || served_by(h, &url.host)
                    || h.dns
                        .iter()
                        .any(|d| d.trim_end_matches('.').eq_ignore_ascii_case(&url.host))
            }
        });
        let idx = match (idx, ip) {
            (Some(i), _) => i,
            (None, Some(ip)) if !in_any_vnet(f, ip) => {
                f.hosts.push(HostFile {
                    name: format!("backend-{}", url.host.replace(':', "-")),
                    address: ip.to_string(),
                    public_address: None,
                    nsg: None,
                    application_security_groups: Vec::new(),
                    dns: Vec::new(),
                    kind: HostKind::Nic,
                    services: Vec::new(),
                    subnet: None,
                    ip_forwarding: false,
                    public_network_access: None,
                    private_link_fqdn: None,
                });
                f.hosts.len() - 1
            }
            _ => continue,
        };
        let h = &mut f.hosts[idx];
        if ip.is_none()
            && !served_by(h, &url.host)
            && !h.dns.iter().any(|d| d.eq_ignore_ascii_case(&url.host))
        {
            h.dns.push(url.host.clone());
        }
        if !h.services.iter().any(|s| s.port == url.port) {
            h.services.push(ServiceFile {
                port: url.port,
                tls: url.https,
                serve: Some(ServeKind::Echo),
                upstream: None,
            });
        }
    }
}

/// Whether `host` is the public name the private endpoint `h` serves.
fn served_by(h: &HostFile, host: &str) -> bool {
    h.kind == HostKind::PrivateEndpoint
        && h.private_link_fqdn
            .as_deref()
            .is_some_and(|n| n.trim_end_matches('.').eq_ignore_ascii_case(host))
}

fn in_any_vnet(f: &Fixture, ip: IpAddr) -> bool {
    !is_public(ip)
        || f.vnets.iter().any(|v| {
            v.address_space
                .iter()
                .filter_map(|p| p.parse::<Cidr>().ok())
                .any(|c| c.contains(ip))
        })
}
