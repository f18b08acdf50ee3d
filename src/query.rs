//! A flow as a user writes it — `--from apim --to orders:443 --protocol tcp` on the command line,
//! or `from`/`to`/`protocol`/`source_port` in an expectations file — parsed ([`FlowQuery::parse`]),
//! resolved against a topology into a [`sim::Flow`] ([`FlowQuery::resolve`]) and explained
//! ([`FlowQuery::explain`]).
//!
//! Words for an endpoint:
//! * `apim` — as a source, the address the instance's outbound flows leave from
//!   ([`Topology::apim_source`]); as a destination, its gateway endpoint
//!   ([`Topology::apim_endpoint`]);
//! * a host of the fixture, by its `name` or one of its `dns` names (case-insensitive) — its
//!   `address`;
//! * an IP address (IPv4 or IPv6).
//!
//! The destination may carry a port: `orders:443`, `10.0.2.4:443`, `[fd00::4]:443`. The port is
//! required for Tcp and Udp and refused for Icmp, Esp and Ah, which carry no ports. Defaults:
//! protocol Tcp, source port [`DEFAULT_SOURCE_PORT`] (recorded as the assumption
//! `ASSUMPTION_DEFAULT_SOURCE_PORT` in the verdict).

use std::fmt;
use std::net::{IpAddr, Ipv6Addr};

use sim::{Assumption, Destination, Flow, Protocol, Question, Topology, Verdict};

/// Source port used when none is given (as in Network Watcher's IP flow verify quickstart).
pub const DEFAULT_SOURCE_PORT: u16 = 60000;
/// Protocol used when none is given.
pub const DEFAULT_PROTOCOL: Protocol = Protocol::Tcp;

/// Which end of a flow a word describes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    /// The source (`--from`, `from`).
    Source,
    /// The destination (`--to`, `to`).
    Destination,
}

impl fmt::Display for Side {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Side::Source => "source",
            Side::Destination => "destination",
        })
    }
}

/// One end of a flow, as written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Endpoint {
    /// The API Management instance.
    Apim,
    /// A host of the fixture, by name or DNS name.
    Host(String),
    /// An address.
    Ip(IpAddr),
    /// An address in a named subnet, `vnet/subnet/address` (for VNets that overlap).
    Placed {
        /// VNet name.
        vnet: String,
        /// Subnet name.
        subnet: String,
        /// The address.
        address: IpAddr,
    },
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Endpoint::Apim => f.write_str("apim"),
            Endpoint::Host(h) => f.write_str(h),
            Endpoint::Ip(ip) => write!(f, "{ip}"),
            Endpoint::Placed {
                vnet,
                subnet,
                address,
            } => write!(f, "{vnet}/{subnet}/{address}"),
        }
    }
}

