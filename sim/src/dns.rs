//! Simulated name resolution, as seen from a VNet (an integrated instance resolves from its
//! subnet's VNet) or from outside every VNet (a non-integrated instance, the internet).
//!
//! [`Topology::lookup`] is the one resolver: `check`, `test`, `validate`, `up`'s table, the
//! harness and the gateway all resolve through it, so a name answers the same way everywhere.
//!
//! * A name under a declared private DNS zone (longest zone suffix wins) resolves only from a
//!   VNet *linked* to that zone; peering does not carry zone links ("What is an Azure Private DNS
//!   zone?", virtual network links: <https://learn.microsoft.com/azure/dns/private-dns-virtual-network-links>).
//!   From an unlinked VNet a custom zone gives no answer.
//! * A `privatelink.*` zone is different: Azure's public DNS answers the service's public name
//!   (and its `privatelink` CNAME) with the service's *public* address, so from an unlinked VNet
//!   such a name resolves publicly — to the host's `public_address` when the topology gives
//!   one, else it does not resolve ("Azure Private Endpoint DNS configuration":
//!   <https://learn.microsoft.com/azure/private-link/private-endpoint-dns>).
//! * Any other name of a host inside a VNet without a public address resolves from that VNet and
//!   its connected peers only (*assumption* `ASSUMPTION_PRIVATE_NAME_SCOPE`).
//! * Names of hosts with a public address resolve everywhere to that public address; names of
//!   hosts outside every VNet resolve everywhere to their address.
//! * IP literals resolve to themselves.

use std::net::IpAddr;

use serde::Serialize;

use crate::topology::{normalize_dns, Topology};

/// Why a name did not resolve (gateway code `DNS_FAILURE`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{name}: {reason}")]
pub struct DnsError {
    /// The name.
    pub name: String,
    /// Why (names the zone and the VNets it is linked to when a link is missing).
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

/// How a name was (or would have been) answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Via {
    /// A record of a private DNS zone linked to the asking VNet.
    PrivateZone,
    /// A Private Link zone linked to the asking VNet had no record and the link's
    /// `resolution_policy = "NxDomainRedirect"` fell back to public DNS (the service's public
    /// address).
    PublicFallback,
    /// Public DNS (a public address, a host outside every VNet, a `privatelink` name answered
    /// publicly from an unlinked VNet).
    Public,
    /// A host's private name outside every zone, from its VNet or a connected peer
    /// (`ASSUMPTION_PRIVATE_NAME_SCOPE`).
    VnetName,
    /// A `[[hosts]]` name given to `check` (the host's address; not a DNS lookup).
    HostName,
}

/// The answer to a name: what the JSON prints as `"resolved"`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Resolved {
    /// The name as asked (lower-cased, no trailing dot).
    pub name: String,
    /// The address, or `None` when the name does not resolve (`DNS_FAILURE`).
    pub address: Option<IpAddr>,
    /// The private DNS zone the name falls under, if any.
    pub zone: Option<String>,
    /// How it was answered (for a failure: where the lookup ended).
    pub via: Via,
    /// Why it did not resolve (`None` when it did).
    #[serde(skip)]
    pub failure: Option<String>,
}

impl Resolved {
    /// The address, or the [`DnsError`] saying why there is none.
    ///
    /// # Errors
    /// [`DnsError`] when the name did not resolve.
    pub fn result(&self) -> Result<IpAddr, DnsError> {
        self.address.ok_or_else(|| DnsError {
            name: self.name.clone(),
            reason: self.failure.clone().unwrap_or_default(),
        })
    }
}

// === impl Topology (DNS) ===

