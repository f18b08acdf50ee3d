//! The resources users put around an APIM v2 instance (issue 17), mapped after the network:
//!
//! | Azure | Fixture |
//! |---|---|
//! | `Microsoft.KeyVault/vaults`, `Microsoft.Storage/storageAccounts` | the public name (`NAME.vault.azure.net`, `NAME.blob.core.windows.net`) and `publicNetworkAccess` of the service a private endpoint serves |
//! | `Microsoft.Network/privateEndpoints` | a `[[hosts]]` of kind `private-endpoint` in its subnet (`customNetworkInterfaceName`, else the endpoint's name); its address from `ipConfigurations[].privateIPAddress`, else the first free one (`ASSUMPTION_DYNAMIC_PRIVATE_ADDRESS`); `private_link_fqdn` the target's public name; `public_network_access` the target's; `public_address` the first address of the target's regional service tag (`ASSUMPTION_SERVICE_PUBLIC_ADDRESS`) |
//! | `…/privateDnsZoneGroups` | the endpoint's `privatelink` name in each zone (`NAME.privatelink.vaultcore.azure.net`): the zone's A record follows the endpoint's address |
//! | `Microsoft.Network/privateDnsZones` (+ `virtualNetworkLinks`) | `[[private_dns_zones]]` with `links` |
//! | `…/privateDnsZones/A` | the record's name on the host at that address (a new host when none is) |
//! | `Microsoft.ApiManagement/service/namedValues`, `…/certificates` with `keyVault.secretIdentifier` | `[[apim.named_values]]` |
//!
//! Values these need that are unknown at deployment time leave the resource out, listed in
//! [`super::ImportResult::ignored`] with the reason.

use std::collections::BTreeSet;
use std::net::IpAddr;

use super::resource::{Kind, Res};
use super::value::Val;
use super::IgnoredResource;
use crate::finding::Assumption;
use crate::fixture::{
    DnsZoneFile, Fixture, HostFile, HostKind, NamedValueFile, PublicNetworkAccess,
    ResolutionPolicy, ZoneLinkFile,
};
use crate::tags::ServiceTagTable;

/// The first address of a subnet a dynamic address may take (the first four are Azure's).
const RESERVED_AT_START: u128 = 4;

/// What a private endpoint can target, by resource type.
struct Target {
    /// Lower-cased resource name.
    name: String,
    /// The public name, `kv1.vault.azure.net`.
    fqdn: String,
    /// The Private Link zone of its public name (`privatelink.vaultcore.azure.net`).
    zone: String,
    /// The service tag its public endpoints are in.
    tag: &'static str,
    disabled: bool,
}

/// What the mapping added, besides the fixture changes.
#[derive(Default)]
pub(crate) struct Outcome {
    pub ignored: Vec<IgnoredResource>,
    pub assumptions: BTreeSet<Assumption>,
}

fn text(v: Option<&Val>) -> Option<&str> {
    v.and_then(Val::as_str).filter(|s| !s.trim().is_empty())
}

fn props(r: &Res) -> &Val {
    r.props().0
}

/// The last segment of an id, and the segment after `key` (case-insensitively).
fn id_segment(id: &str, key: &str) -> Option<String> {
    let parts: Vec<&str> = id.trim_matches('/').split('/').collect();
    parts
        .iter()
        .position(|p| p.eq_ignore_ascii_case(key))
        .and_then(|i| parts.get(i + 1))
        .map(|s| s.to_string())
}

fn ignore(out: &mut Outcome, r: &Res, reason: String) {
    out.ignored.push(r.ignored(reason));
}

