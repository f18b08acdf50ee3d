//! Network security groups: rules as parsed from a fixture ([`SecurityRule`]), the six default
//! rules, and three evaluators over one NSG in one direction:
//!
//! * [`ReferenceNsg`] — the oracle: a first-match linear scan over pre-parsed rules, written for
//!   obviousness (per-prefix `contains`, an `is_public` predicate for `Internet`).
//! * [`CompiledNsg::decide`] — the verdict-only path: rules sorted by priority, every address
//!   field an interval set, protocol a bit mask; allocates nothing.
//! * [`CompiledNsg::explain`] — the explaining path: per-field match flags for every rule
//!   examined, as Network Watcher's NSG diagnostics report them.
//!
//! Tags that depend on where the NSG is applied (`VirtualNetwork`, `Internet`) and application
//! security groups are resolved by a [`Context`]; [`crate::topology`] compiles each NSG once per
//! VNet it is applied in.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use serde::Serialize;

use crate::cidr::{is_public, AddrSet, Cidr};
use crate::classifier::{Classifier, RuleFields};
use crate::finding::{Finding, FindingCode};
use crate::fixture::{AddressField, PortField, RuleFile};
use crate::proto::{Access, Direction, PortSet, Protocol, RuleProtocol, NO_PORT};
use crate::tags::{ServiceTagTable, VirtualTag};

/// Lowest custom rule priority number (processed first).
pub const MIN_PRIORITY: i64 = 100;
/// Highest custom rule priority number. Source: NSG overview, "Security rules" table.
pub const MAX_PRIORITY: i64 = 4096;
/// Most custom rules per NSG. Source: networking limits table ("NSG rules per NSG": 1,000).
pub const MAX_RULES: usize = 1000;
/// Most IP addresses and ranges per NSG, counted separately for source and destination.
pub const MAX_PREFIXES_PER_SIDE: usize = 4000;
/// Most application security groups referenced on one side of a rule.
pub const MAX_ASGS_PER_RULE_SIDE: usize = 10;
/// Longest rule name. Source: NSG overview ("up to 80 characters").
pub const MAX_RULE_NAME: usize = 80;
/// Longest description. Source: NSG swagger ("Restricted to 140 chars").
pub const MAX_DESCRIPTION: usize = 140;
/// The address of the `AzureLoadBalancer` tag (the host's virtual IP).
pub const AZURE_LOAD_BALANCER: &str = "168.63.129.16/32";

/// A service tag reference on one side of a rule.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TagRef {
    /// `VirtualNetwork`, `Internet` or `AzureLoadBalancer`.
    Virtual(VirtualTag),
    /// A table tag, by the table's spelling.
    Table(String),
}

/// One side's addresses: the union of its parts. `any` is `*`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct AddressSpec {
    /// `*` (every address).
    pub any: bool,
    /// Explicit prefixes and addresses.
    pub prefixes: Vec<Cidr>,
    /// Service tags (at most one in a valid rule).
    pub tags: Vec<TagRef>,
    /// Application security group names (lower-cased).
    pub asgs: Vec<String>,
    /// The field as the user wrote it, for display.
    pub text: Vec<String>,
    /// JSON pointers of parts only known at deployment time (`<unknown:POINTER>` markers); such
    /// a side matches like `*` and makes the rule's decisions Indeterminate.
    pub unknown: Vec<String>,
}

impl AddressSpec {
    /// `*`.
    pub fn any() -> AddressSpec {
        AddressSpec {
            any: true,
            text: vec!["*".into()],
            ..AddressSpec::default()
        }
    }
    /// A single virtual tag.
    pub fn tag(t: VirtualTag) -> AddressSpec {
        AddressSpec {
            tags: vec![TagRef::Virtual(t)],
            text: vec![t.as_str().into()],
            ..AddressSpec::default()
        }
    }
}

/// Which fields of a rule are only known at deployment time (`<unknown:POINTER>` markers).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UnknownFields {
    /// The markers' JSON pointers, in field order.
    pub pointers: Vec<String>,
    /// The source address field holds a marker.
    pub source: bool,
    /// The source port field holds a marker.
    pub source_ports: bool,
    /// The destination address field holds a marker.
    pub destination: bool,
    /// The destination port field holds a marker.
    pub destination_ports: bool,
}

impl UnknownFields {
    /// Whether every field is known.
    pub fn is_empty(&self) -> bool {
        self.pointers.is_empty()
    }
}

/// A parsed, validated security rule (custom or default).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecurityRule {
    /// Name as the user (or Azure) spells it.
    pub name: String,
    /// Priority: 100–4096 for custom rules, 65000+ for defaults.
    pub priority: u32,
    /// Direction.
    pub direction: Direction,
    /// Access.
    pub access: Access,
    /// Protocol.
    pub protocol: RuleProtocol,
    /// Source addresses.
    pub source: AddressSpec,
    /// Source ports.
    pub source_ports: PortSet,
    /// Destination addresses.
    pub destination: AddressSpec,
    /// Destination ports.
    pub destination_ports: PortSet,
    /// One of the six default rules.
    pub is_default: bool,
    /// Description.
    pub description: Option<String>,
    /// Fields only known at deployment time; the rule is a wildcard on them, and a flow it
    /// matches only thanks to that wildcard is Indeterminate (`UNKNOWN_VALUE`).
    pub unknown: UnknownFields,
}