impl Topology {
    /// Resolves `name` from `from`: the one resolver (see the module docs).
    pub fn lookup(&self, name: &str, from: ResolveFrom) -> Resolved {
        let n = normalize_dns(name.trim_start_matches('[').trim_end_matches(']'));
        let answer = |address: IpAddr, zone: Option<&str>, via: Via| Resolved {
            name: n.clone(),
            address: Some(address),
            zone: zone.map(str::to_string),
            via,
            failure: None,
        };
        let fail = |zone: Option<&str>, via: Via, reason: String| Resolved {
            name: n.clone(),
            address: None,
            zone: zone.map(str::to_string),
            via,
            failure: Some(reason),
        };
        if let Ok(ip) = n.parse::<IpAddr>() {
            return answer(ip, None, Via::Public);
        }
        // A Private Link service's public name (`kv1.vault.azure.net`): Azure's public DNS
        // answers it with a CNAME to its `privatelink` name, which then resolves by the zone
        // rules below ("Azure Private Endpoint DNS configuration").
        if let Some(pl) = self.private_link_cname(&n) {
            let mut r = self.lookup(&pl, from);
            r.name = n;
            return r;
        }
        // "... not linked to {from_name}" / "... not resolvable from {from_name}".
        let from_name = match from {
            ResolveFrom::Vnet(v) => format!(
                "VNet `{}`",
                self.vnets.get(v).map_or("?", |x| x.name.as_str())
            ),
            ResolveFrom::Public => "public DNS (the lookup is made outside every VNet)".to_string(),
        };
        // Private zones: longest suffix match.
        let zone = self
            .zones
            .iter()
            .filter(|z| n == z.name || n.ends_with(&format!(".{}", z.name)))
            .max_by_key(|z| z.name.len());
        let owner = self.hosts.iter().find(|h| h.dns.contains(&n)).or_else(|| {
            self.hosts
                .iter()
                .find(|h| h.private_link_fqdn.as_deref() == Some(n.as_str()))
        });
        if let Some(z) = zone {
            let linked = matches!(from, ResolveFrom::Vnet(v) if z.links.contains(&v));
            let redirect = matches!(from, ResolveFrom::Vnet(v) if z.nx_redirect.contains(&v));
            let private_link = is_private_link_zone(&z.name);
            let links = self.zone_links(z);
            if linked {
                return match owner {
                    Some(h) => answer(h.address, Some(&z.name), Via::PrivateZone),
                    // "When NxDomainRedirect is enabled on the virtual network link, the Azure
                    // recursive resolver retries the query … using the public endpoint QNAME"
                    // ("Fallback to internet for Azure Private DNS zones").
                    None if redirect => match self.public_answer(&n) {
                        Some(p) => answer(p, Some(&z.name), Via::PublicFallback),
                        None => fail(
                            Some(&z.name),
                            Via::PublicFallback,
                            format!(
                                "NXDOMAIN: Private Link zone `{}` has no record `{n}`; the link of {from_name} falls back to public DNS (NxDomainRedirect), which answers with the service's public address, and the topology gives none (public_address)",
                                z.name
                            ),
                        ),
                    },
                    None if private_link => fail(
                        Some(&z.name),
                        Via::PrivateZone,
                        format!(
                            "NXDOMAIN: Private Link zone `{}` is linked to {from_name} and has no record `{n}`, so Azure DNS answers NXDOMAIN instead of the public address; add the record (a private endpoint with a zone group) or set resolution_policy = \"NxDomainRedirect\" on the link to fall back to public DNS",
                            z.name
                        ),
                    ),
                    None => fail(
                        Some(&z.name),
                        Via::PrivateZone,
                        format!(
                            "NXDOMAIN: private DNS zone `{}` has no record `{n}`",
                            z.name
                        ),
                    ),
                };
            }
            if private_link {
                // Public DNS answers a Private Link name with the service's public address.
                return match self.public_answer(&n) {
                    Some(p) => answer(p, Some(&z.name), Via::Public),
                    None => fail(
                        Some(&z.name),
                        Via::Public,
                        format!(
                            "NXDOMAIN: `{n}` is in Private Link zone `{}`, linked to {links} but not to {from_name}; public DNS answers such a name with the service's public address and this host has none (public_address)",
                            z.name
                        ),
                    ),
                };
            }
            return fail(
                Some(&z.name),
                Via::PrivateZone,
                format!(
                    "NXDOMAIN: `{n}` is in private DNS zone `{}`, linked to {links} but not to {from_name} (zone links do not follow peerings)",
                    z.name
                ),
            );
        }
        let Some(h) = owner else {
            return fail(
                None,
                Via::Public,
                format!("NXDOMAIN: no host has the name `{n}`"),
            );
        };
        if let Some(p) = h.public_address {
            return answer(p, None, Via::Public);
        }
        let Some(home) = self.vnet_of(h.address) else {
            return answer(h.address, None, Via::Public);
        };
        match from {
            ResolveFrom::Vnet(v) if self.connected(v, home) => answer(h.address, None, Via::VnetName),
            _ => fail(
                None,
                Via::VnetName,
                format!(
                    "NXDOMAIN: `{n}` is a private name of VNet `{}`, not resolvable from {from_name} ({})",
                    self.vnets[home].name,
                    crate::Assumption::PrivateNameScope.code()
                ),
            ),
        }
    }