/// Why a flow could not be parsed or resolved: bad input, never a verdict.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    /// Nothing was given.
    #[error("the {side} is empty; expected `apim`, a host name or an IP address")]
    Empty {
        /// Which end.
        side: Side,
    },
    /// A port that is not a number in 0-65535.
    #[error("{side} `{text}`: port `{port}` is not a number in 0-65535")]
    BadPort {
        /// Which end.
        side: Side,
        /// The whole word.
        text: String,
        /// The port part.
        port: String,
    },
    /// A malformed bracketed IPv6 address.
    #[error(
        "{side} `{text}`: expected `[IPv6 address]` or `[IPv6 address]:PORT`, e.g. `[fd00::4]:443`"
    )]
    BadBracket {
        /// Which end.
        side: Side,
        /// The whole word.
        text: String,
    },
    /// A port after a bare IPv6 address, or a name with colons.
    #[error("{side} `{text}`: an IPv6 address with a port is written `[addr]:port`, e.g. `[fd00::4]:443`")]
    AmbiguousColon {
        /// Which end.
        side: Side,
        /// The whole word.
        text: String,
    },
    /// The source carries a port.
    #[error("source `{text}` carries a port; the source port is given separately (source port, default 60000)")]
    PortOnSource {
        /// The whole word.
        text: String,
    },
    /// Tcp or Udp without a destination port.
    #[error("destination `{text}` has no port, but {protocol} flows need one: write `{text}:PORT` (`[addr]:PORT` for IPv6)")]
    PortRequired {
        /// The protocol.
        protocol: Protocol,
        /// The destination as written.
        text: String,
    },
    /// A destination port for a protocol without ports.
    #[error("destination `{text}` names port {port}, but {protocol} flows carry no ports: drop `:{port}`")]
    PortNotAllowed {
        /// The protocol.
        protocol: Protocol,
        /// The destination as written.
        text: String,
        /// The port given.
        port: u16,
    },
    /// A port on a whole-space destination (`reach --to`).
    #[error(
        "destination `{text}` carries port {port}; give destination ports with --ports {port}"
    )]
    PortInSpace {
        /// The destination as written.
        text: String,
        /// The port given.
        port: u16,
    },
    /// A source port for a protocol without ports.
    #[error("source port {port} given, but {protocol} flows carry no ports: drop the source port")]
    SourcePortNotAllowed {
        /// The protocol.
        protocol: Protocol,
        /// The port given.
        port: u16,
    },
    /// `apim` in a fixture without `[apim]`.
    #[error("{side} `apim`: the fixture has no [apim] instance")]
    NoApim {
        /// Which end.
        side: Side,
    },
    /// A word that is neither `apim`, an IP address nor a host of the fixture.
    #[error("{side} `{name}` is not `apim`, an IP address, or a host name or DNS name of the fixture (hosts: {})", list(.known))]
    UnknownHost {
        /// Which end.
        side: Side,
        /// The word.
        name: String,
        /// The fixture's host names.
        known: Vec<String>,
    },
    /// A source address inside a VNet's address space but in none of its subnets.
    #[error("source {address} is inside the address space of vnets/{vnet} but in none of its subnets; a flow starts in a subnet, or outside every VNet (the internet or another private network)")]
    SourceNotInSubnet {
        /// The address.
        address: IpAddr,
        /// The VNet's name.
        vnet: String,
    },
    /// `vnet/subnet/address` naming a subnet the topology does not have.
    #[error("{side} `{text}`: no subnet `{vnet}/{subnet}` in the topology")]
    UnknownSubnet {
        /// Which end.
        side: Side,
        /// The word.
        text: String,
        /// VNet name.
        vnet: String,
        /// Subnet name.
        subnet: String,
    },
    /// `vnet/subnet/address` whose address is not in that subnet, or is placed elsewhere.
    #[error("{side} `{text}`: {reason}")]
    Misplaced {
        /// Which end.
        side: Side,
        /// The word.
        text: String,
        /// Why.
        reason: String,
    },
    /// A bare address that lies in several subnets (VNets that are not peered may overlap).
    #[error("{side} {address} lies in several subnets ({}); write vnet/subnet/address or a host name", list(.subnets))]
    AmbiguousAddress {
        /// Which end.
        side: Side,
        /// The address.
        address: IpAddr,
        /// `vnet/subnet` of each subnet holding it.
        subnets: Vec<String>,
    },
    /// Source and destination of different address families.
    #[error("source {source_address} and destination {destination} are of different address families; a flow is IPv4 or IPv6 end to end")]
    FamilyMismatch {
        /// The source address.
        source_address: IpAddr,
        /// The destination address.
        destination: IpAddr,
    },
}

fn list(items: &[String]) -> String {
    if items.is_empty() {
        "none".to_string()
    } else {
        items.join(", ")
    }
}

/// A flow as written: endpoints, optional protocol and source port.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FlowQuery {
    /// The source.
    pub from: Endpoint,
    /// The destination.
    pub to: Endpoint,
    /// The destination's text, for messages.
    pub to_text: String,
    /// The destination port, when given.
    pub port: Option<u16>,
    /// The protocol (default [`DEFAULT_PROTOCOL`]).
    pub protocol: Protocol,
    /// The source port, when given (default [`DEFAULT_SOURCE_PORT`] for Tcp and Udp).
    pub source_port: Option<u16>,
}