/// Maps the issue-17 kinds among `resources` into `f`.
pub(crate) fn apply(resources: &[&Res], f: &mut Fixture, tags: &ServiceTagTable) -> Outcome {
    let mut out = Outcome::default();
    let of = |k: Kind| resources.iter().filter(move |r| r.kind == k);
    // Targets: vaults and storage accounts.
    let mut targets: Vec<Target> = Vec::new();
    for r in of(Kind::KeyVault).chain(of(Kind::StorageAccount)) {
        let p = props(r);
        let disabled =
            text(p.get("publicNetworkAccess")).is_some_and(|s| s.eq_ignore_ascii_case("Disabled"));
        let name = r.name.to_ascii_lowercase();
        let (fqdn, zone, tag) = if r.kind == Kind::KeyVault {
            (
                format!("{name}.vault.azure.net"),
                "privatelink.vaultcore.azure.net",
                "AzureKeyVault",
            )
        } else {
            (
                format!("{name}.blob.core.windows.net"),
                "privatelink.blob.core.windows.net",
                "Storage",
            )
        };
        targets.push(Target {
            name,
            fqdn,
            zone: zone.into(),
            tag,
            disabled,
        });
    }
    // Zones and their links.
    for r in of(Kind::PrivateDnsZone) {
        zone_entry(f, &r.name);
    }
    for r in of(Kind::ZoneLink) {
        let zone = r.name.split('/').next().unwrap_or("").to_string();
        match text(props(r).get("virtualNetwork").and_then(|v| v.get("id"))) {
            Some(id) => {
                let vnet = id_segment(id, "virtualNetworks").unwrap_or_else(|| id.to_string());
                // `resolutionPolicy` (API 2024-06-01): NxDomainRedirect falls back to public
                // resolution ("Fallback to internet for Azure Private DNS zones").
                let resolution_policy = match text(props(r).get("resolutionPolicy")) {
                    Some(p) if p.eq_ignore_ascii_case("NxDomainRedirect") => {
                        ResolutionPolicy::NxDomainRedirect
                    }
                    None => ResolutionPolicy::Default,
                    Some(p) if p.eq_ignore_ascii_case("Default") => ResolutionPolicy::Default,
                    Some(p) => {
                        // Not a value ARM accepts, or known only at deployment: say so; the
                        // link itself is mapped with the default policy.
                        ignore(
                            &mut out,
                            r,
                            format!("resolutionPolicy `{p}` is neither Default nor NxDomainRedirect: the link is mapped with Default (set it with --set or fix the template)"),
                        );
                        ResolutionPolicy::Default
                    }
                };
                let z = zone_entry(f, &zone);
                match z
                    .links
                    .iter_mut()
                    .find(|l| l.vnet.eq_ignore_ascii_case(&vnet))
                {
                    Some(l) => {
                        l.resolution_policy = l.resolution_policy.max(resolution_policy);
                    }
                    None => z.links.push(ZoneLinkFile {
                        vnet,
                        resolution_policy,
                    }),
                }
            }
            None => ignore(
                &mut out,
                r,
                "the link's virtualNetwork.id is missing or known only at deployment time".into(),
            ),
        }
    }
    // Zone groups: endpoint name → zone names.
    let mut groups: Vec<(String, Vec<String>)> = Vec::new();
    for r in of(Kind::ZoneGroup) {
        let pe = r.name.split('/').next().unwrap_or("").to_ascii_lowercase();
        let zones = match props(r).get("privateDnsZoneConfigs") {
            Some(Val::Arr(cs)) => cs
                .iter()
                .filter_map(|c| {
                    let p = c.get("properties").unwrap_or(c);
                    text(p.get("privateDnsZoneId")).and_then(|id| id_segment(id, "privateDnsZones"))
                })
                .collect(),
            _ => Vec::new(),
        };
        groups.push((pe, zones));
    }
    // Private endpoints.
    for r in of(Kind::PrivateEndpoint) {
        endpoint(r, f, &targets, &groups, tags, &mut out);
    }
    // A records.
    for r in of(Kind::ZoneARecord) {
        let Some((zone, record)) = r.name.split_once('/') else {
            continue;
        };
        let fqdn = format!(
            "{}.{}",
            record.to_ascii_lowercase(),
            zone.to_ascii_lowercase()
        );
        let addrs: Vec<String> = match props(r).get("aRecords") {
            Some(Val::Arr(a)) => a
                .iter()
                .filter_map(|x| text(x.get("ipv4Address")).map(str::to_string))
                .collect(),
            _ => Vec::new(),
        };
        if addrs.is_empty() {
            ignore(
                &mut out,
                r,
                "the record has no known aRecords[].ipv4Address".into(),
            );
            continue;
        }
        for a in addrs {
            let ip: Option<IpAddr> = a.parse().ok();
            match f
                .hosts
                .iter_mut()
                .find(|h| h.address.parse::<IpAddr>().ok() == ip && ip.is_some())
            {
                Some(h) => {
                    if !h.dns.iter().any(|d| d.eq_ignore_ascii_case(&fqdn)) {
                        h.dns.push(fqdn.clone());
                    }
                }
                None => f.hosts.push(host(
                    format!("{record}.{zone}"),
                    a,
                    vec![fqdn.clone()],
                    HostKind::Nic,
                )),
            }
        }
        zone_entry(f, zone);
    }
    // Named values and certificates read from Key Vault.
    for r in of(Kind::ApimNamedValue).chain(of(Kind::ApimCertificate)) {
        let Some(secret) = text(
            props(r)
                .get("keyVault")
                .and_then(|k| k.get("secretIdentifier")),
        ) else {
            continue;
        };
        let Some(apim) = f.apim.as_mut() else {
            continue;
        };
        let (_, name) = r.name.split_once('/').unwrap_or(("", &r.name));
        let name = if r.kind == Kind::ApimCertificate {
            format!("certificates/{name}")
        } else {
            name.to_string()
        };
        if !apim.named_values.iter().any(|n| n.name == name) {
            apim.named_values.push(NamedValueFile {
                name,
                key_vault_secret: secret.to_string(),
            });
        }
    }
    out
}