    /// Resolves `name` from `from`.
    ///
    /// # Errors
    /// [`DnsError`] when the name does not resolve from there.
    pub fn resolve(&self, name: &str, from: ResolveFrom) -> Result<IpAddr, DnsError> {
        self.lookup(name, from).result()
    }

    /// Where a flow from `source` resolves names: the APIM instance from its subnet's VNet
    /// (or public DNS when not integrated), any other address from its VNet, else public DNS.
    pub fn resolver_of(&self, source: IpAddr) -> ResolveFrom {
        if self.apim_source() == Some(source) {
            if let Some(from) = self.apim_resolver() {
                return from;
            }
        }
        self.vnet_of(source)
            .map_or(ResolveFrom::Public, ResolveFrom::Vnet)
    }

    /// Where the APIM instance resolves names (`None` without `[apim]`).
    pub fn apim_resolver(&self) -> Option<ResolveFrom> {
        match self.apim_in_subnet() {
            Some((_, vnet, _, _)) => Some(ResolveFrom::Vnet(vnet)),
            None => self.apim.as_ref().map(|_| ResolveFrom::Public),
        }
    }

    /// Resolves `name` as the APIM instance does: from its subnet's VNet when integrated or
    /// injected, else from public DNS only.
    ///
    /// # Errors
    /// [`DnsError`] when the name does not resolve, or the topology has no `[apim]`.
    pub fn resolve_from_apim(&self, name: &str) -> Result<IpAddr, DnsError> {
        match self.apim_resolver() {
            Some(from) => self.resolve(name, from),
            None => Err(DnsError {
                name: name.to_string(),
                reason: "the topology has no [apim] instance".into(),
            }),
        }
    }

    /// The host named `name`: by its `[[hosts]]` name first, else by one of its DNS names
    /// (both case-insensitive). The one lookup of a host by name.
    pub fn host_by_name_or_dns(&self, name: &str) -> Option<usize> {
        self.host_index(name).or_else(|| {
            let dns = normalize_dns(name);
            // A private endpoint's target's public name (`private_link_fqdn`) names it too.
            self.hosts.iter().position(|h| {
                h.dns.contains(&dns) || h.private_link_fqdn.as_deref() == Some(dns.as_str())
            })
        })
    }

    /// The `privatelink` name public DNS answers `name` with (a CNAME), when the topology
    /// knows one: the `privatelink` DNS name of the private endpoint serving `name`
    /// (`private_link_fqdn`), else `name` with its Private Link zone
    /// ([`private_link_name`]) when an endpoint serves it or a declared zone covers that name.
    fn private_link_cname(&self, name: &str) -> Option<String> {
        if name.contains("privatelink.") {
            return None;
        }
        let serving = self
            .hosts
            .iter()
            .filter(|h| h.private_link_fqdn.as_deref() == Some(name));
        let mut served = false;
        for h in serving {
            served = true;
            if let Some(d) = h.dns.iter().find(|d| d.contains("privatelink.")) {
                return Some(d.clone());
            }
        }
        let derived = private_link_name(name)?;
        let covered = self
            .zones
            .iter()
            .any(|z| derived.ends_with(&format!(".{}", z.name)));
        (served || covered).then_some(derived)
    }