/// A query resolved against a topology: the question `sim` answers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResolvedQuestion {
    /// The question (its destination may still be a name).
    pub question: Question,
    /// Whether the source port is [`DEFAULT_SOURCE_PORT`] because none was given.
    pub source_port_defaulted: bool,
}

impl ResolvedQuestion {
    /// The flow once the destination is resolved from the source's side (`None` when the
    /// name does not resolve: `DNS_FAILURE`).
    pub fn flow(&self, t: &Topology) -> Option<Flow> {
        let q = &self.question;
        let address = match &q.destination {
            Destination::Address(a) => Some(*a),
            d => t.resolve_destination(q.source, d).and_then(|r| r.address),
        }?;
        Some(q.flow(address))
    }
}

// === impl FlowQuery ===

impl FlowQuery {
    /// Parses the words of a flow and checks protocol and ports against each other.
    ///
    /// # Errors
    /// [`QueryError`] saying which word is wrong and what was expected.
    ///
    /// ```
    /// use vnetsim::query::{Endpoint, FlowQuery};
    /// let q = FlowQuery::parse("apim", "[fd00::4]:443", None, None).unwrap();
    /// assert_eq!(q.to, Endpoint::Ip("fd00::4".parse().unwrap()));
    /// assert_eq!(q.port, Some(443));
    /// // Tcp (the default) needs a destination port.
    /// assert!(FlowQuery::parse("apim", "orders", None, None).is_err());
    /// ```
    pub fn parse(
        from: &str,
        to: &str,
        protocol: Option<Protocol>,
        source_port: Option<u16>,
    ) -> Result<FlowQuery, QueryError> {
        let (from_ep, from_port) = parse_word(from, Side::Source)?;
        if from_port.is_some() {
            return Err(QueryError::PortOnSource {
                text: from.trim().to_string(),
            });
        }
        let (to_ep, port) = parse_word(to, Side::Destination)?;
        let protocol = protocol.unwrap_or(DEFAULT_PROTOCOL);
        let to_text = to.trim().to_string();
        if protocol.has_ports() {
            if port.is_none() {
                return Err(QueryError::PortRequired {
                    protocol,
                    text: to_text,
                });
            }
        } else {
            if let Some(port) = port {
                return Err(QueryError::PortNotAllowed {
                    protocol,
                    text: to_text,
                    port,
                });
            }
            if let Some(port) = source_port {
                return Err(QueryError::SourcePortNotAllowed { protocol, port });
            }
        }
        Ok(FlowQuery {
            from: from_ep,
            to: to_ep,
            to_text,
            port,
            protocol,
            source_port,
        })
    }

    /// Resolves the endpoints against a topology into the question `sim` answers: the source
    /// to an address (`apim`, a host by name or DNS name, an IP), the destination to an address
    /// (`apim`, an IP) or a name that [`Topology::ask`] resolves from the source's side exactly
    /// as the gateway does (a `[[hosts]]` name is that host's address and wins over a DNS name
    /// of another host).
    ///
    /// # Errors
    /// [`QueryError`] for an unknown source host, `apim` without an instance, a source inside a
    /// VNet but in no subnet, or mixed address families.
    pub fn resolve(&self, t: &Topology) -> Result<ResolvedQuestion, QueryError> {
        let source = resolve_source(t, &self.from)?;
        let destination = match &self.to {
            Endpoint::Ip(ip) => Destination::Address(unambiguous(t, *ip, Side::Destination)?),
            Endpoint::Placed {
                vnet,
                subnet,
                address,
            } => Destination::Address(placed(t, vnet, subnet, *address, Side::Destination)?),
            Endpoint::Apim => {
                Destination::Address(t.apim_endpoint().ok_or(QueryError::NoApim {
                    side: Side::Destination,
                })?)
            }
            Endpoint::Host(name) => {
                // A word that names nothing of the topology is a typo (bad input), not a lookup.
                let zoned = t.dns_zones().iter().any(|z| {
                    let n = name.trim_end_matches('.').to_ascii_lowercase();
                    n == z.name || n.ends_with(&format!(".{}", z.name))
                });
                if t.host_by_name_or_dns(name).is_none() && !zoned {
                    return Err(unknown_host(t, name, Side::Destination));
                }
                Destination::Name {
                    name: name.clone(),
                    host_names: true,
                }
            }
        };
        if t.subnet_of(source).is_none() {
            if let Some(v) = t.vnet_of(source) {
                return Err(QueryError::SourceNotInSubnet {
                    address: source,
                    vnet: t.vnets()[v].name.clone(),
                });
            }
        }
        if let Destination::Address(d) = destination {
            if source.is_ipv4() != d.is_ipv4() {
                return Err(QueryError::FamilyMismatch {
                    source_address: source,
                    destination: d,
                });
            }
        }
        let ports = self.protocol.has_ports();
        let defaulted = ports && self.source_port.is_none();
        Ok(ResolvedQuestion {
            question: Question {
                protocol: self.protocol,
                source,
                source_port: ports.then(|| self.source_port.unwrap_or(DEFAULT_SOURCE_PORT)),
                destination,
                destination_port: if ports { self.port } else { None },
            },
            source_port_defaulted: defaulted,
        })
    }