// === impl SecurityRule ===

impl SecurityRule {
    /// The name as Network Watcher reports it: `securityRules/<name>` or
    /// `defaultSecurityRules/<name>`.
    pub fn qualified_name(&self) -> String {
        if self.is_default {
            format!("defaultSecurityRules/{}", self.name)
        } else {
            format!("securityRules/{}", self.name)
        }
    }

    /// For a rule with unknown fields that matched a flow as a wildcard: whether its *known*
    /// items alone already match, so the unknown parts cannot change the decision. Port fields
    /// with a marker never count as known. Allocates (only on this rare path).
    pub fn definitely_matches(&self, ctx: &Context<'_>, flow: &FlowKey) -> bool {
        if self.unknown.source_ports || self.unknown.destination_ports {
            return false;
        }
        let known = |spec: &AddressSpec| AddressSpec {
            unknown: Vec::new(),
            ..spec.clone()
        };
        (!self.unknown.source || ctx.resolve(&known(&self.source)).contains(flow.source))
            && (!self.unknown.destination
                || ctx
                    .resolve(&known(&self.destination))
                    .contains(flow.destination))
    }

    /// Parses a fixture rule; `subject` is its resource path. Returns every finding at once.
    ///
    /// # Errors
    /// The findings (codes `RULE_*`, `REFERENCE_UNKNOWN`) when the rule is invalid.
    pub fn from_file(
        r: &RuleFile,
        tags: &ServiceTagTable,
        known_asgs: &BTreeSet<String>,
        subject: &str,
    ) -> Result<SecurityRule, Vec<Finding>> {
        let mut f = Vec::new();
        if !valid_rule_name(&r.name) {
            f.push(Finding::new(
                FindingCode::RuleNameInvalid,
                subject,
                format!("rule name `{}` is invalid: 1-80 characters, begin with a letter or number, end with a letter, number or underscore, and contain only letters, numbers, underscores, periods or hyphens", r.name),
            ));
        }
        if !(MIN_PRIORITY..=MAX_PRIORITY).contains(&r.priority) {
            f.push(Finding::new(
                FindingCode::RulePriorityOutOfRange,
                subject,
                format!("priority {} is outside 100-4096 (custom rules must use 100-4096; 65000+ is reserved for default rules)", r.priority),
            ));
        }
        if r.description
            .as_ref()
            .is_some_and(|d| d.chars().count() > MAX_DESCRIPTION)
        {
            f.push(Finding::new(
                FindingCode::RuleDescriptionTooLong,
                subject,
                "description exceeds 140 characters",
            ));
        }
        let source = parse_address_field(&r.source, "source", tags, known_asgs, subject, &mut f);
        let destination = parse_address_field(
            &r.destination,
            "destination",
            tags,
            known_asgs,
            subject,
            &mut f,
        );
        let v4 = source
            .prefixes
            .iter()
            .chain(&destination.prefixes)
            .any(Cidr::is_ipv4);
        let v6 = source
            .prefixes
            .iter()
            .chain(&destination.prefixes)
            .any(|c| !c.is_ipv4());
        if v4 && v6 {
            f.push(Finding::new(
                FindingCode::RuleMixedAddressFamilies,
                subject,
                "the rule mixes IPv4 and IPv6 prefixes (Azure: ResourceCannotContainAddressPrefixesFromDifferentAddressFamilies); use one rule per address family",
            ));
        }
        let source_ports = parse_port_field(&r.source_ports, "source", subject, &mut f);
        let destination_ports =
            parse_port_field(&r.destination_ports, "destination", subject, &mut f);
        if !f.is_empty() {
            return Err(f);
        }
        let (sp, dp) = (
            unknown_ports(&r.source_ports),
            unknown_ports(&r.destination_ports),
        );
        let unknown = UnknownFields {
            source: !source.unknown.is_empty(),
            source_ports: !sp.is_empty(),
            destination: !destination.unknown.is_empty(),
            destination_ports: !dp.is_empty(),
            pointers: source
                .unknown
                .iter()
                .chain(&sp)
                .chain(&destination.unknown)
                .chain(&dp)
                .cloned()
                .collect(),
        };
        Ok(SecurityRule {
            unknown,
            name: r.name.clone(),
            priority: u32::try_from(r.priority).expect("priority range checked above"),
            direction: r.direction,
            access: r.access,
            protocol: r.protocol,
            source,
            source_ports: source_ports.expect("no findings means ports parsed"),
            destination,
            destination_ports: destination_ports.expect("no findings means ports parsed"),
            is_default: false,
            description: r.description.clone(),
        })
    }
}

/// Azure's rule-name rule: "up to 80 characters ... must begin with a word character, and it must
/// end with a word character or with `_`. The name can contain word characters, `.`, `-`, or `_`."
pub fn valid_rule_name(name: &str) -> bool {
    let word = |c: char| c.is_alphanumeric() || c == '_';
    let n = name.chars().count();
    (1..=MAX_RULE_NAME).contains(&n)
        && name.chars().next().is_some_and(word)
        && name.chars().last().is_some_and(word)
        && name.chars().all(|c| word(c) || c == '.' || c == '-')
}

fn looks_like_address(s: &str) -> bool {
    s.contains('/')
        || s.contains(':')
        || (s.contains('.') && s.bytes().all(|b| b.is_ascii_digit() || b == b'.'))
}

