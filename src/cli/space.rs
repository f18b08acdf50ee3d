//! What `reach`, `lint` and `diff` share: resolving `--from`/`--to`/`--protocol`/`--ports` into a
//! [`SpaceQuery`], and the JSON and text forms of classes, outcomes and example flows.

use std::net::IpAddr;

use serde_json::{json, Value};
use sim::{
    AddrSet, Anchor, Cidr, Decision, Flow, FlowClass, PortSet, Protocol, SpaceQuery, Step, Topology,
};

/// `--from` (or `--into`), `--to`, `--protocol` and `--ports` as written.
pub(crate) struct SpaceWords<'a> {
    pub from: &'a str,
    /// `--into`: the fixed destination (then `from` is unused and `to` absent).
    pub into: Option<&'a str>,
    pub to: Option<&'a str>,
    pub protocol: Option<Protocol>,
    pub ports: Option<&'a str>,
}

/// `--into`'s destination: `apim` (the gateway endpoint), a host name or a host's DNS name (its
/// address), or an IP address. (A DNS name of a private zone resolves differently from each
/// VNet, so only a host's own names are taken.)
fn into_address(t: &Topology, word: &str) -> anyhow::Result<IpAddr> {
    let w = word.trim();
    if let Ok(ip) = w
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<IpAddr>()
    {
        return Ok(ip);
    }
    if w.eq_ignore_ascii_case("apim") {
        return t
            .apim_endpoint()
            .ok_or_else(|| anyhow::anyhow!("--into `apim`: the fixture has no [apim] instance"));
    }
    match t.host_by_name_or_dns(w) {
        Some(h) => Ok(t.hosts()[h].address),
        None => {
            let mut known: Vec<&str> = t.hosts().iter().map(|h| h.name.as_str()).collect();
            known.sort_by_key(|n| n.to_ascii_lowercase());
            anyhow::bail!(
                "--into `{w}` is not `apim`, an IP address, or a host name or DNS name of a host of the fixture (hosts: {})",
                if known.is_empty() { "none".to_string() } else { known.join(", ") }
            )
        }
    }
}

/// The query the words ask.
pub(crate) fn query(t: &Topology, w: &SpaceWords<'_>) -> anyhow::Result<SpaceQuery> {
    if let Some(into) = w.into {
        let d = into_address(t, into)?;
        let mut q = SpaceQuery::into(d);
        let (protocols, ports) = protocols_ports(w)?;
        q.protocols = protocols;
        q.ports = ports;
        return Ok(q);
    }
    let source = crate::query::resolve_source_word(t, w.from)?;
    let destinations = match w.to {
        None => None,
        Some(to) if to.contains('/') => {
            let c: Cidr = to
                .trim()
                .parse()
                .map_err(|e| anyhow::anyhow!("--to `{to}`: {e}"))?;
            Some(AddrSet::from_cidrs([c]))
        }
        Some(to) => {
            let a = crate::query::resolve_destination_word(t, source, to)?.ok_or_else(|| {
                anyhow::anyhow!("--to `{to}` does not resolve from the source's side (DNS_FAILURE): nothing to partition")
            })?;
            Some(AddrSet::from_cidrs([Cidr::host(a)]))
        }
    };
    if let Some(d) = &destinations {
        let same = if source.is_ipv4() {
            !d.v4_intervals().is_empty()
        } else {
            !d.v6_intervals().is_empty()
        };
        if !same {
            anyhow::bail!("--to `{}` is not of the source {source}'s address family; a flow is IPv4 or IPv6 end to end", w.to.unwrap_or_default());
        }
    }
    let (protocols, ports) = protocols_ports(w)?;
    Ok(SpaceQuery {
        anchor: Anchor::From(source),
        addresses: destinations,
        protocols,
        ports,
    })
}

fn protocols_ports(w: &SpaceWords<'_>) -> anyhow::Result<(Vec<Protocol>, Option<PortSet>)> {
    let ports = w
        .ports
        .map(|p| PortSet::parse(p).map_err(|e| anyhow::anyhow!("--ports: {e}")))
        .transpose()?;
    let protocols = match (w.protocol, &ports) {
        (Some(p), Some(_)) if !p.has_ports() => {
            anyhow::bail!(
                "--ports given, but {p} flows carry no ports: drop --ports or choose Tcp or Udp"
            )
        }
        (Some(p), _) => vec![p],
        (None, Some(_)) => vec![Protocol::Tcp, Protocol::Udp],
        (None, None) => Protocol::ALL.to_vec(),
    };
    Ok((protocols, ports))
}