    /// Resolves and evaluates the flow: the explained verdict ([`Topology::ask`]), with
    /// `ASSUMPTION_DEFAULT_SOURCE_PORT` among its assumptions when the source port was defaulted.
    ///
    /// # Errors
    /// As [`FlowQuery::resolve`], and [`QueryError::FamilyMismatch`] when the destination name
    /// resolves to an address of the other family.
    pub fn explain(&self, t: &Topology) -> Result<Verdict, QueryError> {
        let r = self.resolve(t)?;
        if let Some(a) = t
            .resolve_destination(r.question.source, &r.question.destination)
            .and_then(|res| res.address)
        {
            if a.is_ipv4() != r.question.source.is_ipv4() {
                return Err(QueryError::FamilyMismatch {
                    source_address: r.question.source,
                    destination: a,
                });
            }
        }
        let mut v = t.ask(&r.question);
        if r.source_port_defaulted && !v.assumptions.contains(&Assumption::DefaultSourcePort) {
            v.assumptions.push(Assumption::DefaultSourcePort);
            v.assumptions.sort();
        }
        Ok(v)
    }
}

/// Splits a word into an endpoint and an optional port.
fn parse_word(text: &str, side: Side) -> Result<(Endpoint, Option<u16>), QueryError> {
    let t = text.trim();
    if t.is_empty() {
        return Err(QueryError::Empty { side });
    }
    let port = |p: &str| -> Result<u16, QueryError> {
        let bad = || QueryError::BadPort {
            side,
            text: t.to_string(),
            port: p.to_string(),
        };
        if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        p.parse::<u16>().map_err(|_| bad())
    };
    if let Some((vnet, rest)) = t.split_once('/') {
        if let Some((subnet, addr)) = rest.split_once('/') {
            let (ep, p) = parse_word(addr, side)?;
            if let Endpoint::Ip(address) = ep {
                if !vnet.is_empty() && !subnet.is_empty() {
                    return Ok((
                        Endpoint::Placed {
                            vnet: vnet.to_string(),
                            subnet: subnet.to_string(),
                            address,
                        },
                        p,
                    ));
                }
            }
            return Err(QueryError::Misplaced {
                side,
                text: t.to_string(),
                reason: "expected vnet/subnet/address, e.g. vnet-a/snet-1/10.0.1.4".into(),
            });
        }
    }
    if let Some(rest) = t.strip_prefix('[') {
        let bracket = || QueryError::BadBracket {
            side,
            text: t.to_string(),
        };
        let (inside, after) = rest.split_once(']').ok_or_else(bracket)?;
        let ip: Ipv6Addr = inside.parse().map_err(|_| bracket())?;
        let p = match after {
            "" => None,
            a => Some(port(a.strip_prefix(':').ok_or_else(bracket)?)?),
        };
        return Ok((Endpoint::Ip(IpAddr::V6(ip)), p));
    }
    if let Ok(ip) = t.parse::<IpAddr>() {
        return Ok((Endpoint::Ip(ip), None));
    }
    let (word, p) = match t.rsplit_once(':') {
        Some((w, p)) => (w, Some(port(p)?)),
        None => (t, None),
    };
    if word.contains(':') || word.is_empty() {
        return Err(QueryError::AmbiguousColon {
            side,
            text: t.to_string(),
        });
    }
    let ep = if word.eq_ignore_ascii_case("apim") {
        Endpoint::Apim
    } else if let Ok(ip) = word.parse::<IpAddr>() {
        Endpoint::Ip(ip)
    } else {
        Endpoint::Host(word.to_string())
    };
    Ok((ep, p))
}