fn parse_address_field(
    field: &AddressField,
    side: &str,
    tags: &ServiceTagTable,
    known_asgs: &BTreeSet<String>,
    subject: &str,
    f: &mut Vec<Finding>,
) -> AddressSpec {
    let mut spec = AddressSpec::default();
    let items: Vec<&String> = match field {
        AddressField::Prefix(p) => vec![p],
        AddressField::Prefixes(ps) => ps.iter().collect(),
        AddressField::Asgs(asgs) => {
            if asgs.len() > MAX_ASGS_PER_RULE_SIDE {
                f.push(Finding::new(
                    FindingCode::RuleLimitExceeded,
                    subject,
                    format!("{} application security groups on the {side} side; the limit is 10 per rule", asgs.len()),
                ));
            }
            for a in asgs {
                let key = a.to_ascii_lowercase();
                if !known_asgs.contains(&key) {
                    f.push(Finding::new(
                        FindingCode::ReferenceUnknown,
                        subject,
                        format!("{side} application security group `{a}` is not declared and no host is a member of it"),
                    ));
                }
                spec.asgs.push(key);
                spec.text.push(a.clone());
            }
            return spec;
        }
    };
    let mut tag_count = 0;
    for item in items {
        let t = item.trim();
        spec.text.push(t.to_string());
        if let Some(pointer) = parse_unknown_marker(t) {
            spec.unknown.push(pointer.to_string());
        } else if t == "*" {
            spec.any = true;
        } else if let Some(v) = VirtualTag::parse(t) {
            tag_count += 1;
            spec.tags.push(TagRef::Virtual(v));
        } else if let Some(tag) = tags.get(t) {
            tag_count += 1;
            spec.tags.push(TagRef::Table(tag.name.clone()));
        } else if looks_like_address(t) {
            match Cidr::parse_address_or_prefix(t) {
                Ok(c) => spec.prefixes.push(c),
                Err(e) => f.push(Finding::new(
                    FindingCode::RulePrefixInvalid,
                    subject,
                    format!("{side}: {e}"),
                )),
            }
        } else {
            f.push(Finding::new(
                FindingCode::RuleUnknownServiceTag,
                subject,
                format!(
                    "{side}: `{t}` is neither a prefix nor a service tag of the {} table",
                    tags.info().source
                ),
            ));
        }
    }
    if tag_count > 1 {
        f.push(Finding::new(
            FindingCode::RuleMultipleServiceTags,
            subject,
            format!("{side}: a rule can name one service tag per side (augmented rules combine prefixes, not tags)"),
        ));
    }
    spec
}

/// The pointer of an `<unknown:POINTER>` marker (a value only known at deployment time, written
/// by the ARM importer and round-tripped through TOML).
pub fn parse_unknown_marker(value: &str) -> Option<&str> {
    value.trim().strip_prefix("<unknown:")?.strip_suffix('>')
}

fn unknown_ports(field: &PortField) -> Vec<String> {
    let items: Vec<&String> = match field {
        PortField::Range(r) => vec![r],
        PortField::Ranges(rs) => rs.iter().collect(),
    };
    items
        .into_iter()
        .filter_map(|i| parse_unknown_marker(i).map(str::to_string))
        .collect()
}

fn parse_port_field(
    field: &PortField,
    side: &str,
    subject: &str,
    f: &mut Vec<Finding>,
) -> Option<PortSet> {
    if !unknown_ports(field).is_empty() {
        return Some(PortSet::any());
    }
    let parsed = match field {
        PortField::Range(r) => PortSet::parse(r),
        PortField::Ranges(rs) => PortSet::parse_list(rs),
    };
    match parsed {
        Ok(p) => Some(p),
        Err(e) => {
            f.push(Finding::new(
                FindingCode::RulePortInvalid,
                subject,
                format!("{side} port: {e}"),
            ));
            None
        }
    }
}

/// The six default rules, with the exact names the ARM API returns.
pub fn default_rules() -> Vec<SecurityRule> {
    let d = |name: &str,
             priority,
             direction,
             access,
             src: AddressSpec,
             dst: AddressSpec,
             desc: &str| SecurityRule {
        name: name.to_string(),
        priority,
        direction,
        access,
        protocol: RuleProtocol::Any,
        source: src,
        source_ports: PortSet::any(),
        destination: dst,
        destination_ports: PortSet::any(),
        is_default: true,
        description: Some(desc.to_string()),
        unknown: UnknownFields::default(),
    };
    use Access::{Allow, Deny};
    use Direction::{Inbound, Outbound};
    use VirtualTag::{AzureLoadBalancer, Internet, VirtualNetwork};
    vec![
        d(
            "AllowVnetInBound",
            65000,
            Inbound,
            Allow,
            AddressSpec::tag(VirtualNetwork),
            AddressSpec::tag(VirtualNetwork),
            "Allow inbound traffic from all VMs in VNET",
        ),
        d(
            "AllowAzureLoadBalancerInBound",
            65001,
            Inbound,
            Allow,
            AddressSpec::tag(AzureLoadBalancer),
            AddressSpec::any(),
            "Allow inbound traffic from azure load balancer",
        ),
        d(
            "DenyAllInBound",
            65500,
            Inbound,
            Deny,
            AddressSpec::any(),
            AddressSpec::any(),
            "Deny all inbound traffic",
        ),
        d(
            "AllowVnetOutBound",
            65000,
            Outbound,
            Allow,
            AddressSpec::tag(VirtualNetwork),
            AddressSpec::tag(VirtualNetwork),
            "Allow outbound traffic from all VMs to all VMs in VNET",
        ),
        d(
            "AllowInternetOutBound",
            65001,
            Outbound,
            Allow,
            AddressSpec::any(),
            AddressSpec::tag(Internet),
            "Allow outbound traffic from all VMs to Internet",
        ),
        d(
            "DenyAllOutBound",
            65500,
            Outbound,
            Deny,
            AddressSpec::any(),
            AddressSpec::any(),
            "Deny all outbound traffic",
        ),
    ]
}