    /// What public DNS answers for a Private Link name (`kv1.privatelink.vaultcore.azure.net`):
    /// the public address of the service behind it — the host holding the name, or serving
    /// its public name (`private_link_fqdn`, or a host named by the public name) — when the
    /// topology gives one (`public_address`, or the address of a host outside every VNet).
    fn public_answer(&self, pl: &str) -> Option<IpAddr> {
        let public = public_name_of(pl);
        let serves = |h: &&crate::topology::Host| {
            h.dns.iter().any(|d| d == pl)
                || public.as_deref().is_some_and(|p| {
                    h.private_link_fqdn.as_deref() == Some(p) || h.dns.iter().any(|d| d == p)
                })
        };
        self.hosts.iter().filter(serves).find_map(|h| {
            h.public_address
                .or_else(|| self.vnet_of(h.address).is_none().then_some(h.address))
        })
    }

    /// `vnet-a, vnet-b` (or `no VNet`) for messages.
    fn zone_links(&self, z: &crate::topology::DnsZone) -> String {
        if z.links.is_empty() {
            return "no VNet".to_string();
        }
        let mut names: Vec<String> = z
            .links
            .iter()
            .filter_map(|&v| self.vnets.get(v).map(|x| format!("`{}`", x.name)))
            .collect();
        names.sort();
        names.join(", ")
    }
}

/// Whether a zone is a Private Link zone (`privatelink.blob.core.windows.net`, ...).
pub fn is_private_link_zone(zone: &str) -> bool {
    zone.starts_with("privatelink.")
}

/// Public DNS suffixes of Private Link services and the zone their `privatelink` CNAME is in
/// ("Azure Private Endpoint private DNS zone values",
/// <https://learn.microsoft.com/azure/private-link/private-endpoint-dns>): `NAME.SUFFIX` is a
/// CNAME to `NAME.ZONE`. Most zones are `privatelink.` + the suffix; Key Vault's is not.
const PRIVATE_LINK_SUFFIXES: &[(&str, &str)] = &[
    ("vault.azure.net", "privatelink.vaultcore.azure.net"),
    ("managedhsm.azure.net", "privatelink.managedhsm.azure.net"),
    ("blob.core.windows.net", "privatelink.blob.core.windows.net"),
    ("file.core.windows.net", "privatelink.file.core.windows.net"),
    (
        "queue.core.windows.net",
        "privatelink.queue.core.windows.net",
    ),
    (
        "table.core.windows.net",
        "privatelink.table.core.windows.net",
    ),
    ("dfs.core.windows.net", "privatelink.dfs.core.windows.net"),
    ("web.core.windows.net", "privatelink.web.core.windows.net"),
    ("database.windows.net", "privatelink.database.windows.net"),
    (
        "servicebus.windows.net",
        "privatelink.servicebus.windows.net",
    ),
    ("documents.azure.com", "privatelink.documents.azure.com"),
    ("azurewebsites.net", "privatelink.azurewebsites.net"),
    ("azure-api.net", "privatelink.azure-api.net"),
    ("azurecr.io", "privatelink.azurecr.io"),
    ("openai.azure.com", "privatelink.openai.azure.com"),
    (
        "cognitiveservices.azure.com",
        "privatelink.cognitiveservices.azure.com",
    ),
    ("search.windows.net", "privatelink.search.windows.net"),
    (
        "redis.cache.windows.net",
        "privatelink.redis.cache.windows.net",
    ),
    (
        "postgres.database.azure.com",
        "privatelink.postgres.database.azure.com",
    ),
    (
        "mysql.database.azure.com",
        "privatelink.mysql.database.azure.com",
    ),
    ("azconfig.io", "privatelink.azconfig.io"),
    ("eventgrid.azure.net", "privatelink.eventgrid.azure.net"),
];

