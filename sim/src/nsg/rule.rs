//! One security rule as the evaluators use it: the fixture's fields parsed and checked
//! ([`SecurityRule::from_file`] reports every finding at once), service tags and ASGs kept by
//! name until a [`Context`] resolves them, and `<unknown:POINTER>` markers kept as wildcards.

use std::collections::BTreeSet;

use super::{
    Context, FlowKey, MAX_ASGS_PER_RULE_SIDE, MAX_DESCRIPTION, MAX_PRIORITY, MAX_RULE_NAME,
    MIN_PRIORITY,
};
use crate::cidr::Cidr;
use crate::finding::{Finding, FindingCode};
use crate::fixture::{AddressField, PortField, RuleFile};
use crate::platform::PlatformTag;
use crate::proto::{Access, Direction, PortSet, RuleProtocol};
use crate::tags::{ServiceTagTable, VirtualTag};

/// A service tag reference on one side of a rule.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TagRef {
    /// `VirtualNetwork`, `Internet` or `AzureLoadBalancer`.
    Virtual(VirtualTag),
    /// A table tag, by the table's spelling.
    Table(String),
    /// `AzurePlatformDNS`, `AzurePlatformIMDS` or `AzurePlatformLKM` (not in the table file).
    Platform(PlatformTag),
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
    /// Position in its NSG's `security_rules` in the fixture (invalid rules are left out of
    /// the NSG, so it may differ from the position here); `None` for default and synthetic
    /// rules. Locates the rule in the source ([`crate::topology::Topology::rule_location`]).
    pub index: Option<usize>,
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
            index: None,
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
        AddressField::Prefix(p) if p.contains(',') => {
            f.push(Finding::new(
                FindingCode::RulePrefixInvalid,
                subject,
                format!("{side}: `{p}` is a list, but *_address_prefix holds one value (a prefix, address, `*` or service tag); write the list as {side}_address_prefixes"),
            ));
            return spec;
        }
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
                        format!(
                            "{side} application security group `{a}` is not declared and no host is a member of it{}",
                            crate::build::did_you_mean(a, known_asgs.iter().map(String::as_str))
                        ),
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
        } else if let Some(p) = PlatformTag::parse(t) {
            tag_count += 1;
            spec.tags.push(TagRef::Platform(p));
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
                    "{side}: `{t}` is neither a prefix nor a service tag of {}{}",
                    tags.info().describe(),
                    did_you_mean(&tags.suggest(t))
                ),
            ));
        }
    }
    if let Some((a, b)) = first_overlap(&spec.prefixes) {
        f.push(Finding::new(
            FindingCode::RulePrefixOverlap,
            subject,
            format!("{side}: {a} and {b} overlap; Azure refuses overlapping prefixes in one rule (OverlappingSubnetsNotPermittedInSecurityRule)"),
        ));
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

/// `; did you mean `A` or `B`?` for the nearest known tag names, or nothing.
fn did_you_mean(names: &[&str]) -> String {
    match names {
        [] => String::new(),
        [one] => format!("; did you mean `{one}`?"),
        [init @ .., last] => {
            let init: Vec<String> = init.iter().map(|n| format!("`{n}`")).collect();
            format!("; did you mean {} or `{last}`?", init.join(", "))
        }
    }
}

/// The first two overlapping prefixes of a list (sorted by first address, an overlap is a
/// prefix starting at or before the largest last address seen so far in its family).
pub(crate) fn first_overlap(prefixes: &[Cidr]) -> Option<(Cidr, Cidr)> {
    let mut sorted: Vec<Cidr> = prefixes.to_vec();
    sorted.sort_by_key(|c| (c.is_ipv4(), crate::cidr::addr_to_u128(c.first())));
    let mut widest: Option<Cidr> = None;
    for c in sorted {
        if let Some(w) = widest {
            if w.is_ipv4() == c.is_ipv4()
                && crate::cidr::addr_to_u128(c.first()) <= crate::cidr::addr_to_u128(w.last())
            {
                return Some((w, c));
            }
        }
        if widest.is_none_or(|w| {
            w.is_ipv4() != c.is_ipv4()
                || crate::cidr::addr_to_u128(c.last()) > crate::cidr::addr_to_u128(w.last())
        }) {
            widest = Some(c);
        }
    }
    None
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
    // One value per item: `80,443` in *_port_range (or in one item of *_port_ranges) is refused
    // by ARM (SecurityRuleInvalidPortRange); the portal splits such input into the list.
    // Whitespace around a value is accepted, as the portal's "80, 1024-65535" is.
    let items: Vec<&String> = match field {
        PortField::Range(r) => vec![r],
        PortField::Ranges(rs) => rs.iter().collect(),
    };
    if let Some(bad) = items.iter().find(|i| i.contains(',')) {
        f.push(Finding::new(
            FindingCode::RulePortInvalid,
            subject,
            format!("{side} port: `{bad}` is a list, but each port value holds one port, range or `*` (ARM: SecurityRuleInvalidPortRange); write the list as {side}_port_ranges = [..]"),
        ));
        return None;
    }
    let parsed = PortSet::parse_list(items);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlapping_prefixes() {
        let c = |s: &str| -> Cidr { s.parse().unwrap() };
        let list = |xs: &[&str]| xs.iter().map(|x| c(x)).collect::<Vec<_>>();
        assert_eq!(
            first_overlap(&list(&["1.1.0.0/24", "1.1.0.22/32"])),
            Some((c("1.1.0.0/24"), c("1.1.0.22/32")))
        );
        assert_eq!(first_overlap(&list(&["10.0.0.0/24", "10.0.1.0/24"])), None);
        assert!(first_overlap(&list(&["10.0.0.4/32", "10.0.0.4/32"])).is_some());
        // A wide prefix listed after narrower ones still overlaps the one inside it.
        assert!(first_overlap(&list(&["10.0.5.0/24", "10.0.9.0/24", "10.0.0.0/16"])).is_some());
        // Families never overlap each other.
        assert_eq!(first_overlap(&list(&["0.0.0.0/0", "::/0"])), None);
    }

    proptest::proptest! {
        /// The sort-and-sweep overlap check agrees with the pairwise reference.
        #[test]
        fn overlap_sweep_matches_pairwise(
            raw in proptest::collection::vec((0u32..64, 20u8..=32), 0..12)
        ) {
            let list: Vec<Cidr> = raw
                .iter()
                .map(|(x, len)| {
                    let mask = u32::MAX << (32 - u32::from(*len));
                    let addr = std::net::Ipv4Addr::from((0x0a00_0000 | (x << 6)) & mask);
                    format!("{addr}/{len}").parse::<Cidr>().expect("host bits cleared")
                })
                .collect();
            let pairwise = list
                .iter()
                .enumerate()
                .any(|(i, a)| list[i + 1..].iter().any(|b| a.overlaps(b)));
            let found = first_overlap(&list);
            proptest::prop_assert_eq!(found.is_some(), pairwise);
            if let Some((a, b)) = found {
                proptest::prop_assert!(a.overlaps(&b));
            }
        }
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

    /// An unknown service tag names the table and the nearest known tags; a regional form of
    /// any region of the official file is known.
    #[test]
    fn unknown_tags_suggest_the_nearest_names() {
        let tags = ServiceTagTable::builtin();
        let none = BTreeSet::new();
        let mut f = Vec::new();
        let field = |s: &str| AddressField::Prefix(s.to_string());
        let spec = parse_address_field(
            &field("Storage.EastAsia"),
            "destination",
            &tags,
            &none,
            "r",
            &mut f,
        );
        assert!(f.is_empty(), "{f:?}");
        assert_eq!(spec.tags, [TagRef::Table("Storage.EastAsia".into())]);
        parse_address_field(
            &field("Storage.EastAsa"),
            "destination",
            &tags,
            &none,
            "r",
            &mut f,
        );
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].code, FindingCode::RuleUnknownServiceTag);
        assert!(
            f[0].message.ends_with("service tag of built-in ServiceTags_Public changeNumber 375 (2025-10-28); did you mean `Storage.EastAsia`?"),
            "{}",
            f[0].message
        );
        assert_eq!(
            did_you_mean(&["A", "B", "C"]),
            "; did you mean `A`, `B` or `C`?"
        );
        assert_eq!(did_you_mean(&[]), "");
    }
}