/// `80`, `8080-8090`.
pub(crate) fn port_text(&(lo, hi): &(u16, u16)) -> String {
    if lo == hi {
        lo.to_string()
    } else {
        format!("{lo}-{hi}")
    }
}

/// The query object of `reach`'s JSON: `from` and `source` (or `into` and `destination`), `to`
/// (the other end's restriction, as address ranges), `protocols`, `ports`.
pub(crate) fn query_json(w: &SpaceWords<'_>, q: &SpaceQuery) -> Value {
    let (from, source, into, destination) = match q.anchor {
        Anchor::From(s) => (Some(w.from), Some(s.to_string()), None, None),
        Anchor::Into(d) => (None, None, w.into, Some(d.to_string())),
    };
    json!({
        "from": from,
        "source": source,
        "into": into,
        "destination": destination,
        "to": q.addresses.as_ref().map(|d| {
            let mut v: Vec<String> = Vec::new();
            for &(lo, hi) in d.v4_intervals() {
                v.push(format!("{}-{}", std::net::Ipv4Addr::from(lo), std::net::Ipv4Addr::from(hi)));
            }
            for &(lo, hi) in d.v6_intervals() {
                v.push(format!("{}-{}", std::net::Ipv6Addr::from(lo), std::net::Ipv6Addr::from(hi)));
            }
            v
        }),
        "protocols": q.protocols,
        "ports": q.ports.as_ref().map_or("*".to_string(), |p| p.to_string()),
    })
}

/// A decision's hops in path order ([`Decision::steps`]: NSG out → route → firewall → … → NSG
/// in): every NSG evaluated and its matched rule, every route taken (`{route, route_table,
/// address_prefix, next_hop_type, next_hop_ip_address}`, named as `check` names them), and the
/// firewall that denied the flow or last allowed it (`{firewall, group, collection, rule,
/// access, kind}`).
pub(crate) fn decided_by(t: &Topology, d: &Decision) -> Value {
    let hops: Vec<Value> = d
        .steps()
        .into_iter()
        .map(|s| match s {
            Step::Nsg(r) => {
                let i = t.rule_info(r);
                json!({
                    "nsg": i.nsg,
                    "rule": i.rule,
                    "access": r.access,
                    "direction": r.direction,
                    "applied_to": t.applied_to_path(r.applied_to),
                })
            }
            Step::Route(r) => {
                let i = t.route_info(r);
                json!({
                    "route": i.name(),
                    "route_table": i.table,
                    "address_prefix": i.prefix.to_string(),
                    "next_hop_type": i.next_hop.as_str(),
                    "next_hop_ip_address": i.next_hop.address().map(|a| a.to_string()),
                })
            }
            Step::Firewall(m) => {
                let fw = &t.firewalls()[m.firewall];
                let (group, collection, rule) = fw.names(&m);
                json!({
                    "firewall": fw.name,
                    "group": group,
                    "collection": collection,
                    "rule": rule,
                    "access": m.action,
                    "kind": m.kind,
                })
            }
        })
        .collect();
    Value::Array(hops)
}

/// An application rule's target FQDNs when a firewall's application rule decided (the class is
/// keyed by its firewall match, so every flow of the class has the same rule).
pub(crate) fn fqdns(t: &Topology, d: &Decision) -> Option<Value> {
    let m = d.firewall?;
    let rule = t.firewalls()[m.firewall].rule(&m)?;
    (!rule.fqdns.is_empty()).then(|| json!(rule.fqdns))
}