/// Resolves a source word alone (`apim`, a host name or DNS name, an IP) as `check` resolves
/// `--from`: for the whole-space commands (`reach`, `diff`).
///
/// # Errors
/// [`QueryError`] for a port on the source, an unknown host, `apim` without an instance, or a
/// source inside a VNet but in none of its subnets.
pub fn resolve_source_word(t: &Topology, word: &str) -> Result<IpAddr, QueryError> {
    let (ep, port) = parse_word(word, Side::Source)?;
    if port.is_some() {
        return Err(QueryError::PortOnSource {
            text: word.trim().to_string(),
        });
    }
    let source = resolve_source(t, &ep)?;
    if t.subnet_of(source).is_none() {
        if let Some(v) = t.vnet_of(source) {
            return Err(QueryError::SourceNotInSubnet {
                address: source,
                vnet: t.vnets()[v].name.clone(),
            });
        }
    }
    Ok(source)
}

/// Resolves a destination word without a port (`apim`, a host name, a DNS name resolved from
/// `source`'s side, an IP) as `check` resolves `--to`; `None` when a DNS name does not resolve.
///
/// # Errors
/// [`QueryError`] for a port, or a word naming nothing of the topology.
pub fn resolve_destination_word(
    t: &Topology,
    source: IpAddr,
    word: &str,
) -> Result<Option<IpAddr>, QueryError> {
    let (ep, port) = parse_word(word, Side::Destination)?;
    if let Some(port) = port {
        return Err(QueryError::PortInSpace {
            text: word.trim().to_string(),
            port,
        });
    }
    Ok(match ep {
        Endpoint::Ip(ip) => Some(unambiguous(t, ip, Side::Destination)?),
        Endpoint::Placed {
            vnet,
            subnet,
            address,
        } => Some(placed(t, &vnet, &subnet, address, Side::Destination)?),
        Endpoint::Apim => Some(t.apim_endpoint().ok_or(QueryError::NoApim {
            side: Side::Destination,
        })?),
        Endpoint::Host(name) => {
            let zoned = t.dns_zones().iter().any(|z| {
                let n = name.trim_end_matches('.').to_ascii_lowercase();
                n == z.name || n.ends_with(&format!(".{}", z.name))
            });
            if t.host_by_name_or_dns(&name).is_none() && !zoned {
                return Err(unknown_host(t, &name, Side::Destination));
            }
            t.resolve_destination(
                source,
                &Destination::Name {
                    name,
                    host_names: true,
                },
            )
            .and_then(|r| r.address)
        }
    })
}

fn resolve_source(t: &Topology, ep: &Endpoint) -> Result<IpAddr, QueryError> {
    let side = Side::Source;
    match ep {
        Endpoint::Ip(ip) => unambiguous(t, *ip, side),
        Endpoint::Placed {
            vnet,
            subnet,
            address,
        } => placed(t, vnet, subnet, *address, side),
        Endpoint::Apim => t.apim_source().ok_or(QueryError::NoApim { side }),
        Endpoint::Host(name) => match t.host_by_name_or_dns(name) {
            Some(h) => Ok(t.hosts()[h].address),
            None => Err(unknown_host(t, name, side)),
        },
    }
}

