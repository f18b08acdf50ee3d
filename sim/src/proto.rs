//! The small enums of the Azure network model — protocol, direction, access — and the NSG port
//! syntax ([`PortSet`]). Enum values parse case-insensitively (real templates write `TCP`,
//! `inbound`, `allow`) and always print in Azure's canonical spelling.

use std::fmt;

/// Error for an enum value that is not one of Azure's spellings.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} `{given}`, expected one of: {expected}")]
pub struct UnknownVariant {
    /// What kind of value it is (e.g. "protocol").
    pub what: &'static str,
    /// What the user wrote.
    pub given: String,
    /// The accepted spellings.
    pub expected: &'static str,
}

/// Declares a fieldless enum that parses case-insensitively from any of several spellings and
/// displays/serializes as its canonical Azure spelling.
macro_rules! azure_enum {
    ($(#[$m:meta])* $name:ident, $what:literal, $expected:literal,
     { $($(#[$vm:meta])* $variant:ident => $canon:literal $(| $alt:literal)* ),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum $name { $($(#[$vm])* #[doc = concat!("`", $canon, "`")] $variant),+ }

        impl $name {
            /// Azure's canonical spelling.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $canon),+ }
            }
            /// Every variant, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];
        }

        impl ::std::str::FromStr for $name {
            type Err = $crate::proto::UnknownVariant;
            fn from_str(s: &str) -> Result<Self, $crate::proto::UnknownVariant> {
                let t = s.trim();
                $(
                    if t.eq_ignore_ascii_case($canon) $(|| t.eq_ignore_ascii_case($alt))* {
                        return Ok($name::$variant);
                    }
                )+
                Err($crate::proto::UnknownVariant { what: $what, given: t.to_string(), expected: $expected })
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}
pub(crate) use azure_enum;

azure_enum!(
    /// The protocol of a concrete flow (Network Watcher's IP flow verify knows TCP and UDP; the
    /// VNet FAQ lists TCP, UDP, ESP, AH and ICMP as the protocols a VNet carries).
    Protocol, "protocol", "Tcp, Udp, Icmp, Esp, Ah",
    { Tcp => "Tcp", Udp => "Udp", Icmp => "Icmp", Esp => "Esp", Ah => "Ah" }
);

impl Protocol {
    /// Whether flows of this protocol carry port numbers.
    pub fn has_ports(self) -> bool {
        matches!(self, Protocol::Tcp | Protocol::Udp)
    }
    /// Bit of this protocol in a [`RuleProtocol::mask`].
    #[inline]
    pub fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

azure_enum!(
    /// The protocol field of a security rule (`SecurityRuleProtocol`: `Tcp`, `Udp`, `Icmp`,
    /// `Esp`, `*`, `Ah`). `Any`/`All` are accepted as spellings of `*`.
    RuleProtocol, "protocol", "Tcp, Udp, Icmp, Esp, Ah, *",
    { Tcp => "Tcp", Udp => "Udp", Icmp => "Icmp", Esp => "Esp", Ah => "Ah", Any => "*" | "Any" | "All" }
);

impl RuleProtocol {
    /// Which flow protocols the rule matches, as a bit mask of [`Protocol::bit`].
    ///
    /// *Assumption* `ASSUMPTION_ANY_PROTOCOL_INCLUDES_ESP_AH`: the docs say "Any encompasses TCP,
    /// UDP, and ICMP", but the default rules are `*` and must still decide ESP/AH flows, so `*`
    /// matches every protocol.
    #[inline]
    pub fn mask(self) -> u8 {
        match self {
            RuleProtocol::Tcp => Protocol::Tcp.bit(),
            RuleProtocol::Udp => Protocol::Udp.bit(),
            RuleProtocol::Icmp => Protocol::Icmp.bit(),
            RuleProtocol::Esp => Protocol::Esp.bit(),
            RuleProtocol::Ah => Protocol::Ah.bit(),
            RuleProtocol::Any => 0x1f,
        }
    }
    /// Whether the rule's protocol covers a flow's protocol.
    #[inline]
    pub fn matches(self, p: Protocol) -> bool {
        self.mask() & p.bit() != 0
    }
}

azure_enum!(
    /// Traffic direction relative to the NIC or subnet an NSG is applied to.
    Direction, "direction", "Inbound, Outbound",
    { Inbound => "Inbound", Outbound => "Outbound" }
);

azure_enum!(
    /// What a rule does with matching traffic.
    Access, "access", "Allow, Deny",
    { Allow => "Allow", Deny => "Deny" }
);

// === PortSet ===

/// Error for a port expression that is not `N`, `N-M` or `*` with 0 ≤ N ≤ M ≤ 65535.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a port, range or `*` (expected e.g. 80, 8080-8090 or *; ports are 0-65535)")]
pub struct PortError(pub String);

/// The value a port-less flow (ICMP, ESP, AH) presents to port matching: one past 65535, so it is
/// matched only by port fields that cover every port.
///
/// *Assumption* `ASSUMPTION_PORTLESS_PROTOCOLS`: a rule whose port field names specific ports does
/// not match ICMP/ESP/AH flows; `*` (or `0-65535`) does.
pub const NO_PORT: u32 = 65_536;

/// A set of ports: sorted, merged, closed ranges over `0..=65535`; a set that covers every port
/// also contains [`NO_PORT`].
///
/// ```
/// use sim::PortSet;
/// let p = PortSet::parse_list(["443", "8080-8090"]).unwrap();
/// assert!(p.contains(8085) && !p.contains(80));
/// assert!(PortSet::parse("*").unwrap().is_any());
/// assert!(PortSet::parse("90-80").is_err());
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct PortSet(Vec<(u32, u32)>);

// === impl PortSet ===

impl PortSet {
    /// Every port (and port-less flows).
    pub fn any() -> PortSet {
        PortSet(vec![(0, NO_PORT)])
    }

    /// Parses one field value: `*`, `N`, `N-M`, or a comma-separated list of those (the portal's
    /// "80, 1024-65535" form).
    ///
    /// # Errors
    /// [`PortError`] naming the offending item.
    pub fn parse(s: &str) -> Result<PortSet, PortError> {
        PortSet::parse_list(s.split(','))
    }

    /// Parses a list of field values (the plural `*PortRanges` form).
    ///
    /// # Errors
    /// [`PortError`] naming the offending item; an empty list is an error too.
    pub fn parse_list<I, S>(items: I) -> Result<PortSet, PortError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut ranges = Vec::new();
        for item in items {
            let t = item.as_ref().trim();
            if t == "*" {
                return Ok(PortSet::any());
            }
            let (lo, hi) = match t.split_once('-') {
                Some((a, b)) => (parse_port(a, t)?, parse_port(b, t)?),
                None => {
                    let p = parse_port(t, t)?;
                    (p, p)
                }
            };
            if lo > hi {
                return Err(PortError(t.to_string()));
            }
            ranges.push((lo, hi));
        }
        if ranges.is_empty() {
            return Err(PortError(String::new()));
        }
        Ok(PortSet::from_ranges(ranges))
    }

    fn from_ranges(mut ranges: Vec<(u32, u32)>) -> PortSet {
        ranges.sort_unstable();
        let mut out: Vec<(u32, u32)> = Vec::with_capacity(ranges.len());
        for (lo, hi) in ranges {
            match out.last_mut() {
                Some(last) if lo <= last.1 + 1 => last.1 = last.1.max(hi),
                _ => out.push((lo, hi)),
            }
        }
        if out == [(0, 65_535)] {
            return PortSet::any();
        }
        PortSet(out)
    }

    /// Whether every port is in the set.
    pub fn is_any(&self) -> bool {
        self.0 == [(0, NO_PORT)]
    }

    /// Membership; `port` is a real port or [`NO_PORT`].
    #[inline]
    pub fn contains(&self, port: u32) -> bool {
        self.0.iter().any(|&(lo, hi)| lo <= port && port <= hi)
    }

    /// The ranges (the last one ends at [`NO_PORT`] when the set is `*`).
    pub fn ranges(&self) -> &[(u32, u32)] {
        &self.0
    }
}

fn parse_port(s: &str, whole: &str) -> Result<u32, PortError> {
    let t = s.trim();
    if t.is_empty() || !t.bytes().all(|b| b.is_ascii_digit()) {
        return Err(PortError(whole.to_string()));
    }
    match t.parse::<u32>() {
        Ok(p) if p <= 65_535 => Ok(p),
        _ => Err(PortError(whole.to_string())),
    }
}

impl fmt::Display for PortSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_any() {
            return f.write_str("*");
        }
        for (i, (lo, hi)) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            if lo == hi {
                write!(f, "{lo}")?;
            } else {
                write!(f, "{lo}-{hi}")?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enums_parse_case_insensitively_and_print_canonically() {
        assert_eq!("TCP".parse::<Protocol>().unwrap().to_string(), "Tcp");
        assert_eq!("any".parse::<RuleProtocol>().unwrap().to_string(), "*");
        assert_eq!(
            "outbound".parse::<Direction>().unwrap(),
            Direction::Outbound
        );
        let e = "Sideways".parse::<Direction>().unwrap_err();
        assert!(e.to_string().contains("Inbound, Outbound"));
    }

    #[test]
    fn any_protocol_matches_all() {
        for p in Protocol::ALL {
            assert!(RuleProtocol::Any.matches(*p));
        }
        assert!(!RuleProtocol::Tcp.matches(Protocol::Udp));
    }

    #[test]
    fn ports() {
        let p = PortSet::parse("80, 1024-65535").unwrap();
        assert!(p.contains(80) && p.contains(2000) && !p.contains(81));
        assert!(
            !p.contains(NO_PORT),
            "explicit ports never match port-less flows"
        );
        assert!(PortSet::parse("0-65535").unwrap().is_any());
        assert!(PortSet::parse("65536").is_err());
        assert!(PortSet::parse("-1").is_err());
        assert!(PortSet::parse("").is_err());
        assert_eq!(
            PortSet::parse_list(["81", "80"]).unwrap().to_string(),
            "80-81"
        );
    }
}