/// An NSG: its custom rules (valid ones) followed by the six default rules.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Nsg {
    /// Name as the user spells it.
    pub name: String,
    /// `flushConnection`: re-evaluate established flows when rules change.
    pub flush_connection: bool,
    /// Custom rules then defaults; indices into this vector identify rules everywhere.
    pub rules: Vec<SecurityRule>,
}

// === impl Nsg ===

impl Nsg {
    /// An NSG with the given custom rules (the defaults are appended).
    pub fn new(name: impl Into<String>, flush_connection: bool, custom: Vec<SecurityRule>) -> Nsg {
        let mut rules = custom;
        rules.extend(default_rules());
        Nsg {
            name: name.into(),
            flush_connection,
            rules,
        }
    }

    /// Parses a fixture NSG's rules, returning the NSG (invalid rules left out) and every finding
    /// about its rules and the NSG-level limits.
    pub fn from_rules(
        name: &str,
        flush_connection: bool,
        rules: &[RuleFile],
        tags: &ServiceTagTable,
        known_asgs: &BTreeSet<String>,
    ) -> (Nsg, Vec<Finding>) {
        let mut findings = Vec::new();
        let mut custom = Vec::new();
        let nsg_subject = format!("nsgs/{name}");
        if rules.len() > MAX_RULES {
            findings.push(Finding::new(
                FindingCode::RuleLimitExceeded,
                &nsg_subject,
                format!("{} custom rules; an NSG holds at most 1,000", rules.len()),
            ));
        }
        let mut names: BTreeMap<String, &str> = BTreeMap::new();
        let mut prios: BTreeMap<(Direction, i64), &str> = BTreeMap::new();
        let (mut src_count, mut dst_count) = (0usize, 0usize);
        for r in rules {
            let subject = format!("nsgs/{name}/securityRules/{}", r.name);
            if let Some(first) = names.insert(r.name.to_ascii_lowercase(), &r.name) {
                findings.push(Finding::new(
                    FindingCode::RuleNameDuplicate,
                    &subject,
                    format!("rule name `{}` is used twice in the NSG (first as `{first}`); names are unique within an NSG", r.name),
                ));
            }
            if let Some(first) = prios.insert((r.direction, r.priority), &r.name) {
                findings.push(Finding::new(
                    FindingCode::RulePriorityDuplicate,
                    &subject,
                    format!("priority {} {} is already used by rule `{first}`; two rules can't share a priority and direction", r.priority, r.direction),
                ));
            }
            src_count += count_prefixes(&r.source);
            dst_count += count_prefixes(&r.destination);
            match SecurityRule::from_file(r, tags, known_asgs, &subject) {
                Ok(rule) => {
                    if !rule.unknown.is_empty() {
                        findings.push(Finding::new(
                            FindingCode::UnknownValue,
                            &subject,
                            format!(
                                "{} only known at deployment time; it matches like `*` and flows that reach this rule are Indeterminate",
                                rule.unknown.pointers.join(", ")
                            ),
                        ));
                    }
                    custom.push(rule)
                }
                Err(mut fs) => findings.append(&mut fs),
            }
        }
        for (side, n) in [("source", src_count), ("destination", dst_count)] {
            if n > MAX_PREFIXES_PER_SIDE {
                findings.push(Finding::new(
                    FindingCode::RuleLimitExceeded,
                    &nsg_subject,
                    format!("{n} {side} addresses and ranges across the NSG's rules; the limit is 4,000 per side"),
                ));
            }
        }
        (Nsg::new(name, flush_connection, custom), findings)
    }

    /// Indices of the rules of one direction, in evaluation (priority) order.
    pub fn order(&self, direction: Direction) -> Vec<usize> {
        let mut idx: Vec<usize> = (0..self.rules.len())
            .filter(|&i| self.rules[i].direction == direction)
            .collect();
        idx.sort_by_key(|&i| self.rules[i].priority);
        idx
    }

    /// Compiles the NSG for one context (the verdict and explaining paths).
    pub fn compile(&self, ctx: &Context<'_>) -> CompiledNsg {
        let build = |dir| {
            self.order(dir)
                .into_iter()
                .map(|i| {
                    let r = &self.rules[i];
                    CompiledRule {
                        proto: r.protocol.mask(),
                        src: ctx.resolve(&r.source),
                        dst: ctx.resolve(&r.destination),
                        sport: r.source_ports.clone(),
                        dport: r.destination_ports.clone(),
                        access: r.access,
                        index: i as u32,
                    }
                })
                .collect()
        };
        let inbound: Vec<CompiledRule> = build(Direction::Inbound);
        let outbound: Vec<CompiledRule> = build(Direction::Outbound);
        CompiledNsg {
            inbound_classifier: classifier_for(&inbound),
            outbound_classifier: classifier_for(&outbound),
            inbound,
            outbound,
        }
    }