/// The `vnet/subnet` names of every subnet holding `ip`.
fn subnets_holding(t: &Topology, ip: IpAddr) -> Vec<(usize, usize, String)> {
    let mut out = Vec::new();
    for (vi, v) in t.vnets().iter().enumerate() {
        for (si, s) in v.subnets.iter().enumerate() {
            if s.prefixes.iter().any(|p| p.contains(ip)) {
                out.push((vi, si, format!("{}/{}", v.name, s.name)));
            }
        }
    }
    out
}

/// A bare address: refused when it lies in several subnets and no host is placed at it (an
/// address alone does not say which of overlapping VNets is meant; never place it silently).
fn unambiguous(t: &Topology, ip: IpAddr, side: Side) -> Result<IpAddr, QueryError> {
    let holding = subnets_holding(t, ip);
    if holding.len() > 1 && t.host_at(ip).is_none() {
        return Err(QueryError::AmbiguousAddress {
            side,
            address: ip,
            subnets: holding.into_iter().map(|(_, _, n)| n).collect(),
        });
    }
    Ok(ip)
}

/// `vnet/subnet/address`: the subnet must exist and hold the address, and the model must place
/// the address there (a host's declared `subnet`, or the only subnet holding it).
fn placed(
    t: &Topology,
    vnet: &str,
    subnet: &str,
    address: IpAddr,
    side: Side,
) -> Result<IpAddr, QueryError> {
    let text = format!("{vnet}/{subnet}/{address}");
    let holding = subnets_holding(t, address);
    let named = |n: &str| n.eq_ignore_ascii_case(&format!("{vnet}/{subnet}"));
    let exists = t.vnets().iter().any(|v| {
        v.name.eq_ignore_ascii_case(vnet)
            && v.subnets
                .iter()
                .any(|s| s.name.eq_ignore_ascii_case(subnet))
    });
    if !exists {
        return Err(QueryError::UnknownSubnet {
            side,
            text,
            vnet: vnet.to_string(),
            subnet: subnet.to_string(),
        });
    }
    let Some(&(vi, si, _)) = holding.iter().find(|(_, _, n)| named(n)) else {
        return Err(QueryError::Misplaced {
            side,
            text,
            reason: format!("{address} is not in subnet {vnet}/{subnet}"),
        });
    };
    if t.subnet_of(address) != Some((vi, si)) {
        return Err(QueryError::Misplaced {
            side,
            text,
            reason: format!("{address} is placed in another subnet of an overlapping VNet; flows are addressed by IP, so declare a [[hosts]] entry with subnet = \"{vnet}/{subnet}\" and name that host"),
        });
    }
    Ok(address)
}