/// `nsg-apim/allow-https-out > rt-apim/default-to-firewall > fw-hub/partner-api` hops in path
/// order joined by ` > ` (a system route as `System Route (Internet)`), or `-`.
pub(crate) fn decided_by_text(t: &Topology, d: &Decision) -> String {
    let v: Vec<String> = d
        .steps()
        .into_iter()
        .map(|s| match s {
            Step::Nsg(r) => {
                let i = t.rule_info(r);
                format!("{}/{}", i.nsg, i.rule.rsplit('/').next().unwrap_or(&i.rule))
            }
            Step::Route(r) => t.route_info(r).label(),
            Step::Firewall(m) => {
                let fw = &t.firewalls()[m.firewall];
                let (_, _, rule) = fw.names(&m);
                format!("{}/{rule}", fw.name)
            }
        })
        .collect();
    if v.is_empty() {
        "-".into()
    } else {
        v.join(" > ")
    }
}

/// A flow with `check`'s field names.
pub(crate) fn flow_json(f: &Flow) -> Value {
    json!({
        "protocol": f.protocol,
        "source": f.source.to_string(),
        "source_port": f.source_port,
        "destination": f.destination.to_string(),
        "destination_port": f.destination_port,
    })
}

/// The fields a class shares between `reach` and `diff`.
pub(crate) fn class_fields(c: &FlowClass) -> serde_json::Map<String, Value> {
    let mut m = serde_json::Map::new();
    m.insert(
        "sources".into(),
        json!(c.sources.iter().map(Cidr::to_string).collect::<Vec<_>>()),
    );
    m.insert(
        "destinations".into(),
        json!(c
            .destinations
            .iter()
            .map(Cidr::to_string)
            .collect::<Vec<_>>()),
    );
    m.insert(
        "ports".into(),
        json!(c.ports.iter().map(port_text).collect::<Vec<_>>()),
    );
    m.insert("protocols".into(), json!(c.protocols));
    if !c.any_source_port() {
        m.insert(
            "source_ports".into(),
            json!(c.source_ports.iter().map(port_text).collect::<Vec<_>>()),
        );
    }
    m.insert("addresses".into(), json!(c.addresses.to_string()));
    m
}

/// `10.0.2.0/24 10.0.3.0/25 (+3)` for a table cell.
pub(crate) fn destinations_text(c: &FlowClass, max: usize) -> String {
    prefixes_text(&c.destinations, max)
}

/// `10.0.2.0/24 10.0.3.0/25 (+3 more)` for a table cell.
pub(crate) fn prefixes_text(v: &[Cidr], max: usize) -> String {
    let mut s: Vec<String> = v.iter().take(max).map(Cidr::to_string).collect();
    if v.len() > max {
        s.push(format!("(+{} more)", v.len() - max));
    }
    s.join(" ")
}

/// `Tcp,Udp 443,8080-8090` (and source ports when restricted).
pub(crate) fn service_text(c: &FlowClass) -> String {
    let protos: Vec<&str> = c.protocols.iter().map(|p| p.as_str()).collect();
    let mut s = protos.join(",");
    if !c.ports.is_empty() {
        let ports: Vec<String> = c.ports.iter().map(port_text).collect();
        let ports = if ports == ["0-65535"] {
            "*".to_string()
        } else {
            ports.join(",")
        };
        s.push(' ');
        s.push_str(&ports);
    }
    if !c.any_source_port() {
        let sp: Vec<String> = c.source_ports.iter().map(port_text).collect();
        s.push_str(&format!(" from port {}", sp.join(",")));
    }
    s
}

/// A source word's address for messages.
pub(crate) fn source_text(from: &str, source: IpAddr) -> String {
    if from.parse::<IpAddr>().is_ok() {
        source.to_string()
    } else {
        format!("{from} ({source})")
    }
}

/// Left-aligned columns as wide as their widest cell, the last one unpadded.
pub(crate) fn table<const N: usize>(head: &[String; N], rows: &[[String; N]]) -> String {
    let mut w = [0usize; N];
    for r in std::iter::once(head).chain(rows) {
        for (i, c) in r.iter().enumerate() {
            w[i] = w[i].max(c.chars().count());
        }
    }
    let line = |r: &[String; N]| {
        let mut s = String::new();
        for (i, c) in r.iter().enumerate() {
            if i + 1 == N {
                s.push_str(c);
            } else {
                s.push_str(&format!("{c:<width$} ", width = w[i]));
            }
        }
        s.trim_end().to_string()
    };
    let mut out = vec![line(head)];
    out.extend(rows.iter().map(line));
    out.join("\n")
}
