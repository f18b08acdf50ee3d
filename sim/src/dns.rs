//! Simulated name resolution, as seen from a VNet (an integrated instance resolves from its
//! subnet's VNet) or from outside every VNet (a non-integrated instance).
//!
//! * A name under a declared private DNS zone (longest zone suffix wins) resolves only from a
//!   VNet *linked* to that zone. Peering does not carry zone links — the classic Azure failure.
//! * Any other name of a host inside a VNet without a public address resolves from that VNet and
//!   its connected peers only (*assumption* `ASSUMPTION_PRIVATE_NAME_SCOPE`).
//! * Names of hosts with a public address resolve everywhere to that public address; names of
//!   hosts outside every VNet resolve everywhere to their address.
//! * IP literals resolve to themselves.

use std::net::IpAddr;

use crate::topology::{normalize_dns, Topology};

/// Why a name did not resolve (gateway code `DNS_FAILURE`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{name}: {reason}")]
pub struct DnsError {
    /// The name.
    pub name: String,
    /// Why (names the zone and the VNet when a link is missing).
    pub reason: String,
}

impl DnsError {
    /// The stable code of a failed lookup.
    pub const CODE: &'static str = "DNS_FAILURE";
}

/// Where a lookup is made from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResolveFrom {
    /// From inside a VNet (index).
    Vnet(usize),
    /// From outside every VNet (public DNS only).
    Public,
}

// === impl Topology (DNS) ===

impl Topology {
    /// Resolves `name` from `from`.
    ///
    /// # Errors
    /// [`DnsError`] when the name does not resolve from there.
    pub fn resolve(&self, name: &str, from: ResolveFrom) -> Result<IpAddr, DnsError> {
        let n = normalize_dns(name.trim_start_matches('[').trim_end_matches(']'));
        if let Ok(ip) = n.parse::<IpAddr>() {
            return Ok(ip);
        }
        let fail = |reason: String| {
            Err(DnsError {
                name: n.clone(),
                reason,
            })
        };
        let from_name = match from {
            ResolveFrom::Vnet(v) => format!(
                "VNet `{}`",
                self.vnets.get(v).map_or("?", |x| x.name.as_str())
            ),
            ResolveFrom::Public => {
                "outside every VNet (the instance is not integrated)".to_string()
            }
        };
        // Private zones: longest suffix match.
        let zone = self
            .zones
            .iter()
            .filter(|z| n == z.name || n.ends_with(&format!(".{}", z.name)))
            .max_by_key(|z| z.name.len());
        let owner = self.hosts.iter().find(|h| h.dns.contains(&n));
        if let Some(z) = zone {
            let linked = matches!(from, ResolveFrom::Vnet(v) if z.links.contains(&v));
            if !linked {
                return fail(format!(
                    "NXDOMAIN: `{n}` is in private DNS zone `{}`, which is not linked to {from_name} (zone links do not follow peerings)",
                    z.name
                ));
            }
            return match owner {
                Some(h) => Ok(h.address),
                None => fail(format!(
                    "NXDOMAIN: private zone `{}` has no record `{n}`",
                    z.name
                )),
            };
        }
        let Some(h) = owner else {
            return fail(format!("NXDOMAIN: no host has the name `{n}`"));
        };
        if let Some(p) = h.public_address {
            return Ok(p);
        }
        let Some(home) = self.vnet_of(h.address) else {
            return Ok(h.address);
        };
        match from {
            ResolveFrom::Vnet(v) if self.connected(v, home) => Ok(h.address),
            _ => fail(format!(
                "NXDOMAIN: `{n}` is a private name of VNet `{}`, not resolvable from {from_name}",
                self.vnets[home].name
            )),
        }
    }

    /// Resolves `name` as the APIM instance does: from its subnet's VNet when integrated or
    /// injected, else from public DNS only.
    ///
    /// # Errors
    /// [`DnsError`] when the name does not resolve, or the topology has no `[apim]`.
    pub fn resolve_from_apim(&self, name: &str) -> Result<IpAddr, DnsError> {
        match self.apim_in_subnet() {
            Some((_, vnet, _, _)) => self.resolve(name, ResolveFrom::Vnet(vnet)),
            None if self.apim.is_some() => self.resolve(name, ResolveFrom::Public),
            None => Err(DnsError {
                name: name.to_string(),
                reason: "the topology has no [apim] instance".into(),
            }),
        }
    }
}
