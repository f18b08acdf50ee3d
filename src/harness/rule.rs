//! [`Rule`]: a security rule written as a sentence, for tests that change NSGs live without
//! spelling out every field of [`RawRule`].

use sim::fixture::RawRule;
use sim::{Access, Direction, RuleProtocol};

/// A custom security rule under construction; pass it wherever the harness takes a rule
/// (`put_security_rule`, `add_security_rule`, ...) or turn it into a [`RawRule`] with
/// [`Rule::build`] / `.into()`.
///
/// Unset fields take Azure's "any": protocol `*`, source `*` port `*`, destination `*` port `*`.
/// The direction defaults to outbound (the integration subnet's side of the API Management
/// path); the priority has no default — a rule without one is refused (100–4096, as in Azure:
/// <https://learn.microsoft.com/azure/virtual-network/network-security-groups-overview#security-rules>).
///
/// ```
/// use vnetsim::harness::{Access, Direction, RawRule, Rule, RuleProtocol};
/// let r: RawRule = Rule::allow("allow-https").outbound().priority(100).tcp().to("10.0.2.0/24").port(443).into();
/// assert_eq!((r.access, r.direction, r.protocol), (Some(Access::Allow), Some(Direction::Outbound), Some(RuleProtocol::Tcp)));
/// assert_eq!(r.destination_address_prefix.as_deref(), Some("10.0.2.0/24"));
/// assert_eq!(r.destination_port_range.as_deref(), Some("443"));
/// assert_eq!(r.source_address_prefix.as_deref(), Some("*"));
///
/// let r = Rule::deny("deny-partners").inbound().priority(4000).from_prefixes(["203.0.113.0/24", "198.51.100.7"]).ports([80, 443]).build();
/// assert_eq!(r.source_address_prefixes, Some(vec!["203.0.113.0/24".into(), "198.51.100.7".into()]));
/// assert_eq!(r.destination_port_ranges, Some(vec!["80".into(), "443".into()]));
/// assert_eq!(r.protocol, Some(RuleProtocol::Any));
/// ```
#[derive(Clone, Debug, PartialEq)]
#[must_use]
pub struct Rule(RawRule);

// === impl Rule ===

impl Rule {
    fn new(name: &str, access: Access) -> Rule {
        Rule(RawRule {
            name: name.to_string(),
            priority: 0,
            direction: Some(Direction::Outbound),
            access: Some(access),
            protocol: Some(RuleProtocol::Any),
            source_address_prefix: Some("*".into()),
            source_port_range: Some("*".into()),
            destination_address_prefix: Some("*".into()),
            destination_port_range: Some("*".into()),
            ..RawRule::default()
        })
    }

    /// A rule that allows what it matches.
    pub fn allow(name: &str) -> Rule {
        Rule::new(name, Access::Allow)
    }

    /// A rule that denies what it matches.
    pub fn deny(name: &str) -> Rule {
        Rule::new(name, Access::Deny)
    }

    /// Outbound (the default).
    pub fn outbound(mut self) -> Rule {
        self.0.direction = Some(Direction::Outbound);
        self
    }

    /// Inbound.
    pub fn inbound(mut self) -> Rule {
        self.0.direction = Some(Direction::Inbound);
        self
    }

    /// Priority, 100 (first) to 4096.
    pub fn priority(mut self, priority: u16) -> Rule {
        self.0.priority = i64::from(priority);
        self
    }

    /// Protocol `Tcp`.
    pub fn tcp(self) -> Rule {
        self.protocol(RuleProtocol::Tcp)
    }

    /// Protocol `Udp`.
    pub fn udp(self) -> Rule {
        self.protocol(RuleProtocol::Udp)
    }

    /// Protocol `Icmp`.
    pub fn icmp(self) -> Rule {
        self.protocol(RuleProtocol::Icmp)
    }

    /// Protocol `*` (Azure's "Any"; the default).
    pub fn any(self) -> Rule {
        self.protocol(RuleProtocol::Any)
    }

    /// Any protocol Azure rules name.
    pub fn protocol(mut self, protocol: RuleProtocol) -> Rule {
        self.0.protocol = Some(protocol);
        self
    }

    /// Source: a prefix, an address, `*` or a service tag (`VirtualNetwork`, `Internet`, ...).
    pub fn from(mut self, source: &str) -> Rule {
        self.0.source_address_prefix = Some(source.to_string());
        self.0.source_address_prefixes = None;
        self.0.source_application_security_groups = None;
        self
    }