fn zone_entry<'f>(f: &'f mut Fixture, name: &str) -> &'f mut DnsZoneFile {
    let lower = name.trim_end_matches('.').to_ascii_lowercase();
    if let Some(i) = f
        .private_dns_zones
        .iter()
        .position(|z| z.name.eq_ignore_ascii_case(&lower))
    {
        return &mut f.private_dns_zones[i];
    }
    f.private_dns_zones.push(DnsZoneFile {
        name: lower,
        links: Vec::new(),
    });
    f.private_dns_zones.last_mut().expect("just pushed")
}

fn host(name: String, address: String, dns: Vec<String>, kind: HostKind) -> HostFile {
    HostFile {
        name,
        address,
        public_address: None,
        nsg: None,
        application_security_groups: Vec::new(),
        dns,
        kind,
        services: Vec::new(),
        public_network_access: None,
        private_link_fqdn: None,
        subnet: None,
        ip_forwarding: false,
    }
}

fn endpoint(
    r: &Res,
    f: &mut Fixture,
    targets: &[Target],
    groups: &[(String, Vec<String>)],
    tags: &ServiceTagTable,
    out: &mut Outcome,
) {
    let p = props(r);
    let Some(subnet_id) = text(p.get("subnet").and_then(|s| s.get("id"))) else {
        return ignore(
            out,
            r,
            "the endpoint's subnet.id is missing or known only at deployment time".into(),
        );
    };
    let (Some(vnet), Some(subnet)) = (
        id_segment(subnet_id, "virtualNetworks"),
        id_segment(subnet_id, "subnets"),
    ) else {
        return ignore(out, r, format!("`{subnet_id}` is not a subnet id"));
    };
    let Some(prefix) = f
        .vnets
        .iter()
        .find(|v| v.name.eq_ignore_ascii_case(&vnet))
        .and_then(|v| {
            v.subnets
                .iter()
                .find(|s| s.name.eq_ignore_ascii_case(&subnet))
        })
        .and_then(|s| {
            s.address_prefixes
                .iter()
                .find_map(|p| p.parse::<ipnet::IpNet>().ok())
        })
    else {
        return ignore(out, r, format!("subnet `{vnet}/{subnet}` is not among the inputs (add the template or `az network vnet show` output that has it)"));
    };
    // Static address, else the first free one.
    let fixed = match p.get("ipConfigurations") {
        Some(Val::Arr(cs)) => cs.iter().find_map(|c| {
            let cp = c.get("properties").unwrap_or(c);
            text(cp.get("privateIPAddress")).map(str::to_string)
        }),
        _ => None,
    };
    let address = match fixed {
        Some(a) => a,
        None => {
            let used: BTreeSet<IpAddr> = f
                .hosts
                .iter()
                .filter_map(|h| h.address.parse().ok())
                .chain(
                    f.apim
                        .as_ref()
                        .and_then(|a| a.address.as_deref())
                        .and_then(|a| a.parse().ok()),
                )
                .collect();
            let start = match prefix.network() {
                IpAddr::V4(a) => u128::from(u32::from(a)),
                IpAddr::V6(a) => u128::from(a),
            };
            let end = match prefix.broadcast() {
                IpAddr::V4(a) => u128::from(u32::from(a)),
                IpAddr::V6(a) => u128::from(a),
            };
            let pick = (start + RESERVED_AT_START..end).find_map(|n| {
                let ip = match prefix.network() {
                    IpAddr::V4(_) => IpAddr::V4(u32::try_from(n).ok()?.into()),
                    IpAddr::V6(_) => IpAddr::V6(n.into()),
                };
                (!used.contains(&ip)).then_some(ip)
            });
            match pick {
                Some(ip) => {
                    out.assumptions.insert(Assumption::DynamicPrivateAddress);
                    ip.to_string()
                }
                None => {
                    return ignore(
                        out,
                        r,
                        format!("subnet `{vnet}/{subnet}` has no free address"),
                    )
                }
            }
        }
    };
    let name =
        text(p.get("customNetworkInterfaceName")).map_or_else(|| r.name.clone(), str::to_string);
    // The target: the first connection's privateLinkServiceId.
    let target_id = [
        "privateLinkServiceConnections",
        "manualPrivateLinkServiceConnections",
    ]
    .iter()
    .find_map(|k| match p.get(k) {
        Some(Val::Arr(cs)) => cs.iter().find_map(|c| {
            let cp = c.get("properties").unwrap_or(c);
            text(cp.get("privateLinkServiceId")).map(str::to_string)
        }),
        _ => None,
    });
    let target = target_id.as_deref().and_then(|id| {
        let n = id
            .trim_end_matches('/')
            .rsplit('/')
            .next()?
            .to_ascii_lowercase();
        targets.iter().find(|t| t.name == n)
    });
    let pe = r.name.to_ascii_lowercase();
    let zones: Vec<&String> = groups
        .iter()
        .filter(|(g, _)| *g == pe)
        .flat_map(|(_, z)| z)
        .collect();
    let mut h = host(name, address, Vec::new(), HostKind::PrivateEndpoint);
    // ARM names the endpoint's subnet: placed there even where unpeered VNets overlap.
    h.subnet = Some(format!("{vnet}/{subnet}"));
    if let Some(t) = target {
        h.private_link_fqdn = Some(t.fqdn.clone());
        if t.disabled {
            h.public_network_access = Some(PublicNetworkAccess::Disabled);
        }
        // Public DNS still answers the service's name with its public address.
        let region = f
            .apim
            .as_ref()
            .map(|a| a.region.to_ascii_lowercase())
            .unwrap_or_default();
        if let Some(tag) = tags.regional(t.tag, &region).or_else(|| tags.get(t.tag)) {
            if let Some(first) = tag.prefixes.iter().find(|p| p.is_ipv4()) {
                h.public_address = Some(first.first().to_string());
                out.assumptions.insert(Assumption::ServicePublicAddress);
            }
        }
        // The endpoint's privatelink name: in the zone group's zones (the A record follows
        // the endpoint's address), or in the target's Private Link zone when no zone group
        // exists and that zone is not among the inputs (so public DNS answers it).
        let zone_declared = f
            .private_dns_zones
            .iter()
            .any(|z| z.name.eq_ignore_ascii_case(&t.zone));
        if zones.is_empty() {
            if !zone_declared {
                h.dns.push(format!("{}.{}", t.name, t.zone));
            }
        } else {
            for z in zones {
                h.dns.push(format!("{}.{}", t.name, z.to_ascii_lowercase()));
            }
        }
    } else {
        for z in zones {
            h.dns.push(format!(
                "{}.{}",
                r.name.to_ascii_lowercase(),
                z.to_ascii_lowercase()
            ));
        }
    }
    f.hosts.push(h);
}