    /// Builds the reference evaluator for one context.
    pub fn reference(&self, ctx: &Context<'_>) -> ReferenceNsg {
        let mut rules: Vec<RefRule> = self
            .rules
            .iter()
            .enumerate()
            .map(|(i, r)| RefRule {
                index: i,
                priority: r.priority,
                direction: r.direction,
                access: r.access,
                protocol: r.protocol,
                src: ctx.reference_addr(&r.source),
                dst: ctx.reference_addr(&r.destination),
                sport: r.source_ports.clone(),
                dport: r.destination_ports.clone(),
            })
            .collect();
        rules.sort_by_key(|r| r.priority);
        ReferenceNsg { rules }
    }
}

fn count_prefixes(a: &AddressField) -> usize {
    match a {
        AddressField::Prefix(_) => 1,
        AddressField::Prefixes(p) => p.len(),
        AddressField::Asgs(_) => 0,
    }
}

// === Context ===

/// What tags and ASGs mean where an NSG is applied.
#[derive(Clone, Copy, Debug)]
pub struct Context<'a> {
    /// Prefixes of the `VirtualNetwork` tag (the VNet plus connected peers).
    pub virtual_network: &'a [Cidr],
    /// The service tag table.
    pub tags: &'a ServiceTagTable,
    /// Members of each ASG (lower-cased name → NIC addresses).
    pub asg_members: &'a BTreeMap<String, Vec<IpAddr>>,
}

impl Context<'_> {
    fn table_prefixes(&self, name: &str) -> &[Cidr] {
        self.tags
            .get(name)
            .map(|t| t.prefixes.as_slice())
            .unwrap_or(&[])
    }

    /// The compiled address set of one side.
    pub fn resolve(&self, spec: &AddressSpec) -> AddrSet {
        if spec.any || !spec.unknown.is_empty() {
            return AddrSet::any();
        }
        let mut cidrs: Vec<Cidr> = spec.prefixes.clone();
        let mut extra = AddrSet::empty();
        for t in &spec.tags {
            match t {
                TagRef::Virtual(VirtualTag::VirtualNetwork) => {
                    cidrs.extend_from_slice(self.virtual_network)
                }
                TagRef::Virtual(VirtualTag::AzureLoadBalancer) => {
                    cidrs.push(AZURE_LOAD_BALANCER.parse().expect("constant prefix"));
                }
                TagRef::Virtual(VirtualTag::Internet) => {
                    extra = extra.union(
                        &crate::cidr::public_space()
                            .difference(&AddrSet::from_cidrs(self.virtual_network.iter().copied())),
                    );
                }
                TagRef::Table(name) => cidrs.extend_from_slice(self.table_prefixes(name)),
            }
        }
        for a in &spec.asgs {
            if let Some(members) = self.asg_members.get(a) {
                cidrs.extend(members.iter().map(|ip| Cidr::host(*ip)));
            }
        }
        AddrSet::from_cidrs(cidrs).union(&extra)
    }

    fn reference_addr(&self, spec: &AddressSpec) -> RefAddr {
        let mut r = RefAddr {
            any: spec.any || !spec.unknown.is_empty(),
            cidrs: spec.prefixes.clone(),
            internet_outside: None,
        };
        for t in &spec.tags {
            match t {
                TagRef::Virtual(VirtualTag::VirtualNetwork) => {
                    r.cidrs.extend_from_slice(self.virtual_network)
                }
                TagRef::Virtual(VirtualTag::AzureLoadBalancer) => {
                    r.cidrs
                        .push(AZURE_LOAD_BALANCER.parse().expect("constant prefix"));
                }
                TagRef::Virtual(VirtualTag::Internet) => {
                    r.internet_outside = Some(self.virtual_network.to_vec())
                }
                TagRef::Table(name) => r.cidrs.extend_from_slice(self.table_prefixes(name)),
            }
        }
        for a in &spec.asgs {
            if let Some(members) = self.asg_members.get(a) {
                r.cidrs.extend(members.iter().map(|ip| Cidr::host(*ip)));
            }
        }
        r
    }
}

// === Flow key and results ===

/// The 5-tuple an NSG sees. Ports are `u32` so that port-less protocols can use [`NO_PORT`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FlowKey {
    /// Protocol.
    pub protocol: Protocol,
    /// Source address.
    pub source: IpAddr,
    /// Source port, or [`NO_PORT`].
    pub source_port: u32,
    /// Destination address.
    pub destination: IpAddr,
    /// Destination port, or [`NO_PORT`].
    pub destination_port: u32,
}

impl FlowKey {
    /// A key from optional ports (absent or port-less protocol → [`NO_PORT`]).
    pub fn new(
        protocol: Protocol,
        source: IpAddr,
        source_port: Option<u16>,
        destination: IpAddr,
        destination_port: Option<u16>,
    ) -> FlowKey {
        let p = |x: Option<u16>| {
            if protocol.has_ports() {
                x.map_or(NO_PORT, u32::from)
            } else {
                NO_PORT
            }
        };
        FlowKey {
            protocol,
            source,
            source_port: p(source_port),
            destination,
            destination_port: p(destination_port),
        }
    }
}