/// The `privatelink` name public DNS gives a Private Link service's public name:
/// `kv1.vault.azure.net` → `kv1.privatelink.vaultcore.azure.net`. `None` for other names.
pub fn private_link_name(public: &str) -> Option<String> {
    let n = normalize_dns(public);
    PRIVATE_LINK_SUFFIXES.iter().find_map(|(suffix, zone)| {
        let label = n.strip_suffix(suffix)?.strip_suffix('.')?;
        (!label.is_empty() && !label.contains('.')).then(|| format!("{label}.{zone}"))
    })
}

/// The inverse of [`private_link_name`]: `kv1.privatelink.vaultcore.azure.net` →
/// `kv1.vault.azure.net`.
pub fn public_name_of(private_link: &str) -> Option<String> {
    let n = normalize_dns(private_link);
    PRIVATE_LINK_SUFFIXES.iter().find_map(|(suffix, zone)| {
        let label = n.strip_suffix(zone)?.strip_suffix('.')?;
        (!label.is_empty() && !label.contains('.')).then(|| format!("{label}.{suffix}"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixture::{Fixture, Format};
    use crate::ServiceTagTable;

    fn topo(extra: &str) -> Topology {
        let text = format!(
            r#"
[[vnets]]
name = "app"
region = "westeurope"
address_space = ["10.0.0.0/16"]
peerings = ["hub"]
  [[vnets.subnets]]
  name = "s"
  address_prefix = "10.0.1.0/24"
[[vnets]]
name = "hub"
region = "westeurope"
address_space = ["10.1.0.0/16"]
peerings = ["app"]
  [[vnets.subnets]]
  name = "s"
  address_prefix = "10.1.1.0/24"
[[hosts]]
name = "kv"
address = "10.1.1.5"
kind = "private-endpoint"
dns = ["kv1.privatelink.vaultcore.azure.net", "orders.internal.example"]
{extra}
"#
        );
        let f = Fixture::parse(&text, Format::Toml).unwrap();
        Topology::build(&f, ServiceTagTable::builtin()).topology
    }

    #[test]
    fn custom_zone_answers_only_linked_vnets() {
        let t = topo("[[private_dns_zones]]\nname = \"internal.example\"\nlinks = [\"hub\"]\n");
        let hub = t.lookup("orders.internal.example", ResolveFrom::Vnet(1));
        assert_eq!(hub.address, Some("10.1.1.5".parse().unwrap()));
        assert_eq!(hub.via, Via::PrivateZone);
        // Linked only to the peer: the app VNet gets nothing, and the reason names the link.
        let app = t.lookup("orders.internal.example", ResolveFrom::Vnet(0));
        assert_eq!(app.address, None);
        assert_eq!(app.zone.as_deref(), Some("internal.example"));
        let why = app.failure.unwrap();
        assert!(
            why.contains("linked to `hub`") && why.contains("VNet `app`"),
            "{why}"
        );
    }

    #[test]
    fn unlinked_custom_zone_names_no_vnet() {
        let t = topo("[[private_dns_zones]]\nname = \"internal.example\"\n");
        let r = t.lookup("orders.internal.example", ResolveFrom::Vnet(1));
        assert_eq!(r.address, None);
        assert!(r.failure.unwrap().contains("linked to no VNet"));
    }

    #[test]
    fn private_link_zone_falls_back_to_public_dns() {
        let zone = "[[private_dns_zones]]\nname = \"privatelink.vaultcore.azure.net\"\nlinks = [\"hub\"]\n";
        let t = topo(zone);
        // Unlinked, no public address: no answer.
        let r = t.lookup("kv1.privatelink.vaultcore.azure.net", ResolveFrom::Vnet(0));
        assert_eq!((r.address, r.via), (None, Via::Public));
        // Linked: the private address.
        let r = t.lookup("kv1.privatelink.vaultcore.azure.net", ResolveFrom::Vnet(1));
        assert_eq!(r.address, Some("10.1.1.5".parse().unwrap()));
        // With a public address, the unlinked VNet gets it from public DNS.
        let t = topo(&format!("{zone}\n")).clone();
        let mut with_public = t.clone();
        with_public.hosts[0].public_address = Some("52.1.2.3".parse().unwrap());
        let r = with_public.lookup("kv1.privatelink.vaultcore.azure.net", ResolveFrom::Vnet(0));
        assert_eq!(r.address, Some("52.1.2.3".parse().unwrap()));
        assert_eq!(r.via, Via::Public);
        assert_eq!(r.zone.as_deref(), Some("privatelink.vaultcore.azure.net"));
    }

    /// "Fallback to internet for Azure Private DNS zones"
    /// (<https://learn.microsoft.com/azure/dns/private-dns-fallback>): a Private Link zone
    /// linked to the VNet with no record for the name answers NXDOMAIN; with
    /// `resolutionPolicy: NxDomainRedirect` on the link the resolver retries publicly.
    #[test]
    fn nx_domain_redirect_falls_back_to_the_public_address() {
        // kv2 is served by a private endpoint whose record is in another tenant's zone (not
        // among the inputs): the host has no privatelink name of its own.
        let remote = "[[hosts]]\nname = \"kv2\"\naddress = \"10.1.1.9\"\nkind = \"private-endpoint\"\npublic_address = \"52.9.9.9\"\nprivate_link_fqdn = \"kv2.vault.azure.net\"\n";
        let plain = format!("{remote}[[private_dns_zones]]\nname = \"privatelink.vaultcore.azure.net\"\nlinks = [\"app\"]\n");
        let t = topo(&plain);
        let r = t.lookup("kv2.vault.azure.net", ResolveFrom::Vnet(0));
        assert_eq!(r.address, None, "{r:?}");
        assert_eq!(r.name, "kv2.vault.azure.net");
        let why = r.failure.unwrap();
        assert!(
            why.contains("kv2.privatelink.vaultcore.azure.net") && why.contains("NxDomainRedirect"),
            "{why}"
        );
        // Unlinked VNet (hub): public DNS answers with the public address.
        let r = t.lookup("kv2.vault.azure.net", ResolveFrom::Vnet(1));
        assert_eq!(
            (r.address, r.via),
            (Some("52.9.9.9".parse().unwrap()), Via::Public)
        );
        // With NxDomainRedirect on app's link: the public address, marked as the fallback.
        let redirect = format!("{remote}[[private_dns_zones]]\nname = \"privatelink.vaultcore.azure.net\"\nlinks = [{{ vnet = \"app\", resolution_policy = \"NxDomainRedirect\" }}]\n");
        let t = topo(&redirect);
        let r = t.lookup("kv2.vault.azure.net", ResolveFrom::Vnet(0));
        assert_eq!(r.address, Some("52.9.9.9".parse().unwrap()), "{r:?}");
        assert_eq!(r.via, Via::PublicFallback);
        assert_eq!(r.zone.as_deref(), Some("privatelink.vaultcore.azure.net"));
        // A record the zone has still answers privately: the fallback is for NXDOMAIN only.
        let r = t.lookup("kv1.privatelink.vaultcore.azure.net", ResolveFrom::Vnet(0));
        assert_eq!(
            (r.address, r.via),
            (Some("10.1.1.5".parse().unwrap()), Via::PrivateZone)
        );
        // No public address to fall back to: NXDOMAIN that says so.
        let mut t2 = t.clone();
        t2.hosts[1].public_address = None;
        let r = t2.lookup("kv2.vault.azure.net", ResolveFrom::Vnet(0));
        assert_eq!((r.address, r.via), (None, Via::PublicFallback));
        assert!(r.failure.unwrap().contains("public_address"));
    }

    #[test]
    fn redirect_on_a_custom_zone_is_reported_and_has_no_effect() {
        let text = format!(
            "{}[[private_dns_zones]]\nname = \"internal.example\"\nlinks = [{{ vnet = \"app\", resolution_policy = \"NxDomainRedirect\" }}]\n",
            ""
        );
        let t = topo(&text);
        assert!(t.zones[0].nx_redirect.is_empty());
        let f = crate::fixture::Fixture::parse(
            "[[vnets]]\nname = \"app\"\nregion = \"westeurope\"\naddress_space = [\"10.0.0.0/16\"]\n[[private_dns_zones]]\nname = \"internal.example\"\nlinks = [{ vnet = \"app\", resolution_policy = \"NxDomainRedirect\" }]\n",
            Format::Toml,
        )
        .unwrap();
        let built = Topology::build(&f, ServiceTagTable::builtin());
        assert!(built
            .findings
            .iter()
            .any(|f| f.code == crate::FindingCode::DnsResolutionPolicyIgnored));
    }

    #[test]
    fn zone_links_parse_as_names_or_tables_and_round_trip() {
        let text = "[[private_dns_zones]]\nname = \"privatelink.vaultcore.azure.net\"\nlinks = [\"a\", { vnet = \"b\", resolution_policy = \"NxDomainRedirect\" }, { vnet = \"c\" }]\n";
        let f = Fixture::parse(text, Format::Toml).unwrap();
        let links = &f.private_dns_zones[0].links;
        assert_eq!(links[0], "a");
        assert_eq!(
            links[1].resolution_policy,
            crate::fixture::ResolutionPolicy::NxDomainRedirect
        );
        assert_eq!(links[2], "c");
        let again = Fixture::parse(&f.to_toml().unwrap(), Format::Toml).unwrap();
        assert_eq!(again.private_dns_zones, f.private_dns_zones);
        // A bad policy and an unknown key are refused, naming what was expected.
        for bad in [
            "links = [{ vnet = \"b\", resolution_policy = \"Redirect\" }]",
            "links = [{ vnet = \"b\", policy = \"NxDomainRedirect\" }]",
            "links = [3]",
        ] {
            let e = Fixture::parse(
                &format!("[[private_dns_zones]]\nname = \"z.example\"\n{bad}\n"),
                Format::Toml,
            )
            .unwrap_err()
            .to_string();
            assert!(
                e.contains("NxDomainRedirect")
                    || e.contains("unknown field")
                    || e.contains("VNet name"),
                "{bad}: {e}"
            );
        }
    }

    #[test]
    fn private_link_names_map_both_ways() {
        assert_eq!(
            private_link_name("KV1.vault.azure.net").as_deref(),
            Some("kv1.privatelink.vaultcore.azure.net")
        );
        assert_eq!(
            private_link_name("st1.blob.core.windows.net").as_deref(),
            Some("st1.privatelink.blob.core.windows.net")
        );
        assert_eq!(private_link_name("a.b.vault.azure.net"), None);
        assert_eq!(private_link_name("vault.azure.net"), None);
        assert_eq!(private_link_name("orders.contoso.com"), None);
        for public in [
            "kv1.vault.azure.net",
            "st1.dfs.core.windows.net",
            "apim1.azure-api.net",
        ] {
            let pl = private_link_name(public).unwrap();
            assert_eq!(public_name_of(&pl).as_deref(), Some(public));
        }
        assert_eq!(public_name_of("kv1.vault.azure.net"), None);
    }

    #[test]
    fn private_names_follow_connected_peers() {
        let t = topo("");
        let r = t.lookup("orders.internal.example", ResolveFrom::Vnet(0));
        assert_eq!(r.via, Via::VnetName);
        assert!(r.address.is_some());
        let r = t.lookup("orders.internal.example", ResolveFrom::Public);
        assert!(r.address.is_none());
        assert!(r.failure.unwrap().contains("ASSUMPTION_PRIVATE_NAME_SCOPE"));
    }
}