fn unknown_host(t: &Topology, name: &str, side: Side) -> QueryError {
    let mut known: Vec<String> = t.hosts().iter().map(|h| h.name.clone()).collect();
    known.sort_by_key(|n| n.to_ascii_lowercase());
    QueryError::UnknownHost {
        side,
        name: name.to_string(),
        known,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sim::fixture::{Fixture, Format};
    use sim::{ServiceTagTable, VerdictKind};

    fn topology() -> Topology {
        let f = Fixture::parse(include_str!("../fixtures/default.toml"), Format::Toml).unwrap();
        Topology::build(&f, ServiceTagTable::builtin()).topology
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn words_and_ports() {
        let p = |s| parse_word(s, Side::Destination);
        assert_eq!(p("apim").unwrap(), (Endpoint::Apim, None));
        assert_eq!(p("APIM:443").unwrap(), (Endpoint::Apim, Some(443)));
        assert_eq!(
            p("orders:443").unwrap(),
            (Endpoint::Host("orders".into()), Some(443))
        );
        assert_eq!(
            p("10.0.2.4:8080").unwrap(),
            (Endpoint::Ip(ip("10.0.2.4")), Some(8080))
        );
        assert_eq!(p("fd00::4").unwrap(), (Endpoint::Ip(ip("fd00::4")), None));
        assert_eq!(p("[fd00::4]").unwrap(), (Endpoint::Ip(ip("fd00::4")), None));
        assert_eq!(
            p("[fd00::4]:443").unwrap(),
            (Endpoint::Ip(ip("fd00::4")), Some(443))
        );
        // A bare IPv6 address swallows what looks like a port, so the bracket form is required.
        assert_eq!(p("fd00::4:443").unwrap().1, None);
        assert!(matches!(p("orders:99999"), Err(QueryError::BadPort { .. })));
        assert!(matches!(p("orders:+80"), Err(QueryError::BadPort { .. })));
        assert!(matches!(p("[fd00::4"), Err(QueryError::BadBracket { .. })));
        assert!(matches!(
            p("[10.0.0.1]:80"),
            Err(QueryError::BadBracket { .. })
        ));
        assert!(matches!(
            p("[fd00::4]443"),
            Err(QueryError::BadBracket { .. })
        ));
        assert!(matches!(
            p("a:b:80"),
            Err(QueryError::AmbiguousColon { .. })
        ));
        assert!(matches!(p("  "), Err(QueryError::Empty { .. })));
    }

    #[test]
    fn protocol_and_port_rules() {
        let q = |to, proto, sport| FlowQuery::parse("apim", to, proto, sport);
        assert!(matches!(
            q("orders", None, None),
            Err(QueryError::PortRequired { .. })
        ));
        assert!(matches!(
            q("orders", Some(Protocol::Udp), None),
            Err(QueryError::PortRequired { .. })
        ));
        assert!(matches!(
            q("orders:443", Some(Protocol::Icmp), None),
            Err(QueryError::PortNotAllowed { .. })
        ));
        assert!(matches!(
            q("orders", Some(Protocol::Esp), Some(5)),
            Err(QueryError::SourcePortNotAllowed { .. })
        ));
        assert!(q("orders", Some(Protocol::Ah), None).is_ok());
        assert!(matches!(
            FlowQuery::parse("orders:80", "apim:443", None, None),
            Err(QueryError::PortOnSource { .. })
        ));
    }

    #[test]
    fn resolution() {
        let t = topology();
        let r = FlowQuery::parse("APIM", "Orders:443", None, None)
            .unwrap()
            .resolve(&t)
            .unwrap();
        let f = r.flow(&t).unwrap();
        assert_eq!(
            f.source,
            ip("10.0.1.4"),
            "integrated: first usable subnet address"
        );
        assert_eq!(f.destination, ip("10.0.2.4"));
        assert_eq!(f.source_port, Some(DEFAULT_SOURCE_PORT));
        assert!(r.source_port_defaulted);
        // A DNS name of a host resolves to its address too.
        let r = FlowQuery::parse("apim", "legacy.internal.contoso.com:8080", None, Some(1234))
            .unwrap()
            .resolve(&t)
            .unwrap();
        let f = r.flow(&t).unwrap();
        assert_eq!((f.destination, f.source_port), (ip("10.0.2.5"), Some(1234)));
        assert!(!r.source_port_defaulted);
        // Icmp carries no ports, so nothing is defaulted.
        let r = FlowQuery::parse("apim", "orders", Some(Protocol::Icmp), None)
            .unwrap()
            .resolve(&t)
            .unwrap();
        let f = r.flow(&t).unwrap();
        assert_eq!((f.source_port, f.destination_port), (None, None));
        assert!(!r.source_port_defaulted);
    }

    #[test]
    fn resolution_errors() {
        let t = topology();
        let e = FlowQuery::parse("apim", "ordrs:443", None, None)
            .unwrap()
            .resolve(&t)
            .unwrap_err();
        assert!(e.to_string().contains("legacy, orders, payments"), "{e}");
        let e = FlowQuery::parse("10.0.9.9", "orders:443", None, None)
            .unwrap()
            .resolve(&t)
            .unwrap_err();
        assert!(
            matches!(&e, QueryError::SourceNotInSubnet { vnet, .. } if vnet == "vnet-app"),
            "{e}"
        );
        let e = FlowQuery::parse("apim", "[fd00::4]:443", None, None)
            .unwrap()
            .resolve(&t)
            .unwrap_err();
        assert!(matches!(e, QueryError::FamilyMismatch { .. }));
        let empty = Topology::build(&Fixture::default(), ServiceTagTable::builtin()).topology;
        let e = FlowQuery::parse("apim", "10.0.0.1:1", None, None)
            .unwrap()
            .resolve(&empty)
            .unwrap_err();
        assert_eq!(e, QueryError::NoApim { side: Side::Source });
    }

    #[test]
    fn placed_addresses_in_overlapping_vnets() {
        let text = |subnet: &str| {
            format!(
                r#"
[[vnets]]
name = "v1"
region = "westeurope"
address_space = ["10.0.0.0/16"]
  [[vnets.subnets]]
  name = "a"
  address_prefix = "10.0.1.0/24"
[[vnets]]
name = "v2"
region = "westeurope"
address_space = ["10.0.0.0/16"]
  [[vnets.subnets]]
  name = "b"
  address_prefix = "10.0.1.0/24"
[[hosts]]
name = "vm"
address = "10.0.1.4"
{subnet}
"#
            )
        };
        let f = Fixture::parse(&text("subnet = \"v2/b\""), Format::Toml).unwrap();
        let t = Topology::build(&f, ServiceTagTable::builtin()).topology;
        let q = |from: &str, to: &str| FlowQuery::parse(from, to, None, None);
        // The word form parses; a host's own placement is accepted, by name or as v/s/address.
        assert_eq!(
            parse_word("v2/b/10.0.1.4:443", Side::Destination).unwrap(),
            (
                Endpoint::Placed {
                    vnet: "v2".into(),
                    subnet: "b".into(),
                    address: ip("10.0.1.4")
                },
                Some(443)
            )
        );
        assert!(q("V2/B/10.0.1.4", "10.0.1.9:443")
            .unwrap()
            .resolve(&t)
            .is_err());
        let r = q("v2/b/10.0.1.4", "8.8.8.8:443")
            .unwrap()
            .resolve(&t)
            .unwrap();
        assert_eq!(r.question.source, ip("10.0.1.4"));
        // The wrong subnet of the two, a subnet that does not exist, a malformed word.
        let e = q("v1/a/10.0.1.4", "8.8.8.8:443")
            .unwrap()
            .resolve(&t)
            .unwrap_err();
        assert!(matches!(e, QueryError::Misplaced { .. }), "{e}");
        let e = q("v9/a/10.0.1.4", "8.8.8.8:443")
            .unwrap()
            .resolve(&t)
            .unwrap_err();
        assert!(matches!(e, QueryError::UnknownSubnet { .. }), "{e}");
        assert!(parse_word("v1/a/vm", Side::Source).is_err());
        // A bare address in both subnets that no host is placed at is never placed silently.
        let e = q("10.0.1.9", "8.8.8.8:443")
            .unwrap()
            .resolve(&t)
            .unwrap_err();
        assert!(
            matches!(&e, QueryError::AmbiguousAddress { subnets, .. } if subnets == &["v1/a", "v2/b"]),
            "{e}"
        );
        // The host's own address is not ambiguous: its declared subnet places it.
        assert!(q("10.0.1.4", "8.8.8.8:443").unwrap().resolve(&t).is_ok());
    }

    #[test]
    fn explain_records_the_defaulted_source_port() {
        let t = topology();
        let v = FlowQuery::parse("apim", "orders:443", None, None)
            .unwrap()
            .explain(&t)
            .unwrap();
        assert_eq!(v.verdict, VerdictKind::Allow);
        assert!(v.assumptions.contains(&Assumption::DefaultSourcePort));
        let mut sorted = v.assumptions.clone();
        sorted.sort();
        assert_eq!(sorted, v.assumptions, "assumptions stay sorted");
        let v = FlowQuery::parse("apim", "orders:443", None, Some(50000))
            .unwrap()
            .explain(&t)
            .unwrap();
        assert!(!v.assumptions.contains(&Assumption::DefaultSourcePort));
    }
}