/// The first matching rule of one NSG in one direction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RuleMatch {
    /// What the rule does.
    pub access: Access,
    /// Index of the rule in [`Nsg::rules`].
    pub rule: usize,
}

/// Per-field match flags of one rule for one flow (Network Watcher's `rulesEvaluationResult`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RuleEvaluation {
    /// `securityRules/<name>` or `defaultSecurityRules/<name>`.
    pub name: String,
    /// Priority.
    pub priority: u32,
    /// Access.
    pub access: Access,
    /// Source address matched.
    pub source_matched: bool,
    /// Source port matched.
    pub source_port_matched: bool,
    /// Destination address matched.
    pub destination_matched: bool,
    /// Destination port matched.
    pub destination_port_matched: bool,
    /// Protocol matched.
    pub protocol_matched: bool,
}

impl RuleEvaluation {
    /// Whether every field matched.
    pub fn matched(&self) -> bool {
        self.source_matched
            && self.source_port_matched
            && self.destination_matched
            && self.destination_port_matched
            && self.protocol_matched
    }
}

// === Compiled evaluator ===

#[derive(Clone, Debug)]
struct CompiledRule {
    proto: u8,
    src: AddrSet,
    dst: AddrSet,
    sport: PortSet,
    dport: PortSet,
    access: Access,
    index: u32,
}

impl CompiledRule {
    #[inline]
    fn matches(&self, f: &FlowKey) -> bool {
        self.proto & f.protocol.bit() != 0
            && self.dport.contains(f.destination_port)
            && self.sport.contains(f.source_port)
            && self.dst.contains(f.destination)
            && self.src.contains(f.source)
    }
}

/// Rule lists up to this length are scanned linearly (a short list is already a short scan);
/// longer ones use the bit-vector classifier (module `classifier`).
pub const LINEAR_SCAN_MAX: usize = 24;

/// A classifier and, per rule position, the verdict it stands for: a compact copy of the rule
/// list's access and index, so the hot path reads 4 bytes, not a whole [`CompiledRule`].
#[derive(Clone, Debug)]
struct FastPath {
    classifier: Classifier,
    /// The rule's index in [`Nsg::rules`], with [`FastPath::DENY`] set for a Deny rule.
    matches: Vec<u32>,
}

impl FastPath {
    const DENY: u32 = 1 << 31;

    /// The verdict of the rule at position `i` of the list.
    #[inline]
    fn verdict(&self, i: usize) -> Option<RuleMatch> {
        let m = *self.matches.get(i)?;
        Some(RuleMatch {
            access: if m & Self::DENY != 0 {
                Access::Deny
            } else {
                Access::Allow
            },
            rule: (m & !Self::DENY) as usize,
        })
    }

    fn heap_bytes(&self) -> usize {
        self.classifier.heap_bytes() + self.matches.capacity() * std::mem::size_of::<u32>()
    }
}

fn classifier_for(rules: &[CompiledRule]) -> Option<FastPath> {
    // (A list too long for `FastPath`'s packed indices keeps the linear scan.)
    if rules.len() <= LINEAR_SCAN_MAX || rules.iter().any(|r| r.index >= FastPath::DENY) {
        return None;
    }
    {
        let fields: Vec<RuleFields<'_>> = rules
            .iter()
            .map(|r| RuleFields {
                proto_mask: r.proto,
                src: &r.src,
                dst: &r.dst,
                sport: &r.sport,
                dport: &r.dport,
            })
            .collect();
        Some(FastPath {
            classifier: Classifier::build(&fields)?,
            matches: rules
                .iter()
                .map(|r| match r.access {
                    Access::Allow => r.index,
                    Access::Deny => r.index | FastPath::DENY,
                })
                .collect(),
        })
    }
}

/// One NSG compiled for one context. The default rules guarantee a match in each direction.
#[derive(Clone, Debug)]
pub struct CompiledNsg {
    inbound: Vec<CompiledRule>,
    outbound: Vec<CompiledRule>,
    inbound_classifier: Option<FastPath>,
    outbound_classifier: Option<FastPath>,
}

// === impl CompiledNsg ===

impl CompiledNsg {
    fn list(&self, d: Direction) -> &[CompiledRule] {
        match d {
            Direction::Inbound => &self.inbound,
            Direction::Outbound => &self.outbound,
        }
    }

    /// The verdict-only path: the first matching rule. Allocates nothing.
    #[inline]
    pub fn decide(&self, direction: Direction, flow: &FlowKey) -> RuleMatch {
        let list = self.list(direction);
        if let Some(fast) = self.classifier(direction) {
            if let Some(m) = fast
                .classifier
                .first_match(flow)
                .and_then(|i| fast.verdict(i))
            {
                return m;
            }
        }
        for r in list {
            if r.matches(flow) {
                return RuleMatch {
                    access: r.access,
                    rule: r.index as usize,
                };
            }
        }
        // Unreachable for NSGs built by `Nsg::new` (the Deny-all default matches everything);
        // answer with the deny-all rule rather than panic.
        let last = list.last().map_or(0, |r| r.index as usize);
        RuleMatch {
            access: Access::Deny,
            rule: last,
        }
    }