    /// Source: several prefixes or addresses (`sourceAddressPrefixes`).
    pub fn from_prefixes<S: Into<String>>(mut self, sources: impl IntoIterator<Item = S>) -> Rule {
        self.0.source_address_prefix = None;
        self.0.source_address_prefixes = Some(sources.into_iter().map(Into::into).collect());
        self.0.source_application_security_groups = None;
        self
    }

    /// Source: application security groups by name.
    pub fn from_asgs<S: Into<String>>(mut self, asgs: impl IntoIterator<Item = S>) -> Rule {
        self.0.source_address_prefix = None;
        self.0.source_address_prefixes = None;
        self.0.source_application_security_groups =
            Some(asgs.into_iter().map(Into::into).collect());
        self
    }

    /// Source port or range (`"*"`, `"1024-65535"`; the default `*`).
    pub fn from_port(mut self, range: &str) -> Rule {
        self.0.source_port_range = Some(range.to_string());
        self.0.source_port_ranges = None;
        self
    }

    /// Destination: a prefix, an address, `*` or a service tag (`Storage`, `AzureKeyVault`, ...).
    pub fn to(mut self, destination: &str) -> Rule {
        self.0.destination_address_prefix = Some(destination.to_string());
        self.0.destination_address_prefixes = None;
        self.0.destination_application_security_groups = None;
        self
    }

    /// Destination: several prefixes or addresses (`destinationAddressPrefixes`).
    pub fn to_prefixes<S: Into<String>>(
        mut self,
        destinations: impl IntoIterator<Item = S>,
    ) -> Rule {
        self.0.destination_address_prefix = None;
        self.0.destination_address_prefixes =
            Some(destinations.into_iter().map(Into::into).collect());
        self.0.destination_application_security_groups = None;
        self
    }

    /// Destination: application security groups by name.
    pub fn to_asgs<S: Into<String>>(mut self, asgs: impl IntoIterator<Item = S>) -> Rule {
        self.0.destination_address_prefix = None;
        self.0.destination_address_prefixes = None;
        self.0.destination_application_security_groups =
            Some(asgs.into_iter().map(Into::into).collect());
        self
    }

    /// Destination port.
    pub fn port(self, port: u16) -> Rule {
        self.port_range(&port.to_string())
    }

    /// Destination port range as Azure writes it (`"*"`, `"8000-8100"`).
    pub fn port_range(mut self, range: &str) -> Rule {
        self.0.destination_port_range = Some(range.to_string());
        self.0.destination_port_ranges = None;
        self
    }

    /// Destination ports (`destinationPortRanges`).
    pub fn ports(mut self, ports: impl IntoIterator<Item = u16>) -> Rule {
        self.0.destination_port_range = None;
        self.0.destination_port_ranges = Some(ports.into_iter().map(|p| p.to_string()).collect());
        self
    }

    /// Description (at most 140 characters in Azure).
    pub fn description(mut self, text: &str) -> Rule {
        self.0.description = Some(text.to_string());
        self
    }

    /// The rule in the fixture's shape.
    pub fn build(self) -> RawRule {
        self.0
    }
}

impl From<Rule> for RawRule {
    fn from(r: Rule) -> RawRule {
        r.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_side_keeps_exactly_one_form() {
        let r = Rule::allow("r")
            .from_prefixes(["10.0.0.0/8"])
            .from("VirtualNetwork")
            .to_asgs(["asg-web"])
            .to("Storage")
            .ports([80])
            .port_range("8000-8100")
            .from_port("1024-65535")
            .udp()
            .priority(4096)
            .description("d")
            .build();
        let checked = sim::fixture::RuleFile::try_from(r.clone()).expect("one form per side");
        assert_eq!(checked.priority, 4096);
        assert_eq!(r.source_address_prefix.as_deref(), Some("VirtualNetwork"));
        assert_eq!(r.source_address_prefixes, None);
        assert_eq!(r.destination_address_prefix.as_deref(), Some("Storage"));
        assert_eq!(r.destination_application_security_groups, None);
        assert_eq!(r.destination_port_range.as_deref(), Some("8000-8100"));
        assert_eq!(r.destination_port_ranges, None);
        assert_eq!(r.protocol, Some(RuleProtocol::Udp));
        assert_eq!(r.direction, Some(Direction::Outbound));
        let r = Rule::deny("d")
            .inbound()
            .icmp()
            .to_prefixes(["10.0.2.4"])
            .build();
        assert!(sim::fixture::RuleFile::try_from(r.clone()).is_ok());
        assert_eq!(
            (r.access, r.direction, r.protocol),
            (
                Some(Access::Deny),
                Some(Direction::Inbound),
                Some(RuleProtocol::Icmp)
            )
        );
    }
}
