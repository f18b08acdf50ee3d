//! The explaining path's view of routes and devices: the hops of `check`'s JSON (`hops`,
//! `return_hops`) and what decided a verdict when no NSG did (a firewall rule, a `None` route).
//! Only [`Topology::evaluate`] uses it; the verdict-only walk reports nothing.

use std::net::IpAddr;

use super::path::DeviceKind;
use super::walk::{Event, Plan};
use super::{DecidedBy, DecidedKind, Decision, DnatView, Hop, RouteInfo, RouteRef, VerdictCode};
use crate::proto::{Access, Direction};
use crate::route::EffectiveRoute;
use crate::topology::Topology;

impl Topology {
    pub(super) fn route_of(&self, r: RouteRef) -> &EffectiveRoute {
        &self.routes[r.vnet as usize][r.subnet as usize].routes[r.route as usize]
    }

    /// The names of a route taken ([`Decision::routes`]): the one naming of routes that
    /// `check`'s hops, `reach`, `diff` and `lint` print.
    pub fn route_info(&self, r: RouteRef) -> RouteInfo<'_> {
        let route = self.route_of(r);
        RouteInfo {
            table: route.user.map(|(t, _)| self.route_tables[t].name.as_str()),
            route: route.name.as_deref(),
            prefix: route.prefix,
            next_hop: route.next_hop,
        }
    }

    fn route_hop(&self, r: RouteRef, source: IpAddr, destination: IpAddr) -> Hop {
        let info = self.route_info(r);
        Hop {
            kind: "route",
            name: info.name(),
            source: source.to_string(),
            destination: destination.to_string(),
            decided_by: Some(info.text()),
        }
    }

    /// The hop of a walk event.
    pub(super) fn hop(&self, e: Event, destination: IpAddr) -> Hop {
        match e {
            Event::Route(r, src) => self.route_hop(r, src, destination),
            Event::Firewall(m, src) => {
                let fw = &self.firewalls[m.firewall];
                let (g, c, rule) = fw.names(&m);
                let decided = match (g, c) {
                    (Some(g), Some(c)) => format!("{g}/{c}/{rule}"),
                    _ => rule.to_string(),
                };
                Hop {
                    kind: "firewall",
                    name: fw.name.clone(),
                    source: src.to_string(),
                    destination: destination.to_string(),
                    decided_by: Some(format!("{} {decided}", m.action)),
                }
            }
            Event::Dnat(m, src, to, port) => {
                let fw = &self.firewalls[m.firewall];
                let (g, c, rule) = fw.names(&m);
                let decided = [g, c, Some(rule)]
                    .into_iter()
                    .flatten()
                    .collect::<Vec<_>>()
                    .join("/");
                let to = match to {
                    IpAddr::V6(v6) => format!("[{v6}]:{port}"),
                    v4 => format!("{v4}:{port}"),
                };
                Hop {
                    kind: "firewall",
                    name: fw.name.clone(),
                    source: src.to_string(),
                    destination: destination.to_string(),
                    decided_by: Some(format!("Dnat {decided} → {to}")),
                }
            }
            Event::Appliance(h, src) => Hop {
                kind: "appliance",
                name: self.hosts[h].name.clone(),
                source: src.to_string(),
                destination: destination.to_string(),
                decided_by: None,
            },
            Event::Nat(n, src) => Hop {
                kind: "nat",
                name: self.nat_gateways[n].name.clone(),
                source: src.to_string(),
                destination: destination.to_string(),
                decided_by: None,
            },
        }
    }

    /// What decided a verdict that no NSG rule decided: the firewall (its rule, or `default`)
    /// or the `None` route.
    pub(super) fn device_decided_by(&self, d: &Decision) -> Option<DecidedBy> {
        let blank = |kind, nsg: String, group, collection, rule: String| DecidedBy {
            kind,
            nsg,
            group,
            collection,
            rule,
            priority: 0,
            access: Access::Deny,
            direction: Direction::Outbound,
            location: None,
            tags: Vec::new(),
        };
        match d.code {
            VerdictCode::FirewallDenied => {
                let m = d.firewall?;
                let fw = &self.firewalls[m.firewall];
                let (g, c, rule) = fw.names(&m);
                Some(blank(
                    DecidedKind::Firewall,
                    fw.name.clone(),
                    g.map(str::to_string),
                    c.map(str::to_string),
                    rule.to_string(),
                ))
            }
            VerdictCode::RouteNone => {
                let r = d.routes().last()?;
                let info = self.route_info(r);
                Some(blank(
                    DecidedKind::Route,
                    info.table.unwrap_or_default().to_string(),
                    Some(info.prefix.to_string()),
                    Some(info.next_hop.as_str().to_string()),
                    info.route.unwrap_or("System Route").to_string(),
                ))
            }
            _ => None,
        }
    }

    /// The reply's hops: the routes it takes from the destination's subnet and the devices
    /// they send it through.
    pub(super) fn return_hops(&self, plan: &Plan, origin: IpAddr) -> Vec<Hop> {
        let Some(devices) = plan.return_devices else {
            return Vec::new();
        };
        let (from, to) = (plan.inbound_destination, origin);
        let mut out = Vec::new();
        for (i, r) in plan.return_routes.iter().enumerate() {
            let Some(r) = r else { break };
            out.push(self.route_hop(*r, from, to));
            if let Some(Some(k)) = devices.get(i) {
                let (kind, name) = match k {
                    DeviceKind::Firewall(f) => ("firewall", self.firewalls[*f].name.clone()),
                    DeviceKind::Appliance(h) => ("appliance", self.hosts[*h].name.clone()),
                };
                out.push(Hop {
                    kind,
                    name,
                    source: from.to_string(),
                    destination: to.to_string(),
                    decided_by: None,
                });
            }
        }
        out
    }

    /// A DNAT translation with names, for `check`'s `dnat`.
    pub(super) fn dnat_view(&self, x: &crate::firewall::Dnat) -> DnatView {
        let fw = &self.firewalls[x.firewall];
        let (g, c, r) = x.rule;
        let group = &fw.groups[g as usize];
        let col = &group.collections[c as usize];
        let rule = &col.rules[r as usize];
        DnatView {
            firewall: fw.name.clone(),
            group: group.name.clone(),
            collection: col.name.clone(),
            rule: rule.name.clone(),
            translated_destination: x.destination.to_string(),
            translated_port: x.port,
            translated_fqdn: rule.translation.as_ref().and_then(|t| t.fqdn.clone()),
            translated_source: x.source.to_string(),
        }
    }

    /// `the request passes fw-hub; the reply passes no device` (for ASYMMETRIC_ROUTE).
    pub(super) fn paths_text(&self, hops: &[Hop], return_hops: &[Hop]) -> String {
        let devices = |h: &[Hop]| {
            let names: Vec<&str> = h
                .iter()
                .filter(|x| x.kind == "firewall" || x.kind == "appliance")
                .map(|x| x.name.as_str())
                .collect();
            if names.is_empty() {
                "no device".to_string()
            } else {
                names.join(" → ")
            }
        };
        format!(
            "the request passes {}; the reply passes {}",
            devices(hops),
            devices(return_hops)
        )
    }
}