    /// The explaining path: every rule examined up to and including the match, with per-field flags.
    pub fn explain(
        &self,
        nsg: &Nsg,
        direction: Direction,
        flow: &FlowKey,
    ) -> (Vec<RuleEvaluation>, RuleMatch) {
        let mut out = Vec::new();
        for r in self.list(direction) {
            let rule = &nsg.rules[r.index as usize];
            let ev = RuleEvaluation {
                name: rule.qualified_name(),
                priority: rule.priority,
                access: rule.access,
                source_matched: r.src.contains(flow.source),
                source_port_matched: r.sport.contains(flow.source_port),
                destination_matched: r.dst.contains(flow.destination),
                destination_port_matched: r.dport.contains(flow.destination_port),
                protocol_matched: r.proto & flow.protocol.bit() != 0,
            };
            let hit = ev.matched();
            out.push(ev);
            if hit {
                return (
                    out,
                    RuleMatch {
                        access: r.access,
                        rule: r.index as usize,
                    },
                );
            }
        }
        let m = self.decide(direction, flow);
        (out, m)
    }

    /// Approximate heap bytes of the compiled form (reported by benchmarks).
    pub fn heap_bytes(&self) -> usize {
        let per = |v: &Vec<CompiledRule>| {
            v.capacity() * std::mem::size_of::<CompiledRule>()
                + v.iter()
                    .map(|r| {
                        r.src.heap_bytes()
                            + r.dst.heap_bytes()
                            + (r.sport.ranges().len() + r.dport.ranges().len()) * 8
                    })
                    .sum::<usize>()
        };
        per(&self.inbound)
            + per(&self.outbound)
            + self
                .inbound_classifier
                .as_ref()
                .map_or(0, FastPath::heap_bytes)
            + self
                .outbound_classifier
                .as_ref()
                .map_or(0, FastPath::heap_bytes)
    }

    /// The bit-vector classifier's answer alone, without the linear-scan fallback of
    /// [`CompiledNsg::decide`]: `None` when `direction` has no classifier or it found no rule.
    /// For tests that check the classifier itself against the reference.
    pub fn classifier_decide(&self, direction: Direction, flow: &FlowKey) -> Option<RuleMatch> {
        let fast = self.classifier(direction)?;
        fast.classifier
            .first_match(flow)
            .and_then(|i| fast.verdict(i))
    }

    /// Whether `direction` is decided by the bit-vector classifier (else a linear scan).
    pub fn uses_classifier(&self, direction: Direction) -> bool {
        self.classifier(direction).is_some()
    }

    fn classifier(&self, direction: Direction) -> Option<&FastPath> {
        match direction {
            Direction::Inbound => self.inbound_classifier.as_ref(),
            Direction::Outbound => self.outbound_classifier.as_ref(),
        }
    }

    /// A one-line description of `direction`'s classifier (intervals and distinct rule bit sets
    /// per field), or `None` when that direction is a linear scan. For benchmarks and debugging.
    pub fn classifier_summary(&self, direction: Direction) -> Option<String> {
        self.classifier(direction).map(|f| f.classifier.describe())
    }
}

// === Reference evaluator ===

/// One side of a reference rule: explicit prefixes, optionally "Internet outside these prefixes".
#[derive(Clone, Debug)]
struct RefAddr {
    any: bool,
    cidrs: Vec<Cidr>,
    internet_outside: Option<Vec<Cidr>>,
}

impl RefAddr {
    fn contains(&self, ip: IpAddr) -> bool {
        self.any
            || self.cidrs.iter().any(|c| c.contains(ip))
            || self
                .internet_outside
                .as_ref()
                .is_some_and(|vnet| is_public(ip) && !vnet.iter().any(|c| c.contains(ip)))
    }
}

#[derive(Clone, Debug)]
struct RefRule {
    index: usize,
    priority: u32,
    direction: Direction,
    access: Access,
    protocol: RuleProtocol,
    src: RefAddr,
    dst: RefAddr,
    sport: PortSet,
    dport: PortSet,
}

/// The oracle: a first-match linear scan over pre-parsed rules.
#[derive(Clone, Debug)]
pub struct ReferenceNsg {
    rules: Vec<RefRule>,
}

impl ReferenceNsg {
    /// The first rule (lowest priority number) of `direction` whose five fields all match.
    pub fn decide(&self, direction: Direction, f: &FlowKey) -> Option<RuleMatch> {
        self.rules
            .iter()
            .filter(|r| r.direction == direction)
            .find(|r| {
                r.protocol.matches(f.protocol)
                    && r.src.contains(f.source)
                    && r.dst.contains(f.destination)
                    && r.sport.contains(f.source_port)
                    && r.dport.contains(f.destination_port)
            })
            .map(|r| RuleMatch {
                access: r.access,
                rule: r.index,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixture::{Fixture, Format};

    fn nsg_from(toml_rules: &str) -> (Nsg, Vec<Finding>) {
        let text = format!("[[nsgs]]\nname = \"n\"\n{toml_rules}");
        let f = Fixture::parse(&text, Format::Toml).unwrap();
        let asgs: BTreeSet<String> = ["asgweb".to_string()].into();
        Nsg::from_rules(
            "n",
            false,
            &f.nsgs[0].security_rules,
            &ServiceTagTable::builtin(),
            &asgs,
        )
    }

    fn rule(name: &str, prio: i64, extra: &str) -> String {
        format!("[[nsgs.security_rules]]\nname = \"{name}\"\npriority = {prio}\ndirection = \"Outbound\"\naccess = \"Deny\"\nprotocol = \"Tcp\"\nsource_address_prefix = \"*\"\nsource_port_range = \"*\"\ndestination_port_range = \"80\"\n{extra}")
    }

    fn codes(f: &[Finding]) -> Vec<&'static str> {
        f.iter().map(|f| f.code.as_str()).collect()
    }

    #[test]
    fn rule_findings() {
        let (_, f) = nsg_from(&rule(
            "bad name-",
            50,
            "destination_address_prefix = \"10.0.0.1/24\"\n",
        ));
        assert_eq!(
            codes(&f),
            [
                "RULE_NAME_INVALID",
                "RULE_PRIORITY_OUT_OF_RANGE",
                "RULE_PREFIX_INVALID"
            ]
        );
        let (_, f) = nsg_from(&rule(
            "r",
            100,
            "destination_address_prefix = \"NotATag\"\n",
        ));
        assert_eq!(codes(&f), ["RULE_UNKNOWN_SERVICE_TAG"]);
        let (_, f) = nsg_from(&rule(
            "r",
            100,
            "destination_address_prefixes = [\"Storage\", \"SQL\"]\n",
        ));
        assert_eq!(codes(&f), ["RULE_MULTIPLE_SERVICE_TAGS"]);
        let (_, f) = nsg_from(&rule(
            "r",
            100,
            "destination_address_prefixes = [\"10.0.0.0/8\", \"fd00::/8\"]\n",
        ));
        assert_eq!(codes(&f), ["RULE_MIXED_ADDRESS_FAMILIES"]);
        let two = format!(
            "{}{}",
            rule("a", 100, "destination_address_prefix = \"*\"\n"),
            rule("A", 100, "destination_address_prefix = \"*\"\n")
        );
        let (_, f) = nsg_from(&two);
        assert_eq!(
            codes(&f),
            ["RULE_NAME_DUPLICATE", "RULE_PRIORITY_DUPLICATE"]
        );
        let (_, f) = nsg_from(&rule(
            "r",
            100,
            "destination_application_security_groups = [\"asg-nope\"]\n",
        ));
        assert_eq!(codes(&f), ["REFERENCE_UNKNOWN"]);
    }

    #[test]
    fn valid_names() {
        assert!(valid_rule_name("Allow-HTTP_Inbound.1"));
        assert!(valid_rule_name("x_"));
        assert!(!valid_rule_name("-x"));
        assert!(!valid_rule_name("x."));
        assert!(!valid_rule_name(&"a".repeat(81)));
        assert!(!valid_rule_name("a b"));
    }

    #[test]
    fn defaults_are_exact() {
        let names: Vec<String> = default_rules()
            .iter()
            .map(SecurityRule::qualified_name)
            .collect();
        assert_eq!(
            names,
            [
                "defaultSecurityRules/AllowVnetInBound",
                "defaultSecurityRules/AllowAzureLoadBalancerInBound",
                "defaultSecurityRules/DenyAllInBound",
                "defaultSecurityRules/AllowVnetOutBound",
                "defaultSecurityRules/AllowInternetOutBound",
                "defaultSecurityRules/DenyAllOutBound"
            ]
        );
    }

    #[test]
    fn ipfv_quickstart_scenario_c() {
        // Spec §1.10: VM 10.0.0.4 in a 10.0.0.0/16 VNet with only default rules.
        let nsg = Nsg::new("myVmNSG", false, vec![]);
        let vnet = ["10.0.0.0/16".parse().unwrap()];
        let tags = ServiceTagTable::builtin();
        let members = BTreeMap::new();
        let ctx = Context {
            virtual_network: &vnet,
            tags: &tags,
            asg_members: &members,
        };
        let c = nsg.compile(&ctx);
        let ip = |s: &str| s.parse().unwrap();
        let out = |dst: &str| {
            FlowKey::new(
                Protocol::Tcp,
                ip("10.0.0.4"),
                Some(60000),
                ip(dst),
                Some(80),
            )
        };
        let m = c.decide(Direction::Outbound, &out("13.107.21.200"));
        assert_eq!(
            (m.access, nsg.rules[m.rule].name.as_str()),
            (Access::Allow, "AllowInternetOutBound")
        );
        let m = c.decide(Direction::Outbound, &out("172.31.0.100"));
        assert_eq!(
            (m.access, nsg.rules[m.rule].name.as_str()),
            (Access::Deny, "DenyAllOutBound")
        );
        let inbound = FlowKey::new(
            Protocol::Tcp,
            ip("172.31.0.100"),
            Some(60000),
            ip("10.0.0.4"),
            Some(80),
        );
        let (trace, m) = c.explain(&nsg, Direction::Inbound, &inbound);
        assert_eq!(nsg.rules[m.rule].name, "DenyAllInBound");
        assert_eq!(
            trace.len(),
            3,
            "AllowVnetInBound, AllowAzureLoadBalancerInBound, DenyAllInBound examined"
        );
        assert!(!trace[0].source_matched && trace[0].destination_matched);
        let r = nsg.reference(&ctx);
        assert_eq!(r.decide(Direction::Inbound, &inbound), Some(m));
    }
}
